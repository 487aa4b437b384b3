"""`leaks` and the `memleak` prefix commands. Each is a small class; usage lives in its docstring."""

from __future__ import annotations

import gdb

from ..argtypes import count, kind_set, seconds
from ..core.deltas import CHANGED, INCREASED
from ..core.grouping import select
from ..core.kinds import DEFAULT_SHOWN
from ..core.report import LeakFilter
from ..core.reports import WRITERS, ReportOptions
from ..core.reports.suppression_blocks import error_block, leak_block
from ..core.reports.text import (
    plural,
    render_by_line,
    render_error,
    render_growing,
    render_leak_summary,
    render_leaks,
    render_mappings,
    render_summary,
)
from ..core.suppressions import SuppressionError, generate
from . import bad_call, settings
from .argparsing import CommandParser
from .blockinfo import describe_block
from .session import SESSION
from .tracking import Tracking

GEN_FORMATS = ("valgrind", "lsan")


def _selected_tracking(pid: int | None) -> Tracking:
    tracking = SESSION.by_pid(pid) if pid is not None else SESSION.current()
    if tracking is None:
        which = f"process {pid}" if pid is not None else "this inferior"
        raise gdb.GdbError(f"gdb-memleak: no allocation data for {which}: use `memleak start`, then `run`.")
    if tracking.alive:
        tracking.engine.sync()  # the recorder engine's table is read when asked for (a no-op for breakpoints)
    return tracking


