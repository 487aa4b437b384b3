"""Finding the allocator definitions the process really calls.

Symbol lookup by name through GDB also finds the dynamic loader's private malloc and, with libc debug info, dozens
of inlined sites; instead each loaded object's ELF symbol tables are read and the first object in load order that
defines a function wins (executable, LD_PRELOADed libraries, then the rest: the dynamic linker's own order).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import gdb

from ..core.allocators import AllocatorSpec
from ..core.elf import cached_elf_symbols
from ..core.procmaps import Mapping, load_bias


@dataclass(frozen=True)
class Definition:
    spec: AllocatorSpec
    address: int
    object: str
    size: int = 0  # the function's size in bytes (ELF st_size; 0: unknown): calls made from its own code


def _is_loader_or_vdso(path: str) -> bool:
    base = os.path.basename(path)
    return base.startswith("ld-linux") or base.startswith("ld64.so") or not os.path.isfile(path)


def candidate_objects() -> list[str]:
    paths = []
    for objfile in gdb.objfiles():
        if objfile.owner is not None or not objfile.filename:
            continue
        if not _is_loader_or_vdso(objfile.filename) and objfile.filename not in paths:
            paths.append(objfile.filename)
    return paths


def locate(specs: list[AllocatorSpec], maps: list[Mapping]) -> list[Definition]:
    """Definitions for those `specs` found in the objects mapped now."""
    found: list[Definition] = []
    wanted = list(specs)
    for path in candidate_objects():
        symbols = cached_elf_symbols(path, os.path.getmtime(path))
        if symbols is None:
            continue
        bias = load_bias(maps, path, symbols.e_type, symbols.min_vaddr)
        if bias is None:
            continue
        for spec in list(wanted):
            value = symbols.function(spec.name)
            if value is not None:
                found.append(Definition(spec, bias + value, path, symbols.extent(spec.name)))
                wanted.remove(spec)
    return found
