"""A call into the program made by hand, without GDB's inferior-call machinery.

Why: GDB's `call` saves and restores the thread's whole register state, and writing the extended (AVX/AMX) state
back fails on some hosts ("Couldn't write extended state status: Bad address"). Here GDB writes only general
registers and memory: the borrowed thread runs a small trampoline that saves its own extended state with XSAVE,
calls the function, restores it with XRSTOR and ends on an instruction GDB breaks on. Then every general register,
the trampoline's bytes and the stack below the red zone are put back as they were: the program goes on as if
nothing happened (a thread stopped inside a system call restarts it: `orig_rax` is restored too).

The trampoline is written over the executable's entry point (`_start`, which never runs again) and removed after.
The other threads of the process run while the call runs (in all-stop mode `continue` resumes them all): a lock the
callee needs (the loader's, a malloc arena's) is released by its holder, never held by a stopped thread. A stop of
another thread on the way (a breakpoint, a signal) is let go; the process exiting, or the call faulting, is one
line (HandCallError), the latter with the thread put back and the signal discarded. A signal sent to the process
(kill, a timer) that the borrowed thread happens to take is held back during the call and queued for that thread
once it is put back: the program gets it, just later, never inside the trampoline.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Sequence
from dataclasses import dataclass

import gdb

from .log import log

ARGUMENT_REGISTERS = ("rdi", "rsi", "rdx", "rcx", "r8", "r9")
SAVED_REGISTERS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13",
                   "r14", "r15", "eflags", "orig_rax", "rip")
RED_ZONE = 128
XSAVE_AREA = 16384  # XSAVE with every component XCR0 enables, AMX tile data included (~11 KiB), 64-byte aligned
STACK_MARGIN = 8192  # room the callee gets below our data (dlopen needs a few KiB)
MAX_FOREIGN_STOPS = 1000
#: signals the callee's own instructions raise (si_code > 0: sent by the kernel for a fault): the call failed
FAULTS = frozenset({"SIGSEGV", "SIGBUS", "SIGILL", "SIGFPE", "SIGSYS"})

# rbx: the XSAVE area (zeroed, 64-byte aligned); r12: the function; arguments in the SysV registers; rsp 16-aligned.
TRAMPOLINE = bytes.fromhex(
    "4989d5"        # mov r13, rdx          keep the third argument: edx:eax is XSAVE's component mask
    "b8ffffffff"    # mov eax, -1
    "baffffffff"    # mov edx, -1
    "480fae23"      # xsave64 [rbx]         the thread's x87/SSE/AVX/... state
    "4c89ea"        # mov rdx, r13
    "31c0"          # xor eax, eax          no vector arguments (variadic callees read al)
    "41ffd4"        # call r12
    "4989c5"        # mov r13, rax          the result
    "b8ffffffff"    # mov eax, -1
    "baffffffff"    # mov edx, -1
    "480fae2b"      # xrstor64 [rbx]
    "4c89e8"        # mov rax, r13
    "90"            # done: nop             GDB's breakpoint
    "ebfd"          # jmp done
)
DONE_OFFSET = len(TRAMPOLINE) - 3
BACK_OFFSET = len(TRAMPOLINE)
JUMP_BACK = bytes.fromhex("ff2500000000")  # back: jmp [rip + 0], the address in the next 8 bytes


_RUNNING: list[int] = []  # threads making a call by hand now (GDB's events meanwhile must not start another)


def running() -> bool:
    """Whether a call by hand is under way: the stops and new objects GDB reports meanwhile are its own."""
    return bool(_RUNNING)


class HandCallError(Exception):
    """A call by hand could not be made or did not return; the message is one line."""


@dataclass(frozen=True)
class HandCallResult:
    value: int             # rax
    data_address: int      # where `data` was while the call ran (0 without data)


def _displaced_stepping_off() -> str:
    """Turn displaced stepping off; return the setting to put back. GDB steps another thread over its breakpoint
    in a buffer at the entry point, our trampoline's place: that copy would overwrite the trampoline mid-call."""
    value = gdb.parameter("displaced-stepping")  # None for auto
    gdb.execute("set displaced-stepping off", to_string=True)
    return "on" if value is True else "off" if value is False else "auto"