class Leaks(gdb.Command):
    """List unfreed heap blocks grouped by leak kind, then allocation stack, largest first.

Usage: leaks [--by-line] [--kind K[,K]] [--all] [--check] [--increased | --changed] [--top N] [--min-bytes N]
             [--stack] [--since SNAPSHOT] [--older-than SECONDS] [--gen-suppressions] [--json FILE] [--html FILE]
             [--pid N]
       leaks --growing [--check] [--top N] [--stack] [--pid N]
       leaks --mappings | --shm [--stack] [--pid N]

  --by-line            group by the source line of the first frame in your code and show that line
  --kind K[,K]         leak kinds to list: definite, indirect, possible, reachable (default: definite,possible,
                       like valgrind; blocks not classified yet are listed as unfreed)
  --all                every kind
  --check              run the reachability scan now (the process must be stopped), then list; a checkpoint
  --increased          only the loss records that grew since the previous checkpoint (`memleak check`, `leaks
                       --check`, `memleak snapshot`, a report), as valgrind's `leak_check ... increased`; each
                       record shows its change: "32 (+16) bytes in 2 (+1) blocks"
  --changed            only the loss records that changed since then, those now empty included
                       ("0 (-16) bytes in 0 (-1) blocks")
  --growing            instead of loss records: the allocation stacks whose live bytes keep growing over the
                       checkpoints (rose in most of the last 8, still rising, most of the gain still live), fastest
                       first, with their rate in bytes/s; needs 3 checkpoints
  --top N              show only the first N groups (listed by kind, then largest first)
  --min-bytes N        hide groups smaller than N bytes
  --stack              show each group's full allocation stack
  --since SNAPSHOT     only blocks allocated after `memleak snapshot SNAPSHOT`
  --older-than SECONDS only blocks allocated at least SECONDS ago
  --gen-suppressions   print a suppression for each listed leak: a valgrind-format block, as valgrind's
                       --gen-suppressions=all prints it; `--gen-suppressions=lsan`: a LeakSanitizer `leak:` line
  --json FILE          also write the JSON report of this process to FILE
  --html FILE          also write the HTML report (flame graph, timeline, table) of this process to FILE
  --pid N              report on process N (default: the selected inferior's process)
  --mappings           instead of heap blocks: regions this process mapped (mmap, mremap, shmat) and has not unmapped
  --shm                instead of heap blocks: System V segments it created and nobody marked for removal, POSIX
                       shm objects it created and nobody unlinked (both outlive the process)"""

    def __init__(self) -> None:
        super().__init__("leaks", gdb.COMMAND_DATA)
        self.parser = CommandParser("leaks", "List unfreed heap blocks.")
        self.parser.add_argument("--by-line", action="store_true")
        self.parser.add_argument("--kind", type=kind_set)
        self.parser.add_argument("--all", action="store_true")
        self.parser.add_argument("--check", action="store_true")
        changes = self.parser.add_mutually_exclusive_group()
        changes.add_argument("--increased", dest="changes", action="store_const", const=INCREASED)
        changes.add_argument("--changed", dest="changes", action="store_const", const=CHANGED)
        changes.add_argument("--growing", action="store_true")
        self.parser.add_argument("--top", type=count)
        self.parser.add_argument("--min-bytes", type=count, default=0)
        self.parser.add_argument("--stack", action="store_true")
        self.parser.add_argument("--since", metavar="SNAPSHOT")
        self.parser.add_argument("--older-than", type=seconds, metavar="SECONDS")
        self.parser.add_argument("--gen-suppressions", nargs="?", const="valgrind", choices=GEN_FORMATS)
        self.parser.add_argument("--json", metavar="FILE")
        self.parser.add_argument("--html", metavar="FILE")
        self.parser.add_argument("--pid", type=count)
        self.parser.add_argument("--mappings", action="store_true")
        self.parser.add_argument("--shm", action="store_true")

    def invoke(self, argument: str, from_tty: bool) -> None:
        args = self.parser.parse(argument)
        if args is None:
            return
        tracking = _selected_tracking(args.pid)
        if args.check:
            _check(tracking)
            tracking.checkpoint()
        report = tracking.report
        out = SESSION.out()
        if args.growing:
            render_growing(report, out, ReportOptions(top=args.top, stack=args.stack))
            return
        if args.mappings or args.shm:
            tracking.settle_shared_memory()
            render_mappings(report, out, ReportOptions(stack=args.stack), regions=args.mappings, shm=args.shm)
            return
        _check_suppressions()
        if args.changes and args.by_line:
            raise gdb.GdbError(f"leaks: --{args.changes} lists loss records, not lines (drop --by-line)")
        where = LeakFilter(kinds=None if args.all else (args.kind if args.kind is not None else DEFAULT_SHOWN),
                           since_seq=_snapshot(args.since)[0] if args.since else 0,
                           older_than=args.older_than, now=tracking.now())
        options = ReportOptions(top=args.top, min_bytes=args.min_bytes, stack=args.stack, color=SESSION.use_color(),
                                where=where, changes=args.changes)
        if args.by_line:
            render_by_line(report, out, options)
        else:
            render_leaks(report, out, options)
        if args.gen_suppressions:
            out.write("\n")
            for group in select(report.leak_groups(where), args.top, args.min_bytes):
                out.write(f"# {plural(group.bytes, 'byte')} in {plural(group.blocks, 'block')} ({group.kind})\n")
                out.write(leak_block(report, group) if args.gen_suppressions == "valgrind"
                          else generate(report.frames(group.pcs)) + "\n")
        for name, path in (("json", args.json), ("html", args.html)):
            if path:
                try:
                    with open(path, "w") as f:
                        WRITERS[name].write([report], f, options)
                except OSError as exc:
                    raise gdb.GdbError(f"leaks: cannot write {path}: {exc.strerror}") from None
                out.write(f"{name.upper()} report written to {path}\n")


def _check_suppressions() -> None:
    """Reports read the active suppressions when they render: say here, once, if a file became unreadable."""
    try:
        settings.active_suppressions()
    except SuppressionError as exc:
        raise gdb.GdbError(f"gdb-memleak: {exc}") from exc


def _snapshot(name: str) -> tuple[int, float]:
    snap = SESSION.snapshots.get(name)
    if snap is None:
        known = ", ".join(sorted(SESSION.snapshots)) or "none yet (use `memleak snapshot NAME`)"
        raise gdb.GdbError(f"gdb-memleak: no snapshot named {name!r}; snapshots: {known}")
    return snap


