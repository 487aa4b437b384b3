"""Leak classification of live heap blocks, the way valgrind memcheck's leak checker (mc_leakcheck.c) does it.

Phase 1 floods from the roots (thread registers and root memory regions): a start pointer found in a root or in a
Reachable block makes its target Reachable; an interior pointer, or any pointer found in a Possible block, makes an
Unreached target Possible; a block is scanned again whenever its state rises. Phase 2 takes every block still
Unreached, in address order, as a clique leader ("definitely lost") and marks the Unreached blocks it reaches through
any pointer as indirectly lost through it; an earlier leader reached from a later one joins the later clique with
all its members, as valgrind merges cliques.

valgrind's leak-check heuristics (core/heuristics.py; `heuristics`, default none here, all from GDB as valgrind's
default) turn an interior pointer a heuristic accepts into a start pointer before phase 1: the pointers between
blocks are judged once the blocks are all read (what a block admits needs its first words), the roots as they are
resolved; after phase 1 each block reached that way is attributed the heuristic ("of which reachable via
heuristic").

Deviations from valgrind: no definedness bits (an uninitialised word that happens to hold a heap address still
counts), and a block larger than `max_block_scan` bytes is scanned only up to that bound.

Two implementations give equal results (the unit tests run both): pure.py (pure Python, no numpy) and numpy_scan.py
(vectorised, for a million blocks), chosen by backend.py. What both use is public in shared.py (inputs, outputs, the
reader, phase 2) and states.py (block states, KindArray); each scan keeps its own helpers (words.py for the pure one,
numpy_heap.py, numpy_graph.py, numpy_heuristics.py for the numpy one).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

from .. import heuristics as hx
from . import backend
from .backend import numpy_backend, numpy_problem
from .pure import referrers, scan_python
from .shared import DEFAULT_MAX_BLOCK_SCAN, Memory, Referrer, RootRegion, ScanResult, SpanMemory
from .states import KIND_OF_STATE, KindArray

__all__ = ["DEFAULT_MAX_BLOCK_SCAN", "KIND_OF_STATE", "KindArray", "Memory", "Referrer", "RootRegion", "ScanResult",
           "SpanMemory", "backend", "numpy_backend", "numpy_problem", "referrers", "scan", "scan_python"]


def scan(blocks: Mapping[int, int], memory: Memory, roots: Iterable[RootRegion], registers: Iterable[int] = (),
         word_size: int = 8, max_block_scan: int = DEFAULT_MAX_BLOCK_SCAN, watch: int | None = None,
         limit: int = 100, prepared: Any = None, heuristics: hx.Heuristics | None = None) -> ScanResult:
    """Classify every block of `blocks` (address -> requested size) as valgrind's leak check would. With `watch`
    (the start of one of the blocks), also list up to `limit` words pointing into it, in the same pass
    (`memleak block`): root words first, in the order given, then words of other blocks in address order.
    `heuristics`: valgrind's leak-check heuristics to apply (None: none; 8-byte words only).

    Runs vectorised (numpy_scan.py) when numpy is importable, else in pure Python; the results are equal.
    `prepared`: numpy_scan.Blocks.of(blocks), when the caller has built it already."""
    if word_size not in (4, 8):
        raise ValueError(f"unsupported word size {word_size}")
    if heuristics is not None and (not heuristics.any or word_size != hx.WORD):
        heuristics = None
    if backend.BACKEND != "python":
        fast, why = numpy_backend()
        if fast is None and backend.BACKEND == "numpy":
            raise RuntimeError(why or "numpy is not installed")
        arrays = (prepared if prepared is not None else fast.Blocks.of(blocks)) if fast is not None else None
        if arrays is not None:
            return cast(ScanResult, fast.scan(blocks, arrays, memory, roots, registers, word_size, max_block_scan,
                                              watch, limit, heuristics))
    return scan_python(blocks, memory, roots, registers, word_size, max_block_scan, watch, limit, heuristics)

