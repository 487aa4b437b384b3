"""Leak classification of live heap blocks, the way valgrind memcheck's leak checker (mc_leakcheck.c) does it.

Phase 1 floods from the roots (thread registers and root memory regions): a start pointer found in a root or in a
Reachable block makes its target Reachable; an interior pointer, or any pointer found in a Possible block, makes an
Unreached target Possible; a block is scanned again whenever its state rises. Phase 2 takes every block still
Unreached, in address order, as a clique leader ("definitely lost") and marks the Unreached blocks it reaches through
any pointer as indirectly lost through it; an earlier leader reached from a later one joins the later clique with
all its members, as valgrind merges cliques.

Built for a million blocks read out of a stopped process. Every block is read exactly once, one read per block, in
address order (friendly to a caching Memory); the words of many small blocks are joined and searched at once by
C-level operations (re.finditer / bytes.find on the high half of heap addresses, memoryview casts, mapped dict and
bisect look-ups), so Python runs per pointer found, not per word. The pointers found between heap blocks are kept
(8 bytes each) and both phases walk that record instead of reading memory again.

valgrind's leak-check heuristics (core/heuristics.py; `heuristics`, default none here, all from GDB as valgrind's
default) turn an interior pointer a heuristic accepts into a start pointer before phase 1: the pointers between
blocks are judged once the blocks are all read (what a block admits needs its first words), the roots as they are
resolved; after phase 1 each block reached that way is attributed the heuristic ("of which reachable via
heuristic").

Deviations from valgrind: no definedness bits (an uninitialised word that happens to hold a heap address still
counts), and a block larger than `max_block_scan` bytes is scanned only up to that bound.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from array import array
from bisect import bisect_left, bisect_right
from collections import Counter, deque
from collections.abc import ItemsView, Iterable, Iterator, Mapping, Sequence, ValuesView
from dataclasses import dataclass, field
from itertools import accumulate, compress, count, repeat
from operator import add, and_, floordiv, is_, is_not, lt, setitem
from typing import Any, Literal, Protocol, cast

from .. import heuristics as hx
from ..kinds import KINDS, LeakKind

DEFAULT_MAX_BLOCK_SCAN = 64 << 20
PIECE_BYTES = 1 << 20  # one read covers at most this much of a root region or of a large block
BATCH_BYTES = 1 << 20  # the contents of consecutive small blocks are joined up to about this size, then searched
MAX_PREFIXES = 16  # heap addresses with more distinct high halves than this: search words one by one instead
DENSE = 5  # when more than one word in DENSE may point into the heap, search words one by one

_match_start = re.Match.start
WordFormat = Literal["I", "Q", "L"]  # array/memoryview codes of an unsigned word

UNREACHED, POSSIBLE, REACHABLE, INDIRECT = 0, 1, 2, 3  # phase 1 only raises a state: UNREACHED < POSSIBLE < REACHABLE


KIND_OF_STATE = (LeakKind.DEFINITE, LeakKind.POSSIBLE, LeakKind.REACHABLE, LeakKind.INDIRECT)


class Memory(Protocol):
    def read(self, address: int, size: int) -> bytes:
        """Up to `size` bytes at `address`: fewer (b"" when unreadable) rather than an exception."""
        ...


class SpanMemory(Memory, Protocol):
    """A Memory that can also read a span of many adjacent blocks at once (optional: the numpy scan uses it when
    present; a span that comes back short is read again block by block)."""

    def read_span(self, address: int, size: int) -> bytes | memoryview:
        """Up to `size` bytes at `address` (a view will do); a short answer means: read these blocks one by one."""
        ...


# -- which implementation ----------------------------------------------------------------------------------------
BACKEND = "auto"  # "auto": numpy when usable (core/fastscan.py), else pure Python; "python"; "numpy" (tests)
_backend: tuple[Any, str | None] | None = None


PURE_SCAN = "the reachability scan runs in pure Python (slower on large heaps)"


def numpy_problem() -> str | None:
    """Why the numpy scan cannot run, found without importing numpy (cheap enough for load time): numpy (a
    dependency) is missing from this Python, or is a compiled build for another Python version. GDB embeds the
    system Python, which may not be the virtualenv's. None when numpy looks usable (its import may still fail:
    `numpy_backend` says so then)."""
    here = sys.version_info[:2]
    try:
        spec = importlib.util.find_spec("numpy")
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.origin is None:
        return f"numpy is not installed for GDB's Python ({sys.executable or 'python'} {sys.version.split()[0]}): " \
               f"{PURE_SCAN}"
    package = os.path.dirname(spec.origin)
    built = re.search(r"[/\\]python(\d+)\.(\d+)[/\\]", spec.origin)
    # no version in the path (a --target install, GDB_MEMLEAK_PYTHONPATH): ask its compiled core
    versions = {(built[1], built[2])} if built else _core_versions(package)
    if versions and (str(here[0]), str(here[1])) not in versions:
        major, minor = sorted(versions)[0]
        return (f"numpy in {os.path.dirname(package)} is built for Python {major}.{minor}, this is Python "
                f"{here[0]}.{here[1]}: {PURE_SCAN}")
    return None


def _core_versions(package: str) -> set[tuple[str, str]]:
    """The CPython versions numpy's compiled core is built for (numpy 2: _core/, numpy 1: core/), from the version
    tags of its file names (`_multiarray_umath.cpython-311-x86_64-linux-gnu.so`); empty when untagged."""
    versions: set[tuple[str, str]] = set()
    for folder in ("_core", "core"):
        try:
            names = os.listdir(os.path.join(package, folder))
        except OSError:
            continue
        for name in names:
            tag = re.match(r"_multiarray_umath\.cpython-(\d)(\d+)", name)
            if tag:
                versions.add((tag[1], tag[2]))
    return versions


def numpy_backend() -> tuple[Any, str | None]:
    """(the numpy scan module, core/fastscan.py, or None; why not, when numpy is installed but unusable)."""
    global _backend
    if _backend is not None:
        return _backend
    problem = numpy_problem()
    if problem is not None:
        _backend = (None, problem)
        return _backend
    try:
        from . import numpy_scan
    except Exception as error:  # a broken or mismatched build raises ImportError, or worse
        text = str(error).strip().splitlines()
        _backend = (None, f"numpy cannot be imported ({text[0] if text else type(error).__name__}): {PURE_SCAN}")
        return _backend
    _backend = (numpy_scan, None)
    return _backend


@dataclass(frozen=True)
class RootRegion:
    """Memory whose words are roots, [start, end): e.g. a writable segment or a thread's stack above its SP."""

    start: int
    end: int
    label: str


