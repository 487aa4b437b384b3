"""valgrind suppression files: reading them as valgrind does (every construct GLib's and CPython's files use, one
error naming file:line for a bad entry), matching valgrind's view of our stacks (the allocator's frame first,
valgrind's names, --num-callers), the blocks --gen-suppressions prints, and what reports do with them."""

from __future__ import annotations

import glob
import io
import json
import os
import re
from pathlib import Path

import pytest

from gdb_memleak.core.model import Frame, ProcessResult
from gdb_memleak.core.report import LeakFilter, ProcessReport
from gdb_memleak.core.reports.json import build_json
from gdb_memleak.core.reports.suppression_blocks import all_blocks, error_summary, used_lines
from gdb_memleak.core.reports.text import render_errors, verdict
from gdb_memleak.core.suppressions import Suppression, SuppressionError, SuppressionList
from gdb_memleak.core.symbols import Symbolizer
from gdb_memleak.core.table import AllocationTable
from gdb_memleak.core.valgrind_stack import (
    UNKNOWN,
    VALGRIND_PRELOAD,
    StackView,
    VgFrame,
    inlined_name,
    valgrind_stack,
)
from gdb_memleak.core.valgrind_supp import (
    ANY,
    FREE,
    LEAK,
    PLACEHOLDER,
    Location,
    ValgrindSuppression,
    generate_valgrind,
    looks_like_valgrind,
    parse_valgrind,
    used_line,
)

SHAPES = Path(__file__).parent.parent / "data" / "supp_shapes.supp"
APP = "/home/user/app"


def fun(*names: str) -> VgFrame:
    return VgFrame(names, APP)


def entry(text: str) -> ValgrindSuppression:
    [only] = parse_valgrind(text, "t.supp")
    return only


def leak_entry(*frame_lines: str, kinds: str | None = None) -> ValgrindSuppression:
    extra = f"   match-leak-kinds: {kinds}\n" if kinds else ""
    return entry("{\n   e\n   Memcheck:Leak\n" + extra + "".join(f"   {line}\n" for line in frame_lines) + "}\n")


# -- reading ------------------------------------------------------------------------------------------------------
def test_the_shapes_file_gives_its_leak_and_free_entries_in_file_order():
    entries = parse_valgrind(SHAPES.read_text(), str(SHAPES))
    assert [(e.name, e.kind) for e in entries] == [
        ("deep-leak-reaching-main", LEAK),
        ("list nodes, head and tail (GLib style: tabs, no space after the colon)", LEAK),
        ("Python style: a name kept for the whole run (still reachable)", LEAK),
        ("grown-by-realloc", LEAK),
        ("calloc-possible-only", LEAK),
        ("pointed-into (spaces, any frames first)", LEAK),
        ("list-not-from-the-allocator", LEAK),
        ("double free in release_twice", FREE),
        ("free-called-from-main", FREE),
    ]  # the commented-out block, the Param/Cond/Addr4/Value8/Overlap entries and other tools' are not there
    by_name = {e.name: e for e in entries}
    lines = SHAPES.read_text().splitlines()
    assert all(lines[e.line - 1].strip() == e.name for e in entries), "each entry's line is its name's"
    nodes = by_name["list nodes, head and tail (GLib style: tabs, no space after the colon)"]
    assert nodes.leak_kinds == {"definite", "indirect"}
    assert nodes.locations == (Location("fun", "malloc"), Location("fun", "make_?ode"), Location("fun", "make_*"),
                               Location(ANY))
    assert by_name["grown-by-realloc"].leak_kinds is None  # `all`
    assert by_name["grown-by-realloc"].locations[1] == Location("src", "supp_shapes.c", 57)
    assert by_name["calloc-possible-only"].leak_kinds == {"possible"}
    assert by_name["deep-leak-reaching-main"].leak_kinds is None  # no match-leak-kinds line
    assert by_name["Python style: a name kept for the whole run (still reachable)"].locations[2] == \
        Location("obj", "*/supp_shapes")


