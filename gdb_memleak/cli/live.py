"""Live reports of the batch CLI: a report while the program runs on (`--report-every SECONDS`, or SIGUSR1 sent to
the gdb-memleak process). Runs inside GDB, beside driver.py.

How the program is stopped for a report: a thread of GDB's Python waits on the pipe the CLI writes a byte to at
each SIGUSR1 (cli/runner.py), or for the interval to pass, then posts `interrupt -a` to GDB's main thread
(`gdb.post_event`: GDB's event loop runs it while it waits for the program). In non-stop mode GDB stops each thread
with its own SIGSTOP, which no signal mask or `sigwait` of the program can hold back, and the program never sees a
signal. The driver's `continue -a` then returns; it asks `due()`, makes the report, and continues. An attached
process (`--pid`, all-stop mode, where `interrupt` would send a SIGINT) is stopped with a SIGSTOP the driver
catches and discards instead.

The thread calls no other `gdb` API (GDB is not thread-safe): `post_event` is the one call meant for threads.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Callable, Sequence
from typing import TextIO

import gdb

from ..gdb.signal_mask import signals_blocked


class LiveReports:
    """Asks for a live report every `every` seconds (None: only when asked) and at each byte read from `fd`."""

    def __init__(self, fd: int | None, every: float | None) -> None:
        self.fd, self.every = fd, every
        self.requested = threading.Event()
        self.count = 0
        self.closed = threading.Event()
        self._thread: threading.Thread | None = None
        # how a report stops the program: GDB's `interrupt -a` (a started program runs in non-stop mode: GDB stops
        # each thread with its own SIGSTOP); an attached process in all-stop mode gets one SIGSTOP (cli/driver.py)
        self.stop_with: Callable[[], None] = lambda: gdb.post_event(self._interrupt_all)

    @property
    def enabled(self) -> bool:
        return self.fd is not None or self.every is not None

    def start(self) -> None:
        if self.enabled:
            self._thread = threading.Thread(target=self._wait, name="gdb-memleak live reports", daemon=True)
            with signals_blocked():
                self._thread.start()

    def stop(self) -> None:
        """No more reports (the final report is being made)."""
        self.closed.set()

    def _wait(self) -> None:
        due = time.monotonic() + self.every if self.every is not None else None
        fds = [self.fd] if self.fd is not None else []
        while not self.closed.is_set():
            timeout = None if due is None else max(due - time.monotonic(), 0.0)
            ready, _, _ = select.select(fds, [], [], timeout) if fds or timeout is not None else ([], [], [])
            if self.closed.is_set():
                return
            if ready:
                if not os.read(self.fd, 64):  # type: ignore[arg-type]  # the CLI has gone: no more requests
                    fds = []
                    if due is None:
                        return
                    continue
            elif due is not None and time.monotonic() >= due:
                due = time.monotonic() + self.every  # type: ignore[operator]
            else:
                continue
            if not self.requested.is_set():
                self.requested.set()
                self.stop_with()

    def _interrupt_all(self) -> None:
        """In GDB's main thread: stop every thread of every process. When none runs yet (GDB is still starting
        the program) the request is dropped: the next one comes with the next period or signal."""
        try:
            gdb.execute("interrupt -a", to_string=True)
        except gdb.error:
            self.requested.clear()

    def due(self) -> bool:
        """Whether a report was asked for since the last one (the driver's loop asks after each `continue -a`)."""
        return self.requested.is_set() and not self.closed.is_set()

    def report(self, trackings: Sequence, render: Callable[[TextIO, Sequence], None], out: TextIO,
               write_files: Callable[[Sequence], object]) -> None:
        """One live report: every process being tracked that has recorded something stopped and scanned, the
        report rendered, the requested files rewritten (`render` and `write_files` get those trackings). A process
        with nothing recorded yet (between its exec and its first allocation, or GDB's start-up shim) is left out.
        Requests made while one is pending are one request: a slow report never piles them up."""
        from gdb_memleak.gdb.threadstop import halt_process

        started = time.monotonic()
        shown = []
        for tracking in trackings:
            halt_process(tracking.engine.inferior)
            tracking.engine.sync()
            table = tracking.table
            if table.counters.allocs or table.errors or table.heap_walked:
                shown.append(tracking)
        if not shown:  # nothing recorded yet: nothing to report
            self.requested.clear()
            return
        self.count += 1
        for tracking in shown:
            tracking.refresh_maps()
            tracking.scan()
            tracking.report.warm()
            tracking.checkpoint()  # a growth sample, and the baseline of the next report's deltas
        seconds = max(t.now() for t in shown)
        out.write(f"\ngdb-memleak: live report {self.count} at {seconds:.1f} s (the program runs on)\n")
        render(out, shown)
        write_files(shown)
        paused = time.monotonic() - started
        out.write(f"gdb-memleak: end of live report {self.count} (the program was paused {paused:.2f} s)\n")
        out.flush()
        self.requested.clear()
