"""The reachability scan of core/reachability.py vectorised with numpy, for heaps of a million blocks.

Same semantics as reachability's pure-Python scan (the unit tests run both): the words of the blocks are matched
against the heap's address range all at once, pointers are resolved to blocks with `searchsorted` over the block
starts (a start pointer is an exact hit, an interior one falls strictly inside), and the edges between blocks are
kept as CSR arrays. Phase 1 is two closures, which is what valgrind's rising states amount to: R, the blocks reached
from the roots' start pointers through start pointers of R blocks ("reachable"); then everything any pointer
reaches from the roots' interior targets or from R, minus R ("possible"). A wide frontier is expanded in one numpy
step, a thin one (a linked list) in a plain loop, so a long chain does not cost one numpy call per node. Phase 2 is
reachability's own `_cliques`, fed from the arrays converted once.

Memory is read in spans of adjacent blocks when the memory offers `read_span` (one read for thousands of blocks;
the words between blocks, allocator headers and freed chunks, are read but never matched); a span that comes back
short is read again block by block, so unreadable bytes are counted exactly as the pure path counts them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from .. import heuristics as hx
from . import pure as rb
from .pure import REACHABLE, UNREACHED, Memory, Referrer, RootRegion, ScanResult

POSSIBLE = rb.POSSIBLE
MAX_GAP = 4096  # bytes between two blocks that are still read in the same span
SPAN_BYTES = 4 << 20  # one span read covers at most about this much
RESOLVE_SLICE = 1 << 16  # pointer words resolved to blocks at a time
WIDE = 512  # a closure frontier at least this wide is expanded in numpy, a thinner one in a Python loop

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


class _Heap:
    """The blocks with the aligned range of each that is scanned (as rb._Layout)."""

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


def scan(blocks: Mapping[int, int], arrays: Blocks, memory: Memory, roots: Iterable[RootRegion],
         registers: Iterable[int], word_size: int, max_block_scan: int, watch: int | None, limit: int,
         heuristics: hx.Heuristics | None = None) -> ScanResult:
    """rb.scan's contract (see there), with `arrays` = Blocks.of(blocks); word size 4 or 8. Works from the arrays
    alone: `blocks` is never read (it may be a mapping whose iteration is slow)."""
    if not len(arrays.starts):
        return ScanResult(rb.KindArray(arrays.starts, np.zeros(0, np.uint8), arrays.sizes), {}, 0, 0)
    heap = _Heap(arrays, word_size, max_block_scan)
    n = len(heap.starts)
    dtype = np.dtype("<u8" if word_size == 8 else "<u4")
    counters = rb._Counters()
    reader = rb._Reader(memory, word_size, counters)
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
    judge = _Judge(heuristics, memory, heap) if heuristics is not None and word_size == hx.WORD else None
    edges = 0  # edges kept so far (where the next batch's land in the concatenated codes)
    for buf, owners, offsets, counts, bases in _batches(memory, reader, heap, word_size):
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
    first, dst = _ints(first_np), _ints(dst_np)
    graph = _Graph(st, state, first_np, dst_np, first, dst)
    seeds = graph._distinct(code[code >= 0])
    st[seeds] = REACHABLE
    graph.closure(seeds, start_only=True, mark=REACHABLE)
    targets = np.concatenate([~code[code < 0], *_targets_of(st == REACHABLE, first_np, dst_np)])
    seeds = targets[st[targets] == UNREACHED]
    seeds = graph._distinct(seeds)
    st[seeds] = POSSIBLE
    graph.closure(seeds, start_only=False, mark=POSSIBLE)
    attributed: dict[int, str] = {}
    if root_hits is not None:
        attributed = _attribute(st, first_np, dst_np, accepted_by, root_hits, heap.starts)

    # Phase 2: cliques among the blocks still unreached, as the pure scan finds them.
    owner = graph.forest()
    if owner is not None:
        lost, heads = owner
        st[lost] = rb.INDIRECT
        leader = dict(zip(heap.starts[lost].tolist(), heap.starts[heads].tolist()))
    else:
        holds = first_np[1:] > first_np[:-1]  # blocks holding pointers to blocks
        has_edges = holds.astype(np.uint8).tobytes()
        members = rb._cliques(np.flatnonzero(holds & (st == UNREACHED)).tolist(), state, first, dst,
                              has_edges)
        starts = heap.starts.tolist()
        leader = {starts[m]: starts[head] for head, lost in members.items() for m in lost}
    st.flags.writeable = False
    return ScanResult(rb.KindArray(heap.starts, st, heap.sizes), leader, counters.scanned, counters.unreadable,
                      (root_refs + block_refs)[:limit], attributed)


class _Judge:
    """core/heuristics.py's tests on arrays: what each block admits, found from its first words as its batch is
    read; the interior pointers between blocks, judged once every block is read; the roots' as they are resolved.
    The multipleinheritance test reads the word each candidate pointer points at (few: pointers into blocks whose
    first word is a vtable address), and tests vtable addresses once each (core/heuristics.py caches them)."""

    def __init__(self, heuristics: hx.Heuristics, memory: Memory, heap: _Heap) -> None:
        self.h, self.memory, self.heap = heuristics, memory, heap
        self.admits = np.zeros(len(heap.starts), np.uint8)
        self.usizes = heap.sizes.view(np.uint64)
        self.readable_starts = np.array(heuristics.readable_starts, dtype=np.uint64)
        self.readable_ends = np.array(heuristics.readable_ends, dtype=np.uint64)
        self.at: list[Any] = []  # where in the concatenated codes an aligned interior pointer is ...
        self.values: list[Any] = []  # ... and its value

    def heads(self, words: Any, owners: Any, offsets: Any, counts: Any, bases: Any) -> None:
        """What the blocks whose start this batch holds admit (ADMITS_* bits)."""
        head = (counts >= 1) & (bases == self.heap.starts[owners])  # a block's first piece, at its (aligned) start
        if not bool(head.any()):
            return
        blocks, at, n = owners[head], offsets[head], counts[head]
        w0 = words[at]
        two = n >= 2
        w1 = np.where(two, words[np.minimum(at + 1, len(words) - 1)], 0)
        size = self.usizes[blocks]
        bits = np.zeros(len(blocks), np.uint8)
        if self.h.on(hx.STDSTRING):
            string = two & ((np.uint64(hx.STRING_HEADER + 1) + w1) == size) & (w0 <= w1)
            bits |= string.astype(np.uint8) * np.uint8(hx.ADMITS_STDSTRING)
        counted = (w0 > 0) & (size > np.uint64(hx.WORD))
        rest = size - np.uint64(hx.WORD)
        if self.h.on(hx.LENGTH64):
            bits |= (counted & (rest == w0)).astype(np.uint8) * np.uint8(hx.ADMITS_LENGTH64)
        if self.h.on(hx.NEWARRAY):
            divides = counted & (rest % np.where(w0 > 0, w0, 1) == 0)
            bits |= divides.astype(np.uint8) * np.uint8(hx.ADMITS_NEWARRAY)
        if self.h.on(hx.MULTIPLE):
            bits |= self._vtables(w0).astype(np.uint8) * np.uint8(hx.ADMITS_MULTIPLE)
        self.admits[blocks] = bits

    def _vtables(self, values: Any) -> Any:
        """Which values are vtable addresses: the plausible ones (aligned, above page 0, in a readable file mapping:
        found in one step) are tested one distinct value at a time."""
        found = np.zeros(len(values), bool)
        if not len(self.readable_starts):
            return found
        i = np.searchsorted(self.readable_starts, values, side="right") - 1
        inside = (i >= 0) & (values < self.readable_ends[np.maximum(i, 0)])
        plausible = inside & (values % np.uint64(hx.WORD) == 0) & (values >= np.uint64(hx.PAGE))
        if not bool(plausible.any()):
            return found
        distinct = np.unique(values[plausible])
        tables = {v for v in distinct.tolist() if self.h.is_vtable(v, self.memory)}
        if tables:
            found[plausible] = np.isin(values[plausible], np.fromiter(tables, np.uint64, len(tables)))
        return found

    def note(self, base: int, code: Any, values: Any) -> None:
        """Remember this batch's aligned interior pointers (its codes land at `base` on in the concatenation)."""
        pick = (code < 0) & (values % np.uint64(hx.WORD) == 0)
        if bool(pick.any()):
            self.at.append(base + np.flatnonzero(pick))
            self.values.append(values[pick])

    def judge(self, blocks: Any, values: Any) -> Any:
        """The heuristic code accepting each interior pointer (uint64 `values` into `blocks`; 0: none)."""
        codes = np.zeros(len(blocks), np.uint8)
        if not len(blocks):
            return codes
        offset = values - self.heap.ustarts[blocks]
        admits = self.admits[blocks]
        string = (offset == np.uint64(hx.STRING_HEADER)) & (admits & hx.ADMITS_STDSTRING > 0)
        codes[string] = hx.STDSTRING
        second = offset == np.uint64(hx.WORD)
        codes[(codes == 0) & second & (admits & hx.ADMITS_LENGTH64 > 0)] = hx.LENGTH64
        codes[(codes == 0) & second & (admits & hx.ADMITS_NEWARRAY > 0)] = hx.NEWARRAY
        inside = offset + np.uint64(hx.WORD) <= self.usizes[blocks]
        for k in np.flatnonzero((codes == 0) & (admits & hx.ADMITS_MULTIPLE > 0) & inside).tolist():
            data = self._word(int(values[k]))
            if len(data) == hx.WORD and self.h.is_vtable(int.from_bytes(data, "little"), self.memory):
                codes[k] = hx.MULTIPLE
        return codes

    def _word(self, address: int) -> bytes:
        """The word at `address`, inside a block: read as spans are (a plain read may keep the heap's whole mapping
        in GDB's memory), after the scan is done with its spans."""
        read = getattr(self.memory, "read_span", None)
        if read is None:
            return rb._read(self.memory, address, hx.WORD)
        try:
            return bytes(read(address, hx.WORD))
        except Exception:  # as rb._read: a broken reader must not stop a leak check
            return b""

    def edges(self, dst: Any) -> Any:
        """Judge the noted pointers between blocks: those accepted become start pointers in `dst` (in place).
        Returns the code per edge (uint8, aligned with dst), or None when nothing was accepted."""
        if not self.at:
            return None
        at, values = np.concatenate(self.at), np.concatenate(self.values)
        self.at, self.values = [], []
        codes = self.judge(~dst[at], values)
        hit = codes > 0
        if not bool(hit.any()):
            return None
        accepted_by = np.zeros(len(dst), np.uint8)
        accepted_by[at[hit]] = codes[hit]
        dst[at[hit]] = ~dst[at[hit]]
        return accepted_by

    def roots(self, code: Any, values: Any) -> _RootHits:
        """Judge the roots' interior pointers (codes into the blocks, in place: accepted ones become start
        pointers) and say what the roots did to each block, for the attribution."""
        interior = np.flatnonzero(code < 0)
        aligned = interior[values[interior] % np.uint64(hx.WORD) == 0]
        codes = self.judge(~code[aligned], values[aligned])
        accepted = aligned[codes > 0]
        hits = _RootHits(code[code >= 0], ~code[np.setdiff1d(interior, accepted)])
        for block, used in zip((~code[accepted]).tolist(), codes[codes > 0].tolist()):
            hits.accepted[block] = min(used, hits.accepted.get(block, used))
        code[accepted] = ~code[accepted]
        return hits