class KindArray(Mapping[int, LeakKind]):
    """Block start -> leak kind as two numpy arrays, read-only: the numpy scan's answer (core/fastscan.py).

    A dict of a million kinds costs ~100 bytes a block and a Python step each to build; these arrays cost 9 (starts
    shared with the scan's input, one state byte each). `starts`: the blocks' starts, int64, ascending (the scan's
    own order); `states`: uint8, an index into KIND_OF_STATE; `sizes`: the scanned sizes (int64, aligned with
    `starts`) when known, for `totals`. Look-ups are binary searches; iteration is in address order.
    """

    __slots__ = ("starts", "states", "sizes", "_start_at", "_state_at", "_count", "_next")
    CHUNK = 1 << 16  # iteration converts the arrays to Python objects this many blocks at a time
    ABSENT = 255  # states_at's answer for an address where no block starts

    def __init__(self, starts: Any, states: Any, sizes: Any = None) -> None:
        if len(starts) != len(states) or (sizes is not None and len(sizes) != len(starts)):
            raise ValueError("starts, states and sizes must have one entry per block")
        self.starts, self.states, self.sizes = starts, states, sizes
        # one element as a Python int, without a numpy scalar each (a look-up costs half as much)
        self._start_at = _flat_view(starts, "q")
        self._state_at = _flat_view(states, "B")
        self._count = len(starts)
        self._next = 0  # the block after the one looked up last: tried first (callers often go in address order)

    def _index(self, address: object) -> int:
        """The index of the block starting at `address`, or -1."""
        i = self._next
        if i < self._count and self._start_at[i] == address:
            self._next = i + 1
            return i
        if not isinstance(address, int) or not 0 <= address < 1 << 63:
            return -1
        i = int(self.starts.searchsorted(address))
        if i < self._count and self._start_at[i] == address:
            self._next = i + 1
            return i
        return -1

    def __getitem__(self, address: int) -> LeakKind:
        i = self._index(address)
        if i < 0:
            raise KeyError(address)
        return KIND_OF_STATE[self._state_at[i]]

    def get(self, address: int, default: Any = None) -> Any:  # Mapping's get would raise and catch a KeyError
        i = self._index(address)
        return KIND_OF_STATE[self._state_at[i]] if i >= 0 else default

    def states_at(self, addresses: Any) -> Any:
        """The state (index into KIND_OF_STATE) of the block starting at each address (an int64 array), ABSENT where
        none starts: many look-ups in one vectorised step."""
        import numpy as np  # present: the arrays were made with it

        addresses = np.asarray(addresses, dtype=np.int64)
        out = np.full(len(addresses), self.ABSENT, np.uint8)
        if not len(self.starts):
            return out
        i = np.minimum(np.searchsorted(self.starts, addresses), len(self.starts) - 1)
        hit = self.starts[i] == addresses
        out[hit] = self.states[i[hit]]
        return out

    def __contains__(self, address: object) -> bool:
        return self._index(address) >= 0

    def __len__(self) -> int:
        return len(self.starts)

    def __iter__(self) -> Iterator[int]:
        for i in range(0, len(self.starts), self.CHUNK):
            yield from self.starts[i:i + self.CHUNK].tolist()

    def _kinds(self) -> Iterator[LeakKind]:
        for i in range(0, len(self.states), self.CHUNK):
            yield from map(KIND_OF_STATE.__getitem__, self.states[i:i + self.CHUNK].tolist())

    def items(self) -> ItemsView[int, LeakKind]:
        return _KindItems(self)

    def values(self) -> ValuesView[LeakKind]:
        return _KindValues(self)

    def __repr__(self) -> str:
        return f"KindArray({len(self)} blocks)"

    def totals(self, sizes: Any = None) -> dict[LeakKind, tuple[int, int]]:
        """kind -> (bytes, blocks), vectorised; `sizes` an array aligned with `starts` (default: the scanned sizes;
        without either, bytes are 0)."""
        import numpy as np  # present: the arrays were made with it

        sizes = self.sizes if sizes is None else sizes
        k = len(KIND_OF_STATE)
        blocks = np.bincount(self.states, minlength=k)
        if sizes is None or not len(sizes):
            amounts = [0] * k
        else:  # bincount's float weights would round totals past 2**53: add up per kind in int64
            amounts = [int(sizes[self.states == state].sum()) if blocks[state] else 0 for state in range(k)]
        return {kind: (amounts[state], int(blocks[state])) for state, kind in enumerate(KIND_OF_STATE)}


