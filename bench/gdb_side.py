"""Runs inside GDB for bench/engine_overhead.py: one timed `run` of the target, tracked or bare.

BENCH_MODE=tracked: the plugin with `memleak start`; prints the breakpoint addresses it used.
BENCH_MODE=bare: plain `break *ADDR if 0` at BENCH_ADDRS (the same addresses, hence the same stops), set when
libc loads, exactly when the tracker sets its own.
"""

from __future__ import annotations

import json
import os
import time

import gdb

mode = os.environ["BENCH_MODE"]
gdb.execute("set pagination off")
gdb.execute("set confirm off")
result = {}

if mode == "tracked":
    gdb.execute(f"source {os.environ['BENCH_LOADER']}")
    from gdb_memleak.gdb import settings
    from gdb_memleak.gdb.session import SESSION

    settings.report_at_exit.value = False
    SESSION.start()
else:
    wanted = [int(a, 16) for a in json.loads(os.environ["BENCH_ADDRS"])]
    placed = []

    def place(event):
        if placed or not gdb.selected_inferior().pid:
            return
        try:
            for address in wanted:
                gdb.selected_inferior().read_memory(address, 1)
        except gdb.MemoryError:
            return  # libc not mapped yet
        for address in wanted:
            bp = gdb.Breakpoint(f"*0x{address:x}", internal=True)
            bp.condition = "0"
            placed.append(bp)

    gdb.events.new_objfile.connect(place)

start = time.perf_counter()
gdb.execute("run", to_string=True)
result["seconds"] = time.perf_counter() - start
if mode == "tracked":
    tracking = SESSION.ended[-1]
    engine = tracking.engine
    result["addresses"] = [f"0x{a:x}" for a in engine.hooked_addresses]
    result["stops"] = engine.events_seen()
    result["allocs"] = tracking.report.table.counters.allocs
else:
    result["placed"] = len(placed)  # `if 0` breakpoints never count hits; same addresses => same stops
print("BENCH " + json.dumps(result))
