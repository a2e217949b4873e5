#!/usr/bin/env python3
"""Side-by-side table of libaipalq and its peers from JSON-lines results, with the
targets of issue 9 and whether each is met.

Usage: compare.py RESULTS.jsonl... > table.md

Each scenario keeps the best variant of each system (highest jobs/s or req/s; lowest
p50 for latency). libaipalq's lines may come from two runs of bench/run.sh, before and
after the peers (bench/compare.sh): each variant is then the mean of its two runs
(peak memory: the higher), so that a machine that speeds up or slows down during the
sitting weighs on both sides alike. The ratio column compares libaipalq with the fastest peer that ran the
scenario (the original API stack, seed-fastapi, for the API rows); the target column is
the issue's, and "met" is judged from the same files (same sitting)."""
import json
import sys

QUEUE_PEERS = ("sidekiq", "bullmq", "celery", "graphile-worker", "pg-boss")
SEED_API = "seed-fastapi"


def load(paths):
    rows = []
    for path in paths:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError:
                        pass
    return [r for r in rows if "error" not in r]


def merge_runs(rows):
    """One libaipalq row per (scenario, variant, depth): numbers averaged over the runs
    that produced it, peaks (keys naming rss) the highest; "runs" says how many."""
    out, groups = [], {}
    for r in rows:
        if r.get("system") != "libaipalq":
            out.append(r)
            continue
        groups.setdefault((r.get("scenario"), r.get("variant"), r.get("depth")), []).append(r)
    for rs in groups.values():
        merged = dict(rs[0])
        for key in rs[0]:
            vals = [x.get(key) for x in rs
                    if isinstance(x.get(key), (int, float)) and not isinstance(x.get(key), bool)]
            if vals:
                mean = sum(vals) / len(vals)
                if all(isinstance(v, int) for v in vals):
                    mean = round(mean)
                merged[key] = max(vals) if "rss" in key else mean
        merged["runs"] = len(rs)
        out.append(merged)
    return out


class Results:
    def __init__(self, rows):
        self.rows = rows

    def of(self, system, scenario, pred=None):
        return [r for r in self.rows if r.get("system") == system and r.get("scenario") == scenario
                and (pred is None or pred(r))]

    def best(self, system, scenario, key="jobs_per_s", pred=None):
        cand = [r for r in self.of(system, scenario, pred) if r.get(key) is not None]
        return max(cand, key=lambda r: r[key]) if cand else None

    def lowest(self, system, scenario, key="p50_ms", pred=None):
        cand = [r for r in self.of(system, scenario, pred) if r.get(key) is not None]
        return min(cand, key=lambda r: r[key]) if cand else None


def num(v, digits=0):
    return "—" if v is None else f"{v:,.{digits}f}"


def fmt_rate(r, key="jobs_per_s"):
    return "—" if r is None else num(r.get(key))


def fmt_lat(r):
    return "—" if r is None or r.get("p50_ms") is None else f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f}"


def met(flag):
    return "—" if flag is None else ("met" if flag else "**not met**")


class Table:
    def __init__(self, systems):
        self.systems = systems
        self.lines = []

    def row(self, label, cells, ratio="", target="", ok=None):
        cols = [cells.get(s, "—") for s in self.systems]
        self.lines.append(f"| {label} | " + " | ".join(cols) + f" | {ratio} | {target} | {met(ok)} |")

    def print(self):
        print("| scenario | " + " | ".join(self.systems) + " | libaipalq vs best peer | target | |")
        print("|---" * (len(self.systems) + 4) + "|")
        for line in self.lines:
            print(line)