@pytest.mark.parametrize("path", sorted({*glob.glob("/usr/lib/valgrind/*.supp"),
                                         *glob.glob("/usr/libexec/valgrind/*.supp")}) or ["none installed"])
def test_suppression_files_installed_on_this_machine_are_read(path: str):
    """valgrind's own default.supp and the files Debian installs (python3.supp, ncurses.supp, debian.supp)."""
    if not os.path.exists(path):
        pytest.skip("no valgrind suppression file installed")
    text = Path(path).read_text(errors="replace")
    entries = SuppressionList.parse(text, path)
    blocks = re.findall(r"^\s*\{\s*\n\s*[^\n]+\n\s*([\w,]+):(\w+)\s*$", text, re.M)
    assert len(entries) == sum(1 for tools, kind in blocks if "Memcheck" in tools.split(",") and kind in (LEAK, FREE))


def test_the_format_is_told_by_the_first_line_that_is_not_a_comment():
    assert looks_like_valgrind("# header\n\n   {\n   x\n   Memcheck:Leak\n   fun:malloc\n}\n")
    assert not looks_like_valgrind("# header\nleak:foo\n")
    assert not looks_like_valgrind("# only comments\n")
    both = SuppressionList.parse(SHAPES.read_text(), "a.supp")
    both.extend(SuppressionList.parse("leak:make_leak\n", "b.supp"))
    assert [type(s).__name__ for s in both][-2:] == ["ValgrindSuppression", "Suppression"]


@pytest.mark.parametrize("text, line, message", [
    ("{\n}\n", 2, "unexpected '}'"),
    ("{\n  name\n  Memcheck\n  fun:x\n}\n", 3, "expected 'TOOL:KIND'"),
    ("{\n  name\n  Memcheck:Lek\n  fun:x\n}\n", 3, "unknown Memcheck suppression kind 'Lek'"),
    ("{\n  name\n  Memcheck:Leak\n  match-leak-kinds: definitely\n  fun:x\n}\n", 4,
     "bad match-leak-kinds: value 'definitely'"),
    ("{\n  name\n  Memcheck:Leak\n  kinds: all\n  fun:x\n}\n", 4, "expected 'match-leak-kinds:' or a frame line"),
    ("{\n  name\n  Memcheck:Leak\n  fun:malloc\n  function:main\n}\n", 5, "expected a frame line"),
    ("{\n  name\n  Memcheck:Free\n}\n", 4, "at least one frame line"),
    ("{\n  name\n  Memcheck:Leak\n  ...\n  ...\n}\n", 6, "a frame line other than '...'"),
    ("{\n  name\n  Memcheck:Param\n  fun:write\n}\n", 4, "expected the Param suppression's extra line"),
    ("# c\n{\n  name\n  Memcheck:Leak\n  fun:malloc\n\n", 5, "unexpected end of file"),
    ("{\n  name\n  Helgrind:Race\n  fun:x\n", 4, "unexpected end of file (expecting '}'"),
    ("{\n  n\n  Memcheck:Leak\n  fun:m\n}\nleak:foo\n", 6, "expected '{' to start a suppression, got 'leak:foo'"),
], ids=["no-name", "no-kind", "unknown-kind", "bad-leak-kinds", "unknown-extra-line", "bad-frame-line",
        "no-frames", "only-any-frames", "param-without-parameter", "eof-in-entry", "eof-in-skipped-entry",
        "lsan-line-in-valgrind-file"])
def test_a_malformed_entry_is_one_error_naming_file_and_line(text: str, line: int, message: str):
    with pytest.raises(SuppressionError) as info:
        SuppressionList.parse(text, "/etc/app.supp")
    assert str(info.value).startswith(f"/etc/app.supp:{line}: "), info.value
    assert message in str(info.value)


def test_other_kinds_and_tools_are_read_and_suppress_nothing():
    text = ("{\n p\n Memcheck:Param\n write(buf)\n fun:write\n}\n"
            "{\n f\n Memcheck:FishyValue\n malloc(size)\n fun:malloc\n}\n"
            "{\n c\n Memcheck,Helgrind:Cond\n fun:x\n}\n"
            "{\n r\n Helgrind:Race\n this line is not checked\n}\n"
            "{\n l\n Memcheck:Leak\n fun:malloc\n}\n")
    assert [e.name for e in parse_valgrind(text, "t")] == ["l"]


