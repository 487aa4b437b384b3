"""Feeding core's reachability scan from a stopped process: its memory, its mappings, its threads' registers.

Roots (as valgrind takes them): every thread's registers, each live thread's stack from its stack pointer up, and
every other readable+writable mapping that holds no tracked block (loaded objects' data and bss, anonymous
mappings, cached thread stacks). Mappings holding tracked blocks (the heap, malloc's mmapped chunks and arenas) are
reached only through pointers; but where the kernel merged the mapping of a glibc mmapped chunk with the program's
own adjacent anonymous mapping into one entry of /proc/PID/maps, the program's part is still a root.
"""

from __future__ import annotations

import bisect
import collections.abc
import struct
from array import array
from typing import TYPE_CHECKING, Any, Sequence

import gdb

from ..core.abi import Abi
from ..core.heuristics import Heuristics
from ..core.procmaps import Mapping
from ..core.scan import RootRegion, ScanResult, backend, numpy_backend, numpy_problem, scan, shared
from .access import RegisterReader
from .announce import announce
from .image import LiveImage, ProcessImage, RawMemory, ThreadState

if TYPE_CHECKING:
    from ..core.scan.numpy_heap import Blocks

SKIPPED = ("[vvar]", "[vsyscall]", "[vdso]")
IS_MMAPPED = 0x2  # glibc: the chunk has a mapping of its own (its size field's second bit)
CACHE_LIMIT = 1 << 30  # read a mapping whole (and slice blocks out of it) when smaller than this


class ProcessMemory:
    """core.scan.Memory over a process image's memory: one read per mapping, blocks sliced from it."""

    def __init__(self, raw: RawMemory, maps: list[Mapping]) -> None:
        self.maps = sorted(maps, key=lambda m: m.start)
        self._starts = [m.start for m in self.maps]
        self._cache: dict[int, bytes] = {}
        self.piecewise: set[int] = set()  # mappings never read whole (a few roots beside big blocks: see root_regions)
        self._span = bytearray()  # read_span's buffer
        self._memory = raw

    def close(self) -> None:
        self._memory.close()

    def _raw(self, address: int, size: int) -> bytes:
        return self._memory.pread(address, size)

    def read(self, address: int, size: int) -> bytes:
        i = bisect.bisect_right(self._starts, address) - 1
        if i < 0 or address >= self.maps[i].end:
            return self._raw(address, size)
        mapping = self.maps[i]
        if mapping.end - mapping.start > CACHE_LIMIT or "r" not in mapping.perms or mapping.start in self.piecewise:
            return self._raw(address, size)
        data = self._cache.get(mapping.start)
        if data is None:
            data = self._cache[mapping.start] = self._raw(mapping.start, mapping.end - mapping.start)
        offset = address - mapping.start
        return data[offset:offset + size]

    def read_span(self, address: int, size: int) -> bytes | memoryview:
        """Many adjacent blocks at once (the numpy scan), read straight into one buffer reused span after span: a
        view valid until the next read_span (the scan is done with a span before it asks for the next). A heap of
        any size then costs one span's worth of GDB's memory, and the pages of that buffer are faulted in once.
        A mapping read whole already (by `read`) is sliced instead."""
        i = bisect.bisect_right(self._starts, address) - 1
        if 0 <= i and address < self.maps[i].end and (data := self._cache.get(self.maps[i].start)) is not None:
            offset = address - self.maps[i].start
            return memoryview(data)[offset:offset + size]
        if len(self._span) < size:
            self._span = bytearray(max(size, len(self._span) * 2))
        view = memoryview(self._span)[:size]
        return view[:self._memory.preadv(view, address)]

    def peek(self, addresses: Sequence[int], size: int) -> list[bytes]:
        """`size` bytes at each address, read directly (no mapping is read whole for them)."""
        return [self._raw(address, size) for address in addresses]


