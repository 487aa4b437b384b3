"""Grouping unfreed blocks into leak sites: by full allocation stack, or by the source line of the first user frame."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from .kinds import LeakKind
from .model import Block, Frame
from .scan import KIND_OF_STATE, KindArray
from .symbols import Symbolizer, SystemFilter

if TYPE_CHECKING:
    from .deltas import Delta
    from .live import LiveColumns
    from .suppressions import AnySuppression


@dataclass
class LeakGroup:
    """Blocks sharing kind, allocator and allocation stack."""

    kind: str
    allocator: str
    pcs: tuple[int, ...]
    bytes: int = 0
    blocks: int = 0
    first_seq: int = 0
    addresses: Any = field(default_factory=list)  # list[int]; an int64 array for groups of columns
    suppressed_by: AnySuppression | None = None  # the suppression matching this loss record, if any
    indirect_bytes: int = 0   # definite groups: what is indirectly lost through their blocks (valgrind's
    indirect_blocks: int = 0  # "80 (16 direct, 64 indirect) bytes in 1 blocks are definitely lost")
    delta: Delta | None = None  # the change since the previous checkpoint (core/deltas.py); None: no baseline

    @property
    def total_bytes(self) -> int:
        return self.bytes + self.indirect_bytes


@dataclass
class LineGroup:
    """Blocks whose first user frame is the same source line (or the same PC when there is no line info)."""

    frame: Frame
    bytes: int = 0
    blocks: int = 0
    allocators: set[str] = field(default_factory=set)
    first_seq: int = 0
    indirect_bytes: int = 0   # lost through the definite blocks allocated at this line (their records' sums)
    indirect_blocks: int = 0

    @property
    def total_bytes(self) -> int:
        return self.bytes + self.indirect_bytes


def _sort_key(group: LeakGroup | LineGroup) -> tuple:
    """Largest first by what is lost through a record too, as valgrind orders loss records."""
    return (-group.total_bytes, -group.blocks, group.first_seq)


def group_by_stack(blocks: Iterable[Block], kind_of: Callable[[Block], str] = lambda b: "unfreed") -> list[LeakGroup]:
    groups: dict[tuple, LeakGroup] = {}
    for block in sorted(blocks, key=lambda b: b.seq):
        kind = kind_of(block)
        key = (kind, block.allocator, block.pcs)
        group = groups.get(key)
        if group is None:
            group = groups[key] = LeakGroup(kind, block.allocator, block.pcs, first_seq=block.seq)
        group.bytes += block.size
        group.blocks += 1
        group.addresses.append(block.address)
    return sorted(groups.values(), key=_sort_key)


def attribute_indirect(groups: Iterable[LeakGroup], leaders: Mapping[int, int], sizes: Mapping[int, int]) -> None:
    """Credit each group with the blocks lost through its blocks: `leaders` maps every indirectly lost block to the
    definitely lost block (its clique leader) that reaches it, as valgrind adds a clique's size to its leader."""
    through: dict[int, list[int]] = {}
    for member, leader in leaders.items():
        entry = through.setdefault(leader, [0, 0])
        entry[0] += sizes.get(member, 0)
        entry[1] += 1
    for group in groups:
        group.indirect_bytes = group.indirect_blocks = 0
        for address in group.addresses:
            lost = through.get(address)
            if lost is not None:
                group.indirect_bytes += lost[0]
                group.indirect_blocks += lost[1]


def group_by_line(stacks: Iterable[LeakGroup], symbolizer: Symbolizer, system: SystemFilter) -> list[LineGroup]:
    """Loss records merged by the source line of their first user frame (every block of a record has its stack,
    so merging records is merging their blocks)."""
    groups: dict[tuple, LineGroup] = {}
    for record in sorted(stacks, key=lambda g: g.first_seq):
        site = system.user_frame(symbolizer.stack(record.pcs)) or Frame(0, "??")
        key = (site.file, site.line) if site.file and site.line else ("pc", site.pc)
        group = groups.get(key)
        if group is None:
            group = groups[key] = LineGroup(site, first_seq=record.first_seq)
        group.bytes += record.bytes
        group.blocks += record.blocks
        group.indirect_bytes += record.indirect_bytes
        group.indirect_blocks += record.indirect_blocks
        group.allocators.add(record.allocator)
    return sorted(groups.values(), key=_sort_key)


# -- the same over columns (core/live.py) ---------------------------------------------------------------------------
#: kind codes of group_columns: a scan state (scan.KIND_OF_STATE's order), then "not scanned"
KIND_CODES = (*KIND_OF_STATE, LeakKind.UNFREED)
UNFREED_CODE = KIND_CODES.index(LeakKind.UNFREED)


