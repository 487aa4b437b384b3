"""core/glibc_heap.py on synthetic memory images laid out as glibc 2.36 (x86-64) lays out its heap: which chunks
are in use, safe-linked tcache and fastbin lists, a non-main arena's heaps ending in fenceposts, mmapped chunks
(memalign'd ones too) found in anonymous mappings, and a locked arena reported, never raised."""

from __future__ import annotations

from gdb_memleak.core.glibc_heap import GlibcLayout, HeapRoots, walk
from gdb_memleak.core.procmaps import Mapping

LAYOUT = GlibcLayout(state_mutex=0, state_fastbins=16, fastbin_count=10, state_top=96, state_bins=112,
                     bin_count=254, state_next=2160, state_system_mem=2184, state_size=2200, heap_ar_ptr=0,
                     heap_prev=8, heap_size=16, heap_info_size=48, tcache_counts=0, tcache_entries=128,
                     tcache_bins=64, heap_max_size=1 << 20)
MAIN_ARENA = 0x7F00_0000_0000   # in libc's data: its own little segment
BRK = 0x5555_0000_0000
HEAP = 0x7E00_0000_0000          # a non-main arena's first heap (heap_max_size-aligned)
MMAP = 0x7D00_0000_0000
TCACHE_CHUNK = 0x290


class Image:
    """Segments of memory, written a word at a time; `read` is the walk's bulk reader."""

    def __init__(self) -> None:
        self.segments: dict[int, bytearray] = {}

    def add(self, start: int, size: int) -> None:
        self.segments[start] = bytearray(size)

    def word(self, address: int, value: int) -> None:
        for start, data in self.segments.items():
            if start <= address < start + len(data):
                data[address - start:address - start + 8] = value.to_bytes(8, "little")
                return
        raise AssertionError(f"0x{address:x} outside the image")

    def read(self, address: int, size: int) -> bytes:
        for start, data in self.segments.items():
            if start <= address and address + size <= start + len(data):
                return bytes(data[address - start:address - start + size])
        raise OSError(f"0x{address:x} not mapped")


def chunk(image: Image, at: int, size: int, prev_inuse: bool = True, flags: int = 0) -> int:
    image.word(at + 8, size | (1 if prev_inuse else 0) | flags)
    return at + size


def safe(field_at: int, target: int) -> int:
    return (field_at >> 12) ^ target


def arena(image: Image, at: int, top: int, system_mem: int, following: int) -> None:
    image.word(at + LAYOUT.state_top, top)
    image.word(at + LAYOUT.state_system_mem, system_mem)
    image.word(at + LAYOUT.state_next, following)


def main_heap(image: Image) -> tuple[int, dict[str, int]]:
    """tcache struct, then A(in use 32) B(tcache 48) C(in use 64) D(fastbin 32) E(in use 32) F(unsorted 96)
    G(in use 48), then top. Returns the tcache struct's user address and the chunks."""
    image.add(BRK, 0x2000)
    names: dict[str, int] = {}
    at = chunk(image, BRK, TCACHE_CHUNK)
    for name, size in (("A", 32), ("B", 48), ("C", 64), ("D", 32), ("E", 32), ("F", 96), ("G", 48)):
        names[name] = at
        at = chunk(image, at, size, prev_inuse=name != "G")  # G's PREV_INUSE clear: F is free (a bin)
    top = at
    chunk(image, top, BRK + 0x2000 - top)
    tcache = BRK + 16
    entry = names["B"] + 16
    image.word(tcache + LAYOUT.tcache_entries + 8 * 1, entry)  # bin 1: 48-byte chunks
    image.word(entry, safe(entry, 0))
    fastbin = names["D"]
    image.word(MAIN_ARENA + LAYOUT.state_fastbins, fastbin)
    image.word(fastbin + 16, safe(fastbin + 16, 0))
    arena(image, MAIN_ARENA, top, 0x2000, MAIN_ARENA)
    return tcache, names


def roots(tcaches: tuple[int, ...], mappings: tuple[Mapping, ...] = ()) -> HeapRoots:
    return HeapRoots(MAIN_ARENA, BRK, tcaches, mappings)


def test_in_use_chunks_of_the_main_heap_leave_out_bins_tcache_fastbins_top_and_the_tcache_struct():
    image = Image()
    image.add(MAIN_ARENA, LAYOUT.state_size + 8)
    tcache, names = main_heap(image)
    found = walk(image.read, LAYOUT, roots((tcache,)))
    assert found.status is None
    assert list(zip(found.addresses, found.sizes)) == [(names["A"] + 16, 24), (names["C"] + 16, 56),
                                                       (names["E"] + 16, 24), (names["G"] + 16, 40)]


