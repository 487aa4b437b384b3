"""The table's live blocks as one type (core/liveblocks.BlockSet: a dict of Blocks, or the recorder's columns) and a
recorder's table loaded after `memleak reset` (core/recorded.py): the same figures as the breakpoint engine's table,
which was cleared at the reset and saw only what came after. Each test runs on both implementations."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gdb_memleak.core.liveblocks import BlockDict, BlockSet
from gdb_memleak.core.model import Block
from gdb_memleak.core.recorded import Recording
from gdb_memleak.core.table import AllocationTable
from gdb_memleak.core.timeline import Point

STACKS = [(0x401001, 0x401000), (0x401002,), ()]


def as_dict(blocks: dict[int, Block]) -> BlockSet:
    return BlockDict(blocks)


def as_columns(blocks: dict[int, Block]) -> BlockSet:
    pytest.importorskip("numpy")
    from gdb_memleak.core.live import LiveColumns

    return LiveColumns.from_blocks(blocks)


IMPLEMENTATIONS = pytest.mark.parametrize("make", [as_dict, as_columns], ids=["dict", "columns"])


class Program:
    """Allocator calls as a program makes them, seen twice: by the recorder (which counts everything, reset or
    not) and by the breakpoint engine's table (cleared at `memleak reset`)."""

    def __init__(self) -> None:
        self.recorder = AllocationTable()   # what the recorder's memory holds
        self.breakpoints = AllocationTable()  # the breakpoint engine's table
        self.next_address = 0x1000
        self.clock = 0.0

    def malloc(self, size: int, stack: int = 0) -> int:
        address, self.next_address = self.next_address, self.next_address + 0x100
        self.clock += 1.0
        for table in (self.recorder, self.breakpoints):
            table.on_alloc(address, size, "malloc", 1, STACKS[stack], self.clock)
        return address

    def free(self, address: int) -> None:
        self.clock += 1.0
        for table in (self.recorder, self.breakpoints):
            table.on_free(address, "free", 1, (0x401100,), self.clock)

    def reset(self, make, table: AllocationTable) -> None:
        """`memleak reset`: the recorder engine reads the recorder's table first, as AgentEngine.reset does."""
        table.load_recorded(self.recording(make))
        self.clock += 1.0
        self.breakpoints.reset(self.clock)
        table.reset(self.clock)

    def recording(self, make, points: list[Point] | None = None) -> Recording:
        """The recorder's table as a read gives it, its blocks held as `make` holds them."""
        r = self.recorder
        return Recording(make(dict(r.blocks.editable())), list(r.freed.values()), replace(r.counters), r.last_seq,
                         self.clock, list(points or []))


def reset_after_one_block(make, size: int) -> tuple[Program, AllocationTable]:
    """A program that allocated one block of `size`, and the recorder engine's table reset after it."""
    program = Program()
    program.malloc(size)
    table = AllocationTable()
    program.reset(make, table)
    return program, table


def figures(table: AllocationTable) -> tuple:
    c = table.counters
    return ({b.address: (b.size, b.seq) for b in table.live()}, sorted(table.freed), table.last_seq,
            (c.allocs, c.frees, c.bytes_allocated, c.live_blocks, c.live_bytes, c.untracked_frees, c.failed_allocs),
            table.complete)


@IMPLEMENTATIONS
def test_a_recording_loaded_without_a_reset_is_the_recorders_table(make):
    program = Program()
    a = program.malloc(10)
    program.malloc(20, 1)
    program.free(a)
    table = AllocationTable()
    table.load_recorded(program.recording(make))
    assert figures(table) == figures(program.breakpoints)
    assert table.counters.peak_bytes == 30


@IMPLEMENTATIONS
def test_after_a_reset_a_recording_leaves_out_what_came_before(make):
    program = Program()
    old = [program.malloc(10), program.malloc(20), program.malloc(40)]
    table = AllocationTable()
    program.reset(make, table)
    new = [program.malloc(100), program.malloc(200, 1)]
    program.free(old[0])   # allocated before the reset: an untracked free
    program.free(new[0])
    table.load_recorded(program.recording(make))
    assert figures(table) == figures(program.breakpoints)
    assert set(table.blocks) == {new[1]} and table.blocks.total_bytes() == 200
    assert table.counters.untracked_frees == 1 and table.complete is False
    assert list(table.freed) == [new[0]]  # the remembered free of an older block is left out too


@IMPLEMENTATIONS
def test_reading_again_counts_the_untracked_frees_once(make):
    """Each read replaces the figures: a second read after more frees of older blocks does not add the first
    read's untracked frees again (they were counted twice, three times ... one per read)."""
    program = Program()
    old = [program.malloc(10) for _ in range(3)]
    table = AllocationTable()
    program.reset(make, table)
    program.free(old[0])
    table.load_recorded(program.recording(make))
    assert table.counters.untracked_frees == 1
    program.free(old[1])
    table.load_recorded(program.recording(make))
    table.load_recorded(program.recording(make))
    assert table.counters.untracked_frees == 2
    assert figures(table) == figures(program.breakpoints)


