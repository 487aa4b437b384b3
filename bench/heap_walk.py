#!/usr/bin/env python3
"""Attach plus heap walk of a process with 1M live blocks (issue 18 item 4: target <= 1 s).

bench/c/live_million.c makes --blocks live blocks of mixed small sizes (one in 8 freed between them) and waits;
GDB attaches (`gdb -p`), loads gdb-memleak, walks glibc's heap (gdb/heapwalk.py over core/glibc_heap.py) and
detaches. Printed: the wall time of the whole GDB run (attach, load, walk, detach) and of the walk alone inside it,
with their CPU times (on a loaded machine the wall time is mostly waiting for a core), and a bare `gdb -p` (attach
and detach, nothing loaded) for comparison; medians of --repeat runs, each against the 1 s target; and the blocks
found (the program's live blocks: --blocks, its bookkeeping array and stdout's buffer).

Usage: python bench/heap_walk.py [--blocks 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import programs  # noqa: E402
from gdb_memleak.cli.main import LOADER, dependency_dirs  # noqa: E402

TARGET = 1.0
INSIDE = """python
import json, time, gdb
from gdb_memleak.gdb import heapwalk
started, cpu = time.perf_counter(), time.process_time()
found = heapwalk.walk(gdb.selected_inferior())
took, cpu = time.perf_counter() - started, time.process_time() - cpu
if isinstance(found, str):
    print("BENCH " + json.dumps({"walk": took, "walk_cpu": cpu, "blocks": 0, "status": found}))
else:
    print("BENCH " + json.dumps({"walk": took, "walk_cpu": cpu, "blocks": len(found.addresses),
                                 "status": found.status}))
end
"""


def timed_gdb(pid: int, extra: list[str]) -> tuple[float, float, str]:
    """(wall, CPU of GDB, its output) of one `gdb -p PID` run with `extra` arguments."""
    environment = dict(os.environ, GDB_MEMLEAK_PYTHONPATH=os.pathsep.join([str(ROOT), *dependency_dirs()]))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(["gdb", "-nx", "-q", "-batch", "-iex", "set debuginfod enabled off", "-p", str(pid),
                           *extra], capture_output=True, text=True, env=environment, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, cpu, proc.stdout + proc.stderr


def attach_and_walk(pid: int, script: Path) -> tuple[float, float, dict]:
    wall, cpu, output = timed_gdb(pid, ["-ex", f"source {LOADER}", "-x", str(script)])
    line = next((text for text in output.splitlines() if text.startswith("BENCH ")), None)
    if line is None:
        raise SystemExit(f"no BENCH line from GDB:\n{output}")
    return wall, cpu, json.loads(line[len("BENCH "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        program = programs.build("live_million", tmp)
        script = Path(tmp) / "walk.gdb"
        script.write_text(INSIDE)
        target = subprocess.Popen([str(program), str(options.blocks)], stdout=subprocess.PIPE, text=True)
        try:
            assert target.stdout is not None and target.stdout.readline().strip() == "ready"
            runs, bare = [], []
            for _ in range(options.repeat):  # interleaved: machine noise hits both alike
                runs.append(attach_and_walk(target.pid, script))
                bare.append(timed_gdb(target.pid, []))
        finally:
            target.kill()
            target.wait()
    found = runs[-1][2]
    print(f"heap walk of a process with {options.blocks:,} live blocks (median of {options.repeat}; wall / CPU):")
    print(f"  found {found['blocks']:,} blocks, status: {found['status'] or 'whole'}")
    rows = [("attach + load + walk + detach", [r[0] for r in runs], [r[1] for r in runs]),
            ("walk alone (inside GDB)", [r[2]["walk"] for r in runs], [r[2]["walk_cpu"] for r in runs]),
            ("bare gdb -p (attach, detach)", [b[0] for b in bare], [b[1] for b in bare])]
    for name, walls, cpus in rows:
        wall, cpu = statistics.median(walls), statistics.median(cpus)
        print(f"  {name:30} {wall:6.3f} s / {cpu:6.3f} s CPU  ({wall / TARGET:.2f}x / {cpu / TARGET:.2f}x "
              f"the {TARGET:g} s target)")


if __name__ == "__main__":
    main()
