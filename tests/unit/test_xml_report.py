"""The valgrind XML writer (protocol 4) on scripted reports: a well-formed document whatever the names hold, memcheck's
loss-record numbering and order, its error contexts and counts, its words, and which process goes to which file.
Compared with valgrind's own documents in tests/gdb/test_xml_output.py."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

from gdb_memleak.core.addressinfo import AddressInfo, Place
from gdb_memleak.core.kinds import DEFAULT_SHOWN, KINDS
from gdb_memleak.core.model import Frame, ProcessResult
from gdb_memleak.core.report import LeakFilter, ProcessReport
from gdb_memleak.core.reports import WRITERS, ReportOptions
from gdb_memleak.core.reports.memcheck import allocator_function
from gdb_memleak.core.reports.xml import elapsed, files, function_name
from gdb_memleak.core.suppressions import SuppressionList
from gdb_memleak.core.symbols import Symbolizer
from gdb_memleak.core.table import AllocationTable

APP = "/src/app"
TEMPLATE = Frame(0x401010, "Box<int>::make(std::vector<int, std::allocator<int> >&&) [with T = a & b]", f"{APP}/box.h",
                 7, "/opt/app")
FRAMES = {f.pc: f for f in (
    Frame(0x401000, "main()", f"{APP}/main.cc", 30, "/opt/app"), TEMPLATE,
    Frame(0x401020, "helper", f"{APP}/main.cc", 12, "/opt/app"),
    Frame(0x401030, "bad_free", f"{APP}/main.cc", 40, "/opt/app"),
    Frame(0x401040, "ignored", f"{APP}/main.cc", 50, "/opt/app"),
    Frame(0x7FFFF7E4A123, "strdup+0x12", None, None, "/lib/libc.so.6"),
    Frame(0x7FFFF7E4A200, "libfoo.so+0x200", None, None, "/lib/libfoo.so"))}
MAIN, MAKE, HELPER, BAD, IGNORED, STRDUP, ANON = FRAMES
HEAP = 0x5555_0000


def scripted(scanned: bool = True, argv: tuple[str, ...] = ("./app", "a<b", "x\x01y")) -> ProcessReport:
    """Live blocks of each kind (16 bytes possibly lost made before 16 indirectly lost), a bad free made 3 times at
    one site and once at another, a mismatched release."""
    table = AllocationTable()
    blocks = [(HEAP + 0x600, 16, "malloc", (HELPER, MAIN)), (HEAP, 16, "new[]", (MAKE, MAIN)),
              (HEAP + 0x100, 48, "malloc", (HELPER, MAIN)), (HEAP + 0x200, 16, "malloc", (HELPER, HELPER, MAIN)),
              (HEAP + 0x300, 8, "calloc", (STRDUP, ANON, MAIN)), (HEAP + 0x400, 7, "malloc", (IGNORED, MAIN)),
              (HEAP + 0x500, 32, "new", (HELPER, MAIN))]
    for address, size, allocator, pcs in blocks:
        table.on_alloc(address, size, allocator, 1, pcs, 0.1, family="new" if allocator == "new" else "malloc")
    for _ in range(3):
        table.on_free(0x601040, "free", 2, (BAD, MAIN), 0.2)
    table.on_free(0x601050, "free", 1, (MAIN,), 0.3)
    table.on_free(HEAP + 0x500, "free", 1, (BAD, HELPER, MAIN), 0.4)
    table.errors[0].address_info = AddressInfo(0x601040, Place.GLOBAL, 0, symbol="table<&>", section=".bss")
    kinds = {HEAP: "definite", HEAP + 0x100: "definite", HEAP + 0x200: "indirect", HEAP + 0x300: "reachable",
             HEAP + 0x400: "definite", HEAP + 0x600: "possible"}
    report = ProcessReport(ProcessResult(4242, list(argv), exit_code=0, ppid=4000), table,
                           Symbolizer(FRAMES.__getitem__), kinds=kinds if scanned else None,
                           leaders={HEAP + 0x200: HEAP} if scanned else None,
                           suppression_source=lambda: SuppressionList.parse("leak:^ignored$", "app.supp"))
    report.checkpoint(61.5)
    return report


def document(report: ProcessReport, kinds: frozenset | None = frozenset(KINDS)) -> tuple[str, ET.Element]:
    out = io.StringIO()
    WRITERS["xml-file"].write([report], out, ReportOptions(where=LeakFilter(kinds=kinds),
                                                           command=("/usr/bin/gdb-memleak", "--xml-file", "x.xml")))
    return out.getvalue(), ET.fromstring(out.getvalue())


def leak_texts(root: ET.Element) -> list[str]:
    return [e.findtext("xwhat/text") or "" for e in root.iter("error") if e.find("xwhat") is not None]


def test_document_is_well_formed_with_names_holding_xml_characters():
    raw, root = document(scripted())
    assert raw.startswith('<?xml version="1.0"?>\n\n<valgrindoutput>\n\n<protocolversion>4</protocolversion>\n')
    assert "Box&lt;int&gt;::make(std::vector&lt;int, std::allocator&lt;int&gt; &gt;&amp;&amp;) [with T = a &amp; b]" \
        in raw
    assert TEMPLATE.function in [fn.text for fn in root.iter("fn")]
    assert [a.text for a in root.findall("args/argv/arg")] == ["a<b", "x\ufffdy"]  # a control character: U+FFFD
    assert [a.text for a in root.findall("args/vargv/*")] == ["/usr/bin/gdb-memleak", "--xml-file", "x.xml"]


def test_top_level_elements_in_protocol_4_order():
    _, root = document(scripted())
    tags = [child.tag for child in root]
    assert tags[:8] == ["protocolversion", "protocoltool", "preamble", "pid", "ppid", "tool", "args", "status"]
    assert tags[8:] == ["error"] * 3 + ["status"] + ["error"] * 5 + ["errorcounts", "suppcounts"]
    assert (root.findtext("protocoltool"), root.findtext("tool"), root.findtext("pid"), root.findtext("ppid")) == \
        ("memcheck", "memcheck", "4242", "4000")
    assert [(s.findtext("state"), s.findtext("time")) for s in root.findall("status")] == \
        [("RUNNING", "00:00:00:00.000 "), ("FINISHED", "00:00:01:01.500 ")]


def test_loss_records_numbered_over_every_record_in_memchecks_order():
    _, root = document(scripted())
    # smallest total first (a definite record's includes what is lost through it), the kind breaking a tie; the
    # suppressed 7 bytes are record 1
    assert leak_texts(root) == [
        "8 bytes in 1 blocks are still reachable in loss record 2 of 6",
        "16 bytes in 1 blocks are indirectly lost in loss record 3 of 6",
        "16 bytes in 1 blocks are possibly lost in loss record 4 of 6",
        "32 (16 direct, 16 indirect) bytes in 1 blocks are definitely lost in loss record 5 of 6",
        "48 bytes in 1 blocks are definitely lost in loss record 6 of 6"]
    leaks = [e for e in root.iter("error") if e.find("xwhat") is not None]
    assert [(e.findtext("kind"), e.findtext("xwhat/leakedbytes"), e.findtext("xwhat/leakedblocks")) for e in leaks] \
        == [("Leak_StillReachable", "8", "1"), ("Leak_IndirectlyLost", "16", "1"), ("Leak_PossiblyLost", "16", "1"),
            ("Leak_DefinitelyLost", "32", "1"), ("Leak_DefinitelyLost", "48", "1")]


def test_kinds_not_shown_and_suppressed_records_keep_their_numbers():
    _, root = document(scripted(), kinds=DEFAULT_SHOWN)
    assert leak_texts(root) == [
        "16 bytes in 1 blocks are possibly lost in loss record 4 of 6",
        "32 (16 direct, 16 indirect) bytes in 1 blocks are definitely lost in loss record 5 of 6",
        "48 bytes in 1 blocks are definitely lost in loss record 6 of 6"]
    assert [(p.findtext("count"), p.findtext("name")) for p in root.findall("suppcounts/pair")] == \
        [("1", "leak:^ignored$")]


def test_unscanned_blocks_are_possibly_lost_saying_their_kind_is_unknown():
    _, root = document(scripted(scanned=False), kinds=DEFAULT_SHOWN)
    # one record per stack without kinds: the 16 and 48 bytes of one stack are one
    assert leak_texts(root)[0] == \
        "8 bytes in 1 blocks are possibly lost (not scanned: kind unknown) in loss record 2 of 5"
    assert {e.findtext("kind") for e in root.iter("error") if e.find("xwhat") is not None} == {"Leak_PossiblyLost"}


def test_repeated_bad_frees_are_one_error_counted_as_memcheck_counts_them():
    _, root = document(scripted())
    errors = [e for e in root.iter("error") if e.find("what") is not None]
    assert [(e.findtext("unique"), e.findtext("tid"), e.findtext("kind")) for e in errors] == [
        ("0x0", "2", "InvalidFree"), ("0x3", "1", "InvalidFree"), ("0x4", "1", "MismatchedFree")]
    assert errors[0].findtext("what") == "Invalid free() / delete / delete[] / realloc()"
    assert errors[2].findtext("what") == "Mismatched free() / delete / delete []"
    assert [(p.findtext("count"), p.findtext("unique")) for p in root.findall("errorcounts/pair")] == \
        [("1", "0x4"), ("1", "0x3"), ("3", "0x0")]  # the latest first, as valgrind lists them
    leaks = [e.findtext("unique") for e in root.iter("error") if e.find("xwhat") is not None]
    assert leaks == ["0x5", "0x6", "0x7", "0x8", "0x9"]  # numbered on from the bad frees, every occurrence counted


def test_auxiliary_lines_and_stacks_say_what_the_pointer_was():
    _, root = document(scripted())
    invalid, unknown, mismatched = [e for e in root.iter("error") if e.find("what") is not None]
    assert [a.text for a in invalid.findall("auxwhat")] == ['Address 0x601040 is 0 bytes inside data symbol "table<&>"']
    assert unknown.findall("auxwhat") == []  # nothing known of that pointer: valgrind's line is not made up
    assert [a.text for a in mismatched.findall("auxwhat")] == [
        f"Address 0x{HEAP + 0x500:x} is 0 bytes inside a block of size 32 alloc'd"]
    bad, alloc = mismatched.findall("stack")
    assert [f.findtext("fn") for f in bad.findall("frame")] == ["free", "bad_free", "helper", "main"]
    assert [f.findtext("fn") for f in alloc.findall("frame")] == ["operator new(unsigned long)", "helper", "main"]


def test_each_stack_starts_at_the_allocator_then_our_frames_as_valgrind_gives_them():
    _, root = document(scripted())
    stacks = {e.findtext("xwhat/leakedbytes"): e.find("stack") for e in root.iter("error")
              if e.find("xwhat") is not None}
    first, *ours = stacks["8"].findall("frame")
    assert [(c.tag, c.text) for c in first] == [("ip", "0x0"), ("obj", "gdb-memleak"), ("fn", "calloc")]
    assert [[(c.tag, c.text) for c in f] for f in ours] == [
        [("ip", "0x7FFFF7E4A122"), ("obj", "/lib/libc.so.6"), ("fn", "strdup")],
        [("ip", "0x7FFFF7E4A1FF"), ("obj", "/lib/libfoo.so")],
        [("ip", "0x400FFF"), ("obj", "/opt/app"), ("fn", "main"), ("dir", APP), ("file", "main.cc"), ("line", "30")]]


def test_allocator_functions_are_named_as_memcheck_demangles_them():
    assert [allocator_function(a) for a in ("malloc", "new", "new[](aligned)", "delete(sized)", "delete[](nothrow)",
                                            "delete(aligned)(sized)", None)] == [
        "malloc", "operator new(unsigned long)", "operator new[](unsigned long, std::align_val_t)",
        "operator delete(void*, unsigned long)", "operator delete[](void*, std::nothrow_t const&)",
        "operator delete(void*, unsigned long, std::align_val_t)", None]
    assert function_name(Frame(1, "sym+0x1a", object="/lib/x.so")) == "sym"
    assert function_name(Frame(1, "0x7fff1234")) is None


def test_per_process_files_with_percent_p_else_the_process_started():
    parent, child = scripted(), scripted()
    child.result.pid, child.result.ppid = 4243, 4242
    exec_image = scripted()  # the parent's exec'd image: same pid, ends after the old one
    exec_image.result.argv = ["/bin/true"]
    reports = [child, parent, exec_image]
    assert [(path, [r.result.argv[0] for r in part]) for path, part in files("out.%p.xml", reports)] == [
        ("out.4243.xml", ["./app"]), ("out.4242.xml", ["/bin/true"])]
    assert [(path, part) for path, part in files("out.xml", reports)] == [("out.xml", [exec_image])]


def test_times_read_as_valgrinds():
    assert elapsed(0) == "00:00:00:00.000 "
    assert elapsed(90061.0015) == "01:01:01:01.002 "


def test_a_forked_childs_document_has_no_running_status_as_valgrinds():
    child = scripted()
    child.result.forked = True
    _, root = document(child)
    assert [s.findtext("state") for s in root.findall("status")] == ["FINISHED"]
