"""Starting threads inside GDB's process without taking signals away from GDB's main thread (no `gdb` import: the
numpy import guard uses it before anything else is loaded).

GDB waits for its processes with SIGCHLD blocked, in sigsuspend(): a SIGCHLD the kernel hands to another thread of
GDB that does not block it wakes nobody, and GDB waits forever (seen: a shell pipeline under a live-report thread).
GDB's own worker threads block every signal; a thread the plugin starts (the CLI's progress line and live
reports), or a library it imports starts (numpy's BLAS workers), must too. A thread inherits the mask of the thread
that creates it, so every signal is blocked around what starts it and the caller's mask restored after.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def signals_blocked() -> Iterator[None]:
    """Threads started inside this block take no signal, ever."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
