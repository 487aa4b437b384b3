#!/usr/bin/env python3
"""Reachability scan alone, on a synthetic heap in Python memory: no GDB, no process (moved out of
core/scan/, which holds only the scan). bench/scan_vs_valgrind.py measures the scan on a live process.

Usage: python bench/scan_synthetic.py [BLOCKS]   (default 1,000,000)
"""

from __future__ import annotations

import sys
import time
from array import array
from bisect import bisect_right
from collections.abc import Callable
from itertools import repeat
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout's gdb_memleak when run as a script
from gdb_memleak.core.scan import RootRegion, scan  # noqa: E402


class FlatMemory:
    """A few (address -> bytes) regions, read by slicing."""

    def __init__(self, regions: dict[int, bytes]) -> None:
        self.bases = sorted(regions)
        self.regions = [regions[b] for b in self.bases]

    def read(self, address: int, size: int) -> bytes:
        j = bisect_right(self.bases, address) - 1
        if j < 0:
            return b""
        offset = address - self.bases[j]
        return self.regions[j][offset:offset + size]

    read_span = read  # spans of adjacent blocks in one read, as the process memory (gdb/heapscan.py) offers


def benchmark(n: int = 1_000_000, block_size: int = 32, chain: int = 5,
              report: Callable[[str], None] | None = print) -> dict[str, float]:
    """Time scan() on `n` contiguous `block_size`-byte blocks; a global array points at the even ones.

    The odd (leaked) blocks form chains of `chain` blocks (first word = next), so phase 2 finds n/2/chain definite
    and the rest indirect. Every block also holds an integer and some text, like real data.
    """
    base = 0x5555_5555_0000
    per_block = block_size // 8
    heap = array("Q", bytes(n * per_block * 8))
    text = int.from_bytes(b"leaked!\0", "little")
    if per_block > 1:
        heap[1::per_block] = array("Q", range(n))
    if per_block > 2:
        heap[2::per_block] = array("Q", repeat(text, n))
    leaked = list(range(1, n, 2))
    for c in range(0, len(leaked), chain):
        group = leaked[c:c + chain]
        for a, b in zip(group, group[1:]):
            heap[a * per_block] = base + b * block_size
    table = array("Q", (base + i * block_size for i in range(0, n, 2)))
    table_at = 0x5555_5400_0000
    memory = FlatMemory({base: heap.tobytes(), table_at: table.tobytes()})
    blocks = dict.fromkeys(range(base, base + n * block_size, block_size), block_size)
    roots = [RootRegion(table_at, table_at + len(table) * 8, "global")]
    t0 = time.perf_counter()
    result = scan(blocks, memory, roots, registers=[0, 1, base - 8])
    elapsed = time.perf_counter() - t0
    t0 = time.perf_counter()
    list(map(memory.read, blocks, blocks.values()))  # what the fake memory alone costs for one read per block
    reads = time.perf_counter() - t0
    summary = result.summary(blocks)
    if report:
        report(f"scan of {n:,} blocks of {block_size} bytes: {elapsed:.2f} s, of which about {reads:.2f} s in the "
               f"fake memory's reads ({result.scanned_bytes:,} bytes scanned); {summary}")
    return {"seconds": elapsed, "memory_seconds": reads, **{k: v["blocks"] for k, v in summary.items()}}


if __name__ == "__main__":
    benchmark(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
