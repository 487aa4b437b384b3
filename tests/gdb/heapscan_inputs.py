"""Sourced in GDB by tests/gdb/test_heapscan_inputs.py at the program's `_exit`: the same reachability scan of the
stopped process fed four ways (pure Python from the dict; numpy from the dict; numpy from prepared arrays with a
mapping that must not be iterated, glibc's chunk headers read one by one or gathered from whole mappings), each
printed as one `SCAN {json}` line."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping

import gdb
from gdb_memleak.core.scan import backend as backends
from gdb_memleak.gdb import heapscan
from gdb_memleak.gdb.heapscan import HeapScan
from gdb_memleak.gdb.session import SESSION


class LookupOnly(Mapping[int, int]):
    """Blocks as a columnar table offers them: looked up, never iterated."""

    def __init__(self, blocks: dict[int, int]) -> None:
        self.blocks = blocks

    def __getitem__(self, address: int) -> int:
        return self.blocks[address]

    def __iter__(self) -> Iterator[int]:
        raise AssertionError("HeapScan iterated the blocks it was given arrays for")

    def __len__(self) -> int:
        raise AssertionError("HeapScan counted the blocks it was given arrays for")


def main() -> None:
    tracking = SESSION.current()
    assert tracking is not None
    tracking.engine.sync()
    blocks = {b.address: b.size for b in tracking.table.blocks.values()}
    watch = min(blocks) if blocks else None
    fast, _why = backends.numpy_backend()
    arrays_of = fast.Blocks.of(blocks) if fast is not None else None
    for name, backend, arrays in [("python", "python", None), ("numpy", "numpy", None),
                                  ("arrays", "numpy", arrays_of), ("gathered", "numpy", arrays_of)]:
        if backend == "numpy" and fast is None:
            continue
        backends.BACKEND = backend
        # "gathered": glibc's chunk headers taken from their mappings read whole, as when very many root words
        # point inside blocks, instead of read one by one
        heapscan.PEEK_LIMIT = -1 if name == "gathered" else 4096
        heap = HeapScan(tracking.engine.inferior, blocks if arrays is None else LookupOnly(blocks), tracking.regs,
                        glibc=tracking.engine.glibc_malloc, exiting=True, hidden=tracking.engine.hidden_memory(),
                        arrays=arrays)
        try:
            result = heap.run(watch)
        finally:
            heap.close()
        print("SCAN " + json.dumps({
            "name": name, "type": type(result.kinds).__name__,
            "kinds": {f"{a:#x}": k.value for a, k in result.kinds.items()},
            "leader": {f"{a:#x}": f"{b:#x}" for a, b in result.leader.items()},
            "scanned": result.scanned_bytes, "unreadable": result.unreadable_bytes,
            "referrers": [[r.address, r.pointer, r.interior, r.block, r.label] for r in result.referrers],
            "summary": result.summary(blocks)}))
    backends.BACKEND = "auto"
    heapscan.PEEK_LIMIT = 4096


main()
gdb.flush()
