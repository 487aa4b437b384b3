"""The frame selected when the program stops inside the recorder (a bad free, `memleak break-alloc N`): the
program's own, the hooked call's caller, so `frame`, `info locals` and `up` start there and not in recorder.c.

The engine marks the stop from its breakpoint's `stop()`, where GDB has not reported the stop yet and selecting a
frame would not last; the frame is selected at GDB's stop event that follows.
"""

from __future__ import annotations

import gdb

from .log import log

_PROGRAM_FRAME: dict[int, str] = {}  # inferior number -> the recorder library whose frames the next stop steps over


def select_at_stop(inferior: gdb.Inferior, library: str) -> None:
    """`inferior` is about to stop inside `library` (the recorder): select its caller's frame once it has."""
    _PROGRAM_FRAME[inferior.num] = library


def program_frame(library: str) -> gdb.Frame | None:
    """The newest frame whose code is not the recorder's (the hooked call's caller)."""
    frame: gdb.Frame | None = gdb.newest_frame()
    while frame is not None:
        if gdb.solib_name(frame.pc()) != library:
            return frame
        frame = frame.older()
    return None


def on_stop(_event: gdb.StopEvent) -> None:
    """GDB's stop event: select the program's frame if the engine marked this stop."""
    library = _PROGRAM_FRAME.pop(gdb.selected_inferior().num, None)
    if library is None:
        return
    try:
        frame = program_frame(library)
        if frame is not None:
            frame.select()
    except gdb.error:
        log.debug("could not select the program's frame", exc_info=True)
