"""valgrind's leak-check heuristics (`--leak-check-heuristics`, default `all`): interior pointers that count as start
pointers, because C++ runtimes and some allocators hand out pointers past a header of their own.

A heuristic looks only at the pointer's offset into its block, the block's size and the words the block holds, as
valgrind's mc_leakcheck.c `heuristic_reachedness` does, tried in this order (the first that accepts names it):

- stdstring: offset 24 of a block of 24 + capacity + 1 bytes whose first word (length) is at most its second
  (capacity): the characters of a pre-C++11 ABI std::string, after its length, capacity and reference count.
- length64: offset 8 of a block whose first word is its size - 8 (> 0): a length-prefixed block, as sqlite's
  allocator makes them.
- newarray: offset 8 of a block whose first word n > 0 divides its size - 8: the array a C++ `new T[n]` of a type
  with a destructor returns, after the element count delete[] reads.
- multipleinheritance: a word-aligned offset whose word (within the block) and the block's first word are both
  vtable addresses: a pointer to a base sub-object other than the first.

An address is a vtable's when it lies in a readable file-backed mapping and, of the words from it on (at most 21,
within that mapping), the non-zero ones point into executable file-backed mappings until two have been seen (one that
does not ends the test, failed). Unlike valgrind, the words are not checked for definedness (GDB has no such bits).

Which heuristic a block is counted under ("of which reachable via heuristic") follows from the pointers found at the
end of the scan, where valgrind's answer depends on the order it meets them: a reachable block counts under the
heuristic of a pointer from a root or a reachable block that a heuristic accepts, unless a start pointer from a root
or a scanned (reachable or possibly lost) block points at it; a possibly lost block counts when every interior
pointer from a scanned block points where a heuristic accepts it (valgrind counts these too: its summary lists the
heuristic that last judged the block, whatever the block's kind).

This module is pure Python; the numpy scan (core/scan/numpy_heuristics.py) computes the same per-block tests on arrays.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

NAMES = ("stdstring", "length64", "newarray", "multipleinheritance")  # valgrind's order, and the order tried
NONE, STDSTRING, LENGTH64, NEWARRAY, MULTIPLE = range(5)  # codes: 1 + the index in NAMES; 0 for none
UNSET = 255  # "no heuristic yet" in the per-block minimum of codes

# What a block's first words admit (a byte per block): the tests that need nothing but the block.
ADMITS_STDSTRING, ADMITS_LENGTH64, ADMITS_NEWARRAY, ADMITS_MULTIPLE = 1, 2, 4, 8

WORD = 8
MASK = (1 << 64) - 1
PAGE = 4096  # no vtable in page 0: small integers are never looked up
VTABLE_WORDS = 21  # valgrind's VTABLE_MAX_CHECK (20) words after the first one
STRING_HEADER = 3 * WORD  # std::string's _Rep: length, capacity, reference count, then the characters


class Memory(Protocol):
    def read(self, address: int, size: int) -> bytes:
        ...


class Region(Protocol):
    """A mapping of the process (core.procmaps.Mapping has these)."""

    @property
    def start(self) -> int: ...

    @property
    def end(self) -> int: ...

    @property
    def perms(self) -> str: ...

    @property
    def path(self) -> str: ...


def parse_heuristics(text: str) -> frozenset[str]:
    """`all` | `none` | a comma-separated list of NAMES (valgrind's --leak-check-heuristics syntax)."""
    words = [w.strip() for w in text.split(",") if w.strip()]
    if words == ["all"]:
        return frozenset(NAMES)
    if words == ["none"]:
        return frozenset()
    unknown = [w for w in words if w not in NAMES]
    if unknown or not words:
        raise ValueError(f"unknown heuristic {unknown[0]!r}" if unknown else "no heuristic given")
    return frozenset(words)


def heuristics_text(enabled: Iterable[str]) -> str:
    """The canonical spelling of a set of heuristics: `all`, `none`, or the names in valgrind's order."""
    chosen = set(enabled)
    if chosen >= set(NAMES):
        return "all"
    return ",".join(name for name in NAMES if name in chosen) or "none"


def is_file_backed(region: Region) -> bool:
    """A mapping of a file (valgrind's SkFileC): a path, not an anonymous or special mapping ([heap], [stack])."""
    return region.path.startswith("/")


@dataclass
class Heuristics:
    """The heuristics enabled for a scan, and the process's mappings the vtable test needs (file-backed, readable
    for a vtable; executable for what it points at)."""

    enabled: frozenset[str] = frozenset(NAMES)
    mappings: Sequence[Region] = ()
    _vtables: dict[int, bool] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.enabled = frozenset(self.enabled)
        readable = sorted((m.start, m.end) for m in self.mappings if is_file_backed(m) and "r" in m.perms)
        code = sorted((m.start, m.end) for m in self.mappings if is_file_backed(m) and "x" in m.perms)
        self.readable_starts = [s for s, _ in readable]
        self.readable_ends = [e for _, e in readable]
        self.code_starts = [s for s, _ in code]
        self.code_ends = [e for _, e in code]
        self.codes = tuple(i + 1 for i, name in enumerate(NAMES) if name in self.enabled)

    @property
    def any(self) -> bool:
        return bool(self.codes)

    def on(self, code: int) -> bool:
        return code in self.codes

    def readable_end(self, address: int) -> int:
        """The end of the readable file-backed mapping holding `address`, 0 when none does."""
        i = bisect.bisect_right(self.readable_starts, address) - 1
        return self.readable_ends[i] if i >= 0 and address < self.readable_ends[i] else 0

    def in_code(self, address: int) -> bool:
        i = bisect.bisect_right(self.code_starts, address) - 1
        return i >= 0 and address < self.code_ends[i]

    def plausible_vtable(self, address: int) -> bool:
        """Cheap half of the vtable test (aligned, above page 0, in a readable file mapping)."""
        return not address % WORD and address >= PAGE and self.readable_end(address) > 0

    def is_vtable(self, address: int, memory: Memory) -> bool:
        """valgrind's aligned_ptr_above_page0_is_vtable_addr (cached per address for the scan)."""
        known = self._vtables.get(address)
        if known is not None:
            return known
        answer = False
        if self.plausible_vtable(address):
            end = self.readable_end(address)
            count = min(VTABLE_WORDS, (end - address) // WORD)
            try:
                data = memory.read(address, count * WORD)
            except Exception:  # an unreadable table is no vtable
                data = b""
            found = 0
            for k in range(len(data) // WORD):
                target = int.from_bytes(data[k * WORD:k * WORD + WORD], "little")
                if not target:
                    continue
                if not self.in_code(target):
                    break
                found += 1
                if found == 2:
                    answer = True
                    break
        self._vtables[address] = answer
        return answer

    def admits(self, size: int, w0: int | None, w1: int | None, memory: Memory) -> int:
        """What a block of `size` bytes whose first words are w0, w1 (None: not there) admits (ADMITS_* bits)."""
        bits = 0
        if w0 is None:
            return bits
        if w1 is not None and self.on(STDSTRING) and (STRING_HEADER + w1 + 1) & MASK == size and w0 <= w1:
            bits |= ADMITS_STDSTRING
        if w0 > 0 and size > WORD:
            if self.on(LENGTH64) and size - WORD == w0:
                bits |= ADMITS_LENGTH64
            if self.on(NEWARRAY) and (size - WORD) % w0 == 0:
                bits |= ADMITS_NEWARRAY
        if self.on(MULTIPLE) and self.is_vtable(w0, memory):
            bits |= ADMITS_MULTIPLE
        return bits

    def judge(self, offset: int, size: int, admits: int, word_at: int | None, memory: Memory) -> int:
        """The heuristic accepting an interior pointer `offset` bytes into a block (0 < offset < size) that admits
        `admits`; `word_at`: the word the pointer points at (None when it is not wholly inside the block). 0: none.
        """
        if offset == STRING_HEADER and admits & ADMITS_STDSTRING:
            return STDSTRING
        if offset == WORD:
            if admits & ADMITS_LENGTH64:
                return LENGTH64
            if admits & ADMITS_NEWARRAY:
                return NEWARRAY
        if admits & ADMITS_MULTIPLE and word_at is not None and self.is_vtable(word_at, memory):
            return MULTIPLE
        return NONE

    def needs_word(self, offset: int, size: int, admits: int) -> bool:
        """Whether judge() needs the word the pointer points at (only multipleinheritance does)."""
        return bool(admits & ADMITS_MULTIPLE) and not offset % WORD and offset + WORD <= size


def name(code: int) -> str:
    return NAMES[code - 1]


def summary(heuristic_of: dict[int, str], sizes: dict[int, int] | None = None) -> dict[str, dict[str, int]]:
    """{name: {"bytes": B, "blocks": N}} for every heuristic (zeros included), from block start -> heuristic."""
    out = {n: {"bytes": 0, "blocks": 0} for n in NAMES}
    for address, used in heuristic_of.items():
        entry = out[used]
        entry["blocks"] += 1
        entry["bytes"] += (sizes or {}).get(address, 0)
    return out


class Judge:
    """One scan's decisions in pure Python: what a block admits (its first words read once, when a pointer into it
    is first judged), then each interior pointer. `starts`, `sizes`: the blocks, ascending."""

    def __init__(self, heuristics: Heuristics, memory: Memory, starts: Sequence[int], sizes: Sequence[int]) -> None:
        self.heuristics, self.memory, self.starts, self.sizes = heuristics, memory, starts, sizes
        self.any_offset = heuristics.on(MULTIPLE)  # else only offsets 8 and 24 can be accepted
        self._admits: dict[int, int] = {}

    def admits(self, i: int) -> int:
        known = self._admits.get(i)
        if known is not None:
            return known
        start, size = self.starts[i], self.sizes[i]
        bits = 0
        if not start % WORD and size >= WORD:
            head = read_or_nothing(self.memory, start, 2 * WORD if size >= 2 * WORD else WORD)
            w0 = int.from_bytes(head[:WORD], "little") if len(head) >= WORD else None
            w1 = int.from_bytes(head[WORD:2 * WORD], "little") if len(head) >= 2 * WORD else None
            bits = self.heuristics.admits(size, w0, w1, self.memory)
        self._admits[i] = bits
        return bits

    def decide(self, i: int, pointer: int) -> int:
        """The heuristic accepting `pointer`, an interior pointer into block i (0: none)."""
        offset = pointer - self.starts[i]
        if offset % WORD or (not self.any_offset and offset not in (WORD, STRING_HEADER)):
            return NONE
        admits = self.admits(i)
        if not admits:
            return NONE
        word_at = None
        if self.heuristics.needs_word(offset, self.sizes[i], admits):
            data = read_or_nothing(self.memory, pointer, WORD)
            word_at = int.from_bytes(data, "little") if len(data) == WORD else None
        return self.heuristics.judge(offset, self.sizes[i], admits, word_at, self.memory)


def read_or_nothing(memory: Memory, address: int, size: int) -> bytes:
    """`memory.read`, or no bytes: the protocol forbids a reader to raise, but a broken one must not stop a leak
    check (the scans read through this too)."""
    try:
        return memory.read(address, size)
    except Exception:  # noqa: BLE001 - see above
        return b""


@dataclass
class RootHits:
    """What the roots' words did to the blocks a heuristic may be attributed to (block indices): start pointers,
    interior pointers no heuristic accepted, and the heuristic codes that accepted some (the lowest per block)."""

    starts: set[int] = field(default_factory=set)
    rejected: set[int] = field(default_factory=set)
    accepted: dict[int, int] = field(default_factory=dict)

    def accept(self, i: int, code: int) -> None:
        self.accepted[i] = min(code, self.accepted.get(i, code))
