"""What the pure-Python scan (pure.py) and the numpy scan (numpy_scan.py) share: the scan's inputs and outputs,
the reader that takes the bytes of roots and blocks out of a Memory, and phase 2 (valgrind's cliques)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import and_
from typing import Protocol

from .. import heuristics as hx
from ..kinds import KINDS, LeakKind
from .states import INDIRECT, KindArray

DEFAULT_MAX_BLOCK_SCAN = 64 << 20
PIECE_BYTES = 1 << 20  # one read covers at most this much of a root region or of a large block
BATCH_BYTES = 1 << 20  # the contents of consecutive small blocks are joined up to about this size, then searched


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


@dataclass(frozen=True)
class RootRegion:
    """Memory whose words are roots, [start, end): e.g. a writable segment or a thread's stack above its SP."""

    start: int
    end: int
    label: str


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
class Counters:
    scanned: int = 0
    unreadable: int = 0


_read = hx.read_or_nothing


class Layout:
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


class Reader:
    """Reads memory word-aligned, one read per block (or per piece of a large one), and batches it for searching.

    A batch is (buf, owners, lengths, bases): part j of buf is `lengths[j]` bytes read at `bases[j]` from block index
    `owners[j]`. A short or failed read keeps its whole words and counts the rest as unreadable.
    """

    def __init__(self, memory: Memory, word_size: int, counters: Counters) -> None:
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

    def blocks(self, layout: Layout) -> Iterator[tuple[bytes, list[int], list[int], Sequence[int]]]:
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
            yield self.batch(begins[k0:k1], w, list(range(k0, k1)))
            step = max(1, min(65536, step * BATCH_BYTES // max(total, 1)))
            k0 = k1

    def batch(self, bases: list[int], wants: list[int], owners: list[int]) -> tuple[bytes, list[int], list[int],
                                                                                    list[int]]:
        """One batch of the blocks `owners` (read `wants[j]` bytes at `bases[j]`; a block wanting none is left out)."""
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


# -- phase 2 -------------------------------------------------------------------------------------------------------
def cliques(sources: list[int], state: bytearray, first: Sequence[int], dst: Sequence[int],
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

