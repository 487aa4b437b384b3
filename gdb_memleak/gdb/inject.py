"""Loading a shared library into a running process, and calling what it exports, by hand (handcall.py): the
dynamic loader's `dlopen`, found in the process's C library by its ELF symbol table (no debug info needed)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import gdb

from ..core.elf import ElfError, read_elf_symbols
from ..core.procmaps import Mapping, load_bias, read_maps
from .handcall import HandCallError, call_function

RTLD_NOW, RTLD_LOCAL = 0x2, 0x0
DLERROR_MAX = 512


def exported(maps: list[Mapping], path: str, name: str) -> int:
    """The address of function `name` of the object `path` as the process maps it."""
    try:
        symbols = read_elf_symbols(path)
    except ElfError as exc:
        raise HandCallError(f"{os.path.basename(path)} is unreadable ({exc})") from None
    value = symbols.function(name)
    bias = load_bias(maps, path, symbols.e_type, symbols.min_vaddr)
    if value is None or bias is None:
        raise HandCallError(f"{os.path.basename(path)} has no {name}")
    return bias + value


def libc_path(maps: list[Mapping]) -> str:
    for m in maps:
        if os.path.basename(m.path).startswith("libc.so"):
            return m.path
    raise HandCallError("the process has no C library loaded (statically linked?)")


def call_libc(maps: list[Mapping], name: str, args: Sequence[int] = ()) -> int:
    return call_function(exported(maps, libc_path(maps), name), args).value


def load_library(inferior: gdb.Inferior, path: str) -> int:
    """dlopen(path, RTLD_NOW | RTLD_LOCAL) in the process on the selected thread: the handle; the loader's own
    message when it fails."""
    maps = read_maps(inferior.pid)
    dlopen = exported(maps, libc_path(maps), "dlopen")
    handle = call_function(dlopen, [0, RTLD_NOW | RTLD_LOCAL], data=os.fsencode(path) + b"\0",
                           data_args=[0]).value
    if handle:
        return handle
    message = call_libc(maps, "dlerror")
    text = ""
    if message:
        raw = bytes(inferior.read_memory(message, DLERROR_MAX))
        text = raw.split(b"\0", 1)[0].decode(errors="replace")
    raise HandCallError(f"the process could not load {os.path.basename(path)}: {text or 'dlopen failed'}")