@IMPLEMENTATIONS
def test_a_second_reset_counts_from_itself(make):
    """The second mark is taken in the recorder's own figures, not in the ones the first reset had reduced."""
    program = Program()
    first = program.malloc(10)
    table = AllocationTable()
    program.reset(make, table)
    second = program.malloc(20)
    program.free(first)
    program.reset(make, table)
    third = program.malloc(40)
    program.free(second)
    table.load_recorded(program.recording(make))
    assert figures(table) == figures(program.breakpoints)
    assert set(table.blocks) == {third}
    c = table.counters
    assert (c.allocs, c.frees, c.bytes_allocated, c.untracked_frees) == (1, 0, 40, 1)


@IMPLEMENTATIONS
def test_a_forked_child_leaves_out_what_its_parent_reset(make):
    program, parent = reset_after_one_block(make, 10)
    later = program.malloc(20)
    parent.load_recorded(program.recording(make))
    child = parent.fork()
    child.load_recorded(program.recording(make))  # the child's copy of the recorder: the parent's blocks
    assert set(child.blocks) == {later} and child.counters.allocs == 1


@IMPLEMENTATIONS
def test_timeline_points_before_the_reset_are_left_out_and_peaks_count_from_it(make):
    program, table = reset_after_one_block(make, 1000)
    at = program.clock
    program.malloc(30)
    points = [Point(at - 0.5, 1000, 1, 1000, 1), Point(at + 0.5, 1030, 2, 1050, 2)]
    table.load_recorded(program.recording(make, points))
    assert [p.time for p in table.timeline.points] == [at + 0.5]
    assert (table.counters.live_bytes, table.counters.peak_bytes, table.counters.peak_blocks) == (30, 1050, 2)


@settings(max_examples=80, deadline=None)
@given(steps=st.lists(st.one_of(st.tuples(st.just("malloc"), st.integers(0, 500), st.integers(0, 2)),
                                st.tuples(st.just("free"), st.integers(0, 50)),
                                st.tuples(st.just("read")), st.tuples(st.just("reset"))), max_size=40),
       columns=st.booleans())
def test_any_calls_resets_and_reads_give_the_breakpoint_engines_figures(steps, columns):
    make = as_columns if columns else as_dict
    program = Program()
    table = AllocationTable()
    for step in steps:
        if step[0] == "malloc":
            program.malloc(step[1], step[2])
        elif step[0] == "free":
            live = sorted(program.recorder.blocks)
            if live:
                program.free(live[step[1] % len(live)])
        elif step[0] == "read":
            table.load_recorded(program.recording(make))
        else:
            program.reset(make, table)
    table.load_recorded(program.recording(make))
    assert figures(table) == figures(program.breakpoints)


# -- the two implementations answer alike ----------------------------------------------------------------------------
def blocks_of(sizes: list[int]) -> dict[int, Block]:
    blocks = {}
    for seq, size in enumerate(sizes, start=1):
        address = 0x5000 + 0x100 * (len(sizes) - seq)  # the latest allocation at the lowest address
        blocks[address] = Block(address, size, "malloc", 1, seq, seq / 10, STACKS[seq % len(STACKS)])
    return blocks


@IMPLEMENTATIONS
def test_a_block_set_answers_as_the_blocks_it_holds(make):
    blocks = blocks_of([32, 0, 16, 8])
    live = make(blocks)
    first = next(iter(blocks))
    assert len(live) == 4 and sorted(live) == sorted(blocks) and first in live and first + 1 not in live
    assert live[first] == blocks[first] and live.get(first) == blocks[first] and live.get(first + 8) is None
    assert sorted(live.blocks(), key=lambda b: b.address) == sorted(blocks.values(), key=lambda b: b.address)
    assert list(live.in_allocation_order()) == list(blocks.values())
    assert live.containing(first + 31) == blocks[first] and live.containing(first + 32) is None
    assert sorted(live.stacks()) == sorted({b.pcs for b in blocks.values()})
    assert live.total_bytes() == 56
    after = live.allocated_after(2)
    assert sorted(b.seq for b in after.blocks()) == [3, 4] and after.total_bytes() == 24
    sizes, _arrays = live.scan_input()
    assert dict(sizes) == {a: b.size for a, b in blocks.items()}


@IMPLEMENTATIONS
def test_an_event_changes_an_editable_copy_and_never_a_forked_childs_blocks(make):
    blocks = blocks_of([32, 16])
    parent = AllocationTable()
    parent.blocks = make(blocks)
    child = parent.fork()
    first, second = blocks
    parent.on_free(first, "free", 1, (), 1.0)
    assert isinstance(parent.blocks, BlockDict) and set(parent.blocks) == {second}
    assert set(child.blocks) == {first, second}