def test_safe_linked_tcache_list_of_two_is_decoded():
    image = Image()
    image.add(MAIN_ARENA, LAYOUT.state_size + 8)
    tcache, names = main_heap(image)
    first, second = names["A"] + 16, names["E"] + 16  # both 32-byte chunks: tcache bin 0
    image.word(tcache + LAYOUT.tcache_entries, first)
    image.word(first, safe(first, second))
    image.word(second, safe(second, 0))
    found = walk(image.read, LAYOUT, roots((tcache,)))
    assert found.addresses == [names["C"] + 16, names["G"] + 16]


def test_a_looping_fastbin_is_a_status_not_an_exception():
    image = Image()
    image.add(MAIN_ARENA, LAYOUT.state_size + 8)
    tcache, names = main_heap(image)
    fastbin = names["D"]
    image.word(fastbin + 16, safe(fastbin + 16, fastbin))  # points at itself
    found = walk(image.read, LAYOUT, roots((tcache,)))
    assert found.status is not None and "loops" in found.status


def test_a_locked_arena_is_reported():
    image = Image()
    image.add(MAIN_ARENA, LAYOUT.state_size + 8)
    tcache, _ = main_heap(image)
    image.word(MAIN_ARENA + LAYOUT.state_mutex, 1)
    found = walk(image.read, LAYOUT, roots((tcache,)))
    assert found.status is not None and "locked" in found.status


def test_unreadable_memory_is_a_status():
    image = Image()
    image.add(MAIN_ARENA, LAYOUT.state_size + 8)
    arena(image, MAIN_ARENA, BRK + 0x100, 0x2000, MAIN_ARENA)  # a heap nobody mapped
    found = walk(image.read, LAYOUT, roots(()))
    assert found.addresses == [] and found.status is not None


def test_non_main_arena_heaps_chain_back_to_the_first_and_a_retired_heap_ends_in_fenceposts():
    image = Image()
    image.add(MAIN_ARENA, LAYOUT.state_size + 8)
    other = HEAP + LAYOUT.heap_info_size
    arena(image, MAIN_ARENA, 0, 0, other)
    image.add(HEAP, 0x4000)
    second = HEAP + LAYOUT.heap_max_size
    image.add(second, 0x2000)
    arena(image, other, 0, 0, MAIN_ARENA)
    # first heap: heap_info, malloc_state, then chunks X(in use 64), Y(in use 48), then the fenceposts
    image.word(HEAP + LAYOUT.heap_ar_ptr, other)
    image.word(HEAP + LAYOUT.heap_size, 0x4000)
    start = (other + LAYOUT.state_size + 15) & -16
    x = start
    y = chunk(image, x, 64)
    fence = chunk(image, y, 48)
    image.word(fence + 8, 16 | 1)        # fencepost of 16 bytes (PREV_INUSE: Y in use)
    image.word(fence + 16 + 8, 0 | 1)    # and a header of size 0
    # second heap: heap_info, Z(in use 32), top
    image.word(second + LAYOUT.heap_ar_ptr, other)
    image.word(second + LAYOUT.heap_prev, HEAP)
    image.word(second + LAYOUT.heap_size, 0x2000)
    z = second + LAYOUT.heap_info_size
    top = chunk(image, z, 32)
    chunk(image, top, second + 0x2000 - top)
    image.word(other + LAYOUT.state_top, top)
    found = walk(image.read, LAYOUT, roots(()))
    assert found.status is None, found.status
    assert sorted(found.addresses) == found.addresses
    assert set(zip(found.addresses, found.sizes)) == {(z + 16, 24), (x + 16, 56), (y + 16, 40)}


def test_mmapped_chunks_are_found_in_anonymous_mappings_memaligned_ones_too():
    image = Image()
    image.add(MAIN_ARENA, LAYOUT.state_size + 8)
    arena(image, MAIN_ARENA, 0, 0, MAIN_ARENA)
    image.add(MMAP, 0x8000)
    chunk(image, MMAP, 0x3000, prev_inuse=False, flags=2)               # plain: the mapping's first page
    aligned_base = MMAP + 0x3000                                          # memalign(0x1000): moved 0x1000 - 16 in
    moved = aligned_base + 0x1000 - 16
    image.word(moved, moved - aligned_base)
    image.word(moved + 8, (aligned_base + 0x5000 - moved) | 2)
    image.word(aligned_base + 8, 0x5000 | 2)                              # its original header, left as it was
    stack = Mapping(MMAP + 0x8000, MMAP + 0x9000, "rw-p", 0, "[stack]")
    found = walk(image.read, LAYOUT, roots((), (Mapping(MMAP, MMAP + 0x8000, "rw-p", 0, ""), stack)))
    assert found.status is None
    assert list(zip(found.addresses, found.sizes)) == [(MMAP + 16, 0x3000 - 16),
                                                       (moved + 16, aligned_base + 0x5000 - moved - 16)]