def _check(tracking: Tracking) -> None:
    inferior = gdb.selected_inferior()
    if tracking.finished or not inferior.pid or inferior.pid != tracking.pid:
        raise gdb.GdbError("gdb-memleak: the process is not running: the scan needs its memory "
                           "(the report made at exit already has the leak kinds).")
    if tracking.scan() is None:
        raise gdb.GdbError("gdb-memleak: the reachability scan could not run")


class Memleak(gdb.Command):
    """Heap leak and heap error tracking (gdb-memleak).

Usage: memleak start|stop|status|reset|errors|check|skip|break-alloc|block|snapshot
See `help memleak SUBCOMMAND`, `leaks` for the report and `show memleak` for settings."""

    def __init__(self) -> None:
        super().__init__("memleak", gdb.COMMAND_DATA, prefix=True)

    def invoke(self, argument: str, from_tty: bool) -> None:
        what = f"unknown subcommand {argument.split()[0]!r}" if argument.strip() else "needs a subcommand"
        raise gdb.GdbError(f"memleak: {what}: start, stop, status, reset, errors, check, skip, break-alloc, block "
                           "or snapshot (e.g. `memleak start`, then `run`; see `help memleak`)")


class MemleakStart(gdb.Command):
    """Start tracking allocations.

Usage: memleak start
Before `run`: tracking begins with the process. While stopped in a running process: tracking begins now;
blocks allocated earlier are unknown and their frees are counted as untracked, not as errors."""

    def __init__(self) -> None:
        super().__init__("memleak start", gdb.COMMAND_DATA)

    def invoke(self, argument: str, from_tty: bool) -> None:
        _no_arguments("memleak start", argument)
        SESSION.out().write(SESSION.start() + "\n")


class MemleakStop(gdb.Command):
    """Stop tracking: remove every breakpoint gdb-memleak set. The table is kept for `leaks`.

Usage: memleak stop"""

    def __init__(self) -> None:
        super().__init__("memleak stop", gdb.COMMAND_DATA)

    def invoke(self, argument: str, from_tty: bool) -> None:
        _no_arguments("memleak stop", argument)
        if not SESSION.armed:
            raise gdb.GdbError("memleak stop: not tracking, nothing to stop (`memleak start` starts tracking)")
        SESSION.out().write(SESSION.stop() + "\n")


class MemleakStatus(gdb.Command):
    """Show tracking state and heap counters.

Usage: memleak status"""

    def __init__(self) -> None:
        super().__init__("memleak status", gdb.COMMAND_DATA)

    def invoke(self, argument: str, from_tty: bool) -> None:
        _no_arguments("memleak status", argument)
        out = SESSION.out()
        tracking = SESSION.current()
        if tracking is None:
            out.write(f"gdb-memleak: {'armed, waiting for the program to run' if SESSION.armed else 'not tracking'}.\n")
            return
        engine = tracking.engine
        engine.sync()
        out.write(f"gdb-memleak: process {tracking.pid}: {tracking.state()}\n")
        c = tracking.report.table.counters
        out.write(f"  live: {c.live_bytes:,} bytes in {c.live_blocks:,} blocks; "
                  f"peak: {c.peak_bytes:,} bytes in {c.peak_blocks:,} blocks\n")
        render_summary(tracking.report, out)
        for line in engine.status():
            out.write(f"  {line}\n")
        hidden = len(tracking.report.suppressed_errors())
        out.write(f"  heap errors: {len(tracking.report.errors())}" + (f" ({hidden} suppressed)" if hidden else "")
                  + "\n")


