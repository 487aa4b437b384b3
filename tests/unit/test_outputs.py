"""SARIF, folded-stack and mtrace outputs, built from a scripted table and a fake symbolizer (a dict pc -> Frame).

The SARIF log is validated against the official OASIS schema (tests/data), the mtrace log by glibc's own `mtrace`
script when it is installed (Debian: libc-devtools).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess

import pytest

from gdb_memleak import __version__
from gdb_memleak.core.model import Frame, ProcessResult
from gdb_memleak.core.report import ProcessReport
from gdb_memleak.core.reports import ReportOptions
from gdb_memleak.core.reports.folded import folded_stacks, frame_name
from gdb_memleak.core.reports.folded import write as write_folded
from gdb_memleak.core.reports.mtrace import write as write_mtrace
from gdb_memleak.core.reports.sarif import RULES, SCHEMA_URI, build_sarif, file_uri
from gdb_memleak.core.reports.sarif import write as write_sarif
from gdb_memleak.core.suppressions import SuppressionList
from gdb_memleak.core.symbols import Symbolizer
from gdb_memleak.core.table import AllocationTable

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
SCHEMA_PATH = os.path.join(DATA, "sarif-schema-2.1.0.json")

APP_OBJ = "/home/user/app"
APP_SRC = "/home/user/src/app.c"
PLUGIN_OBJ = "/home/user/lib/libplugin.so"  # user code without debug info
LIBC_OBJ = "/lib/x86_64-linux-gnu/libc.so.6"

MAIN = Frame(0x401500, "main", APP_SRC, 50, APP_OBJ)
MAKE_A = Frame(0x401010, "make_a", APP_SRC, 10, APP_OBJ)
MAKE_LEAK = Frame(0x401020, "make_leak", APP_SRC, 20, APP_OBJ)
MAKE_LEAK_21 = Frame(0x401024, "make_leak", APP_SRC, 21, APP_OBJ)  # same function, another line
MAKE_KEPT = Frame(0x401060, "make_kept", APP_SRC, 60, APP_OBJ)
MAKE_IGNORED = Frame(0x401070, "make_ignored", APP_SRC, 70, APP_OBJ)
RELEASE_A = Frame(0x401030, "release_a", APP_SRC, 30, APP_OBJ)
RELEASE_AGAIN = Frame(0x401040, "release_again", APP_SRC, 40, APP_OBJ)
PLUGIN = Frame(0x7FFFF7FC1234, "libplugin.so+0x1234", None, None, PLUGIN_OBJ)
STRDUP = Frame(0x7FFFF7E739AA, "__GI___strdup", "./string/./string/strdup.c", 44, LIBC_OBJ)
CXX = Frame(0x401800, "std::vector<int, std::allocator<int> >::push_back(int const&)", "/home/user/src/v.h", 8,
            APP_OBJ)
FRAMES = {f.pc: f for f in (MAIN, MAKE_A, MAKE_LEAK, MAKE_LEAK_21, MAKE_KEPT, MAKE_IGNORED, RELEASE_A,
                            RELEASE_AGAIN, PLUGIN, STRDUP, CXX)}
UNRESOLVED_PC = 0x401999  # not in FRAMES: the fake resolver raises KeyError, the symbolizer names it "0x401999"

A, LEAKED, LEAKED2, PLUG, KEPT, IGNORED, NOSTACK, EMPTY = (0x5555_5555_A010 + 0x100 * i for i in range(8))


def fake_symbolizer(frames=FRAMES):
    return Symbolizer(frames.__getitem__)


def scripted_report(suppressions="leak:make_ignored"):
    """A double free (of A), an invalid free, and 6 live blocks of several kinds, one of them suppressed."""
    table = AllocationTable()
    table.on_alloc(A, 10, "malloc", 1, (MAKE_A.pc, MAIN.pc), 0.0)
    table.on_alloc(LEAKED, 30, "malloc", 1, (MAKE_LEAK.pc, MAIN.pc), 0.0)
    table.on_alloc(LEAKED2, 5, "malloc", 1, (MAKE_LEAK_21.pc, MAIN.pc), 0.0)
    table.on_alloc(PLUG, 64, "calloc", 2, (PLUGIN.pc, MAIN.pc), 0.0)
    table.on_alloc(KEPT, 100, "malloc", 1, (STRDUP.pc, MAKE_KEPT.pc, MAIN.pc), 0.0)
    table.on_alloc(IGNORED, 7, "malloc", 1, (MAKE_IGNORED.pc, MAIN.pc), 0.0)
    table.on_alloc(NOSTACK, 16, "malloc", 1, (UNRESOLVED_PC,), 0.0)
    table.on_free(A, "free", 1, (RELEASE_A.pc, MAIN.pc), 0.0)
    table.on_free(A, "free", 1, (RELEASE_AGAIN.pc, MAIN.pc), 0.0)
    table.on_free(0xBAD0, "free", 1, (RELEASE_A.pc, MAIN.pc), 0.0)
    kinds = {LEAKED: "definite", LEAKED2: "definite", PLUG: "possible", KEPT: "reachable", IGNORED: "definite"}
    return ProcessReport(ProcessResult(4242, ["./app", "-v"], exit_code=0), table, fake_symbolizer(),
                         kinds=kinds, suppression_source=lambda: SuppressionList.parse(suppressions, "app.supp"))


@pytest.fixture
def report():
    return scripted_report()


# -- SARIF --------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sarif_validator():
    jsonschema = pytest.importorskip("jsonschema")
    with open(SCHEMA_PATH, encoding="utf-8") as f:
        schema = json.load(f)
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)


def assert_valid(validator, doc):
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])


def results_by_rule(doc):
    by_rule = {}
    for result in doc["runs"][0]["results"]:
        by_rule.setdefault(result["ruleId"], []).append(result)
    return by_rule


def test_vendored_schema_is_the_oasis_sarif_2_1_0_schema():
    with open(SCHEMA_PATH, encoding="utf-8") as f:
        schema = json.load(f)
    assert schema["id"] == "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
    assert schema["properties"]["version"]["enum"] == ["2.1.0"]


def test_sarif_with_leaks_heap_errors_and_no_debug_info_frames_validates_against_schema(sarif_validator, report):
    doc = build_sarif([report], "9.9.9")
    assert_valid(sarif_validator, doc)
    assert_valid(sarif_validator, json.loads(json.dumps(doc)))


def test_sarif_of_clean_process_and_of_no_process_validates(sarif_validator):
    clean = ProcessReport(ProcessResult(1, ["./ok"], exit_code=0), AllocationTable(), fake_symbolizer())
    for reports in ([clean], []):
        doc = build_sarif(reports, __version__)
        assert_valid(sarif_validator, doc)
        assert doc["runs"][0]["results"] == []


def test_sarif_with_source_root_validates_and_uses_relative_uris(sarif_validator, report):
    doc = build_sarif([report], __version__, source_root="/home/user/")
    assert_valid(sarif_validator, doc)
    run = doc["runs"][0]
    assert run["originalUriBaseIds"] == {"SRCROOT": {"uri": "file:///home/user/"}}
    definite = results_by_rule(doc)["definite"][0]
    artifact = definite["locations"][0]["physicalLocation"]["artifactLocation"]
    assert artifact == {"uri": "src/app.c", "uriBaseId": "SRCROOT"}


def test_sarif_header_tool_and_rules(report):
    doc = build_sarif([report], "1.2.3")
    assert doc["$schema"] == SCHEMA_URI == "https://json.schemastore.org/sarif-2.1.0.json"
    assert doc["version"] == "2.1.0"
    assert len(doc["runs"]) == 1
    driver = doc["runs"][0]["tool"]["driver"]
    assert (driver["name"], driver["version"]) == ("gdb-memleak", "1.2.3")
    assert driver["informationUri"].startswith("https://")
    ids = [rule["id"] for rule in driver["rules"]]
    assert ids == ["definite", "indirect", "possible", "reachable", "unfreed",
                   "double_free", "invalid_free", "mismatched_free", "fatal_signal"]
    levels = {rule["id"]: rule["defaultConfiguration"]["level"] for rule in driver["rules"]}
    assert levels["definite"] == levels["double_free"] == levels["invalid_free"] == "error"
    assert levels["reachable"] == "note"
    for result in doc["runs"][0]["results"]:
        assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] == levels[result["ruleId"]]


def test_sarif_one_result_per_leak_group_and_per_heap_error(report):
    doc = build_sarif([report], __version__)
    by_rule = results_by_rule(doc)
    assert sorted((rule, len(results)) for rule, results in by_rule.items()) == [
        ("definite", 3), ("double_free", 1), ("invalid_free", 1), ("possible", 1), ("reachable", 1),
        ("unfreed", 1)]


def test_sarif_leak_result_message_location_and_stack(report):
    definite = results_by_rule(build_sarif([report], __version__))["definite"]
    result = next(r for r in definite if r["properties"]["bytes"] == 30)
    assert result["level"] == "error"
    assert result["message"]["text"].startswith("30 bytes in 1 blocks are definitely lost")
    assert "make_leak (app.c:20)" in result["message"]["text"]
    physical = result["locations"][0]["physicalLocation"]
    assert physical["artifactLocation"] == {"uri": "file:///home/user/src/app.c"}
    assert physical["region"] == {"startLine": 20}
    assert result["locations"][0]["logicalLocations"] == [{"name": "make_leak", "kind": "function"}]
    frames = result["stacks"][0]["frames"]
    assert [f["location"]["physicalLocation"]["region"]["startLine"] for f in frames] == [20, 50]
    assert [f["module"] for f in frames] == [APP_OBJ, APP_OBJ]
    assert result["properties"] == {"pid": 4242, "bytes": 30, "blocks": 1, "allocator": "malloc",
                                    "firstAllocation": 2}


def test_sarif_site_is_first_user_frame_and_reachable_is_a_note(report):
    reachable = results_by_rule(build_sarif([report], __version__))["reachable"][0]
    assert reachable["level"] == "note"
    assert reachable["message"]["text"].startswith("100 bytes in 1 blocks are still reachable")
    location = reachable["locations"][0]["physicalLocation"]
    assert location["region"] == {"startLine": 60}  # make_kept, not strdup in libc
    stack = reachable["stacks"][0]["frames"]
    assert stack[0]["location"]["physicalLocation"]["artifactLocation"] == {"uri": "string/string/strdup.c"}


def test_sarif_frame_without_debug_info_is_located_by_object_and_address(report):
    possible = results_by_rule(build_sarif([report], __version__))["possible"][0]
    assert possible["level"] == "warning"
    location = possible["locations"][0]
    assert location["physicalLocation"] == {
        "artifactLocation": {"uri": "file:///home/user/lib/libplugin.so"},
        "address": {"absoluteAddress": PLUGIN.pc, "kind": "instruction"}}
    assert "region" not in location["physicalLocation"]


def test_sarif_unresolved_pc_gets_an_address_only_location(report):
    unfreed = results_by_rule(build_sarif([report], __version__))["unfreed"][0]
    physical = unfreed["locations"][0]["physicalLocation"]
    assert physical == {"address": {"absoluteAddress": UNRESOLVED_PC, "kind": "instruction"}}
    assert "logicalLocations" not in unfreed["locations"][0]


def test_sarif_double_free_has_three_stacks_and_related_locations(report):
    result = results_by_rule(build_sarif([report], __version__))["double_free"][0]
    assert result["level"] == "error"
    assert result["message"]["text"].startswith(f"Double free of 0x{A:x} (10-byte block)")
    assert result["locations"][0]["physicalLocation"]["region"] == {"startLine": 40}
    assert [s["message"]["text"] for s in result["stacks"]] == ["bad free", "first freed here", "allocated here"]
    related = [(r["id"], r["message"]["text"], r["physicalLocation"]["region"]["startLine"])
               for r in result["relatedLocations"]]
    assert related == [(1, "first freed here", 30), (2, "allocated here", 10)]


def test_sarif_invalid_free_has_only_the_bad_free_stack(report):
    result = results_by_rule(build_sarif([report], __version__))["invalid_free"][0]
    assert result["message"]["text"].startswith("Invalid free of 0xbad0")
    assert len(result["stacks"]) == 1 and "relatedLocations" not in result
    assert result["properties"]["address"] == "0xbad0"


def test_sarif_marks_suppressed_leak_groups_as_suppressed(report):
    results = build_sarif([report], __version__)["runs"][0]["results"]
    suppressed = [r for r in results if "suppressions" in r]
    assert len(suppressed) == 1
    assert suppressed[0]["properties"]["bytes"] == 7
    assert suppressed[0]["suppressions"] == [{"kind": "external", "justification": "leak:make_ignored (app.supp:1)"}]


def test_sarif_results_of_several_processes_carry_their_pid(report):
    other = ProcessReport(ProcessResult(7, ["./other"], signal="SIGABRT"), AllocationTable(), fake_symbolizer())
    other.table.on_alloc(LEAKED, 3, "malloc", 1, (MAKE_LEAK.pc,), 0.0)
    doc = build_sarif([report, other], __version__)
    pids = {r["properties"]["pid"] for r in doc["runs"][0]["results"]}
    assert pids == {4242, 7}
    assert [p["pid"] for p in doc["runs"][0]["properties"]["processes"]] == [4242, 7]
    assert doc["runs"][0]["properties"]["processes"][1]["exit"] == {"signal": "SIGABRT"}


@pytest.mark.parametrize("path, expected", [
    ("/home/user/src/app.c", "file:///home/user/src/app.c"),
    ("/home/user/my dir/a+b.c", "file:///home/user/my%20dir/a%2Bb.c"),
    ("./elf/./elf/dl-init.c", "elf/elf/dl-init.c"),
    ("[stack]", "%5Bstack%5D"),
])
def test_file_uri_encodes_paths(path, expected):
    assert file_uri(path) == (expected, None)


def test_write_sarif_emits_one_json_document(report):
    out = io.StringIO()
    write_sarif([report], out, None)
    assert out.getvalue().endswith("}\n")
    assert json.loads(out.getvalue()) == build_sarif([report])


def test_every_rule_has_a_level_sarif_accepts():
    assert {level for *_, level in RULES} <= {"none", "note", "warning", "error"}


# -- folded stacks ------------------------------------------------------------------------------------------------
FOLDED_LINE = re.compile(r"^[^ ;]+(;[^ ;]+)* \d+$")


def folded(reports):
    out = io.StringIO()
    write_folded(reports, out)
    return out.getvalue()


def test_folded_lines_are_outermost_first_with_leaked_bytes(report):
    lines = folded([report]).splitlines()
    assert all(FOLDED_LINE.match(line) for line in lines), lines
    assert "main;make_kept;__GI___strdup 100" in lines
    assert "main;libplugin.so+0x1234 64" in lines
    assert "0x401999 16" in lines


def test_folded_merges_stacks_that_read_the_same_and_omits_suppressed(report):
    lines = folded([report]).splitlines()
    assert "main;make_leak 35" in lines  # 30 bytes at line 20 + 5 bytes at line 21
    assert not any("make_ignored" in line for line in lines)
    assert len(lines) == 4
    assert lines == sorted(lines)


def test_folded_merges_across_processes(report):
    other = ProcessReport(ProcessResult(7, ["./app"]), AllocationTable(), fake_symbolizer())
    other.table.on_alloc(LEAKED, 3, "malloc", 1, (MAKE_LEAK.pc, MAIN.pc), 0.0)
    assert folded_stacks([report, other])["main;make_leak"] == 38


def test_folded_frame_names_replace_separators_and_fall_back_to_object_offset():
    assert frame_name(CXX) == "std::vector<int,_std::allocator<int>_>::push_back(int_const&)"
    assert frame_name(Frame(1, "a;b\tc")) == "a:b_c"
    assert frame_name(Frame(0x7F0000001234, "0x7f0000001234", None, None, "/usr/lib/libz.so.1")) == \
        "libz.so.1+0x7f0000001234"
    assert frame_name(Frame(0x1234, "??", None, None, "??")) == "0x1234"
    assert frame_name(Frame(0x1234, "<function called from gdb>", None, None, "[stack]")) == \
        "<function_called_from_gdb>"


def test_folded_output_of_no_leaks_is_empty():
    clean = ProcessReport(ProcessResult(1, []), AllocationTable(), fake_symbolizer())
    assert folded([clean]) == ""


def test_folded_stack_without_frames_is_unknown():
    table = AllocationTable()
    table.on_alloc(A, 9, "malloc", 1, (), 0.0)
    assert folded([ProcessReport(ProcessResult(1, []), table, fake_symbolizer())]) == "[unknown] 9\n"


# -- mtrace -------------------------------------------------------------------------------------------------------
MTRACE_LINE = re.compile(r"^(@ (?:\S+:)?\[0x[0-9a-f]+\] )?\+ 0x[0-9a-f]+ (0x[0-9a-f]+|0)$")


def mtrace_report():
    """Live blocks of every shape: realloc'ed, zero-sized, in a library, unresolved caller, no stack at all."""
    table = AllocationTable()
    table.on_alloc(A, 10, "malloc", 1, (MAKE_A.pc, MAIN.pc), 0.0)
    table.on_alloc(LEAKED, 30, "malloc", 1, (MAKE_LEAK.pc, MAIN.pc), 0.0)
    table.on_free(A, "free", 1, (RELEASE_A.pc,), 0.0)
    table.on_alloc(KEPT, 100, "malloc", 1, (STRDUP.pc, MAKE_KEPT.pc), 0.0)
    table.on_realloc(LEAKED, LEAKED2, 300, "realloc", 1, (MAKE_LEAK_21.pc,), 0.0)
    table.on_alloc(EMPTY, 0, "malloc", 1, (MAIN.pc,), 0.0)
    table.on_alloc(NOSTACK, 16, "malloc", 1, (), 0.0)
    table.on_alloc(PLUG, 0x1234, "calloc", 1, (UNRESOLVED_PC,), 0.0)
    return ProcessReport(ProcessResult(1, ["./app"]), table, fake_symbolizer())


