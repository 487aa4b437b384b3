"""The reachability scan of pure.py vectorised with numpy, for heaps of a million blocks.

Same semantics as the pure-Python scan (the unit tests run both): the words of the blocks are matched
against the heap's address range all at once, pointers are resolved to blocks with `searchsorted` over the block
starts (a start pointer is an exact hit, an interior one falls strictly inside), and the edges between blocks are
kept as CSR arrays. Phase 1 is two closures, which is what valgrind's rising states amount to: R, the blocks reached
from the roots' start pointers through start pointers of R blocks ("reachable"); then everything any pointer
reaches from the roots' interior targets or from R, minus R ("possible"). A wide frontier is expanded in one numpy
step, a thin one (a linked list) in a plain loop, so a long chain does not cost one numpy call per node. Phase 2 is
shared.cliques, fed from the arrays converted once. Its parts: numpy_heap.py (the blocks as arrays, read in spans),
numpy_graph.py (the closures), numpy_heuristics.py.

Memory is read in spans of adjacent blocks when the memory offers `read_span` (one read for thousands of blocks;
the words between blocks, allocator headers and freed chunks, are read but never matched); a span that comes back
short is read again block by block, so unreadable bytes are counted exactly as the pure path counts them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from .. import heuristics as hx
from .numpy_graph import Graph, ints, targets_of
from .numpy_heap import Blocks, Heap, batches
from .numpy_heuristics import Judge, attribute
from .shared import Counters, Memory, Reader, Referrer, RootRegion, ScanResult, cliques
from .states import INDIRECT, POSSIBLE, REACHABLE, UNREACHED, KindArray

RESOLVE_SLICE = 1 << 16  # pointer words resolved to blocks at a time

__all__ = ["Blocks", "scan"]  # Blocks: the input numpy_backend() callers build


def scan(blocks: Mapping[int, int], arrays: Blocks, memory: Memory, roots: Iterable[RootRegion],
         registers: Iterable[int], word_size: int, max_block_scan: int, watch: int | None, limit: int,
         heuristics: hx.Heuristics | None = None) -> ScanResult:
    """The package's scan() contract (see there), with `arrays` = Blocks.of(blocks); word size 4 or 8. Works from
    the arrays alone: `blocks` is never read (it may be a mapping whose iteration is slow)."""
    if not len(arrays.starts):
        return ScanResult(KindArray(arrays.starts, np.zeros(0, np.uint8), arrays.sizes), {}, 0, 0)
    heap = Heap(arrays, word_size, max_block_scan)
    n = len(heap.starts)
    dtype = np.dtype("<u8" if word_size == 8 else "<u4")
    counters = Counters()
    reader = Reader(memory, word_size, counters)
    watched: int | None = None
    watch_start = watch_end = 0
    if watch is not None and 0 <= watch < 1 << 63:
        i = int(np.searchsorted(heap.starts, watch))
        if i < n and int(heap.starts[i]) == watch:
            watched, watch_start = i, watch
            watch_end = watch + max(int(heap.sizes[i]), 1)
    block_refs: list[Referrer] = []
    lo, width = np.uint64(heap.lo), np.uint64(heap.hi - heap.lo)

    # Every block once: the pointers between blocks as (source, code) pairs.
    sources: list[Any] = []
    codes: list[Any] = []
    judge = Judge(heuristics, memory, heap) if heuristics is not None and word_size == hx.WORD else None
    edges = 0  # edges kept so far (where the next batch's land in the concatenated codes)
    for buf, owners, offsets, counts, bases in batches(memory, reader, heap, word_size):
        words = np.frombuffer(buf, dtype=dtype, count=len(buf) // word_size).astype(np.uint64, copy=False)
        if judge is not None:
            judge.heads(words, owners, offsets, counts, bases)
        hits = np.flatnonzero((words - lo) < width)  # lo <= word < hi, in two passes (uint64 wraps)
        # resolved a slice at a time: a block full of pointers (an array of a million) would otherwise make a dozen
        # temporaries of its size at once, the peak of GDB's memory
        for at in range(0, len(hits), RESOLVE_SLICE):
            found = hits[at:at + RESOLVE_SLICE]
            part = np.searchsorted(offsets, found, side="right") - 1
            inside = part >= 0
            part = np.where(inside, part, 0)
            inside &= found < offsets[part] + counts[part]
            keep, code = heap.resolve(words[found])
            keep &= inside
            if not keep.any():
                continue
            found, part, code = found[keep], part[keep], code[keep]
            src = owners[part]
            if watched is not None and len(block_refs) < limit:
                hit = ((code == watched) | (code == ~watched)) & (src != watched)
                for k, j in zip(found[hit].tolist(), part[hit].tolist()):
                    if len(block_refs) >= limit:
                        break
                    pointer = int(words[k])
                    address = int(bases[j]) + (k - int(offsets[j])) * word_size
                    holder = int(heap.starts[owners[j]])
                    block_refs.append(Referrer(address, pointer, pointer != watch_start, holder, None))
            sources.append(src)
            codes.append(code)
            if judge is not None:
                judge.note(edges, code, words[found])
            edges += len(code)
    src_all = np.concatenate(sources) if sources else np.zeros(0, np.int64)
    dst_np = np.concatenate(codes).astype(np.int64) if codes else np.zeros(0, np.int64)
    accepted_by = judge.edges(dst_np) if judge is not None else None  # interior pointers turned start pointers
    if len(src_all) > 1 and not bool(np.all(src_all[1:] >= src_all[:-1])):
        order = np.argsort(src_all, kind="stable")
        src_all, dst_np = src_all[order], dst_np[order]
        if accepted_by is not None:
            accepted_by = accepted_by[order]
    first_np = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(src_all, minlength=n), out=first_np[1:])
    del src_all, sources, codes
    heap.wants = heap.begins = None  # read: what GDB holds from here on is the graph and the states

    # Phase 1: the roots, then the two closures.
    state = bytearray(n)
    st = np.frombuffer(state, dtype=np.uint8)
    mask = (1 << (8 * word_size)) - 1
    root_values = [np.array([int(r) & mask for r in registers], dtype=np.uint64)]
    root_refs: list[Referrer] = []
    for region in roots:
        for buf, address in reader.region(region.start, region.end):
            words = np.frombuffer(buf, dtype=dtype, count=len(buf) // word_size).astype(np.uint64, copy=False)
            found = np.flatnonzero((words - lo) < width)
            if not len(found):
                continue
            values = words[found]
            root_values.append(values)
            if watched is not None and len(root_refs) < limit:
                for k, v in zip(found.tolist(), values.tolist()):
                    if watch_start <= v < watch_end:
                        root_refs.append(Referrer(address + k * word_size, v, v != watch_start, None, region.label))
    values = np.concatenate(root_values)
    keep, code = heap.resolve(values)
    code = code[keep]
    root_hits = judge.roots(code, values[keep]) if judge is not None else None
    first, dst = ints(first_np), ints(dst_np)
    graph = Graph(st, state, first_np, dst_np, first, dst)
    seeds = graph.distinct(code[code >= 0])
    st[seeds] = REACHABLE
    graph.closure(seeds, start_only=True, mark=REACHABLE)
    targets = np.concatenate([~code[code < 0], *targets_of(st == REACHABLE, first_np, dst_np)])
    seeds = targets[st[targets] == UNREACHED]
    seeds = graph.distinct(seeds)
    st[seeds] = POSSIBLE
    graph.closure(seeds, start_only=False, mark=POSSIBLE)
    attributed: dict[int, str] = {}
    if root_hits is not None:
        attributed = attribute(st, first_np, dst_np, accepted_by, root_hits, heap.starts)

    # Phase 2: cliques among the blocks still unreached, as the pure scan finds them.
    owner = graph.forest()
    if owner is not None:
        lost, heads = owner
        st[lost] = INDIRECT
        leader = dict(zip(heap.starts[lost].tolist(), heap.starts[heads].tolist()))
    else:
        holds = first_np[1:] > first_np[:-1]  # blocks holding pointers to blocks
        has_edges = holds.astype(np.uint8).tobytes()
        members = cliques(np.flatnonzero(holds & (st == UNREACHED)).tolist(), state, first, dst,
                              has_edges)
        starts = heap.starts.tolist()
        leader = {starts[m]: starts[head] for head, lost in members.items() for m in lost}
    st.flags.writeable = False
    return ScanResult(KindArray(heap.starts, st, heap.sizes), leader, counters.scanned, counters.unreadable,
                      (root_refs + block_refs)[:limit], attributed)

