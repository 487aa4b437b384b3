"""Runs inside GDB for test_heap_walk.py: at each stop in checkpoint(stage), prints one line `@@walk@@ JSON` with the
walk of glibc's heap, the recorder's live table (address, requested size) and the program's own live blocks
(address, malloc_usable_size) as heap_shapes.c lists them; then continues, until the program exits."""

from __future__ import annotations

import json

import gdb
from gdb_memleak.gdb import heapwalk
from gdb_memleak.gdb.session import SESSION


def program_blocks(inferior: gdb.Inferior) -> list[list[int]]:
    count = int(gdb.parse_and_eval("program_count"))
    ptrs = inferior.read_memory(int(gdb.parse_and_eval("&program_ptrs")), 8 * count).tobytes()
    usable = inferior.read_memory(int(gdb.parse_and_eval("&program_usable")), 8 * count).tobytes()
    return [[int.from_bytes(ptrs[8 * i:8 * i + 8], "little"), int.from_bytes(usable[8 * i:8 * i + 8], "little")]
            for i in range(count)]


def report() -> None:
    inferior = gdb.selected_inferior()
    stage = int(gdb.selected_frame().read_var("stage"))
    tracking = SESSION.current()
    assert tracking is not None
    tracking.engine.sync()
    recorded = sorted([b.address, b.size, b.allocator] for b in tracking.table.blocks.blocks())
    selected = (gdb.selected_thread().num, gdb.selected_frame())
    walk = heapwalk.walk(inferior)
    kept = selected == (gdb.selected_thread().num, gdb.selected_frame())
    if isinstance(walk, str):
        out = {"stage": stage, "error": walk}
    else:
        out = {"stage": stage, "status": walk.status, "walk": [list(p) for p in zip(walk.addresses, walk.sizes)],
               "recorded": recorded, "program": program_blocks(inferior),
               "engine": type(tracking.engine).__name__, "selection_kept": kept}
    print("@@walk@@ " + json.dumps(out))


while gdb.selected_inferior().pid:
    frame = gdb.selected_frame()
    if frame.name() != "checkpoint":
        break
    report()
    gdb.execute("continue")
