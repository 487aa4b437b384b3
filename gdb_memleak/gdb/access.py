"""Reading a stopped thread's registers and memory cheaply from inside `Breakpoint.stop()`.

GDB's own route (`gdb.newest_frame().read_register`) builds frame #0 first, which costs about as much as the stop
itself. On a native Linux target GDB's process is the tracer, so one PTRACE_GETREGS gives every register in a
single syscall; anything else (remote targets, other architectures) falls back to GDB's frame API.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import struct

import gdb

from ..core.abi import Abi
from .log import log

PTRACE_GETREGS = 12


class RegisterReader:
    """`read(lwp)` -> tuple of registers in `abi.user_regs` order."""

    def __init__(self, abi: Abi) -> None:
        self.abi = abi
        self._fmt = struct.Struct(f"<{len(abi.user_regs)}Q")
        self._buf = ctypes.create_string_buffer(self._fmt.size)
        self._ptrace = None
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.ptrace.restype = ctypes.c_long
            libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
            self._ptrace = libc.ptrace
        except (OSError, AttributeError):
            log.debug("no ptrace from Python: registers come from GDB's frames", exc_info=True)

    def read(self, lwp: int) -> tuple[int, ...]:
        if self._ptrace is not None and self._ptrace(PTRACE_GETREGS, lwp, None, self._buf) == 0:
            return self._fmt.unpack(self._buf.raw)
        self._ptrace = None  # not our tracee (remote target, core file): use GDB from now on
        return self._read_via_gdb()

    def read_thread(self, lwp: int, selected: bool) -> tuple[int, ...] | None:
        """Registers of any thread; without ptrace only the selected thread's can be read (None otherwise)."""
        if self._ptrace is not None and self._ptrace(PTRACE_GETREGS, lwp, None, self._buf) == 0:
            return self._fmt.unpack(self._buf.raw)
        return self._read_via_gdb() if selected else None

    def _read_via_gdb(self) -> tuple[int, ...]:
        frame = gdb.newest_frame()
        values = []
        for name in self.abi.user_regs:
            try:
                values.append(int(frame.read_register(name)) & 0xFFFFFFFFFFFFFFFF)
            except (gdb.error, ValueError):
                values.append(0)
        return tuple(values)


class StackReader:
    """Word reads above a stack pointer, served from one chunked read instead of one syscall per word."""

    CHUNK = 1024

    def __init__(self, inferior: gdb.Inferior, base: int) -> None:
        self.inferior = inferior
        self.base = base
        self.data = b""

    def read_word(self, address: int) -> int | None:
        offset = address - self.base
        if offset < 0:
            return read_word(self.inferior, address)
        if offset + 8 > len(self.data):
            start = self.base + len(self.data)
            try:
                self.data += self.inferior.read_memory(start, max(self.CHUNK, offset + 8 - len(self.data))).tobytes()
            except gdb.MemoryError:
                return read_word(self.inferior, address)
        return int.from_bytes(self.data[offset:offset + 8], "little")


def read_word(inferior: gdb.Inferior, address: int) -> int | None:
    try:
        return int.from_bytes(inferior.read_memory(address, 8).tobytes(), "little")
    except (gdb.MemoryError, OverflowError):
        return None