class _RootHits:
    """heuristics.RootHits as arrays (block indices, repeats allowed): a million root words cost no set."""

    def __init__(self, starts: Any, rejected: Any) -> None:
        self.starts, self.rejected = starts, rejected
        self.accepted: dict[int, int] = {}


def _attribute(st: Any, first: Any, dst: Any, accepted_by: Any, roots: _RootHits, starts: Any) -> dict[int, str]:
    """Block start -> the heuristic it counts under after phase 1 (as reachability._attribute decides it)."""
    n = len(st)
    candidate = np.zeros(n, bool)
    candidate[list(roots.accepted)] = True
    if accepted_by is not None:
        candidate[dst[accepted_by > 0]] = True
    if not bool(candidate.any()):
        return {}
    definite = np.full(n, hx.UNSET, np.uint8)
    possible = np.full(n, hx.UNSET, np.uint8)
    started = np.zeros(n, bool)
    rejected = np.zeros(n, bool)
    for block, used in roots.accepted.items():
        definite[block] = used
    started[roots.starts] = True
    rejected[roots.rejected] = True
    source = np.repeat(np.arange(n), np.diff(first))
    kind = st[source]
    target = _unsign(dst)
    scanned = ((kind == REACHABLE) | (kind == POSSIBLE)) & candidate[target]
    code = accepted_by if accepted_by is not None else np.zeros(len(dst), np.uint8)
    rejected[target[scanned & (dst < 0)]] = True
    started[target[scanned & (dst >= 0) & (code == 0)]] = True
    by_reachable = scanned & (code > 0) & (kind == REACHABLE)
    np.minimum.at(definite, target[by_reachable], code[by_reachable])
    by_possible = scanned & (code > 0) & (kind == POSSIBLE)
    np.minimum.at(possible, target[by_possible], code[by_possible])
    reachable = candidate & (st == REACHABLE) & (definite != hx.UNSET) & ~started
    lost = candidate & (st == POSSIBLE) & (possible != hx.UNSET) & ~rejected
    chosen = np.where(reachable, definite, np.where(lost, possible, 0))
    picked = np.flatnonzero(chosen)
    return {int(starts[i]): hx.name(int(chosen[i])) for i in picked}


