"""Records shared by the table, grouping and reporters."""

from __future__ import annotations

from dataclasses import dataclass, field

from .addressinfo import AddressInfo
from .fatal import FatalSignal
from .kinds import ErrorType


@dataclass(frozen=True)
class Frame:
    """One symbolized stack entry; `pc` is the raw (return) address recorded at the allocator call.

    One PC stands for several entries when the compiler inlined calls there: each inlined function is an entry
    with `inline` set (same pc), innermost first, followed by the function they were inlined into.
    `address` is where the call is in the object file (its link-time address, pc - 1 unbiased): what the object's
    own symbol tables are searched with (valgrind's function names, core/elf_names.py); None when not known.
    """

    pc: int
    function: str
    file: str | None = None
    line: int | None = None
    object: str = "??"
    inline: bool = False
    address: int | None = None

    @property
    def location(self) -> str:
        if self.file and self.line:
            return f"{self.file}:{self.line}"
        return self.object


@dataclass
class Block:
    """A live heap block: what the allocator returned and who asked for it."""

    address: int
    size: int
    allocator: str
    thread: int
    seq: int
    time: float
    pcs: tuple[int, ...]
    family: str = "malloc"  # which releases match: "malloc" (free), "new" (delete), "new[]" (delete[])


@dataclass(frozen=True)
class FreedBlock:
    """What we remember of a freed block, to explain a later double free."""

    block: Block
    free_pcs: tuple[int, ...]
    free_thread: int
    free_time: float


@dataclass
class HeapError:
    """A bad free: `double_free` (block already freed), `invalid_free` (never allocated), or `mismatched_free`
    (released by the wrong family: `new` with free, `malloc` with delete, `new[]` with delete, ...)."""

    type: ErrorType
    address: int
    thread: int
    time: float
    pcs: tuple[int, ...]
    allocator: str
    alloc_pcs: tuple[int, ...] = ()
    free_pcs: tuple[int, ...] = ()
    block_size: int | None = None
    alloc_allocator: str | None = None  # double_free, mismatched_free: what allocated the block
    address_info: AddressInfo | None = None  # for invalid_free: what the pointer is (gdb/addressinfo.py)
    event: int = 0  # the recorder's number for this error (from 1): one event, however often it is presented


@dataclass
class Counters:
    """Totals comparable with valgrind's HEAP SUMMARY."""

    allocs: int = 0
    frees: int = 0
    bytes_allocated: int = 0
    live_blocks: int = 0
    live_bytes: int = 0
    peak_blocks: int = 0
    peak_bytes: int = 0
    untracked_frees: int = 0
    failed_allocs: int = 0


@dataclass
class ProcessResult:
    """How a process ended, as reported in JSON `exit`."""

    pid: int
    argv: list[str] = field(default_factory=list)
    ppid: int | None = None  # its parent's pid when tracking began (None: not known, as from a core file)
    forked: bool = False  # a fork's child still in the image it inherited (it did not start that program)
    exit_code: int | None = None
    signal: str | None = None
    detached: bool = False  # tracking ended by detaching: the process runs on
    exec_into: str | None = None  # the image was replaced by exec() of this program
    fatal: FatalSignal | None = None  # the signal that killed it: fault address, the thread's stack
    core_file: str | None = None  # read from this core file (post-mortem): the process as it was dumped

    def exit_json(self) -> dict | None:
        """{"code": n}, {"signal": "SIGABRT"}, {"exec": "/new/image"}, or None while it still runs."""
        if self.signal is not None:
            return {"signal": self.signal}
        if self.exit_code is not None:
            return {"code": self.exit_code}
        if self.exec_into is not None:
            return {"exec": self.exec_into}
        return None
