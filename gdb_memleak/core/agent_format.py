"""The recorder's memory (gdb_memleak/agent/recorder.c) as bytes, and a reader turning bulk reads into table data.

The recorder keeps everything in one region: a header (`HEADER_FIELDS`), a record area (`SLOT`: one live or
remembered-freed block, or a free record), 64 shards each with an open-addressed index into it (the recorder's own
look-up: the reader never needs it), a pool of stack records (`[n, pc0 .. pcn-1]`, a stack's id is its word offset;
each distinct stack stored once), an error ring (`ERROR`) and the allocator names. The exported object
`memleak_agent` (`ANCHOR`) in the preloaded library says where the region is. The C side is agent/layout.h;
tests/agent/test_recorder_layout.py compiles it and compares every field named here.

Reading never does per-event Python work: the record area is read in a few large pieces, each filtered as a whole
(numpy when importable, `struct.iter_unpack` otherwise); stacks are decoded only when a report asks for them.
Pure Python: the caller passes a `read(address, size) -> bytes` (GDB's inferior memory or /proc/PID/mem).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

from .kinds import ErrorType
from .liveblocks import BlockDict, BlockSet
from .model import Block, Counters, FreedBlock, HeapError
from .procmaps import Mapping, load_bias
from .recorded import Recording
from .timeline import Point

if TYPE_CHECKING:
    from .live import LiveColumns

MAGIC = 0x314B41454C4D4447  # "GDMLEAK1"
VERSION = 3
ANCHOR_SYMBOL = "memleak_agent"
ERROR_FUNCTION = "memleak_agent_error"          # called with the error record (first argument) on a bad release
BREAK_ALLOC_FUNCTION = "memleak_agent_break_alloc"  # called with a copy of the record when allocation N is made
LIBRARY_SUFFIX = "librecorder.so"
ENV_PREFIX = "GDB_MEMLEAK_AGENT_"  # DEPTH, ON_ERROR=skip, BREAK_ALLOC=N, TEST_STOP (tests: SIGSTOP at the very end)

ANCHOR = struct.Struct("<6Q")  # magic, version, region address, region size, stopped reason, stopped errno
ANCHOR_FIELDS = ("magic", "version", "region", "region_size", "stopped", "stopped_errno")
# Why a recorder records nothing (agent/layout.h OFF_*): the program runs on untracked, the region address is 0.
STOPPED_REASONS = {
    1: "it cannot map its memory",
    2: "it cannot create its thread key (pthread_key_create)",
    3: "a check of its memory failed",
    4: "the copy of its table for this forked process failed",
    5: "it cannot register its fork handlers (pthread_atfork)",
    6: "it was detached",
    7: "it cannot redirect the program's allocator calls (a GOT slot could not be written)",
    8: "a call from its previous attach is still inside it (a thread stopped in the allocator?)",
}

HEADER_FIELDS = (
    "magic", "version", "header_size", "region_size",
    "nshards", "shards_off", "shard_size", "record_size",
    "stack_shards", "stack_shards_off", "pool_off", "pool_capacity_words",
    "pool_used_words", "errors_off", "errors_capacity", "error_size",
    "error_count", "names_off", "names_size", "allocator_count",
    "seq", "live_blocks", "live_bytes", "peak_blocks", "peak_bytes", "failed_allocs",
    "break_seq", "skip_bad_frees", "start_ns", "depth", "pid", "unwinder",
    "dyn_used", "stacks_dropped", "freed_per_shard",
    "timeline_off", "timeline_capacity", "timeline_count", "timeline_interval_ns", "timeline_due_ns",
    "timeline_hi_bytes", "timeline_hi_blocks", "timeline_lock",
    "records_off", "records_capacity", "records_used", "blocks_dropped", "untracked_frees", "complete",
)
_SIGNED = {"live_blocks", "live_bytes", "peak_blocks", "peak_bytes", "timeline_hi_bytes", "timeline_hi_blocks"}
HEADER = struct.Struct("<" + "".join("q" if name in _SIGNED else "Q" for name in HEADER_FIELDS))
BREAK_SEQ_OFFSET = HEADER_FIELDS.index("break_seq") * 8       # GDB writes N here for `break-alloc N`
SKIP_BAD_FREES_OFFSET = HEADER_FIELDS.index("skip_bad_frees") * 8

# struct ml_shard (then the shard's free-record list and chunk, the recorder's own business)
SHARD_FIELDS = ("lock", "pad0", "table_off", "capacity", "used", "allocs", "frees", "bytes_allocated",
                "freed_ring_off", "freed_head")
SHARD = struct.Struct("<iI8Q56x")
RECORDS_PER_READ = 1 << 15  # records read and filtered at a time (2 MiB): GDB never holds the whole area's bytes
# struct ml_record (a block's record): fields as SLOT_DTYPE_FIELDS names them
SLOT = struct.Struct("<QQQQIIHBxIQI4x")
SLOT_LIVE, SLOT_FREED = 1, 2
# struct ml_error (+ 4 spare words)
ERROR_FIELDS = ("type", "addr", "tid", "time_ns", "stack", "allocator", "alloc_stack", "free_stack", "block_size",
                "alloc_allocator", "skip", "seq")
ERROR = struct.Struct("<12Q32x")
# struct ml_point: time, live bytes and blocks, their highest values since the previous point
POINT_FIELDS = ("t_ns", "bytes", "blocks", "peak_bytes", "peak_blocks")
POINT = struct.Struct("<Q4q")
# GDB writes 1 here (on-error skip): the recorder does not perform the bad release
ERROR_SKIP_OFFSET = ERROR_FIELDS.index("skip") * 8
# the error's number (from 1, per process and its vfork children) in a parsed record
ERROR_SEQ_INDEX = ERROR_FIELDS.index("seq")
ERROR_TYPES = {1: ErrorType.DOUBLE_FREE, 2: ErrorType.INVALID_FREE, 3: ErrorType.MISMATCHED_FREE}
UNKNOWN = (1 << 64) - 1
UNWINDERS = {0: "return address only", 1: "libunwind", 2: "glibc backtrace()"}
FAMILIES = {"0": "malloc", "1": "new", "2": "new[]", "3": "any"}  # any: adopted at an attach, any release matches

assert HEADER.size == len(HEADER_FIELDS) * 8 and SHARD.size == 128 and SLOT.size == 64 and ERROR.size == 128

ReadMemory = Callable[[int, int], bytes | bytearray]
ScratchRead = Callable[[int, int], bytes | bytearray | memoryview]  # an answer valid until the next call


class AgentFormatError(ValueError):
    """The memory read is not a recorder region this reader understands (one line)."""


@dataclass(frozen=True)
class Header:
    values: dict[str, int]

    def __getattr__(self, name: str) -> int:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None


def parse_header(data: bytes | bytearray) -> Header:
    if len(data) < HEADER.size:
        raise AgentFormatError("gdb-memleak: recorder header truncated")
    header = Header(dict(zip(HEADER_FIELDS, HEADER.unpack_from(data))))
    if header.magic != MAGIC:
        raise AgentFormatError("gdb-memleak: no recorder header at the anchored address")
    if header.version != VERSION:
        raise AgentFormatError(f"gdb-memleak: recorder format {header.version}, this reader knows {VERSION}")
    if header.record_size != SLOT.size or header.shard_size != SHARD.size or header.error_size != ERROR.size:
        raise AgentFormatError("gdb-memleak: recorder record sizes differ from this reader's")
    return header


def parse_names(data: bytes | bytearray) -> list[tuple[str, str]]:
    """The recorder's allocator table: id -> (label as reports show it, family)."""
    parts = data.rstrip(b"\0").split(b"\0")
    return [(parts[i].decode(), FAMILIES[parts[i + 1].decode()]) for i in range(0, len(parts) - 1, 2)]


