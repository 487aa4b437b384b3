#!/usr/bin/env python3
"""Reachability scan of 1M live blocks: gdb-memleak's scan against valgrind's leak check on the same program,
side by side in one run (interleaved repeats, medians).

valgrind's leak-check time is read from its own time stamps (HEAP SUMMARY to LEAK SUMMARY: its pointer search and
loss records, after the program has ended); ours is one scan of the stopped process (reading its memory through
/proc, classifying every block), with numpy (core/scan/numpy_scan.py) fed the blocks as arrays (as the recorder's
columnar table hands them over), with numpy fed a dict, and in pure Python. numpy's import, once per GDB session, is
shown apart. BENCH_PROFILE=FILE in the environment saves a cProfile of each GDB-side scan there (the last run's stays).

Usage: python bench/scan_vs_valgrind.py [--blocks N] [--repeat 3] [--no-python] [--no-dict]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

from gdb_runner import ROOT, run_in_gdb

BIN = ROOT / "bench" / "c" / "many_blocks"


STAMP = re.compile(r"^==(\d+):(\d+):(\d+):(\d+\.\d+) \d+== (HEAP|LEAK) SUMMARY:", re.M)
KIND_LINE = re.compile(r"(definitely|indirectly|possibly) lost: ([\d,]+) bytes in ([\d,]+) blocks|"
                       r"still (reachable): ([\d,]+) bytes in ([\d,]+) blocks")
KIND_OF_WORD = {"definitely": "definite", "indirectly": "indirect", "possibly": "possible", "reachable": "reachable"}


def valgrind_leak_check_seconds(blocks: int) -> tuple[float, float, dict[str, int]]:
    """(leak check, whole run, blocks per kind): the leak check is the time between valgrind's HEAP SUMMARY and
    LEAK SUMMARY lines (`--time-stamp=yes`), i.e. the pointer search and the loss records, after the program has
    ended."""
    start = time.perf_counter()
    proc = subprocess.run(["valgrind", "--leak-check=full", "--time-stamp=yes", "--run-libc-freeres=no",
                           "--run-cxx-freeres=no", str(BIN), str(blocks)], check=True, capture_output=True, text=True)
    whole = time.perf_counter() - start
    stamps = {m[4]: ((int(m[0]) * 24 + int(m[1])) * 60 + int(m[2])) * 60 + float(m[3])
              for m in STAMP.findall(proc.stderr)}
    kinds = {}
    for m in KIND_LINE.finditer(proc.stderr):
        word, count = (m[1], m[3]) if m[1] else (m[4], m[6])
        kinds[KIND_OF_WORD[word]] = int(count.replace(",", ""))
    return stamps["LEAK"] - stamps["HEAP"], whole, kinds


def ours(blocks: int, backend: str) -> dict:
    """One scan in GDB; backend "numpy" (blocks as arrays, as the recorder's table hands them over), "numpy-dict"
    (from a dict: the arrays built inside the timed scan) or "python"."""
    name, _, given = backend.partition("-")
    return run_in_gdb("scan_gdb_side.py", [str(BIN), str(blocks)], BENCH_SCAN_BACKEND=name,
                      BENCH_SCAN_INPUT=given or "arrays")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per column; the median is used (default 3)")
    parser.add_argument("--no-python", action="store_true", help="skip the pure-Python scan")
    parser.add_argument("--no-dict", action="store_true", help="skip the numpy scan fed a dict")
    opts = parser.parse_args()
    subprocess.run(["gcc", "-O1", "-g", "-o", str(BIN), str(BIN) + ".c"], check=True)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    backends = ["numpy"] + ([] if opts.no_dict else ["numpy-dict"]) + ([] if opts.no_python else ["python"])
    runs: dict[str, list[dict]] = {b: [] for b in backends}
    leak_checks: list[float] = []
    wholes: list[float] = []
    vg_kinds: dict[str, int] = {}
    for _ in range(opts.repeat):  # interleaved, so machine noise hits every column alike
        for backend in backends:
            runs[backend].append(ours(opts.blocks, backend))
        vg, whole, vg_kinds = valgrind_leak_check_seconds(opts.blocks)
        leak_checks.append(vg)
        wholes.append(whole)
    vg = statistics.median(leak_checks)
    first = runs["numpy"][0]
    print(f"blocks scanned: {first['blocks']:,}   our LEAK SUMMARY: "
          + ", ".join(f"{k} {v['blocks']:,}" for k, v in first["summary"].items()))
    # valgrind checks after main returned, we at ready(): the last block is still in a register then (reachable
    # for us, definitely lost for valgrind), and valgrind also counts the pointer array (reachable), not a 32-byte
    # block of the heap walk
    print("valgrind's LEAK SUMMARY at exit: " + ", ".join(f"{k} {vg_kinds.get(k, 0):,}" for k in first["summary"])
          + "  (expected: ours at ready() has 1 definite fewer; valgrind counts the held array)")
    print(f"valgrind leak check: {vg:.2f} s  (whole valgrind run {statistics.median(wholes):.2f} s)")
    for backend, results in runs.items():
        if results[0]["backend"] != backend.partition("-")[0]:
            print(f"gdb-memleak scan ({backend}): not available (ran {results[0]['backend']})")
            continue
        seconds = statistics.median(r["seconds"] for r in results)
        prepare = statistics.median(r["prepare"] for r in results)
        imported = statistics.median(r["import"] for r in results)
        print(f"gdb-memleak scan ({backend}): {seconds:.2f} s (preparing roots {prepare:.2f} s, classifying "
              f"{seconds - prepare:.2f} s; numpy import once per session {imported:.2f} s)   "
              + (f"ours / valgrind = {seconds / vg:.2f}" if vg else ""))
    grown = statistics.median(r["peak_after_kib"] - r["peak_before_kib"] for r in runs["numpy"])
    print(f"GDB's peak RSS grew by {grown / 1024:.0f} MiB during the numpy scan = {grown * 1024 / opts.blocks:.0f} "
          f"bytes per block (the memory read, the arrays, the kinds)")
    print(f"median of {opts.repeat} runs each; load average before: {load}, after: "
          + " ".join(f"{x:.1f}" for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
