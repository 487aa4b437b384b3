"""Lifecycle: which processes are tracked, when engines start and stop, and GDB's events that drive them.

One `Tracking` (gdb/tracking.py) per process run. It is created when the process's first objects load (or at
`memleak start` on a live process, or when GDB keeps a forked child), and finished at exit, exec or detach.
"""

from __future__ import annotations

import ctypes
import io
import os
import signal
from typing import TextIO

import gdb

from ..core import pre_tracking
from ..core.abi import ABIS, Abi
from ..core.allocators import DEFAULT_ALLOCATORS, MAPPING_HOOKS
from ..core.kinds import DEFAULT_ERROR_KINDS, DEFAULT_SHOWN
from ..core.procstat import cmdline, let_go, stat_fields
from ..core.report import LeakFilter, ProcessReport
from ..core.reports import ReportOptions
from ..core.table import AllocationTable
from . import agent_engine, announce, engine_choice, handcall, heapwalk, postmortem, preload, recorder_events, settings
from .breakpoint_engine import BreakpointEngine
from .engine import Clock
from .fatal import read_fatal_signal
from .log import log
from .threadstop import halt_process
from .tracking import EngineFactory, Tracking

FATAL_SIGNALS = frozenset({"SIGSEGV", "SIGABRT", "SIGBUS", "SIGFPE", "SIGILL", "SIGSYS"})


class GdbStream(io.StringIO):
    """A text stream writing through GDB (pager, styling, `to_string` capture)."""

    def write(self, text: str) -> int:
        gdb.write(text)
        return len(text)

    def flush(self) -> None:
        gdb.flush()


