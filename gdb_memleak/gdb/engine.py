"""The one interface every tracking engine implements, and the one protocol every engine calls back.

An engine watches one inferior's allocator calls and keeps its `AllocationTable` up to date; how (GDB breakpoints
on the allocator entry points, or an in-process recorder) is its own business. Commands, the scan and the reports
only see this interface and the table. Whatever needs the debugger's attention goes back through `EngineEvents`,
which a `Tracking` implements: the process reached `_exit`, called `execve`, made a heap error, or made the
allocation `memleak break-alloc` waits for.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Protocol

import gdb

from ..core.kinds import OnError
from ..core.model import Block, HeapError
from ..core.table import AllocationTable


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


class Engine(ABC):
    """Tracks one inferior's allocator calls into `table`."""

    name = "?"

    def __init__(self, inferior: gdb.Inferior, table: AllocationTable, events: EngineEvents) -> None:
        self.inferior = inferior
        self.table = table
        self.events = events
        self.started = time.monotonic()  # block times are seconds since this moment

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
    def complete(self) -> bool:
        """Whether every allocator is hooked (nothing more to do at a new object)."""

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