def thread_control_block(memory: ProcessMemory, mapping: Mapping, search: int = 64 << 10) -> int | None:
    """Where glibc's struct pthread sits in a thread stack mapping: its header points at itself twice
    (tcbhead_t.tcb and .self), at the top of the mapping above the stack proper."""
    data = memory.read(max(mapping.start, mapping.end - search), min(search, mapping.end - mapping.start))
    base = mapping.end - len(data)
    for offset in range((len(data) - 24) // 16 * 16, -1, -16):  # struct pthread is 16-byte aligned
        address = base + offset
        if int.from_bytes(data[offset:offset + 8], "little") == address and \
                int.from_bytes(data[offset + 16:offset + 24], "little") == address:
            return address
    return None


def beside_mmapped_chunks(mapping: Mapping, block_starts: Any, memory: ProcessMemory) -> list[tuple[int, int]]:
    """The parts of `mapping` outside glibc's mmapped chunks when every block in it (`block_starts`, ascending, a
    list or an array) is one: the kernel merges a chunk's mapping with the program's own anonymous mapping beside it
    (Python's pymalloc arenas, a program's buffers), and valgrind scans the program's part. Nothing when some block
    is an ordinary chunk (an arena's heap: its free memory is no root) or a header cannot be read."""
    heads = memory.peek([int(block_starts[0]) - 16], 16)
    if not _mmapped(heads[0]):
        return []  # the usual answer (an arena's heap of a million blocks), from one read
    starts = [int(p) for p in block_starts]
    heads += memory.peek([p - 16 for p in starts[1:]], 16)
    if not all(_mmapped(head) for head in heads):
        return []
    parts, at = [], mapping.start
    for p, head in zip(starts, heads):
        prev_size, size = struct.unpack("<QQ", head)
        low, high = p - 16 - prev_size, p - 16 + (size & ~7)  # the chunk's own mapping
        if low > at:
            parts.append((at, min(low, mapping.end)))
        at = max(at, high)
    if at < mapping.end:
        parts.append((at, mapping.end))
    return parts


def _mmapped(head: bytes) -> bool:
    return len(head) == 16 and bool(struct.unpack_from("<Q", head, 8)[0] & IS_MMAPPED)


def _object_data(m: Mapping, previous: Mapping | None) -> bool:
    """Whether `m` is a loaded object's static data: its writable file-backed segment, or the anonymous mapping
    right after it (the rest of its .bss)."""
    def from_file(mapping: Mapping) -> bool:
        return bool(mapping.path) and not mapping.path.startswith("[")
    return from_file(m) or (not m.path and previous is not None and previous.end == m.start
                            and "w" in previous.perms and from_file(previous))


def beside_blocks(m: Mapping, block_starts: Any, first: int, sizes: collections.abc.Mapping[int, int]) \
        -> list[tuple[int, int]]:
    """The parts of `m` outside the live blocks that overlap it (`first`: index of the first block starting at or
    after m.start; the one before may reach into `m`). An object's static data holding blocks is a program's own
    allocator serving them from a static arena: valgrind, which replaces that allocator, scans the object's data
    as roots and keeps the blocks apart, so the blocks' bytes are left out, not the whole mapping."""
    parts, at = [], m.start
    index = max(first - 1, 0)
    while index < len(block_starts) and int(block_starts[index]) < m.end:
        start = int(block_starts[index])
        end = start + sizes.get(start, 0)
        if start > at:
            parts.append((at, start))
        at = max(at, end)
        index += 1
    if at < m.end:
        parts.append((at, m.end))
    return parts


def root_regions(maps: list[Mapping], block_starts: Any, threads: list[ThreadState],
                 memory: ProcessMemory, glibc: bool = False,
                 sizes: collections.abc.Mapping[int, int] | None = None) -> list[RootRegion]:
    """Root regions as valgrind sees them: a stack counts from its stack pointer up only (memory below it is dead),
    and an exited thread's cached stack only from its thread control block up (TLS descriptors stay visible).
    `block_starts`: ascending, a list or a numpy array (searched, never iterated). `glibc`: the blocks are glibc
    malloc's (see beside_mmapped_chunks). `sizes`: block start -> size, for blocks inside an object's static data
    (see beside_blocks)."""
    search = getattr(block_starts, "searchsorted", None)
    regions: list[RootRegion] = []
    previous: Mapping | None = None
    for m in maps:
        guarded = previous is not None and previous.end == m.start and not previous.path and "r" not in previous.perms
        before, previous = previous, m
        if "r" not in m.perms or "w" not in m.perms or m.path in SKIPPED:
            continue
        if search is None:
            i = bisect.bisect_left(block_starts, m.start)
        else:  # int64 starts: nothing lies at or above 2**63
            i = int(search(m.start)) if m.start < 1 << 63 else len(block_starts)
        if sizes is not None and not (glibc and not m.path) and _object_data(m, before):
            inside = i < len(block_starts) and block_starts[i] < m.end
            reaching = i > 0 and int(block_starts[i - 1]) + sizes.get(int(block_starts[i - 1]), 0) > m.start
            if inside or reaching:
                regions.extend(RootRegion(lo, hi, m.path or "anonymous mapping")
                               for lo, hi in beside_blocks(m, block_starts, i, sizes))
                continue
        if i < len(block_starts) and block_starts[i] < m.end:  # holds heap blocks: reached only through pointers
            if glibc and not m.path:
                j = bisect.bisect_left(block_starts, m.end, i) if search is None else int(search(m.end))
                parts = beside_mmapped_chunks(m, block_starts[i:j], memory)
                if parts:  # the rest is big blocks: never read the whole mapping for these roots
                    memory.piecewise.add(m.start)
                regions.extend(RootRegion(lo, hi, "anonymous mapping") for lo, hi in parts)
            continue
        stack_threads = [t for t in threads if m.start <= t.sp < m.end]
        if stack_threads:
            for t in stack_threads:
                start = m.start if t.running else t.sp - t.sp % 8
                regions.append(RootRegion(start, m.end, f"stack of thread {t.num}"))
        elif guarded and not m.path and (tcb := thread_control_block(memory, m)) is not None:
            regions.append(RootRegion(tcb, m.end, "cached stack of an exited thread"))
        else:
            regions.append(RootRegion(m.start, m.end, m.path or "anonymous mapping"))
    return regions


def glibc_chunk_links(memory: ProcessMemory, blocks: collections.abc.Mapping[int, int],
                      arrays: Blocks | None = None, roots: list[RootRegion] | None = None) -> frozenset[int]:
    """Addresses glibc's own bookkeeping points at that fall inside a live block: the header of the chunk after
    it, whose prev_size field overlaps the block's last bytes (main_arena.top and the bins hold such pointers).
    valgrind's allocator keeps no such pointers in client memory, so they must not make a block 'possibly lost'.
    `arrays`: the blocks as numpy_heap.Blocks (numpy), when the numpy scan runs: then only the links some word of
    `roots` holds are found (all the root filter needs), without reading the heap."""
    if arrays is not None:
        return _chunk_links_numpy(memory, arrays, roots or [])
    links = set()
    words: array | None = None
    mapping: Mapping | None = None
    for address in sorted(blocks):
        if mapping is None or not mapping.start <= address - 8 < mapping.end:
            mapping = next((m for m in memory.maps if m.start <= address - 8 < m.end), None)
            if mapping is None:
                continue
            data = memory.read(mapping.start, mapping.end - mapping.start)
            words = array("Q")
            words.frombytes(data[:len(data) - len(data) % 8])
        index = (address - 8 - mapping.start) // 8
        if words is None or index >= len(words):
            continue
        following = address - 16 + (words[index] & ~7)
        if address < following < address + blocks[address]:
            links.add(following)
    return frozenset(links)


def _chunk_links_numpy(memory: ProcessMemory, arrays: Blocks, roots: list[RootRegion]) -> frozenset[int]:
    """glibc_chunk_links as far as the root filter needs them, without reading the heap: only a root word that
    points strictly inside a block can be such a link (blocks do not overlap), so only the headers of the blocks
    root words point into are read. The heap itself is then read once, by the scan, span by span."""
    import numpy as np  # present: `arrays` was built with it

    starts, sizes = arrays.starts, arrays.sizes
    if not len(starts):
        return frozenset()
    lo = int(starts[0])
    width = np.uint64(int(starts[-1]) + int(sizes.max()) - lo)  # every block ends below lo + width
    near: list[Any] = []
    for region in roots:
        address, end = -(-region.start // 8) * 8, region.end - region.end % 8
        while address < end:
            data = memory.read(address, min(shared.PIECE_BYTES, end - address))
            words = np.frombuffer(data, dtype="<u8", count=len(data) // 8)
            near.append(words[(words - np.uint64(lo)) < width])
            address += shared.PIECE_BYTES
    values = np.concatenate(near).view(np.int64) if near else np.zeros(0, np.int64)
    owner = np.searchsorted(starts, values, side="right") - 1  # >= 0: every value is >= lo
    offset = values - starts[owner]
    owners = np.sort(owner[(offset > 0) & (offset < sizes[owner])])  # not np.unique: its hashing is slow
    if not len(owners):
        return frozenset()
    owners = owners[np.concatenate(([True], owners[1:] != owners[:-1]))]
    address, size = starts[owners], sizes[owners]
    header, readable = _header_words(memory, address - 8)
    following = address - 16 + (header & ~7)  # where the next chunk's header is
    hit = readable & (following > address) & (following < address + size)
    return frozenset(following[hit].tolist())


PEEK_LIMIT = 4096  # headers read one by one up to this many; more are gathered from their mappings read whole


def _header_words(memory: ProcessMemory, where: Any) -> tuple[Any, Any]:
    """(the word at each address of `where` (ascending int64), whether it could be read)."""
    import numpy as np

    words = np.zeros(len(where), np.int64)
    readable = np.zeros(len(where), bool)
    if len(where) <= PEEK_LIMIT:
        for k, data in enumerate(memory.peek(where.tolist(), 8)):
            if len(data) == 8:
                words[k], readable[k] = int.from_bytes(data, "little", signed=True), True
        return words, readable
    for mapping in memory.maps:
        if mapping.start >= 1 << 63:
            break
        i, j = np.searchsorted(where, [mapping.start, min(mapping.end, (1 << 63) - 1)]).tolist()
        if i == j:
            continue
        data = memory.peek([mapping.start], mapping.end - mapping.start)[0]
        mapped = np.frombuffer(data, dtype="<i8", count=len(data) // 8)
        index = (where[i:j] - mapping.start) >> 3
        inside = index < len(mapped)
        words[i:j][inside] = mapped[index[inside]]
        readable[i:j] = inside
    return words, readable


def block_arrays(blocks: collections.abc.Mapping[int, int]) -> Blocks | None:
    """The blocks as core.scan.numpy_heap.Blocks when the numpy scan runs, else None."""
    if backend.BACKEND == "python":
        return None
    fast, why = numpy_backend()
    if why is not None and why not in _said:  # numpy looked usable at load, but its import failed: say it once
        _said.add(why)
        announce(why)
    return fast.Blocks.of(blocks) if fast is not None else None


_said: set[str] = set()


def announce_numpy_problem() -> None:
    """One line at load when numpy cannot serve GDB's Python (missing, or built for another Python version): the
    scan then runs in pure Python, with the same results."""
    problem = numpy_problem()
    if problem is not None:
        _said.add(problem)
        gdb.write(f"gdb-memleak: {problem}\n", gdb.STDERR)


class RootFilteringMemory:
    """Reads roots with the allocator's bookkeeping words blanked (see glibc_chunk_links); blocks as they are."""

    def __init__(self, memory: ProcessMemory, roots: list[RootRegion], ignored: frozenset[int]) -> None:
        self.memory = memory
        self.roots = sorted((r.start, r.end) for r in roots)
        self.ignored = ignored

    def read(self, address: int, size: int) -> bytes:
        data = self.memory.read(address, size)
        if not self.ignored or address % 8:
            return data
        i = bisect.bisect_right(self.roots, (address, 1 << 64)) - 1
        if i < 0 or address >= self.roots[i][1]:
            return data
        words = array("Q")
        words.frombytes(data[:len(data) - len(data) % 8])
        if not self.ignored.isdisjoint(words):
            words = array("Q", (0 if w in self.ignored else w for w in words))
            return words.tobytes() + data[len(data) - len(data) % 8:]
        return data

    def read_span(self, address: int, size: int) -> bytes | memoryview:
        """Blocks, read as they are (never inside a root region)."""
        return self.memory.read_span(address, size)


EXIT_MACHINERY = frozenset({"_exit", "__GI__exit", "_Exit", "__run_exit_handlers", "exit", "__GI_exit"})


def exit_machinery_floor() -> int | None:
    """Stack pointer of the frame that called exit(): the frames of exit() itself are libc's own and hold stale
    words of the frames that ran there before (main's locals after main returned), which are not roots."""
    try:
        frame: gdb.Frame | None = gdb.newest_frame()
        while frame is not None and (frame.name() or "").split("(")[0] in EXIT_MACHINERY:
            frame = frame.older()
        return int(frame.read_register("rsp")) if frame is not None else None
    except gdb.error:
        return None


def exiting_thread(threads: list[ThreadState], lwp: int, floor: int | None, abi: Abi) -> None:
    """The thread in `_exit` never returns: its stack counts from the frame that called exit() (see
    exit_machinery_floor), and the registers a call clobbers are dead (valgrind, checking after the exit_group
    system call, never sees what they held), so they are no roots."""
    dead = [abi.index(name) for name in abi.caller_saved]
    for t in threads:
        if t.lwp != lwp:
            continue
        if floor is not None and floor > t.sp:
            t.sp = floor
        values = list(t.registers)
        for index in dead:
            values[index] = 0
        t.registers = tuple(values)


class HeapScan:
    """One reachability scan of a stopped process; also answers `memleak block`'s who-points-at-it."""

    def __init__(self, inferior: gdb.Inferior, blocks: collections.abc.Mapping[int, int], regs: RegisterReader,
                 glibc: bool = True, exiting: bool = False, hidden: tuple[tuple[int, int], ...] = (),
                 arrays: Blocks | None = None, heuristics: frozenset[str] = frozenset(),
                 image: ProcessImage | None = None) -> None:
        """`blocks`: address -> size. `arrays`: the same blocks as numpy_heap.Blocks (ascending starts), when the
        caller has them; then `blocks` is only looked up (one block, for `memleak block`), never iterated.
        `heuristics`: the names of valgrind's leak-check heuristics to apply (core/heuristics.py). `image`: where
        the process is read (default: the live process)."""
        self.inferior = inferior
        self.blocks = blocks
        image = image if image is not None else LiveImage(inferior)
        # the tool's own memory in the process (the recorder's) is not the program's: never a root
        self.maps = [m for m in image.maps() if not any(lo <= m.start < hi for lo, hi in hidden)]
        self.threads = image.threads(inferior, regs)
        if exiting:
            exiting_thread(self.threads, gdb.selected_thread().ptid[1], exit_machinery_floor(), regs.abi)
        self.raw = ProcessMemory(image.memory(), self.maps)
        self.arrays = arrays if arrays is not None else block_arrays(blocks)  # shared with the scan; None: no numpy
        starts = self.arrays.starts if self.arrays is not None else sorted(blocks)
        self.roots = root_regions(self.maps, starts, self.threads, self.raw, glibc, blocks)
        ignored = glibc_chunk_links(self.raw, blocks, self.arrays, self.roots) if glibc else frozenset()
        self.memory = RootFilteringMemory(self.raw, self.roots, ignored)
        # the vtable test of multipleinheritance looks at the program's mappings (the tool's own are left out)
        self.heuristics = Heuristics(heuristics, self.maps) if heuristics else None

    def run(self, watch: int | None = None) -> ScanResult:
        """Classify every block; with `watch` (a block's start), also find who points into it in the same pass."""
        registers = [value for t in self.threads for value in t.registers]
        return scan(self.blocks, self.memory, self.roots, registers, watch=watch, prepared=self.arrays,
                    heuristics=self.heuristics)

    def close(self) -> None:
        self.raw.close()
