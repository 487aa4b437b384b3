"""Loss-record deltas (core/deltas.py) through ProcessReport.checkpoint, on both representations of the live blocks
(the breakpoint engine's dict, the recorder's columns read as it reads them): each record's change since the
previous checkpoint in valgrind's words, `increased` and `changed` as valgrind selects records, and the growth
samples a checkpoint takes."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest

from gdb_memleak.core.deltas import CHANGED, INCREASED, Baselines, Delta, Figures
from gdb_memleak.core.kinds import LeakKind
from gdb_memleak.core.live import LiveColumns
from gdb_memleak.core.model import Frame, ProcessResult
from gdb_memleak.core.recorded import Recording
from gdb_memleak.core.report import LeakFilter, ProcessReport
from gdb_memleak.core.reports import ReportOptions
from gdb_memleak.core.reports.json import build_json
from gdb_memleak.core.reports.text import render_growing, render_leak_summary, render_leaks, render_report
from gdb_memleak.core.symbols import Symbolizer
from gdb_memleak.core.table import AllocationTable
from html_pages import embedded_data, render_html

pytest.importorskip("numpy")

SRC = "/home/user/server.c"
MAIN = Frame(0x401000, "main", SRC, 90)
LEAKY = Frame(0x401010, "handle_request", SRC, 20)
CACHED = Frame(0x401020, "cache_put", SRC, 40)
CHURNED = Frame(0x401030, "scratch", SRC, 60)
FRAMES = {f.pc: f for f in (MAIN, LEAKY, CACHED, CHURNED)}
LEAK, CACHE, CHURN = ((f.pc, MAIN.pc) for f in (LEAKY, CACHED, CHURNED))
ALL = LeakFilter(kinds=None)


class Program:
    """A scripted process: its table as the breakpoint engine keeps it, and the report of either representation."""

    def __init__(self, columns: bool) -> None:
        self.events = AllocationTable()
        self.columns = columns
        self.report = ProcessReport(ProcessResult(7, ["./server"]), AllocationTable() if columns else self.events,
                                    Symbolizer(FRAMES.__getitem__))
        self.next_address = 0x5000_0000
        self.churned: list[int] = []
        self.now = 0.0

    def alloc(self, size: int, pcs: tuple[int, ...]) -> int:
        self.next_address += 0x100
        self.events.on_alloc(self.next_address, size, "malloc", 1, pcs, self.now)
        return self.next_address

    def step(self, leak: int = 16, cache: bool = True) -> None:
        """One second of work: a leak, a cache entry (until told to stop), scratch blocks freed the step after."""
        self.now += 1.0
        self.alloc(leak, LEAK)
        if cache:
            self.alloc(64, CACHE)
        for address in self.churned:
            self.events.on_free(address, "free", 1, (CHURNED.pc, MAIN.pc), self.now)
        self.churned = [self.alloc(32, CHURN) for _ in range(3)]

    def stop(self, kinds: dict[tuple[int, ...], LeakKind] | None = None) -> ProcessReport:
        """GDB stops the process: the table as the recorder engine reads it (columns; the breakpoint engine's is the
        dict itself), then a scan giving each stack's blocks a kind (None: no scan)."""
        if self.columns:
            blocks = LiveColumns.from_blocks(self.events.blocks)
            self.report.table.load_recorded(Recording(blocks, [], replace(self.events.counters), self.events.last_seq,
                                                      self.now))
        if kinds is not None:
            verdicts = {b.address: kinds[b.pcs] for b in self.events.blocks.values()}
            self.report.classify(verdicts, {}, {})
        return self.report


KINDS = {LEAK: LeakKind.DEFINITE, CACHE: LeakKind.REACHABLE, CHURN: LeakKind.REACHABLE}


@pytest.fixture(params=["dict", "columns"])
def program(request) -> Program:
    return Program(columns=request.param == "columns")


def deltas(report: ProcessReport) -> dict[tuple[str, tuple[int, ...]], tuple[int, int] | None]:
    return {(g.kind, g.pcs): (g.delta.bytes, g.delta.blocks) if g.delta else None for g in report.leak_groups(ALL)}


