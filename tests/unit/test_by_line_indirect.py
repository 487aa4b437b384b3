"""`leaks --by-line` and the HTML table show a definite loss record's indirect bytes as `leaks` does ("128 (32
direct, 96 indirect)"), and order by that total, as valgrind orders its loss records."""

from __future__ import annotations

import io

from gdb_memleak.core.model import Frame, ProcessResult
from gdb_memleak.core.report import LeakFilter, ProcessReport
from gdb_memleak.core.reports import ReportOptions
from gdb_memleak.core.reports.html import process_data
from gdb_memleak.core.reports.text import render_by_line, render_leaks
from gdb_memleak.core.symbols import Symbolizer
from gdb_memleak.core.table import AllocationTable

SRC, OBJ = "/home/user/list.c", "/home/user/list"
MAIN = Frame(0x401500, "main", SRC, 50, OBJ)
NEW_HEAD = Frame(0x401010, "new_head", SRC, 10, OBJ)   # 32 bytes, definitely lost, holding three 32-byte nodes
NEW_NODE = Frame(0x401020, "new_node", SRC, 20, OBJ)
BIG = Frame(0x401030, "big", SRC, 30, OBJ)              # 100 bytes definitely lost, nothing through it
FRAMES = {f.pc: f for f in (MAIN, NEW_HEAD, NEW_NODE, BIG)}
HEAD, NODES, LARGE = 0x1000, (0x2000, 0x3000, 0x4000), 0x9000


def lost_list() -> ProcessReport:
    table = AllocationTable()
    table.on_alloc(LARGE, 100, "malloc", 1, (BIG.pc, MAIN.pc), 0.0)
    table.on_alloc(HEAD, 32, "malloc", 1, (NEW_HEAD.pc, MAIN.pc), 0.0)
    for node in NODES:
        table.on_alloc(node, 32, "malloc", 1, (NEW_NODE.pc, MAIN.pc), 0.0)
    kinds = {LARGE: "definite", HEAD: "definite", **{n: "indirect" for n in NODES}}
    return ProcessReport(ProcessResult(1, ["./list"], exit_code=0), table, Symbolizer(FRAMES.__getitem__),
                         kinds=kinds, leaders={n: HEAD for n in NODES})


def rendered(render, report: ProcessReport) -> str:
    out = io.StringIO()
    render(report, out, ReportOptions(where=LeakFilter(kinds=frozenset({"definite"}))))
    return out.getvalue()


def test_by_line_shows_indirect_bytes_as_leaks_does_and_orders_by_the_total():
    report = lost_list()
    assert "128 (32 direct, 96 indirect)" in rendered(render_leaks, report)
    text = rendered(render_by_line, report)
    assert f"{SRC}:10: 128 (32 direct, 96 indirect) bytes in 1 block (malloc) in new_head" in text
    assert f"{SRC}:30: 100 bytes in 1 block (malloc) in big" in text
    assert text.index(f"{SRC}:10:") < text.index(f"{SRC}:30:")  # 128 in all before 100


def test_html_table_rows_carry_the_indirect_bytes_in_total_order():
    data = process_data(lost_list(), ReportOptions())
    definite = data["kinds"].index(next(k for k in data["kinds"] if k[0] == "definite"))
    rows = [g for g in data["groups"] if g[0] == definite]
    assert [(g[2], g[8], g[9]) for g in rows] == [(32, 96, 3), (100, 0, 0)]
