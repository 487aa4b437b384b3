"""Turning PCs into functions, files and lines with GDB (report time), and classifying frames for the fast unwinder."""

from __future__ import annotations

import os
import re

import gdb

from ..core.addr2line import Addr2Line, SourceLine
from ..core.elf import ElfError, read_elf_layout
from ..core.model import Frame
from ..core.procmaps import CodeRanges, Mapping, load_bias, read_maps, real_path
from ..core.unwind import FrameKind, has_frame_pointer_prologue

# `info symbol` output; demangled C++ names contain spaces ("std::basic_string<char, ...>::_M_mutate(...) + 61 in ...")
INFO_SYMBOL = re.compile(r"^(?P<name>.+?)(?: \+ (?P<offset>\d+))? in section (?P<section>\S+)(?: of (?P<obj>.+))?$")
# Where a stack ends: main (GDB's `backtrace past-main off`), a thread's entry, the program's or the dynamic
# loader's entry (`_dl_start_user` runs the libraries' constructors; above it lie argc and argv, not frames).
ROOT_FUNCTIONS = frozenset({"main", "start_thread", "clone", "clone3", "__libc_start_call_main",
                            "__libc_start_main", "_start", "_dl_start_user"})
GDB_CALL = "<function called from gdb>"
# Return addresses of GDB's call dummies seen while capturing stacks: the only PCs labelled GDB_CALL. GDB calls a
# function in the program only when the user asks (`call`, `print f()`); gdb-memleak itself never does.
gdb_call_returns: set[int] = set()


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
    progspace = gdb.current_progspace()
    return (progspace.filename or "??") if not maps and progspace is not None else "??"


def function_symbols(pc: int) -> list[gdb.Symbol]:
    """The functions whose code is at pc, innermost first: the calls inlined there, then the physical function (the
    one whose block sits directly in the file's static block)."""
    try:
        block = gdb.block_for_pc(pc)
    except RuntimeError:
        return []
    found = []
    while block is not None and not (block.is_static or block.is_global):
        if block.function is not None:
            found.append(block.function)
            outer = block.superblock
            if outer is None or outer.is_static or outer.is_global:
                break
        block = block.superblock
    return found


def source_line(pc: int) -> tuple[str | None, int | None]:
    sal = gdb.find_pc_line(pc)
    if sal.symtab is None:
        return None, None
    return sal.symtab.fullname(), sal.line or None


class GdbResolver:
    """`resolve(pc)` for core's Symbolizer. `pc` is a return address, so the call is looked up at pc - 1.

    Where the compiler inlined calls, one PC gives one frame per inlined function (innermost first, the line inside
    it) and then the function it was inlined into, at the line of the call. GDB's reader gives an inlined
    function's symbol the call site (DW_AT_call_file/DW_AT_call_line) as its symtab and line. The innermost line is
    the line-table row valgrind and addr2line pick (core/addr2line.py), when addr2line sees the same frames.
    """

    shared_lines: Addr2Line | None = None

    def __init__(self, maps: list[Mapping] | None = None, lines: Addr2Line | None = None) -> None:
        self.maps = maps if maps is not None else []
        if lines is None:
            lines = GdbResolver.shared_lines = GdbResolver.shared_lines or Addr2Line()
        self.lines = lines
        self._layouts: dict[str, tuple[int, int] | None] = {}

    def __call__(self, pc: int) -> list[Frame]:
        look = pc - 1
        obj = object_of(look, self.maps)
        if pc in gdb_call_returns:  # the return address of GDB's `call` trampoline
            return [Frame(pc, GDB_CALL, None, None, obj)]
        file, line = source_line(look)
        symbols = function_symbols(look)
        address = self._elf_address(look, obj)
        if not symbols:
            return [Frame(pc, self._unnamed(pc, obj), file, line, obj, address=address)]
        file, line = self._innermost_line(address, obj, len(symbols), file, line)
        frames = []
        for i, symbol in enumerate(symbols):
            inline = i < len(symbols) - 1
            frames.append(Frame(pc, symbol.print_name, file, line, obj, inline=inline, address=address))
            if inline:  # the caller's line is the inlined call's site
                file = symbol.symtab.fullname() if symbol.symtab is not None and symbol.line else None
                line = symbol.line or None
        return frames

    def _innermost_line(self, address: int | None, obj: str, frames: int, file: str | None,
                        line: int | None) -> SourceLine:
        """addr2line's (file, line) for the innermost frame at `address` (the object's own address of the call)
        when it sees `frames` frames there too."""
        rows = self.lines.lines(obj, address) if address is not None else None
        if not rows or len(rows) != frames or rows[0][1] is None:
            return file, line
        row_file, row_line = rows[0]
        if row_file is None or (file is not None and os.path.basename(file) == os.path.basename(row_file)):
            return file, row_line
        return (os.path.normpath(row_file) if os.path.isabs(row_file) else row_file), row_line

    def _elf_address(self, address: int, obj: str) -> int | None:
        """`address` as the object file's own (link-time) virtual address, for addr2line."""
        if obj not in self._layouts:
            try:
                self._layouts[obj] = read_elf_layout(obj) if os.path.isfile(obj) else None
            except ElfError:
                self._layouts[obj] = None
        layout = self._layouts[obj]
        if layout is None:
            return None
        bias = load_bias(self.maps, obj, *layout)
        return address - bias if bias is not None else None

    def _unnamed(self, pc: int, obj: str) -> str:
        """A name for a PC without debug info: its ELF symbol + offset, else object + offset, else the address."""
        msym = minimal_symbol(pc - 1)
        if msym is not None:
            name, offset = msym
            return f"{name}+0x{offset + 1:x}"
        if obj == "??":
            return f"0x{pc:x}"
        return f"{os.path.basename(obj)}+0x{self._object_offset(pc, obj):x}"

    def _object_offset(self, pc: int, obj: str) -> int:
        real = real_path(obj)
        starts = [m.start - m.offset for m in self.maps if m.path and real_path(m.path) == real]
        return pc - min(starts) if starts else pc


class FrameClassifier:
    """Per-PC verdict for the stack walks, cached: is this PC code, does its function end the stack, does it keep a
    frame pointer?"""

    def __init__(self, inferior: gdb.Inferior, maps: list[Mapping] | None = None) -> None:
        """`maps`: the process's mappings, fixed (a core's); None: the live process's, read again as it loads."""
        self.inferior = inferior
        self._cache: dict[int, FrameKind] = {}
        self._fixed = maps is not None
        self._code = CodeRanges(maps or [])

    def __call__(self, pc: int) -> FrameKind:
        kind = self._cache.get(pc)
        if kind is None:
            kind = self._cache[pc] = self._classify(pc)
        return kind

    def is_code(self, pc: int) -> bool:
        """In an executable mapping (/proc maps re-read when pc is not in the ones known: a library loaded since)."""
        if pc - 1 in self._code:
            return True
        if self._fixed:
            return False
        try:
            self._code = CodeRanges(read_maps(self.inferior.pid))
        except OSError:  # not a live local process (core file, remote target): trust GDB
            return pc > 0
        return pc - 1 in self._code

    def _classify(self, pc: int) -> FrameKind:
        if not self.is_code(pc):
            return FrameKind.NOT_CODE
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
