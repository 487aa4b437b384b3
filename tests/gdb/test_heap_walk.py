"""The walk of glibc's heap (core/glibc_heap.py through gdb/heapwalk.py) finds exactly the blocks the recorder
holds live, at five shapes of the heap c_targets/heap_walk/heap_shapes.c reaches (see its comment): one thread,
several threads with arenas of their own (one past a 64 MB heap), mmapped and aligned blocks, after frees filling
tcache, fastbins and the other bins, after malloc_trim.

The recorder, started with the program, saw every allocation: its live table is the oracle for the addresses. Sizes:
the walk gives usable sizes, the recorder requested ones; for the program's own blocks the program reports
malloc_usable_size, which the walk must equal; for the others the usable size follows from the request (heap chunk
or mmapped chunk; 16 bytes more when glibc hands out a free chunk whole because the rest would be too small for a
chunk), except for aligned allocations (memalign's family), whose chunk depends on where the alignment fell: there
the walk's size is at least the request. glibc's own chunks (each thread's tcache_perthread_struct) are never
returned to the program: the recorder never sees them and the walk leaves them out, so the sets are compared whole,
nothing excluded (the recorder, preloaded, is ready before the program's and the loader's first malloc).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import TARGETS, run_gdb

SOURCE = TARGETS / "heap_walk" / "heap_shapes.c"
PROBE = Path(__file__).resolve().parent / "heap_walk_probe.py"
STAGES = {1: "one thread", 2: "threads with arenas", 3: "mmapped blocks", 4: "after many frees", 5: "after trim"}
ALIGNED = ("memalign", "aligned_alloc", "posix_memalign", "valloc", "pvalloc")
PAGE = 4096


def heap_usable(request: int) -> int:
    """glibc: request2size(request) - 8, the chunk at least 32 bytes."""
    return max(32, (request + 8 + 15) & ~15) - 8


def mmapped_usable(request: int) -> int:
    """glibc: the chunk is request2size(request) + 8 rounded up to pages; its first 16 bytes are the header."""
    chunk = ((request + 8 + 15) & ~15) + 8
    return ((chunk + PAGE - 1) & ~(PAGE - 1)) - 16


@pytest.fixture(scope="module")
def stages(tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict]:
    binary = tmp_path_factory.mktemp("heap_walk") / SOURCE.stem
    subprocess.run(["gcc", "-g", "-O0", "-pthread", "-o", str(binary), str(SOURCE)], check=True)
    run = run_gdb(["set memleak engine agent", "memleak start", "break checkpoint", "run", f"source {PROBE}"], binary)
    assert "Traceback" not in run.stdout + run.stderr, run.stderr
    found = {}
    for line in run.stdout.splitlines():
        if line.startswith("@@walk@@ "):
            data = json.loads(line.removeprefix("@@walk@@ "))
            found[data["stage"]] = data
    assert sorted(found) == sorted(STAGES), run.stdout[-3000:] + run.stderr
    return found


@pytest.mark.slow
@pytest.mark.parametrize("stage", sorted(STAGES), ids=list(STAGES.values()))
def test_the_walk_finds_exactly_the_recorders_live_blocks(stages, stage):
    data = stages[stage]
    assert "error" not in data, data
    assert data["engine"] == "AgentEngine", data
    assert data["status"] is None, data["status"]
    assert data["selection_kept"], "the walk left another thread or frame selected"
    walked = {address: size for address, size in data["walk"]}
    recorded = {address: (size, allocator) for address, size, allocator in data["recorded"]}
    assert len(walked) == len(data["walk"]), "an address walked twice"
    assert sorted(walked) == [a for a, _ in data["walk"]], "the walk is not sorted by address"
    missing = sorted(set(recorded) - set(walked))
    extra = sorted(set(walked) - set(recorded))
    assert not missing and not extra, ([(hex(a), recorded[a]) for a in missing[:10]],
                                       [(hex(a), walked[a]) for a in extra[:10]])


@pytest.mark.slow
@pytest.mark.parametrize("stage", sorted(STAGES), ids=list(STAGES.values()))
def test_each_block_has_its_usable_size(stages, stage):
    data = stages[stage]
    walked = {address: size for address, size in data["walk"]}
    program = {address: usable for address, usable in data["program"]}
    assert program and all(walked.get(a) == usable for a, usable in program.items()), \
        [(hex(a), walked.get(a), usable) for a, usable in program.items() if walked.get(a) != usable][:10]
    wrong = []
    for address, request, allocator in data["recorded"]:
        size = walked[address]
        if allocator in ALIGNED:
            ok = size >= request
        else:  # a chunk taken whole from a bin when the rest would be under MINSIZE: 16 bytes more
            ok = size in (heap_usable(request), heap_usable(request) + 16, mmapped_usable(request))
        if not ok:
            wrong.append((hex(address), request, allocator, size))
    assert not wrong, wrong


@pytest.mark.slow
def test_the_threads_arenas_and_a_second_heap_are_walked(stages):
    """Four threads alive, each in an arena of its own, one of them past its first 64 MB heap: their blocks lie in
    at least five different 64 MB-aligned regions (the main heap's and the arenas'), and one arena holds more than
    64 MB of blocks (its heaps chained by heap_info.prev)."""
    walked = stages[2]["walk"]
    regions: dict[int, int] = {}
    for address, size in walked:
        regions[address >> 26] = regions.get(address >> 26, 0) + size
    assert len(regions) >= 5, sorted(hex(r << 26) for r in regions)
    assert sum(size for address, size in walked if 99_000 < size < 101_000) >= 64 << 20


@pytest.mark.slow
def test_after_the_frees_every_kind_of_free_list_holds_chunks(stages):
    """Stage 4 is what it claims: the walk above left out chunks in tcache, fastbins, the unsorted, small and large
    bins of the main arena (counted from glibc's own structures at the checkpoint)."""
    free_lists = stages[4]["bins"]
    assert all(free_lists[kind] > 0 for kind in ("tcache", "fastbins", "unsorted", "small", "large")), free_lists


def test_without_libcs_debug_info_the_walk_says_so_in_one_line(tmp_path: Path):
    binary = tmp_path / SOURCE.stem
    subprocess.run(["gcc", "-g", "-O0", "-pthread", "-o", str(binary), str(SOURCE)], check=True)
    run = run_gdb(["set debug-file-directory /nonexistent", "break checkpoint", "run",
                   "python from gdb_memleak.gdb import heapwalk; print('@@', heapwalk.walk(gdb.selected_inferior()))",
                   "kill"], binary)
    assert "@@ glibc's debug symbols are missing (install libc6-dbg): blocks allocated before tracking started " \
           "are unknown\n" in run.stdout, run.stdout + run.stderr
