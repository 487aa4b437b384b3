"""Grouping unfreed blocks into leak sites: by full allocation stack, or by the source line of the first user frame."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

from .model import Block, Frame
from .symbols import Symbolizer, SystemFilter


@dataclass
class LeakGroup:
    """Blocks sharing kind, allocator and allocation stack."""

    kind: str
    allocator: str
    pcs: tuple[int, ...]
    bytes: int = 0
    blocks: int = 0
    first_seq: int = 0
    addresses: list[int] = field(default_factory=list)
    suppressed_by: object | None = None  # the Suppression matching this group's stack, if any
    indirect_bytes: int = 0   # definite groups: what is indirectly lost through their blocks (valgrind's
    indirect_blocks: int = 0  # "80 (16 direct, 64 indirect) bytes in 1 blocks are definitely lost")

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


def _sort_key(group: LeakGroup | LineGroup) -> tuple:
    return (-group.bytes, -group.blocks, group.first_seq)


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


def group_by_line(blocks: Iterable[Block], symbolizer: Symbolizer, system: SystemFilter) -> list[LineGroup]:
    groups: dict[tuple, LineGroup] = {}
    for block in sorted(blocks, key=lambda b: b.seq):
        site = system.user_frame(symbolizer.stack(block.pcs)) or Frame(0, "??")
        key = (site.file, site.line) if site.file and site.line else ("pc", site.pc)
        group = groups.get(key)
        if group is None:
            group = groups[key] = LineGroup(site, first_seq=block.seq)
        group.bytes += block.size
        group.blocks += 1
        group.allocators.add(block.allocator)
    return sorted(groups.values(), key=_sort_key)


def select(groups: list, top: int | None = None, min_bytes: int = 0) -> list:
    """Apply `--min-bytes` then `--top`."""
    chosen = [g for g in groups if g.bytes >= min_bytes]
    return chosen[:top] if top is not None else chosen
