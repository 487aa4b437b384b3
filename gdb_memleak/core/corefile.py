"""An ELF core file as a process image: its mappings, its threads' registers, its memory (x86-64 Linux).

What a post-mortem report needs without a process: the mappings (each PT_LOAD segment with its permissions, named
by the NT_FILE note where a file is mapped there: the same fields /proc/PID/maps gives), each thread's registers
(NT_PRSTATUS: `struct user_regs_struct`, the order core/abi.py names), the signal that dumped it (NT_SIGINFO), the
process's name and arguments (NT_PRPSINFO), the auxiliary vector (NT_AUXV: AT_ENTRY tells which mapped file is the
executable), and the bytes the core holds, read straight from the file mapped into memory. The kernel's cores and
GDB's `gcore` have the same notes; a mapping excluded from the dump (MADV_DONTDUMP, coredump_filter) has a segment
without bytes (the kernel's) or none at all (gcore's): reads stop there. Pure Python, no gdb import.
"""

from __future__ import annotations

import bisect
import mmap
import os
import struct
from dataclasses import dataclass, field

from .procmaps import Mapping

ET_CORE, EM_X86_64 = 4, 62
PT_LOAD, PT_NOTE = 1, 4
PF_X, PF_W, PF_R = 1, 2, 4
NT_PRSTATUS, NT_PRPSINFO, NT_AUXV = 1, 3, 6
NT_SIGINFO, NT_FILE = 0x53494749, 0x46494C45
AT_ENTRY = 9
PRSTATUS_CURSIG, PRSTATUS_PID, PRSTATUS_REGS = 12, 32, 112  # offsets in x86-64's struct elf_prstatus
USER_REGS = 27  # words of struct user_regs_struct
PRPSINFO_PID, PRPSINFO_FNAME, PRPSINFO_ARGS = 24, 40, 56  # struct elf_prpsinfo: pr_pid, pr_fname[16], pr_psargs[80]
ELF_HEADER = struct.Struct("<16sHHIQQQIHHHHHH")
PHDR = struct.Struct("<IIQQQQQQ")


class CoreFileError(ValueError):
    """The file is not a core this reader understands (one line, naming the file)."""


@dataclass(frozen=True)
class Segment:
    """A PT_LOAD: `filesz` bytes of [start, end) are in the core at `offset`; the rest was not dumped."""

    start: int
    end: int
    offset: int
    filesz: int
    flags: int


@dataclass(frozen=True)
class CoreThread:
    lwp: int
    registers: tuple[int, ...]  # struct user_regs_struct order
    signal: int                  # pr_cursig: the signal it was stopped by (the dump's, for the first thread)


