"""Runs inside GDB for bench/scan_vs_valgrind.py: times one reachability scan of the live process at `ready()`.

Allocating 1M blocks under the breakpoint engine would take minutes, so the table is filled from the heap itself:
every block is found by walking glibc's chunks from the heap start (the program frees nothing), which gives the
same blocks the tracker would have recorded.
"""

from __future__ import annotations

import cProfile
import json
import os
import time

import gdb

gdb.execute("set pagination off")
gdb.execute(f"source {os.environ['BENCH_LOADER']}")
from gdb_memleak.core.abi import X86_64_SYSV  # noqa: E402
from gdb_memleak.core.procmaps import read_maps  # noqa: E402
from gdb_memleak.core.scan import backend as backends  # noqa: E402
from gdb_memleak.core.scan import numpy_backend  # noqa: E402
from gdb_memleak.gdb.access import RegisterReader  # noqa: E402
from gdb_memleak.gdb.heapscan import HeapScan  # noqa: E402

gdb.execute("break ready")
gdb.execute("run", to_string=True)
inferior = gdb.selected_inferior()
heap = next(m for m in read_maps(inferior.pid) if m.path == "[heap]")
data = inferior.read_memory(heap.start, heap.end - heap.start).tobytes()
blocks = {}
offset = 0
while offset + 16 <= len(data):
    size = int.from_bytes(data[offset + 8:offset + 16], "little") & ~7
    if size < 32 or offset + size > len(data):
        break
    user = heap.start + offset + 16
    if size == 48:  # the 32-byte blocks (chunk of 48); the first chunks are glibc's and the pointer array
        blocks[user] = 32
    offset += size
if os.environ.get("BENCH_SCAN_BACKEND"):
    backends.BACKEND = os.environ["BENCH_SCAN_BACKEND"]
start = time.perf_counter()
fast, why = numpy_backend()  # once per GDB session, at the first scan: timed apart
imported = time.perf_counter() - start


def peak_kib() -> int:
    """GDB's peak resident set so far (VmHWM)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


profiler = cProfile.Profile() if os.environ.get("BENCH_PROFILE") else None
# The recorder's table hands the scan its blocks as arrays (ascending starts, sizes): built here untimed, as the table
# holds them already. BENCH_SCAN_INPUT=dict times the scan from the dict alone (the arrays built inside it).
arrays = None
if fast is not None and backends.BACKEND != "python" and os.environ.get("BENCH_SCAN_INPUT", "arrays") == "arrays":
    import numpy as np

    arrays = fast.Blocks(np.fromiter(blocks, np.int64, len(blocks)), np.fromiter(blocks.values(), np.int64,
                                                                                  len(blocks)), in_order=True)
regs = RegisterReader(X86_64_SYSV)  # the tracking's own, made once per process
before = peak_kib()
if profiler is not None:
    profiler.enable()
start = time.perf_counter()
scan = HeapScan(inferior, blocks, regs, arrays=arrays)
prepared = time.perf_counter()
result = scan.run()
seconds = time.perf_counter() - start
if profiler is not None:
    profiler.disable()
    profiler.dump_stats(os.environ["BENCH_PROFILE"])
summary = result.summary(blocks if arrays is None else None)  # None: the sizes the numpy scan kept
backend = "python" if backends.BACKEND == "python" or fast is None else "numpy"
print("BENCH " + json.dumps({"blocks": len(blocks), "seconds": seconds, "prepare": prepared - start,
                             "classify": seconds - (prepared - start), "import": imported, "backend": backend,
                             "input": "dict" if arrays is None else "arrays",
                             "summary": summary, "peak_before_kib": before, "peak_after_kib": peak_kib()}))
gdb.execute("kill")