def call_function(address: int, args: Sequence[int] = (), *, data: bytes = b"",
                  data_args: Sequence[int] = ()) -> HandCallResult:
    """Call the function at `address` on the selected thread (stopped) with integer `args`; `data` is written on
    that thread's stack below the red zone first, and each index in `data_args` replaces that argument with the
    data's address plus the argument's value (an offset into `data`). Returns rax."""
    if len(args) > len(ARGUMENT_REGISTERS):
        raise HandCallError(f"a call by hand takes at most {len(ARGUMENT_REGISTERS)} arguments")
    thread = gdb.selected_thread()
    if thread is None or not thread.is_stopped():
        raise HandCallError("no stopped thread to make the call")
    inferior = thread.inferior
    saved = _read_registers()
    rsp = saved["rsp"]
    area = (rsp - RED_ZONE - XSAVE_AREA) & ~63
    data_address = (area - len(data)) & ~15 if data else area
    new_rsp = (data_address - 64) & ~15
    _check_stack_room(inferior.pid, rsp, new_rsp - STACK_MARGIN)
    low = new_rsp - 8  # the callee's return address lands at new_rsp - 8
    stack_before = bytes(inferior.read_memory(low, rsp - low))
    entry = entry_point()
    code = TRAMPOLINE + JUMP_BACK + saved["rip"].to_bytes(8, "little")
    code_before = bytes(inferior.read_memory(entry, len(code)))
    values = list(args)
    for index in data_args:
        values[index] = data_address + values[index]
    done = entry + DONE_OFFSET
    breakpoint = None
    deferred: list[str] = []  # signals sent to the process that the borrowed thread took during the call
    displaced = _displaced_stepping_off()
    try:
        inferior.write_memory(entry, code)
        inferior.write_memory(area, bytes(XSAVE_AREA))
        if data:
            inferior.write_memory(data_address, data)
        regs = {"rsp": new_rsp, "rbx": area, "r12": address, "rip": entry, "orig_rax": -1}
        regs.update(zip(ARGUMENT_REGISTERS, values))
        _write_registers(regs)
        breakpoint = gdb.Breakpoint(f"*0x{done:x}", internal=True)
        breakpoint.silent = True
        breakpoint.thread = thread.num
        _RUNNING.append(thread.num)
        value = _run_to(done, thread, inferior, deferred)
    finally:
        if breakpoint is not None and breakpoint.is_valid():
            breakpoint.delete()
        try:
            if inferior.is_valid() and inferior.pid:
                inferior.write_memory(low, stack_before)
                if thread.is_valid():
                    thread.switch()
                    _return_to(saved, entry + BACK_OFFSET, thread, inferior)
                inferior.write_memory(entry, code_before)
        finally:
            if _RUNNING:
                _RUNNING.pop()
            gdb.execute(f"set displaced-stepping {displaced}", to_string=True)
            _queue(deferred, thread)
    return HandCallResult(value, data_address if data else 0)


def _queue(names: list[str], thread: gdb.InferiorThread) -> None:
    """Give the thread, put back, the signals held back during the call (delivered when it next runs); one whose
    `handle` says nopass is dropped, as GDB would have dropped it."""
    for name in names:
        if thread.is_valid() and _passing(name):
            thread.switch()
            gdb.execute(f"queue-signal {name}", to_string=True)


def _return_to(saved: dict[str, int], back: int, thread: gdb.InferiorThread, inferior: gdb.Inferior) -> None:
    """Put the thread back as it was. Where a breakpoint sits at its pc (the user's, at which it stopped), GDB must
    also see it stopped there, or the next `continue` reports that breakpoint again instead of stepping over it:
    the thread jumps back to its pc (every register restored) and stops at a breakpoint of ours, the others at
    that address disabled meanwhile (no second hit, no commands run)."""
    pc = saved["rip"]
    others = [b for b in gdb.breakpoints() if b.enabled and _at(b, pc)]
    if not others:
        _write_registers(saved)
        return
    for b in others:
        b.enabled = False
    arrival = gdb.Breakpoint(f"*0x{pc:x}", internal=True)
    arrival.silent, arrival.thread = True, thread.num
    try:
        _write_registers({**saved, "rip": back})
        for _ in range(MAX_FOREIGN_STOPS):
            gdb.execute("continue", to_string=True)
            if not thread.is_valid() or not inferior.pid or gdb.selected_thread() == thread:
                break
    finally:
        arrival.delete()
        for b in others:
            if b.is_valid():
                b.enabled = True


