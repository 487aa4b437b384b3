"""Leak classification as valgrind memcheck does it: reachable / possible / definite / indirect, on a fake memory."""

from __future__ import annotations

import contextlib
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import scan_backends
from gdb_memleak.core.kinds import LeakKind as Kind
from gdb_memleak.core.scan import Referrer, RootRegion, ScanResult, referrers, scan, shared
from gdb_memleak.core.scan import backend as backends
from gdb_memleak.core.scan import words as word_search
from scan_backends import small_steps

pytestmark = pytest.mark.usefixtures("backend")  # every test runs on the pure and on the numpy scan
backend = scan_backends.backend

HEAP = 0x5555_5555_9000
DATA = 0x5555_5555_8000  # a writable segment of the program
STACK = 0x7FFF_FFFD_E000


class FakeMemory:
    """address -> bytes regions; a read returns what one region holds from `address` on (short at its end)."""

    def __init__(self, regions: dict[int, bytes], raising: bool = False) -> None:
        self.regions = dict(regions)
        self.raising = raising
        self.reads: list[tuple[int, int]] = []

    def read(self, address: int, size: int) -> bytes:
        self.reads.append((address, size))
        for start, data in self.regions.items():
            if start <= address < start + len(data):
                return data[address - start:address - start + size]
        if self.raising:
            raise OSError(f"cannot access memory at {address:#x}")
        return b""


