"""The numpy scan's heap: the blocks as arrays (Blocks, Heap) and their bytes read in batches, many adjacent
blocks in one span read when the memory offers `read_span`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from . import shared
from .shared import Memory, Reader

MAX_GAP = 4096  # bytes between two blocks that are still read in the same span
SPAN_BYTES = 4 << 20  # one span read covers at most about this much

Batch = tuple[bytes, Any, Any, Any, Any]  # (buf, owner per part, word offset per part, words per part, base per part)


class Blocks:
    """The blocks sorted by address, as arrays of starts and sizes (negative sizes count as 0). Built once per scan;
    gdb/heapscan.py builds it first and shares it with its own preparation."""

    def __init__(self, starts: Any, sizes: Any, in_order: bool) -> None:
        self.starts, self.sizes, self.in_order = starts, sizes, in_order

    @classmethod
    def of(cls, blocks: Mapping[int, int]) -> Blocks | None:
        """None when some address or end does not fit a signed 64-bit integer (the pure scan handles that)."""
        n = len(blocks)
        if not n:
            return None
        try:
            starts = np.fromiter(blocks.keys(), dtype=np.int64, count=n)
            sizes = np.fromiter(blocks.values(), dtype=np.int64, count=n)
        except (OverflowError, ValueError, TypeError):
            return None
        in_order = n < 2 or bool(np.all(starts[1:] > starts[:-1]))
        if not in_order:
            order = np.argsort(starts, kind="stable")
            starts, sizes = starts[order], sizes[order]
        np.maximum(sizes, 0, out=sizes)
        if int(starts[0]) < 0 or int(starts[-1]) + int(sizes.max()) >= 1 << 63:
            return None
        return cls(starts, sizes, in_order)


class Heap:
    """The blocks with the aligned range of each that is scanned (as shared.Layout is for the pure scan)."""

    def __init__(self, blocks: Blocks, word_size: int, max_block_scan: int) -> None:
        starts, sizes = blocks.starts, blocks.sizes
        low = word_size - 1
        self.starts, self.sizes = starts, sizes
        self.ustarts = starts.view(np.uint64)
        cap = max(0, max_block_scan)
        if not bool((starts & low).any()):  # word-aligned blocks (as malloc's): whole words of each, up to cap
            self.begins = starts
            capped = sizes if int(sizes.max()) <= cap else np.minimum(sizes, cap)
            # whole words: the sizes themselves when they are (malloc's usual 16-byte multiples), else a copy
            self.wants = capped if not bool((capped & low).any()) else capped & ~low
        else:
            self.begins = (starts + low) & ~low
            ends = (starts + np.minimum(sizes, cap)) & ~low
            self.wants = np.maximum(ends - self.begins, 0)
        self.lo = int(starts[0])
        self.hi = max(int(starts[-1]) + 1, int((starts + sizes).max()))

    def resolve(self, values: Any) -> tuple[Any, Any]:
        """(keep mask, codes) for word values (uint64): i for a start pointer to block i, ~i for an interior one."""
        i = np.searchsorted(self.ustarts, values, side="right") - 1
        valid = i >= 0
        i = np.where(valid, i, 0)
        offset = values - self.ustarts[i]
        start = valid & (offset == 0)
        interior = valid & ~start & (offset < self.sizes[i].view(np.uint64))
        return start | interior, np.where(start, i, ~i)


def batches(memory: Memory, reader: Reader, heap: Heap, ws: int) -> Iterator[Batch]:
    """The scanned words of every block, in address order, as batches of parts (one part per block, or per piece of
    a block larger than PIECE_BYTES)."""
    span_read = getattr(memory, "read_span", None)
    piece = shared.PIECE_BYTES
    scanned = heap.wants > 0
    idx: Any = None  # the rows of the blocks read (None: all of them, no array of a million row numbers)
    if bool(scanned.all()):
        begins, wants = heap.begins, heap.wants
    else:
        idx = np.flatnonzero(scanned)
        if not len(idx):
            return
        begins, wants = heap.begins[idx], heap.wants[idx]
    del scanned
    count = len(begins)
    ends = begins + wants
    big = wants > piece
    cut = np.zeros(count, dtype=bool)
    cut[0] = True
    cut[1:] |= big[1:] | big[:-1]
    limit = SPAN_BYTES
    if span_read is not None:
        gaps = begins[1:] - ends[:-1]
        cut[1:] |= (gaps < 0) | (gaps > MAX_GAP)
        del gaps
    else:  # block by block reads, batched for matching like the pure path
        limit = shared.BATCH_BYTES
    bounds = [*np.flatnonzero(cut).tolist(), count]
    del cut
    for i0, i1 in zip(bounds, bounds[1:]):
        if big[i0]:
            k = int(idx[i0]) if idx is not None else i0
            for data, address in reader.region(int(begins[i0]), int(ends[i0])):
                yield data, np.array([k]), np.zeros(1, np.int64), np.array([len(data) // ws]), np.array([address])
            continue
        while i0 < i1:  # at most `limit` bytes a batch
            if span_read is not None:
                j = int(np.searchsorted(ends[i0:i1], begins[i0] + limit, side="right"))
            else:
                j = int(np.searchsorted(np.cumsum(wants[i0:i1]), limit, side="right"))
            j = i0 + max(j, 1)
            owners = idx[i0:j] if idx is not None else np.arange(i0, j)
            yield _read_batch(span_read, reader, owners, begins[i0:j], wants[i0:j], ws)
            i0 = j


def _read_batch(span_read: Any, reader: Reader, owners: Any, begins: Any, wants: Any, ws: int) -> Batch:
    if span_read is not None:
        base = int(begins[0])
        size = int(begins[-1] + wants[-1]) - base
        try:
            data = span_read(base, size)
        except Exception:
            data = b""
        if len(data) >= size:
            reader.counters.scanned += int(wants.sum())
            return data[:size], owners, (begins - base) // ws, wants // ws, begins
    buf, owner_list, lengths, bases = reader.batch(begins.tolist(), wants.tolist(), owners.tolist())
    counts = np.array(lengths, dtype=np.int64) // ws
    offsets = np.zeros(len(counts), np.int64)
    if len(counts) > 1:
        np.cumsum(counts[:-1], out=offsets[1:])
    return buf, np.array(owner_list, dtype=np.int64), offsets, counts, np.array(bases, dtype=np.int64)
