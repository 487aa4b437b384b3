"""Frame-pointer stack walk over raw memory: the fast path for capturing a caller stack inside `stop()`.

GDB's unwinder costs ~100 us to build frame #0 plus ~10 us a frame; reading a few words of the stack costs a few
microseconds. The walk is only trusted while every function on the chain keeps a frame pointer; the caller decides
that per PC (`classify`) and falls back to GDB's unwinder when the walk reports itself incomplete.
"""

from __future__ import annotations

from enum import Enum
from typing import Callable

MAX_FRAME_SPAN = 8 << 20  # a saved frame pointer further than this above the last one is garbage


class FrameKind(Enum):
    FRAME_POINTER = "fp"   # function saves rbp and sets rbp = rsp: its frame links to the next one
    ROOT = "root"          # main, a thread entry or the loader's entry: the stack shown stops here
    NO_FRAME_POINTER = "nofp"
    NOT_CODE = "junk"      # not in any executable mapping: no return address (argc, a stack address, 0)


PROLOGUES = (
    bytes.fromhex("554889e5"),          # push %rbp; mov %rsp,%rbp
    bytes.fromhex("f30f1efa554889e5"),  # endbr64; push %rbp; mov %rsp,%rbp
)


def has_frame_pointer_prologue(code: bytes) -> bool:
    """True when the function's first bytes set up a frame pointer (gcc -O0 or -fno-omit-frame-pointer)."""
    return any(code.startswith(prologue) for prologue in PROLOGUES)


def walk_frame_pointers(first_pc: int, frame_pointer: int, stack_pointer: int, depth: int,
                        read_word: Callable[[int], int | None],
                        classify: Callable[[int], FrameKind]) -> tuple[list[int], bool]:
    """Return (pcs, complete) starting at `first_pc`, the return address into the allocator's caller.

    `frame_pointer` is the caller's rbp at allocator entry (the allocator has not pushed anything yet).
    `complete` is False when a frame without a frame pointer, or a corrupt link, cut the walk short. A saved
    return address that is not code is never kept: the chain ended or is corrupt, and GDB's unwinder decides.
    """
    pcs = [first_pc]
    pc, fp, floor = first_pc, frame_pointer, stack_pointer
    while len(pcs) < depth:
        kind = classify(pc)
        if kind is FrameKind.ROOT:
            return pcs, True
        if kind is not FrameKind.FRAME_POINTER:
            return pcs, False
        if fp % 8 or fp < floor or fp - floor > MAX_FRAME_SPAN:
            return pcs, False
        saved_fp = read_word(fp)
        ret = read_word(fp + 8)
        if saved_fp is None or ret is None or ret == 0 or classify(ret) is FrameKind.NOT_CODE:
            return pcs, False
        pcs.append(ret)
        pc, floor, fp = ret, fp + 16, saved_fp
    return pcs, True