class Session:
    """Every process tracked in this GDB session, the user's choices that apply to all, and GDB's events."""

    def __init__(self) -> None:
        self.armed = False
        self.tracking: dict[int, Tracking] = {}
        self.ended: list[Tracking] = []
        self.stream: TextIO | None = None   # None: through GDB; the batch CLI points it at stderr
        self.color: bool | None = None       # None: follow GDB's `set style enabled`
        self.argv: list[str] | None = None    # the batch CLI knows the exact argv; GDB only has a string
        self.break_alloc: int | None = None   # `memleak break-alloc N`, read by every engine through its tracking
        self.shown_kinds: frozenset[str] = DEFAULT_SHOWN         # kinds the end-of-run report lists
        self.error_kinds: frozenset[str] = DEFAULT_ERROR_KINDS   # kinds its verdict counts as errors
        self.gen_suppressions = False  # the batch CLI's --gen-suppressions: valgrind's blocks in the report
        self.snapshots: dict[str, tuple[int, float]] = {}  # name -> (last sequence number, time)
        # the batch CLI: each process stops at its `_exit` and is let go there (Tracking.exiting, end_at_exit)
        self.end_at_exit = False
        # pid -> (its tracking, its exit status, the thread in `_exit`)
        self.at_exit: dict[int, tuple[Tracking, int, gdb.InferiorThread]] = {}

    # -- output -------------------------------------------------------------------------------------------------
    def out(self) -> TextIO:
        return self.stream if self.stream is not None else GdbStream()

    def use_color(self) -> bool:
        if self.color is not None:
            return self.color
        try:  # where GDB itself would colour: styling on, and its stdout a terminal that is not "dumb"
            return bool(gdb.parameter("style enabled")) and self.stream is None and os.isatty(1) \
                and os.environ.get("TERM", "dumb") != "dumb"
        except RuntimeError:
            return False

    def report_options(self) -> ReportOptions:
        """How a whole report is drawn (at a process's end, a live report): the kinds and errors the user chose."""
        return ReportOptions(color=self.use_color(), where=LeakFilter(kinds=self.shown_kinds),
                             error_kinds=self.error_kinds, mapping_error_kinds=settings.mapping_error_kinds(),
                             gen_suppressions=self.gen_suppressions)

    # -- tracking -----------------------------------------------------------------------------------------------
    def current(self, inferior: gdb.Inferior | None = None) -> Tracking | None:
        """The tracking of `inferior` (default: the selected one); for a core file, the post-mortem tracking of
        that core (gdb.GdbError, one line, when it holds no table)."""
        inferior = inferior or gdb.selected_inferior()
        tracking = self.tracking.get(inferior.num)
        if postmortem.is_core(inferior):
            tracking = self.tracking[inferior.num] = postmortem.tracking_for(self, inferior, tracking)
        return tracking

    def by_pid(self, pid: int) -> Tracking | None:
        for t in list(self.tracking.values()) + self.ended:
            if t.pid == pid:
                return t
        return None

    def begin(self, inferior: gdb.Inferior, from_start: bool, argv: list[str] | None = None) -> Tracking:
        """Track `inferior` (`from_start`: from the start of its image, so every block it made is seen; False:
        `memleak start` in a process already running, or attached)."""
        arch = inferior.architecture().name() if inferior.pid else "i386:x86-64"
        abi = ABIS.get(arch)
        if abi is None:
            raise gdb.GdbError(f"gdb-memleak: architecture {arch} is not supported yet (x86-64 only)")
        if argv is None and all(t.finished or t.inferior_num == inferior.num for t in self.tracking.values()):
            announce.new_run()  # not an exec'd image, nothing else tracked: a new run (or attach)
        announce.use_stream(self.stream)
        tracking = Tracking(self, inferior, AllocationTable(complete=from_start),
                            argv or self.argv or self._argv(inferior), abi,
                            new_engine(inferior, abi, from_start), Clock())
        tracking.report.result.ppid = parent_pid(inferior.pid) if inferior.pid else None
        self.tracking[inferior.num] = tracking
        return tracking

    def on_new_inferior(self, event: gdb.NewInferiorEvent) -> None:
        """A forked child GDB keeps (`set detach-on-fork off`): it starts with a copy of its parent's table. A
        vforked child shares its parent's memory until it execs or exits: it records into the parent's table."""
        child = event.inferior
        if not self.armed or not child.pid:
            return
        parent = self.by_pid(parent_pid(child.pid))
        if parent is None or parent.finished or not parent.engine.active:
            return
        vfork = shares_memory(parent.pid, child.pid)
        table = parent.table if vfork else parent.table.fork()
        tracking = Tracking(self, child, table, list(parent.report.result.argv), parent.abi,
                            lambda t: parent.engine.fork(child, table, t), parent.clock,  # its table's times
                            shares_memory_with=parent if vfork else None)
        tracking.maps[:] = parent.maps
        tracking.report.result.ppid, tracking.report.result.forked = parent.pid, True
        self.tracking[child.num] = tracking
        log.debug("process %d: %s of %d", child.pid, "vfork" if vfork else "fork", parent.pid)

    def after_exec(self, tracking: Tracking, inferior: gdb.Inferior) -> Tracking:
        """The old image is gone: its live blocks are its result; the new image starts a fresh table, with the argv the
        exec gave it (its /proc cmdline now: GDB reports the exec before the new image runs)."""
        image = inferior.progspace.filename or "?"
        tracking.report.result.exec_into = image
        tracking.finish()
        return self.begin(inferior, from_start=True, argv=cmdline(inferior.pid) or [image])

    @staticmethod
    def _argv(inferior: gdb.Inferior) -> list[str]:
        prog = inferior.progspace.filename or ""
        try:
            args = gdb.parameter("args") or ""
        except RuntimeError:
            args = ""
        return [prog] + (gdb.string_to_argv(str(args)) if args else [])

    def install(self, tracking: Tracking) -> None:
        if tracking.engine.fully_hooked or handcall.running():  # the recorder's own dlopen by hand: not now
            return
        tracking.engine.start()
        tracking.refresh_maps()

    def start(self) -> str:
        inferior = gdb.selected_inferior()
        if postmortem.is_core(inferior):
            return ("gdb-memleak: a core file is loaded: nothing runs to track; `leaks`, `memleak errors` and "
                    "`memleak check` read the recorder's table from it.")
        self.armed = True
        if not inferior.pid:
            if settings.engine.value != "breakpoint":  # the recorder must be in the environment `run` uses
                preload.prepare_environment(int(settings.depth.value), str(settings.on_error.value), self.break_alloc)
            return "gdb-memleak: tracking will start when the program runs."
        tracking = self.current(inferior)
        if tracking is not None and tracking.pid == inferior.pid and not tracking.finished and tracking.engine.active:
            return f"gdb-memleak: already tracking process {inferior.pid}."
        if tracking is not None and tracking.pid == inferior.pid:
            tracking.table.complete = False
        else:
            tracking = self.begin(inferior, from_start=False)
        self.install(tracking)
        if not tracking.engine.active:
            tracking.table.complete = True  # no allocator loaded yet: nothing can have been allocated
            return f"gdb-memleak: process {inferior.pid}: allocator not loaded yet, tracking starts when it is."
        if tracking.engine.name == "breakpoint":  # the recorder walks and adopts the heap itself
            tracking.engine.preexisting = walk_into_table(tracking, inferior)
        found = tracking.engine.preexisting
        if tracking.table.heap_walked:
            return (f"gdb-memleak: tracking process {inferior.pid} from now on; {found:,} blocks allocated before "
                    "were found in its heap.")
        return (f"gdb-memleak: tracking process {inferior.pid} from now on "
                "(blocks allocated before are unknown; their frees are counted as untracked).")

    def stop(self) -> str:
        self.armed = False
        preload.restore_environment()
        removed = 0
        for tracking in self.tracking.values():
            if tracking.engine.active:
                removed += tracking.engine.stop()
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
        if not inferior.pid or postmortem.is_core(inferior):
            return
        tracking = self.current(inferior)
        if tracking is None or tracking.finished or tracking.pid != inferior.pid:
            tracking = self.begin(inferior, from_start=True)
        elif tracking.exec_pending and event.new_objfile.filename == inferior.progspace.filename:
            tracking = self.after_exec(tracking, inferior)  # execve() was called and a new image is loading
        self.install(tracking)

    def on_stop(self, event: gdb.StopEvent) -> None:
        if not isinstance(event, gdb.SignalEvent) or event.stop_signal not in FATAL_SIGNALS:
            return
        thread = stopped_thread(event)  # in non-stop mode the selected thread may be another process's
        tracking = self.current(thread.inferior if thread is not None else None)
        if tracking is not None and not tracking.finished:
            if thread is not None and thread.is_valid():
                thread.switch()
            self.fatal_signal(tracking, event.stop_signal)

    def fatal_signal(self, tracking: Tracking, name: str) -> None:
        """The process is about to die of `name`: report now, while its memory and libraries are still there."""
        if tracking.finished:
            return
        halt_process(tracking.engine.inferior)
        tracking.report.result.signal = name
        tracking.report.result.fatal = read_fatal_signal(name, tracking.engine.inferior, int(settings.depth.value))
        tracking.refresh_maps()
        tracking.scan()
        tracking.conclude()

    def on_exited(self, event: gdb.ExitedEvent) -> None:
        tracking = self.tracking.get(event.inferior.num)
        if tracking is None or tracking.finished:
            return
        result = tracking.report.result
        if result.core_file:  # the core file was put away (`core-file`, `kill`, quit): no process ended
            del self.tracking[event.inferior.num]
            return
        if hasattr(event, "exit_code"):
            result.exit_code = int(event.exit_code)
        elif result.signal is None and let_go(tracking.pid):  # `detach`: GDB says "exited", with no exit code
            result.detached = True
        elif result.signal is None:
            result.signal = "SIGKILL"
        tracking.finish()

    def let_go_at_exit(self) -> None:
        """The processes stopped at `_exit` (batch CLI): each is scanned with every thread stopped (from the thread
        in `_exit`), gets its exit status and its report, then is detached, so it exits without GDB (nothing is
        presented to stop the others)."""
        for pid, (tracking, status, thread) in list(self.at_exit.items()):
            del self.at_exit[pid]
            inferior = tracking.engine.inferior
            if tracking.finished or not inferior.is_valid() or inferior.pid != pid:
                continue
            try:
                if thread.is_valid():
                    thread.switch()
                halt_process(inferior)
                tracking.scan(exiting=True)
            except Exception as exc:  # noqa: BLE001 - one process's scan must not lose every report
                self.out().write(f"gdb-memleak: process {pid}: the exit scan failed ({exc}): blocks not classified\n")
                log.debug("exit scan of %d failed", pid, exc_info=True)
            tracking.report.result.exit_code = status
            tracking.finish()
            gdb.execute(f"detach inferior {inferior.num}", to_string=True)

    def ended_unseen(self, inferior: gdb.Inferior, wait_status: int | None) -> None:
        """A process that ended while GDB still lists it (the batch CLI then stops following it: GDB cannot switch to
        it): its report, as on_exited makes it, from the kernel's wait status (None: unknown, taken as SIGKILL)."""
        tracking = self.tracking.get(inferior.num)
        if tracking is None or tracking.finished:
            return
        result = tracking.report.result
        if wait_status is not None and wait_status & 0x7F == 0:
            result.exit_code = (wait_status >> 8) & 0xFF
        elif result.signal is None:
            number = wait_status & 0x7F if wait_status is not None else int(signal.SIGKILL)
            try:
                result.signal = signal.Signals(number).name
            except ValueError:
                result.signal = "SIGKILL"
        tracking.finish()

    def set_break_alloc(self, number: int | None) -> None:
        self.break_alloc = number
        recorder_events.break_alloc_changed(number)

    def detach(self, tracking: Tracking | None, seconds: float, early: bool = False) -> None:
        """End of an attach window of `seconds` (`early`: an interrupt ended it first): classify and report the
        blocks allocated in it, remove every breakpoint, and let the process run on without us."""
        if tracking is not None:
            tracking.report.result.detached = True
            window = (f"{tracking.now():.1f} s (ended early by an interrupt; the window was {seconds:g} s)" if early
                      else f"{seconds:g} s")
            known = ("blocks live at the attach (glibc's heap walked) and those allocated in that window are known"
                     if tracking.table.heap_walked else "only blocks allocated in that window are known")
            tracking.report.notes.append(f"attached for {window}: {known}; the process was detached and runs on")
            tracking.scan()
            tracking.finish()  # before detaching: GDB reports a detached inferior as exited
        self.stop()
        gdb.execute("detach", to_string=True)

    def finished_reports(self) -> list[ProcessReport]:
        return [t.report for t in self.ended]