def text(render, report: ProcessReport, **options) -> str:
    out = io.StringIO()
    render(report, out, ReportOptions(where=ALL, **options))
    return out.getvalue()


def test_no_delta_before_the_first_checkpoint(program: Program):
    program.step()
    report = program.stop(KINDS)
    assert set(deltas(report).values()) == {None}
    report.checkpoint(program.now)
    assert set(deltas(report).values()) == {None}  # the same state: still nothing to compare with


def test_deltas_are_what_the_program_did_since_the_previous_checkpoint(program: Program):
    program.step()
    program.stop(KINDS).checkpoint(program.now)
    program.step()
    program.step(leak=24)
    report = program.stop(KINDS)
    expected = {("definite", LEAK): (40, 2), ("reachable", CACHE): (128, 2), ("reachable", CHURN): (0, 0)}
    assert deltas(report) == expected
    report.checkpoint(program.now)
    assert deltas(report) == expected  # a report right after its checkpoint compares with the one before
    program.step()
    assert deltas(program.stop(KINDS)) == {("definite", LEAK): (16, 1), ("reachable", CACHE): (64, 1),
                                           ("reachable", CHURN): (0, 0)}


def test_records_show_their_deltas_in_valgrinds_words(program: Program):
    program.step()
    program.stop(KINDS).checkpoint(program.now)
    program.step()
    report = program.stop(KINDS)
    assert "32 (+16) bytes in 2 (+1) blocks are definitely lost, allocated by malloc" in \
        text(render_leaks, report, stack=True)
    table = text(render_leaks, report)
    assert any(line.split()[:5] == ["definitely", "lost", "32", "(+16)", "2"] and "(+1)" in line
               for line in table.splitlines()), table


def test_increased_lists_only_records_that_grew_and_changed_those_that_went_down_or_emptied(program: Program):
    program.step()
    program.stop(KINDS).checkpoint(program.now)
    program.step(cache=False)
    report = program.stop({**KINDS, CACHE: LeakKind.DEFINITE})  # the cache lost its pointers: a record moves
    increased = text(render_leaks, report, stack=True, changes=INCREASED)
    assert "32 (+16) bytes in 2 (+1) blocks are definitely lost" in increased
    assert "64 (+64) bytes in 1 (+1) block are definitely lost" in increased
    assert "still reachable" not in increased and "since the previous check (at 1.000 s)" in increased
    changed = text(render_leaks, report, stack=True, changes=CHANGED)
    assert "0 (-64) bytes in 0 (-1) blocks are still reachable, allocated by malloc (none left)" in changed
    assert "96 (+0) bytes in 3 (+0) blocks" not in changed  # the scratch blocks: replaced, not changed


def test_the_first_delta_check_lists_every_record_as_new(program: Program):
    program.step()
    listed = text(render_leaks, program.stop(KINDS), changes=INCREASED)
    assert "no earlier check: every loss record is new" in listed
    assert "handle_request" in listed and "cache_put" in listed


def test_a_definite_records_indirect_bytes_have_their_own_deltas():
    program = Program(columns=False)
    program.step()
    report = program.stop(KINDS)
    report.checkpoint(program.now)
    leak = next(a for a, b in program.events.blocks.items() if b.pcs == LEAK)
    cache = next(a for a, b in program.events.blocks.items() if b.pcs == CACHE)
    report.classify({**report.kinds, cache: LeakKind.INDIRECT}, {cache: leak}, {})
    assert "80 (+64) (16 (+0) direct, 64 (+64) indirect) bytes in 1 (+0) block are definitely lost" in \
        text(render_leaks, report, stack=True, changes=INCREASED)


def test_the_leak_summary_shows_deltas_in_a_delta_check(program: Program):
    program.step()
    program.stop(KINDS).checkpoint(program.now)
    program.step()
    report = program.stop(KINDS)
    summary = text(lambda r, out, options: render_leak_summary(r, out, deltas=True), report)
    assert "definitely lost: 32 (+16) bytes in 2 (+1) blocks" in summary
    assert "still reachable: 224 (+64) bytes in 5 (+1) blocks" in summary
    assert "(+" not in text(lambda r, out, options: render_leak_summary(r, out), report)