def mtrace_text(report, **kwargs):
    out = io.StringIO()
    write_mtrace([report], out, ReportOptions(**kwargs))
    return out.getvalue()


def test_mtrace_log_lists_live_blocks_in_allocation_order_between_start_and_end():
    report = mtrace_report()
    lines = mtrace_text(report).splitlines()
    assert lines[0] == "= Start" and lines[-1] == "= End"
    body = lines[1:-1]
    assert all(MTRACE_LINE.match(line) for line in body), body
    assert body == [
        f"@ {LIBC_OBJ}:[0x{STRDUP.pc:x}] + 0x{KEPT:x} 0x64",
        f"@ {APP_OBJ}:[0x{MAKE_LEAK_21.pc:x}] + 0x{LEAKED2:x} 0x12c",
        f"@ {APP_OBJ}:[0x{MAIN.pc:x}] + 0x{EMPTY:x} 0",
        f"+ 0x{NOSTACK:x} 0x10",
        f"@ [0x{UNRESOLVED_PC:x}] + 0x{PLUG:x} 0x1234",
    ]


def test_mtrace_caller_is_object_relative_when_object_bases_are_known():
    bases = {APP_OBJ: 0x400000, LIBC_OBJ: 0x7FFFF7DD0000}
    lines = mtrace_text(mtrace_report(), object_base=bases.get).splitlines()
    assert f"@ {LIBC_OBJ}:[0x{STRDUP.pc - 0x7FFFF7DD0000:x}] + 0x{KEPT:x} 0x64" in lines
    assert f"@ {APP_OBJ}:[0x{MAIN.pc - 0x400000:x}] + 0x{EMPTY:x} 0" in lines
    assert f"@ [0x{UNRESOLVED_PC:x}] + 0x{PLUG:x} 0x1234" in lines


