"""Text and JSON reports built from a scripted table and a fake symbolizer (a dict pc -> Frame)."""

from __future__ import annotations

import io
import json
import re

import pytest

from gdb_memleak import __version__
from gdb_memleak.core.model import Frame, ProcessResult
from gdb_memleak.core.report import ProcessReport
from gdb_memleak.core.reports import ReportOptions
from gdb_memleak.core.reports.json import build_json, write
from gdb_memleak.core.reports.text import render_by_line, render_report
from gdb_memleak.core.symbols import Symbolizer
from gdb_memleak.core.table import AllocationTable

APP_OBJ = "/home/user/app"
APP_SRC = "/home/user/app.c"
LIBC_OBJ = "/lib/x86_64-linux-gnu/libc.so.6"

MAIN = Frame(0x401500, "main", APP_SRC, 50, APP_OBJ)
MAKE_A = Frame(0x401010, "make_a", APP_SRC, 10, APP_OBJ)
MAKE_LEAK = Frame(0x401020, "make_leak", APP_SRC, 20, APP_OBJ)
RELEASE_A = Frame(0x401030, "release_a", APP_SRC, 30, APP_OBJ)
RELEASE_AGAIN = Frame(0x401040, "release_again", APP_SRC, 40, APP_OBJ)
IN_LIBC = Frame(0x7FFFF7E4A123, "strdup", None, None, LIBC_OBJ)
FRAMES = {f.pc: f for f in (MAIN, MAKE_A, MAKE_LEAK, RELEASE_A, RELEASE_AGAIN, IN_LIBC)}
UNRESOLVED_PC = 0x401999  # not in FRAMES: the fake resolver raises KeyError

A, B, LEAKED, D = 0x5555_5555_A010, 0x5555_5555_B010, 0x5555_5555_C010, 0x5555_5555_D010


def fake_symbolizer(frames=FRAMES):
    return Symbolizer(frames.__getitem__)


def scripted_table():
    """4 allocs (10+20+30+40 = 100 bytes), 3 good frees + 1 double free, 30 bytes in 1 block left."""
    table = AllocationTable()
    table.on_alloc(A, 10, "malloc", 1, (MAKE_A.pc, MAIN.pc), 0.0)
    table.on_alloc(B, 20, "malloc", 1, (MAIN.pc,), 0.0)
    table.on_alloc(LEAKED, 30, "malloc", 1, (MAKE_LEAK.pc, MAIN.pc), 0.0)
    table.on_alloc(D, 40, "calloc", 1, (MAIN.pc,), 0.0)
    table.on_free(A, "free", 1, (RELEASE_A.pc, MAIN.pc), 0.0)
    table.on_free(B, "free", 1, (MAIN.pc,), 0.0)
    table.on_free(D, "free", 1, (MAIN.pc,), 0.0)
    table.on_free(A, "free", 1, (RELEASE_AGAIN.pc, MAIN.pc), 0.0)
    return table


@pytest.fixture
def report():
    return ProcessReport(ProcessResult(4242, ["./app", "-v"], exit_code=0), scripted_table(), fake_symbolizer())


def render(render_fn, report, **options):
    out = io.StringIO()
    render_fn(report, out, ReportOptions(**options))
    return out.getvalue()


# -- text report --------------------------------------------------------------------------------------------------
def test_report_heap_summary_matches_valgrind_wording(report):
    text = render(render_report, report)
    assert "gdb-memleak: process 4242 (./app) exited with code 0" in text
    assert "in use at exit: 30 bytes in 1 blocks" in text
    assert "total heap usage: 4 allocs, 4 frees, 100 bytes allocated" in text
    assert "untracked frees" not in text


def test_report_double_free_shows_bad_free_then_first_free_then_allocation(report):
    text = render(render_report, report)
    expected_in_order = [
        f"Double free of 0x{A:x} (10-byte block)",
        f"at 0x{RELEASE_AGAIN.pc:x}: release_again ({APP_SRC}:40)",
        f"by 0x{MAIN.pc:x}: main ({APP_SRC}:50)",
        "Block was first freed at:",
        f"at 0x{RELEASE_A.pc:x}: release_a ({APP_SRC}:30)",
        "Block was allocated at:",
        f"at 0x{MAKE_A.pc:x}: make_a ({APP_SRC}:10)",
        "LEAKS:",
    ]
    positions = [text.find(piece) for piece in expected_in_order]
    assert -1 not in positions, [p for p, i in zip(expected_in_order, positions) if i == -1]
    assert positions == sorted(positions)


