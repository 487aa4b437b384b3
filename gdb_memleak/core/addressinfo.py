"""What a bad pointer is, for a heap error: inside a live or freed block, on a thread's stack, in a global, or
nowhere known. valgrind says it under every invalid free ("Address 0x… is 8 bytes inside a block of size 32
alloc'd"); without it the user only has the address."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum


class Place(str, Enum):
    BLOCK = "block"        # inside a live heap block
    FREED = "freed"        # inside a block already freed
    STACK = "stack"        # on a thread's stack
    GLOBAL = "global"      # in a loaded object's data (a symbol when one covers it)
    MAPPING = "mapping"    # in some other mapping (anonymous, a file, no symbol)
    UNKNOWN = "unknown"    # not mapped, or nothing known of it


@dataclass(frozen=True)
class AddressInfo:
    """Where `address` lies; the fields that matter depend on `place`."""

    address: int
    place: Place
    offset: int = 0                      # bytes from the block's start (BLOCK, FREED) or from `symbol` (GLOBAL)
    block_address: int | None = None
    block_size: int | None = None
    alloc_pcs: tuple[int, ...] = ()
    free_pcs: tuple[int, ...] = ()
    allocator: str | None = None         # BLOCK/FREED: the function that allocated the block
    thread: int | None = None            # STACK: the thread number (as GDB numbers threads)
    symbol: str | None = None            # GLOBAL: the symbol covering it
    section: str | None = None
    object: str | None = None            # GLOBAL/MAPPING: the object file (or mapping path)

    def describe(self) -> str:
        """One valgrind-like sentence (the stacks are rendered under it)."""
        head = f"Address 0x{self.address:x} is"
        if self.place in (Place.BLOCK, Place.FREED):
            how = "allocated" if self.place is Place.BLOCK else "free'd"
            return f"{head} {self.offset:,} bytes inside a block of size {self.block_size or 0:,} {how}"
        if self.place is Place.STACK:
            return f"{head} on thread {self.thread}'s stack"
        if self.place is Place.GLOBAL:
            where = f"{self.symbol}+{self.offset}" if self.symbol and self.offset else self.symbol or "?"
            section = f" (section {self.section}" + (f" of {self.object})" if self.object else ")") \
                if self.section else ""
            return f"{head} in a global: {where}{section}"
        if self.place is Place.MAPPING:
            return f"{head} in a mapping of {self.object}, not in any heap block"
        return f"{head} not on a stack, not in a heap block, not in (recently) freed memory"

    def to_json(self, stack: Callable[[tuple[int, ...]], list[dict]]) -> dict:
        data: dict = {"place": self.place.value, "description": self.describe()}
        if self.place in (Place.BLOCK, Place.FREED):
            data.update(offset=self.offset, block=f"0x{self.block_address or 0:x}", block_size=self.block_size,
                        alloc_stack=stack(self.alloc_pcs), free_stack=stack(self.free_pcs))
        elif self.place is Place.STACK:
            data["thread"] = self.thread
        elif self.place is Place.GLOBAL:
            data.update(symbol=self.symbol, offset=self.offset, section=self.section, object=self.object)
        elif self.place is Place.MAPPING:
            data["object"] = self.object
        return data


def containing(address: int, blocks: Iterable[tuple[int, int]]) -> tuple[int, int] | None:
    """The (start, size) of the block holding `address`, from (start, size) pairs; the last one given wins (so
    when freed blocks are given oldest first, the most recently freed)."""
    found = None
    for start, size in blocks:
        if start <= address < start + max(size, 1):
            found = (start, size)
    return found
