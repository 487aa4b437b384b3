"""valgrind's leak-check heuristics in the reachability scan (both implementations), on a fake memory."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_reachability import DATA, HEAP, FakeMemory, Heap, SpanMemory, kinds, words

import scan_backends
from gdb_memleak.core import heuristics as hx
from gdb_memleak.core.scan import RootRegion, scan, shared
from gdb_memleak.core.scan import backend as backends
from scan_backends import small_steps

pytestmark = pytest.mark.usefixtures("backend")  # every test runs on the pure and on the numpy scan
backend = scan_backends.backend

TEXT = 0x5555_5555_0000  # the program's code (r-x, file-backed)
RODATA = 0x5555_5555_4000  # its read-only data, where vtables are (r--, file-backed)


@dataclass(frozen=True)
class Region:
    start: int
    end: int
    perms: str
    path: str


MAPPINGS = [Region(TEXT, TEXT + 0x1000, "r-xp", "/usr/bin/prog"), Region(RODATA, RODATA + 0x1000, "r--p",
                                                                        "/usr/bin/prog"),
            Region(DATA, DATA + 0x1000, "rw-p", "/usr/bin/prog"), Region(HEAP, HEAP + 0x100000, "rw-p", "[heap]")]
VTABLE_A = RODATA + 0x10  # two function pointers into TEXT
VTABLE_B = RODATA + 0x40  # a null entry, then two
NOT_VTABLE = RODATA + 0x80  # a function pointer, then a pointer into the heap
RODATA_WORDS = {VTABLE_A: [TEXT + 0x100, TEXT + 0x180], VTABLE_B: [0, TEXT + 0x200, TEXT + 0x240],
                NOT_VTABLE: [TEXT + 0x100, HEAP]}


def rodata() -> bytes:
    data = bytearray(0x1000)
    for address, values in RODATA_WORDS.items():
        data[address - RODATA:address - RODATA + 8 * len(values)] = words(*values)
    return bytes(data)


def run(heap: Heap, root_words: list[int], enabled=hx.NAMES, registers=()):
    memory = heap.memory({DATA: words(*root_words), RODATA: rodata()})
    found = scan(heap.blocks, memory, [RootRegion(DATA, DATA + 8 * len(root_words), "data")], registers,
                 heuristics=hx.Heuristics(frozenset(enabled), MAPPINGS))
    return kinds(found), found.heuristics


def string_block(heap: Heap, length: int, capacity: int) -> int:
    return heap.alloc(length, capacity, 0, size=3 * 8 + capacity + 1)


# -- each heuristic ----------------------------------------------------------------------------------------------------
def test_stdstring_characters_pointer_keeps_the_block_reachable():
    heap = Heap()
    s = string_block(heap, 40, 40)
    assert run(heap, [s + 24]) == ({s: "reachable"}, {s: "stdstring"})
    assert run(heap, [s + 24], enabled=()) == ({s: "possible"}, {})


def test_stdstring_needs_size_from_capacity_and_length_within_it():
    heap = Heap()
    wrong_size = heap.alloc(10, 40, 0, size=64)
    too_long = string_block(heap, 41, 40)
    assert run(heap, [wrong_size + 24, too_long + 24]) == ({wrong_size: "possible", too_long: "possible"}, {})


def test_length64_and_its_precedence_over_newarray():
    heap = Heap()
    b = heap.alloc(48, size=56)
    assert run(heap, [b + 8]) == ({b: "reachable"}, {b: "length64"})
    assert run(heap, [b + 8], enabled=("newarray",)) == ({b: "reachable"}, {b: "newarray"})


def test_newarray_needs_a_count_dividing_the_rest():
    heap = Heap()
    array = heap.alloc(5, size=8 + 5 * 12)
    odd = heap.alloc(7, size=48)
    empty = heap.alloc(0, size=48)
    assert run(heap, [array + 8, odd + 8, empty + 8]) == (
        {array: "reachable", odd: "possible", empty: "possible"}, {array: "newarray"})


def test_offset_eight_only_for_length64_and_newarray():
    heap = Heap()
    b = heap.alloc(48, 0, size=56)
    assert run(heap, [b + 16]) == ({b: "possible"}, {})


def test_multiple_inheritance_needs_both_words_to_be_vtables():
    heap = Heap()
    both = heap.alloc(VTABLE_A, 1, VTABLE_B, 2)
    first_not = heap.alloc(NOT_VTABLE, 1, VTABLE_B, 2)
    inner_not = heap.alloc(VTABLE_A, 1, NOT_VTABLE, 2)
    found = run(heap, [both + 16, first_not + 16, inner_not + 16])
    assert found == ({both: "reachable", first_not: "possible", inner_not: "possible"}, {both: "multipleinheritance"})
    found = run(heap, [both + 16, first_not, inner_not], enabled=("stdstring", "length64", "newarray"))
    assert found == ({both: "possible", first_not: "reachable", inner_not: "reachable"}, {})


def test_vtable_must_be_in_a_file_mapping_and_point_at_code():
    heap = Heap()
    in_heap = heap.alloc(0, 0)
    fake = heap.alloc(in_heap, 1, in_heap, 2)  # "vtables" in the heap: anonymous memory is never a vtable
    assert run(heap, [fake + 16]) == ({in_heap: "possible", fake: "possible"}, {})


def test_multiple_inheritance_word_must_lie_inside_the_block():
    heap = Heap()
    b = heap.alloc(VTABLE_A, VTABLE_B, size=12)  # the word at + 8 runs past the block's 12 bytes
    assert run(heap, [b + 8]) == ({b: "possible"}, {})


# -- attribution -------------------------------------------------------------------------------------------------------
def test_start_pointer_anywhere_scanned_wins_over_the_heuristic():
    heap = Heap()
    s = string_block(heap, 5, 40)
    holder = heap.alloc(s)  # a reachable block holding the string block's start
    assert run(heap, [s + 24, holder]) == ({s: "reachable", holder: "reachable"}, {})


def test_register_pointer_is_judged_like_a_root_word():
    heap = Heap()
    b = heap.alloc(48, size=56)
    memory = heap.memory({RODATA: rodata()})
    found = scan(heap.blocks, memory, [], [b + 8], heuristics=hx.Heuristics(frozenset(hx.NAMES), MAPPINGS))
    assert (kinds(found), found.heuristics) == ({b: "reachable"}, {b: "length64"})


def test_heuristic_pointer_from_a_reachable_block():
    heap = Heap()
    array = heap.alloc(3, size=8 + 3 * 16)
    holder = heap.alloc(0, array + 8)
    assert run(heap, [holder]) == ({array: "reachable", holder: "reachable"}, {array: "newarray"})


def test_through_a_possible_block_the_target_stays_possible_but_counts_under_the_heuristic():
    """valgrind's quirk: the heuristic is remembered whatever the block's kind, and its summary counts it."""
    heap = Heap()
    sized = heap.alloc(32, size=40)
    holder = heap.alloc(0x7878787878787878, 0, sized + 8, 0)
    assert run(heap, [holder + 8]) == ({sized: "possible", holder: "possible"}, {sized: "length64"})


def test_possible_block_with_a_rejected_interior_pointer_counts_under_none():
    heap = Heap()
    sized = heap.alloc(32, size=40)
    holder = heap.alloc(0x7878787878787878, sized + 8, sized + 16, 0)
    assert run(heap, [holder + 8]) == ({sized: "possible", holder: "possible"}, {})


def test_lost_blocks_reached_through_heuristic_pointers_are_definite_and_indirect():
    heap = Heap()
    sized = heap.alloc(32, size=40)
    holder = heap.alloc(0, sized + 8)
    assert run(heap, []) == ({sized: "indirect", holder: "definite"}, {})


def test_no_heuristics_object_means_none():
    heap = Heap()
    b = heap.alloc(48, size=56)
    memory = heap.memory({DATA: words(b + 8)})
    found = scan(heap.blocks, memory, [RootRegion(DATA, DATA + 8, "data")])
    assert (kinds(found), found.heuristics) == ({b: "possible"}, {})


# -- settings syntax ---------------------------------------------------------------------------------------------------
def test_parse_and_spell_heuristic_sets():
    assert hx.parse_heuristics("all") == frozenset(hx.NAMES)
    assert hx.parse_heuristics("none") == frozenset()
    assert hx.parse_heuristics("newarray, stdstring") == frozenset({"newarray", "stdstring"})
    assert hx.heuristics_text(hx.parse_heuristics("newarray,stdstring")) == "stdstring,newarray"
    assert hx.heuristics_text(frozenset(hx.NAMES)) == "all"
    assert hx.heuristics_text(()) == "none"
    for bad in ("", "std", "all,none", "none,length64"):
        with pytest.raises(ValueError):
            hx.parse_heuristics(bad)


# -- property: both scans agree, and kinds follow "accepted interior pointer = start pointer" -------------------------
def accepted(value: int, block: int, size: int, contents: dict[int, list[int]], enabled) -> bool:
    """A slow reading of valgrind's rules for one interior pointer."""
    offset = value - block
    w = contents[block] + [0, 0]
    if offset % 8:
        return False
    if "stdstring" in enabled and offset == 24 and 24 + w[1] + 1 == size and w[0] <= w[1]:
        return True
    if offset == 8 and w[0] > 0 and size > 8:
        if "length64" in enabled and size - 8 == w[0]:
            return True
        if "newarray" in enabled and (size - 8) % w[0] == 0:
            return True
    if "multipleinheritance" in enabled and offset + 8 <= size:
        inner = contents[block][offset // 8]
        return is_vtable(w[0]) and is_vtable(inner)
    return False


def is_vtable(value: int) -> bool:
    return value in (VTABLE_A, VTABLE_B)


def reference_kinds(blocks: dict[int, int], contents: dict[int, list[int]], root_words: list[int], enabled):
    order = sorted(blocks)

    def target(value):
        for a in order:
            if value == a or (a < value < a + blocks[a]):
                start = value == a or accepted(value, a, blocks[a], contents, enabled)
                return a, start
        return None

    def out_of(source):
        values = root_words if source is None else contents[source][:blocks[source] // 8]
        return [hit for hit in map(target, values) if hit]

    reachable: set[int] = set()
    frontier = [None]
    while frontier:
        source = frontier.pop()
        for b, start in out_of(source):
            if start and b not in reachable:
                reachable.add(b)
                frontier.append(b)
    reached = set(reachable)
    frontier = [b for b, _ in out_of(None)] + list(reachable)
    while frontier:
        a = frontier.pop()
        reached.add(a)
        for b, _ in out_of(a):
            if b not in reached:
                reached.add(b)
                frontier.append(b)
    return {a: "reachable" if a in reachable else "possible" for a in order if a in reached}


@st.composite
def heaps(draw):
    n = draw(st.integers(1, 10))
    starts = [HEAP + i * 128 for i in range(n)]
    sizes = [draw(st.sampled_from([8, 12, 16, 25, 32, 40, 41, 56, 64, 65])) for _ in range(n)]

    def value():
        i = draw(st.integers(0, n - 1))
        return draw(st.one_of(st.just(starts[i]), st.sampled_from([8, 16, 24]).map(lambda off: starts[i] + off),
                              st.sampled_from([8, 24]).map(lambda off: starts[i] + off),
                              st.sampled_from([VTABLE_A, VTABLE_B, NOT_VTABLE, 0, 1, 3, 5, 16, 32, 40, 48]),
                              st.integers(0, 64)))

    def head(size):  # first words some heuristic may accept, or not quite
        return draw(st.sampled_from([[size - 8], [size - 16], [2], [3], [size - 25, size - 25],
                                     [size - 26, size - 25], [size - 24, size - 25], [VTABLE_A], [VTABLE_B],
                                     [NOT_VTABLE], []]))

    contents = {}
    for a, size in zip(starts, sizes):
        values = [value() for _ in range(size // 8)]
        first = [w % (1 << 64) for w in head(size)][:len(values)]
        contents[a] = first + values[len(first):]
    roots = [value() for _ in range(draw(st.integers(0, 4)))]
    enabled = draw(st.sets(st.sampled_from(hx.NAMES)))
    return dict(zip(starts, sizes)), contents, roots, enabled


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(heap=heaps(), spans=st.booleans(), small_batches=st.booleans())
def test_kinds_follow_the_rules_and_both_scans_agree(backend, heap, spans, small_batches):
    blocks, contents, roots, enabled = heap
    regions = {a: words(*ws) for a, ws in contents.items() if ws}
    regions[DATA] = words(*roots)
    regions[RODATA] = rodata()
    memory = SpanMemory(regions, 0) if spans else FakeMemory(regions)
    heuristics = hx.Heuristics(frozenset(enabled), MAPPINGS)
    region = [RootRegion(DATA, DATA + 8 * len(roots), "data")]
    with patch.object(shared, "PIECE_BYTES", 16 if small_batches else shared.PIECE_BYTES), \
            patch.object(shared, "BATCH_BYTES", 24 if small_batches else shared.BATCH_BYTES), \
            (small_steps(backend) if small_batches else contextlib.nullcontext()):
        result = scan(blocks, memory, region, heuristics=heuristics)
    found = kinds(result)
    assert {a: k for a, k in found.items() if k in ("reachable", "possible")} == reference_kinds(
        blocks, contents, roots, enabled)
    assert set(result.heuristics.values()) <= set(enabled)
    with patch.object(backends, "BACKEND", "python"):
        pure = scan(blocks, FakeMemory(regions), region, heuristics=hx.Heuristics(frozenset(enabled), MAPPINGS))
    assert (found, result.heuristics, result.leader) == (kinds(pure), pure.heuristics, pure.leader)
