"""Live blocks as columns: the recorder's million live blocks held as numpy arrays (42 bytes a block) instead of a
Python `Block` each (~700 bytes), with a `Block` made only for what a command or report shows.

`LiveColumns` is a read-only Mapping address -> Block and one of the two implementations of core/liveblocks.BlockSet
(the other: the breakpoint engine's dict), so the table, `memleak block` and the reports use it as they use the dict;
what must touch every block (grouping into loss records, the scan's arrays, the distinct stacks to symbolize) has a
vectorised path here and in core/grouping.py. Needs numpy: without it the recorder's table is read into a
`BlockDict`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from .liveblocks import BlockDict
from .model import Block

if TYPE_CHECKING:
    from .grouping import LeakGroup
    from .kinds import LeakKind
    from .report import LeakFilter

StackOf = Callable[[int], tuple[int, ...]]
ThreadOf = Callable[[int], int]


class LiveColumns(Mapping[int, Block]):
    """Live blocks sorted by address. Columns (equal length): `addr`, `size`, `seq` (int64), `time` (float64
    seconds since tracking began; given as int64 nanoseconds since `epoch_ns` when that is given, and converted only
    where used), `stack` (stack id; `stack_of(id)` gives its PCs), `tid` (kernel thread id;
    `thread_of(tid)` gives GDB's thread number), `allocator` (index into `names`: (label, family))."""

    def __init__(self, addr: Any, size: Any, seq: Any, time: Any, stack: Any, tid: Any, allocator: Any,
                 names: list[tuple[str, str]], stack_of: StackOf, thread_of: ThreadOf,
                 epoch_ns: int | None = None) -> None:
        order = np.argsort(addr, kind="stable") if len(addr) > 1 and not bool(np.all(addr[1:] > addr[:-1])) \
            else None
        pick = (lambda c: c[order]) if order is not None else (lambda c: c)
        self.addr = np.ascontiguousarray(pick(addr), dtype=np.int64)
        self.size = np.ascontiguousarray(pick(size), dtype=np.int64)
        self.seq = np.ascontiguousarray(pick(seq), dtype=np.int64)
        self.epoch_ns = epoch_ns
        self.raw_time = np.ascontiguousarray(pick(time), dtype=np.float64 if epoch_ns is None else np.int64)
        self.stack = np.ascontiguousarray(pick(stack), dtype=np.uint32)
        self.tid = np.ascontiguousarray(pick(tid), dtype=np.uint32)
        self.allocator = np.ascontiguousarray(pick(allocator), dtype=np.uint16)
        self.names, self.stack_of, self.thread_of = names, stack_of, thread_of
        # the groups made last (what they were made from, the groups): the columns never change (a new read of the
        # recorder makes new ones), and a report asks for the same groups several times
        self._grouped: tuple[tuple, list[LeakGroup]] | None = None

    @classmethod
    def from_blocks(cls, blocks: Mapping[int, Block]) -> LiveColumns:
        """Columns of a dict of Blocks (tests compare the two paths): stacks and allocators interned."""
        stacks: dict[tuple[int, ...], int] = {}
        names: dict[tuple[str, str], int] = {}
        values = list(blocks.values())
        stack_ids = [stacks.setdefault(b.pcs, len(stacks) + 1) for b in values]
        allocators = [names.setdefault((b.allocator, b.family), len(names)) for b in values]
        by_id = {i: pcs for pcs, i in stacks.items()}
        threads = {b.thread: b.thread for b in values}
        return cls(np.array([b.address for b in values], dtype=np.int64),
                   np.array([b.size for b in values], dtype=np.int64),
                   np.array([b.seq for b in values], dtype=np.int64),
                   np.array([b.time for b in values], dtype=np.float64),
                   np.array(stack_ids, dtype=np.uint32), np.array([b.thread for b in values], dtype=np.uint32),
                   np.array(allocators, dtype=np.uint16), list(names), lambda i: by_id.get(i, ()),
                   lambda t: threads.get(t, t))

    @property
    def time(self) -> Any:
        """Seconds since tracking began, a float64 array made when asked (a filter by age)."""
        return self._seconds(self.raw_time)

    def _seconds(self, raw: Any) -> Any:
        if self.epoch_ns is None:
            return float(raw) if np.ndim(raw) == 0 else raw
        seconds = (raw - self.epoch_ns) / 1e9
        return float(seconds) if np.ndim(raw) == 0 else seconds

    # -- Mapping ------------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.addr)

    def __iter__(self) -> Iterator[int]:
        return iter(self.addr.tolist())

    def index(self, address: int) -> int | None:
        """Row of the block starting at `address`, or None."""
        if not 0 <= address < 1 << 63:
            return None
        i = int(np.searchsorted(self.addr, address))
        return i if i < len(self.addr) and int(self.addr[i]) == address else None

    def __contains__(self, address: object) -> bool:
        return isinstance(address, int) and self.index(address) is not None

    def __getitem__(self, address: int) -> Block:
        i = self.index(address)
        if i is None:
            raise KeyError(address)
        return self.block(i)

    def block(self, i: int) -> Block:
        label, family = self.names[int(self.allocator[i])]
        return Block(int(self.addr[i]), int(self.size[i]), label, self.thread_of(int(self.tid[i])), int(self.seq[i]),
                     self._seconds(self.raw_time[i]), self.stack_of(int(self.stack[i])), family)

    def blocks(self) -> Iterator[Block]:
        """Every block in address order, made one at a time and not kept (slow for a million: the vectorised
        paths avoid it)."""
        return (self.block(i) for i in range(len(self.addr)))

    def in_allocation_order(self) -> Iterator[Block]:
        """Every block, oldest allocation first, made one at a time and not kept."""
        return (self.block(i) for i in np.argsort(self.seq, kind="stable").tolist())

    def select(self, rows: Any) -> LiveColumns:
        """The blocks of these rows (a boolean mask or row numbers), as columns of their own."""
        return LiveColumns(self.addr[rows], self.size[rows], self.seq[rows], self.raw_time[rows], self.stack[rows],
                           self.tid[rows], self.allocator[rows], self.names, self.stack_of, self.thread_of,
                           self.epoch_ns)

    # -- the rest of BlockSet ------------------------------------------------------------------------------------
    def total_bytes(self) -> int:
        return int(self.size.sum())

    def allocated_after(self, seq: int) -> LiveColumns:
        return self.select(self.seq > seq)

    def copy(self) -> LiveColumns:
        return self  # read-only: a forked child's table may share them

    def editable(self) -> BlockDict:
        return BlockDict((b.address, b) for b in self.blocks())

    def scan_input(self) -> tuple[Mapping[int, int], Any]:
        return self.sizes(), self.scan_arrays()

    def leak_groups(self, kinds: Mapping[int, LeakKind] | None, leaders: Mapping[int, int] | None,
                    where: LeakFilter | None) -> list[LeakGroup]:
        """core/grouping.group_columns over the rows `where` admits; made once per (scan, filter)."""
        from .grouping import group_columns, kind_codes

        if where is not None and where.since_seq <= 0 and where.older_than is None:
            where = None  # admits every block: the same groups as no filter (the report asks both ways)
        filter_key = (where.since_seq, where.older_than, where.now) if where is not None else None
        made = self._grouped
        if made is not None:
            (was_kinds, was_leaders, was_filter), groups = made
            if was_kinds is kinds and was_leaders is leaders and was_filter == filter_key:
                return groups
        rows = self._admitted(where) if where is not None else None
        groups = group_columns(self, kind_codes(self, kinds), rows, leaders)
        self._grouped = ((kinds, leaders, filter_key), groups)
        return groups

    def _admitted(self, where: LeakFilter) -> Any:
        """The rows `where` admits, as LeakFilter.admits decides for one block."""
        keep = self.seq > where.since_seq
        if where.older_than is not None:
            keep &= where.now - self.time >= where.older_than
        return np.flatnonzero(keep)

    # -- bulk ---------------------------------------------------------------------------------------------------
    def containing(self, address: int) -> Block | None:
        """The block whose [start, start + max(size, 1)) holds `address`."""
        if not 0 <= address < 1 << 63:
            return None
        i = int(np.searchsorted(self.addr, address, side="right")) - 1
        if i >= 0 and address - int(self.addr[i]) < max(int(self.size[i]), 1):
            return self.block(i)
        return None

    def stacks(self) -> list[tuple[int, ...]]:
        """Each distinct stack the blocks were allocated from, once."""
        ids = np.sort(self.stack)  # sort and compare neighbours: np.unique would import numpy.ma (~8 ms) first
        return [self.stack_of(s) for s in ids[np.flatnonzero(np.diff(ids, prepend=-1))].tolist()]

    def scan_arrays(self) -> Any:
        """The scan's view of these blocks (scan/numpy_heap.Blocks): starts and sizes as they are, in address order."""
        from .scan.numpy_heap import Blocks

        sizes = self.size if not len(self.size) or int(self.size.min()) >= 0 else np.maximum(self.size, 0)
        return Blocks(self.addr, sizes, in_order=True)  # the columns themselves, not copies

    def sizes(self) -> Mapping[int, int]:
        """address -> size, by search over the columns (what the scan looks up; never iterated there)."""
        return _Sizes(self)


class _Sizes(Mapping[int, int]):
    def __init__(self, columns: LiveColumns) -> None:
        self.columns = columns

    def __len__(self) -> int:
        return len(self.columns)

    def __iter__(self) -> Iterator[int]:
        return iter(self.columns)

    def __getitem__(self, address: int) -> int:
        i = self.columns.index(address)
        if i is None:
            raise KeyError(address)
        return int(self.columns.size[i])
