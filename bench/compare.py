#!/usr/bin/env python3
"""Side-by-side table of libaipalq and its peers from JSON-lines results.

Usage: compare.py RESULTS.jsonl... > table.md
Each scenario keeps the best variant of each system (highest jobs/s; lowest
p50 for latency), and libaipalq's ratio to each peer."""
import json
import sys

SCENARIOS = [
    ("enqueue", "enqueue, tasks/s", "max"),
    ("tracked-enqueue", "tracked enqueue (PG row + dispatch), tasks/s", "max"),
    ("enqueue-bulk", "enqueue-bulk, tasks/s", "max"),
    ("drain", "drain, tasks/s", "max"),
    ("tracked-drain", "tracked drain, tasks/s", "max"),
    ("latency", "latency p50 / p99 ms @200/s", "min"),
]


def load(paths):
    rows = []
    for path in paths:
        for line in open(path):
            line = line.strip()
            if line.startswith("{"):
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    return [r for r in rows if "error" not in r]


def best(rows, system, scenario, mode):
    # libaipalq tracks every task: its enqueue and drain are the tracked ones.
    alias = {"tracked-enqueue": "enqueue", "tracked-drain": "drain"}
    want = alias.get(scenario, scenario) if system == "libaipalq" else scenario
    cand = [r for r in rows if r.get("system") == system and r.get("scenario") == want]
    if system == "libaipalq" and scenario in ("enqueue", "tracked-enqueue"):
        cand = [r for r in cand if "async" not in r.get("variant", "")] or cand
    if not cand:
        return None
    if mode == "min":
        return min(cand, key=lambda r: r.get("p50_ms") or 1e9)
    return max(cand, key=lambda r: r.get("jobs_per_s") or 0)


def cell(r, mode):
    if r is None:
        return "—"
    if mode == "min":
        return f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f}"
    return f"{r['jobs_per_s']:,.0f}"


def main():
    rows = load(sys.argv[1:])
    systems = ["libaipalq"] + sorted({r["system"] for r in rows} - {"libaipalq"})
    print("| scenario | " + " | ".join(systems) + " | libaipalq vs best peer |")
    print("|---" * (len(systems) + 2) + "|")
    for scen, label, mode in SCENARIOS:
        ours = best(rows, "libaipalq", scen, mode)
        peers = {s: best(rows, s, scen, mode) for s in systems[1:]}
        cells = [cell(ours, mode)] + [cell(peers[s], mode) for s in systems[1:]]
        ratio = "—"
        have = [p for p in peers.values() if p]
        if ours and have:
            if mode == "min":
                top = min(have, key=lambda r: r["p50_ms"])
                ratio = f"{top['p50_ms'] / ours['p50_ms']:.2f}x faster ({top['system']})"
            else:
                top = max(have, key=lambda r: r["jobs_per_s"])
                ratio = f"{ours['jobs_per_s'] / top['jobs_per_s']:.2f}x ({top['system']})"
        print(f"| {label} | " + " | ".join(cells) + f" | {ratio} |")
    rss = {s: max((r.get("worker_peak_rss_mb") or 0 for r in rows if r.get("system") == s),
                  default=0) for s in systems}
    print("| worker peak RSS, MB | " + " | ".join(f"{rss[s]:.0f}" if rss[s] else "—"
                                                 for s in systems) + " | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
