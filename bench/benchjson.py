#!/usr/bin/python3
"""One row format for every benchmark, so bench/all can make one table.

A benchmark that is given BENCH_JSON=FILE appends its rows to FILE (one JSON
object per line). A row compares hull with its peer on one path:

    {"bench": "run_true", "path": "hull run /bin/true", "unit": "ms",
     "hull": 4.1, "peer": 8.9, "peer_name": "crun", "ratio": 0.46,
     "goal": "<= 0.5", "met": true, "note": "..."}

`ratio` is hull / peer unless the row says otherwise in `note`; `goal` is
an operator and a number ("<= 0.5", ">= 1.5"), or "" when the row is only
reported. `met` is null when there is no goal or no peer.

From Python:  import benchjson; benchjson.row("run_true", "hull run /bin/true",
                  hull=4.1, peer=8.9, peer_name="crun", unit="ms", goal="<= 0.5")
From a shell: bench/benchjson.py row --bench run_true --path '...' --hull 4.1 \\
                  --peer 8.9 --peer-name crun --unit ms --goal '<= 0.5'
Without BENCH_JSON both print the row's verdict line and write nothing.
"""
import argparse
import json
import os
import sys


def verdict(ratio, goal):
    if ratio is None or not goal:
        return None
    op, num = goal.split()
    num = float(num)
    return {"<=": ratio <= num, ">=": ratio >= num, "<": ratio < num, ">": ratio > num}[op]


def row(bench, path, *, hull, peer=None, peer_name="", unit="", goal="", ratio=None, note=""):
    """Record one comparison; returns the row. ratio defaults to hull / peer."""
    if ratio is None and peer not in (None, 0) and hull is not None:
        ratio = hull / peer
    r = {"bench": bench, "path": path, "unit": unit, "hull": hull, "peer": peer,
         "peer_name": peer_name, "ratio": None if ratio is None else round(ratio, 4),
         "goal": goal, "met": verdict(ratio, goal), "note": note}
    status = {True: "MET", False: "NOT MET", None: "reported"}[r["met"]]
    shown = "-" if ratio is None else f"{ratio:.3f}"
    print(f"  [{bench}] {path}: ratio {shown} (goal {goal or '-'}) {status}", file=sys.stderr)
    out = os.environ.get("BENCH_JSON")
    if out:
        with open(out, "a") as f:
            f.write(json.dumps(r) + "\n")
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("row", help="record one comparison")
    p.add_argument("--bench", required=True)
    p.add_argument("--path", required=True)
    p.add_argument("--hull", type=float, required=True)
    p.add_argument("--peer", type=float)
    p.add_argument("--peer-name", default="")
    p.add_argument("--unit", default="")
    p.add_argument("--goal", default="")
    p.add_argument("--ratio", type=float)
    p.add_argument("--note", default="")
    a = ap.parse_args()
    row(a.bench, a.path, hull=a.hull, peer=a.peer, peer_name=a.peer_name, unit=a.unit,
        goal=a.goal, ratio=a.ratio, note=a.note)


if __name__ == "__main__":
    main()
