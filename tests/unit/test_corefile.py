"""core/corefile.py on synthetic ELF cores built here byte by byte (the real ones, kernel and gcore, are read by
tests/gdb/test_core_file.py): mappings named by NT_FILE, threads from NT_PRSTATUS, the executable from AT_ENTRY,
reads across adjacent segments that stop where nothing was dumped, and one-line errors for what is no core."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from gdb_memleak.core import corefile
from gdb_memleak.core.corefile import CoreFileError, open_core
from gdb_memleak.core.procmaps import Mapping

PAGE = 4096
EXE, LIB = "/usr/bin/prog", "/usr/lib/libx.so"


def note(kind: int, desc: bytes, name: bytes = b"CORE") -> bytes:
    pad = lambda b: b + b"\0" * (-len(b) % 4)  # noqa: E731
    return struct.pack("<III", len(name) + 1, len(desc), kind) + pad(name + b"\0") + pad(desc)


def prstatus(lwp: int, signal: int, sp: int) -> bytes:
    desc = bytearray(336)
    struct.pack_into("<h", desc, corefile.PRSTATUS_CURSIG, signal)
    struct.pack_into("<i", desc, corefile.PRSTATUS_PID, lwp)
    regs = [0] * corefile.USER_REGS
    regs[19] = sp  # rsp
    struct.pack_into(f"<{corefile.USER_REGS}Q", desc, corefile.PRSTATUS_REGS, *regs)
    return note(corefile.NT_PRSTATUS, bytes(desc))


def prpsinfo(pid: int, name: bytes, args: bytes) -> bytes:
    desc = bytearray(136)
    struct.pack_into("<i", desc, corefile.PRPSINFO_PID, pid)
    desc[corefile.PRPSINFO_FNAME:corefile.PRPSINFO_FNAME + len(name)] = name
    desc[corefile.PRPSINFO_ARGS:corefile.PRPSINFO_ARGS + len(args)] = args
    return note(corefile.NT_PRPSINFO, bytes(desc))


def file_note(files: list[tuple[int, int, int, str]]) -> bytes:
    desc = struct.pack("<QQ", len(files), PAGE)
    desc += b"".join(struct.pack("<QQQ", start, end, offset // PAGE) for start, end, offset, _ in files)
    desc += b"".join(path.encode() + b"\0" for *_, path in files)
    return note(corefile.NT_FILE, desc)


def build(segments: list[tuple[int, bytes, int, int]], notes: bytes, e_type: int = corefile.ET_CORE,
          machine: int = corefile.EM_X86_64) -> bytes:
    """An ELF64 core: (address, bytes dumped, size in memory, flags) per PT_LOAD, then the notes."""
    count = 1 + len(segments)
    at = 64 + 56 * count
    header = struct.pack("<16sHHIQQQIHHHHHH", b"\x7fELF\x02\x01\x01" + b"\0" * 9, e_type, machine, 1, 0, 64, 0, 0,
                         64, 56, count, 64, 0, 0)
    phdrs = struct.pack("<IIQQQQQQ", corefile.PT_NOTE, 0, at, 0, 0, len(notes), 0, 4)
    body = notes
    for address, data, memsz, flags in segments:
        phdrs += struct.pack("<IIQQQQQQ", corefile.PT_LOAD, flags, at + len(body), address, 0, len(data), memsz, PAGE)
        body += data
    return header + phdrs + body


RW, RX, R = corefile.PF_R | corefile.PF_W, corefile.PF_R | corefile.PF_X, corefile.PF_R
SEGMENTS = [
    (0x400000, b"", PAGE, RX),                              # the executable's code: not dumped
    (0x401000, b"D" * PAGE, PAGE, RW),                      # its data
    (0x402000, b"B" * PAGE, PAGE, RW),                      # the .bss beside it (anonymous)
    (0x7F0000000000, b"", 2 * PAGE, R),                     # a library's read-only part: not dumped
    (0x7F0000002000, b"L" * PAGE, PAGE, RW),                # its data
]
NOTES = (prpsinfo(4242, b"prog", b"/usr/bin/prog one two") + prstatus(4242, 6, 0x7FFC0000)
         + note(corefile.NT_SIGINFO, struct.pack("<iii", 6, 0, -6)) + prstatus(4243, 0, 0x7FFB0000)
         + note(corefile.NT_AUXV, struct.pack("<6Q", 6, PAGE, corefile.AT_ENTRY, 0x400100, 0, 0))
         + file_note([(0x400000, 0x402000, 0, EXE), (0x7F0000000000, 0x7F0000003000, PAGE, LIB)])
         + note(0x200, b"\x01\x02", name=b"LINUX"))


@pytest.fixture
def core(tmp_path: Path) -> Iterator[corefile.CoreFile]:
    path = tmp_path / "core"
    path.write_bytes(build(SEGMENTS, NOTES))
    with open_core(str(path)) as opened:
        yield opened


def test_mappings_carry_permissions_and_the_files_note_gives_paths_and_offsets(core: corefile.CoreFile):
    assert core.mappings() == [
        Mapping(0x400000, 0x401000, "r-xp", 0, EXE),
        Mapping(0x401000, 0x402000, "rw-p", PAGE, EXE),
        Mapping(0x402000, 0x403000, "rw-p", 0, ""),
        Mapping(0x7F0000000000, 0x7F0000002000, "r--p", PAGE, LIB),
        Mapping(0x7F0000002000, 0x7F0000003000, "rw-p", 3 * PAGE, LIB),
    ]


def test_the_process_its_threads_and_its_signal_come_from_the_notes(core: corefile.CoreFile):
    assert (core.pid, core.name, core.args) == (4242, "prog", "/usr/bin/prog one two")
    assert [(t.lwp, t.signal, t.registers[19]) for t in core.threads] == [(4242, 6, 0x7FFC0000), (4243, 0, 0x7FFB0000)]
    assert (core.signal, core.signal_code) == (6, -6)
    assert core.executable() == EXE  # the file mapped at AT_ENTRY


def test_reads_run_across_adjacent_dumped_segments_and_stop_where_nothing_was_dumped(core: corefile.CoreFile):
    assert core.pread(0x401FF0, 32) == b"D" * 16 + b"B" * 16
    assert core.pread(0x402FF0, 32) == b"B" * 16  # the next address is in no segment
    assert core.pread(0x400000, 16) == b""        # a segment without bytes in the core
    assert core.pread(0x7F0000002000 + PAGE - 8, 64) == b"L" * 8
    view = memoryview(bytearray(8))
    assert core.preadv(view, 0x401000) == 8 and bytes(view) == b"D" * 8


@pytest.mark.parametrize(("data", "said"), [
    (b"", "is not a core file (not an ELF file)"),
    (b"#!/bin/sh\n" + b"\0" * 100, "is not a core file (not an ELF file)"),
    (build(SEGMENTS, NOTES, e_type=2), "is not a core file (an ELF file of another type: 2)"),
    (build(SEGMENTS, NOTES, machine=183), "a core of another architecture"),
    (build(SEGMENTS, NOTES)[:200], "truncated core file"),
    (build(SEGMENTS, prpsinfo(1, b"x", b"x")), "without threads"),
])
def test_what_is_no_core_is_one_line_naming_the_file(data: bytes, said: str, tmp_path: Path):
    path = tmp_path / "file"
    path.write_bytes(data)
    with pytest.raises(CoreFileError) as raised:
        open_core(str(path))
    assert str(raised.value).startswith(str(path)) and said in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_missing_file_is_one_line(tmp_path: Path):
    with pytest.raises(CoreFileError, match="No such file"):
        open_core(str(tmp_path / "absent"))


def test_a_core_cut_short_says_how_many_bytes_are_missing_and_reads_stop_there(tmp_path: Path):
    path = tmp_path / "core"
    path.write_bytes(build(SEGMENTS, NOTES)[:-100])  # the last segment (the library's data) loses its last bytes
    with open_core(str(path)) as core:
        assert core.missing == 100
        assert core.pread(0x7F0000002000 + PAGE - 200, 200) == b"L" * 100
