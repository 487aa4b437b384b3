"""Runs inside GDB (`gdb -batch -x driver.py PROG`) for the batch CLI; configured by GDB_MEMLEAK_CLI.

Either runs the program to its end, or (`--pid`) attaches to a running process, tracks it for a while, reports
and detaches.

Quits GDB with the CLI's exit status: the program's own, or `error_exitcode` when something was found.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import gdb

QUIET = ["set pagination off", "set confirm off", "set width 0",
         "set print inferior-events off", "set suppress-cli-notifications on", "set print thread-events off", "set debuginfod enabled off",
         "handle all nostop noprint pass",
         # forked children stay under GDB and run alongside their parent: each is tracked and reported
         "set detach-on-fork off", "set schedule-multiple on", "set follow-exec-mode same",
         "unset environment GDB_MEMLEAK_CLI", "unset environment GDB_MEMLEAK_PYTHONPATH"]


def _quiet(command: str) -> None:
    try:
        gdb.execute(command, to_string=True)
    except gdb.error:
        pass


def _stop_signal() -> str | None:
    try:
        return signal.Signals(int(gdb.parse_and_eval("$_siginfo.si_signo"))).name
    except (gdb.error, ValueError):
        return None


def _follow_to_the_end(session) -> None:
    """Continue until the process has ended; at a fatal signal report first (memory still there), then kill."""
    from gdb_memleak.gdb.session import FATAL_SIGNALS

    while True:
        if not gdb.selected_inferior().pid:  # this process ended; go on with any other (forked) one
            alive = [inferior for inferior in gdb.inferiors() if inferior.pid]
            if not alive:
                return
            gdb.execute(f"inferior {alive[0].num}", to_string=True)
        tracking = session.current()
        name = _stop_signal()
        if tracking is not None and name in FATAL_SIGNALS:
            session.fatal_signal(tracking, name)
            gdb.execute("kill", to_string=True)
        else:
            gdb.execute("continue", to_string=True)


def _attach_window(pid: int, duration: float, session) -> None:
    """Attach, track for `duration` seconds, report what was allocated meanwhile and is still live, detach."""
    gdb.execute(f"attach {pid}", to_string=True)
    session.start()
    window = threading.Timer(duration, os.kill, (pid, signal.SIGINT))
    window.start()
    try:
        gdb.execute("continue", to_string=True)
        while gdb.selected_inferior().pid:
            name = _stop_signal()
            if name == "SIGINT" and window.finished.is_set():
                session.detach(session.current(), duration)
                return
            if name != "SIGINT":  # a fatal signal, or the end: same as a run
                _follow_to_the_end(session)
                return
            gdb.execute("continue", to_string=True)
    finally:
        window.cancel()


class Progress(threading.Thread):
    """One status line on a terminal's stderr, rewritten twice a second: events/s, live blocks, live bytes."""

    def __init__(self, session, out) -> None:
        super().__init__(daemon=True)
        self.session, self.out = session, out
        self.done = threading.Event()

    def run(self) -> None:
        last_events, last_time = 0, time.monotonic()
        while not self.done.wait(0.5):
            tracking = self.session.current()
            if tracking is None or tracking.reported:  # nothing to show, or the report is out
                continue
            events = tracking.engine.events_seen()
            now = time.monotonic()
            rate = (events - last_events) / (now - last_time)
            last_events, last_time = events, now
            c = tracking.report.table.counters
            self.out.write(f"\r\033[Kgdb-memleak: {rate:,.0f} events/s, {c.live_blocks:,} live blocks, "
                           f"{c.live_bytes:,} live bytes")
            self.out.flush()

    def finish(self) -> None:
        self.done.set()
        self.join()
        self.out.write("\r\033[K")
        self.out.flush()


def _run(config: dict) -> int:
    gdb.execute(f"source {config['loader']}")
    try:
        from gdb_memleak.core.reports import WRITERS
        from gdb_memleak.gdb import settings
        from gdb_memleak.gdb.session import FATAL_SIGNALS, SESSION
    except ImportError:
        return 2  # the loader already said what is missing
    for command in QUIET:
        _quiet(command)
    SESSION.stream = open(os.dup(2), "w", buffering=1)
    SESSION.argv = list(config["argv"])
    settings.depth.value = int(config["depth"])
    settings.on_error.value = config["on_error"]
    settings.engine.value = config.get("engine", "breakpoint")
    settings.default_suppressions.value = config["default_suppressions"]
    settings.suppressions.value = ":".join(config["suppressions"])
    SESSION.shown_kinds = frozenset(config["shown_kinds"])
    SESSION.error_kinds = frozenset(config["error_kinds"])
    settings.errors_for_mappings.value = config.get("errors_for_mappings", "sysv,posix")
    gdb.execute(f"catch signal {' '.join(sorted(FATAL_SIGNALS))}", to_string=True)
    gdb.breakpoints()[-1].silent = True  # a silent catchpoint: the program's stdout gets no GDB chatter
    progress = Progress(SESSION, SESSION.stream) if config.get("progress") else None
    if progress is not None:
        progress.start()
    try:
        if config.get("pid"):
            _attach_window(int(config["pid"]), float(config["duration"]), SESSION)
        else:
            SESSION.start()
            gdb.execute("run", to_string=True)
            _follow_to_the_end(SESSION)
    except gdb.error as exc:
        SESSION.stream.write(f"gdb-memleak: error: {exc}\n")
        return 2
    finally:
        if progress is not None:
            progress.finish()
    reports = SESSION.finished_reports()
    for key, writer in WRITERS.items():
        if config.get(key):
            with open(config[key], "w") as f:
                writer.write(reports, f, None)
    if not reports:
        return 2
    result = reports[-1].result
    if result.exit_code is None and result.signal is None:
        status = 0  # detached: the process runs on
    else:
        status = result.exit_code if result.exit_code is not None else 128 + int(getattr(signal, result.signal, 9))
    found = any(r.findings(SESSION.error_kinds, settings.mapping_error_kinds()) for r in reports)
    return config["error_exitcode"] if found and config["error_exitcode"] else status


def main() -> None:
    try:
        status = _run(json.loads(os.environ["GDB_MEMLEAK_CLI"]))
    except Exception as exc:  # noqa: BLE001 - report, never leave GDB at a prompt
        os.write(2, f"gdb-memleak: internal error: {exc!r}\n".encode())
        status = 2
    gdb.execute(f"quit {status}")


main()
