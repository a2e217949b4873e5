#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ with clang (ASan + UBSan) and runs each one:
# first over its committed corpus (the regression inputs: any crash there fails at once), then
# fuzzing for FUZZ_SECONDS (default 20) from that corpus. Fails on any crash, leak, sanitizer
# report, timeout or oracle mismatch. Targets run one at a time (the machine is shared).
#
# Usage: tests/fuzz/run.sh [TARGET...]          (default: every target)
# Environment:
#   FUZZ_SECONDS   fuzzing time per target (0: replay the corpus only)
#   FUZZ_BUILD     build directory (default build-fuzz, at the repository root)
#   AIPALQ_DATABASE_URL  when set (scripts/services.sh), the JSON checks are also compared with
#                  PostgreSQL's jsonb over the corpora (pg_crosscheck.py)
#   CC             a clang with libFuzzer (default clang)
# New interesting inputs go to FUZZ_BUILD/work/TARGET (never into the committed corpus); crash
# inputs go to FUZZ_BUILD/artifacts/. Keep a crash as a regression input by copying it into
# tests/fuzz/corpus/TARGET/ once it is fixed.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

seconds=${FUZZ_SECONDS:-20}
build=${FUZZ_BUILD:-build-fuzz}
cc=${CC:-clang}
case $cc in *clang*) ;; *) cc=clang ;; esac
mkdir -p "$build/work" "$build/artifacts" "$build/logs"

deps=(hiredis libpq libcjson libmicrohttpd)
cflags=(-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
  -fno-sanitize-recover=all -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter
  -Iinclude -Ilib -Idaemons/common -Idaemons/api -Itests/fuzz)
# shellcheck disable=SC2207
cflags+=($(pkg-config --cflags "${deps[@]}"))
# shellcheck disable=SC2207
libs=($(pkg-config --libs libcjson) -lm -lpthread)

# target | sources beyond tests/fuzz/TARGET.c | -max_len
targets=(
  "fuzz_redis_url|lib/url.c lib/util.c|512"
  "fuzz_params|lib/params.c lib/util.c lib/status.c daemons/api/util.c|4096"
  "fuzz_result_json|lib/params.c lib/util.c lib/status.c|4096"
  "fuzz_catalog|daemons/common/catalog_data.c daemons/common/catalog_validate.c daemons/common/catalog_schema.c lib/params.c lib/util.c daemons/api/util.c|4096"
  "fuzz_api|@api|4096"
)

# The API target links the daemon's request-handling units (see fuzz_api.c); the handlers it
# does not link answer through weak stubs generated from daemons/api/handlers.h.
api_sources() {
  local stubs=$build/api_handler_stubs.c
  {
    echo '#include "handlers.h"'
    echo '#include "respond.h"'
    sed -n 's/^void \(h_[a-z0-9_]*\)(api_request \*rq);$/__attribute__((weak)) void \1(api_request *rq) { respond_json(rq, 200, cJSON_CreateObject()); }/p' \
      daemons/api/handlers.h
  } >"$stubs"
  echo daemons/api/request.c daemons/api/router.c daemons/api/routes.c daemons/api/auth.c \
    daemons/api/cors.c daemons/api/ratelimit.c daemons/api/respond.c daemons/api/fields.c \
    daemons/api/submit.c daemons/api/metrics.c daemons/api/util.c daemons/api/h_tasks.c \
    daemons/api/h_submit.c daemons/api/task_body.c "$stubs" \
    daemons/common/catalog_data.c daemons/common/catalog_validate.c \
    daemons/common/catalog_schema.c lib/params.c lib/util.c lib/opts.c lib/state.c lib/status.c
}

wanted=("$@")
passed=0 failed=0
failures=()

