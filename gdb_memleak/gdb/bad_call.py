"""The bad release a program is stopped at (`memleak on-error stop`) and `memleak skip`, which makes that call return
without releasing anything, as valgrind does with a bad free (and as `on-error skip` does without stopping).
`continue` alone lets the call happen, as it would without the tool (glibc then usually aborts).

Each engine says how its call is skipped. The breakpoint engine stops at the allocator's entry: it pops the return
address into PC and SP (register writes). The recorder stops inside its own hook, which reads the skip flag of the
error record once GDB lets it go: GDB writes that flag. Neither calls a function in the program.

A call is only skipped while the program is still at that stop: the same thread at the same PC and stack pointer,
and no stop of its engine since (a `continue`, `stepi` or `finish` in between means the call may have run).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import gdb

from ..core.kinds import OnError, effective_action
from ..core.model import HeapError


@dataclass
class BadCall:
    """One bad release held at its stop; `skip` makes it return without releasing and says what it did (None:
    this release is never skipped, `why_not` says why)."""

    what: str
    thread: gdb.InferiorThread
    pc: int
    sp: int
    sp_register: str
    stops: Callable[[], int]  # the engine's stop count: it moves when the program has been stopped again
    stops_then: int
    skip: Callable[[], str] | None
    why_not: str = ""


_PENDING: dict[int, BadCall] = {}  # inferior number -> the bad call its last error stop is at


def describe(error: HeapError) -> str:
    return f"{error.allocator}(0x{error.address:x})"


def skippable(error: HeapError) -> bool:
    """Whether `memleak skip` may skip it: a mismatched release still releases the block, as valgrind does."""
    return effective_action(OnError.SKIP, error.type) is OnError.SKIP


def stopped_at(inferior: gdb.Inferior, error: HeapError, sp_register: str, stops: Callable[[], int],
               skip: Callable[[], str]) -> None:
    """Called from the engine's `Breakpoint.stop()` returning True at a bad release: remember where it stopped and
    how the engine skips it."""
    frame = gdb.newest_frame()
    _PENDING[inferior.num] = BadCall(
        describe(error), gdb.selected_thread(), frame.pc(), _sp(frame, sp_register), sp_register, stops, stops(),
        skip if skippable(error) else None,
        "" if skippable(error) else "a mismatched release still releases the block, as valgrind does")


def skip(inferior: gdb.Inferior) -> str:
    """`memleak skip`: skip the bad call the selected inferior is stopped at; returns the line to print."""
    call = _PENDING.get(inferior.num)
    chosen = gdb.selected_frame() if gdb.selected_thread() == getattr(call, "thread", None) else None
    if call is None:
        raise gdb.GdbError("memleak skip: the program is not stopped at a bad free (`memleak on-error stop` stops "
                           "there)")
    if not call.thread.is_valid() or call.stops() != call.stops_then or not _still_at(call):
        del _PENDING[inferior.num]
        raise gdb.GdbError(f"memleak skip: the program has run since it stopped at the bad {call.what}: "
                           "nothing to skip")
    if call.skip is None:
        raise gdb.GdbError(f"memleak skip: the {call.what} is not skipped: {call.why_not}")
    del _PENDING[inferior.num]
    gdb.newest_frame().select()  # register writes go to the thread's own registers, not a caller's saved ones
    done = call.skip()
    if chosen is not None and chosen.is_valid():  # the frame the user was looking at, when it is still there
        chosen.select()
    return f"gdb-memleak: {call.what} skipped: {done}."


def _still_at(call: BadCall) -> bool:
    call.thread.switch()
    frame = gdb.newest_frame()
    return frame.pc() == call.pc and _sp(frame, call.sp_register) == call.sp


def _sp(frame: gdb.Frame, register: str) -> int:
    return int(frame.read_register(register)) & 0xFFFFFFFFFFFFFFFF
