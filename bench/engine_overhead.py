#!/usr/bin/env python3
"""Breakpoint-engine overhead: the tracker against the same breakpoints doing nothing, at N and 2N pairs.

Prints, per size, the median time of the bare run (`break *ADDR if 0` at the very addresses the tracker stops at:
allocator entries and return sites, so both make the same number of stops), of the tracked run, their ratio
(target <= 1.3) and the tracked time(2N)/time(N) (target <= 2.2: linear, nothing accumulates).

Usage: python bench/engine_overhead.py [--pairs N] [--repeat R]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

from gdb_runner import ROOT, run_in_gdb

TARGET = ROOT / "c_targets" / "bin" / "churn"


def run(mode: str, pairs: int, addresses: list[str] | None = None) -> dict:
    return run_in_gdb("gdb_side.py", [str(TARGET), str(pairs)], BENCH_MODE=mode,
                      BENCH_ADDRS=json.dumps(addresses or []))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=4000, help="N malloc/free pairs (default 4000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the median is used")
    opts = parser.parse_args()
    subprocess.run(["make", "-s", "-C", str(ROOT / "c_targets")], check=True)
    addresses = run("tracked", 10)["addresses"]
    rows = {}
    for pairs in (opts.pairs, 2 * opts.pairs):
        bare, tracked = [], []
        for _ in range(opts.repeat):  # interleaved, so machine noise hits both alike
            b = run("bare", pairs, addresses)
            t = run("tracked", pairs)
            assert t["allocs"] == pairs, t
            assert b["placed"] == len(addresses), (b, addresses)
            bare.append(b["seconds"])
            tracked.append(t["seconds"])
        rows[pairs] = (statistics.median(bare), statistics.median(tracked), t["stops"])
    print(f"{'pairs':>8} {'stops':>8} {'bare s':>8} {'tracked s':>10} {'tracked/bare':>13}")
    for pairs, (bare_s, tracked_s, stops) in rows.items():
        print(f"{pairs:>8} {stops:>8} {bare_s:>8.2f} {tracked_s:>10.2f} {tracked_s / bare_s:>13.2f}")
    n, n2 = opts.pairs, 2 * opts.pairs
    print(f"tracked time(2N)/time(N) = {rows[n2][1] / rows[n][1]:.2f}   (bare: {rows[n2][0] / rows[n][0]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
