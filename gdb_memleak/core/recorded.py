"""One read of the recorder's table in the table's terms, and what `memleak reset` makes a read leave out.

The recorder keeps counting through a `memleak reset` (it numbers and counts every call itself), so the table
remembers where the reset was (`ResetMark`) and every later read drops what came before: the blocks allocated
before, their frees (counted as untracked, as for a table started mid-run), the timeline's earlier points; the
totals count from the mark. The breakpoint engine's cleared table gives the same figures by never seeing them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import NamedTuple

from .liveblocks import BlockSet
from .model import Counters, FreedBlock
from .timeline import Point


class ResetMark(NamedTuple):
    """Where `memleak reset` was: the last allocation's number, the recorder's own counters then (as read, before
    any earlier reset was left out), and the time (seconds since tracking began)."""

    seq: int
    counters: Counters
    time: float


@dataclass
class Recording:
    """The recorder's table as read at `now` (seconds since tracking began): live blocks, the freed blocks it still
    remembers, its counters, timeline points and highest figures since the last point, its last allocation
    number."""

    blocks: BlockSet
    freed: list[FreedBlock]
    counters: Counters
    last_seq: int
    now: float
    points: list[Point] = field(default_factory=list)
    high_bytes: int = 0
    high_blocks: int = 0


def forget_before(recording: Recording, mark: ResetMark) -> Recording:
    """The recording less what came before `mark` (the input is left as it is: a later reset marks its counters)."""
    seq, before, at = mark
    raw = recording.counters
    blocks = recording.blocks.allocated_after(seq)
    counters = replace(raw)
    counters.allocs = raw.allocs - before.allocs
    counters.bytes_allocated = raw.bytes_allocated - before.bytes_allocated
    counters.failed_allocs = raw.failed_allocs - before.failed_allocs
    counters.live_blocks = len(blocks)
    counters.live_bytes = blocks.total_bytes()
    # frees of blocks allocated since the mark = those blocks no longer live; the other frees since were of
    # forgotten blocks: untracked
    frees = raw.frees - before.frees
    forgotten = max(frees - (counters.allocs - counters.live_blocks), 0)
    counters.frees = frees - forgotten
    counters.untracked_frees = raw.untracked_frees + forgotten
    later = [p for p in recording.points if p.time >= at]
    counters.peak_blocks = max([counters.live_blocks, *(p.peak_blocks for p in later)])
    counters.peak_bytes = max([counters.live_bytes, *(p.peak_bytes for p in later)])
    return replace(recording, blocks=blocks, freed=[f for f in recording.freed if f.block.seq > seq],
                   counters=counters, points=later)
