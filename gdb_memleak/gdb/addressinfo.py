"""Describing a bad pointer from a stopped process (for heap errors): the table's live and freed blocks, the
threads' stacks, `info symbol` for globals. Reads memory maps and registers only; calls nothing in the program."""

from __future__ import annotations

import re

import gdb

from ..core.addressinfo import AddressInfo, Place, containing
from ..core.model import HeapError
from ..core.procmaps import read_maps
from ..core.table import AllocationTable
from .access import RegisterReader
from .image import thread_states

# "g + 8 in section .bss", "buf in section .data of /usr/lib/libx.so"
_INFO_SYMBOL = re.compile(
    r"^(?P<symbol>.+?)(?: \+ (?P<offset>\d+))? in section (?P<section>\S+)(?: of (?P<object>.+))?$")


def symbol_at(address: int) -> tuple[str, int, str, str | None] | None:
    """(symbol, offset, section, object or None) from GDB's `info symbol`, None when no symbol covers it."""
    try:
        text = gdb.execute(f"info symbol 0x{address:x}", to_string=True).strip()
    except gdb.error:
        return None
    match = _INFO_SYMBOL.match(text.splitlines()[0] if text else "")
    if match is None:
        return None
    return match["symbol"], int(match["offset"] or 0), match["section"], match["object"]


def describe(address: int, table: AllocationTable, inferior: gdb.Inferior,
             regs: RegisterReader | None) -> AddressInfo:
    """Where `address` lies: a live block, a freed one, a stack, a global, another mapping, or nowhere."""
    block = table.block_containing(address)
    if block is not None:
        return AddressInfo(address, Place.BLOCK, address - block.address, block.address, block.size, block.pcs,
                           allocator=block.allocator)
    found = containing(address, ((f.block.address, f.block.size) for f in table.freed.values()))
    if found is not None:
        freed = table.freed[found[0]]
        return AddressInfo(address, Place.FREED, address - found[0], found[0], found[1], freed.block.pcs,
                           freed.free_pcs, allocator=freed.block.allocator)
    try:
        maps = read_maps(inferior.pid)
    except OSError:
        maps = []
    mapping = next((m for m in maps if m.start <= address < m.end), None)
    if mapping is None:
        return AddressInfo(address, Place.UNKNOWN)
    if regs is not None:
        for thread in thread_states(inferior, regs):
            if mapping.start <= thread.sp < mapping.end:
                return AddressInfo(address, Place.STACK, thread=thread.num)
    if mapping.path == "[stack]":
        return AddressInfo(address, Place.STACK, thread=1)
    symbol = symbol_at(address)
    if symbol is not None:
        name, offset, section, obj = symbol
        return AddressInfo(address, Place.GLOBAL, offset, symbol=name, section=section, object=obj or mapping.path)
    return AddressInfo(address, Place.MAPPING, object=mapping.path or "anonymous memory")


def annotate(error: HeapError, table: AllocationTable, inferior: gdb.Inferior, regs: RegisterReader) -> None:
    """Attach what the pointer of an invalid free (or realloc) is to `error`; other errors name their block.
    Called from the engine's stop() through the tracking's heap_error, while the process is stopped at the call."""
    if error.type != "invalid_free" or not inferior.is_valid():
        return
    try:
        error.address_info = describe(error.address, table, inferior, regs)
    except (gdb.error, OSError, ValueError):
        pass  # a description is a courtesy: never lose the error over it