class SpanMemory(FakeMemory):
    """Also reads spans of adjacent blocks at once, as the process memory does: the bytes between regions hold
    `filler` (e.g. a pointer to a block, as an allocator's header or a freed chunk could), and a span ending
    outside every region comes back short."""

    def __init__(self, regions: dict[int, bytes], filler: int) -> None:
        super().__init__(regions)
        self.filler = filler.to_bytes(8, "little")
        self.spans: list[tuple[int, int]] = []

    def read_span(self, address: int, size: int) -> bytes:
        self.spans.append((address, size))
        out = bytearray((self.filler * (size // 8 + 2))[address % 8:address % 8 + size])
        for start, data in self.regions.items():
            lo, hi = max(start, address), min(start + len(data), address + size)
            if lo < hi:
                out[lo - address:hi - address] = data[lo - start:hi - start]
        if not any(start <= address + size - 1 < start + len(data) for start, data in self.regions.items()):
            return bytes(out[:size // 2])
        return bytes(out)


def words(*values: int, word_size: int = 8) -> bytes:
    return b"".join(v.to_bytes(word_size, "little") for v in values)


class Heap:
    """Blocks laid out from HEAP on, each given as its words; builds the blocks map and the memory."""

    def __init__(self) -> None:
        self.blocks: dict[int, int] = {}
        self.contents: dict[int, bytes] = {}
        self.next = HEAP

    def alloc(self, *values: int, size: int | None = None) -> int:
        data = words(*values)
        size = len(data) if size is None else size
        address = self.next
        self.next += max(16, (size + 31) // 16 * 16)
        self.blocks[address] = size
        self.contents[address] = data.ljust(size, b"\0")
        return address

    def set(self, block: int, index: int, value: int) -> None:
        data = bytearray(self.contents[block])
        data[8 * index:8 * index + 8] = value.to_bytes(8, "little")
        self.contents[block] = bytes(data)

    def memory(self, extra: dict[int, bytes] | None = None) -> FakeMemory:
        return FakeMemory({**self.contents, **(extra or {})})

    def scan(self, roots: dict[int, bytes] | None = None, registers=(), **kwargs) -> ScanResult:
        roots = roots or {}
        memory = self.memory(roots)
        regions = [RootRegion(a, a + len(data), f"root@{a:#x}") for a, data in roots.items()]
        return scan(self.blocks, memory, regions, registers, **kwargs)


def kinds(result: ScanResult) -> dict[int, str]:
    return {a: k.value for a, k in result.kinds.items()}


# -- phase 1 --------------------------------------------------------------------------------------------------------
def test_start_pointer_from_root_is_reachable():
    heap = Heap()
    a = heap.alloc(1, 2)
    result = heap.scan({DATA: words(0, a, 7)})
    assert result.kinds == {a: Kind.REACHABLE}
    assert result.leader == {}


def test_only_interior_pointer_is_possible():
    heap = Heap()
    a = heap.alloc(1, 2, 3)
    assert kinds(heap.scan({DATA: words(a + 8)})) == {a: "possible"}


def test_pointer_one_past_the_end_is_not_a_pointer_to_the_block():
    heap = Heap()
    a = heap.alloc(1, 2)
    assert kinds(heap.scan({DATA: words(a + 16)})) == {a: "definite"}


def test_reachable_block_pointing_to_another_makes_both_reachable():
    heap = Heap()
    b = heap.alloc(5)
    a = heap.alloc(b)
    assert kinds(heap.scan({DATA: words(a)})) == {a: "reachable", b: "reachable"}


def test_reachable_block_interior_pointer_makes_target_possible():
    heap = Heap()
    b = heap.alloc(5, 6)
    a = heap.alloc(b + 8)
    assert kinds(heap.scan({DATA: words(a)})) == {a: "reachable", b: "possible"}


def test_possible_block_start_pointer_makes_target_possible_not_reachable():
    heap = Heap()
    c = heap.alloc(9)
    b = heap.alloc(c, 0)
    a = heap.alloc(0, 0)
    assert kinds(heap.scan({DATA: words(b + 8)})) == {a: "definite", b: "possible", c: "possible"}


def test_block_raised_from_possible_to_reachable_is_rescanned():
    # b is found first through an interior pointer (possible), which makes c possible; the start pointer to b in
    # a reachable block must then raise b and, by rescanning b, c too.
    heap = Heap()
    c = heap.alloc(3)
    b = heap.alloc(c, 0)
    a = heap.alloc(b)
    assert kinds(heap.scan({DATA: words(b + 8, 0, a)})) == {a: "reachable", b: "reachable", c: "reachable"}


def test_register_holding_start_pointer_is_reachable():
    heap = Heap()
    a = heap.alloc(1)
    b = heap.alloc(1, 2)
    c = heap.alloc(1)
    result = heap.scan(registers=[0, a, b + 8, -1, 1 << 70])
    assert kinds(result) == {a: "reachable", b: "possible", c: "definite"}


def test_negative_register_value_is_read_as_unsigned():
    heap = Heap()
    a = heap.alloc(1)
    assert kinds(heap.scan(registers=[a - (1 << 64)])) == {a: "reachable"}


def test_unaligned_words_are_ignored():
    heap = Heap()
    a = heap.alloc(1)
    b = heap.alloc(2)
    c = heap.alloc(3, 3, 3)
    heap.contents[c] = b"\0\0\0\0" + b.to_bytes(8, "little") + b"\0" * 12  # b at offset 4 of c
    root = b"\0" * 3 + a.to_bytes(8, "little") + b"\0" * 5  # a at offset 3 of the root region
    result = heap.scan({DATA: words(c), DATA + 0x100: root})
    assert kinds(result) == {a: "definite", b: "definite", c: "reachable"}


def test_unaligned_root_region_and_partial_trailing_word_are_not_scanned():
    heap = Heap()
    a = heap.alloc(1)
    b = heap.alloc(2)
    memory = heap.memory({DATA: words(a, b)})
    # [DATA+1, DATA+15): the word at DATA starts before the region, the one at DATA+8 ends after it.
    result = scan(heap.blocks, memory, [RootRegion(DATA + 1, DATA + 15, "odd")])
    assert kinds(result) == {a: "definite", b: "definite"}
    result = scan(heap.blocks, memory, [RootRegion(DATA + 1, DATA + 16, "odd")])
    assert kinds(result) == {a: "definite", b: "reachable"}


def test_block_size_not_multiple_of_word_scans_only_whole_words():
    heap = Heap()
    target = heap.alloc(1)
    holder = heap.alloc(0, target, size=15)  # second word only partly inside the 15 requested bytes
    assert kinds(heap.scan({DATA: words(holder)})) == {target: "definite", holder: "reachable"}


def test_zero_size_block_is_reached_only_by_its_start():
    heap = Heap()
    empty = heap.alloc(size=0)
    other = heap.alloc(size=0)
    result = heap.scan({DATA: words(empty, other + 1)})
    assert kinds(result) == {empty: "reachable", other: "definite"}


def test_no_blocks_gives_empty_result():
    result = scan({}, FakeMemory({}), [RootRegion(DATA, DATA + 64, "data")])
    assert (result.kinds, result.leader, result.scanned_bytes, result.unreadable_bytes) == ({}, {}, 0, 0)
    assert result.summary({}) == {k: {"bytes": 0, "blocks": 0} for k in ("definite", "indirect", "possible",
                                                                           "reachable")}


def test_word_size_4():
    base = 0x0804_0000
    blocks = {base: 8, base + 16: 8, base + 32: 8}
    memory = FakeMemory({base: words(base + 16, 0, word_size=4), base + 16: words(0, 0, word_size=4),
                         base + 32: words(base, 0, word_size=4), 0x0805_0000: words(base + 36, word_size=4)})
    result = scan(blocks, memory, [RootRegion(0x0805_0000, 0x0805_0004, "data")], word_size=4)
    assert kinds(result) == {base: "possible", base + 16: "possible", base + 32: "possible"}


def test_unaligned_block_scans_its_aligned_words_and_is_reached_by_its_start():
    start = HEAP + 4  # a custom allocator's block, not word-aligned
    target = HEAP + 64
    memory = FakeMemory({HEAP: words(0, target, 0, 0), target: words(0), DATA: words(start)})
    result = scan({start: 20, target: 8}, memory, [RootRegion(DATA, DATA + 8, "data")])
    assert kinds(result) == {start: "reachable", target: "reachable"}
    assert (HEAP + 8, 16) in memory.reads  # [start, start+20) holds the whole words at +4 and +12


def test_negative_size_counts_as_empty_and_bad_word_size_is_refused():
    heap = Heap()
    a = heap.alloc(1)
    heap.blocks[a] = -5
    assert kinds(heap.scan({DATA: words(a)})) == {a: "reachable"}
    with pytest.raises(ValueError):
        scan(heap.blocks, heap.memory(), [], word_size=2)


def test_heap_below_4_gib_with_unaligned_zero_runs():
    # Non-PIE heap: every address's high half is 0, so the searched pattern is four zero bytes, which also occurs
    # unaligned inside ordinary data.
    base = 0x60_0000
    filler = 0x0101_0101_0101_0101
    unaligned_zeros = 0x0101_0000_0000_0101
    blocks = {base: 8 * 40, base + 0x400: 8}
    data = [filler] * 40
    data[10] = unaligned_zeros
    data[11] = base + 0x400
    memory = FakeMemory({base: words(*data), base + 0x400: words(filler), DATA: words(base)})
    result = scan(blocks, memory, [RootRegion(DATA, DATA + 8, "data")])
    assert kinds(result) == {base: "reachable", base + 0x400: "reachable"}


# -- phase 2 --------------------------------------------------------------------------------------------------------
def test_list_head_is_definite_and_its_nine_nodes_indirect_through_it():
    heap = Heap()
    nodes = [heap.alloc(0, n) for n in range(9)]
    for node, following in zip(nodes, nodes[1:]):
        heap.set(node, 0, following)
    head = heap.alloc(nodes[0], 9)
    result = heap.scan({DATA: words(0, 1, 2)})
    assert result.kinds[head] == Kind.DEFINITE
    assert all(result.kinds[n] == Kind.INDIRECT for n in nodes)
    assert result.leader == {n: head for n in nodes}


def test_cycle_of_two_unreferenced_blocks_lower_address_leads():
    # As valgrind: leaders are taken in address order, so the lower block is "definitely lost", the other indirect.
    heap = Heap()
    a = heap.alloc(0)
    b = heap.alloc(a)
    heap.set(a, 0, b)
    result = heap.scan()
    assert kinds(result) == {a: "definite", b: "indirect"}
    assert result.leader == {b: a}


def test_self_pointing_block_is_definite():
    heap = Heap()
    a = heap.alloc(0)
    heap.set(a, 0, a)
    assert kinds(heap.scan()) == {a: "definite"}


def test_later_leader_absorbs_earlier_leader_and_its_members():
    # a -> b (a's clique), then c -> a: c is taken after a, reaches it, and a with its member b join c's clique,
    # as valgrind merges the earlier clique's indirect size into the later leader's.
    heap = Heap()
    a = heap.alloc(0)
    b = heap.alloc(7)
    c = heap.alloc(a)
    heap.set(a, 0, b)
    result = heap.scan()
    assert kinds(result) == {a: "indirect", b: "indirect", c: "definite"}
    assert result.leader == {a: c, b: c}


def test_indirect_through_interior_pointer_and_shared_child_counted_once():
    heap = Heap()
    child = heap.alloc(1, 2, 3)
    first = heap.alloc(child + 8)
    second = heap.alloc(child)
    result = heap.scan()
    assert kinds(result) == {child: "indirect", first: "definite", second: "definite"}
    assert result.leader == {child: first}


def test_leaked_block_pointing_to_reachable_block_leaves_it_reachable():
    heap = Heap()
    kept = heap.alloc(1)
    lost = heap.alloc(kept)
    assert kinds(heap.scan({DATA: words(kept)})) == {kept: "reachable", lost: "definite"}


def test_possible_block_is_not_swept_into_a_clique():
    heap = Heap()
    maybe = heap.alloc(1, 2)
    lost = heap.alloc(maybe)
    result = heap.scan({DATA: words(maybe + 8)})
    assert kinds(result) == {maybe: "possible", lost: "definite"}
    assert result.leader == {}


# -- robustness -----------------------------------------------------------------------------------------------------
def test_partial_and_failed_reads_do_not_crash_and_count_unreadable_bytes():
    heap = Heap()
    target = heap.alloc(1)
    hidden = heap.alloc(2)
    holder = heap.alloc(target, hidden, 0, 0)
    heap.contents[holder] = words(target) + b"\1\2\3"  # 11 of 32 bytes readable: one whole word
    unreadable = heap.alloc(target, 0)
    del heap.contents[unreadable]
    memory = heap.memory({DATA: words(holder, unreadable)})
    roots = [RootRegion(DATA, DATA + 16, "data"), RootRegion(0x1000, 0x1040, "unmapped")]
    result = scan(heap.blocks, memory, roots)
    assert kinds(result) == {target: "reachable", hidden: "definite", holder: "reachable", unreadable: "reachable"}
    # holder: 24 of 32 bytes lost (11 read, the 3 of a partial word dropped); unreadable: 16; the unmapped root: 64
    assert result.unreadable_bytes == 24 + 16 + 64
    assert result.scanned_bytes == 16 + 8 + 8 + 8  # root, holder's whole word, target and hidden


def test_reads_that_raise_are_treated_as_unreadable():
    heap = Heap()
    a = heap.alloc(1)
    memory = FakeMemory({}, raising=True)
    result = scan(heap.blocks, memory, [RootRegion(DATA, DATA + 8, "data")])
    assert kinds(result) == {a: "definite"}
    assert result.unreadable_bytes == 16


def test_overlong_read_is_cut_to_the_requested_size():
    class Generous(FakeMemory):
        def read(self, address, size):
            return super().read(address, size) + b"\xff" * 64

    heap = Heap()
    a = heap.alloc(1)
    b = heap.alloc(a)
    result = scan(heap.blocks, Generous(heap.contents), [], [b])
    assert kinds(result) == {a: "reachable", b: "reachable"}
    assert result.scanned_bytes == 16


def test_huge_block_is_scanned_only_up_to_max_block_scan():
    heap = Heap()
    near = heap.alloc(1)
    far = heap.alloc(2)
    huge = heap.alloc(size=3 << 20)
    heap.set(huge, 10, near)
    heap.set(huge, (2 << 20) // 8, far)
    memory = heap.memory()
    result = scan(heap.blocks, memory, [], [huge], max_block_scan=1 << 20)
    assert kinds(result) == {near: "reachable", far: "definite", huge: "reachable"}
    big_reads = [size for address, size in memory.reads if huge <= address < huge + (3 << 20)]
    assert sum(big_reads) == 1 << 20
    assert max(size for _, size in memory.reads) <= shared.PIECE_BYTES
    assert result.scanned_bytes == (1 << 20) + 16


def test_large_block_read_in_pieces_finds_pointers_in_every_piece():
    heap = Heap()
    targets = [heap.alloc(n) for n in range(3)]
    big = heap.alloc(size=3 * shared.PIECE_BYTES)
    for n, t in enumerate(targets):
        heap.set(big, n * shared.PIECE_BYTES // 8 + 5, t)
    lost = heap.alloc(size=3 * shared.PIECE_BYTES)
    heap.set(lost, 3 * shared.PIECE_BYTES // 8 - 1, big)
    result = heap.scan()
    assert kinds(result) == {**{t: "indirect" for t in targets}, big: "indirect", lost: "definite"}
    assert result.leader == {t: lost for t in [*targets, big]}


def test_blocks_spread_over_many_high_halves_still_resolve():
    # More distinct high 32-bit halves than the literal search handles: the word-by-word path must agree.
    blocks, regions = {}, {}
    addresses = [(0x10 + i) << 32 for i in range(word_search.MAX_PREFIXES + 4)]
    for i, address in enumerate(addresses):
        blocks[address] = 16
        regions[address] = words(addresses[i + 1] if i + 1 < len(addresses) else 0, 0)
    regions[DATA] = words(addresses[0])
    result = scan(blocks, FakeMemory(regions), [RootRegion(DATA, DATA + 8, "data")])
    assert set(result.kinds.values()) == {Kind.REACHABLE}


def test_each_block_is_read_once_whole_and_in_address_order():
    heap = Heap()
    blocks = [heap.alloc(n, 0, size=13) for n in range(20)]
    heap.set(blocks[3], 0, blocks[7])
    memory = heap.memory({DATA: words(blocks[3], blocks[5] + 4)})
    scan(heap.blocks, memory, [RootRegion(DATA, DATA + 16, "data")])
    block_reads = [(a, size) for a, size in memory.reads if a in heap.blocks]
    assert block_reads == [(a, 8) for a in blocks]  # 13 requested bytes: one whole word
    assert len(memory.reads) == len(blocks) + 1


# -- summary and referrers ------------------------------------------------------------------------------------------
def test_summary_sums_bytes_and_blocks_per_kind():
    heap = Heap()
    kept = heap.alloc(1, size=10)
    maybe = heap.alloc(1, 2, 3)
    child = heap.alloc(4, size=8)
    head = heap.alloc(child, size=100)
    result = heap.scan({DATA: words(kept, maybe + 8)})
    assert result.summary(heap.blocks) == {
        "definite": {"bytes": 100, "blocks": 1},
        "indirect": {"bytes": 8, "blocks": 1},
        "possible": {"bytes": 24, "blocks": 1},
        "reachable": {"bytes": 10, "blocks": 1},
    }
    assert list(result.summary({})) == ["definite", "indirect", "possible", "reachable"]
    assert head in result.kinds


def test_referrers_finds_root_and_block_words_with_interior_flag():
    heap = Heap()
    target = heap.alloc(1, 2, 3)
    holder = heap.alloc(0, target + 16)
    heap.set(target, 0, target)  # its own word: not a referrer
    stack = words(0, 0, target)
    memory = heap.memory({DATA: words(7, target), STACK: stack})
    roots = [RootRegion(DATA, DATA + 16, "app .data"), RootRegion(STACK, STACK + 24, "thread 1 stack")]
    found = referrers(target, 24, heap.blocks, memory, roots)
    assert found == [
        Referrer(DATA + 8, target, False, None, "app .data"),
        Referrer(STACK + 16, target, False, None, "thread 1 stack"),
        Referrer(holder + 8, target + 16, True, holder, None),
    ]
    assert referrers(target, 0, heap.blocks, memory, roots) == found[:2]
    assert referrers(target, 24, heap.blocks, memory, roots, limit=1) == found[:1]
    assert referrers(target, 24, heap.blocks, memory, roots, limit=3) == found
    assert referrers(target, 24, heap.blocks, memory, roots, limit=0) == []


def test_scan_with_watch_finds_the_referrers_in_the_same_pass():
    heap = Heap()
    target = heap.alloc(1, 2, 3)
    heap.alloc(0, target + 16)  # holds an interior pointer to target
    heap.set(target, 0, target)  # its own word: not a referrer
    memory = heap.memory({DATA: words(7, target), STACK: words(0, 0, target)})
    roots = [RootRegion(DATA, DATA + 16, "app .data"), RootRegion(STACK, STACK + 24, "thread 1 stack")]
    result = scan(heap.blocks, memory, roots, watch=target)
    assert result.referrers == referrers(target, 24, heap.blocks, memory, roots)
    assert result.kinds == scan(heap.blocks, memory, roots).kinds
    assert scan(heap.blocks, memory, roots, watch=target, limit=2).referrers == result.referrers[:2]
    assert scan(heap.blocks, memory, roots).referrers == []


def test_referrers_address_inside_large_block_pieces():
    heap = Heap()
    target = heap.alloc(1)
    big = heap.alloc(size=2 * shared.PIECE_BYTES + 64)
    heap.set(big, shared.PIECE_BYTES // 8 + 3, target)
    found = referrers(target, 8, heap.blocks, heap.memory(), [])
    assert found == [Referrer(big + shared.PIECE_BYTES + 24, target, False, big, None)]


# -- benchmark ----------------------------------------------------------------------------------------------------
def test_span_reads_cover_adjacent_blocks_and_ignore_the_words_between_them(backend):
    heap = Heap()
    nodes = [heap.alloc(0, n, size=24) for n in range(50)]  # 24 bytes each, 32 apart: 8 bytes between blocks
    for node, following in zip(nodes, nodes[1:]):
        heap.set(node, 0, following)
    memory = SpanMemory({**heap.contents, DATA: words(nodes[0])}, filler=nodes[-1])
    result = scan(heap.blocks, memory, [RootRegion(DATA, DATA + 8, "data")])
    assert set(result.kinds.values()) == {Kind.REACHABLE}
    memory = SpanMemory({**heap.contents, DATA: words(nodes[1])}, filler=nodes[0])
    result = scan(heap.blocks, memory, [RootRegion(DATA, DATA + 8, "data")])
    assert result.kinds[nodes[0]] == Kind.DEFINITE  # the filler between blocks points at it: not a pointer
    assert result.scanned_bytes == 8 + 24 * len(nodes)
    if backend == "numpy":
        assert memory.spans == [(nodes[0], nodes[-1] + 24 - nodes[0])]
        assert not [a for a, _ in memory.reads if a in heap.blocks]


def test_short_span_read_falls_back_to_block_reads_and_counts_unreadable_bytes():
    heap = Heap()
    nodes = [heap.alloc(n, size=16) for n in range(10)]
    contents = dict(heap.contents)
    del contents[nodes[-1]]  # the last block is unreadable: the span comes back short
    memory = SpanMemory({**contents, DATA: words(nodes[2])}, filler=nodes[3])
    result = scan(heap.blocks, memory, [RootRegion(DATA, DATA + 8, "data")])
    assert result.kinds[nodes[2]] == Kind.REACHABLE and result.kinds[nodes[3]] == Kind.DEFINITE
    assert result.unreadable_bytes == 16
    assert result.scanned_bytes == 8 + 16 * 9


def test_synthetic_scan_benchmark_runs_and_classifies():
    from bench.scan_synthetic import benchmark

    counts = benchmark(2000, report=None)
    assert (counts["reachable"], counts["definite"], counts["indirect"], counts["possible"]) == (1000, 200, 800, 0)
    assert counts["seconds"] >= 0


# -- property: agrees with a slow, obviously correct reference ---------------------------------------------------
def reference(blocks: dict[int, int], contents: dict[int, list[int]], root_words: list[int]):
    """Straight from the definitions: per-block words, fixpoints by repeated passes, valgrind's clique order."""
    order = sorted(blocks)

    def target(value):
        for a in order:
            if value == a:
                return a, False
            if a < value < a + blocks[a]:
                return a, True
        return None

    def pointers(a):
        for w in contents[a][:blocks[a] // 8]:
            hit = target(w)
            if hit:
                yield hit

    reachable = set()
    changed = True
    while changed:  # start pointers from roots or reachable blocks
        changed = False
        for source in [None, *sorted(reachable)]:
            values = root_words if source is None else contents[source][:blocks[source] // 8]
            for w in values:
                hit = target(w)
                if hit and not hit[1] and hit[0] not in reachable:
                    reachable.add(hit[0])
                    changed = True
    reached = {hit[0] for hit in map(target, root_words) if hit}
    frontier = list(reached)
    while frontier:
        a = frontier.pop()
        for b, _ in pointers(a):
            if b not in reached:
                reached.add(b)
                frontier.append(b)
    kinds = {a: "reachable" if a in reachable else "possible" if a in reached else None for a in order}
    owner: dict[int, int] = {}
    for head in order:
        if kinds[head] is not None:
            continue
        kinds[head] = "definite"
        seen, frontier = {head}, [head]
        while frontier:
            a = frontier.pop()
            for b, _ in pointers(a):
                if b in seen:
                    continue
                seen.add(b)
                if kinds[b] is None or (kinds[b] == "definite" and b != head):
                    was_leader = kinds[b] == "definite"
                    kinds[b] = "indirect"
                    owner[b] = head
                    if was_leader:
                        for member, lead in owner.items():
                            if lead == b:
                                owner[member] = head
                    frontier.append(b)
    return kinds, owner


@st.composite
def heaps(draw):
    n = draw(st.integers(0, 12))
    stride = draw(st.sampled_from([64, 1 << 32]))
    base = draw(st.sampled_from([HEAP, 0x7FFF_F000_0000, 0x60_0000]))  # the last: a non-PIE heap, high half 0
    starts = [base + i * stride for i in range(n)]
    sizes = [draw(st.sampled_from([0, 1, 8, 15, 16, 24, 40, 48])) for _ in range(n)]

    def value():
        if not n:
            return draw(st.integers(0, (1 << 64) - 1))
        i = draw(st.integers(0, n - 1))
        return draw(st.one_of(
            st.just(starts[i]),
            st.integers(0, max(sizes[i] - 1, 0)).map(lambda off: starts[i] + off),
            st.just(starts[i] + sizes[i]),
            st.integers(0, (1 << 64) - 1),
        ))

    contents = {a: [value() if draw(st.booleans()) else 0 for _ in range((s + 7) // 8)]
                for a, s in zip(starts, sizes)}
    roots = [value() for _ in range(draw(st.integers(0, 4)))]
    registers = [value() for _ in range(draw(st.integers(0, 2)))]
    return dict(zip(starts, sizes)), contents, roots, registers


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(heap=heaps(), small_batches=st.booleans(), spans=st.booleans(), filler=st.integers(0, 12))
def test_scan_matches_reference_on_random_heaps(backend, heap, small_batches, spans, filler):
    blocks, contents, roots, registers = heap
    regions = {a: words(*ws) for a, ws in contents.items() if ws}
    regions[DATA] = words(*roots)
    order = sorted(blocks)
    memory = SpanMemory(regions, order[filler % len(order)] if order else 0) if spans else FakeMemory(regions)
    with patch.object(shared, "PIECE_BYTES", 16 if small_batches else shared.PIECE_BYTES), \
            patch.object(shared, "BATCH_BYTES", 24 if small_batches else shared.BATCH_BYTES), \
            (small_steps(backend) if small_batches else contextlib.nullcontext()):
        result = scan(blocks, memory, [RootRegion(DATA, DATA + 8 * len(roots), "data")], registers)
    expected_kinds, expected_owner = reference(blocks, contents, roots + registers)
    assert set(result.kinds) == set(blocks)
    assert kinds(result) == expected_kinds
    assert result.leader == expected_owner
    assert all(result.kinds[lead] == Kind.DEFINITE for lead in result.leader.values())
    assert set(result.leader) == {a for a, k in result.kinds.items() if k == Kind.INDIRECT}
    assert result.unreadable_bytes == 0



# -- which implementation -------------------------------------------------------------------------------------------
def test_numpy_built_for_another_python_is_refused_with_one_line(backend, tmp_path, monkeypatch):
    from importlib.machinery import ModuleSpec

    origin = tmp_path / "lib" / "python3.99" / "site-packages" / "numpy" / "__init__.py"
    spec = ModuleSpec("numpy", None, origin=str(origin))
    monkeypatch.setattr(backends.importlib.util, "find_spec", lambda name: spec if name == "numpy" else None)
    monkeypatch.setattr(backends, "_backend", None)
    problem = backends.numpy_problem()
    assert problem is not None and "\n" not in problem
    assert "Python 3.99" in problem and "pure Python" in problem
    assert backends.numpy_backend() == (None, problem)
    monkeypatch.setattr(backends, "BACKEND", "auto")
    heap = Heap()
    a = heap.alloc(1)
    assert kinds(heap.scan({DATA: words(a)})) == {a: "reachable"}  # the pure scan answers


def test_numpy_not_installed_is_one_line(backend, monkeypatch):
    # numpy is a dependency: missing from GDB's Python, it is said (once, at load) and the pure scan runs
    monkeypatch.setattr(backends.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(backends, "_backend", None)
    problem = backends.numpy_problem()
    assert problem is not None and "\n" not in problem
    assert problem.startswith("numpy is not installed for GDB's Python") and "pure Python" in problem
    assert backends.numpy_backend() == (None, problem)