def test_mtrace_of_no_live_blocks_is_start_and_end():
    clean = ProcessReport(ProcessResult(1, []), AllocationTable(), fake_symbolizer())
    assert mtrace_text(clean) == "= Start\n= End\n"


def run_glibc_mtrace(log_path):
    script = shutil.which("mtrace")
    if script is None:
        pytest.skip("glibc's mtrace script is not installed (Debian: apt-get install libc-devtools)")
    return subprocess.run([script, str(log_path)], capture_output=True, text=True, timeout=60)


NOT_FREED = re.compile(r"^(0x[0-9a-f]+)\s+(0x[0-9a-f]+|0)\s+at\s*(.*)$")


def test_glibc_mtrace_script_reports_exactly_our_live_blocks(tmp_path):
    report = mtrace_report()
    log = tmp_path / "mtrace.log"
    log.write_text(mtrace_text(report))
    proc = run_glibc_mtrace(log)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # 1: memory not freed
    assert "Memory not freed:" in proc.stdout
    rows = [NOT_FREED.match(line.strip()) for line in proc.stdout.split("Caller\n", 1)[1].splitlines()]
    assert all(rows), proc.stdout
    reported = {(int(m.group(1), 16), int(m.group(2), 16)): m.group(3) for m in rows}
    assert set(reported) == {(b.address, b.size) for b in report.table.live()}
    assert reported[(KEPT, 100)] == f"0x{STRDUP.pc:x}"   # `OBJECT:[0x..]` without a binary: the caller address
    assert reported[(PLUG, 0x1234)] == f"0x{UNRESOLVED_PC:x}"
    assert reported[(NOSTACK, 16)] == ""
    assert "duplicate" not in proc.stdout and "never alloc'd" not in proc.stdout


def test_glibc_mtrace_script_finds_no_leaks_in_log_of_clean_process(tmp_path):
    clean = ProcessReport(ProcessResult(1, []), AllocationTable(), fake_symbolizer())
    log = tmp_path / "clean.log"
    log.write_text(mtrace_text(clean))
    proc = run_glibc_mtrace(log)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "No memory leaks."
