"""Mappings and shared memory (mmap, munmap, mremap, shm*, shm_open/unlink), tracked through GDB breakpoints by
both engines (the recorder sees none of these calls) with the same call machinery (gdb/call_hooks.py).

An engine hands over every entry stop of a `MAPPING` family function after the nested-call check (an mmap made
inside a tracked malloc or realloc is the allocator's own and never gets here). `on_entry` decides at the entry stop
whether the call matters, cheaply: a munmap/shmdt of an address no tracked region holds, a shmctl other than
IPC_RMID, a shm_open that cannot create anything, or an mmap/mremap made by libc, the dynamic loader or the tool's
own objects for themselves costs one stop and no stack. What matters is parked like an allocation and `returned`
records it in `table.mappings`. Everything it works from is given: the inferior, the table, the stack capture, the
clock, and the objects whose mapping calls are never the program's.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import gdb

from ..core.allocators import INTERNAL_MAPPERS, AllocatorSpec, Role
from ..core.mappings import (
    IPC_RMID,
    MAP_FAILED,
    MAP_SHARED,
    O_CREAT,
    POSIX_SHM_DIR,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    SHM_RDONLY,
    MappingTable,
    backing_of,
    read_sysvipc,
)
from ..core.table import AllocationTable
from .access import StackReader
from .call_hooks import CallHooks, Entry, PendingCall
from .engine import Clock
from .log import log
from .stacks import StackCapture
from .symbolize import minimal_symbol

SHM_EXEC = 0o100000
# calls that make something new: made by libc or ld.so for themselves they are not the program's
_CREATING = frozenset({Role.MAP, Role.REMAP, Role.SHMAT})


def _int(value: int) -> int:
    """A C `int` argument or result from a 64-bit register (upper half undefined)."""
    value &= 0xFFFF_FFFF
    return value - (1 << 32) if value & 0x8000_0000 else value


def read_cstring(inferior: gdb.Inferior, address: int, limit: int = 4096) -> str | None:
    data = b""
    while len(data) < limit:
        try:
            chunk = inferior.read_memory(address + len(data), 64).tobytes()
        except (gdb.MemoryError, OverflowError):
            return None
        end = chunk.find(b"\0")
        if end >= 0:
            return (data + chunk[:end]).decode(errors="replace")
        data += chunk
    return None


class MappingHooks:
    """What one process's mapping calls do to `table.mappings`."""

    def __init__(self, inferior: gdb.Inferior, table: AllocationTable, stacks: StackCapture, clock: Clock,
                 own_objects: Iterable[str] = (), own_prefixes: tuple[str, ...] = ()) -> None:
        self.inferior, self.table, self.stacks, self.clock = inferior, table, stacks, clock
        self._internal: dict[int, bool] = {}   # return address -> made by libc/ld.so for itself
        # objects whose mapping calls are never the program's besides libc's and ld.so's: the allocator that serves
        # the process (a preloaded jemalloc maps its own heap), the recorder's library
        self.own_objects: set[str] = set(own_objects)
        self.own_prefixes = own_prefixes  # library basenames, for what the recorder loads later (libunwind)

    def forked(self, child: gdb.Inferior, table: AllocationTable, stacks: StackCapture) -> MappingHooks:
        return MappingHooks(child, table, stacks, self.clock, self.own_objects, self.own_prefixes)

    def own(self, path: str) -> None:
        """`path`'s mapping calls are its own, never the program's (the allocator the breakpoint engine hooked)."""
        self.own_objects.add(path)

    @property
    def mappings(self) -> MappingTable:
        return self.table.mappings  # not kept: `memleak reset` replaces it

    def on_entry(self, calls: CallHooks, entry: Entry) -> bool:
        """An entry stop of a mapping function (after the nested-call check): park the call when it matters."""
        parked = self.entry(entry.spec, entry.args, entry.return_address, entry.regs[calls.fp], entry.stack)
        if parked is not None:
            call = PendingCall(entry.spec, entry.args, parked[0], entry.thread, entry.sp, self.clock.now(),
                               detail=parked[1])
            calls.park(call, entry.lwp, entry.return_address)
        return False

    def entry(self, spec: AllocatorSpec, args: tuple[int, ...], return_address: int, frame_pointer: int,
              stack: StackReader) -> tuple[tuple[int, ...], str | None] | None:
        """The entry stop of a mapping function: None when the call does not matter, else the stack to record
        (empty when its return needs none) and a detail read now (the backing of an mmap, a shm object's name)."""
        role, detail = spec.role, None
        if role in _CREATING and self.internal(return_address):
            return None
        if role is Role.UNMAP and not self.mappings.overlapping(args[0], args[1]):
            return None
        if role is Role.REMAP and not self.mappings.overlapping(args[0], max(args[1], 1)):
            return None
        if role is Role.SHMDT and args[0] not in self.mappings.regions:
            return None
        if role is Role.SHMCTL and _int(args[1]) != IPC_RMID:
            return None
        if role in (Role.SHM_OPEN, Role.SHM_UNLINK):
            detail = read_cstring(self.inferior, args[0])
            if detail is None:
                return None
            if role is Role.SHM_OPEN and (not args[1] & O_CREAT or os.path.exists(self.object_path(detail))):
                return None  # opens an existing object: created by someone else
        if role is Role.MAP:
            fd = _int(args[4])
            detail = backing_of(_int(args[3]), fd, self.fd_target(fd) if fd >= 0 else None)
        wants_stack = role in (Role.MAP, Role.REMAP, Role.SHMAT, Role.SHMGET, Role.SHM_OPEN)
        return (self.stacks.capture(stack, return_address, frame_pointer) if wants_stack else ()), detail

    def returned(self, call: PendingCall, result: int) -> None:
        role, args, m = call.spec.role, call.args, self.mappings
        where = (call.pcs, call.thread, call.time)
        if role is Role.MAP:
            m.on_map(result, args[1], _int(args[2]), _int(args[3]), call.detail or "anonymous", call.spec.display,
                     *where)
        elif role is Role.UNMAP and _int(result) == 0:
            m.on_unmap(args[0], args[1])
        elif role is Role.REMAP:
            m.on_remap(args[0], args[1], result, args[2], *where)
        elif role is Role.SHMGET and _int(result) >= 0:
            self.shmget(_int(result), *where)
        elif role is Role.SHMAT and result != MAP_FAILED:
            self.shmat(_int(args[0]), result, _int(args[2]), *where)
        elif role is Role.SHMDT and _int(result) == 0:
            m.on_shmdt(args[0])
        elif role is Role.SHMCTL and _int(result) == 0:
            m.on_rmid(_int(args[0]))
        elif role is Role.SHM_OPEN and _int(result) >= 0 and call.detail is not None:
            m.on_shm_open(call.detail, *where)
        elif role is Role.SHM_UNLINK and _int(result) == 0 and call.detail is not None:
            m.on_shm_unlink(call.detail)

    def shmget(self, shmid: int, pcs: tuple[int, ...], thread: int, now: float) -> None:
        """Ours when the kernel names this process its creator (shmget of an existing key only finds it)."""
        info = (read_sysvipc() or {}).get(shmid)
        if info is not None and info.cpid == self.inferior.pid:
            self.mappings.on_shmget(shmid, info.key, info.size, pcs, thread, now)

    def shmat(self, shmid: int, address: int, flags: int, pcs: tuple[int, ...], thread: int, now: float) -> None:
        size = self.mappings.segment_size(shmid)
        if size is None:
            info = (read_sysvipc() or {}).get(shmid)
            size = info.size if info is not None else 0
        prot = PROT_READ | (0 if flags & SHM_RDONLY else PROT_WRITE) | (PROT_EXEC if flags & SHM_EXEC else 0)
        self.mappings.on_map(address, size, prot, MAP_SHARED, f"sysv shmid {shmid}", "shmat", pcs, thread, now,
                             shmid=shmid)

    def internal(self, return_address: int) -> bool:
        """Whether a call returning to `return_address` is made by libc or the dynamic loader for itself (thread
        stacks, locale files, malloc heaps); cached per return address (bounded by the call sites)."""
        known = self._internal.get(return_address)
        if known is None:
            solib = gdb.solib_name(return_address)
            if solib is not None:
                base = os.path.basename(solib)
                known = (base.startswith(("libc.so", "ld-linux", "ld64.so", "libpthread.so", "librt.so"))
                         or solib in self.own_objects or base.startswith(self.own_prefixes))
            else:  # the executable; a static one holds glibc too: its internal callers are known by name
                symbol = minimal_symbol(return_address - 1)
                known = bool(symbol and symbol[0] in INTERNAL_MAPPERS)
            self._internal[return_address] = known
            log.debug("mapping call returning to 0x%x: %s", return_address, "libc's own" if known else "program's")
        return known

    def fd_target(self, fd: int) -> str | None:
        try:
            return os.readlink(f"/proc/{self.inferior.pid}/fd/{fd}")
        except OSError:
            return None

    @staticmethod
    def object_path(name: str) -> str:
        return os.path.join(POSIX_SHM_DIR, name.lstrip("/"))