# -- matching -----------------------------------------------------------------------------------------------------
STACK = [fun("malloc"), fun("make_node"), fun("make_list"), fun("main")]


@pytest.mark.parametrize("lines, matches", [
    (["fun:malloc", "fun:make_node"], True),                  # a prefix of the stack
    (["fun:make_node"], False),                               # anchored at the allocator's frame
    (["...", "fun:make_node"], True),
    (["fun:malloc", "...", "fun:make_node", "fun:make_list"], True),  # `...` may stand for no frame
    (["fun:malloc", "...", "fun:main", "..."], True),
    (["fun:malloc", "...", "fun:nowhere"], False),
    (["fun:m?lloc", "fun:make_*", "fun:*_list"], True),
    (["fun:malloc", "fun:make"], False),                      # whole names
    (["fun:*", "fun:*", "fun:*", "fun:*", "fun:*"], False),   # more frames than the stack has
    (["obj:/home/*", "obj:*/app"], True),
    (["fun:malloc", "obj:*/lib*.so"], False),
], ids=["prefix", "not-anchored", "any-first", "any-as-none", "any-last", "any-then-missing", "wildcards",
        "whole-name", "too-deep", "obj", "obj-mismatch"])
def test_frame_lines_match_the_start_of_the_stack(lines: list[str], matches: bool):
    assert leak_entry(*lines).matches(STACK) is matches


def test_src_lines_match_the_source_file_and_line():
    stack = [fun("malloc"), VgFrame(("grow",), APP, "grow.c", 57)]
    assert leak_entry("fun:malloc", "src:grow.c:57").matches(stack)
    assert leak_entry("fun:malloc", "src:gr*.c").matches(stack)
    assert not leak_entry("fun:malloc", "src:grow.c:58").matches(stack)
    assert not leak_entry("fun:malloc", "src:grow.c").matches([fun("malloc"), fun("grow")])  # no source known


def test_only_the_first_num_callers_frame_lines_count():
    lines = ["fun:malloc"] + ["fun:f"] * 11 + ["fun:not_there"]
    stack = [fun("malloc")] + [fun("f")] * 20
    assert leak_entry(*lines).matches(stack, num_callers=12)
    assert not leak_entry(*lines).matches(stack, num_callers=13)


def test_a_leak_entry_matches_the_kinds_it_names():
    definite_only = leak_entry("fun:malloc", kinds="definite")
    view = StackView([Frame(1, "f", object=APP)], "malloc")
    assert definite_only.matches_leak(view, "definite")
    assert not definite_only.matches_leak(view, "reachable")
    assert not definite_only.matches_leak(view, "unfreed")  # not classified yet: only an entry for every kind
    assert leak_entry("fun:malloc", kinds="all").matches_leak(view, "unfreed")
    assert leak_entry("fun:malloc", kinds="definite,indirect,possible,reachable").leak_kinds is None
    assert not leak_entry("fun:malloc", kinds="none").matches_leak(view, "definite")
    assert not definite_only.matches_error(view)


# -- valgrind's view of our stacks --------------------------------------------------------------------------------
MAIN = Frame(0x401500, "main", "/home/user/src/app.c", 50, APP)


@pytest.mark.parametrize("allocator, names", [
    ("malloc", [("malloc",)]),
    ("new", [("_Znwm",)]),
    ("new[]", [("_Znam",)]),
    ("delete(sized)", [("_ZdlPvm",)]),
    ("new(nothrow)", [("_ZnwmRKSt9nothrow_t",)]),
    ("free", [("free",)]),
    ("aligned_alloc", [("memalign", "aligned_alloc")]),
    ("posix_memalign", [("memalign", "posix_memalign"), ("posix_memalign",)]),
    ("reallocarray", [("realloc", "malloc", "reallocarray")]),
    ("allocated before tracking started", []),
], ids=lambda v: str(v))
def test_the_stack_starts_with_the_allocators_frame_as_valgrind_names_it(allocator, names):
    stack = valgrind_stack([MAIN], allocator)
    assert [f.names for f in stack[:-1]] == names
    assert all(f.obj == VALGRIND_PRELOAD for f in stack[:-1])
    assert stack[-1] == VgFrame(("main",), APP, "app.c", 50)


