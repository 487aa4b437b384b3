"""core/glibc_heap.py on whole synthetic images (a main heap with every kind of free chunk, two heaps of an arena,
mmapped look-alikes, recorder and stack mappings): the blocks found without a tcache root, a corrupt free
list, inconsistent chunks and missing fenceposts said in the status, and blocks of every kind sorted together."""

from __future__ import annotations

import struct

import pytest

from gdb_memleak.core.glibc_heap import GlibcLayout, HeapRoots, walk
from gdb_memleak.core.procmaps import Mapping

LAYOUT = GlibcLayout(state_mutex=0, state_fastbins=16, fastbin_count=10, state_top=96, state_bins=112, bin_count=254,
                     state_next=2160, state_system_mem=2184, state_size=2200, heap_ar_ptr=0, heap_prev=8,
                     heap_size=16, heap_info_size=48, tcache_counts=0, tcache_entries=128, tcache_bins=64)
MAIN_ARENA = 0x7F00_0000_1000
SBRK = 0x5555_5555_9000
HEAP_MAX = 64 << 20


def protect(field: int, pointer: int) -> int:
    """glibc's PROTECT_PTR: what a tcache or fastbin entry stores as its next pointer."""
    return (field >> 12) ^ pointer


class Image:
    """Sparse memory: segments written at addresses; a read outside them fails as /proc/PID/mem would."""

    def __init__(self) -> None:
        self.segments: dict[int, bytearray] = {}
        self.maps: list[Mapping] = []

    def segment(self, start: int, size: int, path: str = "", perms: str = "rw-p", mapped: bool = True) -> None:
        self.segments[start] = bytearray(size)
        if mapped:
            self.maps.append(Mapping(start, start + size, perms, 0, path))

    def put(self, address: int, *words: int) -> None:
        for start, data in self.segments.items():
            if start <= address and address + 8 * len(words) <= start + len(data):
                struct.pack_into(f"<{len(words)}Q", data, address - start, *words)
                return
        raise AssertionError(f"0x{address:x} is outside the image")

    def read(self, address: int, size: int) -> bytes:
        for start, data in self.segments.items():
            if start <= address and address + size <= start + len(data):
                return bytes(data[address - start:address - start + size])
        raise OSError(f"cannot read 0x{address:x}")

    def chunk(self, address: int, size: int, prev_inuse: bool = True, flags: int = 0) -> int:
        self.put(address + 8, size | flags | (1 if prev_inuse else 0))
        return address + size


def main_arena(image: Image, top: int, system_mem: int, next_arena: int = MAIN_ARENA) -> None:
    image.segment(MAIN_ARENA, LAYOUT.state_size, path="/usr/lib/x86_64-linux-gnu/libc.so.6")
    image.put(MAIN_ARENA + LAYOUT.state_top, top)
    image.put(MAIN_ARENA + LAYOUT.state_next, next_arena)
    image.put(MAIN_ARENA + LAYOUT.state_system_mem, system_mem)


def roots(image: Image, tcaches: tuple[int, ...] = (), sbrk: int = SBRK) -> HeapRoots:
    return HeapRoots(MAIN_ARENA, sbrk, tcaches, tuple(image.maps))


def pairs(found) -> list[tuple[int, int]]:
    return list(zip(found.addresses, found.sizes))


def main_heap(image: Image) -> dict[str, int]:
    """The main heap: glibc's tcache struct, then chunks in use, in a tcache list, in a fastbin, in the unsorted
    bin (its next chunk's PREV_INUSE clear), in use, then the top chunk."""
    image.segment(SBRK, 0x21000, path="[heap]")
    at = {"tcache": SBRK}
    end = image.chunk(SBRK, 0x290)
    for name, size in [("a", 0x20), ("t1", 0x30), ("t2", 0x30), ("f1", 0x20), ("f2", 0x20), ("u", 0x90),
                       ("b", 0x40)]:
        at[name] = end
        end = image.chunk(end, size, prev_inuse=name != "b")  # b follows the unsorted chunk u
    at["top"] = end
    image.chunk(end, SBRK + 0x21000 - end)
    tcache = SBRK + 16
    image.put(tcache + LAYOUT.tcache_entries + 8 * 1, at["t1"] + 16)    # the 0x30 bin: t1 -> t2
    image.put(at["t1"] + 16, protect(at["t1"] + 16, at["t2"] + 16))
    image.put(at["t2"] + 16, protect(at["t2"] + 16, 0))
    main_arena(image, at["top"], 0x21000)
    image.put(MAIN_ARENA + LAYOUT.state_fastbins, at["f1"])                # fastbin 0: f1 -> f2 (chunks)
    image.put(at["f1"] + 16, protect(at["f1"] + 16, at["f2"]))
    image.put(at["f2"] + 16, protect(at["f2"] + 16, 0))
    return at


