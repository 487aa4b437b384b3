"""The HTML writer on scripted reports (a table driven by hand, a dict as symbolizer): what the page embeds and that
it needs nothing from outside. The drawing itself is checked in a real browser (tests/browser)."""

from __future__ import annotations

import re

from gdb_memleak.core.kinds import DEFAULT_SHOWN, LABELS
from gdb_memleak.core.model import Frame, ProcessResult
from gdb_memleak.core.report import LeakFilter, ProcessReport
from gdb_memleak.core.reports import WRITERS, ReportOptions
from gdb_memleak.core.suppressions import SuppressionList
from gdb_memleak.core.symbols import Symbolizer
from gdb_memleak.core.table import AllocationTable
from html_pages import embedded_data, render_html, synthetic_report

APP_OBJ = "/home/user/app"
LIBC_OBJ = "/lib/x86_64-linux-gnu/libc.so.6"
A, LEAKED, KEPT, IGNORED, LATE = (0x5555_0000 + 0x100 * i for i in range(5))


def frames_for(src: str) -> dict[int, Frame]:
    frames = [Frame(0x401500, "main", src, 12, APP_OBJ), Frame(0x401010, "make_leak", src, 4, APP_OBJ),
              Frame(0x401020, "make_kept", src, 7, APP_OBJ), Frame(0x401030, "make_ignored", src, 9, APP_OBJ),
              Frame(0x401040, "release", src, 10, APP_OBJ),
              Frame(0x7FFFF7E4A123, "__GI___strdup", None, None, LIBC_OBJ)]
    return {f.pc: f for f in frames}


def scripted_report(src: str = "/nonexistent/app.c", pid: int = 4242) -> ProcessReport:
    """A double free, then live blocks: 30 definite (make_leak), 100 reachable (strdup in make_kept), 7 suppressed."""
    table = AllocationTable()
    table.on_alloc(A, 10, "malloc", 1, (0x401010, 0x401500), 0.1)
    table.on_free(A, "free", 1, (0x401040, 0x401500), 0.2)
    table.on_alloc(LEAKED, 30, "malloc", 1, (0x401010, 0x401500), 0.3)
    table.on_alloc(KEPT, 100, "malloc", 1, (0x7FFFF7E4A123, 0x401020, 0x401500), 0.4)
    table.on_alloc(IGNORED, 7, "calloc", 1, (0x401030, 0x401500), 0.5)
    table.timeline.mark("after-setup", 0.55)
    table.on_free(A, "free", 1, (0x401040, 0x401500), 0.6)
    kinds = {LEAKED: "definite", KEPT: "reachable", IGNORED: "definite"}
    return ProcessReport(ProcessResult(pid, ["./app"], exit_code=0), table, Symbolizer(frames_for(src).__getitem__),
                         kinds=kinds, suppression_source=lambda: SuppressionList.parse("leak:make_ignored", "a.supp"))


def names(data: dict, node: int) -> list[str]:
    """Function names of a stack-tree node, outermost first."""
    out = []
    while node >= 0:
        out.append(data["frames"][data["nodes"][2 * node + 1]][0])
        node = data["nodes"][2 * node]
    return out[::-1]


def test_html_writer_is_registered_for_the_cli_and_leaks():
    writer = WRITERS["html"]
    assert writer.format == "html" and "HTML" in writer.help


def test_page_is_self_contained_no_external_reference():
    page = render_html([scripted_report()])
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"https?://|//cdn|<link\b|<script[^>]+src=|@import|url\(", page, re.I)
    assert "default-src 'none'" in page  # the browser itself refuses any fetch


def test_groups_carry_kind_bytes_blocks_allocator_and_first_user_frame_without_suppressed_blocks():
    (process,) = embedded_data(render_html([scripted_report()]))["processes"]
    kinds = [k for k, _ in process["kinds"]]
    rows = {(kinds[g[0]], g[1], g[2], g[3]): g for g in process["groups"]}
    assert set(rows) == {("definite", "malloc", 30, 1), ("reachable", "malloc", 100, 1)}  # calloc'd 7 suppressed
    leaked = rows[("definite", "malloc", 30, 1)]
    assert names(process, leaked[5]) == ["main", "make_leak"]
    assert process["frames"][leaked[6]][0] == "make_leak"  # first user frame
    kept = rows[("reachable", "malloc", 100, 1)]
    assert names(process, kept[5]) == ["main", "make_kept", "__GI___strdup"]
    assert process["frames"][kept[6]][0] == "make_kept"     # libc's strdup is skipped for the site
    assert [label for _, label in process["kinds"]] == [LABELS[k] for k in kinds]


