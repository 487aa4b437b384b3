"""Halting every thread of one process before it is scanned, when GDB runs in non-stop mode (the batch CLI).

In non-stop mode a stop halts only the thread that reports it, and nothing is stopped to present it: GDB never waits
for a process that cannot stop (a vfork parent sleeps uninterruptibly until its child execs). A scan needs the
process's other threads halted too: their registers and stacks, from the stack pointer up, are roots. GDB's
`interrupt` halts one thread (GDB sends the SIGSTOP itself, so it knows the stop is its own); the thread is in a
ptrace stop as soon as the kernel delivers it, which is all the scan needs (registers come from PTRACE_GETREGS,
memory from /proc/PID/mem), and GDB takes note of the stop later, in its event loop. A thread that does not stop
within `HALT_WAIT` (blocked in vfork) is scanned as a running one (its whole stack). In all-stop mode GDB has
already halted everything.
"""

from __future__ import annotations

import time
from collections.abc import Generator

import gdb

from ..core.procstat import stat_fields
from .log import log

HALT_WAIT = 1.0  # seconds a thread gets to reach its stop
STOPPED_STATES = frozenset({"t", "T", "Z", "X"})  # traced/stopped, or gone


def non_stop() -> bool:
    try:
        return bool(gdb.parameter("non-stop"))
    except RuntimeError:
        return False


def halt_process(inferior: gdb.Inferior) -> None:
    """Interrupt the running threads of `inferior` and wait until the kernel has stopped them."""
    if not non_stop() or not inferior.pid:
        return
    selected = gdb.selected_thread()
    pending = []
    try:
        for thread in inferior.threads():
            if thread.is_valid() and thread.is_running():
                thread.switch()
                gdb.execute("interrupt", to_string=True)
                pending.append(thread.ptid[1])
    except gdb.error:
        log.debug("process %d: could not interrupt every thread", inferior.pid, exc_info=True)
    finally:
        if selected is not None and selected.is_valid():
            selected.switch()
    deadline = time.monotonic() + HALT_WAIT
    while pending and time.monotonic() < deadline:
        pending = [lwp for lwp in pending if not _stopped(inferior.pid, lwp)]
        if pending:
            time.sleep(0.001)
    if pending:
        log.debug("process %d: threads %s did not stop: scanned as running", inferior.pid, pending)


def _stopped(pid: int, lwp: int) -> bool:
    fields = stat_fields(pid, lwp)
    return fields is None or fields[0] in STOPPED_STATES


def each_thread(inferior: gdb.Inferior) -> Generator[gdb.InferiorThread, None, None]:
    """Every live thread of `inferior`, each selected while the caller looks at it; the thread and frame selected
    before are selected again afterwards (also when the caller stops early)."""
    selected = gdb.selected_thread()
    try:
        frame: gdb.Frame | None = gdb.selected_frame()
    except gdb.error:
        frame = None
    try:
        for thread in inferior.threads():
            if not thread.is_valid() or thread.is_exited():
                continue
            thread.switch()
            yield thread
    finally:
        if selected is not None and selected.is_valid():
            selected.switch()
            if frame is not None and frame.is_valid():
                frame.select()
