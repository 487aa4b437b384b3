"""Calling conventions: which register holds argument N, the return value and the stack pointer.

Kept in one place so another architecture (aarch64: x0..x7, x0, sp, x30 for the return address) is one new row.
Register indices are those of Linux `struct user_regs_struct` (PTRACE_GETREGS order).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Abi:
    name: str
    arg_registers: tuple[str, ...]
    return_register: str
    stack_pointer: str
    frame_pointer: str
    word_size: int
    # Return address location at function entry: "stack" (x86-64: [sp]) or a register name (aarch64: x30).
    return_address: str
    user_regs: tuple[str, ...]  # field order of struct user_regs_struct
    # Registers a call may clobber: dead in a thread that called a function which never returns (_exit).
    caller_saved: tuple[str, ...] = ()

    def index(self, register: str) -> int:
        return self.user_regs.index(register)


X86_64_SYSV = Abi(
    name="x86-64",
    arg_registers=("rdi", "rsi", "rdx", "rcx", "r8", "r9"),
    return_register="rax",
    stack_pointer="rsp",
    frame_pointer="rbp",
    word_size=8,
    return_address="stack",
    user_regs=(
        "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx", "rsi", "rdi",
        "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs", "gs",
    ),
    caller_saved=("rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11"),
)

ABIS = {"i386:x86-64": X86_64_SYSV}