def test_in_use_chunks_of_the_main_heap_are_found_and_free_ones_left_out():
    image = Image()
    at = main_heap(image)
    found = walk(image.read, LAYOUT, roots(image, (SBRK + 16,)))
    assert found.status is None
    # the tcache struct (glibc's own), t1 t2 (tcache), f1 f2 (fastbin), u (unsorted) and top are not blocks
    assert pairs(found) == [(at["a"] + 16, 0x18), (at["b"] + 16, 0x38)]


def test_without_the_thread_s_tcache_its_struct_and_list_count_as_blocks():
    """The tcache pointer is what tells glibc's own chunk and the tcache's free chunks apart from blocks."""
    image = Image()
    at = main_heap(image)
    found = walk(image.read, LAYOUT, roots(image, ()))
    assert [a for a, _ in pairs(found)] == [at[n] + 16 for n in ("tcache", "a", "t1", "t2", "b")]


def test_safe_linked_lists_are_decoded_with_the_address_of_each_next_field():
    image = Image()
    at = main_heap(image)
    image.put(at["t1"] + 16, at["t2"] + 16)  # stored unprotected: decodes to a misaligned pointer
    found = walk(image.read, LAYOUT, roots(image, (SBRK + 16,)))
    assert found.status is not None and "corrupt tcache list" in found.status


def test_a_chunk_whose_size_runs_past_the_heap_makes_the_walk_incomplete():
    image = Image()
    at = main_heap(image)
    image.put(at["b"] + 8, 0x5 | 1)  # a size below MINSIZE
    found = walk(image.read, LAYOUT, roots(image, (SBRK + 16,)))
    assert found.status is not None and f"inconsistent chunk at 0x{at['b']:x}" in found.status
    assert (at["a"] + 16, 0x18) in pairs(found)


def test_a_locked_arena_is_said_in_the_status():
    image = Image()
    main_heap(image)
    image.put(MAIN_ARENA + LAYOUT.state_mutex, 1)
    found = walk(image.read, LAYOUT, roots(image, (SBRK + 16,)))
    assert found.status is not None and "locked" in found.status


def test_no_heap_yet_gives_no_blocks():
    image = Image()
    main_arena(image, MAIN_ARENA + LAYOUT.state_bins - 16, 0)
    found = walk(image.read, LAYOUT, roots(image, sbrk=0))
    assert pairs(found) == [] and found.status is None


def test_another_arena_is_walked_through_its_heaps_the_retired_one_ending_in_fenceposts():
    image = Image()
    first = 0x7FFF_E400_0000           # 64 MB aligned
    second = first + HEAP_MAX
    arena = first + LAYOUT.heap_info_size
    # the first heap: heap_info, the arena's malloc_state, chunks up to the fenceposts left when it was retired
    image.segment(first, 0x4000)
    image.put(first + LAYOUT.heap_ar_ptr, arena)
    image.put(first + LAYOUT.heap_size, 0x4000)
    chunk = (arena + LAYOUT.state_size + 15) & -16
    one = chunk
    chunk = image.chunk(chunk, 0x100, flags=4)
    two = chunk
    chunk = image.chunk(chunk, 0x200, flags=4)
    image.chunk(chunk, 16)                       # fencepost, then a header of size 0
    image.chunk(chunk + 16, 0)
    # the second heap: heap_info (prev: the first), chunks, the arena's top
    image.segment(second, 0x2000)
    image.put(second + LAYOUT.heap_ar_ptr, arena)
    image.put(second + LAYOUT.heap_prev, first)
    image.put(second + LAYOUT.heap_size, 0x2000)
    three = second + LAYOUT.heap_info_size
    top = image.chunk(three, 0x50, flags=4)
    image.chunk(top, second + 0x2000 - top)
    image.put(arena + LAYOUT.state_top, top)
    image.put(arena + LAYOUT.state_next, MAIN_ARENA)
    main_arena(image, MAIN_ARENA + LAYOUT.state_bins - 16, 0, next_arena=arena)
    found = walk(image.read, LAYOUT, roots(image, sbrk=0))
    assert found.status is None
    assert pairs(found) == [(one + 16, 0xF8), (two + 16, 0x1F8), (three + 16, 0x48)]


def test_a_retired_heap_without_its_fenceposts_is_inconsistent():
    image = Image()
    heap = 0x7FFF_E400_0000
    arena = heap + LAYOUT.heap_info_size
    image.segment(heap, 0x4000)
    image.put(heap + LAYOUT.heap_ar_ptr, arena)
    image.put(heap + LAYOUT.heap_size, 0x4000)
    image.chunk((arena + LAYOUT.state_size + 15) & -16, 0x100, flags=4)  # then zeros: no fencepost
    top_heap = heap + HEAP_MAX
    image.segment(top_heap, 0x1000)
    image.put(top_heap + LAYOUT.heap_ar_ptr, arena)
    image.put(top_heap + LAYOUT.heap_prev, heap)
    image.put(top_heap + LAYOUT.heap_size, 0x1000)
    image.chunk(top_heap + LAYOUT.heap_info_size, 0x1000 - LAYOUT.heap_info_size)
    image.put(arena + LAYOUT.state_top, top_heap + LAYOUT.heap_info_size)
    image.put(arena + LAYOUT.state_next, MAIN_ARENA)
    main_arena(image, MAIN_ARENA + LAYOUT.state_bins - 16, 0, next_arena=arena)
    found = walk(image.read, LAYOUT, roots(image, sbrk=0))
    assert found.status is not None and "inconsistent chunk" in found.status


