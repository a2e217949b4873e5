#!/usr/bin/env bash
# Runs tests/security/test_security.py against the aipal-api and libaipalq of BUILD (default
# build/) and ends with "N passed, N failed" (an expected failure counts as passed: it is a
# known gap, written in the test; an unexpected success fails, so that its marker goes).
# Needs AIPALQ_REDIS_URL / AIPALQ_DATABASE_URL (scripts/services.sh) and redis-server, psql.
# Usage: tests/security/run.sh [BUILD] [unittest names, e.g. test_security.AuthBypassTest]
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
shift || true
export AIPAL_API_BIN=${AIPAL_API_BIN:-$build/daemons/api/aipal-api}
export AIPAL_WORKER_BIN=${AIPAL_WORKER_BIN:-$build/daemons/worker/aipal-worker}
export AIPALQ_LIBRARY=${AIPALQ_LIBRARY:-$build/lib/libaipalq.so}
cd "$root/tests/security"
(($# > 0)) || set -- test_security
exec python3 "$root/tests/run_unittest.py" security "$@"
