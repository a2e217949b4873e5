#!/usr/bin/env bash
# The test passes that do not fit meson test, run by scripts/test.sh after it (same servers):
#   tests/install_test.sh  a fresh build installed into a temporary --prefix, used through
#                          pkg-config by the C and C++ example (meson's 'install' suite covers
#                          meson install --destdir of the build directory)
#   tests/valgrind.sh      unit and integration programs of build/ under valgrind memcheck
#   tests/fuzz/run.sh      libFuzzer targets, corpus replay + FUZZ_SECONDS of fuzzing each
#   tests/tsan/run.sh      ThreadSanitizer: tsan_worker driver and the worker suite
#   tests/security/run.sh  injection, headers, slowloris, traversal, auth, secrets, root, URLs
#   tests/fault/run.sh     faults mid-drain with the real daemons (worker/child SIGKILL, Redis
#                          SIGKILL/FLUSHALL/SIGSTOP, PostgreSQL restarts, API SIGKILL, SIGTERM
#                          hand-over) on its own Redis and PostgreSQL: nothing lost or doubled
#   tests/load/run.sh      the API under a mixed load; many tasks with flat memory (LOAD_*)
#   tests/dashboard/run.sh the dashboard of aipal-api in headless Chromium (playwright-core)
#   tests/packaging/run.sh Compose, Kubernetes and systemd packaging: validation, drift against
#                          the daemons, and the daemons run as the manifests run them
# Ends with "N passed, N failed" (the checks of both), exit status non-zero on any failure.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

passed=0 failed=0
# run_counted NAME COMMAND...: adds the "N passed, N failed" of the command's last line, or counts
# the command as one check when it has no such line.
run_counted() {
  local name=$1 out rc=0 last
  shift
  out=$(mktemp)
  echo "=== extra: $name" >&2
  "$@" 2>&1 | tee "$out" || rc=$?
  last=$(tail -n 1 "$out")
  rm -f "$out"
  if [[ $last =~ ([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
    passed=$((passed + BASH_REMATCH[1])) failed=$((failed + BASH_REMATCH[2]))
    ((rc == 0 || BASH_REMATCH[2] > 0)) || failed=$((failed + 1))
  elif ((rc == 0)); then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
  fi
}

if ! scripts/build.sh build >/dev/null; then
  echo "FAIL: build/ does not build" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
run_counted install tests/install_test.sh "$root"
run_counted valgrind tests/valgrind.sh "$root/build"
run_counted dashboard tests/dashboard/run.sh "$root/build"
run_counted packaging tests/packaging/run.sh
# Reliability and security passes: libFuzzer targets (short: FUZZ_SECONDS each, default 10
# here), ThreadSanitizer over the worker engine (build-tsan/), the security suite against
# build/'s aipal-api and libaipalq, and the fault suite against build/'s daemons (its figures
# go to build/meson-logs/fault-results.jsonl; FAULT_TASKS / FAULT_REPS / FAULT_LONG size it).
run_counted fuzz env FUZZ_SECONDS="${FUZZ_SECONDS:-10}" tests/fuzz/run.sh
run_counted tsan tests/tsan/run.sh
run_counted security tests/security/run.sh "$root/build"
run_counted fault tests/fault/run.sh "$root/build"
run_counted load tests/load/run.sh "$root/build"

echo "$passed passed, $failed failed"
((failed == 0))