@pytest.mark.parametrize("gdb_name, valgrind_name", [
    ("std::vector<int, std::allocator<int> >::resize(unsigned long)", "resize"),
    ("call_init", "call_init"),
    ("std::make_unique<Foo, int>(int&&)", "make_unique<Foo, int>"),
    ("(anonymous namespace)::pool::pool()", "pool"),
    ("ns::Box::operator()(int) const", "operator()"),
])
def test_inlined_calls_are_named_by_their_bare_dwarf_name(gdb_name, valgrind_name):
    assert inlined_name(gdb_name) == valgrind_name
    inlined = Frame(0x401200, gdb_name, "/usr/include/x.h", 3, APP, inline=True)
    assert valgrind_stack([inlined], None)[0].fun == valgrind_name


def test_an_inlined_template_has_both_dwarf_names_and_is_written_as_its_object():
    """GCC names a constructor template `basic_string<>` where GDB shows `basic_string<std::allocator<char> >`."""
    inlined = Frame(0x401200, "std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >"
                    "::basic_string<std::allocator<char> >(unsigned long, char, std::allocator<char> const&)",
                    "/usr/include/c++/12/bits/basic_string.h", 663, APP, inline=True)
    [vg] = valgrind_stack([inlined], None)
    assert vg.names == ("basic_string<std::allocator<char> >", "basic_string<>")
    assert leak_entry("fun:basic_string<>").matches([vg])
    assert generate_valgrind(LEAK, [vg]).splitlines()[3] == f"   obj:{APP}"


def test_a_threads_stack_ends_in_clone_as_valgrind_has_it():
    libc = "/lib/x86_64-linux-gnu/libc.so.6"
    frames = [Frame(0x401700, "worker", "/src/a.c", 12, APP), Frame(0x7F0000001000, "start_thread", None, None, libc)]
    stack = valgrind_stack(frames, "malloc")
    assert [f.names for f in stack] == [("malloc",), ("worker",), ("start_thread",), ("clone", "clone3")]
    assert stack[-1].obj == os.path.realpath(libc)
    assert leak_entry("fun:malloc", "fun:worker", "fun:start_thread", "fun:clone").matches(stack)
    assert [f.fun for f in valgrind_stack(frames, "malloc", num_callers=3)] == ["malloc", "worker", "start_thread"]


@pytest.mark.parametrize("frame, name, exact", [
    (Frame(0x7F0000001234, "_IO_file_doallocate+0x8c", None, None, "/lib/x86_64-linux-gnu/libc.so.6"),
     "_IO_file_doallocate", True),
    (Frame(0x7F00000057BA, "libstdc++.so.6+0xa57ba", None, None, "/lib/x86_64-linux-gnu/libstdc++.so.6"),
     UNKNOWN, True),
    (Frame(0x10, "0x10"), UNKNOWN, True),
    (Frame(0x401000, "leak_holder()", "/src/a.cpp", 3, APP), "leak_holder()", False),
    (Frame(0x401000, "make_node", "/src/a.c", 3, APP), "make_node", True),
], ids=["minimal-symbol", "object-offset", "address", "demangled-cxx", "c-function"])
def test_without_the_objects_symbols_names_come_from_gdb(frame, name, exact):
    [vg] = valgrind_stack([frame], None)
    assert (vg.fun, vg.exact) == (name, exact)


def test_objects_are_their_real_paths(tmp_path: Path):
    real = tmp_path / "libfoo.so.1.2"
    real.write_bytes(b"")
    (tmp_path / "libfoo.so.1").symlink_to(real)
    [vg] = valgrind_stack([Frame(0x1, "0x1", None, None, str(tmp_path / "libfoo.so.1"))], None)
    assert vg.obj == str(real)
    assert valgrind_stack([Frame(0x1, "0x1")], None)[0].obj == UNKNOWN


