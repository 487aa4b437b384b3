"""Where a process's mappings, memory and threads' registers come from: the live process, or a core file.

The scan (gdb/heapscan.py), a tracking's maps (symbolizing, the allocator in use) and the description of a bad
pointer read a process only through a `ProcessImage`, so they work the same on a core (gdb/core_image.py) as on a
stopped process: a core's pid may be a live process's of today, whose /proc files must never be read for it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol

import gdb

from ..core.procmaps import Mapping, read_maps
from .access import RegisterReader


class RawMemory(Protocol):
    """Bulk reads of a process's memory: short where the readable memory ends, empty where there is none."""

    def pread(self, address: int, size: int) -> bytes: ...

    def preadv(self, view: memoryview, address: int) -> int: ...

    def close(self) -> None: ...


@dataclass
class ThreadState:
    num: int
    lwp: int
    registers: tuple[int, ...]
    sp: int
    running: bool = False  # registers unreadable (see thread_states): `sp` only marks its stack, scanned whole


class ProcessImage(Protocol):
    """A process as a scan reads it."""

    def maps(self) -> list[Mapping]:
        """Its mappings (OSError when they cannot be read)."""
        ...

    def memory(self) -> RawMemory:
        """Its memory, open for one scan (the caller closes it)."""
        ...

    def threads(self, inferior: gdb.Inferior, regs: RegisterReader) -> list[ThreadState]:
        """Every thread's registers."""
        ...


class ProcFileMemory:
    """/proc/PID/mem of a live process; GDB's own reads when it cannot be opened (a remote target)."""

    def __init__(self, pid: int, inferior: gdb.Inferior) -> None:
        self._inferior = inferior
        try:
            self._fd: int | None = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
        except OSError:
            self._fd = None

    def pread(self, address: int, size: int) -> bytes:
        if self._fd is not None:
            try:
                return os.pread(self._fd, size, address)
            except OSError:
                return b""
        try:
            return self._inferior.read_memory(address, size).tobytes()
        except gdb.MemoryError:
            return b""

    def preadv(self, view: memoryview, address: int) -> int:
        if self._fd is None:
            data = self.pread(address, len(view))
            view[:len(data)] = data
            return len(data)
        try:
            return os.preadv(self._fd, [view], address)
        except OSError:
            return 0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class LiveImage:
    """A process GDB runs or attached to: /proc/PID/maps and /proc/PID/mem, registers through ptrace."""

    def __init__(self, inferior: gdb.Inferior) -> None:
        self.inferior = inferior

    def maps(self) -> list[Mapping]:
        return read_maps(self.inferior.pid)

    def memory(self) -> RawMemory:
        return ProcFileMemory(self.inferior.pid, self.inferior)

    def threads(self, inferior: gdb.Inferior, regs: RegisterReader) -> list[ThreadState]:
        return thread_states(inferior, regs)


def thread_states(inferior: gdb.Inferior, regs: RegisterReader) -> list[ThreadState]:
    """Every live thread's registers, read without switching threads (this may run inside `stop()`). Inside stop()
    GDB has not stopped the other threads yet: a running thread's registers cannot be read, so its whole stack
    counts (found from its thread handle, glibc's struct pthread at the top of its stack mapping), a little more
    than valgrind's stack-pointer-up; the batch CLI scans at exit only once every thread is stopped."""
    sp_index = regs.abi.index(regs.abi.stack_pointer)
    selected = gdb.selected_thread()
    states = []
    for thread in inferior.threads():
        if not thread.is_valid() or thread.is_exited():
            continue
        values = regs.read_thread(thread.ptid[1], thread == selected)
        if values is not None:
            states.append(ThreadState(thread.num, thread.ptid[1], values, values[sp_index]))
        elif (handle := _thread_handle(thread)) is not None:
            states.append(ThreadState(thread.num, thread.ptid[1], (), handle, running=True))
    return states


def _thread_handle(thread: gdb.InferiorThread) -> int | None:
    try:
        handle = thread.handle()
    except (gdb.error, RuntimeError):
        return None
    return int.from_bytes(handle, "little") or None if handle else None