@dataclass
class Shard:
    table_off: int
    capacity: int
    used: int
    allocs: int
    frees: int
    bytes_allocated: int


def _numpy() -> Any:
    try:
        import numpy  # noqa: PLC0415 - GDB's Python may not import it (core/scan/backend.py: numpy_problem)
    except Exception:  # noqa: BLE001 - a broken or mismatched build raises ImportError, or worse: lists then
        return None
    return numpy


SLOT_DTYPE_FIELDS = [("addr", "<u8"), ("size", "<u8"), ("seq", "<u8"), ("time_ns", "<u8"), ("stack", "<u4"),
                     ("tid", "<u4"), ("allocator", "<u2"), ("state", "u1"), ("pad0", "u1"),
                     ("free_stack", "<u4"), ("free_time_ns", "<u8"), ("free_tid", "<u4"), ("pad1", "<u4")]


@dataclass
class LiveBlocks:
    """Column arrays of the live blocks: numpy arrays in address order, or lists in allocation order without numpy."""

    addr: Any
    size: Any
    seq: Any
    time_ns: Any
    stack: Any
    tid: Any
    allocator: Any

    def __len__(self) -> int:
        return len(self.addr)

    @property
    def arrays(self) -> bool:
        """Whether the columns are numpy arrays (numpy imported when they were read)."""
        return hasattr(self.addr, "argsort")


