"""Turning PCs into functions, files and lines with GDB (report time), and classifying frames for the fast unwinder."""

from __future__ import annotations

import os
import re

import gdb

from ..core.model import Frame
from ..core.procmaps import Mapping
from ..core.unwind import FrameKind, has_frame_pointer_prologue

# `info symbol` output; demangled C++ names contain spaces ("std::basic_string<char, ...>::_M_mutate(...) + 61 in ...")
INFO_SYMBOL = re.compile(r"^(?P<name>.+?)(?: \+ (?P<offset>\d+))? in section (?P<section>\S+)(?: of (?P<obj>.+))?$")
ROOT_FUNCTIONS = frozenset({"main", "start_thread", "clone", "clone3", "__libc_start_call_main",
                            "__libc_start_main", "_start"})


def minimal_symbol(pc: int) -> tuple[str, int] | None:
    """(name, offset) of the ELF symbol covering pc, from GDB's minimal symbols (works without debug info)."""
    try:
        text = gdb.execute(f"info symbol 0x{pc:x}", to_string=True).strip()
    except gdb.error:
        return None
    match = INFO_SYMBOL.match(text.splitlines()[0]) if text else None
    if not match:
        return None
    return match.group("name"), int(match.group("offset") or 0)


def object_of(pc: int, maps: list[Mapping]) -> str:
    """The object file holding pc: a shared library, else whatever /proc maps says is mapped there."""
    name = gdb.solib_name(pc)
    if name:
        return name
    for mapping in maps:
        if mapping.start <= pc < mapping.end:
            return mapping.path or "??"
    return (gdb.current_progspace().filename or "??") if not maps else "??"


def function_of(pc: int) -> str | None:
    try:
        block = gdb.block_for_pc(pc)
    except RuntimeError:
        return None
    while block is not None and block.function is None:
        block = block.superblock
    return block.function.print_name if block is not None else None


class GdbResolver:
    """`resolve(pc)` for core's Symbolizer. `pc` is a return address, so the call is looked up at pc - 1."""

    def __init__(self, maps: list[Mapping] | None = None) -> None:
        self.maps = maps if maps is not None else []

    def __call__(self, pc: int) -> Frame:
        look = pc - 1
        obj = object_of(look, self.maps)
        if obj == "[stack]":  # the return address of GDB's `call` trampoline
            return Frame(pc, "<function called from gdb>", None, None, obj)
        sal = gdb.find_pc_line(look)
        file = sal.symtab.fullname() if sal.symtab is not None else None
        line = sal.line or None if sal.symtab is not None else None
        function = function_of(look)
        if function is None:
            msym = minimal_symbol(look)
            if msym is not None:
                name, offset = msym
                function = f"{name}+0x{offset + 1:x}"
            elif obj == "??":
                function = f"0x{pc:x}"
            else:
                function = f"{os.path.basename(obj)}+0x{self._object_offset(pc, obj):x}"
        return Frame(pc, function, file, line, obj)

    def _object_offset(self, pc: int, obj: str) -> int:
        real = os.path.realpath(obj)
        starts = [m.start - m.offset for m in self.maps if m.path and os.path.realpath(m.path) == real]
        return pc - min(starts) if starts else pc


class FrameClassifier:
    """Per-PC verdict for the frame-pointer walk, cached: does the function holding this PC keep a frame pointer?"""

    def __init__(self, inferior: gdb.Inferior) -> None:
        self.inferior = inferior
        self._cache: dict[int, FrameKind] = {}

    def __call__(self, pc: int) -> FrameKind:
        kind = self._cache.get(pc)
        if kind is None:
            kind = self._cache[pc] = self._classify(pc)
        return kind

    def _classify(self, pc: int) -> FrameKind:
        msym = minimal_symbol(pc - 1)
        if msym is None:
            return FrameKind.NO_FRAME_POINTER
        name, offset = msym
        if name.split("@")[0] in ROOT_FUNCTIONS:
            return FrameKind.ROOT
        try:
            code = self.inferior.read_memory(pc - 1 - offset, 8).tobytes()
        except gdb.MemoryError:
            return FrameKind.NO_FRAME_POINTER
        return FrameKind.FRAME_POINTER if has_frame_pointer_prologue(code) else FrameKind.NO_FRAME_POINTER