def test_a_listing_of_some_blocks_has_no_deltas(program: Program):
    program.step()
    program.stop(KINDS).checkpoint(program.now)
    program.step()
    report = program.stop(KINDS)
    assert all(g.delta is None for g in report.leak_groups(LeakFilter(kinds=None, since_seq=2)))


def test_json_has_each_records_delta_and_the_growing_stacks(program: Program):
    for i in range(8):
        program.step(cache=i < 3)
        program.stop(KINDS).checkpoint(program.now)
    process = build_json([program.report])["processes"][0]
    leak = next(g for g in process["leaks"] if g["stack"][0]["function"] == "handle_request")
    assert leak["delta"] == {"bytes": 16, "indirect_bytes": 0, "blocks": 1}  # since the checkpoint before the last
    assert leak["bytes"] == 128
    [growing] = process["growth"]  # the cache has plateaued, the scratch blocks churn
    assert growing["stack"][0]["function"] == "handle_request"
    assert (growing["bytes"], growing["blocks"], growing["rate_bytes_per_s"]) == (128, 8, 16.0)
    assert (growing["grew"], growing["samples"]) == (7, 8)
    assert growing["history"][-1] == [8.0, 128, 8] and len(growing["history"]) == 8


def test_the_report_has_a_growing_section_from_three_samples(program: Program):
    program.step()
    program.stop(KINDS).checkpoint(program.now)
    program.step()
    program.stop(KINDS).checkpoint(program.now)
    assert "GROWING" not in text(render_report, program.report)
    assert "needs 3 checkpoints" in text(render_growing, program.report)
    program.step()
    program.stop(KINDS).checkpoint(program.now)
    section = text(render_report, program.report).split("GROWING: ", 1)[1]
    assert section.startswith("2 allocation stacks whose live bytes keep growing (the last 3 of 3 samples, 2.000 s)")
    rows = [line.split() for line in section.splitlines()[3:5]]
    assert rows[0][:4] == ["+64.0", "192", "3", "2"] and "cache_put" in rows[0][-2]
    assert rows[1][:4] == ["+16.0", "48", "3", "2"] and "handle_request" in rows[1][-2]


def test_a_checkpoint_with_nothing_done_since_takes_no_second_sample(program: Program):
    program.step()
    report = program.stop(KINDS)
    report.checkpoint(1.0)
    report.checkpoint(1.5)
    assert len(report.growth) == 1


def test_baselines_keep_the_two_latest_states():
    baselines = Baselines()
    assert baselines.baseline("s1") is None
    baselines.record("s1", 1.0, {("definite", "malloc", ()): Figures(16, 0, 1)})
    baselines.record("s2", 2.0, {})
    baselines.record("s2", 2.5, {})
    assert baselines.baseline("s2").time == 1.0
    assert baselines.baseline("s3").time == 2.5


def test_increased_is_valgrinds_any_of_direct_indirect_blocks():
    assert Delta(0, 16, 0).increased          # indirect up, direct down as much
    assert not Delta(-16, 0, -1).increased and Delta(-16, 0, -1).changed
    assert not Delta(0, 0, 0).changed


def test_the_html_page_embeds_the_growing_stacks_samples_for_the_timeline(program: Program):
    for _ in range(4):
        program.step(cache=False)
        program.stop(KINDS).checkpoint(program.now)
    data = embedded_data(render_html([program.report]))["processes"][0]
    [(site, allocator, rate, samples)] = data["timeline"]["growth"]
    assert data["frames"][site][0] == "handle_request" and allocator == "malloc" and rate == 16.0
    assert samples == [[1.0, 16, 1], [2.0, 32, 2], [3.0, 48, 3], [4.0, 64, 4]]


def test_a_reset_forgets_the_baselines_and_the_growth_samples(program: Program):
    for _ in range(3):
        program.step()
        program.stop(KINDS).checkpoint(program.now)
    program.report.forget_checkpoints()  # `memleak reset`
    assert len(program.report.growth) == 0 and program.report.baseline() is None
    assert set(deltas(program.report).values()) == {None}