def _at(breakpoint: gdb.Breakpoint, pc: int) -> bool:
    try:
        locations = breakpoint.locations  # GDB 13
    except AttributeError:
        return False
    return any(location.address == pc and location.enabled for location in locations)


def entry_point() -> int:
    """The executable's entry point in the running process (`info files`: GDB relocates it for a PIE)."""
    text = gdb.execute("info files", to_string=True)
    match = re.search(r"Entry point: (0x[0-9a-f]+)", text)
    if not match:
        raise HandCallError("the program's entry point is unknown (no executable loaded in GDB)")
    return int(match.group(1), 16)


def _run_to(done: int, thread: gdb.InferiorThread, inferior: gdb.Inferior, deferred: list[str]) -> int:
    """Resume until `thread` reaches `done`; its rax then. Stops of other threads are let go; a signal sent to the
    process that `thread` takes is held back (`deferred`), a fault of its own ends the call."""
    held: str | None = None
    for _ in range(MAX_FOREIGN_STOPS):
        _continue(without=held)
        held = None
        if not inferior.is_valid() or not inferior.pid:
            raise HandCallError("the process exited during a call made by hand")
        if not thread.is_valid():
            raise HandCallError("the thread making a call by hand exited")
        reporting = gdb.selected_thread()
        thread.switch()
        frame = gdb.newest_frame()
        if frame.pc() == done:
            return int(frame.read_register("rax")) & 0xFFFFFFFFFFFFFFFF
        name = _stop_signal() if reporting == thread else None
        if name is None or name == "SIGTRAP":
            log.debug("call by hand: another thread's stop let go")
        elif _raised_by_the_call(name, inferior.pid):
            where = frame.pc()
            _write_registers({"rip": done})
            _continue(without=name)
            raise HandCallError(f"the function called by hand got {name} at 0x{where:x}")
        else:
            deferred.append(name)
            held = name
    raise HandCallError("a call by hand did not return")


def _stop_signal() -> str | None:
    """The signal the selected thread stopped with, by name."""
    try:
        number = int(gdb.parse_and_eval("$_siginfo.si_signo"))
    except gdb.error:
        return None
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _raised_by_the_call(name: str, pid: int) -> bool:
    """Whether the signal came from the callee's own execution: a fault the kernel raised (si_code > 0), or an
    abort() (raised by the process itself); not one another process or a timer sent."""
    try:
        code = int(gdb.parse_and_eval("$_siginfo.si_code"))
        sender = int(gdb.parse_and_eval("$_siginfo._sifields._kill.si_pid"))
    except gdb.error:
        return True
    if name in FAULTS:
        return code > 0
    return name == "SIGABRT" and code <= 0 and sender == pid


def _passing(name: str) -> bool:
    lines = gdb.execute(f"info signals {name}", to_string=True).splitlines()
    return next((line.split()[3] for line in lines if line.startswith(name)), "Yes") == "Yes"


def _continue(without: str | None = None) -> None:
    """`continue`; with `without`, that signal is not given to the thread that stopped with it (`handle nopass`
    for this one resume)."""
    if without is None:
        gdb.execute("continue", to_string=True)
        return
    passing = _passing(without)
    gdb.execute(f"handle {without} nopass", to_string=True)
    try:
        gdb.execute("continue", to_string=True)
    finally:
        if passing:
            gdb.execute(f"handle {without} pass", to_string=True)


def _read_registers() -> dict[str, int]:
    frame = gdb.newest_frame()
    return {name: int(frame.read_register(name)) & 0xFFFFFFFFFFFFFFFF for name in SAVED_REGISTERS}


def _write_registers(values: dict[str, int]) -> None:
    for name, value in values.items():
        if name == "orig_rax" and value >= 1 << 63:
            value -= 1 << 64
        gdb.execute(f"set var ${name} = {value}", to_string=True)


def _check_stack_room(pid: int, rsp: int, lowest: int) -> None:
    """The thread's stack must reach down to `lowest` (a thread with a small stack cannot lend it)."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                start, end = (int(x, 16) for x in line.split()[0].split("-"))
                if start <= rsp < end:
                    if lowest < start:
                        raise HandCallError("the thread's stack is too small for a call by hand")
                    return
    except OSError as exc:
        raise HandCallError(f"cannot read the process's mappings: {exc}") from None
