"""Capturing the caller stack at an allocator's entry: a frame-pointer walk first, GDB's unwinder when it can't."""

from __future__ import annotations

import gdb

from ..core.unwind import walk_frame_pointers
from .access import StackReader
from .symbolize import FrameClassifier


class StackCapture:
    def __init__(self, inferior: gdb.Inferior, depth: int) -> None:
        self.inferior = inferior
        self.depth = depth
        self.classify = FrameClassifier(inferior)
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
        pcs: list[int] = []
        try:
            frame = gdb.newest_frame().older()
            resumed = False
            while frame is not None and len(pcs) < self.depth:
                if frame.type() != gdb.INLINE_FRAME:
                    # Recorded PCs are return addresses, looked up at pc - 1; the frame a GDB `call` interrupted
                    # holds the PC where it will resume instead, so it is stored one past it.
                    pcs.append(frame.pc() + 1 if resumed else frame.pc())
                resumed = frame.type() == gdb.DUMMY_FRAME
                frame = frame.older()
        except gdb.error:
            pass
        return tuple(pcs)
