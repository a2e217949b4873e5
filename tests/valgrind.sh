#!/usr/bin/env bash
# Runs the unit and integration test programs (Check) under valgrind memcheck, in one process
# each (CK_FORK=no), failing on any memory error and on definite or indirect leaks.
# The integration programs need AIPALQ_REDIS_URL / AIPALQ_DATABASE_URL, as under meson test.
# Usage: tests/valgrind.sh [BUILDDIR]   (default: build/ of this checkout, built already;
#        it must not be a sanitizer build)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
builddir=$(cd "${1:-$root/build}" && pwd)

command -v valgrind >/dev/null || { echo "FAIL: valgrind is not installed (scripts/deps.sh)" >&2; exit 1; }
sanitize=$(meson introspect "$builddir" --buildoptions |
  python3 -c 'import json, sys; print({x["name"]: x["value"] for x in json.load(sys.stdin)}.get("b_sanitize", "none"))')
if [[ $sanitize != none ]]; then
  echo "FAIL: $builddir is built with -fsanitize=$sanitize; valgrind needs a plain build" >&2
  exit 1
fi

# The test programs of the unit and integration suites, from meson's own list (name, then the
# command), skipping wrappers that are not ELF programs.
mapfile -t tests < <(meson introspect "$builddir" --tests | python3 -c '
import json, sys
for t in json.load(sys.stdin):
    suites = {s.split(":")[-1] for s in t["suite"]}
    if suites & {"unit", "integration"}:
        print(t["name"] + "\t" + t["cmd"][0])')

passed=0 failed=0
for entry in "${tests[@]}"; do
  name=${entry%%$'\t'*}
  prog=${entry#*$'\t'}
  if ! head -c 4 "$prog" 2>/dev/null | grep -q 'ELF'; then
    echo "valgrind: skipping $name (not a program: $prog)"
    continue
  fi
  log=$builddir/meson-logs/valgrind-$name.log
  echo "valgrind: $name"
  rc=0
  CK_FORK=no CK_DEFAULT_TIMEOUT=0 LD_LIBRARY_PATH=$builddir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
    valgrind --quiet --leak-check=full --errors-for-leak-kinds=definite,indirect \
    --show-leak-kinds=definite,indirect --error-exitcode=1 --log-file="$log" \
    "$prog" >"$log.out" 2>&1 || rc=$?
  if ((rc == 0)); then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: $name under valgrind (exit status $rc); $log:" >&2
    tail -n 40 "$log.out" >&2 || true
    head -n 80 "$log" >&2 || true
  fi
done
((passed + failed > 0)) || { echo "FAIL: no unit or integration tests found in $builddir" >&2; exit 1; }
echo "valgrind: $passed passed, $failed failed"
((failed == 0))