def kind_codes(columns: LiveColumns, kinds: Mapping[int, str] | None) -> Any:
    """Each row's kind code: from a scan's array of states (matched by address: the table may have been read
    again since), from a dict, or "unfreed" for blocks the scan did not see."""
    import numpy as np

    n = len(columns)
    if kinds is None:
        return np.full(n, UNFREED_CODE, np.uint8)
    if isinstance(kinds, KindArray):
        if kinds.starts is columns.addr:  # the scan of these very columns: its states are row for row
            return np.asarray(kinds.states, dtype=np.uint8)
        states = kinds.states_at(columns.addr)
        states[states == KindArray.ABSENT] = UNFREED_CODE
        return states
    code: dict[str, int] = {kind: i for i, kind in enumerate(KIND_CODES)}
    return np.fromiter((code[kinds.get(a, LeakKind.UNFREED)] for a in columns.addr.tolist()), np.uint8, n)


def group_columns(columns: LiveColumns, codes: Any, rows: Any | None = None,
                  leaders: Mapping[int, int] | None = None) -> list[LeakGroup]:
    """group_by_stack + attribute_indirect over columns, vectorised: rows sorted by (kind, allocator, stack id),
    sums per run; then records whose stack ids differ but whose (trimmed) stacks are equal are merged in Python,
    one step per record. `rows`: the row numbers a filter admits (None: all)."""
    import numpy as np

    pick = (lambda column: column) if rows is None else (lambda column: column[rows])
    if not len(pick(columns.addr)):
        return []
    # the key built in place, a column at a time: a million rows cost a few 8-byte arrays, never a dozen
    key = pick(codes).astype(np.int64)
    key <<= 48
    part = pick(columns.allocator).astype(np.int64)
    part <<= 32
    key |= part
    del part
    key |= pick(columns.stack)
    order = np.argsort(key, kind="stable")
    key = key[order]
    rows = order if rows is None else rows[order]
    del order
    starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
    sizes = np.add.reduceat(columns.size[rows], starts)
    counts = np.diff(np.append(starts, len(rows)))
    firsts = np.minimum.reduceat(columns.seq[rows], starts)
    addresses = columns.addr[rows]
    indirect = _indirect(columns, leaders) if leaders else None
    if indirect is not None:
        ibytes, iblocks = (np.add.reduceat(a[rows], starts) for a in indirect)
    bounds = np.append(starts, len(rows)).tolist()
    merged: dict[tuple, LeakGroup] = {}
    for g, k in enumerate(key[starts].tolist()):
        label = columns.names[(k >> 32) & 0xFFFF][0]
        kind = KIND_CODES[k >> 48]
        pcs = columns.stack_of(k & 0xFFFFFFFF)
        group = LeakGroup(kind, label, pcs, int(sizes[g]), int(counts[g]), int(firsts[g]),
                          addresses[bounds[g]:bounds[g + 1]])
        if indirect is not None:
            group.indirect_bytes, group.indirect_blocks = int(ibytes[g]), int(iblocks[g])
        same = merged.get((kind, label, pcs))
        if same is None:
            merged[(kind, label, pcs)] = group
            continue
        same.bytes += group.bytes
        same.blocks += group.blocks
        same.first_seq = min(same.first_seq, group.first_seq)
        same.addresses = np.concatenate((same.addresses, group.addresses))
        same.indirect_bytes += group.indirect_bytes
        same.indirect_blocks += group.indirect_blocks
    return sorted(merged.values(), key=_sort_key)


def _indirect(columns: LiveColumns, leaders: Mapping[int, int]) -> tuple[Any, Any]:
    """Per row: the bytes and blocks lost through that block (as attribute_indirect: a member not live counts as
    a block of 0 bytes)."""
    import numpy as np

    n = len(columns)
    members = np.fromiter(leaders.keys(), np.int64, len(leaders))
    heads = np.fromiter(leaders.values(), np.int64, len(leaders))
    addr = columns.addr
    at = np.minimum(np.searchsorted(addr, members), n - 1)
    member_sizes = np.where(addr[at] == members, columns.size[at], 0)
    lead = np.minimum(np.searchsorted(addr, heads), n - 1)
    live = addr[lead] == heads
    ibytes = np.zeros(n, np.int64)
    np.add.at(ibytes, lead[live], member_sizes[live])
    iblocks = np.bincount(lead[live], minlength=n).astype(np.int64)
    return ibytes, iblocks


def select(groups: list, top: int | None = None, min_bytes: int = 0) -> list:
    """Apply `--min-bytes` then `--top`."""
    chosen = [g for g in groups if g.bytes >= min_bytes]
    return chosen[:top] if top is not None else chosen