def test_stacks_share_their_common_prefix():
    (process,) = embedded_data(render_html([scripted_report()]))["processes"]
    roots = [i for i in range(len(process["nodes"]) // 2) if process["nodes"][2 * i] == -1]
    assert [process["frames"][process["nodes"][2 * r + 1]][0] for r in roots] == ["main"]


def test_table_defaults_to_the_kinds_leaks_shows_and_the_graph_to_every_live_block():
    (process,) = embedded_data(render_html([scripted_report()]))["processes"]
    assert set(process["shown"]) == DEFAULT_SHOWN
    only_reachable = ReportOptions(where=LeakFilter(kinds=frozenset({"reachable"})))
    (process,) = embedded_data(render_html([scripted_report()], only_reachable))["processes"]
    assert process["shown"] == ["reachable"]
    assert len(process["groups"]) == 2


def test_since_snapshot_limits_the_drawn_blocks():
    options = ReportOptions(where=LeakFilter(kinds=None, since_seq=2))  # blocks after the second allocation
    (process,) = embedded_data(render_html([scripted_report()], options))["processes"]
    assert sorted(g[2] for g in process["groups"]) == [100]


def test_heap_error_keeps_its_stacks_time_and_the_text_report_wording():
    (process,) = embedded_data(render_html([scripted_report()]))["processes"]
    (error,) = process["errors"]
    assert error["type"] == "double_free" and error["title"] == "double free" and error["time"] == 0.6
    assert error["headline"] == f"Double free of 0x{A:x} (10-byte block)"
    assert "Block was first freed at:" in error["text"] and "Block was allocated at:" in error["text"]
    assert names(process, error["node"]) == ["main", "release"]


def test_summaries_use_the_text_report_wording():
    (process,) = embedded_data(render_html([scripted_report()]))["processes"]
    assert "in use at exit: 137 bytes in 3 blocks" in process["summary"]
    assert "definitely lost: 30 bytes in 1 blocks" in process["summary"]
    assert "suppressed: 7 bytes in 1 blocks" in process["summary"]
    assert process["verdict"] == "1 heap error; 30 bytes definitely lost"
    assert process["header"].startswith("gdb-memleak: process 4242 (./app) exited with code 0")


def test_timeline_points_and_snapshot_marks_are_embedded():
    (process,) = embedded_data(render_html([scripted_report()]))["processes"]
    points = process["timeline"]["points"]
    assert [(t, b, n) for t, b, n, _, _ in points] == [(0.1, 10, 1), (0.2, 0, 0), (0.3, 30, 1), (0.4, 130, 2),
                                                         (0.5, 137, 3)]
    assert process["timeline"]["marks"] == [["after-setup", 0.55, 137, 3]]


def test_source_lines_around_the_first_user_frame_are_highlighted(tmp_path):
    src = tmp_path / "app.c"
    src.write_text("".join(f"int line{n} = {n};\n" for n in range(1, 20)))
    (process,) = embedded_data(render_html([scripted_report(str(src))]))["processes"]
    leaked = next(g for g in process["groups"] if g[2] == 30)
    snippet = process["sources"][leaked[7]]
    assert 'class="src"' in snippet and 'class="hll"' in snippet
    marked = re.search(r'<span class="hll">(.*?)</span>\n?(?=<span class="linenos"|</pre>)', snippet, re.S)
    assert marked and "line4" in re.sub(r"<[^>]+>", "", marked.group(1))
    text = re.sub(r"<[^>]+>", "", snippet)
    assert "line1 " in text and "line7 " in text and "line8 " not in text  # 3 lines either side of line 4
    assert ".src .hll" in render_html([scripted_report(str(src))])   # pygments' style is inlined


def test_unreadable_sources_give_no_excerpt():
    (process,) = embedded_data(render_html([scripted_report()]))["processes"]
    assert process["sources"] == [] and all(g[7] == -1 for g in process["groups"])


def test_markup_in_names_cannot_escape_the_data_element():
    report = scripted_report()
    evil = Frame(0x401010, "</script><script>alert(1)</script>", "/x.c", 1, APP_OBJ)
    report.symbolizer = Symbolizer({**frames_for("/x.c"), evil.pc: evil}.__getitem__)
    page = render_html([report])
    assert "<script>alert(1)" not in page
    (process,) = embedded_data(page)["processes"]
    assert any(f[0] == evil.function for f in process["frames"])


def test_several_processes_each_get_their_view_in_one_file():
    data = embedded_data(render_html([scripted_report(pid=1), scripted_report(pid=2)]))
    assert [p["pid"] for p in data["processes"]] == [1, 2]


def test_no_process_still_makes_a_valid_page():
    assert embedded_data(render_html([]))["processes"] == []


def test_inlined_frames_are_flagged_when_the_symbolizer_marks_them():
    report = scripted_report()
    frame = Frame(0x401010, "make_leak", "/x.c", 4, APP_OBJ)
    object.__setattr__(frame, "inline", True)  # the symbolizer's inline marker (sym's Frame.inline)
    report.symbolizer = Symbolizer({**frames_for("/x.c"), frame.pc: frame}.__getitem__)
    (process,) = embedded_data(render_html([report]))["processes"]
    assert [f[5] for f in process["frames"] if f[0] == "make_leak"] == [1]


def test_large_report_stays_compact():
    report = synthetic_report(5_000)
    page = render_html([report])
    (process,) = embedded_data(page)["processes"]
    assert len(process["groups"]) == 5_000
    assert len(page) < 5_000 * 250  # interned frames and a shared stack tree: well under 250 bytes a stack
