"""valgrind's leak-check heuristics (core/heuristics.py) on the numpy scan's arrays."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import heuristics as hx
from .numpy_graph import unsign
from .numpy_heap import Heap
from .shared import Memory
from .states import POSSIBLE, REACHABLE


class Judge:
    """core/heuristics.py's tests on arrays: what each block admits, found from its first words as its batch is
    read; the interior pointers between blocks, judged once every block is read; the roots' as they are resolved.
    The multipleinheritance test reads the word each candidate pointer points at (few: pointers into blocks whose
    first word is a vtable address), and tests vtable addresses once each (core/heuristics.py caches them)."""

    def __init__(self, heuristics: hx.Heuristics, memory: Memory, heap: Heap) -> None:
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
            return hx.read_or_nothing(self.memory, address, hx.WORD)
        try:
            return bytes(read(address, hx.WORD))
        except Exception:  # as hx.read_or_nothing: a broken reader must not stop a leak check
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


def attribute(st: Any, first: Any, dst: Any, accepted_by: Any, roots: _RootHits, starts: Any) -> dict[int, str]:
    """Block start -> the heuristic it counts under after phase 1 (as pure._attribute decides it)."""
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
    target = unsign(dst)
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

