#!/usr/bin/env python3
"""Reachability scan of 1M live blocks: gdb-memleak's scan against valgrind's leak check on the same program.

valgrind's leak-check time is read from its own time stamps (HEAP SUMMARY to LEAK SUMMARY); ours is the time of
one scan of the stopped process (reading its memory through /proc, classifying every block).

Usage: python bench/scan_vs_valgrind.py [--blocks N]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time

from gdb_runner import ROOT, run_in_gdb

BIN = ROOT / "bench" / "c" / "many_blocks"


STAMP = re.compile(r"^==(\d+):(\d+):(\d+):(\d+\.\d+) \d+== (HEAP|LEAK) SUMMARY:", re.M)


def valgrind_leak_check_seconds(blocks: int) -> tuple[float, float]:
    """(leak check, whole run): the leak check is the time between valgrind's HEAP SUMMARY and LEAK SUMMARY
    lines (`--time-stamp=yes`), i.e. the pointer search and the loss records, after the program has ended."""
    start = time.perf_counter()
    proc = subprocess.run(["valgrind", "--leak-check=full", "--time-stamp=yes", "--run-libc-freeres=no",
                           "--run-cxx-freeres=no", str(BIN), str(blocks)], check=True, capture_output=True, text=True)
    whole = time.perf_counter() - start
    stamps = {m[4]: ((int(m[0]) * 24 + int(m[1])) * 60 + int(m[2])) * 60 + float(m[3])
              for m in STAMP.findall(proc.stderr)}
    return stamps["LEAK"] - stamps["HEAP"], whole


def ours(blocks: int) -> dict:
    return run_in_gdb("scan_gdb_side.py", [str(BIN), str(blocks)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=1_000_000)
    opts = parser.parse_args()
    subprocess.run(["gcc", "-O1", "-g", "-o", str(BIN), str(BIN) + ".c"], check=True)
    result = ours(opts.blocks)
    vg, whole = valgrind_leak_check_seconds(opts.blocks)
    print(f"blocks scanned: {result['blocks']:,}   our LEAK SUMMARY: "
          + ", ".join(f"{k} {v['blocks']:,}" for k, v in result["summary"].items()))
    print(f"gdb-memleak scan: {result['seconds']:.2f} s")
    print(f"valgrind leak check: {vg:.2f} s  (whole valgrind run {whole:.2f} s)")
    print(f"ours / valgrind = {result['seconds'] / vg:.2f}" if vg else "valgrind's leak check took no measurable time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
