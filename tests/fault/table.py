"""Prints the docs/RELIABILITY.md table from the JSON lines of tests/fault/run.sh.

Usage: python3 tests/fault/table.py [RESULTS.jsonl]   (default build/meson-logs/fault-results.jsonl)
The last line of each scenario wins (a file appended to by several runs shows the newest).
"""

import json
import sys
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[2] / "build" / "meson-logs" / "fault-results.jsonl"


def seconds(value: object) -> str:
    return "-" if value is None else f"{float(value):.1f} s"  # type: ignore[arg-type]


def row(r: dict) -> str:
    reruns = r.get("handler_reruns", 0)
    recovery = (f"{seconds(r.get('recovery_s'))} (progress again after "
                f"{seconds(r.get('resume_s'))}, tasks hit final after {seconds(r.get('hit_final_s'))}")
    if (r.get("fault_s") or 0) >= 0.3:
        recovery += f"; injecting the fault took {seconds(r['fault_s'])}"
    recovery += ")"
    return (f"| {r['scenario']} | {r['repetitions']} | {r['tasks']} | {r['lost']} | "
            f"{r['duplicated_completions']} (handler re-runs: {reruns}) | {recovery} |")


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    latest = {}
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            latest[r["scenario"]] = r
    print("| scenario | repetitions | tasks involved | tasks lost | tasks duplicated | recovery time |")
    print("|---|---|---|---|---|---|")
    for r in latest.values():
        print(row(r))


if __name__ == "__main__":
    main()
