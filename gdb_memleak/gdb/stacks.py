"""Capturing the caller stack at an allocator's entry: a frame-pointer walk first, GDB's unwinder when it can't."""

from __future__ import annotations

import gdb

from ..core.procmaps import Mapping
from ..core.unwind import FrameKind, walk_frame_pointers
from .access import StackReader
from .log import log
from .symbolize import FrameClassifier, gdb_call_returns


class StackCapture:
    def __init__(self, inferior: gdb.Inferior, depth: int, maps: list[Mapping] | None = None) -> None:
        self.inferior = inferior
        self.depth = depth
        self.classify = FrameClassifier(inferior, maps)
        self.fast = 0
        self.slow = 0

    def capture(self, stack: StackReader, return_address: int, frame_pointer: int) -> tuple[int, ...]:
        """Raw return addresses, innermost (the allocator's caller) first."""
        if self.depth <= 1:
            return (return_address,)
        pcs, complete = walk_frame_pointers(return_address, frame_pointer, stack.base + 8, self.depth,
                                            stack.read_word, self.classify)
        if complete:
            self.fast += 1
            return tuple(pcs)
        self.slow += 1
        return self.unwind_with_gdb() or tuple(pcs)

    def unwind_with_gdb(self) -> tuple[int, ...]:
        """GDB's unwinder, stopped at the real outermost frame: GDB's heuristics unwind past the loader's entry
        (`_start`, `_dl_start_user`: no CFI) into argc, argv and 0, which are no frames."""
        try:
            frame = newest_real_frame()  # the allocator's own inlined code skipped
            frame = frame.older() if frame is not None else None
        except gdb.error:
            log.debug("no frame to unwind from", exc_info=True)
            return ()
        return self.unwind_from(frame)

    def unwind_from(self, frame: gdb.Frame | None, resumed: bool = False) -> tuple[int, ...]:
        """PCs from `frame` outwards, as return addresses. With `resumed`, `frame` holds the PC where it resumes
        (a thread stopped by a signal), stored one past it like the frame a GDB `call` interrupted."""
        pcs: list[int] = []
        try:
            while frame is not None and len(pcs) < self.depth:
                kind = frame.type()
                if kind == gdb.DUMMY_FRAME:  # the user's `call f()` from GDB: f's caller is GDB
                    gdb_call_returns.add(frame.pc())
                    pcs.append(frame.pc())
                elif kind != gdb.INLINE_FRAME:  # inlined calls are expanded from the PC at report time
                    # Recorded PCs are return addresses, looked up at pc - 1; the frame a GDB `call` or a signal
                    # handler interrupted holds the PC where it will resume instead, so it is stored one past it.
                    pc = frame.pc() + 1 if resumed else frame.pc()
                    verdict = self.classify(pc)
                    if verdict is FrameKind.NOT_CODE:
                        break
                    pcs.append(pc)
                    if verdict is FrameKind.ROOT:
                        break
                if kind != gdb.INLINE_FRAME:
                    resumed = kind in (gdb.DUMMY_FRAME, gdb.SIGTRAMP_FRAME)  # both interrupted the frame below
                frame = frame.older()
        except gdb.error:  # GDB's unwinder gave up further out: the frames found so far are the stack
            log.debug("unwinding stopped after %d frames", len(pcs), exc_info=True)
        return tuple(pcs)


def newest_real_frame() -> gdb.Frame | None:
    """The selected thread's newest frame that is not an inlined call (inlined calls are expanded from the PC at
    report time)."""
    frame: gdb.Frame | None = gdb.newest_frame()
    while frame is not None and frame.type() == gdb.INLINE_FRAME:
        frame = frame.older()
    return frame
