#!/usr/bin/env bash
# Runs libaipalq's benchmarks and the peers' (../shared/bench/run-peer.sh) in one sitting and
# prints the side-by-side table with ratios and the targets of issue 9 (bench/compare.py).
# Ours: every scenario of bench/run.sh, the API ones and the 1,000,000-task scale scenario
# included (SCALE=0 leaves that out, ~5 minutes less). Peers: the queues and the original API stack (seedapi).
# Takes ~35 minutes; run it alone on the machine. Results go to bench/results/DATE/*.jsonl.
# Usage: bench/compare.sh [PEER...]      default peers: sidekiq bullmq pgqueues celery seedapi
#        BENCH_OUT=bench/results/NAME bench/compare.sh   another directory than today's date
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
peers=("$@")
((${#peers[@]} > 0)) || peers=(sidekiq bullmq pgqueues celery seedapi)
# The same wrk duration for our API and the original's (seedapi reads DURATION).
export DURATION=${DURATION:-15}
export SCALE=${SCALE:-1}
export API_DURATION=${API_DURATION:-$DURATION}
out=${BENCH_OUT:-bench/results/$(date -u +%Y-%m-%d)}
mkdir -p "$out"
bench/run.sh >"$out/libaipalq.jsonl" || echo "compare: bench/run.sh failed (see its stderr)" >&2
for p in "${peers[@]}"; do
  ../shared/bench/run-peer.sh "$p" >"$out/$p.jsonl" || echo "compare: peer $p failed" >&2
done
python3 bench/compare.py "$out"/*.jsonl | tee "$out/table.md"
