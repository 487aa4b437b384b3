"""Live heap bytes and blocks over the run, sampled at bounded cost for the HTML report's timeline.

The allocation table calls `tick(now)` after every event that changes the live counters. A tick is a few compares:
it keeps the highest live bytes/blocks seen since the last point and records a point every `every` events or when
`interval` seconds have passed since the last one (so an idle stretch still shows). When `capacity` points are held,
neighbours are merged pairwise (the later point's values, the higher of both peaks) and both steps double: memory
stays bounded whatever the run's length, the samples stay spread over the whole run, and no peak is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import Counters

DEFAULT_CAPACITY = 4096
DEFAULT_INTERVAL = 0.002  # seconds between points when events are sparse (doubles with every merge)


@dataclass(frozen=True)
class Point:
    """The counters at `time` (seconds since tracking began) and their highest values since the previous point."""

    time: float
    bytes: int
    blocks: int
    peak_bytes: int
    peak_blocks: int


@dataclass(frozen=True)
class Mark:
    """A named moment on the timeline (`memleak snapshot NAME`)."""

    name: str
    time: float
    bytes: int
    blocks: int


class Timeline:
    """A bounded sampler of one table's live counters (it reads the `Counters` it is given, never copies them)."""

    def __init__(self, counters: Counters, capacity: int = DEFAULT_CAPACITY,
                 interval: float = DEFAULT_INTERVAL) -> None:
        if capacity < 2:
            raise ValueError("a timeline keeps at least 2 points")
        self.counters = counters
        self.capacity = capacity
        self.every = 1
        self.interval = interval
        self.points: list[Point] = []
        self.marks: list[Mark] = []
        self._pending = 0          # events since the last point
        self._due = 0.0            # record at or after this time even if fewer than `every` events came
        self._now = 0.0            # time of the latest event
        self._hi_bytes = counters.live_bytes
        self._hi_blocks = counters.live_blocks

    def tick(self, now: float) -> None:
        """One event changed the counters (cheap: called for every allocation and free)."""
        c = self.counters
        if c.live_bytes > self._hi_bytes:
            self._hi_bytes = c.live_bytes
        if c.live_blocks > self._hi_blocks:
            self._hi_blocks = c.live_blocks
        self._now = now
        self._pending += 1
        if self._pending >= self.every or now >= self._due:
            self._record(now)

    def _record(self, now: float) -> None:
        c = self.counters
        self.points.append(Point(now, c.live_bytes, c.live_blocks, self._hi_bytes, self._hi_blocks))
        self._pending = 0
        self._due = now + self.interval
        self._hi_bytes = c.live_bytes
        self._hi_blocks = c.live_blocks
        if len(self.points) >= self.capacity:
            self._merge()

    def _merge(self) -> None:
        """Halve the points: each pair becomes its later point carrying the pair's peaks."""
        points = self.points
        merged = [Point(b.time, b.bytes, b.blocks, max(a.peak_bytes, b.peak_bytes), max(a.peak_blocks, b.peak_blocks))
                  for a, b in zip(points[0::2], points[1::2])]
        if len(points) % 2:
            merged.append(points[-1])
        self.points = merged
        self.every *= 2
        self.interval *= 2

    def replay(self, counters: Counters, points: list[Point], now: float, hi_bytes: int, hi_blocks: int) -> None:
        """Take the points another sampler recorded (the recorder's, read in bulk), over the counters as they are
        now: the next point (`series`) is the state at `now`, with the highest figures seen since the last one."""
        self.counters, self.points = counters, points
        self._pending, self._now = 1, now
        self._hi_bytes = max(hi_bytes, counters.live_bytes)
        self._hi_blocks = max(hi_blocks, counters.live_blocks)

    def mark(self, name: str, now: float) -> None:
        self.marks.append(Mark(name, now, self.counters.live_bytes, self.counters.live_blocks))

    def series(self) -> list[Point]:
        """The points, plus one for the events since the last point (the state the report shows)."""
        if not self._pending:
            return list(self.points)
        c = self.counters
        return self.points + [Point(self._now, c.live_bytes, c.live_blocks, self._hi_bytes, self._hi_blocks)]

    def fork(self, counters: Counters) -> Timeline:
        """A forked child's timeline: the parent's history so far, then the child's own counters."""
        child = Timeline(counters, self.capacity, self.interval)
        child.every, child.points, child.marks = self.every, list(self.points), list(self.marks)
        child._pending, child._due, child._now = self._pending, self._due, self._now
        child._hi_bytes, child._hi_blocks = self._hi_bytes, self._hi_blocks
        return child