def _flat_view(values: Any, code: Literal["q", "B"]) -> Any:
    """`values` (a numpy array of 8-byte signed or 1-byte unsigned integers) as a memoryview of format `code`, whose
    items are Python ints; the array itself when it cannot be viewed so (not contiguous, another type)."""
    try:
        view = memoryview(values)
    except TypeError:
        return values
    formats, size = (("l", "q"), 8) if code == "q" else (("B",), 1)
    if not view.c_contiguous or view.ndim != 1 or view.format not in formats or view.itemsize != size:
        return values
    return view.cast("B").cast(code)


class _KindItems(ItemsView[int, LeakKind]):
    _mapping: KindArray

    def __iter__(self) -> Iterator[tuple[int, LeakKind]]:
        return zip(self._mapping, self._mapping._kinds())


class _KindValues(ValuesView[LeakKind]):
    _mapping: KindArray

    def __iter__(self) -> Iterator[LeakKind]:
        return self._mapping._kinds()


@dataclass
class ScanResult:
    """Every live block's kind and, for indirect blocks, the definitely lost block they are lost through.

    `kinds`: a dict from the pure scan, a KindArray from the numpy scan (both Mappings; nothing else may be assumed).
    `scanned_bytes` counts the bytes read and searched (roots and blocks, each once); `unreadable_bytes` the bytes
    that were to be scanned but could not be read.
    """

    kinds: Mapping[int, LeakKind]
    leader: dict[int, int]
    scanned_bytes: int
    unreadable_bytes: int
    referrers: list[Referrer] = field(default_factory=list)  # who points into the watched block, if one was
    heuristics: dict[int, str] = field(default_factory=dict)  # block start -> the heuristic it was reached by

    def summary(self, sizes: Mapping[int, int] | None = None) -> dict[str, dict[str, int]]:
        """{"definite": {"bytes": B, "blocks": N}, "indirect": …, "possible": …, "reachable": …} (all four keys).

        `sizes`: address -> size of the blocks. None: the sizes the numpy scan kept in its KindArray (no step per
        block at all); the pure scan keeps none (bytes are then 0)."""
        kinds = self.kinds
        if isinstance(kinds, KindArray):
            aligned = None
            if sizes is not None:  # one look-up per block, in C (map over the mapping's get)
                import numpy as np  # present: the KindArray was made with it

                aligned = np.fromiter(map(sizes.get, kinds, repeat(0)), dtype=np.int64, count=len(kinds))
            by_kind = kinds.totals(aligned)
            return {kind.value: {"bytes": by_kind[kind][0], "blocks": by_kind[kind][1]} for kind in KINDS}
        totals = {kind: [0, 0] for kind in KINDS}
        get = (sizes if sizes is not None else {}).get
        for address, kind in kinds.items():
            total = totals[kind]
            total[0] += get(address, 0)
            total[1] += 1
        return {kind.value: {"bytes": b, "blocks": n} for kind, (b, n) in totals.items()}


