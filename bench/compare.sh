#!/usr/bin/env bash
# Runs libaipalq's benchmarks and the peers' (../shared/bench/run-peer.sh) in one sitting and
# prints the side-by-side table with ratios and the targets of issue 9 (bench/compare.py).
# Ours: every scenario of bench/run.sh, the API ones and the 1,000,000-task scale scenario
# included (SCALE=0 leaves that out, ~5 minutes less). Peers: the queues and the original API stack (seedapi).
# Ours runs twice, before and after the peers (AFTER=0: only before), and the table takes the
# mean of the two. Takes ~40 minutes; run it alone on the machine. Results go to
# bench/results/DATE/*.jsonl.
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
# Ours again after the peers: the machine's speed drifts within a sitting (the fifth sitting of
# 2026-11-29 ran the peers ~15 % faster than ours), and the mean of a run before and one after
# them weighs that drift on both sides alike (compare.py averages the two).
if [[ ${AFTER:-1} == 1 ]]; then
  bench/run.sh >"$out/libaipalq-after.jsonl" || echo "compare: bench/run.sh (after) failed" >&2
fi
python3 bench/compare.py "$out"/*.jsonl | tee "$out/table.md"