def _ints(values: Any) -> memoryview:
    """An int64 array's items as Python ints, without a copy (the loops of thin steps index it item by item)."""
    return np.ascontiguousarray(values, dtype=np.int64).data.cast("B").cast("q")


def _targets_of(sources: Any, first: Any, dst: Any, chunk: int = 1 << 16) -> Iterator[Any]:
    """The blocks every edge out of the `sources` blocks (a mask) points at, a slice of blocks at a time: the edges
    are picked by a byte mask, so no array of a million 8-byte edge indices is ever made (this step was the peak of
    GDB's memory at a million blocks)."""
    for a in range(0, len(sources), chunk):
        b = min(a + chunk, len(sources))
        lo, hi = int(first[a]), int(first[b])
        if lo == hi:
            continue
        picked = np.repeat(sources[a:b], np.diff(first[a:b + 1]))
        yield _unsign(dst[lo:hi][picked])


def _unsign(codes: Any) -> Any:
    """Block indices of edge codes (i for a start pointer, ~i for an interior one)."""
    return np.where(codes < 0, ~codes, codes)


def _edge_index(first: Any, nodes: Any) -> Any:
    """Indices into dst of every edge out of `nodes`, in one gather."""
    lo = first[nodes]
    counts = first[nodes + 1] - lo
    total = int(counts.sum())
    if not total:
        return np.zeros(0, np.int64)
    return np.repeat(lo - (np.cumsum(counts) - counts), counts) + np.arange(total)


