"""ELF64 symbol reader: the real libc, a compiled static executable, and malformed input (only ElfError escapes)."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gdb_memleak.core.elf import ET_DYN, ET_EXEC, ElfError, ElfSymbols, parse_elf_symbols, read_elf_symbols

LIBC = "/lib/x86_64-linux-gnu/libc.so.6"
ALLOCATORS = ("malloc", "free", "calloc", "realloc")
PREFIX = b"\x7fELF\x02\x01"

needs_libc = pytest.mark.skipif(not os.path.exists(LIBC), reason=f"{LIBC} not present")


def elf_header(e_type=ET_DYN, phoff=0, shoff=0, phentsize=56, phnum=0, shentsize=64, shnum=0):
    """A 64-byte ELF64 little-endian header with the given table locations (and nothing after it)."""
    header = bytearray(64)
    header[:6] = PREFIX
    header[6] = 1
    struct.pack_into("<HHIQQQIHHHHHH", header, 16, e_type, 62, 1, 0, phoff, shoff, 0, 64, phentsize, phnum,
                     shentsize, shnum, 0)
    return bytes(header)


@pytest.fixture(scope="module")
def libc_bytes():
    if not os.path.exists(LIBC):
        pytest.skip(f"{LIBC} not present")
    with open(LIBC, "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def static_exe(tmp_path_factory):
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not installed")
    directory = tmp_path_factory.mktemp("static")
    source = directory / "leak.c"
    source.write_text("#include <stdlib.h>\nint main(void) { return malloc(7) == 0; }\n")
    exe = directory / "leak"
    proc = subprocess.run([gcc, "-static", "-O0", "-o", str(exe), str(source)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"gcc -static failed: {proc.stderr.strip()[:200]}")
    return str(exe)


# -- real objects -------------------------------------------------------------------------------------------------
@needs_libc
def test_libc_exports_allocators_in_dynamic_table():
    symbols = read_elf_symbols(LIBC)
    assert symbols.e_type == ET_DYN
    assert symbols.min_vaddr == 0
    for name in ALLOCATORS:
        assert symbols.dynamic.get(name), name
        assert symbols.function(name) == symbols.dynamic[name]
    assert symbols.function("no_such_function_in_libc") is None


@needs_libc
def test_libc_allocator_addresses_match_readelf():
    readelf = shutil.which("readelf")
    if readelf is None:
        pytest.skip("readelf not installed")
    out = subprocess.run([readelf, "--dyn-syms", "-W", LIBC], capture_output=True, text=True, check=True).stdout
    expected = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 8 and fields[3] == "FUNC" and fields[7].split("@")[0] in ALLOCATORS:
            expected[fields[7].split("@")[0]] = int(fields[1], 16)
    assert set(expected) == set(ALLOCATORS)
    symbols = read_elf_symbols(LIBC)
    assert {name: symbols.dynamic[name] for name in ALLOCATORS} == expected


def test_static_executable_is_et_exec_with_symtab_functions(static_exe):
    symbols = read_elf_symbols(static_exe)
    assert symbols.e_type == ET_EXEC
    assert symbols.min_vaddr == 0x400000
    assert symbols.dynamic == {}
    for name in ("main", "malloc", "free"):
        assert symbols.static.get(name, 0) >= 0x400000, name
    assert symbols.function("malloc") == symbols.static["malloc"]


def test_function_prefers_dynamic_table_unless_asked():
    symbols = ElfSymbols(ET_DYN, 0, dynamic={"malloc": 0x100}, static={"malloc": 0x200, "helper": 0x300})
    assert symbols.function("malloc") == 0x100
    assert symbols.function("malloc", prefer_dynamic=False) == 0x200
    assert symbols.function("helper") == 0x300
    assert symbols.function("missing") is None


# -- malformed input ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("data", [
    b"",
    b"\x7fELF",
    b"MZ" + bytes(100),
    b"\x7fELF\x01\x01" + bytes(58),   # 32-bit
    b"\x7fELF\x02\x02" + bytes(58),   # big-endian
    PREFIX + bytes(57),               # 63 bytes: shorter than an ELF64 header
])
def test_non_elf_bytes_raise_elf_error(data):
    with pytest.raises(ElfError):
        parse_elf_symbols(data)


def test_missing_or_unreadable_file_raises_elf_error(tmp_path):
    with pytest.raises(ElfError):
        read_elf_symbols(str(tmp_path / "missing.so"))
    with pytest.raises(ElfError):
        read_elf_symbols(str(tmp_path))  # a directory


def test_elf_error_names_the_path(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"hello, not an object file" * 4)
    with pytest.raises(ElfError, match="notes.txt"):
        read_elf_symbols(str(path))


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.999])
def test_truncated_libc_raises_elf_error(libc_bytes, fraction):
    with pytest.raises(ElfError):
        parse_elf_symbols(libc_bytes[:int(len(libc_bytes) * fraction)])


def test_header_with_tables_past_end_of_file_raises_elf_error():
    with pytest.raises(ElfError):
        parse_elf_symbols(elf_header(phoff=4096, phnum=1))
    with pytest.raises(ElfError):
        parse_elf_symbols(elf_header(shoff=4096, shnum=1))


def test_header_without_tables_is_an_empty_object():
    symbols = parse_elf_symbols(elf_header(e_type=ET_EXEC))
    assert (symbols.e_type, symbols.min_vaddr, symbols.dynamic, symbols.static) == (ET_EXEC, 0, {}, {})


@pytest.mark.parametrize("header", [
    elf_header(phoff=2**63, phnum=1),
    elf_header(phoff=2**64 - 1, phnum=1),
    elf_header(shoff=2**63, shnum=1),
], ids=["e_phoff=2**63", "e_phoff=2**64-1", "e_shoff=2**63"])
def test_huge_table_offset_raises_elf_error(header):
    with pytest.raises(ElfError):
        parse_elf_symbols(header)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tail=st.binary(max_size=400))
@example(tail=elf_header(phoff=2**63, phnum=1)[len(PREFIX):])
def test_random_bytes_after_elf_magic_raise_only_elf_error(tail):
    try:
        symbols = parse_elf_symbols(PREFIX + tail)
    except ElfError:
        return
    assert isinstance(symbols, ElfSymbols)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_corrupted_libc_raises_only_elf_error(libc_bytes, data):
    """Byte flips anywhere in the header and section table."""
    blob = bytearray(libc_bytes)
    e_shoff, = struct.unpack_from("<Q", blob, 40)
    regions = [(0, 64), (e_shoff, len(blob))]
    for _ in range(data.draw(st.integers(1, 8), label="flips")):
        start, end = data.draw(st.sampled_from(regions), label="region")
        position = data.draw(st.integers(start, end - 1), label="position")
        blob[position] = data.draw(st.integers(0, 255), label="value")
    try:
        parse_elf_symbols(bytes(blob))
    except ElfError:
        pass
