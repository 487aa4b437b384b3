"""glibc's (2.36, x86-64) in-use chunks, read from a stopped process's memory: every block live at one moment.

Tracking that starts on a running process saw none of the blocks allocated before; this walk finds them. The
allocator keeps them in three places: the main arena's heap (brk, from mp_.sbrk_base to the top chunk), the heaps of
the other arenas (64 MB-aligned mappings chained by heap_info.prev, from the arena's top back to its first heap, whose
chunks start after heap_info and the arena's own malloc_state; a retired heap ends in fenceposts), and mmapped chunks,
of which glibc keeps no list: they are found in the anonymous read-write mappings by their IS_MMAPPED header.

A chunk on the heap is free when its next chunk's PREV_INUSE bit is clear (the unsorted, small and large bins), or
when it is in a tcache or fastbin list (these keep PREV_INUSE set: their lists, safe-linked, are followed), or is the
top chunk. Each thread's tcache_perthread_struct is an in-use chunk of glibc's own, never returned to the program:
it is left out. The walk is one tight loop over each heap read in one piece (~0.3 s per million chunks).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from .glibc_mmapped import ALIGN, CHUNK_HEADER, FLAGS, IS_MMAPPED, MINSIZE, PREV_INUSE, Reader, mmapped_blocks
from .procmaps import Mapping

MAX_LIST = 1 << 24      # a free list longer than this is a cycle (corrupt memory), not a list


@dataclass(frozen=True)
class GlibcLayout:
    """Where glibc's structures keep what the walk needs (byte offsets, from libc's debug info)."""

    state_mutex: int            # struct malloc_state
    state_fastbins: int
    fastbin_count: int
    state_top: int
    state_bins: int
    bin_count: int              # pointers in malloc_state.bins (2 per bin)
    state_next: int
    state_system_mem: int
    state_size: int
    heap_ar_ptr: int            # heap_info
    heap_prev: int
    heap_size: int
    heap_info_size: int
    tcache_counts: int          # tcache_perthread_struct
    tcache_entries: int
    tcache_bins: int
    heap_max_size: int = 64 << 20  # HEAP_MAX_SIZE (mp_.hp_pagesize * 4 with huge pages): where a heap_info is
    page_size: int = 4096


@dataclass(frozen=True)
class HeapRoots:
    """Where the walk starts: &main_arena, mp_.sbrk_base, each live thread's `tcache` value, the process's maps."""

    main_arena: int
    sbrk_base: int
    tcaches: tuple[int, ...]
    mappings: tuple[Mapping, ...]


@dataclass
class HeapWalk:
    """The in-use blocks, sorted by address: address (chunk + 16) and usable size (chunk size - 8; mmapped - 16).
    `status` is None when the walk is whole, else one phrase saying why it may be incomplete."""

    addresses: list[int] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    status: str | None = None


class _Memory:
    """The heaps read so far, in one piece each, serving small reads (free lists) without another system call."""

    def __init__(self, read: Reader) -> None:
        self.read = read
        self._starts: list[int] = []
        self._pieces: list[tuple[int, memoryview]] = []

    def piece(self, address: int, size: int) -> memoryview:
        """Words (8 bytes each) of [address, address + size); address and size multiples of 8."""
        words = memoryview(self.read(address, size)).cast("Q")  # no copy: the reader's buffer is kept
        at = bisect.bisect_left(self._starts, address)
        self._starts.insert(at, address)
        self._pieces.insert(at, (address, words))
        return words

    def word(self, address: int) -> int:
        at = bisect.bisect_right(self._starts, address) - 1
        if at >= 0:
            start, words = self._pieces[at]
            index = (address - start) >> 3
            if index < len(words) and not address & 7:
                return int(words[index])
        return int.from_bytes(self.read(address, 8), "little")


class _Walker:
    def __init__(self, read: Reader, layout: GlibcLayout, roots: HeapRoots) -> None:
        self.memory = _Memory(read)
        self.layout = layout
        self.roots = roots
        # per heap walked: its in-use blocks (address, usable size), ascending, before the free lists are taken out
        self.segments: list[tuple[list[int], list[int]]] = []
        self.heaps: list[tuple[int, int]] = []    # [start, end) of every heap walked: no mmapped chunks in them
        self.free: set[int] = set()
        self.status: str | None = None

    def problem(self, phrase: str) -> None:
        if self.status is None:
            self.status = phrase

    # -- arenas -----------------------------------------------------------------------------------------------
    def arenas(self) -> list[int]:
        """main_arena, then the others along malloc_state.next (a ring back to main_arena)."""
        found = [self.roots.main_arena]
        arena = self.memory.word(self.roots.main_arena + self.layout.state_next)
        while arena and arena != self.roots.main_arena:
            if arena in found or len(found) > 1 << 16:
                self.problem("the arenas' list is corrupt")
                break
            found.append(arena)
            arena = self.memory.word(arena + self.layout.state_next)
        return found

    def walk_arena(self, arena: int) -> None:
        layout = self.layout
        head = bytes(self.memory.read(arena, layout.state_size))
        if int.from_bytes(head[layout.state_mutex:layout.state_mutex + 4], "little"):
            self.problem(f"the arena at 0x{arena:x} is locked by a thread (inside malloc or free): "
                         "its chunks may be changing")
        top = int.from_bytes(head[layout.state_top:layout.state_top + 8], "little")
        for index in range(layout.fastbin_count):
            at = layout.state_fastbins + 8 * index
            self.follow(int.from_bytes(head[at:at + 8], "little"), CHUNK_HEADER, "fastbin")
        if arena == self.roots.main_arena:
            self.walk_main(top, int.from_bytes(head[layout.state_system_mem:layout.state_system_mem + 8], "little"))
        else:
            self.walk_heaps(arena, top)

    def walk_main(self, top: int, system_mem: int) -> None:
        base = self.roots.sbrk_base
        if not base or not system_mem:
            return  # nothing allocated from brk yet
        start = (base + ALIGN - 1) & -ALIGN
        if not start <= top < base + system_mem:
            self.problem("the main arena's heap is not contiguous (brk could not grow): chunks outside it are unknown")
            return
        self.heaps.append((base, base + system_mem))
        self.walk_heap(start, top + CHUNK_HEADER, top, "the main arena's heap")

    def walk_heaps(self, arena: int, top: int) -> None:
        """The arena's heaps, from the one holding its top chunk back to its first (the one holding the arena)."""
        layout = self.layout
        heap = top & -layout.heap_max_size
        seen = 0
        while heap:
            info = bytes(self.memory.read(heap, layout.heap_info_size))
            ar_ptr = int.from_bytes(info[layout.heap_ar_ptr:layout.heap_ar_ptr + 8], "little")
            prev = int.from_bytes(info[layout.heap_prev:layout.heap_prev + 8], "little")
            size = int.from_bytes(info[layout.heap_size:layout.heap_size + 8], "little")
            seen += 1
            if ar_ptr != arena or not 0 < size <= layout.heap_max_size or seen > 1 << 16:
                self.problem(f"the heap at 0x{heap:x} does not belong to its arena at 0x{arena:x}")
                return
            self.heaps.append((heap, heap + layout.heap_max_size))  # its whole reservation
            if prev:
                start = heap + layout.heap_info_size
            else:  # the first heap: the arena's malloc_state follows heap_info
                start = (arena + layout.state_size + ALIGN - 1) & -ALIGN
            ends_at_top = heap <= top < heap + size
            self.walk_heap(start, heap + size, top if ends_at_top else None, f"the heap at 0x{heap:x}")
            heap = prev

    def walk_heap(self, start: int, end: int, top: int | None, where: str) -> None:
        """The chunks from `start` to the top chunk (`top`) or, on a retired heap, to its fenceposts; `end` bounds
        the read. The loop records a chunk when the next one's header says it is in use (PREV_INUSE): the last one
        before the top chunk after the loop, the one before a fencepost in it (the fencepost's header is read)."""
        words = self.memory.piece(start, end - start)
        stop = len(words) - 2 if top is None else (top - start) >> 3
        addresses: list[int] = []
        sizes: list[int] = []
        self.segments.append((addresses, sizes))
        append_address, append_size = addresses.append, sizes.append
        block = start + CHUNK_HEADER  # the block of the chunk at word i is at block + 8 * i
        i, previous, previous_size = 0, -1, 0
        while i < stop:
            head = words[i + 1]
            if head & PREV_INUSE and previous >= 0:
                append_address(block + (previous << 3))
                append_size(previous_size)
            size = head & ~FLAGS
            if size < MINSIZE or head & IS_MMAPPED:
                break
            previous, previous_size = i, size - 8
            i += size >> 3
        if top is not None:
            whole = i == stop
        else:  # a retired heap ends in a fencepost of 16 bytes, then a header of size 0
            whole = i + 3 < len(words) and words[i + 1] & ~FLAGS == CHUNK_HEADER and words[i + 3] & ~FLAGS == 0
        if not whole:
            self.problem(f"an inconsistent chunk at 0x{start + 8 * i:x} in {where}: the chunks after it are unknown")
        elif top is not None and previous >= 0 and words[i + 1] & PREV_INUSE:  # the top chunk's header
            append_address(block + (previous << 3))
            append_size(previous_size)

    # -- free lists -------------------------------------------------------------------------------------------
    def follow(self, head: int, field_offset: int, kind: str) -> None:
        """A safe-linked list: each entry's stored next is (address of the field >> 12) ^ next. `head` is a chunk
        (fastbins) or the user address (tcache, field_offset 0); the free chunk is added to self.free."""
        entry, count = head, 0
        chunk_of = CHUNK_HEADER - field_offset  # entry -> its chunk
        while entry:
            if entry & (ALIGN - 1) or count > MAX_LIST:
                self.problem(f"a corrupt {kind} list (0x{entry:x})")
                return
            chunk = entry - chunk_of
            if chunk in self.free:
                self.problem(f"a {kind} list loops (0x{entry:x})")
                return
            self.free.add(chunk)
            field_at = entry + field_offset
            entry = self.memory.word(field_at) ^ (field_at >> 12)
            count += 1

    def tcache(self, address: int) -> None:
        layout = self.layout
        raw = bytes(self.memory.read(address, layout.tcache_entries + 8 * layout.tcache_bins))
        for index in range(layout.tcache_bins):
            at = layout.tcache_entries + 8 * index
            self.follow(int.from_bytes(raw[at:at + 8], "little"), 0, "tcache")

    # -- mmapped chunks ---------------------------------------------------------------------------------------


