#!/usr/bin/env bash
# Checks that libaipalq.so exports exactly its public API:
#   - every exported symbol is declared AIPALQ_API in include/aipal/*.h and listed in
#     lib/libaipalq.map (so no aipalq__ internals, no stray helpers, no library symbols leak);
#   - every symbol listed in the map is exported and declared;
#   - every function of the core headers (aipalq.h, status.h, version.h) is exported.
# A function declared in another header (e.g. worker.h while it is being written) that is
# neither in the map nor exported is skipped with a warning.
# Usage: tests/check_exports.sh SOURCE_ROOT LIBAIPALQ.SO
set -euo pipefail
root=${1:?usage: check_exports.sh SOURCE_ROOT LIBAIPALQ.SO}
lib=${2:?usage: check_exports.sh SOURCE_ROOT LIBAIPALQ.SO}
map=$root/lib/libaipalq.map
core_headers=(aipalq.h status.h version.h)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Defined dynamic symbols, without version suffixes; the version node itself (type A) is not a
# symbol of the API.
nm -D --defined-only "$lib" | awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }' | sort -u >"$tmp/exported"
# Function names of AIPALQ_API declarations: the identifier before the first '('.
for h in "$root"/include/aipal/*.h; do
  sed -nE 's/^AIPALQ_API[^(]*[^A-Za-z0-9_]([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*\(.*/\1/p' "$h" \
    | sed "s|\$| $(basename "$h")|"
done | sort -u >"$tmp/declared_with_header"
cut -d' ' -f1 "$tmp/declared_with_header" | sort -u >"$tmp/declared"
# Symbol lines of the version script ("name;"), whatever node they are in.
sed -E 's|/\*.*\*/||' "$map" | grep -E '^[[:space:]]*[A-Za-z_][A-Za-z0-9_]*[[:space:]]*;[[:space:]]*$' \
  | tr -d ' \t;' | sort -u >"$tmp/mapped"

failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

[[ -s $tmp/exported ]] || fail "no symbols exported by $lib"
[[ -s $tmp/declared ]] || fail "no AIPALQ_API declarations found in $root/include/aipal"

# Set differences of sorted lists.
only_in() { comm -23 "$1" "$2"; }

while read -r sym; do
  [[ -n $sym ]] || continue
  case $sym in aipalq__*) fail "internal symbol exported: $sym" ;; esac
done <"$tmp/exported"
while read -r sym; do
  [[ -n $sym ]] && fail "exported but not declared AIPALQ_API in include/aipal/*.h: $sym"
done < <(only_in "$tmp/exported" "$tmp/declared")
while read -r sym; do
  [[ -n $sym ]] && fail "exported but not listed in lib/libaipalq.map: $sym"
done < <(only_in "$tmp/exported" "$tmp/mapped")
while read -r sym; do
  [[ -n $sym ]] && fail "listed in lib/libaipalq.map but not exported (not defined?): $sym"
done < <(only_in "$tmp/mapped" "$tmp/exported")
while read -r sym; do
  [[ -n $sym ]] && fail "listed in lib/libaipalq.map but not declared in include/aipal/*.h: $sym"
done < <(only_in "$tmp/mapped" "$tmp/declared")

# Declared but neither exported nor in the map: an error for the core headers, skipped with a
# warning for the others (functions being written).
skipped=0
sort -u "$tmp/exported" "$tmp/mapped" >"$tmp/known"
while read -r sym header; do
  [[ -n $sym ]] || continue
  grep -qxF "$sym" "$tmp/known" && continue
  core=0
  for h in "${core_headers[@]}"; do [[ $header == "$h" ]] && core=1; done
  if ((core)); then
    fail "declared in $header but not exported: $sym"
  else
    echo "warning: $sym ($header) is neither in lib/libaipalq.map nor exported; skipped" >&2
    skipped=$((skipped + 1))
  fi
done <"$tmp/declared_with_header"

echo "exports: $(wc -l <"$tmp/exported") exported, $(wc -l <"$tmp/mapped") in the map," \
  "$(wc -l <"$tmp/declared") declared, $skipped skipped, $failures problems"
((failures == 0))
