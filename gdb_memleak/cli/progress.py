"""The batch CLI's live status line (events/s, live blocks, live bytes) on a terminal's stderr.

The program writes to the same terminal, at moments nobody can predict, so the line is kept out of its way instead
of cleared in time: the terminal's scroll region is set to every row but the last, program output (and the report)
scroll inside it, and the status is drawn on the last row with the cursor saved and restored in the same write()
(one write to a tty is never interleaved with another process's write). At the end the region is reset and the
row cleared; `reset_terminal` does the same if GDB was killed before it could.

The thread calls no `gdb` API (GDB is not thread-safe): it reads plain counters the engine and the table keep.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from ..gdb.signal_mask import signals_blocked

MIN_ROWS = 3


def terminal_rows(fd: int) -> int:
    """Rows of the terminal on fd, 0 when it is not a terminal fit for a status line."""
    if not os.isatty(fd) or os.environ.get("TERM", "dumb") == "dumb":
        return 0
    try:
        rows = os.get_terminal_size(fd).lines
    except OSError:
        return 0
    return rows if rows >= MIN_ROWS else 0


def reset_terminal(fd: int) -> None:
    """Give the whole screen back to scrolling and clear the status row (cursor kept where it was)."""
    rows = terminal_rows(fd)
    if rows:
        os.write(fd, f"\0337\033[r\033[{rows};1H\033[2K\0338".encode())


class StatusLine:
    def __init__(self, fd: int) -> None:
        self.fd, self.rows = fd, 0

    def reserve(self) -> None:
        """Take the last row out of scrolling. Done before the program starts, while the cursor is at the start of
        a line: a newline then up one row makes room whatever row the cursor is on; setting the region homes the
        cursor, so it is saved and restored around it."""
        rows = terminal_rows(self.fd)
        if rows:
            os.write(self.fd, f"\n\0337\033[1;{rows - 1}r\0338\033[1A".encode())
        self.rows = rows

    def show(self, text: str) -> None:
        rows = terminal_rows(self.fd)
        if not rows or not self.rows:
            return
        if rows != self.rows:  # the terminal was resized: the region follows
            os.write(self.fd, f"\0337\033[1;{rows - 1}r\0338".encode())
            self.rows = rows
        os.write(self.fd, f"\0337\033[{rows};1H\033[2K{text}\0338".encode())

    def close(self) -> None:
        if self.rows:
            reset_terminal(self.fd)
            self.rows = 0


class Progress(threading.Thread):
    """Redraws the status line twice a second from the session's plain counters."""

    def __init__(self, session: Any, fd: int, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.session, self.interval = session, interval
        self.line = StatusLine(fd)
        self.done = threading.Event()

    def sample(self) -> tuple[int, int, int] | None:
        """(allocator stops so far, live blocks, live bytes) over the processes being tracked, or None."""
        running = [t for t in list(self.session.tracking.values())  # a vfork child records into its parent's table
                   if not t.finished and not t.reported and t.shares_memory_with is None]
        if not running:
            return None
        # each engine's own plain figures: the recorder's come straight from its memory (/proc/PID/mem), the
        # breakpoint engine's from its table
        events = blocks = size = 0
        for tracking in running:
            e, b, s = tracking.engine.progress()
            events, blocks, size = events + e, blocks + b, size + s
        return events, blocks, size

    def start(self) -> None:
        self.line.reserve()  # now, before the program can write anything
        with signals_blocked():  # SIGCHLD is GDB's main thread's (gdb/signal_mask.py)
            super().start()

    def run(self) -> None:
        last_events, last_time = 0, time.monotonic()
        while not self.done.wait(self.interval):
            sample = self.sample()
            if sample is None:  # nothing tracked yet, or the report is being made
                continue
            events, blocks, size = sample
            now = time.monotonic()
            rate = max(events - last_events, 0) / (now - last_time)
            last_events, last_time = events, now
            self.line.show(f"gdb-memleak: {rate:,.0f} events/s, {blocks:,} live blocks, {size:,} live bytes")

    def finish(self) -> None:
        self.done.set()
        self.join()
        self.line.close()
