"""addr2line's answers parsed, its server protocol on a real object, and the ELF layout the addresses need."""
from __future__ import annotations

import os
import shutil
import sys

import pytest

from gdb_memleak.core.addr2line import Addr2Line, parse_line
from gdb_memleak.core.elf import ElfError, read_elf_layout, read_elf_symbols


@pytest.mark.parametrize("text, expected", [
    ("/usr/include/c++/12/bits/new_allocator.h:137", ("/usr/include/c++/12/bits/new_allocator.h", 137)),
    ("/src/app.c:12 (discriminator 3)", ("/src/app.c", 12)),
    ("./elf/./elf/dl-init.c:74", ("./elf/./elf/dl-init.c", 74)),
    ("C:/odd:name.c:7", ("C:/odd:name.c", 7)),
    ("??:0", (None, None)),
    ("??:?", (None, None)),
    ("/src/app.c:?", ("/src/app.c", None)),
    ("garbage", (None, None)),
])
def test_parse_line_reads_file_and_line_or_none(text, expected):
    assert parse_line(text) == expected


EXECUTABLE = os.path.realpath(sys.executable)


@pytest.mark.skipif(shutil.which("addr2line") is None, reason="binutils' addr2line is not installed")
def test_one_server_answers_every_address_of_an_object_without_debug_info():
    lines = Addr2Line()
    try:
        assert lines.lines(EXECUTABLE, 0x1000) == [(None, None)]
        assert lines.lines(EXECUTABLE, 0x2000) == [(None, None)]
        assert len([s for s in lines._servers.values() if s is not None]) == 1
    finally:
        lines.close()


def test_missing_addr2line_or_object_gives_none():
    assert Addr2Line("no-such-addr2line").lines(EXECUTABLE, 0x1000) is None
    assert Addr2Line().lines("/nonexistent/object", 0x1000) is None


def test_elf_layout_from_the_headers_equals_the_full_read():
    symbols = read_elf_symbols(EXECUTABLE)
    assert read_elf_layout(EXECUTABLE) == (symbols.e_type, symbols.min_vaddr)


def test_elf_layout_of_a_non_elf_file_is_an_elf_error(tmp_path):
    text = tmp_path / "script.sh"
    text.write_text("#!/bin/sh\n" * 10)
    with pytest.raises(ElfError):
        read_elf_layout(str(text))
