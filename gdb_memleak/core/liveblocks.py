"""The live blocks of a table, address -> Block, as one type with two implementations: `BlockDict` (a dict the
breakpoint engine's events change, and the recorder's table read without numpy) and `LiveColumns` (core/live.py:
the recorder's table as numpy columns, read-only, a Block made only for what is shown).

The table, the scan's input, the report's grouping and the commands use only `BlockSet`'s methods, so nothing
outside these two classes asks which one it holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from .addressinfo import containing
from .kinds import UNFREED, LeakKind
from .model import Block

if TYPE_CHECKING:
    from .grouping import LeakGroup
    from .report import LeakFilter


class BlockSet(Protocol):
    """A process's live blocks by start address (read-only but for `editable()`)."""

    def __len__(self) -> int: ...

    def __contains__(self, address: object) -> bool: ...

    def __iter__(self) -> Iterator[int]: ...  # the addresses

    def __getitem__(self, address: int) -> Block: ...

    def get(self, address: int) -> Block | None: ...

    def blocks(self) -> Iterator[Block]:
        """Every block as an object, in no particular order (a listing: made one at a time)."""
        ...

    def in_allocation_order(self) -> Iterator[Block]:
        """Every block, oldest allocation first."""
        ...

    def containing(self, address: int) -> Block | None:
        """The block whose [start, start + max(size, 1)) holds `address`."""
        ...

    def stacks(self) -> Iterable[tuple[int, ...]]:
        """Each distinct allocation stack, once (what a report symbolizes)."""
        ...

    def total_bytes(self) -> int: ...

    def allocated_after(self, seq: int) -> BlockSet:
        """The blocks whose allocation number is above `seq` (what `memleak reset` keeps), as a set of their own."""
        ...

    def copy(self) -> BlockSet:
        """What a forked child's table starts from: a set the parent's later events do not change."""
        ...

    def editable(self) -> BlockDict:
        """The blocks as a dict an event may change: itself when it is one, else a new one (rare, small)."""
        ...

    def scan_input(self) -> tuple[Mapping[int, int], Any | None]:
        """What the reachability scan takes: address -> size, and prepared arrays (core/fastscan.Blocks) or None."""
        ...

    def leak_groups(self, kinds: Mapping[int, LeakKind] | None, leaders: Mapping[int, int] | None,
                    where: LeakFilter | None) -> list[LeakGroup]:
        """Loss records of the blocks `where` admits (None: all), by kind (from a scan; "unfreed" when none),
        allocator and stack; a definite record carries what is lost through its blocks (`leaders`: indirect block
        -> its definite leader, sizes taken over every block, admitted or not)."""
        ...


class BlockDict(dict[int, Block]):
    """Live blocks as a dict of Blocks: what the events of the breakpoint engine update in place."""

    def blocks(self) -> Iterator[Block]:
        return iter(self.values())

    def in_allocation_order(self) -> Iterator[Block]:
        return iter(sorted(self.values(), key=lambda b: b.seq))

    def containing(self, address: int) -> Block | None:
        found = containing(address, ((b.address, b.size) for b in self.values()))
        return self[found[0]] if found is not None else None

    def stacks(self) -> set[tuple[int, ...]]:
        return {b.pcs for b in self.values()}

    def total_bytes(self) -> int:
        return sum(b.size for b in self.values())

    def allocated_after(self, seq: int) -> BlockDict:
        return BlockDict((a, b) for a, b in self.items() if b.seq > seq)

    def copy(self) -> BlockDict:
        return BlockDict(self)

    def editable(self) -> BlockDict:
        return self

    def scan_input(self) -> tuple[Mapping[int, int], Any | None]:
        return {b.address: b.size for b in self.values()}, None

    def leak_groups(self, kinds: Mapping[int, LeakKind] | None, leaders: Mapping[int, int] | None,
                    where: LeakFilter | None) -> list[LeakGroup]:
        from .grouping import attribute_indirect, group_by_stack

        live = list(self.values())
        kind_of = (lambda b: kinds.get(b.address, UNFREED)) if kinds is not None else (lambda b: UNFREED)
        groups = group_by_stack(live if where is None else [b for b in live if where.admits(b)], kind_of)
        if leaders:
            attribute_indirect(groups, leaders, {a: self[a].size for a in leaders if a in self})
        return groups