class _Graph:
    """The CSR edges as numpy arrays (wide steps) and as arrays of the array module (thin steps), and the states."""

    def __init__(self, st: Any, state: bytearray, first_np: Any, dst_np: Any, first: memoryview,
                 dst: memoryview) -> None:
        self.st, self.state, self.first_np, self.dst_np, self.first, self.dst = st, state, first_np, dst_np, first, dst
        self._stamp: Any = None

    def closure(self, seeds: Any, start_only: bool, mark: int) -> None:
        """Mark with `mark` every block reached from `seeds` (already marked): through start pointers only, or
        through any pointer to an UNREACHED block."""
        frontier: Any = seeds
        while len(frontier):
            if len(frontier) >= WIDE:
                frontier = self._wide(frontier, start_only, mark)
            else:
                frontier = self._thin(frontier.tolist() if isinstance(frontier, np.ndarray) else frontier,
                                      start_only, mark)

    def forest(self) -> tuple[Any, Any] | None:
        """Phase 2 when the pointers among the unreached blocks form a forest (each is pointed at by at most one
        other, no cycle: lists, trees): (indirect blocks, their leaders), each leader the root of its tree.
        None otherwise (the caller runs reachability's `_cliques`, whose outcome then depends on address order).

        Why this equals `_cliques` on a forest: a root is pointed at by no unreached block, so no walk reaches it
        and it stays a leader. Walking from a root r, the first already-indirect block on the path to any
        descendant belongs to a clique led by an ancestor on that path, still unreached when r's walk passes it,
        so r absorbs that clique; thus every descendant ends in r's clique."""
        st, first_np, dst_np = self.st, self.first_np, self.dst_np
        unreached = st == UNREACHED
        nodes = np.flatnonzero(unreached & (first_np[1:] > first_np[:-1]))
        if not len(nodes):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        index = _edge_index(first_np, nodes)
        src = np.repeat(nodes, first_np[nodes + 1] - first_np[nodes])
        dst = _unsign(dst_np[index])
        keep = unreached[dst] & (dst != src)
        src, dst = src[keep], dst[keep]
        if not len(src):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        n = len(st)
        parent = np.full(n, n, np.int64)
        np.minimum.at(parent, dst, src)
        highest = np.full(n, -1, np.int64)
        np.maximum.at(highest, dst, src)
        if bool(np.any(parent[dst] != highest[dst])):
            return None  # a block pointed at by two unreached blocks
        parent[parent == n] = -1
        lost = self._distinct(dst)
        label = np.full(n, -1, np.int64)
        roots = self._distinct(src[parent[src] < 0])
        label[roots] = roots
        frontier = roots
        while len(frontier):  # labels flow down one generation per step (a thin list in a loop of its own)
            if len(frontier) < WIDE:
                self._label_thin(frontier.tolist(), label, parent)
                break
            children = self.dst_np[_edge_index(first_np, frontier)]
            owners = np.repeat(frontier, first_np[frontier + 1] - first_np[frontier])
            children = _unsign(children)
            take = (label[children] < 0) & (parent[children] == owners)
            children, owners = children[take], owners[take]
            label[children] = label[owners]
            frontier = children
        heads = label[lost]
        if bool(np.any(heads < 0)):
            return None  # a cycle: some block has a parent but no root above it
        return lost, heads

    def _label_thin(self, roots: list[int], label: Any, parent: Any) -> None:
        """The rest of the labelling depth first, on lists (a long list costs a loop step per node, no numpy call)."""
        first, dst = self.first, self.dst
        parents, labels = parent.tolist(), label.tolist()
        for r in roots:
            own = labels[r]
            todo = [r]
            while todo:
                s = todo.pop()
                for t in dst[first[s]:first[s + 1]]:
                    if t < 0:
                        t = ~t
                    if parents[t] == s and labels[t] < 0:
                        labels[t] = own
                        todo.append(t)
        label[:] = labels

    def _wide(self, frontier: Any, start_only: bool, mark: int) -> Any:
        return self._mark(self.dst_np[_edge_index(self.first_np, np.asarray(frontier, dtype=np.int64))], start_only,
                          mark)

    def _mark(self, codes: Any, start_only: bool, mark: int) -> Any:
        """Mark the blocks these edges newly reach (start pointers to non-REACHABLE blocks, or any pointer to an
        UNREACHED block); return them, each once."""
        if start_only:
            targets = codes[codes >= 0]
            targets = targets[self.st[targets] != REACHABLE]
        else:
            targets = _unsign(codes)
            targets = targets[self.st[targets] == UNREACHED]
        targets = self._distinct(targets)
        self.st[targets] = mark
        return targets

    def _distinct(self, values: Any) -> Any:
        """`values` without repeats (in no particular order), without sorting: each position writes itself into a
        scratch slot of its value, and the one position whose write stayed keeps the value."""
        if self._stamp is None:
            self._stamp = np.empty(len(self.st), np.int32 if len(self.st) < 1 << 31 else np.int64)
        positions = np.arange(len(values))
        self._stamp[values] = positions
        return values[self._stamp[values] == positions]

    def _thin(self, stack: list[int], start_only: bool, mark: int) -> list[int] | Any:
        """Depth first until the stack grows wide (returned for a numpy step) or empties."""
        state, first, dst = self.state, self.first, self.dst
        push = stack.append
        while stack:
            s = stack.pop()
            a, b = first[s], first[s + 1]
            if a == b:
                continue
            if b - a >= WIDE:  # one block holding many pointers (an array of them): its edges in one numpy step
                marked = self._mark(self.dst_np[a:b], start_only, mark)
                if len(marked) >= WIDE:  # the next step is wide: handed on as an array, not a list of Python ints
                    return np.concatenate((np.asarray(stack, dtype=np.int64), marked)) if stack else marked
                stack.extend(marked.tolist())
            elif start_only:
                for t in dst[a:b]:
                    if t >= 0 and state[t] != REACHABLE:
                        state[t] = REACHABLE
                        push(t)
            else:
                for t in dst[a:b]:
                    if t < 0:
                        t = ~t
                    if state[t] == UNREACHED:
                        state[t] = mark
                        push(t)
            if len(stack) >= WIDE:
                return stack
        return stack


def _batches(memory: Memory, reader: rb._Reader, heap: _Heap, ws: int) -> Iterator[Batch]:
    """The scanned words of every block, in address order, as batches of parts (one part per block, or per piece of
    a block larger than PIECE_BYTES)."""
    span_read = getattr(memory, "read_span", None)
    piece = rb.PIECE_BYTES
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
        limit = rb.BATCH_BYTES
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


def _read_batch(span_read: Any, reader: rb._Reader, owners: Any, begins: Any, wants: Any, ws: int) -> Batch:
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
    buf, owner_list, lengths, bases = reader._batch(begins.tolist(), wants.tolist(), owners.tolist())
    counts = np.array(lengths, dtype=np.int64) // ws
    offsets = np.zeros(len(counts), np.int64)
    if len(counts) > 1:
        np.cumsum(counts[:-1], out=offsets[1:])
    return buf, np.array(owner_list, dtype=np.int64), offsets, counts, np.array(bases, dtype=np.int64)
