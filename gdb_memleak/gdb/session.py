"""Lifecycle: which process is tracked, when breakpoints go in and out, and when the report is printed.

One `Tracking` per process run. It is created when the process's first objects load (or at `memleak start` on a
live process), finished at exit (breakpoints removed, PCs symbolized while the libraries are still loaded), and
kept so `leaks` works after the program ended, until the next `run` replaces it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TextIO

import gdb

from ..core.abi import ABIS
from ..core.allocators import DEFAULT_ALLOCATORS, EXIT_HOOKS
from ..core.model import Block, HeapError, ProcessResult
from ..core.reachability import ScanResult
from ..core.procmaps import Mapping, read_maps
from ..core.reports import ReportOptions
from ..core.reports.text import render_error, render_report
from ..core.kinds import DEFAULT_ERROR_KINDS, DEFAULT_SHOWN
from ..core.report import LeakFilter, ProcessReport
from ..core.symbols import Symbolizer, SystemFilter
from ..core.table import AllocationTable
from . import settings
from .engine import Engine
from .heapscan import HeapScan
from .symbolize import GdbResolver

FATAL_SIGNALS = frozenset({"SIGSEGV", "SIGABRT", "SIGBUS", "SIGFPE", "SIGILL", "SIGSYS"})


class GdbStream:
    """A text stream writing through GDB (pager, styling, `to_string` capture)."""

    def write(self, text: str) -> int:
        gdb.write(text)
        return len(text)

    def flush(self) -> None:
        gdb.flush()


@dataclass
class Tracking:
    inferior_num: int
    engine: Engine | None
    report: ProcessReport
    maps: list[Mapping] = field(default_factory=list)
    reported: bool = False
    finished: bool = False
    last_scan: ScanResult | None = None
    exec_called: bool = False
    ended_at: float | None = None

    @property
    def pid(self) -> int:
        return self.report.result.pid


class Session:
    def __init__(self) -> None:
        self.armed = False
        self.tracking: dict[int, Tracking] = {}
        self.ended: list[Tracking] = []
        self.stream: TextIO | None = None   # None: through GDB; the batch CLI points it at stderr
        self.color: bool | None = None       # None: follow GDB's `set style enabled`
        self.argv: list[str] | None = None    # the batch CLI knows the exact argv; GDB only has a string
        self.break_alloc: int | None = None   # `memleak break-alloc N`
        self.shown_kinds: frozenset[str] = DEFAULT_SHOWN         # kinds the end-of-run report lists
        self.error_kinds: frozenset[str] = DEFAULT_ERROR_KINDS   # kinds its verdict counts as errors
        self.snapshots: dict[str, tuple[int, float]] = {}  # name -> (last sequence number, time)

    # -- output -------------------------------------------------------------------------------------------------
    def out(self) -> TextIO:
        return self.stream if self.stream is not None else GdbStream()

    def use_color(self) -> bool:
        if self.color is not None:
            return self.color
        try:
            return bool(gdb.parameter("style enabled")) and self.stream is None
        except RuntimeError:
            return False

    # -- tracking -----------------------------------------------------------------------------------------------
    def current(self, inferior: gdb.Inferior | None = None) -> Tracking | None:
        inferior = inferior or gdb.selected_inferior()
        return self.tracking.get(inferior.num)

    def by_pid(self, pid: int) -> Tracking | None:
        for t in list(self.tracking.values()) + self.ended:
            if t.pid == pid:
                return t
        return None

    def begin(self, inferior: gdb.Inferior, complete: bool) -> Tracking:
        arch = inferior.architecture().name() if inferior.pid else "i386:x86-64"
        abi = ABIS.get(arch)
        if abi is None:
            raise gdb.GdbError(f"gdb-memleak: architecture {arch} is not supported yet (x86-64 only)")
        tracking = self._tracking(inferior, AllocationTable(complete=complete), self.argv or self._argv(inferior))
        tracking.engine = Engine(inferior, tracking.report.table, abi, int(settings.depth.value),
                                 lambda error: self.on_heap_error(tracking, error),
                                 list(DEFAULT_ALLOCATORS + EXIT_HOOKS),
                                 on_exit=lambda: self.scan(tracking, exiting=True),
                                 on_exec=lambda: self.before_exec(tracking),
                                 on_break_alloc=self.on_break_alloc, break_alloc=self.break_alloc)
        return tracking

    def _tracking(self, inferior: gdb.Inferior, table: AllocationTable, argv: list[str]) -> Tracking:
        maps: list[Mapping] = []
        report = ProcessReport(ProcessResult(pid=inferior.pid, argv=argv), table, Symbolizer(GdbResolver(maps)),
                               SystemFilter(settings.system_objects.value),
                               suppression_source=settings.active_suppressions)
        tracking = Tracking(inferior.num, None, report, maps)
        self.tracking[inferior.num] = tracking
        return tracking

    def on_new_inferior(self, event) -> None:
        """A forked child GDB keeps (`set detach-on-fork off`): it starts with a copy of its parent's table."""
        child = event.inferior
        if not self.armed or not child.pid:
            return
        parent = self.by_pid(parent_pid(child.pid))
        if parent is None or parent.finished or parent.engine is None or not parent.engine.entries:
            return
        tracking = self._tracking(child, parent.report.table.fork(), list(parent.report.result.argv))
        tracking.maps[:] = parent.maps
        tracking.engine = parent.engine.fork(child, tracking.report.table,
                                             lambda error: self.on_heap_error(tracking, error),
                                             on_exit=lambda: self.scan(tracking, exiting=True),
                                             on_exec=lambda: self.before_exec(tracking))

    def before_exec(self, tracking: Tracking) -> None:
        """execve() is about to replace the image: classify and symbolize its blocks while they still exist."""
        tracking.exec_called = True  # if it fails the program goes on; the scan is then just an early one
        self.refresh_maps(tracking)
        self.scan(tracking)
        tracking.report.warm()

    def after_exec(self, tracking: Tracking, inferior: gdb.Inferior) -> Tracking:
        """The old image is gone: its live blocks are its result; the new image starts a fresh table."""
        tracking.report.result.exec_into = inferior.progspace.filename or "?"
        if tracking.engine is not None:
            tracking.engine.remove()
        self.conclude(tracking)
        tracking.finished = True
        self.ended.append(tracking)
        fresh = self.begin(inferior, complete=True)
        fresh.report.result.argv = [inferior.progspace.filename or "?"]
        return fresh

    @staticmethod
    def _argv(inferior: gdb.Inferior) -> list[str]:
        prog = inferior.progspace.filename or ""
        try:
            args = gdb.parameter("args") or ""
        except RuntimeError:
            args = ""
        return [prog] + (gdb.string_to_argv(args) if args else [])

    def install(self, tracking: Tracking) -> None:
        engine = tracking.engine
        if engine is None or engine.complete:
            return
        engine.install()
        self.refresh_maps(tracking)

    def refresh_maps(self, tracking: Tracking) -> None:
        try:
            tracking.maps[:] = read_maps(tracking.pid)
        except OSError:
            pass

    def start(self) -> str:
        self.armed = True
        inferior = gdb.selected_inferior()
        if not inferior.pid:
            return "gdb-memleak: tracking will start when the program runs."
        tracking = self.current(inferior)
        if tracking is not None and tracking.pid == inferior.pid and not tracking.finished and tracking.engine \
                and tracking.engine.entries:
            return f"gdb-memleak: already tracking process {inferior.pid}."
        if tracking is not None and tracking.pid == inferior.pid:
            tracking.report.table.complete = False
        else:
            tracking = self.begin(inferior, complete=False)
        self.install(tracking)
        if tracking.engine and not tracking.engine.entries:
            tracking.report.table.complete = True  # no allocator loaded yet: nothing can have been allocated
            return f"gdb-memleak: process {inferior.pid}: allocator not loaded yet, tracking starts when it is."
        return (f"gdb-memleak: tracking process {inferior.pid} from now on "
                "(blocks allocated before are unknown; their frees are counted as untracked).")

    def stop(self) -> str:
        self.armed = False
        removed = 0
        for tracking in self.tracking.values():
            if tracking.engine is not None and tracking.engine.entries:
                removed += len(tracking.engine.entries) + len(tracking.engine.returns)
                tracking.engine.remove()
                if not tracking.finished:
                    tracking.report.notes.append("tracking was stopped (`memleak stop`) before the process ended; "
                                                 "figures cover only the tracked part")
        return f"gdb-memleak: tracking stopped ({removed} breakpoints removed); the table is kept."

    # -- events -------------------------------------------------------------------------------------------------
    def on_new_objfile(self, event: gdb.NewObjFileEvent) -> None:
        if not self.armed:
            return
        progspace = event.new_objfile.progspace
        inferior = next((i for i in gdb.inferiors() if i.progspace == progspace), gdb.selected_inferior())
        if not inferior.pid:
            return
        tracking = self.current(inferior)
        if tracking is None or tracking.finished or tracking.pid != inferior.pid:
            tracking = self.begin(inferior, complete=True)
        elif tracking.exec_called and event.new_objfile.filename == inferior.progspace.filename:
            tracking = self.after_exec(tracking, inferior)  # execve() was called and a new image is loading
        self.install(tracking)

    def on_stop(self, event: gdb.StopEvent) -> None:
        if not isinstance(event, gdb.SignalEvent) or event.stop_signal not in FATAL_SIGNALS:
            return
        tracking = self.current()
        if tracking is not None and not tracking.finished:
            self.fatal_signal(tracking, event.stop_signal)

    def fatal_signal(self, tracking: Tracking, name: str) -> None:
        """The process is about to die of `name`: report now, while its memory and libraries are still there."""
        tracking.report.result.signal = name
        self.refresh_maps(tracking)
        self.scan(tracking)
        self.conclude(tracking)

    def scan(self, tracking: Tracking, exiting: bool = False) -> ScanResult | None:
        """Classify every live block (valgrind's leak kinds) from the process's memory as it is now."""
        engine = tracking.engine
        inferior = engine.inferior if engine is not None else None
        if inferior is None or not inferior.is_valid() or inferior.pid != tracking.pid or not tracking.pid:
            return None
        table = tracking.report.table
        heap = HeapScan(inferior, {b.address: b.size for b in table.blocks.values()}, engine.regs,
                        glibc=engine.glibc_malloc, exiting=exiting)
        try:
            result = heap.run()
        finally:
            heap.close()
        tracking.report.kinds = {address: kind.value for address, kind in result.kinds.items()}
        tracking.last_scan = result
        return result

    def on_exited(self, event: gdb.ExitedEvent) -> None:
        tracking = self.tracking.get(event.inferior.num)
        if tracking is None or tracking.finished:
            return
        result = tracking.report.result
        if hasattr(event, "exit_code"):
            result.exit_code = int(event.exit_code)
        elif result.signal is None:
            result.signal = "SIGKILL"
        if tracking.engine is not None:
            tracking.engine.remove()
        tracking.ended_at = self.now(tracking)
        self.conclude(tracking)
        tracking.finished = True
        self.ended.append(tracking)

    def conclude(self, tracking: Tracking) -> None:
        """Symbolize what the report needs and print it once."""
        tracking.report.warm()
        if not tracking.reported and settings.report_at_exit.value:
            options = ReportOptions(color=self.use_color(), where=LeakFilter(kinds=self.shown_kinds),
                                  error_kinds=self.error_kinds)
            render_report(tracking.report, self.out(), options)
        tracking.reported = True

    def on_heap_error(self, tracking: Tracking, error: HeapError) -> str:
        """Called from stop(): print the error now; returns the `on-error` action (stop, report, skip)."""
        out = self.out()
        out.write("\ngdb-memleak: ")
        render_error(tracking.report, error, out)
        action = settings.on_error.value
        if action == "skip" and error.type != "mismatched_free":
            out.write(" The call was skipped (memleak on-error skip): the program runs on.\n")
        return action

    def on_break_alloc(self, block: Block) -> None:
        self.out().write(f"\ngdb-memleak: allocation #{block.seq} made: {block.size:,} bytes at "
                         f"0x{block.address:x} by {block.allocator} (memleak break-alloc)\n")

    def now(self, tracking: Tracking) -> float:
        """Seconds since tracking began (block times use the same clock); frozen when the process ended."""
        if tracking.ended_at is not None:
            return tracking.ended_at
        engine = tracking.engine
        return time.monotonic() - engine.started if engine is not None else 0.0

    def set_break_alloc(self, number: int | None) -> None:
        self.break_alloc = number
        for tracking in self.tracking.values():
            if tracking.engine is not None:
                tracking.engine.break_alloc = number

    def detach(self, tracking: Tracking | None, seconds: float) -> None:
        """End of an attach window: classify and report the blocks allocated in it, remove every breakpoint, and
        let the process run on without us."""
        if tracking is not None:
            tracking.report.result.detached = True
            tracking.report.notes.append(f"attached for {seconds:g} s: only blocks allocated in that window are "
                                         "known; the process was detached and runs on")
            self.scan(tracking)
            self.conclude(tracking)
        self.stop()
        if tracking is not None:  # before detaching: GDB reports a detached inferior as exited
            tracking.finished = True
            self.ended.append(tracking)
        gdb.execute("detach", to_string=True)

    def finished_reports(self) -> list[ProcessReport]:
        return [t.report for t in self.ended]


SESSION = Session()


def parent_pid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("PPid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


_confining = False


def confine_locations(breakpoint: gdb.Breakpoint) -> None:
    """Keep an engine's breakpoint to the inferiors it tracks. An address breakpoint gets a location in every
    program space; after one process of a forked family execs, the family's addresses mean nothing in the new image
    (GDB could not even insert them there), so those locations are disabled."""
    global _confining
    members = getattr(breakpoint, "members", None)
    if members is None or _confining:
        return
    _confining = True
    try:
        for location in breakpoint.locations:
            groups = set(location.thread_groups)  # numbers of the inferiors sharing this location's program space
            if location.enabled and groups and not groups & set(members):
                location.enabled = False
    except (RuntimeError, gdb.error):
        pass
    finally:
        _confining = False


def connect() -> None:
    gdb.events.breakpoint_modified.connect(confine_locations)
    gdb.events.breakpoint_created.connect(confine_locations)
    gdb.events.new_objfile.connect(SESSION.on_new_objfile)
    gdb.events.new_inferior.connect(SESSION.on_new_inferior)
    gdb.events.stop.connect(SESSION.on_stop)
    gdb.events.exited.connect(SESSION.on_exited)