def test_the_stack_is_cut_at_num_callers_addresses_inlined_calls_counting_with_their_caller():
    inlined = Frame(0x401100, "helper", "/src/a.c", 7, APP, inline=True)
    frames = [inlined, Frame(0x401100, "outer", "/src/a.c", 9, APP)] + \
        [Frame(0x401200 + i, f"f{i}", None, None, APP) for i in range(20)]
    stack = valgrind_stack(frames, "malloc", num_callers=4)
    assert [f.fun for f in stack] == ["malloc", "helper", "outer", "f0", "f1"]


# -- generated blocks ---------------------------------------------------------------------------------------------
def test_generated_blocks_have_valgrinds_layout():
    stack = [fun("_Znwm"), fun("_ZL11leak_holderv"), VgFrame((UNKNOWN,), "/usr/lib/libx.so.1"),
             VgFrame(("leak_holder()",), APP, exact=False), VgFrame((UNKNOWN,), UNKNOWN), fun("main")]
    assert generate_valgrind(LEAK, stack, leak_kind="definite") == (
        "{\n   <insert_a_suppression_name_here>\n   Memcheck:Leak\n   match-leak-kinds: definite\n   fun:_Znwm\n"
        "   fun:_ZL11leak_holderv\n   obj:/usr/lib/libx.so.1\n   obj:/home/user/app\n   obj:*\n   fun:main\n}\n")
    assert generate_valgrind(FREE, [fun("free"), fun("main")], "mine") == \
        "{\n   mine\n   Memcheck:Free\n   fun:free\n   fun:main\n}\n"
    assert "match-leak-kinds" not in generate_valgrind(LEAK, stack, leak_kind="unfreed")  # every kind


def test_a_generated_block_read_back_suppresses_that_stack():
    frames = [Frame(0x401010, "make_node", "/src/a.c", 3, APP), MAIN]
    text = generate_valgrind(LEAK, valgrind_stack(frames, "calloc"), leak_kind="indirect")
    suppressions = SuppressionList.parse(text, "g.supp")
    assert suppressions.match(frames, "indirect", "calloc") is not None
    assert suppressions.match(frames, "definite", "calloc") is None
    assert suppressions.match(frames, "indirect", "malloc") is None
    assert suppressions.match([MAIN], "indirect", "calloc") is None


def test_used_suppression_lines_are_valgrinds():
    assert used_line(12, "gnutls-init", "/s/glib.supp:23", 72_704, 3) == \
        "used_suppression:     12 gnutls-init /s/glib.supp:23 suppressed: 72,704 bytes in 3 blocks"
    assert used_line(1, "a free", "f.supp:4") == "used_suppression:      1 a free f.supp:4"


# -- lists and reports --------------------------------------------------------------------------------------------
MAKE_NODE = Frame(0x401010, "make_node", "/src/a.c", 3, APP)
RELEASE = Frame(0x401030, "release_twice", "/src/a.c", 9, APP)
FRAMES = {f.pc: f for f in (MAKE_NODE, RELEASE, MAIN)}
HEAD, TAIL, TWICE = 0x5000, 0x6000, 0x7000

FILE = """\
{
   nodes
   Memcheck:Leak
   match-leak-kinds: definite
   fun:malloc
   fun:make_node
}
{
   twice
   Memcheck:Free
   fun:free
   fun:release_twice
}
"""