def rate_row(t, res, label, scenario, peer_scenario=None, ours_pred=None, peers=QUEUE_PEERS,
             factor=None, target="", key="jobs_per_s", peer_filter=None):
    """A throughput row: ours against the fastest of PEERS (in PEER_SCENARIO)."""
    ours = res.best("libaipalq", scenario, key, ours_pred)
    cells = {"libaipalq": fmt_rate(ours, key)}
    top = None
    for s in peers:
        if peer_filter and s not in peer_filter:
            continue
        r = res.best(s, peer_scenario or scenario, key)
        cells[s] = fmt_rate(r, key)
        if r and (top is None or r[key] > top[key]):
            top = r
    ratio, ok = "—", None
    if ours and top and top[key]:
        x = ours[key] / top[key]
        ratio = f"{x:.2f}x ({top['system']})"
        if factor is not None:
            ok = x >= factor
    t.row(label, cells, ratio, target, ok)
    return ours, top


def queue_rows(t, res):
    not_async = lambda r: "async" not in r.get("variant", "")  # noqa: E731
    rate_row(t, res, "enqueue, one at a time, row committed + dispatched, tasks/s", "enqueue",
             ours_pred=not_async, factor=1.0, target="≥ 1.0× fastest peer")
    rate_row(t, res, "enqueue, one at a time, `synchronous_commit=off`, tasks/s", "enqueue",
             ours_pred=lambda r: not not_async(r))
    # libaipalq tracks every task: its tracked enqueue and drain are its enqueue and drain.
    rate_row(t, res, "tracked enqueue (PG row + dispatch), tasks/s", "enqueue", "tracked-enqueue",
             ours_pred=not_async)
    rate_row(t, res, "enqueue-bulk, 1,000 per call, tasks/s", "enqueue-bulk", factor=2.0,
             target="≥ 2× fastest peer's bulk")
    rate_row(t, res, "drain, tasks/s (best variant)", "drain")
    rate_row(t, res, "drain vs graphile-worker, tasks/s", "drain", peer_filter=("graphile-worker",),
             factor=2.0, target="≥ 2× graphile-worker")
    rate_row(t, res, "tracked drain vs Celery, tasks/s", "drain", "tracked-drain",
             peer_filter=("celery",), factor=25.0, target="≥ 25× Celery tracked")

    peers_lat = {}
    top = None
    for s in QUEUE_PEERS:
        r = res.lowest(s, "latency")
        peers_lat[s] = fmt_lat(r)
        if r and (top is None or r["p50_ms"] < top["p50_ms"]):
            top = r
    # The producer's commit comes before the dispatch: a synchronous one is a WAL flush.
    for label, pred in (("latency p50 / p99 ms @200/s", not_async),
                        ("latency p50 / p99 ms @200/s, producer with `synchronous_commit=off`",
                         lambda r: not not_async(r))):
        ours = res.lowest("libaipalq", "latency", pred=pred)
        if ours is None and "off" in label:
            continue
        cells = dict(peers_lat, libaipalq=fmt_lat(ours))
        ratio = (f"{top['p50_ms'] / ours['p50_ms']:.2f}x faster p50 ({top['system']})"
                 if ours and top else "—")
        ok = None if ours is None else ours["p50_ms"] <= 0.5 and ours["p99_ms"] <= 1.0
        t.row(label, cells, ratio, "p50 ≤ 0.5, p99 ≤ 1 ms", ok)

    rss = {}
    for s in ("libaipalq",) + QUEUE_PEERS:
        vals = [r.get("worker_peak_rss_mb") or 0 for r in res.rows if r.get("system") == s]
        rss[s] = max(vals, default=0)
    thread8 = [r["worker_peak_rss_mb"] for r in res.of("libaipalq", "drain")
               if r.get("concurrency") == 8 and r.get("worker_peak_rss_mb")]
    ok = max(thread8) <= 10 if thread8 else None
    t.row("worker peak RSS, MB (ours: thread mode, c8)",
          {s: (f"{max(thread8):.1f}" if s == "libaipalq" and thread8 else
               (f"{v:.0f}" if v else "—")) for s, v in rss.items()}, "", "≤ 10 MB", ok)


