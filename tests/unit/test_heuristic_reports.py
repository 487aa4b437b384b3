"""The "of which reachable via heuristic" figures in the text and JSON reports, as valgrind prints them."""

from __future__ import annotations

import io

from test_reports import MAIN, fake_symbolizer

from gdb_memleak.core.kinds import LeakKind
from gdb_memleak.core.model import ProcessResult
from gdb_memleak.core.report import ProcessReport
from gdb_memleak.core.reports.json import build_json
from gdb_memleak.core.reports.text import render_leak_summary
from gdb_memleak.core.table import AllocationTable

STRING, ARRAY, PLAIN, FREED = 0x5555_5555_A010, 0x5555_5555_B010, 0x5555_5555_C010, 0x5555_5555_D010


def report_with_heuristics() -> ProcessReport:
    table = AllocationTable()
    for address, size in ((STRING, 65), (ARRAY, 68), (PLAIN, 100), (FREED, 16)):
        table.on_alloc(address, size, "malloc", 1, (MAIN.pc,), 0.0)
    table.on_free(FREED, "free", 1, (MAIN.pc,), 0.0)
    report = ProcessReport(ProcessResult(4242, ["./app"], exit_code=0), table, fake_symbolizer())
    report.kinds = {STRING: LeakKind.REACHABLE, ARRAY: LeakKind.POSSIBLE, PLAIN: LeakKind.REACHABLE}
    report.heuristics = {STRING: "stdstring", ARRAY: "newarray", FREED: "length64"}  # FREED: freed since the scan
    return report


def test_text_summary_lists_the_heuristics_that_reached_blocks_under_still_reachable():
    out = io.StringIO()
    render_leak_summary(report_with_heuristics(), out)
    lines = out.getvalue().splitlines()
    at = next(i for i, line in enumerate(lines) if "still reachable:" in line)
    assert lines[at].endswith("still reachable: 165 bytes in 2 blocks")
    assert [line.strip() for line in lines[at + 1:at + 4]] == [
        "of which reachable via heuristic:",
        "stdstring          : 65 bytes in 1 blocks",
        "newarray           : 68 bytes in 1 blocks"]
    assert lines[at + 4].strip().startswith("suppressed:")
    assert lines[at + 1].index("of which") == lines[at].index("still reachable: ") + len("still reachable: ")


def test_text_summary_has_no_heuristic_lines_when_none_reached_a_block():
    report = report_with_heuristics()
    report.heuristics = {}
    out = io.StringIO()
    render_leak_summary(report, out)
    assert "heuristic" not in out.getvalue()


def test_json_gives_every_heuristic_its_bytes_and_blocks():
    [process] = build_json([report_with_heuristics()])["processes"]
    assert process["reachable_via_heuristic"] == {
        "stdstring": {"bytes": 65, "blocks": 1}, "length64": {"bytes": 0, "blocks": 0},
        "newarray": {"bytes": 68, "blocks": 1}, "multipleinheritance": {"bytes": 0, "blocks": 0}}
