#!/usr/bin/env python3
"""How long a live report stops the program (issue 19 item 1), at 100k and 1M live blocks.

bench/c/live_steady.c makes N live blocks, then runs a steady malloc/free loop for --seconds, timing every
iteration; `gdb-memleak --report-every --period` makes a live report (table read, scan, leak kinds, deltas,
growth sample, text report) every period. Printed per size: how many reports, the pause the driver measured for
each (median and longest, from its "the program was paused" line), and what the program saw: its stalls (loop
gaps over 5 ms), the longest, and the time stalled as a share of its run; beside it the same program under the
CLI without live reports (its stalls are GDB's start-up, the exit report is not in the loop).

Usage: python bench/live_report_pause.py [--sizes 100000,1000000] [--period 1] [--seconds 6]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import programs

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "gdb_memleak.cli.main", "--error-exitcode", "0"]
PAUSED = re.compile(r"the program was paused ([0-9.]+) s")
STALLS = re.compile(r"^stalls (\d+) ([0-9.]+) ([0-9.]+) iterations (\d+)$", re.M)


def run(program: Path, blocks: int, seconds: float, period: float | None) -> dict:
    extra = ["--report-every", str(period)] if period else []
    proc = subprocess.run([*CLI, *extra, str(program), str(blocks), str(seconds)], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)
    stalls = STALLS.search(proc.stdout)
    if proc.returncode != 0 or stalls is None:
        raise SystemExit(f"live_steady {blocks} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr[-2000:]}")
    pauses = [float(p) for p in PAUSED.findall(proc.stderr)]
    return {"pauses": pauses, "stalls": int(stalls.group(1)), "longest_ms": float(stalls.group(2)),
            "stalled_ms": float(stalls.group(3)), "iterations": int(stalls.group(4))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--period", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        program = programs.build("live_steady", tmp)
        print(f"live reports every {args.period:g} s over a {args.seconds:g} s loop "
              "(pause: measured by the driver; stalls: loop gaps > 5 ms seen by the program)")
        print(f"{'live blocks':>12} {'reports':>8} {'pause median':>13} {'pause max':>10} {'stalls':>7} "
              f"{'longest':>9} {'stalled':>8} {'loop rate vs no reports':>24}")
        for blocks in (int(s) for s in args.sizes.split(",")):
            base = run(program, blocks, args.seconds, None)
            live = run(program, blocks, args.seconds, args.period)
            pauses = live["pauses"] or [0.0]
            share = live["stalled_ms"] / 1e3 / args.seconds
            print(f"{blocks:>12,} {len(live['pauses']):>8} {statistics.median(pauses):>12.3f}s "
                  f"{max(pauses):>9.3f}s {live['stalls']:>7} {live['longest_ms']:>7.0f}ms {share:>7.1%} "
                  f"{live['iterations'] / max(base['iterations'], 1):>24.2f}")


if __name__ == "__main__":
    main()
