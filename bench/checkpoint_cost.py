#!/usr/bin/env python3
"""What a checkpoint adds to a report (core/report.py ProcessReport.checkpoint: a growth sample of every allocation
stack, the loss records kept as the next baseline), on the recorder's columns in Python memory: no GDB, no process.

Each report groups the live blocks into loss records anyway (core/grouping.py, vectorised); a checkpoint reuses those
groups, so its cost is per loss record, not per block. Printed: the grouping, the checkpoint, a later listing
(its deltas computed), and the ratio of checkpoint + listing to the grouping, for a few heap sizes and stack counts.

Usage: python bench/checkpoint_cost.py [BLOCKS]   (default: 100,000 and 1,000,000)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout's gdb_memleak when run as a script
from gdb_memleak.core.kinds import KINDS  # noqa: E402
from gdb_memleak.core.live import LiveColumns  # noqa: E402
from gdb_memleak.core.model import Frame, ProcessResult  # noqa: E402
from gdb_memleak.core.report import ProcessReport  # noqa: E402
from gdb_memleak.core.symbols import Symbolizer  # noqa: E402
from gdb_memleak.core.table import AllocationTable  # noqa: E402


def report_of(n: int, stacks: int, seed: int) -> ProcessReport:
    """`n` blocks over `stacks` allocation stacks (8 frames each), every block given a leak kind."""
    rng = np.random.default_rng(seed)
    addr = np.arange(n, dtype=np.int64) * 64 + 0x5555_0000_0000
    stack_ids = rng.integers(1, stacks + 1, n).astype(np.uint32)
    columns = LiveColumns(addr, rng.integers(16, 512, n), np.arange(1, n + 1), np.linspace(0, 60, n), stack_ids,
                          np.ones(n, np.uint32), np.zeros(n, np.uint16), [("malloc", "malloc")],
                          lambda i: tuple(0x400000 + 16 * (i * 8 + d) for d in range(8)), lambda t: t)
    table = AllocationTable()
    table.blocks = columns
    kinds = dict(zip(addr.tolist(), rng.choice(list(KINDS), n).tolist()))
    return ProcessReport(ProcessResult(1, ["bench"]), table, Symbolizer(lambda pc: Frame(pc, f"f{pc:x}")),
                         kinds=kinds)


def timed(action, *args) -> float:
    start = time.perf_counter()
    action(*args)
    return time.perf_counter() - start


def main() -> None:
    sizes = [int(a.replace(",", "")) for a in sys.argv[1:]] or [100_000, 1_000_000]
    print(f"{'blocks':>10} {'stacks':>7} {'grouping':>9} {'checkpoint':>11} {'listing':>8} {'ratio':>6}")
    for n in sizes:
        for stacks in (1_000, 20_000):
            report = report_of(n, stacks, seed=1)
            report.checkpoint(0.0)  # a baseline: the next listing has deltas to compute
            later = report_of(n, stacks, seed=2)  # the same stacks, other blocks: a later read of the table
            later.baselines, later.growth = report.baselines, report.growth
            later.table.counters.allocs = 1  # another state of the table than the checkpoint's
            grouping = timed(later.table.blocks.leak_groups, later.kinds, later.leaders, None)
            checkpoint = timed(later.checkpoint, 1.0)
            listing = timed(later.leak_groups)
            print(f"{n:>10,} {stacks:>7,} {grouping:>8.3f}s {checkpoint:>10.3f}s {listing:>7.3f}s "
                  f"{(checkpoint + listing) / grouping:>6.2f}")


if __name__ == "__main__":
    main()