LIVE_COLUMNS = ("addr", "size", "seq", "time_ns", "stack", "tid", "allocator")


class SlotFilter:
    """Keeps what each piece of the record area holds as it is read, so a piece's raw bytes are dropped before
    the next is read (reading a million 64-byte records first would double GDB's peak memory). Live blocks become
    columns (numpy arrays in address order; without numpy, lists in allocation order); the few remembered freed
    blocks become rows."""

    def __init__(self, expected: int = 0) -> None:
        self.np = _numpy()
        self.rows: list[tuple[int, ...]] = []
        self.freed: list[tuple[int, ...]] = []
        self.used = 0
        self.columns: list[Any] = []
        if self.np is not None:  # filled in place: the header says how many blocks are live
            self.dtype = self.np.dtype(SLOT_DTYPE_FIELDS)
            self.columns = [self.np.empty(max(expected, 0), dtype=self.dtype[name]) for name in LIVE_COLUMNS]

    def add(self, chunk: bytes | bytearray | memoryview) -> None:
        np = self.np
        if np is None:
            for row in SLOT.iter_unpack(chunk):
                if row[0] and row[7] in (SLOT_LIVE, SLOT_FREED):
                    (self.rows if row[7] == SLOT_LIVE else self.freed).append(row)
            return
        records = np.frombuffer(chunk, dtype=self.dtype, count=len(chunk) // SLOT.size)
        used = records["addr"] != 0
        live = used & (records["state"] == SLOT_LIVE)
        at, end = self.used, self.used + int(np.count_nonzero(live))
        if end > len(self.columns[0]):  # more than the header said: grow (never, for a stopped process)
            self.columns = [np.concatenate((c, np.empty(end - len(c) + len(c) // 2, c.dtype))) for c in self.columns]
        for column, name in zip(self.columns, LIVE_COLUMNS):
            np.compress(live, records[name], out=column[at:end])  # each field straight into its column
        self.used = end
        freed = records[used & (records["state"] == SLOT_FREED)]
        if len(freed):
            self.freed.extend(SLOT.iter_unpack(freed.tobytes()))

    def live(self) -> LiveBlocks:
        np = self.np
        if np is None:
            rows = sorted(self.rows, key=lambda row: row[2])
            return LiveBlocks(*([r[i] for r in rows] for i in (0, 1, 2, 3, 4, 5, 6)))
        columns, self.columns = self.columns, []
        # by address (each once): the table's, the scan's order. Stable (timsort): a shard's records come in runs
        # of allocation order, mostly rising addresses, which it merges instead of sorting afresh
        order = np.argsort(columns[0][:self.used], kind="stable")
        for i, column in enumerate(columns):
            columns[i] = column[order]  # the unsorted column is freed here, one at a time
            del column
        return LiveBlocks(*columns)

    def freed_rows(self) -> list[tuple[int, ...]]:
        """The remembered freed blocks (bounded by the recorder), oldest allocation first."""
        return sorted(self.freed, key=lambda row: row[2])


@dataclass
class AgentSnapshot:
    """Everything the recorder holds at one moment, read in bulk. Blocks and stacks are built only on demand."""

    header: Header
    shards: list[Shard]
    names: list[tuple[str, str]]
    live: LiveBlocks
    freed_rows: list[tuple[int, ...]]
    pool: bytes | bytearray
    error_records: list[tuple[int, ...]]
    region: int
    points: list[tuple[int, ...]] = field(default_factory=list)  # the recorder's timeline (struct ml_point rows)
    _stacks: dict[int, tuple[int, ...]] = field(default_factory=dict)

    # -- figures ------------------------------------------------------------------------------------------------
    def counters(self) -> Counters:
        h = self.header
        return Counters(allocs=sum(s.allocs for s in self.shards), frees=sum(s.frees for s in self.shards),
                        bytes_allocated=sum(s.bytes_allocated for s in self.shards),
                        live_blocks=h.live_blocks, live_bytes=h.live_bytes, peak_blocks=h.peak_blocks,
                        peak_bytes=h.peak_bytes, failed_allocs=h.failed_allocs,
                        untracked_frees=h.untracked_frees)

    @property
    def last_seq(self) -> int:
        return self.header.seq

    # -- stacks -------------------------------------------------------------------------------------------------
    def stack(self, stack_id: int) -> tuple[int, ...]:
        """The raw return addresses of a stack id (innermost first); () for id 0 (none stored)."""
        found = self._stacks.get(stack_id)
        if found is not None:
            return found
        if stack_id == 0 or (stack_id + 1) * 8 > len(self.pool):
            pcs: tuple[int, ...] = ()
        else:
            (n,) = struct.unpack_from("<Q", self.pool, stack_id * 8)
            n = min(n, (len(self.pool) // 8) - stack_id - 1)
            pcs = struct.unpack_from(f"<{n}Q", self.pool, (stack_id + 1) * 8)
        self._stacks[stack_id] = pcs
        return pcs

    def stack_ids(self) -> Iterator[int]:
        """Every stored stack id, in pool order (for symbolizing each distinct stack once)."""
        words = len(self.pool) // 8
        at = 1
        while at < words:
            (n,) = struct.unpack_from("<Q", self.pool, at * 8)
            if n == 0 or at + 1 + n > words:
                return
            yield at
            at += 1 + n

    # -- blocks and errors --------------------------------------------------------------------------------------
    def blocks(self, epoch_ns: int | None = None, thread: Callable[[int], int] = lambda tid: tid,
               stack: Callable[[int], tuple[int, ...]] | None = None) -> Iterator[Block]:
        """Materialise live blocks (time in seconds since `epoch_ns`, default the recorder's start); `stack` maps
        a stack id to the PCs blocks get (default: as stored), called once per distinct stack."""
        epoch = self.header.start_ns if epoch_ns is None else epoch_ns
        live, names = self.live, self.names
        stacks: dict[int, tuple[int, ...]] = {}
        order = live.seq.argsort(kind="stable") if live.arrays else None  # allocation order
        columns = [c[order].tolist() if order is not None else c
                   for c in (live.addr, live.size, live.allocator, live.tid, live.seq, live.time_ns, live.stack)]
        for addr, size, allocator, tid, seq, time_ns, stack_id in zip(*columns):
            pcs = stacks.get(stack_id)
            if pcs is None:
                pcs = stacks[stack_id] = (stack or self.stack)(stack_id)
            label, family = names[allocator]
            yield Block(addr, size, label, thread(tid), seq, (time_ns - epoch) / 1e9, pcs, family)

    def columns(self, epoch_ns: int | None = None, thread: Callable[[int], int] = lambda tid: tid,
                stack: Callable[[int], tuple[int, ...]] | None = None) -> LiveColumns:
        """The live blocks as columns (needs numpy): no Block is made until one is asked for."""
        from .live import LiveColumns

        epoch = self.header.start_ns if epoch_ns is None else epoch_ns
        live = self.live
        # views, not copies: the snapshot and the columns share one set of arrays (times stay nanoseconds)
        return LiveColumns(live.addr.view("int64"), live.size.view("int64"), live.seq.view("int64"),
                           live.time_ns.view("int64"), live.stack, live.tid, live.allocator, self.names,
                           stack or self.stack, thread, epoch_ns=epoch)

    def block_set(self, epoch_ns: int | None = None, thread: Callable[[int], int] = lambda tid: tid,
                  stack: Callable[[int], tuple[int, ...]] | None = None) -> BlockSet:
        """The live blocks as a table holds them: columns when they were read as numpy arrays, else Blocks."""
        if self.live.arrays:
            return self.columns(epoch_ns, thread, stack)
        return BlockDict((b.address, b) for b in self.blocks(epoch_ns, thread, stack))

    def recording(self, now: float, epoch_ns: int | None = None, thread: Callable[[int], int] = lambda tid: tid,
                  stack: Callable[[int], tuple[int, ...]] | None = None) -> Recording:
        """Everything a table loads (`AllocationTable.load_recorded`), read at `now` seconds after `epoch_ns`."""
        h = self.header
        return Recording(self.block_set(epoch_ns, thread, stack), list(self.freed(epoch_ns, thread, stack)),
                         self.counters(), self.last_seq, now, self.timeline_points(epoch_ns), h.timeline_hi_bytes,
                         h.timeline_hi_blocks)

    def timeline_points(self, epoch_ns: int | None = None) -> list[Point]:
        """The recorder's timeline as core/timeline.py points (seconds since `epoch_ns`, default its start)."""
        epoch = self.header.start_ns if epoch_ns is None else epoch_ns
        return [Point(max(t - epoch, 0) / 1e9, b, n, pb, pn) for t, b, n, pb, pn in self.points]

    def freed(self, epoch_ns: int | None = None, thread: Callable[[int], int] = lambda tid: tid,
              stack: Callable[[int], tuple[int, ...]] | None = None) -> Iterator[FreedBlock]:
        """The freed blocks the recorder still remembers (to explain a later bad pointer)."""
        epoch = self.header.start_ns if epoch_ns is None else epoch_ns
        stack_of = stack or self.stack
        for addr, size, seq, time_ns, stack_id, tid, allocator, _state, free_stack, free_ns, free_tid in \
                self.freed_rows:
            label, family = self.names[allocator]
            block = Block(addr, size, label, thread(tid), seq, (time_ns - epoch) / 1e9, stack_of(stack_id), family)
            yield FreedBlock(block, stack_of(free_stack), thread(free_tid), max(free_ns - epoch, 0) / 1e9)

    def sizes(self) -> dict[int, int]:
        """address -> size of every live block (what the reachability scan needs), without building Blocks."""
        live = self.live
        if live.arrays:
            return dict(zip(live.addr.tolist(), live.size.tolist()))
        return dict(zip(live.addr, live.size))

    def error(self, record: tuple[int, ...], epoch_ns: int | None = None,
              thread: Callable[[int], int] = lambda tid: tid) -> HeapError:
        epoch = self.header.start_ns if epoch_ns is None else epoch_ns
        return error_from_record(record, self.names, self.stack, epoch, thread)

    def errors(self, epoch_ns: int | None = None,
               thread: Callable[[int], int] = lambda tid: tid) -> list[HeapError]:
        return [self.error(r, epoch_ns, thread) for r in self.error_records]


def error_from_record(record: tuple[int, ...], names: list[tuple[str, str]], stack: Callable[[int], tuple[int, ...]],
                      epoch_ns: int, thread: Callable[[int], int] = lambda tid: tid) -> HeapError:
    """A HeapError with the fields the breakpoint engine's table fills for the same error type."""
    (kind, addr, tid, time_ns, stack_id, allocator, alloc_stack, free_stack, block_size, alloc_allocator,
     _skip, seq) = record
    type_ = ERROR_TYPES.get(kind, ErrorType.INVALID_FREE)
    error = HeapError(type_, addr, thread(tid), (time_ns - epoch_ns) / 1e9, stack(stack_id), names[allocator][0],
                      event=seq)
    if type_ in (ErrorType.DOUBLE_FREE, ErrorType.MISMATCHED_FREE):
        error.alloc_pcs = stack(alloc_stack)
        error.free_pcs = stack(free_stack) if type_ is ErrorType.DOUBLE_FREE else ()
        error.block_size = None if block_size == UNKNOWN else block_size
        error.alloc_allocator = None if alloc_allocator == UNKNOWN else names[alloc_allocator][0]
    return error


def parse_error(data: bytes) -> tuple[int, ...]:
    return ERROR.unpack_from(data)


def read_snapshot(read: ReadMemory, region: int, scratch: ScratchRead | None = None) -> AgentSnapshot:
    """Read the whole recorder state at `region` (the header's address) in a handful of bulk reads. `scratch`: a
    read whose answer may be overwritten by its next call (ProcMemory.read_scratch), for the record area, which is
    filtered piece by piece: one buffer for every piece instead of fresh pages each."""
    header = parse_header(read(region, HEADER.size))
    h = header
    shard_bytes = read(region + h.shards_off, h.nshards * SHARD.size)
    shards = []
    for row in SHARD.iter_unpack(shard_bytes):
        _lock, _pad, table_off, capacity, used, allocs, frees, nbytes, _ring, _head = row
        shards.append(Shard(table_off, capacity, used, allocs, frees, nbytes))
    slots = SlotFilter(h.live_blocks)
    stored = min(h.records_used, h.records_capacity)
    for first in range(0, stored, RECORDS_PER_READ):
        piece = min(RECORDS_PER_READ, stored - first)
        slots.add((scratch or read)(region + h.records_off + first * SLOT.size, piece * SLOT.size))
    names = parse_names(read(region + h.names_off, h.names_size))
    used_words = min(h.pool_used_words, h.pool_capacity_words)
    pool = read(region + h.pool_off, used_words * 8) if used_words > 1 else b""
    count = min(h.error_count, h.errors_capacity)
    errors: list[tuple[int, ...]] = []
    if count:
        ring = read(region + h.errors_off, h.errors_capacity * ERROR.size)
        records = [ERROR.unpack_from(ring, i * ERROR.size) for i in range(h.errors_capacity)]
        errors = sorted((r for r in records if r[ERROR_SEQ_INDEX]), key=lambda r: r[ERROR_SEQ_INDEX])[-count:]
    points = min(h.timeline_count, h.timeline_capacity)
    timeline = list(POINT.iter_unpack(read(region + h.timeline_off, points * POINT.size))) if points else []
    return AgentSnapshot(header, shards, names, slots.live(), slots.freed_rows(), pool, errors, region, timeline)


# -- finding the region in a process -------------------------------------------------------------------------------

SHT_DYNSYM, STT_OBJECT = 11, 1


def dynamic_object(path: str, name: str) -> tuple[int, int, int] | None:
    """(st_value, e_type, min_vaddr) of an exported data object of an ELF64 file, or None."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return None
    (e_type, _m, _v, _entry, e_phoff, e_shoff, _flags, _eh, e_phentsize, e_phnum, e_shentsize, e_shnum,
     _shstrndx) = struct.unpack_from("<HHIQQQIHHHHHH", data, 16)
    min_vaddr = min((struct.unpack_from("<IIQQ", data, e_phoff + i * e_phentsize)[3] for i in range(e_phnum)
                     if struct.unpack_from("<I", data, e_phoff + i * e_phentsize)[0] == 1), default=0) & ~0xFFF
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, e_shoff + i * e_shentsize) for i in range(e_shnum)]
    wanted = name.encode()
    for _n, sh_type, _f, _a, offset, size, link, _i, _al, entsize in sections:
        if sh_type != SHT_DYNSYM or not entsize:
            continue
        str_off = sections[link][4]
        for pos in range(offset, offset + size, entsize):
            st_name, st_info, _o, st_shndx, st_value, _s = struct.unpack_from("<IBBHQQ", data, pos)
            if st_shndx and (st_info & 0xF) == STT_OBJECT and \
                    data[str_off + st_name:str_off + st_name + len(wanted) + 1] == wanted + b"\0":
                return st_value, e_type, min_vaddr
    return None


def recorder_library(maps: list[Mapping]) -> str | None:
    """The path of the preloaded recorder in a process's mappings, if it is loaded."""
    for m in maps:
        if m.path.endswith(LIBRARY_SUFFIX) and os.path.basename(m.path).startswith("librecorder"):
            return m.path
    return None


def anchor_address(maps: list[Mapping]) -> int | None:
    """Where `memleak_agent` lives in the process (ELF symbol table + load bias), None without the recorder."""
    path = recorder_library(maps)
    if path is None:
        return None
    found = dynamic_object(path, ANCHOR_SYMBOL)
    if found is None:
        return None
    value, e_type, min_vaddr = found
    bias = load_bias(maps, path, e_type, min_vaddr)
    return None if bias is None else bias + value


def _anchor_fields(read: ReadMemory, anchor: int) -> tuple[int, ...]:
    fields: tuple[int, ...] = ANCHOR.unpack(read(anchor, ANCHOR.size))
    if fields[0] != MAGIC:
        raise AgentFormatError("gdb-memleak: the recorder's anchor symbol does not hold its magic")
    if fields[1] != VERSION:
        raise AgentFormatError(f"gdb-memleak: recorder format {fields[1]}, this reader knows {VERSION}")
    return fields


def region_address(read: ReadMemory, anchor: int) -> int:
    """The region's address from the anchor; 0 while the recorder has not run yet, or when it stopped."""
    return _anchor_fields(read, anchor)[2]


def stopped_reason(read: ReadMemory, anchor: int) -> str | None:
    """Why the recorder records nothing in this process (one phrase, with the failed call's error), or None."""
    *_, reason, err = _anchor_fields(read, anchor)
    if not reason:
        return None
    text = STOPPED_REASONS.get(reason, f"it stopped (reason {reason})")
    return f"{text}: {os.strerror(err)}" if err else text


@dataclass(frozen=True)
class Progress:
    """The recorder's running figures, read while the program runs (a progress line): no stacks, no blocks."""

    events: int       # allocations + releases so far
    live_blocks: int
    live_bytes: int


def _header_and_frees(read: ReadMemory, region: int) -> tuple[Header, int]:
    """Two small reads: the header, and the shard array for the releases counted per shard."""
    h = parse_header(read(region, HEADER.size))
    shard_bytes = read(region + h.shards_off, h.nshards * SHARD.size)
    return h, sum(row[6] for row in SHARD.iter_unpack(shard_bytes))


def read_progress(read: ReadMemory, region: int) -> Progress:
    """Cheap enough twice a second while the program runs."""
    h, frees = _header_and_frees(read, region)
    return Progress(h.seq + frees, h.live_blocks, h.live_bytes)


def change_mark(read: ReadMemory, region: int) -> tuple[int, ...]:
    """Figures that move with every event the recorder records (allocations, releases, bad releases, failures):
    equal marks mean equal tables, so a second read of a stopped process can be skipped."""
    h, frees = _header_and_frees(read, region)
    return h.seq, frees, h.error_count, h.failed_allocs, h.live_blocks, h.live_bytes, h.pool_used_words


class ProcMemory:
    """Bulk reads and writes of another process's memory through /proc/PID/mem (it must be stopped or ours)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._file = open(f"/proc/{pid}/mem", "r+b", buffering=0)  # noqa: SIM115 - closed by close()
        self._scratch = bytearray()

    def read(self, address: int, size: int) -> bytes | bytearray:
        """Exactly `size` bytes, read straight into one buffer (a bytearray: no copy of a slot table)."""
        out = bytearray(size)
        self._fill(memoryview(out), address)
        return out  # a bytearray: read as bytes everywhere it is used

    def read_scratch(self, address: int, size: int) -> memoryview:
        """As `read`, into one buffer reused by the next call (the caller is done with the answer by then)."""
        if len(self._scratch) < size:
            self._scratch = bytearray(size)
        view = memoryview(self._scratch)[:size]
        self._fill(view, address)
        return view

    def _fill(self, view: memoryview, address: int) -> None:
        done, size = 0, len(view)
        while done < size:
            got = os.preadv(self._file.fileno(), [view[done:done + (64 << 20)]], address + done)
            if got <= 0:
                raise AgentFormatError(f"gdb-memleak: cannot read {size} bytes at 0x{address:x} of {self.pid}")
            done += got

    def write(self, address: int, data: bytes) -> None:
        self._file.seek(address)
        self._file.write(data)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "ProcMemory":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


PT_INTERP = 3


def is_dynamic(path: str) -> bool:
    """Whether an executable asks for the dynamic loader (PT_INTERP): only then can a library be preloaded."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2:
                return False
            e_phoff, = struct.unpack_from("<Q", head, 32)
            e_phentsize, e_phnum = struct.unpack_from("<HH", head, 54)
            f.seek(e_phoff)
            table = f.read(e_phentsize * e_phnum)
    except OSError:
        return False
    return any(struct.unpack_from("<I", table, i * e_phentsize)[0] == PT_INTERP
               for i in range(len(table) // max(e_phentsize, 1)))