def make_report(supp_text: str) -> ProcessReport:
    """Two leaked nodes from make_node, a double free in release_twice repeated, an invalid free in main."""
    table = AllocationTable()
    table.on_alloc(HEAD, 16, "malloc", 1, (MAKE_NODE.pc, MAIN.pc), 0.0)
    table.on_alloc(TAIL, 16, "malloc", 1, (MAKE_NODE.pc, MAIN.pc), 0.0)
    table.on_alloc(TWICE, 8, "malloc", 1, (MAIN.pc,), 0.0)
    table.on_free(TWICE, "free", 1, (RELEASE.pc, MAIN.pc), 0.0)
    table.on_free(TWICE, "free", 1, (RELEASE.pc, MAIN.pc), 0.0)
    table.on_free(TWICE, "free", 1, (RELEASE.pc, MAIN.pc), 0.0)
    table.on_free(0x9999, "free", 1, (MAIN.pc,), 0.0)
    suppressions = SuppressionList.parse(supp_text, "app.supp")
    report = ProcessReport(ProcessResult(7, ["./app"], exit_code=0), table, Symbolizer(FRAMES.__getitem__),
                           suppression_source=lambda: suppressions)
    report.classify({HEAD: "definite", TAIL: "indirect"}, {TAIL: HEAD}, {})
    return report


def test_free_entries_hide_heap_errors_from_every_report():
    report = make_report(FILE)
    assert [e.type for e in report.table.errors] == ["double_free", "double_free", "invalid_free"]
    assert [e.type for e in report.errors()] == ["invalid_free"]
    assert len(report.suppressed_errors()) == 2
    out = io.StringIO()
    render_errors(report, out)
    assert "Invalid free" in out.getvalue() and "Double free" not in out.getvalue()
    assert verdict(report, frozenset({"definite"})).startswith("1 heap error;")
    assert [e["type"] for e in build_json([report])["processes"][0]["errors"]] == ["invalid_free"]


def test_used_counts_are_valgrinds_loss_records_once_errors_each_time():
    report = make_report(FILE)
    assert report.leak_summary()["suppressed"] == {"bytes": 16, "blocks": 1}  # the head; the tail is indirect
    assert [(s.name, u.count, u.bytes, u.blocks) for s, u in report.used_suppressions()] == \
        [("nodes", 1, 32, 1), ("twice", 2, 0, 0)]  # the head's record counts what is lost through it
    assert used_lines(report) == ["used_suppression:      1 nodes app.supp:2 suppressed: 32 bytes in 1 blocks",
                                  "used_suppression:      2 twice app.supp:9"]
    assert json.loads(json.dumps(build_json([report])))["processes"][0]["suppressions_used"] == [
        {"name": "nodes", "where": "app.supp:2", "count": 1, "bytes": 32, "blocks": 1},
        {"name": "twice", "where": "app.supp:9", "count": 2, "bytes": 0, "blocks": 0}]


def test_error_summary_counts_as_valgrind():
    summary = error_summary(make_report(FILE), frozenset({"definite", "possible"}))
    assert summary.line() == "ERROR SUMMARY: 1 errors from 1 contexts (suppressed: 3 from 2)"


def test_of_two_matching_entries_the_one_read_last_is_credited():
    twice = FILE + FILE.replace("   nodes\n", "   nodes again\n")
    used = make_report(twice).used_suppressions()
    assert [s.where for s, _ in used] == ["app.supp:15", "app.supp:22"]


def test_leak_sanitizer_lines_never_hide_errors_and_come_after_valgrind_entries():
    suppressions = SuppressionList([Suppression("make_node", "lsan.supp", 1)])
    suppressions.extend(SuppressionList.parse(FILE, "app.supp"))
    assert suppressions.match([MAKE_NODE, MAIN], "definite", "malloc").name == "nodes"
    assert suppressions.match([MAKE_NODE, MAIN], "indirect", "malloc").name == "leak:make_node"
    assert suppressions.match_error([MAKE_NODE, MAIN], "free") is None


def test_all_blocks_gives_one_per_shown_error_and_loss_record_and_they_hide_them_all():
    report = make_report("")
    assert len(all_blocks(report, LeakFilter(kinds=frozenset({"definite"})))) == 4  # 3 heap errors, the head
    blocks = all_blocks(report)
    assert len(blocks) == 5  # and the tail's record
    hidden = make_report("".join(blocks))
    assert hidden.errors() == [] and hidden.leak_groups() == []
    assert PLACEHOLDER in blocks[0]
