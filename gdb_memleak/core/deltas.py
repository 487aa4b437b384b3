"""Loss-record deltas, valgrind's `leak_check ... increased|changed`: what each loss record gained or lost since the
previous checkpoint (a report, a check, a snapshot).

A loss record is keyed as valgrind keys it, by leak kind and allocation stack (and allocator here); its figures are
its direct bytes, the bytes lost through it (a definite record's indirect bytes) and its blocks. valgrind shows a
record under `increased` when any of the three went up, under `changed` when any differs, a record whose blocks
are all gone included ("0 (-16) bytes in 0 (-1) blocks") for the one check after it emptied.

Which checkpoint a report compares with: the latest one taken at another state of the process than the one shown.
A report made right after its own checkpoint (the end-of-run report, then the files written from it) therefore
shows the same deltas as one made just before it: they all compare with the checkpoint before.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from .grouping import LeakGroup

LossKey = tuple[str, str, tuple[int, ...]]  # kind, allocator, allocation stack

INCREASED = "increased"
CHANGED = "changed"


class Figures(NamedTuple):
    """A loss record's size at a checkpoint: direct bytes, bytes lost through it, blocks (a tuple: a checkpoint
    keeps one per loss record, tens of thousands in a large program)."""

    bytes: int
    indirect_bytes: int
    blocks: int


NONE = Figures(0, 0, 0)


class Delta(NamedTuple):
    """A loss record's change since the baseline. `bytes` counts what is lost through it too, as valgrind's first
    figure does ("80 (+80) (16 (+16) direct, 64 (+64) indirect) bytes in 1 (+1) blocks")."""

    bytes: int
    indirect_bytes: int
    blocks: int

    @property
    def direct_bytes(self) -> int:
        return self.bytes - self.indirect_bytes

    @property
    def increased(self) -> bool:
        """valgrind's `increased`: its direct bytes, indirect bytes or blocks went up."""
        return self.direct_bytes > 0 or self.indirect_bytes > 0 or self.blocks > 0

    @property
    def changed(self) -> bool:
        return self.direct_bytes != 0 or self.indirect_bytes != 0 or self.blocks != 0

    def to_json(self) -> dict[str, int]:
        return {"bytes": self.bytes, "indirect_bytes": self.indirect_bytes, "blocks": self.blocks}


def records(groups: Iterable[LeakGroup]) -> dict[LossKey, Figures]:
    """Every loss record's figures (what a checkpoint keeps)."""
    return {(g.kind, g.allocator, g.pcs): Figures(g.bytes, g.indirect_bytes, g.blocks) for g in groups}


def selected_by(group: LeakGroup, mode: str | None) -> bool:
    """Whether a record is listed under `mode` (None: every record). With no baseline yet every record is new, as
    valgrind's first delta check finds it."""
    if mode is None or group.delta is None:
        return True
    return group.delta.increased if mode == INCREASED else group.delta.changed


@dataclass(frozen=True)
class Checkpoint:
    """The loss records at one checkpoint, and the state of the process they were taken at."""

    state: Hashable
    time: float
    records: Mapping[LossKey, Figures]

    def delta_of(self, group: LeakGroup) -> Delta:
        """The record's change since this checkpoint (from nothing when it had no such record)."""
        before = self.records.get((group.kind, group.allocator, group.pcs), NONE)
        indirect = group.indirect_bytes - before.indirect_bytes
        return Delta(group.bytes - before.bytes + indirect, indirect, group.blocks - before.blocks)

    def gone(self, now: Iterable[LossKey]) -> dict[LossKey, Delta]:
        """The records this checkpoint had that are empty now, as deltas down to zero."""
        present = set(now)
        return {key: Delta(-before.bytes - before.indirect_bytes, -before.indirect_bytes, -before.blocks)
                for key, before in self.records.items() if key not in present and before.blocks}


class Baselines:
    """The last two checkpoints of one process: a report compares with the latest one taken at another state."""

    def __init__(self) -> None:
        self._kept: list[Checkpoint] = []

    @property
    def latest_state(self) -> Hashable | None:
        return self._kept[-1].state if self._kept else None

    def record(self, state: Hashable, time: float, figures: Mapping[LossKey, Figures]) -> None:
        """A checkpoint at `state`; a second one at the same state replaces the first (nothing happened between)."""
        if self._kept and self._kept[-1].state == state:
            self._kept.pop()
        self._kept = [*self._kept[-1:], Checkpoint(state, time, figures)]

    def baseline(self, state: Hashable) -> Checkpoint | None:
        """What a report of the process at `state` compares with (None: no checkpoint before it)."""
        for checkpoint in reversed(self._kept):
            if checkpoint.state != state:
                return checkpoint
        return None