@dataclass
class CoreFile:
    """A core opened for reading; `close()` (or a `with` block) unmaps it."""

    path: str
    segments: list[Segment]
    threads: list[CoreThread] = field(default_factory=list)
    files: list[tuple[int, int, int, str]] = field(default_factory=list)  # (start, end, file offset, path)
    auxv: dict[int, int] = field(default_factory=dict)
    pid: int = 0
    name: str = ""          # the executable's name as the kernel kept it (16 bytes at most)
    args: str = ""          # the command line, as the kernel kept it (80 bytes at most)
    signal: int = 0         # the signal that dumped it (0: none, e.g. a `gcore` of a stopped process)
    signal_code: int | None = None
    missing: int = 0        # bytes its segments say it holds past its end: a core cut short (RLIMIT_CORE, a full disk)
    _data: mmap.mmap | None = None
    _starts: list[int] = field(default_factory=list)

    # -- the process -----------------------------------------------------------------------------------------------
    def mappings(self) -> list[Mapping]:
        """Every segment as /proc/PID/maps would list it: permissions, and file and offset where a file is mapped."""
        maps = []
        for s in self.segments:
            perms = ("r" if s.flags & PF_R else "-") + ("w" if s.flags & PF_W else "-") \
                + ("x" if s.flags & PF_X else "-") + "p"
            found = next((f for f in self.files if f[0] <= s.start < f[1]), None)
            path, offset = (found[3], found[2] + s.start - found[0]) if found else ("", 0)
            maps.append(Mapping(s.start, s.end, perms, offset, path))
        return maps

    def executable(self) -> str | None:
        """The file mapped where the program's entry point is (AT_ENTRY): the program that dumped this core."""
        entry = self.auxv.get(AT_ENTRY)
        found = next((f for f in self.files if entry is not None and f[0] <= entry < f[1]), None)
        return found[3] if found else None

    # -- memory ----------------------------------------------------------------------------------------------------
    def pread(self, address: int, size: int) -> bytes:
        """Up to `size` bytes at `address`: fewer where the dumped memory ends (nothing when none is there)."""
        out = bytearray(size)
        got = self.preadv(memoryview(out), address)
        return bytes(out[:got])

    def preadv(self, view: memoryview, address: int) -> int:
        """Fills `view` from `address` through adjacent dumped segments; how many bytes it filled."""
        data, done, size = self._data, 0, len(view)
        if data is None:
            return 0
        while done < size:
            i = bisect.bisect_right(self._starts, address + done) - 1
            if i < 0:
                break
            s = self.segments[i]
            at = address + done - s.start
            if at >= s.filesz:
                break
            n = min(size - done, s.filesz - at)
            view[done:done + n] = data[s.offset + at:s.offset + at + n]
            done += n
        return done

    def close(self) -> None:
        if self._data is not None:
            self._data.close()
            self._data = None

    def __enter__(self) -> CoreFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_core(path: str) -> CoreFile:
    """The core at `path`, mapped read-only; CoreFileError (one line) when it is none this reader understands."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else None
    except OSError as exc:
        raise CoreFileError(f"{path}: {exc.strerror}") from None
    try:
        return parse(path, data)
    except CoreFileError:
        if data is not None:
            data.close()
        raise


def parse(path: str, data: mmap.mmap | None) -> CoreFile:
    if data is None or len(data) < ELF_HEADER.size or data[:4] != b"\x7fELF":
        raise CoreFileError(f"{path} is not a core file (not an ELF file)")
    ident, e_type, machine, _v, _entry, phoff, _sh, _fl, _eh, phentsize, phnum, *_ = ELF_HEADER.unpack_from(data)
    if e_type != ET_CORE:
        raise CoreFileError(f"{path} is not a core file (an ELF file of another type: {e_type})")
    if ident[4] != 2 or ident[5] != 1 or machine != EM_X86_64:
        raise CoreFileError(f"{path}: a core of another architecture (x86-64 only)")
    if phoff + phnum * phentsize > len(data) or phentsize < PHDR.size:
        raise CoreFileError(f"{path}: truncated core file (its program headers are cut off)")
    segments, notes, missing = [], [], 0
    for i in range(phnum):
        p_type, flags, offset, vaddr, _pa, filesz, memsz, _al = PHDR.unpack_from(data, phoff + i * phentsize)
        if p_type == PT_LOAD and memsz:
            held = max(0, min(filesz, len(data) - offset))
            missing += filesz - held
            segments.append(Segment(vaddr, vaddr + memsz, offset, held, flags))
        elif p_type == PT_NOTE:
            notes.append((offset, min(filesz, max(0, len(data) - offset))))
    segments.sort(key=lambda s: s.start)
    core = CoreFile(path, segments, missing=missing, _data=data, _starts=[s.start for s in segments])
    for offset, size in notes:
        _read_notes(core, bytes(data[offset:offset + size]))
    if not core.threads:
        raise CoreFileError(f"{path}: a core file without threads (no NT_PRSTATUS note)")
    if not core.pid:
        core.pid = core.threads[0].lwp
    core.signal = core.threads[0].signal
    return core


def _read_notes(core: CoreFile, data: bytes) -> None:
    at = 0
    while at + 12 <= len(data):
        namesz, descsz, kind = struct.unpack_from("<III", data, at)
        name_at = at + 12
        desc_at = name_at + (namesz + 3) // 4 * 4
        desc = data[desc_at:desc_at + descsz]
        at = desc_at + (descsz + 3) // 4 * 4
        if data[name_at:name_at + namesz].rstrip(b"\0") != b"CORE":
            continue
        if kind == NT_PRSTATUS and len(desc) >= PRSTATUS_REGS + USER_REGS * 8:
            (cursig,) = struct.unpack_from("<h", desc, PRSTATUS_CURSIG)
            (lwp,) = struct.unpack_from("<i", desc, PRSTATUS_PID)
            core.threads.append(CoreThread(lwp, struct.unpack_from(f"<{USER_REGS}Q", desc, PRSTATUS_REGS), cursig))
        elif kind == NT_PRPSINFO and len(desc) >= PRPSINFO_ARGS + 80:
            (core.pid,) = struct.unpack_from("<i", desc, PRPSINFO_PID)
            core.name = _text(desc[PRPSINFO_FNAME:PRPSINFO_FNAME + 16])
            core.args = _text(desc[PRPSINFO_ARGS:PRPSINFO_ARGS + 80])
        elif kind == NT_SIGINFO and len(desc) >= 12 and core.signal_code is None:
            core.signal_code = struct.unpack_from("<i", desc, 8)[0]
        elif kind == NT_AUXV:
            words = struct.unpack_from(f"<{len(desc) // 8}Q", desc)
            core.auxv.update((words[i], words[i + 1]) for i in range(0, len(words) - 1, 2))
        elif kind == NT_FILE and len(desc) >= 16:
            core.files.extend(_file_note(desc))


def _file_note(desc: bytes) -> list[tuple[int, int, int, str]]:
    """NT_FILE: count, page size, count x (start, end, offset in pages), then count NUL-terminated paths."""
    count, page = struct.unpack_from("<QQ", desc)
    if 16 + count * 24 > len(desc):
        return []
    names = desc[16 + count * 24:].split(b"\0")
    files = []
    for i in range(min(count, len(names))):
        start, end, pages = struct.unpack_from("<QQQ", desc, 16 + i * 24)
        files.append((start, end, pages * page, os.fsdecode(names[i])))
    return files


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace").strip()
