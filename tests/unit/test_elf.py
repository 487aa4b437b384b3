"""ELF64 symbol reader: an object built here byte by byte, the real libc and a compiled static executable (each
compared with readelf), and malformed input (only ElfError escapes, and what does parse keeps the reader's rules)."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gdb_memleak.core.elf import (
    ET_DYN,
    ET_EXEC,
    PT_LOAD,
    SHT_DYNSYM,
    SHT_SYMTAB,
    STB_GLOBAL,
    STB_WEAK,
    STT_FUNC,
    STT_GNU_IFUNC,
    ElfError,
    ElfSymbols,
    parse_elf_symbols,
    read_elf_symbols,
)

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


STB_LOCAL, STT_OBJECT, PT_NOTE = 0, 1, 4
SYMBOL = struct.Struct("<IBBHQQ")     # st_name, st_info, st_other, st_shndx, st_value, st_size
SECTION = struct.Struct("<IIQQQQIIQQ")  # sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size, sh_link, ...
SEGMENT = struct.Struct("<IIQQQQQQ")    # p_type, p_flags, p_offset, p_vaddr, ...


def build_elf(segments: list[tuple[int, int]], tables: dict[int, list[tuple[str, int, int, int]]],
              e_type: int = ET_DYN) -> bytes:
    """A whole ELF64 object: program headers (p_type, p_vaddr), and per symbol-table section type its symbols
    (name, st_info, st_shndx, st_value), each table with its own string table."""
    body = bytearray()
    sections = [bytes(SECTION.size)]  # section 0 is the null section
    for sh_type, symbols in tables.items():
        strings = bytearray(b"\0")
        entries = bytearray(SYMBOL.size)  # symbol 0 is the null symbol
        for name, info, shndx, value in symbols:
            entries += SYMBOL.pack(len(strings), info, 0, shndx, value, 16)
            strings += name.encode() + b"\0"
        str_at = 64 + len(body)
        body += strings
        sym_at = 64 + len(body)
        body += entries
        strtab_index = len(sections)
        sections.append(SECTION.pack(0, 3, 0, 0, str_at, len(strings), 0, 0, 1, 0))
        sections.append(SECTION.pack(0, sh_type, 0, 0, sym_at, len(entries), strtab_index, 0, 8, SYMBOL.size))
    phoff = 64 + len(body)
    body += b"".join(SEGMENT.pack(p_type, 5, 0, vaddr, vaddr, 0x100, 0x100, 0x1000) for p_type, vaddr in segments)
    shoff = 64 + len(body)
    body += b"".join(sections)
    return elf_header(e_type, phoff, shoff, SEGMENT.size, len(segments), SECTION.size, len(sections)) + bytes(body)


def info(bind: int, kind: int) -> int:
    return bind << 4 | kind


def readelf_functions(path: str) -> dict[str, dict[str, int]]:
    """readelf's view of what the reader keeps: per symbol table, the defined global or weak functions (FUNC,
    IFUNC) with a non-zero address, the first of each name (version suffixes dropped)."""
    readelf = shutil.which("readelf")
    if readelf is None:
        pytest.skip("readelf not installed")
    out = subprocess.run([readelf, "--syms", "-W", path], capture_output=True, text=True, check=True).stdout
    tables: dict[str, dict[str, int]] = {}
    table: dict[str, int] = {}
    for line in out.splitlines():
        if line.startswith("Symbol table '"):
            table = tables.setdefault(line.split("'")[1], {})
            continue
        fields = line.split()
        if len(fields) < 8 or not fields[0].rstrip(":").isdigit():
            continue
        value, kind, bind, ndx, name = int(fields[1], 16), fields[3], fields[4], fields[6], fields[7]
        if kind in ("FUNC", "IFUNC") and bind in ("GLOBAL", "WEAK") and ndx != "UND" and value:
            table.setdefault(name.split("@")[0], value)
    return tables


def readelf_lowest_load(path: str) -> int:
    readelf = shutil.which("readelf")
    if readelf is None:
        pytest.skip("readelf not installed")
    out = subprocess.run([readelf, "--segments", "-W", path], capture_output=True, text=True, check=True).stdout
    return min(int(line.split()[2], 16) for line in out.splitlines() if line.split()[:1] == ["LOAD"])


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


# -- an object built here --------------------------------------------------------------------------------------
def test_built_object_yields_exactly_its_defined_global_functions_and_its_lowest_load_page():
    data = build_elf(
        segments=[(PT_NOTE, 0x200), (PT_LOAD, 0x403123), (PT_LOAD, 0x401000), (PT_LOAD, 0x600000)],
        tables={
            SHT_DYNSYM: [
                ("malloc", info(STB_GLOBAL, STT_FUNC), 12, 0x401100),
                ("free", info(STB_WEAK, STT_FUNC), 12, 0x401200),
                ("memcpy", info(STB_GLOBAL, STT_GNU_IFUNC), 12, 0x401300),
                ("puts", info(STB_GLOBAL, STT_FUNC), 0, 0),              # undefined: imported
                ("environ", info(STB_GLOBAL, STT_OBJECT), 20, 0x601000),  # data, not a function
                ("malloc", info(STB_GLOBAL, STT_FUNC), 12, 0x401999),     # a second version: the first wins
            ],
            SHT_SYMTAB: [
                ("helper", info(STB_LOCAL, STT_FUNC), 12, 0x401400),      # local: not callable by name
                ("main", info(STB_GLOBAL, STT_FUNC), 12, 0x401500),
                ("zero", info(STB_GLOBAL, STT_FUNC), 12, 0),              # no address
            ],
        },
        e_type=ET_EXEC)
    symbols = parse_elf_symbols(data)
    assert symbols.e_type == ET_EXEC
    assert symbols.min_vaddr == 0x401000  # the lowest PT_LOAD, page-aligned; the PT_NOTE below it does not count
    assert symbols.dynamic == {"malloc": 0x401100, "free": 0x401200, "memcpy": 0x401300}
    assert symbols.static == {"main": 0x401500}
    assert symbols.function("main") == 0x401500


def test_built_object_load_bias_is_the_page_of_its_lowest_segment():
    data = build_elf(segments=[(PT_LOAD, 0x2345), (PT_LOAD, 0x1fff)], tables={})
    assert parse_elf_symbols(data).min_vaddr == 0x1000


# -- real objects -------------------------------------------------------------------------------------------------
@needs_libc
def test_libc_tables_equal_readelfs_and_its_load_bias_is_its_lowest_segment():
    symbols = read_elf_symbols(LIBC)
    tables = readelf_functions(LIBC)
    assert symbols.dynamic == tables[".dynsym"]
    assert symbols.static == tables.get(".symtab", {})
    assert symbols.min_vaddr == readelf_lowest_load(LIBC) & ~0xFFF
    assert len(symbols.dynamic) > 1000  # libc exports well over a thousand functions


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
    assert symbols.min_vaddr == 0x400000 == readelf_lowest_load(static_exe)
    assert symbols.dynamic == {}
    assert symbols.static == readelf_functions(static_exe)[".symtab"]
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
    assert_follows_the_readers_rules(symbols, PREFIX + tail)


def assert_follows_the_readers_rules(symbols: ElfSymbols, data: bytes) -> None:
    """What any object that parses gives: its header's type, a page-aligned bias, only named non-zero addresses."""
    assert symbols.e_type == struct.unpack_from("<H", data, 16)[0]
    assert symbols.min_vaddr % 0x1000 == 0
    for table in (symbols.dynamic, symbols.static):
        assert all(isinstance(name, str) and address > 0 for name, address in table.items())


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
        symbols = parse_elf_symbols(bytes(blob))
    except ElfError:
        return
    assert_follows_the_readers_rules(symbols, bytes(blob))