class MemleakReset(gdb.Command):
    """Forget every recorded block and counter, and the checkpoints (deltas, growth); keep tracking. Later frees of
forgotten blocks are untracked.

Usage: memleak reset"""

    def __init__(self) -> None:
        super().__init__("memleak reset", gdb.COMMAND_DATA)

    def invoke(self, argument: str, from_tty: bool) -> None:
        _no_arguments("memleak reset", argument)
        tracking = _selected_tracking(None)
        tracking.engine.reset()
        tracking.report.forget_checkpoints()
        SESSION.out().write("gdb-memleak: table cleared.\n")


class MemleakErrors(gdb.Command):
    """List the heap errors seen (double, invalid and mismatched frees) with their stacks.

Usage: memleak errors [--gen-suppressions]
Errors a suppression hides (valgrind's Memcheck:Free entries) are counted, not listed.
  --gen-suppressions   after each error, the valgrind-format block that suppresses it"""

    def __init__(self) -> None:
        super().__init__("memleak errors", gdb.COMMAND_DATA)
        self.parser = CommandParser("memleak errors", "List the heap errors seen.")
        self.parser.add_argument("--gen-suppressions", action="store_true")

    def invoke(self, argument: str, from_tty: bool) -> None:
        args = self.parser.parse(argument)
        if args is None:
            return
        _check_suppressions()
        report = _selected_tracking(None).report
        out = SESSION.out()
        errors, hidden = report.errors(), len(report.suppressed_errors())
        if not errors:
            out.write("gdb-memleak: no heap errors.\n")
        for error in errors:
            out.write("\n")
            render_error(report, error, out)
            if args.gen_suppressions:
                out.write(error_block(report, error))
        if hidden:
            out.write(f"gdb-memleak: {plural(hidden, 'heap error')} hidden by suppressions.\n")


class MemleakCheck(gdb.Command):
    """Run the reachability scan now and print the leak summary and leaks (like valgrind's `monitor leak_check`).

Usage: memleak check [--increased | --changed]
The process must be stopped. Blocks are classified as definitely, indirectly or possibly lost, or still reachable.
Each check is a checkpoint: loss records show their change since the previous one ("32 (+16) bytes in 2 (+1)
blocks"), and each allocation stack's live bytes are sampled for `leaks --growing`.
  --increased   only the loss records that grew since the previous checkpoint (valgrind's `leak_check increased`),
                and the LEAK SUMMARY's changes
  --changed     only those that changed, the ones now empty included (valgrind's `leak_check changed`)"""

    def __init__(self) -> None:
        super().__init__("memleak check", gdb.COMMAND_DATA)
        self.parser = CommandParser("memleak check", "Run the reachability scan now.")
        changes = self.parser.add_mutually_exclusive_group()
        changes.add_argument("--increased", dest="changes", action="store_const", const=INCREASED)
        changes.add_argument("--changed", dest="changes", action="store_const", const=CHANGED)

    def invoke(self, argument: str, from_tty: bool) -> None:
        args = self.parser.parse(argument)
        if args is None:
            return
        tracking = _selected_tracking(None)
        _check(tracking)
        tracking.checkpoint()
        _check_suppressions()
        out = SESSION.out()
        render_leaks(tracking.report, out, ReportOptions(color=SESSION.use_color(), changes=args.changes))
        render_leak_summary(tracking.report, out, deltas=args.changes is not None)


class MemleakSkip(gdb.Command):
    """Skip the bad free the program is stopped at: the call returns at once and frees nothing.

Usage: memleak skip
At a double or invalid free (`memleak on-error stop`), the program is stopped before the call is made. `memleak skip`
makes it return without freeing, as valgrind does (and `on-error skip` without stopping), so the program runs on;
`continue` alone lets the call happen, as it would without the tool (glibc usually aborts the program then).
A mismatched release (malloc + delete, ...) is not skipped: it still releases the block, as under valgrind."""

    def __init__(self) -> None:
        super().__init__("memleak skip", gdb.COMMAND_RUNNING)

    def invoke(self, argument: str, from_tty: bool) -> None:
        _no_arguments("memleak skip", argument)
        SESSION.out().write(bad_call.skip(gdb.selected_inferior()) + "\n")


