"""The one interface every tracking engine implements, and the one protocol every engine calls back.

An engine watches one inferior's allocator calls and keeps its `AllocationTable` up to date; how (GDB breakpoints
on the allocator entry points, or an in-process recorder) is its own business. Commands, the scan and the reports
only see this interface and the table. Whatever needs the debugger's attention goes back through `EngineEvents`,
which a `Tracking` implements: the process reached `_exit`, called `execve`, made a heap error, or made the
allocation `memleak break-alloc` waits for. What both engines do alike (routing a breakpoint hit to the engine of
the process that hit it, guarding stop() callbacks, fork and stop bookkeeping, exit/exec hooks) is
gdb/engine_core.py.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Protocol

import gdb

from ..core.kinds import OnError
from ..core.model import Block, HeapError
from ..core.table import AllocationTable


@dataclass(eq=False)
class Clock:
    """The one clock of a tracking: block, error, snapshot and timeline times are seconds since `started`.

    A forked (or vforked) child's tracking shares its parent's, as its table holds the parent's times, and an
    engine that replaces another (the recorder falling back) keeps it."""

    started: float = field(default_factory=time.monotonic)

    def now(self) -> float:
        return time.monotonic() - self.started

    @property
    def epoch_ns(self) -> int:
        """`started` in the nanoseconds of CLOCK_MONOTONIC (the recorder's own timestamps)."""
        return int(self.started * 1e9)


class EngineEvents(Protocol):
    """What an engine reports to the tracking it serves (called from `Breakpoint.stop()`: keep it short)."""

    @property
    def break_alloc(self) -> int | None:
        """The allocation number to stop at (`memleak break-alloc N`), or None."""
        ...

    def exiting(self) -> bool:
        """`_exit` was reached: the process's memory is still intact. True: stop there (the batch CLI detaches
        the process at its `_exit`, see Tracking.exiting)."""
        ...

    def exec_called(self) -> None:
        """`execve` was called: the image may be replaced."""
        ...

    def heap_error(self, error: HeapError) -> OnError:
        """A bad free was recorded; returns what happens to the call (stop, report = let it happen, skip)."""
        ...

    def allocation_break(self, block: Block) -> None:
        """Allocation `break_alloc` was made; the engine stops the program after this."""
        ...

    def say(self, line: str) -> None:
        """One line for the user on the session's output (the CLI's stream in a batch run)."""
        ...


class Engine(ABC):
    """Tracks one inferior's allocator calls into `table`."""

    name = "?"
    preexisting = 0  # blocks found live in glibc's heap when tracking started on a running process

    def __init__(self, inferior: gdb.Inferior, table: AllocationTable, events: EngineEvents, clock: Clock) -> None:
        self.inferior = inferior
        self.table = table
        self.events = events
        self.clock = clock  # the tracking's: a forked child's engine gets its parent's

    @property
    def started(self) -> float:
        """When the tracking's clock started (block times are seconds since then)."""
        return self.clock.started

    @abstractmethod
    def start(self) -> None:
        """Hook what the objects loaded now define (again at each new object; never from `stop()`)."""

    @abstractmethod
    def stop(self) -> int:
        """Stop tracking this inferior: remove what was set in it; returns how many hooks were removed."""

    @abstractmethod
    def fork(self, child: gdb.Inferior, table: AllocationTable, events: EngineEvents) -> Engine:
        """The engine of a forked (or vforked) child, recording into `table`."""

    @property
    @abstractmethod
    def active(self) -> bool:
        """Whether anything is hooked now."""

    @property
    @abstractmethod
    def fully_hooked(self) -> bool:
        """Whether every hook is placed (nothing more to do at a new object)."""

    @property
    @abstractmethod
    def glibc_malloc(self) -> bool:
        """Whether malloc is glibc's (the scan then skips glibc's own chunk links)."""

    def sync(self) -> None:  # noqa: B027 - most engines record straight into the table: nothing to do
        """Bring `table` up to date before it is read (an engine that records out of GDB reads it in bulk here)."""

    def reset(self) -> None:
        """`memleak reset`: forget every block and counter recorded so far; later frees of those are untracked."""
        self.table.reset()

    def hidden_memory(self) -> tuple[tuple[int, int], ...]:
        """Address ranges in the process that are the engine's own, not the program's (never scan roots)."""
        return ()

    def events_seen(self) -> int:
        """A plain counter of events handled, for a progress line (read from another thread: no GDB calls)."""
        return 0

    def progress(self) -> tuple[int, int, int]:
        """(events handled, live blocks, live bytes) for the CLI's progress line, read from another thread while
        the program runs: no GDB calls."""
        c = self.table.counters
        return self.events_seen(), c.live_blocks, c.live_bytes

    def status(self) -> list[str]:
        """Lines for `memleak status`: what is hooked, what it cost."""
        return []
