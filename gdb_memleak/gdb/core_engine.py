"""The recorder's table as a core file holds it: the engine of a post-mortem tracking (gdb/postmortem.py).

An engine of its own rather than the recorder engine in a read-only mode: everything AgentEngine does is about a
live process (breakpoints, the attach, falling back, /proc reads for its maps and memory); a core has none of it.
This engine reads the table once from the core (core/agent_format.py, as AgentEngine reads a process) and hooks
nothing, so the commands, the scan and the reports work on it as on any tracking's table.
"""

from __future__ import annotations

from dataclasses import dataclass

import gdb

from ..core import agent_format as fmt
from ..core.procmaps import Mapping
from ..core.table import AllocationTable
from .agent_engine import trim_stack
from .core_image import CoreImage
from .engine import Clock, Engine, EngineEvents
from .engine_core import is_glibc_malloc, maps_without, serving_malloc


@dataclass(eq=False)
class FrozenClock(Clock):
    """The clock of a core: block times are seconds since the recorder started (`started`), and time stopped at
    `at`, the core's last recorded moment (its latest allocation, error or timeline point: a core says no more of
    when it was dumped in the recorder's clock)."""

    at: float = 0.0

    def now(self) -> float:
        return self.at


@dataclass
class RecordedTable:
    """Where the core holds the recorder: its library, its anchor, its region, and the table read from there."""

    library: str
    region: int
    snapshot: fmt.AgentSnapshot | None  # None: the recorder had recorded nothing yet (no allocator call)


class CoreTableEngine(Engine):
    """Loads `recorded` into the table at the first sync; nothing to hook, stop or follow."""

    name = "core"

    def __init__(self, inferior: gdb.Inferior, table: AllocationTable, events: EngineEvents, clock: Clock,
                 image: CoreImage, recorded: RecordedTable) -> None:
        super().__init__(inferior, table, events, clock)
        self.image, self.recorded = image, recorded
        self.loaded = False
        self.trimmed: dict[tuple[int, ...], tuple[int, ...]] = {}
        mapped = recorder_mappings(image.maps(), recorded.library)
        self.recorder_code = (min(m.start for m in mapped), max(m.end for m in mapped)) if mapped else (0, 0)
        self.threads = {thread.ptid[1]: thread.num for thread in inferior.threads()}  # LWP -> GDB's number

    def start(self) -> None:
        pass

    def stop(self) -> int:
        return 0

    def fork(self, child: gdb.Inferior, table: AllocationTable, events: EngineEvents) -> Engine:
        raise RuntimeError("a core file does not fork")

    @property
    def active(self) -> bool:
        return False

    @property
    def fully_hooked(self) -> bool:
        return True

    @property
    def glibc_malloc(self) -> bool:
        maps = maps_without(self.image.maps(), self.recorded.library)
        return is_glibc_malloc(serving_malloc(maps), self.inferior.progspace.filename)

    def sync(self) -> None:
        """The core never changes: its table is loaded once (`memleak reset` empties it for good)."""
        snapshot = self.recorded.snapshot
        if self.loaded or snapshot is None:
            return
        self.loaded = True
        epoch = snapshot.header.start_ns
        self.table.load_recorded(snapshot.recording(self.clock.now(), epoch, self._thread, self._stack))
        for record in snapshot.error_records:
            self.table.add_error(fmt.error_from_record(record, snapshot.names, self._stack, epoch, self._thread))

    def hidden_memory(self) -> tuple[tuple[int, int], ...]:
        """The recorder's region and its library's own data, as for a live process."""
        ranges = [(m.start, m.end) for m in recorder_mappings(self.image.maps(), self.recorded.library)]
        if self.recorded.snapshot is not None:
            ranges.append((self.recorded.region, self.recorded.region + self.recorded.snapshot.header.region_size))
        return tuple(ranges)

    def status(self) -> list[str]:
        lines = [f"engine: the recorder's table read from the core file {self.image.path}"]
        snapshot = self.recorded.snapshot
        if snapshot is None:
            lines.append("the recorder had recorded nothing when the core was dumped")
        else:
            h = snapshot.header
            lines.append(f"stacks by {fmt.UNWINDERS.get(h.unwinder, '?')}, depth {h.depth}; "
                         f"{len(self.image.core.threads)} threads in the core")
        return lines

    def _stack(self, stack_id: int) -> tuple[int, ...]:
        snapshot = self.recorded.snapshot
        return trim_stack(snapshot.stack(stack_id), self.recorder_code, self.trimmed) if snapshot else ()

    def _thread(self, tid: int) -> int:
        return self.threads.get(tid, tid)


def last_moment(snapshot: fmt.AgentSnapshot) -> int:
    """The latest CLOCK_MONOTONIC time (ns) the table records: its newest block, error or timeline point."""
    live = snapshot.live
    times = [snapshot.header.start_ns]
    if len(live):
        times.append(int(live.time_ns.max()) if live.arrays else max(live.time_ns))
    times.extend(r[3] for r in snapshot.error_records)
    times.extend(p[0] for p in snapshot.points)
    return max(times)


def recorder_mappings(maps: list[Mapping], library: str) -> list[Mapping]:
    """The recorder library's own mappings (its code: no stack shows it; its data: no root)."""
    return [m for m in maps if m.path == library]