class MemleakBreakAlloc(gdb.Command):
    """Stop when allocation number N is made (numbers as shown by `leaks`: #N). `off` clears it.

Usage: memleak break-alloc N|off
Allocation numbers are stable across runs of a deterministic program: find a leak's number, `run` again."""

    def __init__(self) -> None:
        super().__init__("memleak break-alloc", gdb.COMMAND_DATA)

    def invoke(self, argument: str, from_tty: bool) -> None:
        words = gdb.string_to_argv(argument)
        if len(words) != 1:
            raise gdb.GdbError("memleak break-alloc: expects one allocation number or `off` "
                               "(see `help memleak break-alloc`)")
        if words[0] == "off":
            number = None
        else:
            try:
                number = int(words[0].lstrip("#"), 0)
            except ValueError:
                raise gdb.GdbError(f"memleak break-alloc: not an allocation number: {words[0]!r}") from None
            if number < 1:
                raise gdb.GdbError("memleak break-alloc: allocation numbers start at 1")
        SESSION.set_break_alloc(number)
        SESSION.out().write("gdb-memleak: break-alloc cleared.\n" if number is None else
                            f"gdb-memleak: will stop when allocation #{number} is made.\n")


class MemleakBlock(gdb.Command):
    """Describe the heap block containing ADDR: size, allocator, number, age, stack, kind, who points at it.

Usage: memleak block ADDR
ADDR is any expression (a pointer variable, 0x...). Referrers are found by scanning the roots and the other blocks:
a named global, a thread's stack frame, or another block."""

    def __init__(self) -> None:
        super().__init__("memleak block", gdb.COMMAND_DATA)

    def invoke(self, argument: str, from_tty: bool) -> None:
        if not argument.strip():
            raise gdb.GdbError("memleak block: expects an address (see `help memleak block`)")
        try:
            address = int(gdb.parse_and_eval(argument)) & 0xFFFFFFFFFFFFFFFF
        except gdb.error as exc:
            raise gdb.GdbError(f"memleak block: {exc}") from None
        tracking = _selected_tracking(None)
        describe_block(tracking, address, SESSION.out())


class MemleakSnapshot(gdb.Command):
    """Remember this moment (the last allocation number) under NAME, for `leaks --since NAME`.

Usage: memleak snapshot [NAME]      (default names: s1, s2, ...)
A snapshot is a checkpoint too: the baseline of the next deltas, a sample for `leaks --growing`."""

    def __init__(self) -> None:
        super().__init__("memleak snapshot", gdb.COMMAND_DATA)

    def invoke(self, argument: str, from_tty: bool) -> None:
        words = gdb.string_to_argv(argument)
        if len(words) > 1:
            raise gdb.GdbError("memleak snapshot: takes at most one name (see `help memleak snapshot`)")
        tracking = _selected_tracking(None)
        name = words[0] if words else f"s{len(SESSION.snapshots) + 1}"
        tracking.engine.sync()  # the recorder engine's table is only current once read from the program
        tracking.checkpoint()
        seq = tracking.report.table.last_seq
        SESSION.snapshots[name] = (seq, tracking.now())
        tracking.report.table.timeline.mark(name, tracking.now())  # drawn on the HTML report's timeline
        SESSION.out().write(f"gdb-memleak: snapshot {name!r} at allocation #{seq} "
                            f"({tracking.report.table.counters.live_blocks:,} blocks live).\n")


def _no_arguments(name: str, argument: str) -> None:
    if argument.strip():
        raise gdb.GdbError(f"{name}: takes no arguments (see `help {name}`)")


def register() -> None:
    Leaks()
    Memleak()
    MemleakStart()
    MemleakStop()
    MemleakStatus()
    MemleakReset()
    MemleakErrors()
    MemleakCheck()
    MemleakSkip()
    MemleakBreakAlloc()
    MemleakBlock()
    MemleakSnapshot()
