#!/usr/bin/env python3
"""(c) 1M live blocks end to end (track, scan, report), measured side by side in one run, plus GDB's peak memory.

The program (bench/c/many_blocks.c) allocates N 32-byte blocks, keeps every other one in a global array and exits
with all N live: half still reachable, half definitely lost. Columns: native; the recorder alone (LD_PRELOAD, no
GDB: its in-process cost); gdb-memleak with the recorder engine (`--engine agent`: tracking, the reachability scan
at exit and the text report); valgrind memcheck (`--leak-check=full`, its own scan and loss records); heaptrack
(recording, then `heaptrack_print` for its report; heaptrack does no reachability scan); gdb-memleak's breakpoint
engine, run once on --breakpoint-blocks blocks and scaled linearly (marked `~`: two GDB stops per allocation).
Each figure is the median of --repeat runs, interleaved so that machine noise hits every column alike; wall and CPU
seconds (CPU of the tool and every process it reaped: on a shared machine the wall time is mostly waiting for a
core). Compare wall times: the batch CLI lets each process go at its `_exit` (detached), so the program's CPU is no
longer counted in gdb-memleak's column.

GDB's peak RSS comes from GDB itself: a `--gdb` wrapper makes GDB's Python write /proc/self/status (VmHWM) when
GDB exits; divided by N it is the issue's "bytes per live block" (target <= 200).

Usage: python bench/live_blocks_end_to_end.py [--blocks 1000000] [--repeat 3] [--breakpoint-blocks 2000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import programs
from recorder_vs_peers import build, timed

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "gdb_memleak.cli.main", "--error-exitcode", "0"]

WRAPPER = """#!/bin/sh
exec {gdb} -iex "python import atexit; atexit.register(lambda: open('{out}', 'w').write(\\
open('/proc/self/status').read()))" "$@"
"""


def gdb_peak_kib(status_file: str) -> int:
    """VmHWM (peak resident set) of the GDB that wrote `status_file`, in KiB."""
    for line in Path(status_file).read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM in {status_file}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=1_000_000, help="live blocks at exit (default 1M)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per column; the median is used (default 3)")
    parser.add_argument("--breakpoint-blocks", type=int, default=2000,
                        help="blocks run under the breakpoint engine, scaled to --blocks (default 2000)")
    opts = parser.parse_args()
    gdb = shutil.which("gdb")
    if gdb is None:
        print("gdb not found", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
        program = str(programs.build("many_blocks", tmp))
        status = os.path.join(tmp, "gdb-status")
        wrapper = os.path.join(tmp, "gdb")
        Path(wrapper).write_text(WRAPPER.format(gdb=gdb, out=status))
        os.chmod(wrapper, 0o755)
        argv = [program, str(opts.blocks)]
        preload = dict(os.environ, LD_PRELOAD=str(build.ensure_built()))
        runs: dict[str, list[tuple[float, float]]] = {"native": [], "recorder": [], "agent": [], "valgrind": [],
                                                      "heaptrack": [], "breakpoint": []}
        peaks: list[int] = []
        # GDB's own footprint (Python, numpy, the program's symbols) measured on the same program with 10 blocks: what
        # the million blocks add on top of it is the cost per block
        subprocess.run([*CLI, "--gdb", wrapper, "--engine", "agent", "--", program, "10"], cwd=str(ROOT),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        baseline = gdb_peak_kib(status)
        for _ in range(opts.repeat):
            runs["native"].append(timed(argv))
            runs["recorder"].append(timed(argv, env=preload))
            runs["agent"].append(timed([*CLI, "--gdb", wrapper, "--engine", "agent", "--", *argv], cwd=str(ROOT)))
            peaks.append(gdb_peak_kib(status))
            if shutil.which("valgrind"):
                runs["valgrind"].append(timed(["valgrind", "-q", "--leak-check=full", "--run-libc-freeres=no",
                                               "--run-cxx-freeres=no", *argv]))
            if shutil.which("heaptrack") and shutil.which("heaptrack_print"):
                data = os.path.join(tmp, "ht")
                record = timed(["heaptrack", "-o", data, *argv])
                recorded = next(str(p) for p in Path(tmp).glob("ht*") if p.is_file())
                report = timed(["heaptrack_print", recorded])
                runs["heaptrack"].append((record[0] + report[0], record[1] + report[1]))
                for p in Path(tmp).glob("ht*"):
                    p.unlink()
        small = timed([*CLI, "--engine", "breakpoint", "--", program, str(opts.breakpoint_blocks)], cwd=str(ROOT))
        scale = opts.blocks / opts.breakpoint_blocks
        runs["breakpoint"].append((small[0] * scale, small[1] * scale))
    medians = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in runs.items()
               if v}
    names = {"native": "native", "recorder": "recorder (preload)", "agent": "gdb-memleak agent",
             "valgrind": "valgrind", "heaptrack": "heaptrack", "breakpoint": "breakpoint engine~"}
    print(f"(c) {opts.blocks:,} live blocks at exit, end to end (median of {opts.repeat}; x = ratio to native)")
    print(f"{'':<14}" + "".join(f"{names[c]:>24}" for c in medians))
    for index, what in ((0, "wall s"), (1, "CPU s")):
        native = max(medians["native"][index], 1e-3)
        print(f"{what:<14}" + "".join(f"{m[index]:11.2f} {m[index] / native:9.1f}x" for m in medians.values()))
    for index, what in ((0, "wall"), (1, "CPU")):
        if "valgrind" in medians:
            agent, vg = medians["agent"][index], medians["valgrind"][index]
            line = f"gdb-memleak agent / valgrind ({what}) = {agent / vg:.2f}"
            if "heaptrack" in medians:
                line += f", / heaptrack = {agent / medians['heaptrack'][index]:.2f}"
            print(line)
    peak = statistics.median(peaks)
    print(f"GDB peak RSS: {peak / 1024:.0f} MiB = {peak * 1024 / opts.blocks:.0f} bytes per live block "
          f"(issue target <= 200); with 10 blocks {baseline / 1024:.0f} MiB, so the blocks add "
          f"{(peak - baseline) * 1024 / opts.blocks:.0f} bytes each")
    print(f"~ breakpoint engine measured at {opts.breakpoint_blocks:,} blocks, once, and scaled linearly; "
          "load average now: " + " ".join(f"{x:.1f}" for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
