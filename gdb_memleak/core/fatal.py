"""The signal that killed a process, told as valgrind tells it ("Process terminating with default action of signal
11 (SIGSEGV)", " Access not within mapped region at address 0x0", then the stack of the thread that got it).

Filled in by the adapter from the thread's siginfo at the moment the signal is delivered, while the process is still
there to unwind.
"""

from __future__ import annotations

from dataclasses import dataclass

#: what the kernel says of a fault (si_code > 0), in valgrind's words (coregrind/m_signals.c, default_action)
FAULT_EVENTS: dict[str, dict[int, str]] = {
    "SIGSEGV": {1: "Access not within mapped region", 2: "Bad permissions for mapped region"},
    "SIGBUS": {1: "Invalid address alignment", 2: "Non-existent physical address", 3: "Hardware error"},
    "SIGILL": {1: "Illegal opcode", 2: "Illegal operand", 3: "Illegal addressing mode", 4: "Illegal trap",
               5: "Privileged opcode", 6: "Privileged register", 7: "Coprocessor error", 8: "Internal stack error"},
    "SIGFPE": {1: "Integer divide by zero", 2: "Integer overflow", 3: "FP divide by zero", 4: "FP overflow",
               5: "FP underflow", 6: "FP inexact", 7: "FP invalid operation", 8: "FP subscript out of range"},
}
#: the kernel's own si_code for a general protection fault (a non-canonical address): no address to give
SI_KERNEL = 0x80


@dataclass(frozen=True)
class FatalSignal:
    """A signal delivered with its default action, which ends the process.

    `pc` is where the thread was (the faulting instruction); `callers` the return addresses above it, outwards.
    `address` is the fault address (siginfo's si_addr) of a fault the kernel raised, None for a signal someone sent.
    """

    name: str
    number: int
    code: int | None = None
    address: int | None = None
    thread: int | None = None   # the thread's id (LWP)
    pc: int | None = None
    callers: tuple[int, ...] = ()

    @property
    def from_kernel(self) -> bool:
        return self.code is not None and self.code > 0

    def event(self) -> str | None:
        """valgrind's second line: what the fault was and where ("Access not within mapped region at address
        0x0"); None for a signal sent by a process (kill, raise, abort)."""
        if not self.from_kernel:
            return None
        if self.name == "SIGSEGV" and self.code == SI_KERNEL:
            return "General Protection Fault"
        event = FAULT_EVENTS.get(self.name, {}).get(self.code or 0)
        if event is None:
            return None
        return f"{event} at address 0x{self.address:x}" if self.address is not None else event

    def headline(self) -> str:
        return f"Process terminating with default action of signal {self.number} ({self.name})"