for spec in "${targets[@]}"; do
  IFS='|' read -r name sources maxlen <<<"$spec"
  if ((${#wanted[@]})) && [[ " ${wanted[*]} " != *" $name "* ]]; then
    continue
  fi
  [[ $sources == @api ]] && sources=$(api_sources)
  log=$build/logs/$name.log
  : >"$log"
  # shellcheck disable=SC2086
  if ! "$cc" "${cflags[@]}" -o "$build/$name" "tests/fuzz/$name.c" $sources "${libs[@]}" \
      >>"$log" 2>&1; then
    echo "fuzz $name: FAIL (build; see $log)"
    tail -n 20 "$log" >&2
    failed=$((failed + 1)) failures+=("$name")
    continue
  fi
  corpus=tests/fuzz/corpus/$name
  work=$build/work/$name
  mkdir -p "$corpus" "$work"
  opts=(-max_len="$maxlen" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
    -artifact_prefix="$build/artifacts/$name-")
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  # 1. every committed input once
  rc=0
  "$build/$name" "${opts[@]}" -runs=0 "$corpus" >>"$log" 2>&1 || rc=$?
  if ((rc == 0 && seconds > 0)); then
    # 2. fuzz from it, new inputs into the work directory
    "$build/$name" "${opts[@]}" -max_total_time="$seconds" "$work" "$corpus" >>"$log" 2>&1 || rc=$?
  fi
  runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -n 1 | awk '{print $2}')
  if ((rc == 0)); then
    echo "fuzz $name: ok (${runs:-0} runs, ${seconds}s, corpus $(find "$corpus" -type f | wc -l) files)"
    passed=$((passed + 1))
  else
    echo "fuzz $name: FAIL (exit $rc; log $log)"
    grep -E 'ERROR|SUMMARY|fuzz_[a-z_]+:|Test unit written' "$log" | head -n 20 >&2
    failed=$((failed + 1)) failures+=("$name")
  fi
done

# The JSON checks against the real thing: the library must refuse whatever PostgreSQL's jsonb
# refuses (a result jsonb refuses would stall the worker's group commit). Over the committed
# corpora and up to PG_CROSSCHECK_MAX (default 300) of this run's new inputs per target.
if [[ -n ${AIPALQ_DATABASE_URL:-} ]] && command -v psql >/dev/null &&
  { ((${#wanted[@]} == 0)) || [[ " ${wanted[*]} " == *" fuzz_params "* || " ${wanted[*]} " == *" fuzz_result_json "* ]]; }; then
  log=$build/logs/pg_crosscheck.log
  max=${PG_CROSSCHECK_MAX:-300}
  # shellcheck disable=SC2046
  if "$cc" -g -O1 -fsanitize=address,undefined -std=c11 -D_GNU_SOURCE -Iinclude -Ilib \
      $(pkg-config --cflags "${deps[@]}") -o "$build/json_check" tests/fuzz/json_check.c \
      lib/params.c lib/util.c lib/status.c "${libs[@]}" >"$log" 2>&1 &&
    python3 tests/fuzz/pg_crosscheck.py "$build/json_check" \
      $(find tests/fuzz/corpus/fuzz_params "$build/work/fuzz_params" -type f 2>/dev/null | head -n "$max") \
      >>"$log" 2>&1 &&
    python3 tests/fuzz/pg_crosscheck.py "$build/json_check" --skip 2 \
      $(find tests/fuzz/corpus/fuzz_result_json "$build/work/fuzz_result_json" -type f 2>/dev/null | head -n "$max") \
      >>"$log" 2>&1; then
    echo "fuzz pg_crosscheck: ok ($(grep -h '^pg_crosscheck:' "$log" | tr '\n' ' '))"
    passed=$((passed + 1))
  else
    echo "fuzz pg_crosscheck: FAIL (log $log)"
    grep -E 'MISMATCH|error' "$log" | head -n 20 >&2
    failed=$((failed + 1)) failures+=(pg_crosscheck)
  fi
fi

((failed == 0)) || echo "failed targets: ${failures[*]}"
echo "$passed passed, $failed failed"
((failed == 0))
