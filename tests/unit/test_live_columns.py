"""The recorder's live blocks as columns (core/live.py): the same table, groups and reports as a dict of Blocks."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gdb_memleak.core.kinds import KINDS, LeakKind
from gdb_memleak.core.live import LiveColumns
from gdb_memleak.core.liveblocks import BlockDict
from gdb_memleak.core.model import Block, Frame, ProcessResult
from gdb_memleak.core.report import LeakFilter, ProcessReport
from gdb_memleak.core.reports import ReportOptions
from gdb_memleak.core.reports.text import render_by_line, render_report
from gdb_memleak.core.suppressions import SuppressionList
from gdb_memleak.core.symbols import Symbolizer
from gdb_memleak.core.table import AllocationTable

pytest.importorskip("numpy")

APP = "/home/user/app"
FRAMES = {pc: Frame(pc, f"f{pc:x}", "/home/user/app.c", pc & 0xFF, APP) for pc in range(0x401000, 0x401010)}
STACKS = [(0x401001, 0x401000), (0x401002, 0x401000), (0x401003,), (0x401004, 0x401002, 0x401000), ()]
ALLOCATORS = [("malloc", "malloc"), ("calloc", "malloc"), ("operator new", "new")]


def symbolizer() -> Symbolizer:
    return Symbolizer(lambda pc: FRAMES.get(pc, Frame(pc, "??")))


def blocks_of(rows: list[tuple[int, int, int, int]]) -> dict[int, Block]:
    """rows: (size, stack index, allocator index, thread); addresses 0x10 apart from 0x5000_0000, in seq order."""
    blocks = {}
    for seq, (size, stack, allocator, thread) in enumerate(rows, start=1):
        address = 0x5000_0000 + 0x40 * seq
        label, family = ALLOCATORS[allocator]
        blocks[address] = Block(address, size, label, thread, seq, seq / 10, STACKS[stack], family)
    return blocks


def both_reports(blocks: dict[int, Block], kinds=None, leaders=None, suppressions=None):
    """The same blocks as a dict table (breakpoint engine) and as columns (recorder engine)."""
    reports = []
    for live in (BlockDict(blocks), LiveColumns.from_blocks(blocks)):
        table = AllocationTable()
        table.blocks = live
        report = ProcessReport(ProcessResult(1, ["app"], exit_code=0), table, symbolizer(), kinds=kinds,
                               leaders=leaders)
        if suppressions is not None:
            report.suppression_source = lambda: suppressions
        reports.append(report)
    return reports


def described(groups):
    return [(g.kind, g.allocator, g.pcs, g.bytes, g.blocks, g.first_seq, sorted(int(a) for a in g.addresses),
             g.indirect_bytes, g.indirect_blocks, g.suppressed_by is not None) for g in groups]


rows_strategy = st.lists(st.tuples(st.integers(0, 5000), st.integers(0, len(STACKS) - 1),
                                   st.integers(0, len(ALLOCATORS) - 1), st.integers(1, 3)), max_size=60)


@settings(max_examples=60, deadline=None)
@given(rows=rows_strategy, data=st.data())
def test_columns_group_and_summarise_as_the_dict_table_does(rows, data):
    blocks = blocks_of(rows)
    addresses = list(blocks)
    kinds = {a: data.draw(st.sampled_from(KINDS)) for a in addresses if data.draw(st.booleans())}
    definite = [a for a in addresses if kinds.get(a) == LeakKind.DEFINITE]
    leaders = {a: data.draw(st.sampled_from(definite)) for a in addresses
               if definite and kinds.get(a) == LeakKind.INDIRECT}
    since = data.draw(st.integers(0, len(rows)))
    older = data.draw(st.one_of(st.none(), st.floats(0, 7)))
    where = LeakFilter(since_seq=since, older_than=older, now=6.0)
    plain, columns = both_reports(blocks, kinds, leaders)
    for w in (None, where):
        assert described(columns.leak_groups(w)) == described(plain.leak_groups(w))
    assert columns.leak_summary() == plain.leak_summary()


def test_columns_render_the_same_text_reports():
    blocks = blocks_of([(10, 0, 0, 1), (20, 0, 0, 1), (30, 1, 1, 2), (40, 3, 2, 1), (50, 4, 0, 1), (60, 2, 0, 1)])
    a = list(blocks)
    kinds = {a[0]: LeakKind.DEFINITE, a[1]: LeakKind.INDIRECT, a[2]: LeakKind.REACHABLE, a[3]: LeakKind.POSSIBLE}
    suppressions = SuppressionList.parse("leak:f401003\n", "test.supp")
    outputs = []
    for report in both_reports(blocks, kinds, {a[1]: a[0]}, suppressions):
        out = io.StringIO()
        render_report(report, out, ReportOptions())
        render_by_line(report, out, ReportOptions())
        outputs.append(out.getvalue())
    assert "indirect" in outputs[0] and "suppressed" in outputs[0]
    assert outputs[1] == outputs[0]


def test_groups_of_stack_ids_with_equal_trimmed_stacks_are_one_loss_record():
    """The recorder stores stacks as captured; two that end alike once cut at main are one record, as in the
    breakpoint engine."""
    blocks = blocks_of([(10, 0, 0, 1), (20, 1, 0, 1)])
    columns = LiveColumns.from_blocks(blocks)
    columns.stack_of = lambda _id: (0x401001, 0x401000)  # every id trims to the same stack
    table = AllocationTable()
    table.blocks = columns
    report = ProcessReport(ProcessResult(1, ["app"]), table, symbolizer())
    [group] = report.leak_groups()
    assert (group.bytes, group.blocks, group.first_seq) == (30, 2, 1)


def test_columns_answer_lookups_without_making_every_block():
    blocks = blocks_of([(32, 0, 0, 1), (0, 1, 1, 2), (16, 2, 2, 1)])
    columns = LiveColumns.from_blocks(blocks)
    first, empty, last = blocks
    assert len(columns) == 3 and list(columns) == [first, empty, last]
    assert columns[empty] == blocks[empty] and first in columns and first + 1 not in columns
    assert columns.get(first + 8) is None
    assert columns.containing(first + 31) == blocks[first] and columns.containing(first + 32) is None
    assert columns.containing(empty) == blocks[empty]  # a 0-byte block holds its own start
    assert columns.sizes()[last] == 16 and dict(columns.sizes()) == {a: b.size for a, b in blocks.items()}
    assert sorted(columns.stacks()) == sorted({b.pcs for b in blocks.values()})


def test_an_event_on_a_table_of_columns_turns_it_into_a_dict_first():
    blocks = blocks_of([(32, 0, 0, 1), (16, 1, 0, 1)])
    table = AllocationTable()
    table.blocks = LiveColumns.from_blocks(blocks)
    first, second = blocks
    table.on_free(first, "free", 1, (), 1.0)
    assert isinstance(table.blocks, dict) and list(table.blocks) == [second]
    assert table.block_containing(second + 4) == blocks[second]


def test_columns_list_blocks_in_allocation_order_like_the_dict_table():
    blocks = blocks_of([(32, 0, 0, 1), (16, 1, 2, 2), (8, 2, 1, 1)])
    shuffled = dict(reversed(list(blocks.items())))  # columns are kept by address, whatever order they come in
    plain, columns = (AllocationTable(), AllocationTable())
    plain.blocks, columns.blocks = BlockDict(blocks), LiveColumns.from_blocks(shuffled)
    assert list(columns.in_allocation_order()) == list(plain.in_allocation_order()) == list(blocks.values())
