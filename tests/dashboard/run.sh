#!/usr/bin/env bash
# The dashboard in a real browser: Debian's headless Chromium driven by playwright-core (npm,
# pinned in package-lock.json). Starts its own aipal-api (free port, API keys on, a namespace of
# its own) and an aipal-worker on queue 'default' against the services of the environment
# (AIPALQ_REDIS_URL / AIPALQ_DATABASE_URL), or against services it starts itself
# (scripts/services.sh) when those are unset. Then dashboard.test.mjs: key prompt, live updates,
# submission through the form, field errors, filters, cancel, retry, workers, phone width,
# keyboard, polling fallback. Screenshots go to tests/dashboard/out/ and the latest main views
# are copied to docs/screenshots/.
#
# Usage: tests/dashboard/run.sh [BUILDDIR]   (default build/, compiled first when needed)
# Installs what is missing: chromium (apt), node and npm (apt), node_modules (npm ci).
# Ends with "N passed, N failed"; exit status non-zero on any failure.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
builddir=${1:-${AIPAL_DASHBOARD_BUILDDIR:-build}}
[[ $builddir = /* ]] || builddir=$root/$builddir
out=$here/out

fail() {
  echo "dashboard: $*" >&2
  echo "0 passed, 1 failed"
  exit 1
}

apt_install() {
  ((EUID == 0)) || fail "missing $*; install it (apt-get install $*) or run as root"
  echo "dashboard: installing $* (apt)" >&2
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1; then
    apt-get update >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/dev/null ||
      fail "apt-get install $* failed"
  fi
}

# --- tools
chromium_bin=${CHROMIUM:-/usr/bin/chromium}
[[ -x $chromium_bin ]] || apt_install chromium
[[ -x $chromium_bin ]] || fail "no chromium at $chromium_bin"
command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
if [[ ! -d $here/node_modules/playwright-core ]]; then
  echo "dashboard: npm ci" >&2
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >&2) || fail "npm ci failed"
fi

# --- the daemons
api_bin=$builddir/daemons/api/aipal-api
worker_bin=$builddir/daemons/worker/aipal-worker
if [[ ! -x $api_bin ]]; then
  "$root/scripts/build.sh" "${builddir#"$root"/}" >&2 || fail "cannot build $builddir"
fi
[[ -x $api_bin ]] || fail "no $api_bin"

own_services=0
if [[ -z ${AIPALQ_REDIS_URL:-} || -z ${AIPALQ_DATABASE_URL:-} ]]; then
  # shellcheck source=scripts/services.sh disable=SC1091
  source "$root/scripts/services.sh"
  own_services=1
  trap services_stop EXIT
  services_start >&2 || fail "cannot start Redis and PostgreSQL"
fi

rm -rf "$out"
mkdir -p "$out"
work=$(mktemp -d /tmp/aipal-dashboard.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  rm -rf "$work"
  ((own_services == 0)) || services_stop
}
trap cleanup EXIT
trap 'exit 130' INT TERM

namespace=dash$$
key=dash-rw-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
export AIPALQ_NAMESPACE=$namespace

AIPALQ_API_KEYS_RW=$key "$api_bin" --listen 127.0.0.1:0 --namespace "$namespace" --allow-root \
  --events-poll-ms 100 >"$out/api.log" 2>&1 &
pids+=($!)
port=
for _ in $(seq 1 100); do
  port=$(sed -n 's/.*"msg":"listening".*"port":\([0-9]*\).*/\1/p' "$out/api.log" | head -n 1)
  [[ -n $port ]] && break
  kill -0 "${pids[0]}" 2>/dev/null || break
  sleep 0.1
done
[[ -n $port ]] || { cat "$out/api.log" >&2; fail "aipal-api did not start"; }

mkdir -p "$work/worker"
if [[ -x $worker_bin ]]; then
  (cd "$work/worker" && exec "$worker_bin" --queues default --concurrency 2 --pool threads \
    --health-port 0 --no-scheduler --namespace "$namespace" --allow-root >"$out/worker.log" 2>&1) &
else
  (cd "$work/worker" && exec "$builddir/examples/worker" threads 2 >"$out/worker.log" 2>&1) &
fi
pids+=($!)

rc=0
DASHBOARD_URL=http://127.0.0.1:$port DASHBOARD_KEY=$key DASHBOARD_OUT=$out CHROMIUM=$chromium_bin \
  node "$here/dashboard.test.mjs" 2>&1 | tee "$work/test.out" || rc=$?
if ! tail -n 1 "$work/test.out" | grep -Eq '^[0-9]+ passed, [0-9]+ failed$'; then
  echo "dashboard: the scenario ended early (see above)" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

# the latest screenshots of the main views, for docs/DASHBOARD.md
if ((rc == 0)) && compgen -G "$out/*.png" >/dev/null; then
  mkdir -p "$root/docs/screenshots"
  cp "$out"/*.png "$root/docs/screenshots/"
fi
exit "$rc"
