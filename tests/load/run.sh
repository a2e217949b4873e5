#!/usr/bin/env bash
# Runs tests/load/test_load.py (the API under a sustained mixed load; many tasks with flat
# memory) against the aipal-api and aipal-worker of BUILD (default build/) and ends with
# "N passed, N failed". Needs AIPALQ_REDIS_URL / AIPALQ_DATABASE_URL (scripts/services.sh)
# and redis-cli. Figures go to LOAD_RESULTS when set (JSON lines) and to stdout.
# The long variant: LOAD_TASKS=1000000 LOAD_SECONDS=120 tests/load/run.sh
# Usage: tests/load/run.sh [BUILD] [unittest names, e.g. test_load.MixedApiLoadTest]
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
shift || true
export AIPAL_API_BIN=${AIPAL_API_BIN:-$build/daemons/api/aipal-api}
export AIPAL_WORKER_BIN=${AIPAL_WORKER_BIN:-$build/daemons/worker/aipal-worker}
export LOAD_LOG_DIR=${LOAD_LOG_DIR:-$build/meson-logs}
export PYTHONDONTWRITEBYTECODE=1
cd "$root/tests/load"
(($# > 0)) || set -- test_load
exec python3 "$root/tests/run_unittest.py" load "$@"
