"""A core file as the `ProcessImage` a scan reads (gdb/image.py): its segments for mappings, its bytes for memory,
its NT_PRSTATUS notes for every thread's registers. Nothing here touches /proc: the core's pid may belong to
another process today."""

from __future__ import annotations

import gdb

from ..core.agent_format import AgentFormatError
from ..core.corefile import CoreFile
from ..core.procmaps import Mapping
from .access import RegisterReader
from .image import RawMemory, ThreadState


class CoreMemory:
    """The core's bytes for one scan; the core itself stays open for the tracking (closing this closes nothing)."""

    def __init__(self, core: CoreFile) -> None:
        self.core = core

    def pread(self, address: int, size: int) -> bytes:
        return self.core.pread(address, size)

    def preadv(self, view: memoryview, address: int) -> int:
        return self.core.preadv(view, address)

    def close(self) -> None:
        pass


class CoreImage:
    """`identity`: the file's (device, inode, size, mtime) when it was opened (a new core at the same path is
    another image)."""

    def __init__(self, core: CoreFile, identity: tuple[int, ...] = ()) -> None:
        self.core, self.identity = core, identity

    @property
    def path(self) -> str:
        return self.core.path

    def maps(self) -> list[Mapping]:
        return self.core.mappings()

    def memory(self) -> RawMemory:
        return CoreMemory(self.core)

    def threads(self, inferior: gdb.Inferior, regs: RegisterReader) -> list[ThreadState]:
        """Every thread the core holds, numbered as GDB numbers them (by LWP)."""
        numbers = {thread.ptid[1]: thread.num for thread in inferior.threads()}
        sp = regs.abi.index(regs.abi.stack_pointer)
        return [ThreadState(numbers.get(t.lwp, t.lwp), t.lwp, t.registers, t.registers[sp]) for t in self.core.threads]

    def read_exact(self, address: int, size: int) -> bytes:
        """`size` bytes at `address`, or AgentFormatError (one line) when the core does not hold them all."""
        data = self.core.pread(address, size)
        if len(data) < size:
            raise AgentFormatError(f"the core holds {len(data):,} of the {size:,} bytes at 0x{address:x}")
        return data
