"""`leaks` and the `memleak` prefix commands. Each is a small class; usage lives in its docstring."""

from __future__ import annotations

import gdb

from ..core.report_json import write_json
from ..core.report_text import LeakOptions, render_by_line, render_leaks, render_summary, render_errors
from .argparsing import CommandParser, positive_int
from .session import SESSION, Tracking


def _selected_tracking(pid: int | None) -> Tracking:
    tracking = SESSION.by_pid(pid) if pid is not None else SESSION.current()
    if tracking is None:
        which = f"process {pid}" if pid is not None else "this inferior"
        raise gdb.GdbError(f"gdb-memleak: no allocation data for {which}: use `memleak start`, then `run`.")
    return tracking


class Leaks(gdb.Command):
    """List unfreed heap blocks grouped by allocation stack, largest first.

Usage: leaks [--by-line] [--top N] [--min-bytes N] [--stack] [--json FILE] [--pid N]

  --by-line      group by the source line of the first frame in your code and show that line
  --top N        show only the N largest groups
  --min-bytes N  hide groups smaller than N bytes
  --stack        show each group's full allocation stack
  --json FILE    also write the JSON report of this process to FILE
  --pid N        report on process N (default: the selected inferior's process)"""

    def __init__(self) -> None:
        super().__init__("leaks", gdb.COMMAND_DATA)
        self.parser = CommandParser("leaks", "List unfreed heap blocks.")
        self.parser.add_argument("--by-line", action="store_true")
        self.parser.add_argument("--top", type=positive_int)
        self.parser.add_argument("--min-bytes", type=positive_int, default=0)
        self.parser.add_argument("--stack", action="store_true")
        self.parser.add_argument("--json", metavar="FILE")
        self.parser.add_argument("--pid", type=positive_int)

    def invoke(self, argument: str, from_tty: bool) -> None:
        args = self.parser.parse(argument)
        if args is None:
            return
        tracking = _selected_tracking(args.pid)
        report = tracking.report
        out = SESSION.out()
        options = LeakOptions(top=args.top, min_bytes=args.min_bytes, stack=args.stack, color=SESSION.use_color())
        if args.by_line:
            render_by_line(report, out, options)
        else:
            render_leaks(report, out, options)
        if args.json:
            try:
                with open(args.json, "w") as f:
                    write_json([report], f)
            except OSError as exc:
                raise gdb.GdbError(f"leaks: cannot write {args.json}: {exc.strerror}")
            out.write(f"JSON report written to {args.json}\n")


class Memleak(gdb.Command):
    """Heap leak and heap error tracking (gdb-memleak).

Usage: memleak start|stop|status|reset|errors
See `help memleak SUBCOMMAND`, `leaks` for the report and `show memleak` for settings."""

    def __init__(self) -> None:
        super().__init__("memleak", gdb.COMMAND_DATA, prefix=True)


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
        if tracking.finished:
            state = "ended"
        elif tracking.report.result.signal:
            state = f"reported at {tracking.report.result.signal} (the process has not ended yet)"
        else:
            state = "tracking" if engine and engine.entries else "not tracking"
        out.write(f"gdb-memleak: process {tracking.pid}: {state}\n")
        if engine is not None and engine.entries:
            hooked = ", ".join(f"{d.definition.spec.name} ({d.definition.object})" for d in engine.entries.values())
            out.write(f"  hooked: {hooked}\n")
        c = tracking.report.table.counters
        out.write(f"  live: {c.live_bytes:,} bytes in {c.live_blocks:,} blocks; "
                  f"peak: {c.peak_bytes:,} bytes in {c.peak_blocks:,} blocks\n")
        render_summary(tracking.report, out)
        if engine is not None:
            s = engine.stats
            out.write(f"  stops: {s.entry_stops:,} entry, {s.return_stops:,} return; {s.nested_calls:,} nested calls; "
                      f"{s.return_breakpoints:,} return sites; stacks {engine.stacks.fast:,} fast, "
                      f"{engine.stacks.slow:,} via GDB; heap errors: {len(tracking.report.table.errors)}\n")
            if s.internal_errors:
                out.write(f"  internal errors: {s.internal_errors}\n")


class MemleakReset(gdb.Command):
    """Forget every recorded block and counter; keep tracking. Later frees of forgotten blocks are untracked.

Usage: memleak reset"""

    def __init__(self) -> None:
        super().__init__("memleak reset", gdb.COMMAND_DATA)

    def invoke(self, argument: str, from_tty: bool) -> None:
        _no_arguments("memleak reset", argument)
        tracking = _selected_tracking(None)
        tracking.report.table.reset()
        SESSION.out().write("gdb-memleak: table cleared.\n")


class MemleakErrors(gdb.Command):
    """List the heap errors seen (double and invalid frees) with their stacks.

Usage: memleak errors"""

    def __init__(self) -> None:
        super().__init__("memleak errors", gdb.COMMAND_DATA)

    def invoke(self, argument: str, from_tty: bool) -> None:
        _no_arguments("memleak errors", argument)
        tracking = _selected_tracking(None)
        out = SESSION.out()
        if not tracking.report.table.errors:
            out.write("gdb-memleak: no heap errors.\n")
        render_errors(tracking.report, out)


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