def median_drain_by_depth(rows):
    """One drain per depth: the round with the median rate (bench/aipalq_bench.c
    drains in rounds, one line each), with every round's rate beside it."""
    by_depth = {}
    for r in rows:
        by_depth.setdefault(r.get("depth", 0), []).append(r)
    out = []
    for depth in sorted(by_depth):
        rounds = sorted(by_depth[depth], key=lambda r: r["jobs_per_s"])
        mid = dict(rounds[(len(rounds) - 1) // 2])
        mid["rounds"] = [r["jobs_per_s"] for r in by_depth[depth]]
        out.append(mid)
    return out


def scale_rows(t, res):
    drains = median_drain_by_depth(res.of("libaipalq", "scale-drain"))
    if len(drains) >= 2:
        lo, hi = drains[0], drains[-1]
        x = hi["jobs_per_s"] / lo["jobs_per_s"] if lo["jobs_per_s"] else 0
        spread = lambda r: "/".join(f"{v / 1000:.1f}k" for v in r["rounds"])  # noqa: E731
        t.row(f"drain of {hi['n']:,} with {hi['depth']:,} waiting vs {lo['depth']:,}, tasks/s"
              f" (median of {len(hi['rounds'])} rounds)",
              {"libaipalq": f"{hi['jobs_per_s']:,.0f} vs {lo['jobs_per_s']:,.0f}"
                            f" (rounds {spread(hi)} vs {spread(lo)})"},
              f"{x:.0%} of the shallow queue's rate", "≥ 90%", x >= 0.9)
    elif drains:
        r = drains[0]
        t.row(f"drain of {r['n']:,} with {r['depth']:,} waiting, tasks/s",
              {"libaipalq": num(r["jobs_per_s"])}, "(run SCALE=1 for the deep queue)", "≥ 90%")
    for scen, what in (("scale-enqueue", "enqueue one at a time"),
                       ("scale-enqueue-bulk", "enqueue-bulk")):
        rs = sorted(res.of("libaipalq", scen), key=lambda r: r.get("depth", 0))
        if len(rs) >= 2:
            lo, hi = rs[0], rs[-1]
            cost = lambda r: r["cpu_us_per_task"]  # noqa: E731
            t.row(f"{what} at {hi['depth']:,} vs {lo['depth']:,} waiting, tasks/s (CPU µs/task)",
                  {"libaipalq": f"{hi['jobs_per_s']:,.0f} ({cost(hi):.0f}) vs "
                                f"{lo['jobs_per_s']:,.0f} ({cost(lo):.0f})"},
                  f"{hi['jobs_per_s'] / lo['jobs_per_s']:.0%} of the rate", "no growth beyond O(log n)")
    rs = sorted(res.of("libaipalq", "scale-status"), key=lambda r: r.get("rows_in_table", 0))
    if rs:
        r = rs[-1]
        t.row(f"status lookup (aipalq_get) p50 / p99 ms, {r['rows_in_table']:,} rows",
              {"libaipalq": fmt_lat(r)}, f"{rs[0]['p50_ms']:.3f} ms p50 at {rs[0]['rows_in_table']:,} rows"
              if len(rs) > 1 else "")


def api_rows(t, res):
    targets = {
        "health": (None, None, ""),
        "status": (None, 5.0, "≥ 20,000 req/s, p99 ≤ 5 ms"),
        "submit": (10.0, 5.0, "≥ 10× seed, p99 ≤ 5 ms, each a committed row"),
        "list": (10.0, None, "≥ 10× seed"),
    }
    default_api = lambda r: r.get("variant", "aipal-api") == "aipal-api"  # noqa: E731
    for scen in ("health", "status", "list", "submit"):
        factor, p99_max, target = targets[scen]
        ours = res.best("libaipalq", scen, "req_per_s", default_api)
        seed = res.best(SEED_API, scen, "req_per_s")
        cells = {"libaipalq": "—" if ours is None else f"{ours['req_per_s']:,.0f} (p99 {ours['p99_ms']:.1f} ms)",
                 SEED_API: "—" if seed is None else f"{seed['req_per_s']:,.0f} (p99 {seed['p99_ms']:.0f} ms)"}
        ratio, ok = "—", None
        if ours and seed and seed["req_per_s"]:
            ratio = f"{ours['req_per_s'] / seed['req_per_s']:.1f}x ({SEED_API})"
        if ours:
            ok = ours.get("errors") == 0
            if scen == "status":
                ok = ok and ours["req_per_s"] >= 20000
            elif factor is not None:
                ok = ok and seed is not None and ours["req_per_s"] >= factor * seed["req_per_s"]
            if p99_max is not None:
                ok = ok and ours["p99_ms"] <= p99_max
            if scen == "submit":
                ok = ok and ours.get("verified") is True
            if (scen == "health" and not target) or (factor is not None and seed is None):
                ok = None  # nothing to judge against: seedapi did not run
        t.row(f"API {scen}, req/s, 64 connections", cells, ratio, target, ok)
    for r in res.of("libaipalq", "status", lambda r: not default_api(r)):
        cell = (f"{r['req_per_s']:,.0f} (p99 {r['p99_ms']:.1f} ms)" if r.get("req_per_s")
                else f"failed: {r.get('notes') or 'no result'}")
        t.row(f"API status with {r.get('rows_in_table', 0):,} rows, req/s",
              {"libaipalq": cell}, "", "", None if r.get("req_per_s") else False)
    ours = [r.get("api_peak_rss_mb") for r in res.rows
            if r.get("system") == "libaipalq" and r.get("api_peak_rss_mb")]
    seed = [r.get("api_rss_mb") for r in res.rows if r.get("system") == SEED_API and r.get("api_rss_mb")]
    cells = {"libaipalq": f"{max(ours):.1f} (peak)" if ours else "—",
             SEED_API: f"{max(seed):.0f}" if seed else "—"}
    t.row("API resident memory under load, MB", cells, "", "≤ 20 MB", max(ours) <= 20 if ours else None)


def cpu_rows(t, res):
    cells = {}
    for scen in ("enqueue", "enqueue-bulk", "drain"):
        pred = (lambda r: "async" not in r.get("variant", "")) if scen == "enqueue" else None
        r = res.best("libaipalq", scen, pred=pred)
        if r and r.get("cpu_us_per_task") is not None:
            cells[scen] = f"{scen} {r['cpu_us_per_task']:.0f}"
    if cells:
        t.row("CPU µs per task (worker or producer + Redis + PostgreSQL), best variant",
              {"libaipalq": ", ".join(cells.values())}, "", "")
    rec = res.of("libaipalq", "record")
    if rec:
        r = rec[0]
        t.row(f"PostgreSQL CPU µs per recorded completion ({r.get('variant')}), "
              "against plain SQL making the same writes",
              {"libaipalq": f"{r['pg_cpu_us_per_task']:.1f} (plain SQL "
                            f"{r['plain_sql_pg_cpu_us_per_task']:.1f})"},
              f"{r['vs_plain_sql']:.2f}x plain SQL", "")


def main():
    res = Results(merge_runs(load(sys.argv[1:])))
    present = {r["system"] for r in res.rows}
    systems = ["libaipalq"] + [s for s in QUEUE_PEERS + (SEED_API,) if s in present]
    systems += sorted(present - set(systems))
    t = Table(systems)
    queue_rows(t, res)
    scale_rows(t, res)
    api_rows(t, res)
    cpu_rows(t, res)
    t.print()
    runs = max((r.get("runs", 1) for r in res.rows if r.get("system") == "libaipalq"), default=1)
    if runs > 1:
        print(f"\nlibaipalq: the mean of its {runs} runs (bench/run.sh before and after the peers).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