def test_report_lists_leak_site_and_verdict(report):
    text = render(render_report, report)
    assert ("LEAKS: 30 bytes in 1 block from 1 allocation stack (definitely lost, possibly lost, unfreed (not "
            "scanned))\n") in text
    assert f"make_leak ({APP_SRC}:20)" in text
    assert text.rstrip().endswith("SUMMARY: 1 heap error; 30 bytes unfreed (not scanned)")


def test_report_leaks_with_stack_option_prints_full_allocation_stack(report):
    text = render(render_report, report, stack=True)
    assert "30 bytes in 1 block are unfreed (not scanned), allocated by malloc (first is allocation #3)" in text
    assert f"at 0x{MAKE_LEAK.pc:x}: make_leak ({APP_SRC}:20)\n   by 0x{MAIN.pc:x}: main ({APP_SRC}:50)" in text


def test_report_says_how_many_leak_sites_are_shown_when_filtered():
    table = AllocationTable()
    table.on_alloc(A, 100, "malloc", 1, (MAKE_A.pc,), 0.0)
    table.on_alloc(B, 5, "malloc", 1, (MAKE_LEAK.pc,), 0.0)
    report = ProcessReport(ProcessResult(1, ["./app"], exit_code=0), table, fake_symbolizer())
    text = render(render_report, report, min_bytes=10)
    assert ("LEAKS: 105 bytes in 2 blocks from 2 allocation stacks (definitely lost, possibly lost, unfreed (not "
            "scanned)) (showing 1)") in text
    assert "make_a" in text and "make_leak" not in text


def test_report_of_invalid_free_and_signal_exit():
    table = AllocationTable()
    table.on_free(0xBAD0, "free", 1, (RELEASE_A.pc,), 0.0)
    report = ProcessReport(ProcessResult(7, ["./crash"], signal="SIGABRT"), table, fake_symbolizer())
    text = render(render_report, report)
    assert "process 7 (./crash) killed by SIGABRT" in text
    assert "Invalid free of 0xbad0: no allocator returned this pointer" in text
    assert f"at 0x{RELEASE_A.pc:x}: release_a" in text
    assert "Block was first freed at:" not in text and "Block was allocated at:" not in text


def test_clean_report_says_no_leaks_no_errors():
    table = AllocationTable()
    table.on_alloc(A, 8, "malloc", 1, (MAIN.pc,), 0.0)
    table.on_free(A, "free", 1, (MAIN.pc,), 0.0)
    report = ProcessReport(ProcessResult(1, ["./ok"], exit_code=0), table, fake_symbolizer())
    text = render(render_report, report)
    assert "in use at exit: 0 bytes in 0 blocks" in text
    assert "SUMMARY: no heap errors, no leaks of the kinds that count as errors" in text


def test_report_mentions_untracked_frees():
    table = AllocationTable(complete=False)
    table.on_free(A, "free", 1, (MAIN.pc,), 0.0)
    report = ProcessReport(ProcessResult(1, [], exit_code=None), table, fake_symbolizer())
    text = render(render_report, report)
    assert "process 1 (?) still running" in text
    assert "untracked frees: 1 (blocks allocated before tracking began)" in text


def test_report_uses_thousands_separators():
    table = AllocationTable()
    table.on_alloc(A, 1_234_567, "malloc", 1, (MAIN.pc,), 0.0)
    report = ProcessReport(ProcessResult(1, ["./big"], exit_code=0), table, fake_symbolizer())
    text = render(render_report, report)
    assert "in use at exit: 1,234,567 bytes in 1 blocks" in text


# -- by-line report -----------------------------------------------------------------------------------------------
SOURCE = """\
#include <stdlib.h>
int main(void) {
    char *p = malloc(30);
    return 0;
}
"""


@pytest.fixture
def by_line_report(tmp_path):
    source = tmp_path / "leak.c"
    source.write_text(SOURCE)
    site = Frame(0x401234, "main", str(source), 3, APP_OBJ)
    table = AllocationTable()
    table.on_alloc(LEAKED, 30, "malloc", 1, (IN_LIBC.pc, site.pc), 0.0)
    symbolizer = fake_symbolizer({IN_LIBC.pc: IN_LIBC, site.pc: site})
    return ProcessReport(ProcessResult(1, ["./leak"], exit_code=0), table, symbolizer), str(source)


def test_by_line_shows_source_line_with_marker_and_context(by_line_report):
    report, path = by_line_report
    text = render(render_by_line, report, color=False)
    assert "LEAKS BY LINE: 1 line" in text
    assert f"{path}:3: 30 bytes in 1 block (malloc) in main" in text
    assert "       2 | int main(void) {\n" in text
    assert "  >    3 |     char *p = malloc(30);\n" in text
    assert "       4 |     return 0;\n" in text
    assert "1 | #include" not in text and "5 | }" not in text
    assert "\x1b[" not in text


