"""Minimal ELF64 reader: the defined function symbols of an object file and what its load bias is based on.

Used to find which object really defines `malloc` & co. and at which address, without libc debug info and
without GDB's (ambiguous, ld.so-inclusive) symbol lookup.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass, field

ET_EXEC, ET_DYN = 2, 3
SHT_SYMTAB, SHT_DYNSYM = 2, 11
STT_FUNC, STT_GNU_IFUNC = 2, 10
STB_GLOBAL, STB_WEAK = 1, 2
PT_LOAD = 1


class ElfError(ValueError):
    """The file is not a readable 64-bit little-endian ELF object."""


@dataclass
class ElfSymbols:
    e_type: int
    min_vaddr: int
    dynamic: dict[str, int] = field(default_factory=dict)  # exported functions (.dynsym)
    static: dict[str, int] = field(default_factory=dict)   # all global functions (.symtab; absent when stripped)
    sizes: dict[int, int] = field(default_factory=dict)    # a function's value -> its size in bytes (0: unknown)

    def function(self, name: str, prefer_dynamic: bool = True) -> int | None:
        tables = (self.dynamic, self.static) if prefer_dynamic else (self.static, self.dynamic)
        for table in tables:
            if name in table:
                return table[name]
        return None

    def extent(self, name: str) -> int:
        """The size in bytes of the function `function(name)` finds (0: unknown or not defined)."""
        value = self.function(name)
        return self.sizes.get(value, 0) if value is not None else 0


@functools.lru_cache(maxsize=64)
def cached_elf_symbols(path: str, mtime: float) -> ElfSymbols | None:
    """read_elf_symbols, once per file version (`mtime`: a rebuilt file is read again); None when it is no ELF
    file this reader knows."""
    try:
        return read_elf_symbols(path)
    except ElfError:
        return None


def read_elf_file(path: str) -> bytes:
    """The whole file, checked to be a 64-bit little-endian ELF object (ElfError otherwise)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ElfError(f"{path}: {exc.strerror}") from exc
    _check(data, path)
    return data


def read_elf_symbols(path: str) -> ElfSymbols:
    return parse_elf_symbols(read_elf_file(path), path)


def _check(data: bytes, path: str) -> None:
    if len(data) < 64 or data[:4] != b"\x7fELF":
        raise ElfError(f"{path}: not an ELF file")
    if data[4] != 2 or data[5] != 1:
        raise ElfError(f"{path}: only 64-bit little-endian ELF is supported")


def _layout(data: bytes) -> tuple[int, int]:
    """(e_type, page-aligned lowest PT_LOAD address): what the load bias is computed from."""
    e_type, e_phoff, e_phentsize, e_phnum = (struct.unpack_from("<HHIQQQIHHHHHH", data, 16)[i] for i in (0, 4, 8, 9))
    min_vaddr = min((struct.unpack_from("<IIQQ", data, e_phoff + i * e_phentsize)[3]
                     for i in range(e_phnum)
                     if struct.unpack_from("<I", data, e_phoff + i * e_phentsize)[0] == PT_LOAD),
                    default=0)
    return e_type, min_vaddr & ~0xFFF


def read_elf_layout(path: str) -> tuple[int, int]:
    """(e_type, lowest load address) from the ELF and program headers only (not the whole file)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            _check(head, path)
            e_phoff, e_phentsize, e_phnum = (struct.unpack_from("<HHIQQQIHHHHHH", head, 16)[i] for i in (4, 8, 9))
            f.seek(0)
            data = f.read(e_phoff + e_phentsize * e_phnum)
        return _layout(data)
    except OSError as exc:
        raise ElfError(f"{path}: {exc.strerror}") from exc
    except (struct.error, ValueError) as exc:
        raise ElfError(f"{path}: malformed ELF ({exc})") from exc


def parse_elf_symbols(data: bytes, path: str = "<bytes>") -> ElfSymbols:
    _check(data, path)
    try:
        e_type, min_vaddr = _layout(data)
        e_shoff, e_shentsize, e_shnum = (struct.unpack_from("<HHIQQQIHHHHHH", data, 16)[i] for i in (5, 10, 11))
        result = ElfSymbols(e_type, min_vaddr)
        sections = [struct.unpack_from("<IIQQQQIIQQ", data, e_shoff + i * e_shentsize) for i in range(e_shnum)]
        for _name, sh_type, _f, _addr, offset, size, link, _info, _align, entsize in sections:
            if sh_type not in (SHT_SYMTAB, SHT_DYNSYM) or not entsize:
                continue
            strtab = sections[link]
            str_off, str_size = strtab[4], strtab[5]
            table = result.dynamic if sh_type == SHT_DYNSYM else result.static
            for pos in range(offset, offset + size, entsize):
                st_name, st_info, _other, st_shndx, st_value, st_size = struct.unpack_from("<IBBHQQ", data, pos)
                if st_shndx == 0 or st_value == 0 or (st_info & 0xF) not in (STT_FUNC, STT_GNU_IFUNC):
                    continue
                if st_info >> 4 not in (STB_GLOBAL, STB_WEAK):
                    continue
                end = data.index(b"\0", str_off + st_name, str_off + str_size)
                table.setdefault(data[str_off + st_name:end].decode("utf-8", "replace"), st_value)
                if st_size:
                    result.sizes.setdefault(st_value, st_size)
        return result
    except (struct.error, IndexError, ValueError, OverflowError) as exc:
        raise ElfError(f"{path}: malformed ELF ({exc})") from exc
