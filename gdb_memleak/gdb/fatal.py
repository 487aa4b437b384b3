"""Reading what a fatal signal says, at the stop where GDB sees it delivered: siginfo's code and fault address
($_siginfo), and the stack of the thread that got it (the selected thread at that stop)."""

from __future__ import annotations

import signal

import gdb

from ..core.fatal import FAULT_EVENTS, FatalSignal
from ..core.procmaps import Mapping
from .log import log
from .stacks import StackCapture, newest_real_frame


def read_fatal_signal(name: str, inferior: gdb.Inferior, depth: int, maps: list[Mapping] | None = None) -> FatalSignal:
    """The signal `name` being delivered to the selected thread, its fault address, and that thread's stack (at
    most `depth` frames). Whatever GDB cannot read is left out: the report still names the signal. `maps`: the
    process's mappings when they are not the live process's (a core's)."""
    number, code, address = int(getattr(signal, name, 0)), None, None
    try:
        info = gdb.parse_and_eval("$_siginfo")
        number, code = int(info["si_signo"]), int(info["si_code"])
        if name in FAULT_EVENTS:
            address = int(info["_sifields"]["_sigfault"]["si_addr"])
    except (gdb.error, RuntimeError):
        log.debug("no siginfo for %s", name, exc_info=True)
    thread = gdb.selected_thread()
    tid = thread.ptid[1] or thread.ptid[0] if thread is not None else None
    pc: int | None = None
    callers: tuple[int, ...] = ()
    try:
        frame = newest_real_frame()
        if frame is not None:
            pc = frame.pc()  # where the thread was: kept even outside any code (a call through a null pointer)
            # a signal handler's trampoline: the frame above it was interrupted, not calling
            resumed = frame.type() == gdb.SIGTRAMP_FRAME
            callers = StackCapture(inferior, max(depth - 1, 0), maps).unwind_from(frame.older(), resumed=resumed)
    except gdb.error:
        log.debug("no stack for %s", name, exc_info=True)
    return FatalSignal(name, number, code, address, tid, pc, callers)