def test_by_line_highlights_source_when_color_is_on(by_line_report):
    report, _ = by_line_report
    text = render(render_by_line, report, color=True)
    assert "\x1b[" in text
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    assert "  >    3 |     char *p = malloc(30);\n" in plain


def test_by_line_without_readable_source_prints_only_the_site():
    site = Frame(0x401234, "main", "/nonexistent/leak.c", 3, APP_OBJ)
    table = AllocationTable()
    table.on_alloc(LEAKED, 30, "malloc", 1, (site.pc,), 0.0)
    report = ProcessReport(ProcessResult(1, ["./leak"]), table, fake_symbolizer({site.pc: site}))
    text = render(render_by_line, report)
    assert "/nonexistent/leak.c:3: 30 bytes in 1 block (malloc) in main" in text
    assert "|" not in text


# -- JSON report --------------------------------------------------------------------------------------------------
FRAME_KEYS = {"pc", "function", "file", "line", "object", "inline"}
HEX = re.compile(r"^0x[0-9a-f]+$")


def frame_dict(frame):
    return {"pc": f"0x{frame.pc:x}", "function": frame.function, "file": frame.file, "line": frame.line,
            "object": frame.object, "inline": frame.inline}


@pytest.fixture
def json_doc(report):
    crashed_table = AllocationTable()
    crashed_table.on_alloc(A, 64, "malloc", 1, (UNRESOLVED_PC,), 0.0)
    crashed_table.on_free(0xBAD0, "free", 1, (RELEASE_A.pc,), 0.0)
    crashed = ProcessReport(ProcessResult(4343, ["./crash"], signal="SIGABRT"), crashed_table, fake_symbolizer())
    return build_json([report, crashed])


def test_json_top_level_schema(json_doc):
    assert set(json_doc) == {"tool", "version", "processes"}
    assert json_doc["tool"] == "gdb-memleak"
    assert json_doc["version"] == __version__
    assert len(json_doc["processes"]) == 2
    for process in json_doc["processes"]:
        assert set(process) == {"pid", "argv", "exit", "totals", "in_use_at_exit", "leaks", "errors", "leak_summary",
                                "reachable_via_heuristic", "mappings", "shm", "fatal_signal", "incomplete",
                                "growth", "suppressions_used"}
        assert process["growth"] == []  # no checkpoint: nothing sampled
        assert process["incomplete"] is None  # the table was read whole
        assert set(process["totals"]) == {"allocs", "frees", "bytes_allocated"}
        assert set(process["in_use_at_exit"]) == {"bytes", "blocks"}
        for leak in process["leaks"]:
            assert set(leak) == {"kind", "bytes", "blocks", "indirect_bytes", "indirect_blocks", "allocator", "stack",
                                 "delta"}
            assert leak["delta"] is None  # no checkpoint: no baseline
            assert all(set(frame) == FRAME_KEYS for frame in leak["stack"])
        for error in process["errors"]:
            assert set(error) == {"type", "address", "allocator", "stack", "alloc_stack", "free_stack",
                                  "address_info"}
            for key in ("stack", "alloc_stack", "free_stack"):
                assert all(set(frame) == FRAME_KEYS for frame in error[key])


def test_json_process_values(json_doc):
    process = json_doc["processes"][0]
    assert (process["pid"], process["argv"], process["exit"]) == (4242, ["./app", "-v"], {"code": 0})
    assert process["totals"] == {"allocs": 4, "frees": 4, "bytes_allocated": 100}
    assert process["in_use_at_exit"] == {"bytes": 30, "blocks": 1}
    assert process["leaks"] == [{"kind": "unfreed", "bytes": 30, "blocks": 1, "indirect_bytes": 0,
                                 "indirect_blocks": 0, "allocator": "malloc",
                                 "stack": [frame_dict(MAKE_LEAK), frame_dict(MAIN)], "delta": None}]
    assert process["errors"] == [{
        "type": "double_free",
        "address": f"0x{A:x}",
        "allocator": "free",
        "stack": [frame_dict(RELEASE_AGAIN), frame_dict(MAIN)],
        "alloc_stack": [frame_dict(MAKE_A), frame_dict(MAIN)],
        "free_stack": [frame_dict(RELEASE_A), frame_dict(MAIN)],
        "address_info": None,
    }]


def test_json_signal_exit_invalid_free_and_unresolved_pc(json_doc):
    process = json_doc["processes"][1]
    assert process["exit"] == {"signal": "SIGABRT"}
    assert process["leaks"][0]["stack"] == [
        {"pc": f"0x{UNRESOLVED_PC:x}", "function": f"0x{UNRESOLVED_PC:x}", "file": None, "line": None,
         "object": "??", "inline": False}]
    assert process["errors"] == [{"type": "invalid_free", "address": "0xbad0", "allocator": "free",
                                  "stack": [frame_dict(RELEASE_A)], "alloc_stack": [], "free_stack": [],
                                  "address_info": None}]