def walk_into_table(tracking: Tracking, inferior: gdb.Inferior) -> int:
    """The breakpoint engine on a running process: glibc's heap walked now, its live blocks entered (pre_tracking);
    how many. Why not, when it cannot be done, in one line."""
    found = heapwalk.walk(inferior)
    if isinstance(found, str):
        announce.announce(f"gdb-memleak: {found}")
        return 0
    if found.status is not None:
        announce.announce(f"gdb-memleak: glibc's heap could not be read whole ({found.status}): blocks allocated "
                          "before tracking started are unknown")
        return 0
    return pre_tracking.adopt(tracking.table, found.addresses, found.sizes, tracking.now())


def stopped_thread(event: gdb.StopEvent) -> gdb.InferiorThread | None:
    """The thread a stop event is about: its own in non-stop mode, else the selected one (all stopped)."""
    return getattr(event, "inferior_thread", None) or gdb.selected_thread()


def new_engine(inferior: gdb.Inferior, abi: Abi, from_start: bool) -> EngineFactory:
    """How a tracking of `inferior` makes its engine: the recorder's when it can (`memleak engine`); why not is
    said in one line (`announce.announce`). Where the recorder turns out not to be in the process, the
    tracking's engine becomes the breakpoint engine, on the same table and clock."""
    depth, specs = int(settings.depth.value), list(DEFAULT_ALLOCATORS + MAPPING_HOOKS)

    def breakpoint_engine(tracking: Tracking, replaces: str | None = None) -> BreakpointEngine:
        return BreakpointEngine(inferior, tracking.table, tracking, tracking.clock, abi, depth, specs, replaces)

    kind, why = engine_choice.choose(str(settings.engine.value), inferior, from_start, preload.STATE)
    if why is not None:
        announce.announce(why)
    if kind == "breakpoint":
        return breakpoint_engine

    def recorder_engine(tracking: Tracking) -> agent_engine.AgentEngine:
        def fall_back() -> None:
            tracking.engine = breakpoint_engine(tracking, replaces="the recorder was not loaded")
            tracking.engine.start()

        return agent_engine.AgentEngine(inferior, tracking.table, tracking, tracking.clock, abi, depth, fall_back,
                                        from_start)

    return recorder_engine


