#!/usr/bin/env bash
# libaipalq's benchmarks: the scenarios of ../shared/bench on private Redis and PostgreSQL
# started by scripts/services.sh with the peers' settings (Redis AOF everysec; PostgreSQL
# defaults, fsync on, shared_buffers=256MB). One JSON line per result on stdout.
# Usage: bench/run.sh            N=20000 LAT_N=2000 LAT_RATE=200 by default
# Run it alone on the machine: it uses both cores.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
N=${N:-20000} LAT_N=${LAT_N:-2000} LAT_RATE=${LAT_RATE:-200}

scripts/deps.sh >&2
scripts/build.sh build-bench --buildtype=release -Dtests=false >&2
# shellcheck source=scripts/services.sh disable=SC1091
source scripts/services.sh
AIPALQ_PG_SHARED_BUFFERS=256MB services_start >&2
services_cleanup_on_exit

bin=build-bench/bench/aipalq_bench
"$bin" enqueue "$N"
ASYNC_COMMIT=1 "$bin" enqueue "$N"
"$bin" enqueue-bulk "$N"
for procs in 1 2; do
  for conc in 8 32; do
    "$bin" drain "$N" "$procs" "$conc"
  done
done
"$bin" latency "$LAT_N" "$LAT_RATE" 8
