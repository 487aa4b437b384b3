"""What keeps growing: the live bytes and blocks of each allocation stack at every checkpoint (a report, a check, a
snapshot), and the ranking of the stacks whose live bytes keep rising.

A stack is ranked as growing when, over the last `WINDOW` samples (at least `MIN_SAMPLES`):
- its live bytes rose from one sample to the next in most intervals (more than half),
- at least half of what it gained in the window is still live (a churning stack, up and down around a level,
  gains and gives back; a leak keeps what it gains),
- it ends above where the window began, and
- it rose in one of the last `RECENT` intervals: a stack that stopped rising has plateaued (a cache that filled up)
  and drops out, whatever it did before.
Its rate is what it gained over the window divided by the window's seconds; the ranking is by that rate.

Bounded whatever the run's length: `MAX_SAMPLES` samples per stack are kept (the oldest forgotten), and at most
`MAX_STACKS` stacks are followed — the largest by live bytes at each sample; a stack pushed out starts a new history
if it comes back. A stack with no live block over its whole kept history is forgotten.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .grouping import LeakGroup

MAX_SAMPLES = 32
MAX_STACKS = 1024
WINDOW = 8
MIN_SAMPLES = 3
RECENT = 2

StackKey = tuple[str, tuple[int, ...]]  # allocator, allocation stack


@dataclass(frozen=True)
class Sample:
    time: float   # seconds since tracking began
    bytes: int    # live bytes of the stack then
    blocks: int


@dataclass(frozen=True)
class Growing:
    """A stack whose live bytes keep growing: where, how much now, how fast, and how steadily."""

    allocator: str
    pcs: tuple[int, ...]
    bytes: int                   # live now (the latest sample)
    blocks: int
    rate: float                  # bytes per second over the window
    grew: int                    # intervals of the window in which its live bytes rose
    samples: int                 # samples in the window (grew is out of samples - 1)
    history: tuple[Sample, ...]  # every sample kept for it, oldest first

    def to_json(self) -> dict:
        return {"allocator": self.allocator, "bytes": self.bytes, "blocks": self.blocks,
                "rate_bytes_per_s": round(self.rate, 3), "grew": self.grew, "samples": self.samples,
                "history": [[round(s.time, 6), s.bytes, s.blocks] for s in self.history]}


def stack_sums(groups: Iterable[LeakGroup]) -> dict[StackKey, tuple[int, int]]:
    """Live (bytes, blocks) per allocation stack, every leak kind together, from loss records (core/grouping.py's
    groups: the vectorised grouping of the table's blocks, made once per scan)."""
    sums: dict[StackKey, tuple[int, int]] = {}
    for group in groups:
        key = (group.allocator, group.pcs)
        nbytes, nblocks = sums.get(key, (0, 0))
        sums[key] = (nbytes + group.bytes, nblocks + group.blocks)
    return sums


class GrowthHistory:
    """The samples of one process: their times, and per followed stack its figures at the latest ones."""

    def __init__(self, max_samples: int = MAX_SAMPLES, max_stacks: int = MAX_STACKS) -> None:
        self.max_samples = max_samples
        self.max_stacks = max_stacks
        self.times: deque[float] = deque(maxlen=max_samples)
        # per stack, its figures at the latest len(series) samples (aligned with the end of `times`)
        self.series: dict[StackKey, deque[tuple[int, int]]] = {}
        self.pushed_out = 0  # stacks no longer followed because larger ones took their place

    def __len__(self) -> int:
        return len(self.times)

    def sample(self, now: float, sums: Mapping[StackKey, tuple[int, int]]) -> None:
        """The live figures of every stack at `now` (a stack absent from `sums` has none live)."""
        self.times.append(now)
        for key, figures in sums.items():
            if figures[0] or figures[1] or key in self.series:
                self.series.setdefault(key, deque(maxlen=self.max_samples)).append(figures)
        for key, values in list(self.series.items()):
            if key not in sums:
                values.append((0, 0))
                if not any(v[0] or v[1] for v in values):
                    del self.series[key]
        if len(self.series) > self.max_stacks:
            kept = heapq.nlargest(self.max_stacks, self.series, key=lambda k: self.series[k][-1][0])
            self.pushed_out += len(self.series) - len(kept)
            self.series = {k: self.series[k] for k in kept}

    def history(self, key: StackKey) -> tuple[Sample, ...]:
        values = self.series.get(key, ())
        times = list(self.times)[len(self.times) - len(values):]
        return tuple(Sample(t, b, n) for t, (b, n) in zip(times, values))

    def ranking(self, window: int = WINDOW) -> list[Growing]:
        """The stacks that keep growing, fastest first."""
        found = []
        for key in self.series:
            history = self.history(key)
            growing = judge(key, history, window)
            if growing is not None:
                found.append(growing)
        return sorted(found, key=lambda g: (-g.rate, -g.bytes, g.pcs))


def judge(key: StackKey, history: tuple[Sample, ...], window: int = WINDOW) -> Growing | None:
    """The stack as growing (see the module's rules), or None."""
    seen = history[-window:]
    if len(seen) < MIN_SAMPLES:
        return None
    steps = [b.bytes - a.bytes for a, b in zip(seen, seen[1:])]
    rises = [s for s in steps if s > 0]
    gained = seen[-1].bytes - seen[0].bytes
    if (len(rises) * 2 <= len(steps) or gained <= 0 or gained * 2 < sum(rises)
            or not any(s > 0 for s in steps[-RECENT:])):
        return None
    seconds = seen[-1].time - seen[0].time
    rate = gained / seconds if seconds > 0 else 0.0
    return Growing(key[0], key[1], seen[-1].bytes, seen[-1].blocks, rate, len(rises), len(seen), history)