@dataclass(frozen=True)
class Referrer:
    """One word pointing at or into a searched range (`memleak block`)."""

    address: int
    pointer: int
    interior: bool
    block: int | None
    label: str | None


# -- memory ---------------------------------------------------------------------------------------------------------
@dataclass
class _Counters:
    scanned: int = 0
    unreadable: int = 0


_read = hx.read_or_nothing


class _Layout:
    """The blocks sorted by address, and the aligned range of each that is scanned."""

    def __init__(self, blocks: Mapping[int, int], word_size: int, max_block_scan: int) -> None:
        if word_size not in (4, 8):
            raise ValueError(f"unsupported word size {word_size}")
        keys = list(blocks)
        starts = sorted(keys)
        # Tables usually list blocks in address order already; then the sizes come without a look-up each.
        sizes = list(blocks.values()) if starts == keys else list(map(blocks.__getitem__, starts))
        if sizes and min(sizes) < 0:
            sizes = [max(0, s) for s in sizes]
        self.starts, self.sizes, self.word_size = starts, sizes, word_size
        cap = max(0, max_block_scan)
        low, mask = word_size - 1, ~(word_size - 1)
        if any(map(and_, starts, repeat(low))):  # some block is not word-aligned (a custom allocator, a bad table)
            self.begins = [(a + low) & mask for a in starts]
            self.wants = [max(0, ((a + min(s, cap)) & mask) - b) for a, s, b in zip(starts, sizes, self.begins)]
            return
        self.begins = starts
        if not any(map(and_, sizes, repeat(low))) and (not sizes or max(sizes) <= cap):
            self.wants = sizes
        else:  # whole words only, at most `cap` bytes
            self.wants = list(map(and_, map(min, sizes, repeat(cap)), repeat(mask)))


