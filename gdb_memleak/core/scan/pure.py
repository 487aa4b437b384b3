"""The reachability scan in pure Python (no numpy): valgrind's two phases (see the package's docstring) over the
pointers found between blocks, and `referrers`, who points at a range.

Built for a million blocks read out of a stopped process. Every block is read exactly once, one read per block, in
address order (friendly to a caching Memory); the words of many small blocks are joined and searched at once by
C-level operations (re.finditer / bytes.find on the high half of heap addresses, memoryview casts, mapped dict and
bisect look-ups), so Python runs per pointer found, not per word. The pointers found between heap blocks are kept
(8 bytes each) and both phases walk that record instead of reading memory again.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from itertools import accumulate, compress, count, repeat
from operator import floordiv, is_, is_not, lt, setitem
from typing import cast

from .. import heuristics as hx
from .shared import DEFAULT_MAX_BLOCK_SCAN, Counters, Memory, Reader, Referrer, RootRegion, ScanResult, cliques
from .states import KIND_OF_STATE, POSSIBLE, REACHABLE, UNREACHED
from .words import Finder, Layout, heap_finder


def scan_python(blocks: Mapping[int, int], memory: Memory, roots: Iterable[RootRegion], registers: Iterable[int] = (),
                word_size: int = 8, max_block_scan: int = DEFAULT_MAX_BLOCK_SCAN, watch: int | None = None,
                limit: int = 100, heuristics: hx.Heuristics | None = None) -> ScanResult:
    """scan() in pure Python, without numpy."""
    layout = Layout(blocks, word_size, max_block_scan)
    if not layout.starts:
        return ScanResult({}, {}, 0, 0)
    if heuristics is not None and (not heuristics.any or word_size != hx.WORD):
        heuristics = None
    root_refs: list[Referrer] = []
    block_refs: list[Referrer] = []
    counters = Counters()
    reader = Reader(memory, word_size, counters)
    finder = heap_finder(layout)
    starts, sizes = layout.starts, layout.sizes
    n = len(starts)
    index = dict(zip(starts, count()))
    watched = index.get(watch) if watch is not None else None
    watch_start = watch if watch is not None and watched is not None else 0
    watch_end = watch_start + max(blocks[watch_start], 1) if watched is not None else 0

    def resolve(values: list[int]) -> list[int | None]:
        """Block index of each value: i for a start pointer, ~i for an interior one, None for no block."""
        targets = list(map(index.get, values))
        if None in targets:
            for p in compress(count(), map(is_, targets, repeat(None))):
                v = values[p]
                i = bisect_right(starts, v) - 1
                if i >= 0 and v - starts[i] < sizes[i]:
                    targets[p] = ~i
        return targets

    # Read every block once: the pointers between blocks, by source, as CSR (first[i]:first[i+1] into dst).
    dst = array("q")
    degree = array("q", bytes(8 * (n + 1)))
    sources: list[int] = []  # the blocks holding pointers to blocks, ascending
    ws = word_size
    judge = hx.Judge(heuristics, memory, starts, sizes) if heuristics is not None else None
    interior_at: list[int] = []  # where in dst an interior pointer is (judged once every block is read) ...
    interior_values: list[int] = []  # ... and its value
    for buf, owners, lengths, bases in reader.blocks(layout):
        words, found = finder.find(buf)
        if not found:
            continue
        values = list(map(words.__getitem__, found))
        targets = resolve(values)
        keep = list(map(is_not, targets, repeat(None)))
        if not all(keep):
            targets = list(compress(targets, keep))
            found = list(compress(found, keep))
            if judge is not None:  # the words themselves serve only the heuristics
                values = list(compress(values, keep))
        if not targets:
            continue
        if judge is not None:
            interior = list(map(lt, cast("list[int]", targets), repeat(0)))
            interior_at.extend(compress(count(len(dst)), interior))
            interior_values.extend(compress(values, interior))
        if watched is not None and (watched in targets or ~watched in targets):
            _watch_blocks(block_refs, limit, watched, watch_start, words, found, targets, owners, lengths, bases,
                          starts, ws)
        word_offsets = list(accumulate(map(floordiv, lengths, repeat(ws)), initial=0))
        owner_at = [-1, *owners]  # bisect_right over word_offsets gives 1 + the index of the part holding a word
        edges = Counter(map(owner_at.__getitem__, map(bisect_right, repeat(word_offsets), found)))
        if len(owners) > 1:  # each of these blocks is wholly in this batch
            sources.extend(edges)
            deque(map(setitem, repeat(degree), edges.keys(), edges.values()), 0)  # degree[src] = n, in C
        else:  # maybe one piece of a large block: add up
            for src, count_ in edges.items():
                if not degree[src]:
                    sources.append(src)
                degree[src] += count_
        dst.extend(cast("list[int]", targets))  # the None targets were dropped above
    has_edges = bytes(map(bool, degree))
    first = array("q", accumulate(degree, initial=0))
    del degree
    # Interior pointers a heuristic accepts become start pointers; `accepted_by` keeps which heuristic, per edge.
    accepted_by: bytearray | None = None
    if judge is not None:
        for k, value in zip(interior_at, interior_values):
            code = judge.decide(~dst[k], value)
            if code:
                if accepted_by is None:
                    accepted_by = bytearray(len(dst))
                dst[k] = ~dst[k]
                accepted_by[k] = code
    del interior_at, interior_values
    root_hits = hx.RootHits()

    # Phase 1: the roots (definite), then whatever they reach. A block is pushed each time its state rises (at most
    # twice); when popped it is walked with the state it has then, as valgrind's is_prior_definite.
    state = bytearray(n)
    stack: list[int] = []
    push = stack.append

    def mark_roots(values: list[int]) -> None:
        targets = list(map(index.get, values))  # in memory order, not deduplicated first: kinder to the dict's cache
        starts_hit = cast("list[int]", list(compress(targets, map(is_not, targets, repeat(None)))))
        if judge is not None:
            root_hits.starts.update(starts_hit)
        for t in starts_hit:  # start pointers
            if state[t] != REACHABLE:
                state[t] = REACHABLE
                push(t)
        if None in targets:
            others = list(compress(values, map(is_, targets, repeat(None))))
            for value, hit in zip(others, resolve(others)):
                if hit is None:
                    continue
                if judge is not None:  # an interior pointer a heuristic accepts counts as a start pointer
                    code = judge.decide(~hit, value)
                    if code:
                        root_hits.accept(~hit, code)
                        if state[~hit] != REACHABLE:
                            state[~hit] = REACHABLE
                            push(~hit)
                        continue
                    root_hits.rejected.add(~hit)
                if not state[~hit]:  # an interior pointer
                    state[~hit] = POSSIBLE
                    push(~hit)

    mark_roots([int(r) & ((1 << (8 * ws)) - 1) for r in registers])
    for region in roots:
        for buf, address in reader.region(region.start, region.end):
            words, found = finder.find(buf)
            if found:
                values = list(map(words.__getitem__, found))
                mark_roots(values)
                if watched is not None and len(root_refs) < limit:
                    root_refs.extend(Referrer(address + k * ws, v, v != watch_start, None, region.label)
                                     for k, v in zip(found, values) if watch_start <= v < watch_end)
    while stack:
        s = stack.pop()
        if not has_edges[s]:
            continue
        if state[s] == REACHABLE:
            for t in dst[first[s]:first[s + 1]]:
                if t >= 0:
                    if state[t] != REACHABLE:
                        state[t] = REACHABLE
                        push(t)
                elif state[~t] == UNREACHED:
                    state[~t] = POSSIBLE
                    push(~t)
        else:
            for t in dst[first[s]:first[s + 1]]:
                if t < 0:
                    t = ~t
                if state[t] == UNREACHED:
                    state[t] = POSSIBLE
                    push(t)

    attributed = _attribute(state, sources, first, dst, accepted_by, root_hits) if judge is not None else {}

    # Phase 2: cliques among the blocks still unreached.
    members = cliques(sources, state, first, dst, has_edges)
    kinds = {a: KIND_OF_STATE[st] for a, st in zip(starts, state)}
    leader = {starts[m]: starts[head] for head, lost in members.items() for m in lost}
    return ScanResult(kinds, leader, counters.scanned, counters.unreadable, (root_refs + block_refs)[:limit],
                      {starts[i]: hx.name(code) for i, code in sorted(attributed.items())})


def _attribute(state: bytearray, sources: list[int], first: Sequence[int], dst: Sequence[int],
               accepted_by: bytearray | None, roots: hx.RootHits) -> dict[int, int]:
    """Block index -> the heuristic code it counts under after phase 1 (core/heuristics.py says when). Walks the
    pointers out of the reachable and possibly lost blocks once, only when some pointer was accepted."""
    candidates = set(roots.accepted)
    if accepted_by is not None:
        candidates.update(dst[k] for k in compress(count(), accepted_by))
    if not candidates:
        return {}
    started = roots.starts & candidates  # a start pointer from a root or a scanned block
    rejected = roots.rejected & candidates  # an interior pointer no heuristic accepted, from the same
    definite = dict(roots.accepted)  # the lowest code accepting a pointer from a root or a reachable block
    possible: dict[int, int] = {}  # ... from a possibly lost block
    flags = accepted_by if accepted_by is not None else bytes(len(dst))
    for s in sources:
        kind = state[s]
        if kind != REACHABLE and kind != POSSIBLE:
            continue
        best = definite if kind == REACHABLE else possible
        a, b = first[s], first[s + 1]
        for t, code in zip(dst[a:b], flags[a:b]):
            if t < 0:
                if ~t in candidates:
                    rejected.add(~t)
            elif t in candidates:
                if not code:
                    started.add(t)
                elif code < best.get(t, hx.UNSET):
                    best[t] = code
    chosen = {}
    for t in candidates:
        if state[t] == REACHABLE and t in definite and t not in started:
            chosen[t] = definite[t]
        elif state[t] == POSSIBLE and t in possible and t not in rejected:
            chosen[t] = possible[t]
    return chosen


def _watch_blocks(refs: list[Referrer], limit: int, watched: int, watch: int, words: Sequence[int],
                  found: list[int], targets: list, owners: list[int], lengths: list[int], bases: Sequence[int],
                  starts: list[int], ws: int) -> None:
    """The words of a batch of blocks that point into block `watched` (not its own words)."""
    offsets = list(accumulate(lengths, initial=0))
    for k, t in zip(found, targets):
        if len(refs) >= limit:
            return
        if t != watched and t != ~watched:
            continue
        pos = k * ws
        j = bisect_right(offsets, pos) - 1
        holder = starts[owners[j]]
        if holder != watch:
            pointer = words[k]
            refs.append(Referrer(bases[j] + pos - offsets[j], pointer, pointer != watch, holder, None))


# -- referrers ------------------------------------------------------------------------------------------------------
def referrers(target: int, size: int, blocks: Mapping[int, int], memory: Memory, roots: Iterable[RootRegion],
              word_size: int = 8, limit: int = 100) -> list[Referrer]:
    """Who points at [target, target+size): root words and words inside other live blocks (for `memleak block`).

    A size of 0 looks for pointers to `target` itself. Roots come first, in the order given, then blocks in address
    order; the block starting at `target` is not searched (its own words do not keep it alive).
    """
    found: list[Referrer] = []
    if limit <= 0:
        return found
    ws = word_size
    layout = Layout(blocks, word_size, DEFAULT_MAX_BLOCK_SCAN)
    finder = Finder(target, target + max(size, 1), word_size)
    reader = Reader(memory, word_size, Counters())
    starts = layout.starts

    for region in roots:
        for buf, address in reader.region(region.start, region.end):
            words, hits = finder.find(buf)
            for k in hits:
                pointer = words[k]
                found.append(Referrer(address + k * ws, pointer, pointer != target, None, region.label))
                if len(found) >= limit:
                    return found
    for buf, owners, lengths, bases in reader.blocks(layout):
        words, hits = finder.find(buf)
        if not hits:
            continue
        offsets = list(accumulate(lengths, initial=0))
        for k in hits:
            pos = k * ws
            j = bisect_right(offsets, pos) - 1
            block = starts[owners[j]]
            if block == target:
                continue
            pointer = words[k]
            found.append(Referrer(bases[j] + pos - offsets[j], pointer, pointer != target, block, None))
            if len(found) >= limit:
                return found
    return found

