#!/usr/bin/env bash
# The one test command: installs missing packages, builds, starts a private Redis and PostgreSQL
# (scripts/services.sh, stopped again on exit) and runs every test suite:
#   1. meson test in build/ (debugoptimized)
#   2. meson test in build-asan/ (AddressSanitizer + UBSan, leaks detected)
#   3. tests/run_extra.sh, when present and executable (same environment; if its last output
#      line reads "N passed, N failed" those counts are added, otherwise it counts as one suite)
# Ends with "N passed, N failed" (tests, from meson's Ok:/Fail: summaries) and exits non-zero
# on any failure.
#
# Usage: scripts/test.sh [--quick | --asan-only] [-- MESON-TEST-ARGS...]
#   --quick       skip the sanitizer pass
#   --asan-only   only the sanitizer pass
#   e.g. scripts/test.sh --quick -- --suite unit
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

plain=1 asan=1
meson_args=()
while (($# > 0)); do
  case $1 in
    --quick) asan=0 ;;
    --asan-only) plain=0 ;;
    --) shift; meson_args=("$@"); break ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "test.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

passed=0 failed=0

# Counts meson's summary lines (Ok:, Fail:, Unexpected Pass:, Timeout:) in FILE into the totals.
# A meson run that failed without reporting a failing test (build error, no summary) counts as one.
count_meson() {
  local file=$1 rc=$2 ok fail
  read -r ok fail < <(awk '
    /^Ok:/ { ok += $2 }
    /^(Fail|Timeout):/ { fail += $2 }
    /^Unexpected Pass:/ { fail += $3 }
    END { print ok + 0, fail + 0 }' "$file")
  ((rc == 0 || fail > 0)) || fail=1
  passed=$((passed + ok)) failed=$((failed + fail))
}

# run_pass NAME BUILDDIR TIMEOUT-MULTIPLIER [MESON-SETUP-OPTIONS...]
run_pass() {
  local name=$1 builddir=$2 timeout_mult=$3 rc=0
  shift 3
  echo "=== $name: build ($builddir)" >&2
  if ! scripts/build.sh "$builddir" "$@"; then
    echo "=== $name: BUILD FAILED" >&2
    failed=$((failed + 1))
    return 0
  fi
  services_reset
  echo "=== $name: meson test" >&2
  local out=$builddir/meson-logs/test-pass-output.txt
  meson test -C "$builddir" --print-errorlogs --timeout-multiplier "$timeout_mult" "${meson_args[@]}" 2>&1 \
    | tee "$out" || rc=$?
  count_meson "$out" "$rc"
}

scripts/deps.sh

# shellcheck source=scripts/services.sh disable=SC1091
source scripts/services.sh
services_start
services_cleanup_on_exit

if ((plain)); then
  run_pass plain build 1 --buildtype=debugoptimized
fi
if ((asan)); then
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_pass sanitizers build-asan 3 -Db_sanitize=address,undefined -Db_lundef=false
fi

if [[ -x tests/run_extra.sh ]]; then
  echo "=== extra: tests/run_extra.sh" >&2
  services_reset
  rc=0
  extra_out=$(mktemp)
  tests/run_extra.sh 2>&1 | tee "$extra_out" || rc=$?
  last=$(tail -n 1 "$extra_out")
  rm -f "$extra_out"
  if [[ $last =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
    passed=$((passed + BASH_REMATCH[1])) failed=$((failed + BASH_REMATCH[2]))
    ((rc == 0 || BASH_REMATCH[2] > 0)) || failed=$((failed + 1))
  elif ((rc == 0)); then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
  fi
fi

services_stop
echo "$passed passed, $failed failed"
((failed == 0))