class _Reader:
    """Reads memory word-aligned, one read per block (or per piece of a large one), and batches it for searching.

    A batch is (buf, owners, lengths, bases): part j of buf is `lengths[j]` bytes read at `bases[j]` from block index
    `owners[j]`. A short or failed read keeps its whole words and counts the rest as unreadable.
    """

    def __init__(self, memory: Memory, word_size: int, counters: _Counters) -> None:
        self.memory, self.word_size, self.counters = memory, word_size, counters

    def region(self, start: int, end: int) -> Iterator[tuple[bytes, int]]:
        """(bytes, address) pieces of [start, end), each at most PIECE_BYTES."""
        ws = self.word_size
        address = -(-start // ws) * ws
        end -= end % ws
        while address < end:
            size = min(PIECE_BYTES, end - address)
            datas, _lengths = self._fix([_read(self.memory, address, size)], [size])
            data = datas[0]
            if data:
                yield data, address
            address += size

    def blocks(self, layout: _Layout) -> Iterator[tuple[bytes, list[int], list[int], Sequence[int]]]:
        """Every block of `layout`, in address order."""
        begins, wants = layout.begins, layout.wants
        n = len(begins)
        k0, step = 0, 4096
        while k0 < n:
            k1 = min(n, k0 + step)
            w = wants[k0:k1]
            if max(w) > PIECE_BYTES:
                j = next(j for j, size in enumerate(w) if size > PIECE_BYTES)
                if j == 0:
                    for data, address in self.region(begins[k0], begins[k0] + wants[k0]):
                        yield data, [k0], [len(data)], [address]
                    k0 += 1
                    continue
                k1 = k0 + j
                w = w[:j]
            total = sum(w)
            yield self._batch(begins[k0:k1], w, list(range(k0, k1)))
            step = max(1, min(65536, step * BATCH_BYTES // max(total, 1)))
            k0 = k1

    def _batch(self, bases: list[int], wants: list[int], owners: list[int]) -> tuple[bytes, list[int], list[int],
                                                                                     list[int]]:
        if 0 in wants:
            keep = list(map(bool, wants))
            bases, wants, owners = (list(compress(x, keep)) for x in (bases, wants, owners))
        try:
            datas = list(map(self.memory.read, bases, wants))
        except Exception:
            datas = list(map(_read, repeat(self.memory), bases, wants))
        datas, lengths = self._fix(datas, wants)
        return b"".join(datas), owners, lengths, bases

    def _fix(self, datas: list[bytes], wants: list[int]) -> tuple[list[bytes], list[int]]:
        lengths = list(map(len, datas))
        if lengths != wants:
            ws = self.word_size
            for j, (got, want) in enumerate(zip(lengths, wants)):
                if got != want:
                    got = want if got > want else got - got % ws
                    datas[j] = bytes(datas[j][:got])
                    lengths[j] = got
                    self.counters.unreadable += want - got
        self.counters.scanned += sum(lengths)
        return datas, lengths


# -- word search ------------------------------------------------------------------------------------------------------
class _Finder:
    """Indices of the words of a buffer whose value lies in [lo, hi), found without a Python step per word.

    For 8-byte words it searches (re.finditer or bytes.find, in C) the little-endian high halves the addresses of
    [lo, hi) can have, keeping those at offsets 4 mod 8, so Python only runs on candidates. Other word sizes, a range
    with too many high halves, or a buffer dense with candidates use a comprehension over the words instead.
    """

    def __init__(self, lo: int, hi: int, word_size: int, highs: Iterable[int] | None = None) -> None:
        self.lo, self.hi, self.word_size = lo, hi, word_size
        self.format = cast(WordFormat, next(code for code in "IQL" if array(code).itemsize == word_size))
        self.swap = sys.byteorder != "little"
        self.literals: list[bytes] = []
        if word_size == 8 and hi > lo:
            if highs is None:
                first, last = lo >> 32, (hi - 1) >> 32
                highs = range(first, last + 1) if last - first < MAX_PREFIXES else ()
            highs = sorted(set(highs))
            if 0 < len(highs) <= MAX_PREFIXES and highs[-1] < 1 << 32:
                self.literals = [h.to_bytes(4, "little") for h in highs]
        self.patterns = [None if any(lit[d:] == lit[:4 - d] for d in (1, 2, 3)) else re.compile(re.escape(lit))
                         for lit in self.literals]
        self.range = range(lo, hi)

    def words(self, buf: bytes):
        """The buffer's little-endian words, indexable."""
        if not self.swap:
            return memoryview(buf).cast(self.format)
        words = array(self.format, buf)
        words.byteswap()
        return words

    def find(self, buf: bytes) -> tuple[Sequence[int], list[int]]:
        """(words, ascending indices of the words in [lo, hi))."""
        words = self.words(buf)
        lo, hi = self.lo, self.hi
        if not self.literals or sum(map(buf.count, self.literals)) * DENSE > len(words):
            # Pointer-dense memory (an array of pointers): a pass over the words costs less than a find per hit.
            return words, [k for k, w in enumerate(words) if lo <= w < hi]
        found: list[int] = []
        for literal, pattern in zip(self.literals, self.patterns):
            if pattern is not None:  # finditer misses no occurrence of a literal that cannot overlap itself
                at = [p >> 3 for p in map(_match_start, pattern.finditer(buf)) if p & 7 == 4]
                found += compress(at, map(self.range.__contains__, map(words.__getitem__, at)))
                continue
            search = buf.find
            p = search(literal, 4)
            while p >= 0:
                skip = (4 - p) & 7
                if skip:  # unaligned hit: the next word's high half is `skip` bytes on
                    p = search(literal, p + skip)
                    continue
                k = p >> 3
                if lo <= words[k] < hi:
                    found.append(k)
                p = search(literal, p + 8)
        if len(self.literals) > 1:
            found.sort()
        return words, found


def _heap_finder(layout: _Layout) -> _Finder:
    """A finder for [first start, highest end) that searches only the high halves the blocks' addresses have."""
    starts, sizes = layout.starts, layout.sizes
    n = len(starts)
    hi = starts[-1] + 1
    highs: set[int] = set()
    i = 0
    while i < n:  # per run of blocks whose starts share a high half: their highest end, which may reach further
        high = starts[i] >> 32
        j = bisect_left(starts, (high + 1) << 32, i)
        end = max(map(add, starts[i:j], sizes[i:j]))
        hi = max(hi, end)
        highs.add(high)
        highs.update(range(high + 1, min((end - 1) >> 32, high + MAX_PREFIXES) + 1))
        i = j
    return _Finder(starts[0], hi, layout.word_size, highs if len(highs) <= MAX_PREFIXES else ())


# -- scan -----------------------------------------------------------------------------------------------------------
def scan(blocks: Mapping[int, int], memory: Memory, roots: Iterable[RootRegion], registers: Iterable[int] = (),
         word_size: int = 8, max_block_scan: int = DEFAULT_MAX_BLOCK_SCAN, watch: int | None = None,
         limit: int = 100, prepared: Any = None, heuristics: hx.Heuristics | None = None) -> ScanResult:
    """Classify every block of `blocks` (address -> requested size) as valgrind's leak check would. With `watch`
    (the start of one of the blocks), also list up to `limit` words pointing into it, in the same pass
    (`memleak block`): root words first, in the order given, then words of other blocks in address order.
    `heuristics`: valgrind's leak-check heuristics to apply (None: none; 8-byte words only).

    Runs vectorised (core/fastscan.py) when numpy is importable, else in pure Python; the results are equal.
    `prepared`: fastscan.Blocks.of(blocks), when the caller has built it already."""
    if word_size not in (4, 8):
        raise ValueError(f"unsupported word size {word_size}")
    if heuristics is not None and (not heuristics.any or word_size != hx.WORD):
        heuristics = None
    if BACKEND != "python":
        fast, why = numpy_backend()
        if fast is None and BACKEND == "numpy":
            raise RuntimeError(why or "numpy is not installed")
        arrays = (prepared if prepared is not None else fast.Blocks.of(blocks)) if fast is not None else None
        if arrays is not None:
            return cast(ScanResult, fast.scan(blocks, arrays, memory, roots, registers, word_size, max_block_scan,
                                              watch, limit, heuristics))
    return scan_python(blocks, memory, roots, registers, word_size, max_block_scan, watch, limit, heuristics)


def scan_python(blocks: Mapping[int, int], memory: Memory, roots: Iterable[RootRegion], registers: Iterable[int] = (),
                word_size: int = 8, max_block_scan: int = DEFAULT_MAX_BLOCK_SCAN, watch: int | None = None,
                limit: int = 100, heuristics: hx.Heuristics | None = None) -> ScanResult:
    """scan() in pure Python, without numpy."""
    layout = _Layout(blocks, word_size, max_block_scan)
    if not layout.starts:
        return ScanResult({}, {}, 0, 0)
    if heuristics is not None and (not heuristics.any or word_size != hx.WORD):
        heuristics = None
    root_refs: list[Referrer] = []
    block_refs: list[Referrer] = []
    counters = _Counters()
    reader = _Reader(memory, word_size, counters)
    finder = _heap_finder(layout)
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
    members = _cliques(sources, state, first, dst, has_edges)
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


def _cliques(sources: list[int], state: bytearray, first: Sequence[int], dst: Sequence[int],
             has_edges: bytes) -> dict[int, list[int]]:
    """Valgrind's phase 2: leader index -> the block indices indirectly lost through it.

    Leaders are the blocks still UNREACHED, in address order; only those holding pointers (`sources`, ascending)
    can gather anything. Every UNREACHED block a leader reaches through any pointer becomes INDIRECT. An earlier
    leader reached from a later one becomes INDIRECT too and its members move to the later leader (valgrind adds the
    earlier leader's indirect size to the later one's).
    """
    members: dict[int, list[int]] = {}
    for head in sources:
        if state[head]:  # not UNREACHED
            continue
        mine: list[int] = []
        stack = [head]
        while stack:
            s = stack.pop()
            for t in dst[first[s]:first[s + 1]]:
                if t < 0:
                    t = ~t
                if state[t] or t == head:
                    continue
                state[t] = INDIRECT
                if t in members:  # an earlier leader joins this clique with its members: merge the smaller list
                    theirs = members.pop(t)
                    if len(theirs) > len(mine):
                        theirs.extend(mine)
                        mine = theirs
                    else:
                        mine.extend(theirs)
                mine.append(t)
                if has_edges[t]:
                    stack.append(t)
        if mine:
            members[head] = mine
    return members


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
    layout = _Layout(blocks, word_size, DEFAULT_MAX_BLOCK_SCAN)
    finder = _Finder(target, target + max(size, 1), word_size)
    reader = _Reader(memory, word_size, _Counters())
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