@pytest.fixture
def mmapped() -> tuple[Image, list[tuple[int, int]]]:
    """Two consecutive mmapped chunks merged into one mapping, one memalign'd (its chunk `prev_size` bytes into its
    mapping, the original header left at the mapping's start), and look-alikes where none may be found."""
    image = Image()
    main_arena(image, MAIN_ARENA + LAYOUT.state_bins - 16, 0)
    merged = 0x7F10_0000_0000
    image.segment(merged, 0x5000)
    image.chunk(merged, 0x2000, prev_inuse=False, flags=2)
    image.chunk(merged + 0x2000, 0x3000, prev_inuse=False, flags=2)
    aligned = 0x7F20_0000_0000
    image.segment(aligned, 0x4000)
    image.chunk(aligned, 0x4000, prev_inuse=False, flags=2)       # the header malloc wrote, memalign left
    inner = aligned + 0x1000 - 16                                  # the block aligned to 4096
    image.put(inner, 0x1000 - 16, (0x4000 - (0x1000 - 16)) | 2)
    for start, path in [(0x7F30_0000_0000, "[stack]"), (0x7F40_0000_0000, "/memfd:gdb-memleak (deleted)"),
                        (0x7F50_0000_0000, "/usr/lib/librecorder.so")]:
        image.segment(start, 0x2000, path=path)
        image.chunk(start, 0x2000, prev_inuse=False, flags=2)
    readonly = 0x7F60_0000_0000
    image.segment(readonly, 0x2000, perms="r--p")
    image.chunk(readonly, 0x2000, prev_inuse=False, flags=2)
    expected = [(merged + 16, 0x2000 - 16), (merged + 0x2000 + 16, 0x3000 - 16),
                (inner + 16, 0x4000 - (0x1000 - 16) - 16)]
    return image, expected


def test_mmapped_chunks_are_found_by_their_headers_in_anonymous_writable_mappings(mmapped):
    image, expected = mmapped
    found = walk(image.read, LAYOUT, roots(image, sbrk=0))
    assert pairs(found) == expected and found.status is None


def test_a_page_that_only_looks_like_a_chunk_header_is_no_block(mmapped):
    image, expected = mmapped
    odd = 0x7F70_0000_0000
    image.segment(odd, 0x3000)
    image.chunk(odd, 0x1234, prev_inuse=False, flags=2)          # not whole pages
    image.chunk(odd + 0x1000, 0x9000, prev_inuse=False, flags=2)  # past its mapping
    image.put(odd + 0x2000, 0, 0x1000 | 3)                         # PREV_INUSE too: not mmapped's header
    found = walk(image.read, LAYOUT, roots(image, sbrk=0))
    assert pairs(found) == expected


def test_blocks_of_every_kind_come_sorted_by_address(mmapped):
    image, expected = mmapped
    at = main_heap(image)
    found = walk(image.read, LAYOUT, roots(image, (SBRK + 16,)))
    assert pairs(found) == sorted([(at["a"] + 16, 0x18), (at["b"] + 16, 0x38), *expected])


def test_an_mmapped_chunk_merged_into_one_mapping_with_an_arena_heap_is_found():
    """mmap places a chunk just below an arena's heap: /proc/PID/maps shows one mapping for both."""
    image = Image()
    heap = 0x7FFF_E400_0000
    arena = heap + LAYOUT.heap_info_size
    image.segment(heap - 0x2000, 0x2000 + 0x1000, mapped=False)
    image.maps.append(Mapping(heap - 0x2000, heap + 0x1000, "rw-p", 0, ""))
    image.chunk(heap - 0x2000, 0x2000, prev_inuse=False, flags=2)
    image.put(heap + LAYOUT.heap_ar_ptr, arena)
    image.put(heap + LAYOUT.heap_size, 0x1000)
    top = (arena + LAYOUT.state_size + 15) & -16
    image.chunk(top, heap + 0x1000 - top)
    image.put(arena + LAYOUT.state_top, top)
    image.put(arena + LAYOUT.state_next, MAIN_ARENA)
    main_arena(image, MAIN_ARENA + LAYOUT.state_bins - 16, 0, next_arena=arena)
    found = walk(image.read, LAYOUT, roots(image, sbrk=0))
    assert pairs(found) == [(heap - 0x2000 + 16, 0x2000 - 16)] and found.status is None
