"""The function name valgrind gives an address: read from the object's ELF symbol tables, never from DWARF.

valgrind names a code address by the ELF symbol covering it, reading the object's `.symtab` and `.dynsym` and the
`.symtab` of its separate debug file (found by build ID under /usr/lib/debug, else by `.gnu_debuglink`). Where
several symbols cover the same range (glibc's `strdup`, `__strdup` and `__GI___strdup`) it shows one: the shortest
name, its length counted up to any `@version`; at equal lengths a versioned name (`dlopen@@GLIBC_2.34`), then the
first in byte order. C++ names stay mangled (`_ZL11leak_holderv`). GDB's names come from DWARF instead
(`__GI___strdup`, `leak_holder()`), so suppression files written for valgrind are matched against these.
"""

from __future__ import annotations

import bisect
import functools
import os
import struct
from dataclasses import dataclass

from .elf import STT_FUNC, STT_GNU_IFUNC, ElfError, read_elf_file

SHT_SYMTAB, SHT_NOTE, SHT_DYNSYM = 2, 7, 11
NT_GNU_BUILD_ID = 3
DEBUG_ROOT = "/usr/lib/debug"


@dataclass(frozen=True)
class FunctionTable:
    """Function symbols of one object by start address: (start, size, the name valgrind shows) sorted by start."""

    starts: tuple[int, ...]
    entries: tuple[tuple[int, int, str], ...]

    def name_at(self, address: int) -> str | None:
        """The name of the symbol covering `address`, None when none does. valgrind cuts overlapping ranges: a
        symbol ends where the next one starts, and of two starting together the shorter keeps the start. So only
        the symbols starting last at or before `address` count, the shortest covering it first."""
        last = bisect.bisect_right(self.starts, address) - 1
        if last < 0:
            return None
        first = bisect.bisect_left(self.starts, self.starts[last])
        for start, size, name in self.entries[first:last + 1]:  # same start, by size
            if address < start + size:
                return name
        return None


def preference(name: str) -> tuple[int, int, bytes]:
    """Sort key: the name valgrind prefers among aliases sorts first."""
    unversioned = name.find("@")
    length = unversioned if unversioned >= 0 else len(name)
    return (length, 0 if unversioned >= 0 else 1, name.encode())


def _sections(data: bytes) -> list[tuple[int, int, int, int, int, int]]:
    """(name offset, type, offset, size, link, entsize) of every section header."""
    e_shoff, e_shentsize, e_shnum = (struct.unpack_from("<HHIQQQIHHHHHH", data, 16)[i] for i in (5, 10, 11))
    headers = []
    for i in range(e_shnum):
        name, sh_type, _flags, _addr, offset, size, link, _info, _align, entsize = struct.unpack_from(
            "<IIQQQQIIQQ", data, e_shoff + i * e_shentsize)
        headers.append((name, sh_type, offset, size, link, entsize))
    return headers


def _symbols(data: bytes, sections: list, names: dict[tuple[int, int], set[str]]) -> None:
    """Add the named function symbols of every symbol table to `names` by (start, size)."""
    for _name, sh_type, offset, size, link, entsize in sections:
        if sh_type not in (SHT_SYMTAB, SHT_DYNSYM) or not entsize or link >= len(sections):
            continue
        str_off, str_size = sections[link][2], sections[link][3]
        for st_name, st_info, _other, _shndx, st_value, st_size in struct.iter_unpack(
                "<IBBHQQ", data[offset:offset + size - size % entsize]):
            if not st_name or not st_value or not st_size or (st_info & 0xF) not in (STT_FUNC, STT_GNU_IFUNC):
                continue
            end = data.index(b"\0", str_off + st_name, str_off + str_size)
            names.setdefault((st_value, st_size), set()).add(data[str_off + st_name:end].decode("utf-8", "replace"))


def _section_named(data: bytes, sections: list, wanted: str) -> tuple | None:
    e_shstrndx = struct.unpack_from("<H", data, 62)[0]
    if e_shstrndx >= len(sections):
        return None
    strings = sections[e_shstrndx][2]
    for section in sections:
        end = data.find(b"\0", strings + section[0])
        if data[strings + section[0]:end] == wanted.encode():
            return section
    return None


def _build_id(data: bytes, sections: list) -> str | None:
    for _name, sh_type, offset, size, _link, _entsize in sections:
        position = offset
        while sh_type == SHT_NOTE and position + 12 <= offset + size:
            namesz, descsz, note_type = struct.unpack_from("<III", data, position)
            name_at = position + 12
            desc_at = name_at + (namesz + 3) // 4 * 4
            if note_type == NT_GNU_BUILD_ID and data[name_at:name_at + namesz] == b"GNU\0":
                return data[desc_at:desc_at + descsz].hex()
            position = desc_at + (descsz + 3) // 4 * 4
    return None


def debug_file(path: str, data: bytes, sections: list) -> str | None:
    """The separate debug file of the object at `path`: by build ID, else by its .gnu_debuglink name."""
    build_id = _build_id(data, sections)
    candidates = [os.path.join(DEBUG_ROOT, ".build-id", build_id[:2], build_id[2:] + ".debug")] if build_id else []
    link = _section_named(data, sections, ".gnu_debuglink")
    if link is not None:
        name = data[link[2]:data.index(b"\0", link[2])].decode("utf-8", "replace")
        folder = os.path.dirname(os.path.realpath(path))
        candidates += [os.path.join(folder, name), os.path.join(folder, ".debug", name),
                       DEBUG_ROOT + os.path.join(folder, name)]
    return next((c for c in candidates if os.path.isfile(c)), None)


def read_function_table(path: str) -> FunctionTable:
    """The object's function symbols with their debug file's, one name per range as valgrind shows it."""
    data = read_elf_file(path)
    names: dict[tuple[int, int], set[str]] = {}
    try:
        sections = _sections(data)
        _symbols(data, sections, names)
        extra = debug_file(path, data, sections)
        if extra is not None:
            try:
                debug = read_elf_file(extra)
                _symbols(debug, _sections(debug), names)
            except ElfError:
                pass  # an unreadable debug file: the object's own symbols, as valgrind would
    except (struct.error, IndexError, ValueError, OverflowError) as exc:
        raise ElfError(f"{path}: malformed ELF ({exc})") from exc
    entries = sorted((start, size, min(found, key=preference)) for (start, size), found in names.items())
    return FunctionTable(tuple(e[0] for e in entries), tuple(entries))


@functools.lru_cache(maxsize=64)
def _cached_table(path: str, mtime: float) -> FunctionTable | None:
    try:
        return read_function_table(path)
    except ElfError:
        return None


def function_table(path: str) -> FunctionTable | None:
    """read_function_table once per file version; None when the file cannot be read as ELF."""
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        return None
    return _cached_table(path, mtime)