SESSION = Session()


def parent_pid(pid: int) -> int:
    fields = stat_fields(pid)
    if fields is None:
        log.debug("process %d: no /proc stat", pid)
        return 0
    return int(fields[1])


SYS_KCMP, KCMP_VM = 312, 1  # x86-64


def shares_memory(parent: int, child: int) -> bool:
    """Whether `child` runs in `parent`'s address space (a vfork child before its exec or exit): kcmp(2)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.syscall(SYS_KCMP, parent, child, KCMP_VM, 0, 0) == 0
    except (OSError, AttributeError):
        log.debug("kcmp unavailable: a vfork child is taken for a fork", exc_info=True)
        return False


_confining = False


def confine_locations(breakpoint: gdb.Breakpoint) -> None:
    """Keep an engine's breakpoint to the inferiors it tracks. An address breakpoint gets a location in every
    program space; after one process of a forked family execs, the family's addresses mean nothing in the new image
    (GDB could not even insert them there), so those locations are disabled."""
    global _confining
    family = getattr(breakpoint, "family", None)  # an engine's RoutedBreakpoint (once its constructor has run)
    if family is None or _confining:
        return
    _confining = True
    try:
        for location in breakpoint.locations:
            groups = set(location.thread_groups)  # numbers of the inferiors sharing this location's program space
            if location.enabled and groups and not groups & family.inferiors:
                location.enabled = False
    except (RuntimeError, gdb.error):
        log.debug("could not confine breakpoint %s", breakpoint.number, exc_info=True)
    finally:
        _confining = False


def connect() -> None:
    gdb.events.breakpoint_modified.connect(confine_locations)
    gdb.events.breakpoint_created.connect(confine_locations)
    gdb.events.new_objfile.connect(SESSION.on_new_objfile)
    gdb.events.new_inferior.connect(SESSION.on_new_inferior)
    gdb.events.stop.connect(SESSION.on_stop)
    gdb.events.exited.connect(SESSION.on_exited)

