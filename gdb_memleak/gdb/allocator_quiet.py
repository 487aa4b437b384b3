"""Which threads of a stopped process are inside an allocator call: the moment GDB may read glibc's heap, and the
thread GDB may borrow for a call by hand (handcall.py), are those where none is.

A thread is *busy* when, walking its frames from the newest, the first frame that is the allocator's is glibc's
malloc family (an arena half-updated, a tcache list being relinked) or the recorder's own code (a block freed in
glibc but still in the table). It is *held* when that frame is the recorder's gate (gate.c: the thread waits there
before touching anything). Frames are GDB's (unwinding by debug info or frame pointers, whichever GDB has).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import gdb

from .log import log
from .threadstop import each_thread

#: glibc's allocator functions by their (debug or minimal) names: the entry points, their __libc_/__GI_ aliases
#: and the internals they call (_int_malloc, sysmalloc, malloc_consolidate, tcache_init, arena_get2 ...)
LIBC_ALLOCATOR = re.compile(r"(^|_)(malloc|free|calloc|realloc|reallocarray|memalign|aligned_alloc|valloc|pvalloc"
                            r"|posix_memalign|sysmalloc|systrim|consolidate|heap_trim|unlink_chunk|tcache\w*"
                            r"|arena\w*)$")
GATE_FUNCTION = "memleak_agent_gate"
FRAMES_LOOKED_AT = 16  # an allocator call is at most this deep below the program's frame


@dataclass(frozen=True)
class ThreadState:
    thread: gdb.InferiorThread
    busy: bool        # inside glibc's allocator or the recorder: its heap state is half-way
    held: bool        # waiting at the recorder's gate
    in_syscall: bool  # stopped right after a `syscall` instruction (blocked: the best thread to borrow)


def thread_states(inferior: gdb.Inferior, recorder: str | None) -> list[ThreadState]:
    """Every live thread of `inferior` (stopped), classified; the selected thread and frame are selected again."""
    states = [_classify(thread, recorder) for thread in each_thread(inferior)]
    return states


def busy(states: Iterable[ThreadState]) -> list[ThreadState]:
    return [s for s in states if s.busy]


def run_out(thread: gdb.InferiorThread, recorder: str | None) -> None:
    """Let `thread` (busy) run until its allocator call returns to the program: a breakpoint for that thread at
    the return address of its outermost allocator frame (the other threads run meanwhile)."""
    thread.switch()
    frame: gdb.Frame | None = gdb.newest_frame()
    caller = None
    for _ in range(FRAMES_LOOKED_AT):
        if frame is None:
            break
        older = frame.older()
        if _allocator_frame(frame, recorder):
            caller = older
        frame = older
    if caller is None:
        return
    stop = gdb.Breakpoint(f"*0x{caller.pc():x}", internal=True)
    stop.silent, stop.thread = True, thread.num
    try:
        for _ in range(100):
            gdb.execute("continue", to_string=True)
            if not thread.is_valid() or gdb.selected_thread() == thread:
                break
    finally:
        stop.delete()
    if thread.is_valid():
        thread.switch()


def _allocator_frame(frame: gdb.Frame, recorder: str | None) -> bool:
    name = frame.name() or ""
    library = gdb.solib_name(frame.pc()) or ""
    return (recorder is not None and library == recorder) or ("/libc.so" in library
                                                                and bool(LIBC_ALLOCATOR.search(name)))


def _classify(thread: gdb.InferiorThread, recorder: str | None) -> ThreadState:
    frame: gdb.Frame | None = gdb.newest_frame()
    in_syscall = _after_syscall(thread.inferior, frame.pc()) if frame is not None else False
    busy = held = False
    for _ in range(FRAMES_LOOKED_AT):
        if frame is None:
            break
        try:
            if _allocator_frame(frame, recorder):
                held = _waits_at_gate(frame, recorder)
                busy = not held
                break
            frame = frame.older()
        except gdb.error:
            log.debug("thread %d: frames end early", thread.num, exc_info=True)
            break
    return ThreadState(thread, busy, held, in_syscall)


def _waits_at_gate(frame: gdb.Frame | None, recorder: str | None) -> bool:
    """Whether the recorder's frames from `frame` on (its gate's own helpers first) lead to the gate."""
    while frame is not None and recorder is not None and gdb.solib_name(frame.pc()) == recorder:
        if frame.name() == GATE_FUNCTION:
            return True
        frame = frame.older()
    return False


def _after_syscall(inferior: gdb.Inferior, pc: int) -> bool:
    try:
        return bytes(inferior.read_memory(pc - 2, 2)) == b"\x0f\x05"
    except gdb.MemoryError:
        return False
