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


def bins() -> dict[str, int]:
    """How many of the main arena's fastbins, small and large bins are non-empty, whether the unsorted bin is, and
    how many of this thread's tcache bins hold chunks: the shape the checkpoint claims."""
    arena = gdb.parse_and_eval("main_arena")
    lists = arena["bins"]
    base = int(gdb.parse_and_eval("(unsigned long)&main_arena.bins[0]"))
    nonempty = [i for i in range(1, 127) if int(lists[2 * i - 2]) != base + 8 * (2 * i - 2) - 16]  # bin_at(i)
    tcache = gdb.parse_and_eval("'malloc.c'::tcache")
    return {"fastbins": sum(1 for i in range(10) if int(arena["fastbinsY"][i])),
            "unsorted": int(1 in nonempty), "small": sum(2 <= i < 64 for i in nonempty),
            "large": sum(i >= 64 for i in nonempty),
            "tcache": sum(1 for i in range(64) if int(tcache["counts"][i])) if int(tcache) else 0}


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
               "engine": type(tracking.engine).__name__, "selection_kept": kept, "bins": bins()}
    print("@@walk@@ " + json.dumps(out))


while gdb.selected_inferior().pid:
    frame = gdb.selected_frame()
    if frame.name() != "checkpoint":
        break
    report()
    gdb.execute("continue")
