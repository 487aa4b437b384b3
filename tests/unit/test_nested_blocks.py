"""A block made by a call nested in an allocator call and returned by it is the outer call's: withdrawn, then
recorded once (gdb/breakpoint_engine.py `_adopt`)."""

from __future__ import annotations

from gdb_memleak.core.table import AllocationTable


def test_withdrawing_a_block_uncounts_its_allocation_and_gives_its_number_back():
    table = AllocationTable()
    table.on_alloc(0x1000, 16, "malloc", 1, (), 0.0)
    table.on_alloc(0x2000, 32, "malloc", 1, (), 0.0)  # the nested malloc
    assert table.withdraw(0x2000) is not None
    block = table.on_alloc(0x2000, 32, "new", 1, (), 0.0, "new")  # the outer operator new returns it
    c = table.counters
    assert (c.allocs, c.bytes_allocated, c.live_blocks, c.live_bytes) == (2, 48, 2, 48)
    assert block is not None and block.seq == 2 and table.blocks[0x2000].family == "new"
    assert table.withdraw(0x3000) is None
