#!/usr/bin/env bash
# libaipalq's benchmarks: the scenarios of ../shared/bench on private Redis and PostgreSQL
# started by scripts/services.sh with the peers' settings (Redis AOF everysec; PostgreSQL
# defaults, fsync on, shared_buffers=256MB). One JSON line per result on stdout.
#
# Usage: bench/run.sh               queue scenarios, scale at 20,000 waiting, API scenarios
#        SCALE=1 bench/run.sh       also the scale scenario with SCALE_N (1,000,000) waiting
#                                   and the API's status lookups among those rows (~+5 min)
# Environment: N=20000 LAT_N=2000 LAT_RATE=200; SCALE_TAKE=20000 (tasks drained from the top
#   in the scale scenario, in SCALE_ROUNDS=5 rounds), SCALE_PROCS=2 SCALE_CONC=8;
#   API_DURATION=10 API_WARMUP=2 (seconds per wrk run) API_ROWS=10000 (rows for status and
#   list); API=0 skips the API scenarios.
# Exit status 1 when a queue scenario's verification failed (it stops there) or an API check
# failed (non-2xx, socket errors, submit rows not matching the 2xx responses).
# Run it alone on the machine: it uses both cores.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
N=${N:-20000} LAT_N=${LAT_N:-2000} LAT_RATE=${LAT_RATE:-200}
SCALE=${SCALE:-0} SCALE_N=${SCALE_N:-1000000} SCALE_TAKE=${SCALE_TAKE:-20000}
SCALE_PROCS=${SCALE_PROCS:-2} SCALE_CONC=${SCALE_CONC:-8} API=${API:-1}

# wrk drives the API scenarios (as ../shared/bench's seedapi does): a Debian package,
# installed here when missing; the package lists are refreshed only if the install fails.
need_wrk() {
  if [[ $API != 1 ]] || command -v wrk >/dev/null; then return 0; fi
  local sudo=()
  ((EUID == 0)) || sudo=(sudo -n)
  echo "bench: installing wrk" >&2
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends wrk >&2 \
    || { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 \
      && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends wrk >&2; }
}

scripts/deps.sh >&2
need_wrk
scripts/build.sh build-bench --buildtype=release -Dtests=false >&2
# shellcheck source=scripts/services.sh disable=SC1091
source scripts/services.sh
AIPALQ_PG_SHARED_BUFFERS=256MB services_start >&2
services_cleanup_on_exit

bin=build-bench/bench/aipalq_bench
failed=0 # an API check that failed (its lines are printed all the same)
"$bin" enqueue "$N"
ASYNC_COMMIT=1 "$bin" enqueue "$N"
"$bin" enqueue-bulk "$N"
for procs in 1 2; do
  for conc in 8 32; do
    "$bin" drain "$N" "$procs" "$conc"
  done
done
# With prefetch a slot that finishes finds its next task waiting instead of sleeping until the
# dispatcher hands one over: fewer wake-ups per task, which this VM makes expensive.
for procs in 1 2; do
  PREFETCH=16 "$bin" drain "$N" "$procs" 16
done
"$bin" latency "$LAT_N" "$LAT_RATE" 8
ASYNC_COMMIT=1 "$bin" latency "$LAT_N" "$LAT_RATE" 8
# PostgreSQL alone recording completions in batches of the size a drain's recorders send
# (~300), against plain SQL making the same writes: what is ours and what is the schema's.
"$bin" record "$N" 300

# Cost against depth: the same measurements with SCALE_TAKE and (SCALE=1) SCALE_N waiting.
"$bin" scale "$SCALE_TAKE" "$SCALE_TAKE" "$SCALE_PROCS" "$SCALE_CONC"
if [[ $SCALE == 1 ]]; then
  "$bin" scale "$SCALE_N" "$SCALE_TAKE" "$SCALE_PROCS" "$SCALE_CONC"
  if [[ $API == 1 ]]; then
    # status lookups through the API among every row the scale scenario left
    python3 bench/api_bench.py --api build-bench/daemons/api/aipal-api --no-seed \
      --namespace bench --scenarios status --variant "aipal-api-rows-$SCALE_N" || failed=1
  fi
fi

# The scale scenario leaves Redis's automatic AOF rewrite off (a fork of a deep queue's Redis
# costs the drain a page fault per page it touches next): back on once Redis is empty.
services_reset >&2
redis-cli -h 127.0.0.1 -p "$AIPALQ_REDIS_PORT" config set auto-aof-rewrite-percentage 100 >/dev/null

if [[ $API == 1 ]]; then
  python3 bench/api_bench.py --api build-bench/daemons/api/aipal-api || failed=1
fi
exit "$failed"
