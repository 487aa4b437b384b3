"""The numpy scan's graph: the pointers between blocks as CSR arrays, the closures of phase 1 and phase 2 on a
forest, each step in numpy when the frontier is wide and in a plain loop when it is thin."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .states import REACHABLE, UNREACHED

WIDE = 512  # a closure frontier at least this wide is expanded in numpy, a thinner one in a Python loop


def ints(values: Any) -> memoryview:
    """An int64 array's items as Python ints, without a copy (the loops of thin steps index it item by item)."""
    return np.ascontiguousarray(values, dtype=np.int64).data.cast("B").cast("q")


def targets_of(sources: Any, first: Any, dst: Any, chunk: int = 1 << 16) -> Iterator[Any]:
    """The blocks every edge out of the `sources` blocks (a mask) points at, a slice of blocks at a time: the edges
    are picked by a byte mask, so no array of a million 8-byte edge indices is ever made (this step was the peak of
    GDB's memory at a million blocks)."""
    for a in range(0, len(sources), chunk):
        b = min(a + chunk, len(sources))
        lo, hi = int(first[a]), int(first[b])
        if lo == hi:
            continue
        picked = np.repeat(sources[a:b], np.diff(first[a:b + 1]))
        yield unsign(dst[lo:hi][picked])


def unsign(codes: Any) -> Any:
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


class Graph:
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
        None otherwise (the caller runs shared.cliques, whose outcome then depends on address order).

        Why this equals `cliques` on a forest: a root is pointed at by no unreached block, so no walk reaches it
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
        dst = unsign(dst_np[index])
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
        lost = self.distinct(dst)
        label = np.full(n, -1, np.int64)
        roots = self.distinct(src[parent[src] < 0])
        label[roots] = roots
        frontier = roots
        while len(frontier):  # labels flow down one generation per step (a thin list in a loop of its own)
            if len(frontier) < WIDE:
                self._label_thin(frontier.tolist(), label, parent)
                break
            children = self.dst_np[_edge_index(first_np, frontier)]
            owners = np.repeat(frontier, first_np[frontier + 1] - first_np[frontier])
            children = unsign(children)
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
            targets = unsign(codes)
            targets = targets[self.st[targets] == UNREACHED]
        targets = self.distinct(targets)
        self.st[targets] = mark
        return targets

    def distinct(self, values: Any) -> Any:
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

