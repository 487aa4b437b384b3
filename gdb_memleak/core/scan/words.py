"""The pure scan's word search: the words of a buffer that may point into a range of addresses (the heap, or one
block for `referrers`), found without a Python step per word."""

from __future__ import annotations

import re
import sys
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from itertools import compress
from operator import add
from typing import Literal, cast

from .shared import Layout

MAX_PREFIXES = 16  # heap addresses with more distinct high halves than this: search words one by one instead
DENSE = 5  # when more than one word in DENSE may point into the heap, search words one by one

_match_start = re.Match.start
WordFormat = Literal["I", "Q", "L"]  # array/memoryview codes of an unsigned word


class Finder:
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


def heap_finder(layout: Layout) -> Finder:
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
    return Finder(starts[0], hi, layout.word_size, highs if len(highs) <= MAX_PREFIXES else ())

