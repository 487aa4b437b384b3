"""The plugin as a user drives it: real GDB in batch mode, commands as -ex, on the real C targets.

Line numbers come from the targets' `// expect:` markers (or from searching the source text), never hard-coded.
Plugin output goes through gdb.write (stdout); command errors go to GDB's stderr. Where one GDB session runs
several commands, `echo @@name@@` markers split its stdout into per-command sections.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import defaultdict
from pathlib import Path

import pytest

import expectations
from conftest import TARGETS, run_cli, run_gdb

SEED = expectations.parse(TARGETS / "seed_demo.c")
LEAK_SITES = expectations.parse(TARGETS / "leak_sites.c")
CRASH = expectations.parse(TARGETS / "crash_segv.c")
DEEP = expectations.parse(TARGETS / "deep_stack.c")
THREADS = expectations.parse(TARGETS / "threads.c")

ANSI = re.compile(r"\x1b\[")
TABLE_ROW = re.compile(r"^\s*(?P<bytes>[\d,]+)\s+(?P<blocks>[\d,]+)\s+(?P<allocator>\w+)\s+#\d+\s+(?P<site>.+)$")
STACK_FRAME = re.compile(r"^   (?:at|by) 0x[0-9a-f]+: (?P<function><[^>]+>|\S+) \((?P<where>.+)\)$")
OUR_BREAKPOINT = re.compile(r"^(?P<num>-\d+)\s+breakpoint\s+keep\s+[yn]\s+0x(?P<addr>[0-9a-f]+)\b")
GDB_INTERNAL = re.compile(r"^(?P<num>-\d+)\s+(?P<type>(?!breakpoint\s)\S.*?)\s+keep\s")


def line_of(source: Path, text: str) -> int:
    """The one line of `source` containing `text`."""
    hits = [n for n, line in enumerate(source.read_text().splitlines(), start=1) if text in line]
    assert len(hits) == 1, f"{text!r} occurs {len(hits)} times in {source.name}"
    return hits[0]


def mark(name: str) -> str:
    return f"echo @@{name}@@\\n"


def sections(stdout: str) -> dict[str, str]:
    """stdout split at the `mark()` echoes: {"": before the first mark, name: output after that mark}."""
    parts = re.split(r"^@@(\S+?)@@$", stdout, flags=re.M)
    found = {"": parts[0]}
    for name, text in zip(parts[1::2], parts[2::2]):
        found[name] = text
    return found


def table_rows(text: str, source: str) -> dict[int, tuple[int, int]]:
    """`leaks` table rows as {line in `source`: (bytes, blocks)}."""
    rows = {}
    for line in text.splitlines():
        match = TABLE_ROW.match(line)
        if match:
            where = re.search(rf"{re.escape(source)}:(\d+)\)$", match["site"])
            assert where, line
            rows[int(where.group(1))] = (int(match["bytes"].replace(",", "")), int(match["blocks"].replace(",", "")))
    return rows


def stack_blocks(text: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """`leaks --stack` output as [(group header, [(function, where), ...]), ...]."""
    groups: list[tuple[str, list[tuple[str, str]]]] = []
    for line in text.splitlines():
        if re.match(r"^[\d,]+ bytes? in [\d,]+ blocks? \[", line):
            groups.append((line, []))
        elif groups and (match := STACK_FRAME.match(line)):
            groups[-1][1].append((match["function"], match["where"]))
    return groups


def no_traceback(run) -> None:
    assert "Traceback" not in run.stdout + run.stderr, run.stderr
    assert "internal error" not in run.stdout + run.stderr, run.stderr


# -- a. leaks --by-line ---------------------------------------------------------------------------------------------

def test_leaks_by_line_shows_the_leaking_source_line_with_a_marker_and_no_ansi_escapes(built_targets: Path):
    (p3_line, (p3_bytes, p3_blocks)), = SEED.leaks.items()
    run = run_gdb(["memleak start", "set memleak on-error report", "run", mark("byline"), "leaks --by-line"],
                  built_targets / "seed_demo")
    no_traceback(run)
    by_line = sections(run.stdout)["byline"]
    assert "LEAKS BY LINE: 1 line" in by_line
    assert f"seed_demo.c:{p3_line}: {p3_bytes} bytes in {p3_blocks} block (malloc) in main" in by_line
    marked = [line for line in by_line.splitlines() if re.match(r"^\s*>", line)]
    assert len(marked) == 1, by_line
    assert re.match(rf"^\s*>\s*{p3_line} \| .*malloc\(30\)", marked[0]), marked
    assert not ANSI.search(run.stdout), "styling must be off in batch mode"


# -- b. on-error stop -----------------------------------------------------------------------------------------------

def test_default_on_error_stops_at_the_double_free_where_the_stack_and_locals_can_be_inspected(built_targets: Path):
    bad_free_line = SEED.double_frees["p4"]
    run = run_gdb(["memleak start", "run", mark("bt"), "bt", mark("frame"), "frame 1", "info locals",
                   mark("continue"), "continue"], built_targets / "seed_demo")
    no_traceback(run)
    out = sections(run.stdout)
    assert "Double free of 0x" in out[""], run.stdout
    assert "HEAP SUMMARY" not in out[""], "stopped at the bad free: the program has not ended yet"
    frame1 = re.search(r"^#1\s+0x[0-9a-f]+ in main \(\) at \S*seed_demo\.c:(\d+)$", out["bt"], re.M)
    assert frame1 and int(frame1.group(1)) == bad_free_line, out["bt"]
    assert re.search(r"^#0\s.*free", out["bt"], re.M), out["bt"]
    assert f"seed_demo.c:{bad_free_line}" in out["frame"]
    for local in ("p1", "p2", "p3", "p4"):
        assert re.search(rf"^{local} = 0x[0-9a-f]+", out["frame"], re.M), out["frame"]
    assert "SIGABRT" in out["continue"]
    assert "killed by SIGABRT" in out["continue"]
    assert run.stdout.count("HEAP SUMMARY") == 1, run.stdout
    assert run.stdout.count("SUMMARY: 1 heap error") == 1, run.stdout


# -- c. report at exit, then `leaks` and its options ---------------------------------------------------------------

@pytest.fixture(scope="module")
def leak_sites_session(built_targets: Path, tmp_path_factory) -> tuple[object, dict[str, str], Path]:
    json_path = tmp_path_factory.mktemp("leaks") / "leaks.json"
    run = run_gdb(["memleak start", "run",
                   mark("leaks"), "leaks",
                   mark("top"), "leaks --top 1",
                   mark("min"), "leaks --min-bytes 100",
                   mark("stack"), "leaks --stack",
                   mark("json"), f"leaks --json {json_path}"],
                  built_targets / "leak_sites")
    return run, sections(run.stdout), json_path


def test_report_is_printed_once_when_the_program_exits_normally(leak_sites_session):
    run, out, _ = leak_sites_session
    no_traceback(run)
    assert "exited normally" in out[""]
    assert "exited with code 0" in out[""]
    assert run.stdout.count("HEAP SUMMARY") == 1, run.stdout
    total = sum(b for b, _ in LEAK_SITES.leaks.values())
    assert f"SUMMARY: 0 heap errors, {total:,} bytes" in out[""]
    assert table_rows(out[""], "leak_sites.c") == LEAK_SITES.leaks


def test_leaks_still_lists_every_leak_after_the_program_exited(leak_sites_session):
    _, out, _ = leak_sites_session
    assert table_rows(out["leaks"], "leak_sites.c") == LEAK_SITES.leaks


def test_leaks_top_1_shows_only_the_largest_group(leak_sites_session):
    _, out, _ = leak_sites_session
    largest = max(LEAK_SITES.leaks, key=lambda line: LEAK_SITES.leaks[line][0])
    assert table_rows(out["top"], "leak_sites.c") == {largest: LEAK_SITES.leaks[largest]}
    assert "(showing 1)" in out["top"]


def test_leaks_min_bytes_hides_smaller_groups(leak_sites_session):
    _, out, _ = leak_sites_session
    want = {line: v for line, v in LEAK_SITES.leaks.items() if v[0] >= 100}
    assert 0 < len(want) < len(LEAK_SITES.leaks)
    assert table_rows(out["min"], "leak_sites.c") == want


def test_leaks_stack_shows_the_whole_call_chain_node_alloc_make_list_main(leak_sites_session):
    _, out, _ = leak_sites_session
    src = LEAK_SITES.source
    node_alloc_line = line_of(src, "struct node *n = malloc(")
    groups = stack_blocks(out["stack"])
    assert len(groups) == len(LEAK_SITES.leaks)
    node_group = [frames for header, frames in groups if frames and frames[0][0] == "node_alloc"]
    assert len(node_group) == 1, out["stack"]
    assert node_group[0] == [
        ("node_alloc", f"{src}:{node_alloc_line}"),
        ("make_list", f"{src}:{line_of(src, 'node_alloc(i);')}"),
        ("main", f"{src}:{line_of(src, 'make_list(3);')}"),
    ]
    loop_group = [frames for header, frames in groups if frames and frames[0][0] == "leak_in_loop"]
    assert loop_group == [[("leak_in_loop", f"{src}:{line_of(src, 'malloc(24)')}"),
                           ("main", f"{src}:{line_of(src, 'leak_in_loop();')}")]]


def test_leaks_json_writes_the_report_schema(leak_sites_session):
    from gdb_memleak import __version__

    _, out, json_path = leak_sites_session
    assert f"JSON report written to {json_path}" in out["json"]
    report = json.loads(json_path.read_text())
    assert report["tool"] == "gdb-memleak"
    assert report["version"] == __version__
    assert len(report["processes"]) == 1
    process = report["processes"][0]
    assert set(process) >= {"pid", "argv", "exit", "totals", "in_use_at_exit", "leaks", "errors"}
    assert process["exit"] == {"code": 0}
    assert process["argv"][0].endswith("leak_sites")
    assert set(process["totals"]) == {"allocs", "frees", "bytes_allocated"}
    assert process["totals"]["allocs"] >= process["totals"]["frees"] > 0
    assert process["in_use_at_exit"] == {"bytes": sum(b for b, _ in LEAK_SITES.leaks.values()),
                                         "blocks": sum(n for _, n in LEAK_SITES.leaks.values())}
    assert process["errors"] == []
    assert sorted((leak["bytes"], leak["blocks"]) for leak in process["leaks"]) == sorted(LEAK_SITES.leaks.values())
    for leak in process["leaks"]:
        assert set(leak) == {"kind", "bytes", "blocks", "allocator", "stack"}
        assert set(leak["stack"][0]) == {"pc", "function", "file", "line", "object"}


# -- d. crash -------------------------------------------------------------------------------------------------------

def test_report_is_printed_when_the_program_dies_of_sigsegv(built_targets: Path):
    run = run_gdb(["memleak start", "run"], built_targets / "crash_segv")
    no_traceback(run)
    assert "Program received signal SIGSEGV" in run.stdout
    assert "killed by SIGSEGV" in run.stdout
    assert run.stdout.index("Program received signal SIGSEGV") < run.stdout.index("killed by SIGSEGV")
    assert run.stdout.count("HEAP SUMMARY") == 1, run.stdout
    assert table_rows(run.stdout, "crash_segv.c") == CRASH.leaks


# -- e. status ------------------------------------------------------------------------------------------------------

def test_memleak_status_shows_counters_and_the_hooked_libc_functions(built_targets: Path):
    run = run_gdb([mark("before"), "memleak status", "memleak start", mark("armed"), "memleak status",
                   "run", mark("status"), "memleak status"], built_targets / "crash_segv")
    no_traceback(run)
    out = sections(run.stdout)
    assert "gdb-memleak: not tracking." in out["before"]
    assert "armed, waiting for the program to run" in out["armed"]
    status = out["status"]
    assert "total heap usage: 1 allocs, 0 frees, 100 bytes allocated" in status
    assert "live: 100 bytes in 1 blocks" in status
    hooked = re.search(r"^  hooked: (.*)$", status, re.M)
    assert hooked, status
    entries = dict(re.findall(r"(\w+) \(([^)]+)\)", hooked.group(1)))
    assert os.path.basename(entries["malloc"]) == "libc.so.6"
    assert os.path.basename(entries["free"]) == "libc.so.6"
    assert "heap errors: 0" in status


# -- f. memleak stop ------------------------------------------------------------------------------------------------

def test_memleak_stop_removes_every_breakpoint_it_set_and_the_program_runs_on(built_targets: Path):
    run = run_gdb(["memleak start", "break leak_in_loop", "run",
                   mark("addr"), "p &malloc",
                   mark("before"), "maint info breakpoints",
                   mark("stop"), "memleak stop",
                   mark("after"), "maint info breakpoints",
                   mark("status"), "memleak status",
                   mark("continue"), "continue"],
                  built_targets / "leak_sites")
    no_traceback(run)
    out = sections(run.stdout)
    malloc_addr = int(re.search(r"0x([0-9a-f]+) <", out["addr"]).group(1), 16)

    def ours(text: str) -> dict[int, tuple[int, str]]:
        return {int(m["num"]): (int(m["addr"], 16), m.string) for m in map(OUR_BREAKPOINT.match, text.splitlines())
                if m}

    def gdbs(text: str) -> list[tuple[int, str]]:
        return [(int(m["num"]), m["type"]) for m in map(GDB_INTERNAL.match, text.splitlines()) if m]

    before, after = ours(out["before"]), ours(out["after"])
    assert malloc_addr in [addr for addr, _ in before.values()], out["before"]
    # make_list ran before the stop at leak_in_loop: return-site breakpoints in leak_sites exist besides the entries
    assert any("leak_sites.c" in text for _, text in before.values()), out["before"]
    removed = int(re.search(r"tracking stopped \((\d+) breakpoints removed\)", out["stop"]).group(1))
    assert removed == len(before)
    assert after == {}, out["after"]
    assert gdbs(out["after"]) == gdbs(out["before"]), "GDB's own internal breakpoints must be untouched"
    assert re.search(r"^1\s+breakpoint\s+keep\s+y.*in leak_in_loop", out["after"], re.M), out["after"]
    assert "not tracking" in out["status"]
    assert "exited normally" in out["continue"]
    assert "Double free" not in run.stdout and "Invalid free" not in run.stdout


# -- g. start in the middle of a run --------------------------------------------------------------------------------

@pytest.mark.parametrize("stop_at", ["tmp[0] = 'x';", "grow[0] = 'g';"],
                         ids=["free-of-pre-start-block", "realloc-of-pre-start-block"])
def test_start_mid_run_counts_frees_of_earlier_blocks_as_untracked_not_invalid(built_targets: Path, stop_at: str):
    src = LEAK_SITES.source
    realloc_line = line_of(src, "grow = realloc(grow, 200);")
    run = run_gdb([f"break leak_sites.c:{line_of(src, stop_at)}", "run", mark("start"), "memleak start",
                   mark("continue"), "continue", mark("status"), "memleak status"],
                  built_targets / "leak_sites")
    no_traceback(run)
    out = sections(run.stdout)
    assert "from now on" in out["start"]
    assert "Invalid free" not in run.stdout
    assert "heap error" not in out["continue"].replace("0 heap errors", "")
    assert "untracked frees: 1 (blocks allocated before tracking began)" in out["status"]
    assert "heap errors: 0" in out["status"]
    # only the block allocated after the start is known (and leaked): the realloc at the end of main
    assert table_rows(out["continue"], "leak_sites.c") == {realloc_line: LEAK_SITES.leaks[realloc_line]}


# -- h. the user's own `call` -----------------------------------------------------------------------------------------

def test_user_call_to_malloc_and_free_is_tracked(built_targets: Path):
    run = run_gdb(["memleak start", "break main", "run",
                   mark("malloc"), "call (void*)malloc(77)",
                   mark("leaks"), "leaks",
                   mark("free"), "call (void)free($1)",
                   mark("after"), "leaks"],
                  built_targets / "clean")
    no_traceback(run)
    out = sections(run.stdout)
    assert re.search(r"^\$1 = \(void \*\) 0x[0-9a-f]+", out["malloc"], re.M), out["malloc"]
    assert "LEAKS: 77 bytes in 1 block" in out["leaks"]
    rows = [TABLE_ROW.match(line) for line in out["leaks"].splitlines()]
    assert [(m["bytes"], m["blocks"], m["allocator"]) for m in rows if m] == [("77", "1", "malloc")]
    assert "LEAKS: 0 bytes in 0 blocks" in out["after"]


def test_user_call_allocation_site_is_not_attributed_to_the_executable_at_a_bogus_offset(built_targets: Path):
    exe = built_targets / "clean"
    run = run_gdb(["memleak start", "break main", "run", "call (void*)malloc(77)", mark("stack"), "leaks --stack"], exe)
    no_traceback(run)
    frames = stack_blocks(sections(run.stdout)["stack"])[0][1]
    assert frames[0] == ("<function called from gdb>", "[stack]"), frames
    size = exe.stat().st_size
    for function, where in frames:
        fallback = re.fullmatch(r"(?P<obj>[^+]+)\+0x(?P<offset>[0-9a-f]+)", function)
        if fallback and where == str(exe):
            assert int(fallback["offset"], 16) < size, f"{function} ({where}) lies outside {exe.name}"


# -- i. argument errors, help, show ---------------------------------------------------------------------------------

@pytest.mark.parametrize("command, error", [
    ("leaks", "gdb-memleak: no allocation data for this inferior: use `memleak start`, then `run`."),
    ("leaks --top x", "leaks: argument --top: not a number: 'x' (see `help leaks`)"),
    ("leaks --top -1", "leaks: argument --top: must not be negative: -1 (see `help leaks`)"),
    ("leaks --bogus", "leaks: unrecognized arguments: --bogus (see `help leaks`)"),
    ("memleak start extra", "memleak start: takes no arguments (see `help memleak start`)"),
    ("memleak errors", "gdb-memleak: no allocation data for this inferior: use `memleak start`, then `run`."),
    ("set memleak backtrace-depth 0", "backtrace-depth must be at least 1"),
    ("set memleak on-error bogus", 'Undefined item: "bogus".'),
    ("set memleak system-objects (", "system-objects: invalid regular expression: "
                                     "missing ), unterminated subpattern at position 0"),
], ids=["leaks-before-run", "top-not-a-number", "top-negative", "unknown-option", "start-with-argument",
        "errors-before-run", "depth-0", "on-error-bogus", "system-objects-bad-regex"])
def test_wrong_arguments_give_a_one_line_error_without_traceback(built_targets: Path, command: str, error: str):
    run = run_gdb([command], built_targets / "clean")
    assert run.stderr.splitlines() == [error]
    assert run.stdout == ""
    assert "Traceback" not in run.stderr


def test_memleak_start_with_arguments_does_not_arm_tracking(built_targets: Path):
    run = run_gdb(["memleak start extra", "memleak status"], built_targets / "clean")
    assert run.stdout == "gdb-memleak: not tracking.\n"


@pytest.mark.parametrize("setting, good, bad", [
    ("backtrace-depth", "16", "0"),
    ("system-objects", "^/opt/", "("),
], ids=["backtrace-depth", "system-objects"])
def test_rejected_setting_keeps_the_previous_value(built_targets: Path, setting: str, good: str, bad: str):
    run = run_gdb([f"set memleak {setting} {good}", f"set memleak {setting} {bad}", mark("show"), "show memleak"],
                  built_targets / "clean")
    assert len(run.stderr.splitlines()) == 1, run.stderr
    assert f"memleak {setting}: {good}\n" in sections(run.stdout)["show"]


@pytest.mark.parametrize("command, usage", [
    ("help leaks", "Usage: leaks [--by-line] [--top N] [--min-bytes N] [--stack] [--json FILE] [--pid N]"),
    ("help memleak", "Usage: memleak start|stop|status|reset|errors"),
    ("help memleak start", "Usage: memleak start"),
], ids=["leaks", "memleak", "memleak-start"])
def test_help_shows_usage(built_targets: Path, command: str, usage: str):
    run = run_gdb([command])
    assert run.stderr == ""
    assert usage in run.stdout.splitlines()


def test_show_memleak_lists_every_setting_with_its_default():
    run = run_gdb(["show memleak"])
    assert run.stderr == ""
    lines = run.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["memleak backtrace-depth", "memleak on-error",
                                                      "memleak system-objects", "memleak report-at-exit"]
    assert "memleak backtrace-depth: 16" in lines
    assert "memleak on-error: stop" in lines
    assert "memleak report-at-exit: on" in lines


# -- j. backtrace depth ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("depth, frames", [(2, 2), (None, 16)], ids=["depth-2", "default-16"])
def test_backtrace_depth_limits_the_recorded_stack(built_targets: Path, depth: int | None, frames: int):
    (leak_line, _), = DEEP.leaks.items()
    settings = [f"set memleak backtrace-depth {depth}"] if depth else []
    run = run_gdb([*settings, "memleak start", "run", mark("stack"), "leaks --stack"], built_targets / "deep_stack")
    no_traceback(run)
    (header, stack), = stack_blocks(sections(run.stdout)["stack"])
    assert len(stack) == frames, stack
    assert stack[0] == ("f", f"{DEEP.source}:{leak_line}")
    assert all(function == "f" for function, _ in stack), "deep_stack recurses 20 deep: only f frames fit"


# -- k. many calls, several threads (batch CLI) --------------------------------------------------------------------

def _first_user_line(stack: list[dict], source: Path) -> int | None:
    for frame in stack:
        if frame["file"] == str(source):
            return frame["line"]
    return None


def test_churn_100k_allocator_calls_are_all_matched(built_targets: Path, tmp_path: Path):
    started = time.monotonic()
    run = run_cli([str(built_targets / "churn"), "50000"], tmp_path, timeout=600)
    elapsed = time.monotonic() - started
    process = run.process()
    assert process["totals"]["allocs"] == 50000, run.stderr
    assert process["totals"]["frees"] == 50000, run.stderr
    assert process["in_use_at_exit"] == {"bytes": 0, "blocks": 0}
    assert process["leaks"] == [] and process["errors"] == []
    assert process["exit"] == {"code": 0}
    assert run.returncode == 0
    assert "internal error" not in run.stderr
    print(f"churn 50000 under gdb-memleak: {elapsed:.1f} s")


def test_threads_track_every_pair_without_errors_and_find_exactly_the_declared_leaks(built_targets: Path,
                                                                                       tmp_path: Path):
    run = run_cli([str(built_targets / "threads")], tmp_path)
    process = run.process()
    assert process["errors"] == [], run.stderr
    assert "internal error" not in run.stderr
    found: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for leak in process["leaks"]:
        line = _first_user_line(leak["stack"], THREADS.source)
        found[line][0] += leak["bytes"]
        found[line][1] += leak["blocks"]
    assert {line: tuple(v) for line, v in found.items()} == THREADS.leaks
    pairs = 4 * 2000
    assert process["totals"]["frees"] == pairs
    assert process["totals"]["allocs"] == pairs + sum(n for _, n in THREADS.leaks.values())
    assert process["exit"] == {"code": 0}
    assert run.returncode == 1