def test_json_pcs_and_addresses_are_lowercase_hex_strings(json_doc):
    def frames(process):
        for leak in process["leaks"]:
            yield from leak["stack"]
        for error in process["errors"]:
            for key in ("stack", "alloc_stack", "free_stack"):
                yield from error[key]

    checked = 0
    for process in json_doc["processes"]:
        for error in process["errors"]:
            assert HEX.match(error["address"])
            checked += 1
        for frame in frames(process):
            assert HEX.match(frame["pc"])
            checked += 1
    assert checked > 10


def test_json_round_trips_through_dumps(json_doc):
    assert json.loads(json.dumps(json_doc)) == json_doc


def test_write_json_emits_one_document_with_trailing_newline(report):
    out = io.StringIO()
    write([report], out)
    text = out.getvalue()
    assert text.endswith("}\n")
    assert json.loads(text) == build_json([report])


def test_exit_json_of_process_with_exit_code():
    assert ProcessResult(1, exit_code=3).exit_json() == {"code": 3}
    assert ProcessResult(1, exit_code=3, signal="SIGSEGV").exit_json() == {"signal": "SIGSEGV"}


def test_exit_json_of_running_process_is_null_not_a_clean_exit():
    assert ProcessResult(1, ["./server"]).exit_json() is None


def test_by_line_leaves_out_suppressed_leaks_like_the_stack_listing(by_line_report):
    """`leaks` and `leaks --by-line` draw from the same report: a `leak:` suppression hides the block in both."""
    from gdb_memleak.core.report import LeakFilter
    from gdb_memleak.core.reports.text import render_leaks
    from gdb_memleak.core.suppressions import SuppressionList

    report, _ = by_line_report
    report.suppression_source = lambda: SuppressionList.parse("leak:main\n", "test.supp")
    every_kind = LeakFilter(kinds=None)
    assert "LEAKS: 0 bytes in 0 blocks" in render(render_leaks, report, where=every_kind)
    text = render(render_by_line, report, where=every_kind)
    assert "LEAKS BY LINE: 0 lines" in text
    assert "30 bytes" not in text


# -- inlined frames -------------------------------------------------------------------------------------------------
INLINED_PC = 0x401700  # one return address, three source frames: two calls inlined into leak_holder
RESIZE = Frame(INLINED_PC, "std::vector<int>::resize(unsigned long)", "/usr/include/c++/12/bits/stl_vector.h", 1011,
               APP_OBJ, inline=True)
FILL = Frame(INLINED_PC, "fill", APP_SRC, 37, APP_OBJ, inline=True)
LEAK_HOLDER = Frame(INLINED_PC, "leak_holder(int)", APP_SRC, 44, APP_OBJ)


@pytest.fixture
def inlined_report():
    table = AllocationTable()
    table.on_alloc(LEAKED, 400, "new", 1, (INLINED_PC, MAIN.pc), 0.0)
    symbolizer = Symbolizer(lambda pc: [RESIZE, FILL, LEAK_HOLDER] if pc == INLINED_PC else FRAMES[pc])
    return ProcessReport(ProcessResult(1, ["./app"], exit_code=0), table, symbolizer)


def test_json_stack_lists_every_inlined_frame_marked_inline(inlined_report):
    [leak] = build_json([inlined_report])["processes"][0]["leaks"]
    assert leak["stack"] == [frame_dict(RESIZE), frame_dict(FILL), frame_dict(LEAK_HOLDER), frame_dict(MAIN)]
    assert [f["inline"] for f in leak["stack"]] == [True, True, False, False]


def test_text_stack_prints_inlined_frames_at_the_same_address_and_the_table_the_users_line(inlined_report):
    stack = render(render_report, inlined_report, stack=True)
    assert (f"   at 0x{INLINED_PC:x}: {RESIZE.function} (/usr/include/c++/12/bits/stl_vector.h:1011)\n"
            f"   by 0x{INLINED_PC:x}: fill ({APP_SRC}:37)\n"
            f"   by 0x{INLINED_PC:x}: leak_holder(int) ({APP_SRC}:44)\n"
            f"   by 0x{MAIN.pc:x}: main ({APP_SRC}:50)\n") in stack
    assert re.search(rf"#1\s+fill \({APP_SRC}:37\)$", render(render_report, inlined_report), re.MULTILINE)


def test_by_line_groups_an_inlined_library_call_at_the_users_line(inlined_report):
    assert f"{APP_SRC}:37: 400 bytes in 1 block (new) in fill" in render(render_by_line, inlined_report)
