"""Blocks live when tracking started on a running process (glibc's heap walked: core/glibc_heap.py), entered into
the breakpoint engine's table; the recorder enters them into its own (`memleak_agent_adopt`) with the same name.

Nothing is known of them but their address and usable size: no stack, no allocator call, no order (sequence 0).
The report lists them under one allocator name, so each leak kind gives one loss record of them. Their release is
an ordinary free, whatever releases them (malloc or new is unknown: family "any", no mismatched-free error).
"""

from __future__ import annotations

from collections.abc import Sequence

from .model import Block
from .table import ANY_FAMILY, AllocationTable

PREFIX = "allocated before tracking started"


def adopt(table: AllocationTable, addresses: Sequence[int], sizes: Sequence[int], now: float) -> int:
    """Enter each (address, usable size) the table does not hold as a live block; returns how many were new.
    The program's calls seen (allocs) are left alone: only the live and peak figures grow."""
    blocks = table.blocks.editable()
    table.blocks = blocks
    counters = table.counters
    added = 0
    for address, size in zip(addresses, sizes):
        if address in blocks:
            continue
        blocks[address] = Block(address, size, PREFIX, 0, 0, now, (), ANY_FAMILY)
        counters.live_blocks += 1
        counters.live_bytes += size
        added += 1
    table.heap_walked = True
    counters.peak_blocks = max(counters.peak_blocks, counters.live_blocks)
    counters.peak_bytes = max(counters.peak_bytes, counters.live_bytes)
    return added