def walk(read: Reader, layout: GlibcLayout, roots: HeapRoots) -> HeapWalk:
    """Every in-use chunk of the process whose memory `read` gives (it must be stopped)."""
    walker = _Walker(read, layout, roots)
    own: set[int] = set()
    try:
        for arena in walker.arenas():
            walker.walk_arena(arena)
        for address in roots.tcaches:
            if address:
                own.add(address - CHUNK_HEADER)
                walker.tcache(address)
        mmapped = sorted(mmapped_blocks(read, roots.mappings, walker.heaps, layout.page_size))
    except (OSError, ValueError, IndexError, TypeError) as error:  # memory that is not what the layout says
        walker.problem(f"the heap could not be read ({error})")
        mmapped = []
    walker.segments.append(([a for a, _ in mmapped], [s for _, s in mmapped]))
    return _result(walker.segments, {chunk + CHUNK_HEADER for chunk in walker.free | own}, walker.status)


def _result(segments: list[tuple[list[int], list[int]]], free: set[int], status: str | None) -> HeapWalk:
    """The segments (each ascending, none overlapping another) joined in address order, the free blocks taken out
    by bisection: the lists are copied in slices, never element by element in Python."""
    segments = sorted((s for s in segments if s[0]), key=lambda s: s[0][0])
    firsts = [s[0][0] for s in segments]
    drops: dict[int, list[int]] = {}
    for address in free:
        at = bisect.bisect_right(firsts, address) - 1
        if at >= 0:
            addresses = segments[at][0]
            index = bisect.bisect_left(addresses, address)
            if index < len(addresses) and addresses[index] == address:
                drops.setdefault(at, []).append(index)
    found = HeapWalk(status=status)
    for at, (addresses, sizes) in enumerate(segments):
        kept = 0
        for index in sorted(drops.get(at, ())):
            found.addresses.extend(addresses[kept:index])
            found.sizes.extend(sizes[kept:index])
            kept = index + 1
        found.addresses.extend(addresses[kept:])
        found.sizes.extend(sizes[kept:])
    return found
