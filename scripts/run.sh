#!/usr/bin/env bash
# The one "build and run the system" command: installs missing packages, builds build/, starts
# Redis and PostgreSQL with their data in ./data (kept between runs; ports 6380 / 5433 when free),
# starts the daemons that are built (API on 127.0.0.1:8000, worker), runs the example producer
# and waits until Ctrl-C or SIGTERM, then stops the daemons and the services.
# Without daemons it runs the example, says so, and stops the services.
#
# Usage: scripts/run.sh
# Environment: AIPALQ_API_ADDR (default 127.0.0.1:8000)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

api_addr=${AIPALQ_API_ADDR:-127.0.0.1:8000}
api_bin=build/daemons/aipal-api
worker_bin=build/daemons/aipal-worker
example_bin=build/examples/enqueue

scripts/deps.sh
scripts/build.sh build --buildtype=debugoptimized

# shellcheck source=scripts/services.sh disable=SC1091
source scripts/services.sh

daemon_pids=()
# shellcheck disable=SC2317  # invoked by the traps below
stop_all() {
  local pid i
  if ((${#daemon_pids[@]} > 0)); then
    echo "run: stopping daemons" >&2
    kill -TERM "${daemon_pids[@]}" 2>/dev/null || true
    for pid in "${daemon_pids[@]}"; do
      for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    done
    daemon_pids=()
  fi
  services_stop
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p data
AIPALQ_PREFER_REDIS_PORT=6380 AIPALQ_PREFER_PG_PORT=5433 services_start "$root/data"

# Waits until something accepts connections on HOST:PORT (at most 30 s) or PID exits.
wait_listening() {
  local host=${1%:*} port=${1##*:} pid=$2 i
  for ((i = 0; i < 300; i++)); do
    kill -0 "$pid" 2>/dev/null || return 1
    if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

# --- Daemons: started in the background when built; their output goes to this terminal. ---
if [[ -x $api_bin ]]; then
  if (exec 3<>"/dev/tcp/${api_addr%:*}/${api_addr##*:}") 2>/dev/null; then
    echo "run: $api_addr is already in use (set AIPALQ_API_ADDR=HOST:PORT)" >&2
    exit 1
  fi
  "$api_bin" --listen "$api_addr" --redis-url "$AIPALQ_REDIS_URL" --database-url "$AIPALQ_DATABASE_URL" &
  daemon_pids+=($!)
  wait_listening "$api_addr" "$!" || { echo "run: $api_bin did not start listening on $api_addr" >&2; exit 1; }
fi
if [[ -x $worker_bin ]]; then
  "$worker_bin" --redis-url "$AIPALQ_REDIS_URL" --database-url "$AIPALQ_DATABASE_URL" &
  daemon_pids+=($!)
fi

if [[ -x $example_bin ]]; then
  echo "run: $example_bin" >&2
  "$example_bin"
else
  echo "run: $example_bin is not built yet; nothing to enqueue" >&2
fi

echo
echo "Redis:      $AIPALQ_REDIS_URL"
echo "PostgreSQL: $AIPALQ_DATABASE_URL"
if ((${#daemon_pids[@]} == 0)); then
  echo "The daemons ($api_bin, $worker_bin) are not built yet; stopping the services."
  exit 0
fi
[[ ! -x $api_bin ]] || echo "API:        http://$api_addr/"
echo "Running. Press Ctrl-C to stop."

# Returns when a daemon exits by itself (an error: they run until told to stop).
status=0
wait -n "${daemon_pids[@]}" || status=$?
echo "run: a daemon exited (status $status); stopping everything" >&2
exit 1
