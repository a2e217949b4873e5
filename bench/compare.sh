#!/usr/bin/env bash
# Runs libaipalq's benchmarks and the peers' (../shared/bench/run-peer.sh) in one sitting and
# prints the side-by-side table with ratios (bench/compare.py). Takes ~30 minutes; run it
# alone on the machine. Results go to bench/results/DATE/*.jsonl.
# Usage: bench/compare.sh [PEER...]      default peers: sidekiq bullmq pgqueues celery
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
peers=("$@")
((${#peers[@]} > 0)) || peers=(sidekiq bullmq pgqueues celery)
out=bench/results/$(date -u +%Y-%m-%d)
mkdir -p "$out"
bench/run.sh >"$out/libaipalq.jsonl"
for p in "${peers[@]}"; do
  ../shared/bench/run-peer.sh "$p" >"$out/$p.jsonl" || echo "compare: peer $p failed" >&2
done
python3 bench/compare.py "$out"/*.jsonl | tee "$out/table.md"
