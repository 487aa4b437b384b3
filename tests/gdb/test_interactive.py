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
from conftest import ENGINES, TARGETS, run_cli, run_gdb

SEED = expectations.parse(TARGETS / "seed_demo.c")
LEAK_SITES = expectations.parse(TARGETS / "leak_sites.c")
CRASH = expectations.parse(TARGETS / "crash_segv.c")
DEEP = expectations.parse(TARGETS / "deep_stack.c")
THREADS = expectations.parse(TARGETS / "threads.c")
LOST_LIST = expectations.parse(TARGETS / "lost_list.c")
GLOBAL_HELD = expectations.parse(TARGETS / "global_held.c")

# The leak kinds as the reports spell them (valgrind's words); "unfreed" is a block no scan has classified yet.
KIND_LABELS = {"definite": "definitely lost", "indirect": "indirectly lost", "possible": "possibly lost",
               "reachable": "still reachable", "unfreed": "unfreed (not scanned)"}
KIND_OF_LABEL = {label: kind for kind, label in KIND_LABELS.items()}
DEFAULT_KINDS = ("definite", "possible")  # what `leaks` and the end-of-run report list by default, as valgrind does
DEFAULT_KINDS_SHOWN = "definitely lost, possibly lost, unfreed (not scanned)"
_KIND = "|".join(re.escape(label) for label in KIND_LABELS.values())

ANSI = re.compile(r"\x1b\[")
# bytes: valgrind's "80 (16 direct, 64 indirect)" when blocks are lost through the group (the direct figure counts)
_BYTES = r"(?:[\d,]+ \((?=[\d,]+ direct))?(?P<bytes>[\d,]+)(?: direct, (?P<indirect>[\d,]+) indirect\))?"
TABLE_ROW = re.compile(rf"^\s*(?P<kind>{_KIND})\s+{_BYTES}\s+(?P<blocks>[\d,]+)\s+(?P<allocator>\w+)"
                       rf"\s+#(?P<first>\d+)\s+(?P<site>.+)$")
LEAKS_HEADER = re.compile(r"^LEAKS: (?P<bytes>[\d,]+) bytes? in (?P<blocks>[\d,]+) blocks? from (?P<stacks>[\d,]+) "
                          r"allocation stacks? \((?P<kinds>.*?)\)(?: \(showing (?P<showing>\d+)\))?$", re.M)
STACK_HEADER = re.compile(rf"^{_BYTES} bytes? in (?P<blocks>[\d,]+) blocks? are (?P<kind>{_KIND}), "
                          rf"allocated by (?P<allocator>\w+) \(first is allocation #(?P<first>\d+)\)$")
SUMMARY_ENTRY = re.compile(rf"^\s*(?P<label>{_KIND}|suppressed): (?P<bytes>[\d,]+) bytes in (?P<blocks>[\d,]+) "
                           rf"blocks$")
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
        found[name] = text.removeprefix("\n")  # the end of the marker's own line
    return found


def table(text: str, source: str) -> dict[int, re.Match]:
    """`leaks` table rows as {line in `source`: the row's match (kind, bytes, blocks, allocator, first, site)}."""
    rows = {}
    for line in text.splitlines():
        match = TABLE_ROW.match(line)
        if match:
            where = re.search(rf"{re.escape(source)}:(\d+)\)$", match["site"])
            assert where, line
            number = int(where.group(1))
            assert number not in rows, f"two rows for {source}:{number}:\n{text}"
            rows[number] = match
    return rows


def _int(text: str) -> int:
    return int(text.replace(",", ""))


def table_rows(text: str, source: str) -> dict[int, tuple[int, int]]:
    """`leaks` table rows as {line in `source`: (bytes, blocks)}."""
    return {line: (_int(m["bytes"]), _int(m["blocks"])) for line, m in table(text, source).items()}


def table_kinds(text: str, source: str) -> dict[int, tuple[int, int, str]]:
    """`leaks` table rows as {line in `source`: (bytes, blocks, kind)}, kind as in the `// expect:` markers."""
    return {line: (_int(m["bytes"]), _int(m["blocks"]), KIND_OF_LABEL[m["kind"]])
            for line, m in table(text, source).items()}


def expected_leaks(expected: expectations.Expected, kinds=None) -> dict[int, tuple[int, int, str]]:
    """The target's declared leaks as {line: (bytes, blocks, kind)}, only those of `kinds` (None: every kind)."""
    declared = expected.leaks_with_kinds()
    undeclared = [line for line, (_, _, kind) in declared.items() if kind is None]
    assert not undeclared, f"{expected.name}: lines {undeclared} declare no kind=, the test needs one"
    return {line: v for line, v in declared.items() if kinds is None or v[2] in kinds}


def leaks_header(text: str) -> re.Match:
    """The one `LEAKS: ...` header line in `text`."""
    headers = list(LEAKS_HEADER.finditer(text))
    assert len(headers) == 1, text
    return headers[0]


def leak_summary(text: str) -> dict[str, tuple[int, int]]:
    """The one `LEAK SUMMARY:` block in `text` as {kind: (bytes, blocks)} (kinds as in expect-summary)."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line == "LEAK SUMMARY:"]
    assert len(starts) == 1, text
    summary = {}
    for line in lines[starts[0] + 1:]:
        match = SUMMARY_ENTRY.match(line)
        if not match:
            break
        kind = KIND_OF_LABEL.get(match["label"], match["label"])
        assert kind not in summary, text
        summary[kind] = (_int(match["bytes"]), _int(match["blocks"]))
    return summary


def verdict(summary: dict[str, tuple[int, int]], errors: int) -> str:
    """The final `SUMMARY:` line of the end-of-run report: heap errors, and the leaks of the kinds that count
    (definitely and possibly lost by default, as valgrind's --errors-for-leak-kinds)."""
    counted = [kind for kind in DEFAULT_KINDS if summary[kind][1]]
    if not errors and not counted:
        return "SUMMARY: no heap errors, no leaks of the kinds that count as errors"
    leaks = ", ".join(f"{summary[kind][0]:,} bytes {KIND_LABELS[kind]}" for kind in counted) or "no counted leaks"
    return f"SUMMARY: {errors} heap error{'' if errors == 1 else 's'}; {leaks}"


def stack_blocks(text: str) -> list[tuple[re.Match, list[tuple[str, str]]]]:
    """`leaks --stack` output as [(group header match, [(function, where), ...]), ...]."""
    groups: list[tuple[re.Match, list[tuple[str, str]]]] = []
    for line in text.splitlines():
        if header := STACK_HEADER.match(line):
            groups.append((header, []))
        elif groups and (match := STACK_FRAME.match(line)):
            groups[-1][1].append((match["function"], match["where"]))
    return groups


def no_traceback(run) -> None:
    assert "Traceback" not in run.stdout + run.stderr, run.stderr
    assert "internal error" not in run.stdout + run.stderr, run.stderr


# -- a. leaks --by-line ---------------------------------------------------------------------------------------------

def test_leaks_by_line_shows_the_leaking_source_line_with_a_marker_and_no_ansi_escapes(built_targets: Path):
    (p3_line, (p3_bytes, p3_blocks)), = SEED.leaks.items()
    run = run_gdb(["memleak start", "set memleak on-error report", "run",
                   mark("default"), "leaks --by-line", mark("byline"), "leaks --by-line --all"],
                  built_targets / "seed_demo")
    no_traceback(run)
    out = sections(run.stdout)
    # glibc aborts inside the bad free, called from main: p3 is still in main's live frame, so still reachable,
    # a kind `leaks` does not list by default
    assert "killed by SIGABRT" in out[""]
    assert leak_summary(out[""])["reachable"] == (p3_bytes, p3_blocks)
    assert "LEAKS BY LINE: 0 lines" in out["default"]
    by_line = out["byline"]
    assert "LEAKS BY LINE: 1 line" in by_line
    assert f"seed_demo.c:{p3_line}: {p3_bytes} bytes in {p3_blocks} block (malloc) in main" in by_line
    marked = [line for line in by_line.splitlines() if re.match(r"^\s*>", line)]
    assert len(marked) == 1, by_line
    assert re.match(rf"^\s*>\s*{p3_line} \| .*malloc\(30\)", marked[0]), marked
    assert not ANSI.search(run.stdout), "styling must be off in batch mode"


# -- b. on-error stop -----------------------------------------------------------------------------------------------

def test_default_on_error_stops_at_the_double_free_where_the_stack_and_locals_can_be_inspected(built_targets: Path,
                                                                                              engine: str):
    """The breakpoint engine stops at free's entry (`frame 1` is the caller); the recorder stops inside its own
    free hook and selects the program's frame, so a plain `frame` shows the bad free's line."""
    bad_free_line = SEED.double_frees["p4"]
    caller = "frame 1" if engine == "breakpoint" else "frame"
    run = run_gdb([f"set memleak engine {engine}", "memleak start", "run", mark("bt"), "bt", mark("frame"), caller,
                   "info locals", mark("continue"), "continue"], built_targets / "seed_demo")
    no_traceback(run)
    out = sections(run.stdout)
    assert "Double free of 0x" in out[""], run.stdout
    assert "HEAP SUMMARY" not in out[""], "stopped at the bad free: the program has not ended yet"
    frames = re.findall(r"^#(\d+)\s+(?:0x[0-9a-f]+ in )?(\w+) \(.*\) at \S*?([\w.]+):(\d+)$", out["bt"], re.M)
    main = [f for f in frames if f[1] == "main"]
    assert main and main[0][2:] == ("seed_demo.c", str(bad_free_line)), out["bt"]
    below = frames[int(main[0][0]) - 1]
    assert below[1].endswith("free"), out["bt"]  # under main: the free call (libc's, or the recorder's hook)
    assert f"seed_demo.c:{bad_free_line}" in out["frame"]
    for local in ("p1", "p2", "p3", "p4"):
        assert re.search(rf"^{local} = 0x[0-9a-f]+", out["frame"], re.M), out["frame"]
    assert "SIGABRT" in out["continue"]
    assert "killed by SIGABRT" in out["continue"]
    assert run.stdout.count("HEAP SUMMARY") == 1, run.stdout
    assert run.stdout.count("SUMMARY: 1 heap error;") == 1, run.stdout


# -- c. report at exit, then `leaks` and its options ---------------------------------------------------------------

@pytest.fixture(scope="module")
def leak_sites_session(built_targets: Path, tmp_path_factory) -> tuple[object, dict[str, str], Path]:
    json_path = tmp_path_factory.mktemp("leaks") / "leaks.json"
    run = run_gdb(["memleak start", "run",
                   mark("leaks"), "leaks",
                   mark("all"), "leaks --all",
                   mark("indirect"), "leaks --kind indirect",
                   mark("top"), "leaks --all --top 1",
                   mark("min"), "leaks --all --min-bytes 100",
                   mark("stack"), "leaks --all --stack",
                   mark("json"), f"leaks --json {json_path}"],
                  built_targets / "leak_sites")
    return run, sections(run.stdout), json_path


def test_report_is_printed_once_when_the_program_exits_normally(leak_sites_session):
    run, out, _ = leak_sites_session
    no_traceback(run)
    report = out[""]
    assert "exited normally" in report
    assert "exited with code 0" in report
    assert run.stdout.count("HEAP SUMMARY") == 1, run.stdout
    assert run.stdout.count("LEAK SUMMARY") == 1, run.stdout
    total = sum(b for b, _ in LEAK_SITES.leaks.values()), sum(n for _, n in LEAK_SITES.leaks.values())
    assert f"in use at exit: {total[0]:,} bytes in {total[1]:,} blocks" in report
    # like valgrind, the report lists the definitely and possibly lost leaks; its LEAK SUMMARY counts every kind
    shown = expected_leaks(LEAK_SITES, DEFAULT_KINDS)
    assert 0 < len(shown) < len(LEAK_SITES.leaks), "leak_sites must have leaks both listed and not listed"
    assert table_kinds(report, "leak_sites.c") == shown
    header = leaks_header(report)
    assert (_int(header["bytes"]), _int(header["blocks"]), _int(header["stacks"])) == (
        sum(b for b, _, _ in shown.values()), sum(n for _, n, _ in shown.values()), len(shown))
    assert header["kinds"] == DEFAULT_KINDS_SHOWN and header["showing"] is None
    assert leak_summary(report) == LEAK_SITES.summary
    assert report.rstrip().splitlines()[-1] == verdict(LEAK_SITES.summary, errors=0)


def test_leaks_lists_the_default_kinds_and_with_all_every_leak_after_the_program_exited(leak_sites_session):
    _, out, _ = leak_sites_session
    assert table_kinds(out["leaks"], "leak_sites.c") == expected_leaks(LEAK_SITES, DEFAULT_KINDS)
    assert leaks_header(out["leaks"])["kinds"] == DEFAULT_KINDS_SHOWN
    assert table_kinds(out["all"], "leak_sites.c") == expected_leaks(LEAK_SITES)
    header = leaks_header(out["all"])
    assert header["kinds"] == "all kinds"
    assert (_int(header["bytes"]), _int(header["blocks"])) == (sum(b for b, _ in LEAK_SITES.leaks.values()),
                                                                sum(n for _, n in LEAK_SITES.leaks.values()))
    assert "LEAK SUMMARY" not in out["leaks"] + out["all"], "the summary belongs to the report and `memleak check`"


def test_leaks_kind_lists_only_that_kind(leak_sites_session):
    _, out, _ = leak_sites_session
    indirect = expected_leaks(LEAK_SITES, ("indirect",))
    assert indirect, "leak_sites declares indirectly lost list nodes"
    assert table_kinds(out["indirect"], "leak_sites.c") == indirect
    assert leaks_header(out["indirect"])["kinds"] == "indirectly lost, unfreed (not scanned)"


def test_leaks_top_1_shows_only_the_largest_group(leak_sites_session):
    _, out, _ = leak_sites_session
    largest = max(LEAK_SITES.leaks, key=lambda line: LEAK_SITES.leaks[line][0])
    assert table_kinds(out["top"], "leak_sites.c") == {largest: expected_leaks(LEAK_SITES)[largest]}
    assert leaks_header(out["top"])["showing"] == "1"
    assert _int(leaks_header(out["top"])["stacks"]) == len(LEAK_SITES.leaks), "the header counts every group"


def test_leaks_min_bytes_hides_smaller_groups(leak_sites_session):
    _, out, _ = leak_sites_session
    want = {line: v for line, v in expected_leaks(LEAK_SITES).items() if v[0] >= 100}
    assert 0 < len(want) < len(LEAK_SITES.leaks)
    assert table_kinds(out["min"], "leak_sites.c") == want


def test_leaks_stack_shows_the_whole_call_chain_node_alloc_make_list_main(leak_sites_session):
    _, out, _ = leak_sites_session
    src = LEAK_SITES.source
    node_alloc_line = line_of(src, "struct node *n = malloc(")
    loop_line = line_of(src, "malloc(24)")
    groups = stack_blocks(out["stack"])
    assert len(groups) == len(LEAK_SITES.leaks)
    node_group = [(header, frames) for header, frames in groups if frames and frames[0][0] == "node_alloc"]
    assert len(node_group) == 1, out["stack"]
    header, frames = node_group[0]
    assert frames == [
        ("node_alloc", f"{src}:{node_alloc_line}"),
        ("make_list", f"{src}:{line_of(src, 'node_alloc(i);')}"),
        ("main", f"{src}:{line_of(src, 'make_list(3);')}"),
    ]
    assert header["kind"] == KIND_LABELS[LEAK_SITES.leak_kind(node_alloc_line)]
    assert (_int(header["bytes"]), _int(header["blocks"])) == LEAK_SITES.leaks[node_alloc_line]
    assert header["allocator"] == "malloc"
    loop_group = [(header, frames) for header, frames in groups if frames and frames[0][0] == "leak_in_loop"]
    assert [frames for _, frames in loop_group] == [[("leak_in_loop", f"{src}:{loop_line}"),
                                                     ("main", f"{src}:{line_of(src, 'leak_in_loop();')}")]]
    assert loop_group[0][0]["kind"] == KIND_LABELS[LEAK_SITES.leak_kind(loop_line)]


def test_leaks_json_writes_the_report_schema(leak_sites_session):
    from gdb_memleak import __version__

    _, out, json_path = leak_sites_session
    assert f"JSON report written to {json_path}" in out["json"]
    report = json.loads(json_path.read_text())
    assert report["tool"] == "gdb-memleak"
    assert report["version"] == __version__
    assert len(report["processes"]) == 1
    process = report["processes"][0]
    assert set(process) >= {"pid", "argv", "exit", "totals", "in_use_at_exit", "leaks", "leak_summary", "errors"}
    assert process["exit"] == {"code": 0}
    assert process["argv"][0].endswith("leak_sites")
    assert set(process["totals"]) == {"allocs", "frees", "bytes_allocated"}
    assert process["totals"]["allocs"] >= process["totals"]["frees"] > 0
    assert process["in_use_at_exit"] == {"bytes": sum(b for b, _ in LEAK_SITES.leaks.values()),
                                         "blocks": sum(n for _, n in LEAK_SITES.leaks.values())}
    assert process["errors"] == []
    # every kind, each leak with its kind
    assert sorted((leak["kind"], leak["bytes"], leak["blocks"]) for leak in process["leaks"]) == \
        sorted((kind, b, n) for b, n, kind in expected_leaks(LEAK_SITES).values())
    for leak in process["leaks"]:
        assert set(leak) == {"kind", "bytes", "blocks", "indirect_bytes", "indirect_blocks", "allocator", "stack",
                             "delta"}
        assert set(leak["stack"][0]) == {"pc", "function", "file", "line", "object", "inline"}
    assert process["leak_summary"] == {kind: {"bytes": b, "blocks": n} for kind, (b, n) in
                                       LEAK_SITES.summary.items()}


# -- d. crash -------------------------------------------------------------------------------------------------------

def test_report_is_printed_when_the_program_dies_of_sigsegv(built_targets: Path):
    run = run_gdb(["memleak start", "run", mark("all"), "leaks --all"], built_targets / "crash_segv")
    no_traceback(run)
    out = sections(run.stdout)
    assert "Program received signal SIGSEGV" in out[""]
    assert "killed by SIGSEGV" in out[""]
    assert out[""].index("Program received signal SIGSEGV") < out[""].index("killed by SIGSEGV")
    assert run.stdout.count("HEAP SUMMARY") == 1, run.stdout
    # the scan runs at the signal, main's frame still live: the block it points at is still reachable
    assert leak_summary(out[""]) == CRASH.summary
    assert table_kinds(out[""], "crash_segv.c") == expected_leaks(CRASH, DEFAULT_KINDS)
    assert out[""].rstrip().splitlines()[-1] == verdict(CRASH.summary, errors=0)
    assert table_kinds(out["all"], "crash_segv.c") == expected_leaks(CRASH)


def test_exit_report_scans_the_stacks_of_threads_still_running_at_exit(built_targets: Path, engine: str):
    """In GDB the exit is caught while the other threads still run (their registers cannot be read yet): their
    stacks still count as roots, so what only they hold is still reachable, as valgrind says."""
    expected = expectations.parse(TARGETS / "threads_alive_at_exit.c")
    run = run_gdb([f"set memleak engine {engine}", "memleak start", "run"], built_targets / "threads_alive_at_exit")
    no_traceback(run)
    summary = leak_summary(run.stdout)
    assert summary["reachable"] == expected.summary["reachable"] and summary["definite"] == (0, 0), run.stdout


# -- e. status ------------------------------------------------------------------------------------------------------

def test_memleak_status_shows_counters_and_the_hooked_libc_functions(built_targets: Path, engine: str):
    """The breakpoint engine lists what it hooked, the recorder the functions it forwards to: libc's, here."""
    run = run_gdb([mark("before"), "memleak status", f"set memleak engine {engine}", "memleak start",
                   mark("armed"), "memleak status", "run", mark("status"), "memleak status"],
                  built_targets / "crash_segv")
    no_traceback(run)
    out = sections(run.stdout)
    assert "gdb-memleak: not tracking." in out["before"]
    assert "armed, waiting for the program to run" in out["armed"]
    status = out["status"]
    assert "total heap usage: 1 allocs, 0 frees, 100 bytes allocated" in status
    assert "live: 100 bytes in 1 blocks" in status
    hooked = re.search(r"^  (?:hooked|forwards to): (.*)$", status, re.M)
    assert hooked, status
    assert (f"engine: {engine}" in status) == (engine == "agent"), status
    entries = dict(re.findall(r"(\w+) \(([^)]+)\)", hooked.group(1)))
    assert os.path.basename(entries["malloc"]) == "libc.so.6"
    assert os.path.basename(entries["free"]) == "libc.so.6"
    assert "heap errors: 0" in status


# -- f. memleak stop ------------------------------------------------------------------------------------------------

def test_memleak_stop_removes_every_breakpoint_it_set_and_the_program_runs_on(built_targets: Path, engine: str):
    run = run_gdb([f"set memleak engine {engine}", "memleak start", "break leak_in_loop", "run",
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
    if engine == "breakpoint":
        assert malloc_addr in [addr for addr, _ in before.values()], out["before"]
        # make_list ran before the stop at leak_in_loop: return-site breakpoints in leak_sites exist besides entries
        assert any("leak_sites.c" in text for _, text in before.values()), out["before"]
    else:  # the recorder's own malloc runs in the program; GDB breaks only where the program must stop
        assert malloc_addr not in [addr for addr, _ in before.values()], out["before"]
        assert any("memleak_agent_error" in text for _, text in before.values()), out["before"]
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
def test_start_mid_run_knows_earlier_blocks_and_their_frees_are_ordinary(built_targets: Path, stop_at: str):
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
    # the blocks allocated before were found in glibc's heap (issue 18): their release is an ordinary one
    assert "blocks allocated before were found in its heap" in out["start"], out["start"]
    assert "untracked frees" not in out["status"]
    assert "heap errors: 0" in out["status"]
    # the leaks of lines run before the start have no stack ("allocated before tracking started"); of those with a
    # line, only the block allocated after the start: the realloc at the end of main
    assert table_kinds(out["continue"], "leak_sites.c") == {realloc_line: expected_leaks(LEAK_SITES)[realloc_line]}


# -- h. the user's own `call` -----------------------------------------------------------------------------------------

@pytest.mark.usefixtures("gdb_calls_functions")
def test_user_call_to_malloc_and_free_is_tracked(built_targets: Path, engine: str):
    run = run_gdb([f"set memleak engine {engine}", "memleak start", "break main", "run",
                   mark("malloc"), "call (void*)malloc(77)",
                   mark("leaks"), "leaks",
                   mark("check"), "leaks --check",
                   mark("free"), "call (void)free($1)",
                   mark("after"), "leaks --all",
                   mark("end"), "kill"],
                  built_targets / "clean")
    no_traceback(run)
    out = sections(run.stdout)
    assert re.search(r"^\$1 = \(void \*\) 0x[0-9a-f]+", out["malloc"], re.M), out["malloc"]
    assert "LEAKS: 77 bytes in 1 block" in out["leaks"]
    # allocated while the program runs: not classified until a scan (`memleak check`, `leaks --check`, exit)
    rows = [TABLE_ROW.match(line) for line in out["leaks"].splitlines()]
    assert [(m["kind"], m["bytes"], m["blocks"], m["allocator"]) for m in rows if m] == [
        ("unfreed (not scanned)", "77", "1", "malloc")]
    # only GDB's value history holds the pointer: nothing in the process points at the block
    rows = [TABLE_ROW.match(line) for line in out["check"].splitlines()]
    assert [(m["kind"], m["bytes"], m["blocks"], m["allocator"]) for m in rows if m] == [
        ("definitely lost", "77", "1", "malloc")]
    assert "LEAKS: 0 bytes in 0 blocks" in out["after"]
    assert "in use at exit: 0 bytes in 0 blocks" in out["end"]


@pytest.mark.usefixtures("gdb_calls_functions")
def test_user_call_allocation_site_is_not_attributed_to_the_executable_at_a_bogus_offset(built_targets: Path,
                                                                                        engine: str):
    """The call returns to GDB's dummy frame on the stack: GDB's unwinder names it (breakpoint engine); the
    recorder's in-process stack only has the address, shown as an offset in [stack]."""
    exe = built_targets / "clean"
    run = run_gdb([f"set memleak engine {engine}", "memleak start", "break main", "run", "call (void*)malloc(77)",
                   mark("stack"), "leaks --stack"], exe)
    no_traceback(run)
    frames = stack_blocks(sections(run.stdout)["stack"])[0][1]
    assert frames[0][1] == "[stack]", frames
    if engine == "breakpoint":
        assert frames[0][0] == "<function called from gdb>", frames
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
    ("leaks --kind bogus", "leaks: argument --kind: unknown leak kind bogus "
                           "(choose from definite, indirect, possible, reachable, all, none) (see `help leaks`)"),
    ("leaks --older-than -1", "leaks: argument --older-than: must not be negative (see `help leaks`)"),
    ("leaks --older-than x", "leaks: argument --older-than: not a number of seconds: 'x' (see `help leaks`)"),
    ("memleak check", "gdb-memleak: no allocation data for this inferior: use `memleak start`, then `run`."),
    ("memleak check now", "memleak check: unrecognized arguments: now (see `help memleak check`)"),
    ("memleak check --increased --changed", "memleak check: argument --changed: not allowed with argument "
                                            "--increased (see `help memleak check`)"),
    ("memleak break-alloc", "memleak break-alloc: expects one allocation number or `off` "
                            "(see `help memleak break-alloc`)"),
    ("memleak break-alloc 0", "memleak break-alloc: allocation numbers start at 1"),
    ("memleak break-alloc x", "memleak break-alloc: not an allocation number: 'x'"),
    ("memleak block", "memleak block: expects an address (see `help memleak block`)"),
    ("memleak snapshot a b", "memleak snapshot: takes at most one name (see `help memleak snapshot`)"),
    ("set memleak suppressions /nonexistent/x.supp",
     "suppressions: /nonexistent/x.supp: cannot read: No such file or directory"),
], ids=["leaks-before-run", "top-not-a-number", "top-negative", "unknown-option", "start-with-argument",
        "errors-before-run", "depth-0", "on-error-bogus", "system-objects-bad-regex", "kind-unknown",
        "older-than-negative", "older-than-not-a-number", "check-before-run", "check-with-argument",
        "check-increased-and-changed", "break-alloc-without-number", "break-alloc-0", "break-alloc-not-a-number",
        "block-without-address", "snapshot-two-names", "suppressions-missing-file"])
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
    ("errors-for-mappings", "mappings,sysv", "heap"),
    ("leak-check-heuristics", "stdstring,newarray", "sqlite"),
], ids=["backtrace-depth", "system-objects", "errors-for-mappings", "leak-check-heuristics"])
def test_rejected_setting_keeps_the_previous_value(built_targets: Path, setting: str, good: str, bad: str):
    run = run_gdb([f"set memleak {setting} {good}", f"set memleak {setting} {bad}", mark("show"), "show memleak"],
                  built_targets / "clean")
    assert len(run.stderr.splitlines()) == 1, run.stderr
    assert f"memleak {setting}: {good}\n" in sections(run.stdout)["show"]


@pytest.mark.parametrize("command, usage", [
    ("help leaks", ["Usage: leaks [--by-line] [--kind K[,K]] [--all] [--check] [--increased | --changed] [--top N] "
                    "[--min-bytes N]",
                    "[--stack] [--since SNAPSHOT] [--older-than SECONDS] [--gen-suppressions] [--json FILE] "
                    "[--html FILE]",
                    "[--pid N]",
                    "leaks --growing [--check] [--top N] [--stack] [--pid N]"]),
    ("help memleak", ["Usage: memleak start|stop|status|reset|errors|check|skip|break-alloc|block|snapshot"]),
    ("help memleak start", ["Usage: memleak start"]),
    ("help memleak check", ["Usage: memleak check [--increased | --changed]"]),
    ("help memleak break-alloc", ["Usage: memleak break-alloc N|off"]),
    ("help memleak block", ["Usage: memleak block ADDR"]),
    ("help memleak snapshot", ["Usage: memleak snapshot [NAME]      (default names: s1, s2, ...)"]),
], ids=["leaks", "memleak", "memleak-start", "memleak-check", "memleak-break-alloc", "memleak-block",
        "memleak-snapshot"])
def test_help_shows_usage(built_targets: Path, command: str, usage: list[str]):
    run = run_gdb([command])
    assert run.stderr == ""
    lines = [line.strip() for line in run.stdout.splitlines()]
    assert usage[0] in lines, run.stdout
    start = lines.index(usage[0])
    assert lines[start:start + len(usage)] == usage, run.stdout


def test_help_leaks_documents_every_option():
    run = run_gdb(["help leaks"])
    for option in ("--by-line", "--kind K[,K]", "--all", "--check", "--top N", "--min-bytes N", "--stack",
                   "--since SNAPSHOT", "--older-than SECONDS", "--gen-suppressions", "--json FILE", "--html FILE",
                   "--pid N", "--mappings", "--shm", "--increased", "--changed", "--growing"):
        assert re.search(rf"^  {re.escape(option)}\s+\S", run.stdout, re.M), option


def test_show_memleak_lists_every_setting_with_its_default():
    run = run_gdb(["show memleak"])
    assert run.stderr == ""
    lines = run.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["memleak backtrace-depth", "memleak on-error",
                                                      "memleak system-objects", "memleak report-at-exit",
                                                      "memleak suppressions", "memleak default-suppressions",
                                                      "memleak errors-for-mappings", "memleak engine",
                                                      "memleak leak-check-heuristics"]
    assert "memleak engine: auto" in lines
    assert "memleak leak-check-heuristics: all" in lines
    assert "memleak backtrace-depth: 16" in lines
    assert "memleak on-error: stop" in lines
    assert "memleak report-at-exit: on" in lines
    assert "memleak suppressions:" in [line.rstrip() for line in lines]
    assert "memleak default-suppressions: on" in lines
    assert "memleak errors-for-mappings: sysv,posix" in lines


@pytest.mark.parametrize("value", ["stop", "report", "skip"])
def test_on_error_accepts_stop_report_and_skip(value: str):
    run = run_gdb(["set memleak on-error report", f"set memleak on-error {value}", "show memleak"])
    assert run.stderr == ""
    assert f"memleak on-error: {value}" in run.stdout.splitlines()


# -- j. backtrace depth ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("depth, frames", [(2, 2), (None, 16)], ids=["depth-2", "default-16"])
def test_backtrace_depth_limits_the_recorded_stack(built_targets: Path, depth: int | None, frames: int):
    (leak_line, _), = DEEP.leaks.items()
    settings = [f"set memleak backtrace-depth {depth}"] if depth else []
    run = run_gdb([*settings, "memleak start", "run", mark("stack"), "leaks --stack"], built_targets / "deep_stack")
    no_traceback(run)
    (header, stack), = stack_blocks(sections(run.stdout)["stack"])
    assert header["kind"] == KIND_LABELS[DEEP.leak_kind(leak_line)]
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
    kinds: dict[int, set[str]] = defaultdict(set)
    for leak in process["leaks"]:
        line = _first_user_line(leak["stack"], THREADS.source)
        found[line][0] += leak["bytes"]
        found[line][1] += leak["blocks"]
        kinds[line].add(leak["kind"])
    assert {line: tuple(v) for line, v in found.items()} == THREADS.leaks
    assert dict(kinds) == {line: {kind} for line, (_, _, kind) in expected_leaks(THREADS).items()}
    # the declared summary is valgrind's (defaults off); by default the threads' DTVs (possibly lost) are suppressed
    want = {**THREADS.summary, "possible": (0, 0), "suppressed": THREADS.summary["possible"]}
    assert process["leak_summary"] == {kind: {"bytes": b, "blocks": n} for kind, (b, n) in want.items()}
    pairs = 4 * 2000
    assert process["totals"]["frees"] == pairs
    assert process["totals"]["allocs"] == pairs + sum(n for _, n in THREADS.leaks.values()) + want["suppressed"][1]
    assert process["exit"] == {"code": 0}
    assert run.returncode == 1


# -- l. leak kinds while the program runs, and the debugger-native commands -----------------------------------------

def test_memleak_check_while_stopped_classifies_a_dropped_list_as_definitely_and_indirectly_lost(built_targets: Path,
                                                                                                 engine: str):
    src = LOST_LIST.source
    stop = line_of(src, "return 0;")  # in main, after drop_list() dropped the list and scribble() wiped the stack
    (head_line, head), = expected_leaks(LOST_LIST, ("definite",)).items()  # new_head()
    (node_line, _), = expected_leaks(LOST_LIST, ("indirect",)).items()      # new_node(), reachable only via the head
    run = run_gdb([f"set memleak engine {engine}", "memleak start", f"break lost_list.c:{stop}", "run",
                   mark("before"), "leaks",
                   mark("check"), "memleak check",
                   mark("all"), "leaks --all",
                   mark("continue"), "continue"],
                  built_targets / "lost_list")
    no_traceback(run)
    out = sections(run.stdout)
    assert f"lost_list.c:{stop}" in out[""]
    # no scan yet: every block is unfreed (not scanned), and listed
    assert table_kinds(out["before"], "lost_list.c") == {line: (b, n, "unfreed") for line, (b, n) in
                                                        LOST_LIST.leaks.items()}
    check = out["check"]
    assert "HEAP SUMMARY" not in check, "the program is still running"
    summary = leak_summary(check)
    assert summary == LOST_LIST.summary
    assert summary["definite"] == head[:2] and summary["indirect"] == LOST_LIST.leaks[node_line]
    assert table_kinds(check, "lost_list.c") == {head_line: head}  # the default kinds only
    assert table_kinds(out["all"], "lost_list.c") == expected_leaks(LOST_LIST)
    assert "exited normally" in out["continue"]
    assert leak_summary(out["continue"]) == LOST_LIST.summary


def test_memleak_check_needs_a_live_process(built_targets: Path):
    run = run_gdb(["memleak start", "run", mark("check"), "memleak check", "leaks --check"],
                  built_targets / "global_held")
    message = ("gdb-memleak: the process is not running: the scan needs its memory "
               "(the report made at exit already has the leak kinds).")
    assert run.stderr.splitlines().count(message) == 2, run.stderr
    assert sections(run.stdout)["check"] == ""


def test_leaks_kind_reachable_lists_the_block_a_global_still_holds_at_exit(built_targets: Path, engine: str):
    held_line = line_of(GLOBAL_HELD.source, "held = malloc(")
    run = run_gdb([f"set memleak engine {engine}", "memleak start", "run",
                   mark("reachable"), "leaks --kind reachable",
                   mark("two"), "leaks --kind reachable,definite",
                   mark("default"), "leaks"],
                  built_targets / "global_held")
    no_traceback(run)
    out = sections(run.stdout)
    assert leak_summary(out[""]) == GLOBAL_HELD.summary
    reachable = expected_leaks(GLOBAL_HELD, ("reachable",))
    assert reachable == {held_line: (100, 1, "reachable")}
    assert table_kinds(out["reachable"], "global_held.c") == reachable
    assert leaks_header(out["reachable"])["kinds"] == "still reachable, unfreed (not scanned)"
    assert table_kinds(out["two"], "global_held.c") == expected_leaks(GLOBAL_HELD, ("reachable", "definite"))
    assert len(table_kinds(out["two"], "global_held.c")) == 2
    # by default (and in the report) the still-reachable block is not listed, only counted
    assert table_kinds(out["default"], "global_held.c") == expected_leaks(GLOBAL_HELD, DEFAULT_KINDS)
    assert held_line not in table_kinds(out[""], "global_held.c")


def _break_alloc_stops(text: str) -> list[str]:
    return re.findall(r"^gdb-memleak: allocation #\d+ made: .*\(memleak break-alloc\)$", text, re.M)


def test_memleak_break_alloc_stops_where_allocation_n_is_made_and_the_number_is_stable_across_runs(
        built_targets: Path, leak_sites_session, engine: str):
    """The breakpoint engine stops where malloc returns; the recorder inside its malloc hook, with the program's
    frame selected: `frame` shows the allocating line under both."""
    src = LEAK_SITES.source
    loop_line = line_of(src, "malloc(24)")
    # the number `leaks` showed for the loop's leak in an earlier session (the `first` column)
    number = int(table(leak_sites_session[1]["leaks"], "leak_sites.c")[loop_line]["first"])
    run = run_gdb([f"set memleak engine {engine}", "memleak start", f"memleak break-alloc {number}",
                   "run", mark("bt1"), "bt", "frame",
                   mark("run2"), "run", mark("bt2"), "bt", "frame",
                   mark("off"), "memleak break-alloc off", mark("continue"), "continue"],
                  built_targets / "leak_sites")
    no_traceback(run)
    out = sections(run.stdout)
    assert f"gdb-memleak: will stop when allocation #{number} is made." in out[""]
    first, = _break_alloc_stops(out[""])
    second, = _break_alloc_stops(out["run2"])
    assert first == second, "same allocation, same size and address (GDB disables ASLR) on both runs"
    assert re.match(rf"^gdb-memleak: allocation #{number} made: 24 bytes at 0x[0-9a-f]+ by malloc ", first), first
    for bt in (out["bt1"], out["bt2"]):
        frames = re.findall(r"^#(\d+)\s+(?:0x[0-9a-f]+ in )?(\w+) \(.*\) at \S*leak_sites\.c:(\d+)$", bt, re.M)
        assert [f[1:] for f in frames[:2]] == [("leak_in_loop", str(loop_line)),
                                              ("main", str(line_of(src, "leak_in_loop();")))], bt
        assert int(frames[1][0]) == int(frames[0][0]) + 1, bt
        # the selected frame (`frame`, printed after bt) is the allocating one
        selected = re.findall(r"^#(\d+)\s+(?:0x[0-9a-f]+ in )?(\w+) \(", bt, re.M)[-1]
        assert selected == (frames[0][0], "leak_in_loop"), bt
        if engine == "breakpoint":
            assert frames[0][0] == "0", bt
    assert "gdb-memleak: break-alloc cleared." in out["off"]
    assert "exited normally" in out["continue"]
    assert not _break_alloc_stops(out["continue"])
    # the finished run numbers the loop's leak the same
    assert int(table(out["continue"], "leak_sites.c")[loop_line]["first"]) == number


def _referrers(text: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(" who points at it:")
    return [line.strip() for line in lines[start + 1:] if line.startswith("   ")]


def test_memleak_block_names_the_global_holding_a_block(built_targets: Path, engine: str):
    src = GLOBAL_HELD.source
    held_line = line_of(src, "held = malloc(")
    run = run_gdb([f"set memleak engine {engine}", "memleak start",
                   f"break global_held.c:{line_of(src, 'drop();')}", "run",
                   mark("addr"), "print &held",
                   mark("block"), "memleak block held",
                   mark("inside"), "memleak block held + 10",
                   mark("end"), "kill"],
                  built_targets / "global_held")
    no_traceback(run)
    out = sections(run.stdout)
    held_at = re.search(r"\(char \*\*\) (0x[0-9a-f]+) <held>", out["addr"]).group(1)
    block = out["block"]
    assert re.match(r"^block 0x[0-9a-f]+: 100 bytes, allocated by malloc as allocation #1 in thread 1, ", block), block
    assert " kind: still reachable" in block.splitlines()
    assert "   at 0x" in block and f"hold ({src}:{held_line})" in block
    assert _referrers(block) == [f"pointer at {held_at}: global held"]
    assert re.match(r"^block 0x[0-9a-f]+ \(offset 10 inside it\): 100 bytes", out["inside"]), out["inside"]
    assert _referrers(out["inside"]) == [f"pointer at {held_at}: global held"]


@pytest.fixture(scope="module", params=ENGINES)
def list_block_session(built_targets: Path, request: pytest.FixtureRequest):
    """leak_sites stopped in main after make_list(3): `l` (on main's stack) -> list header -> node -> node -> node."""
    src = LEAK_SITES.source
    run = run_gdb([f"set memleak engine {request.param}", "memleak start",
                   f"break leak_sites.c:{line_of(src, 'leak_in_loop();')}", "run",
                   mark("values"), "print &l", "print l", "print l->head", "print l->head->next",
                   mark("header"), "memleak block l",
                   mark("head"), "memleak block l->head",
                   mark("second"), "memleak block l->head->next",
                   mark("continue"), "continue",
                   mark("ended"), "memleak block $2"],
                  built_targets / "leak_sites")
    no_traceback(run)
    out = sections(run.stdout)
    values = re.findall(r"^\$\d+ = \([^)]*\) (0x[0-9a-f]+)", out["values"], re.M)
    assert len(values) == 4, out["values"]
    return run, out, values


def test_memleak_block_shows_the_stack_frame_holding_a_block(list_block_session):
    _, out, (l_address, header, _, _) = list_block_session
    block = out["header"]
    assert block.startswith(f"block {header}: 16 bytes, allocated by malloc as allocation #1 in thread 1, "), block
    assert " kind: still reachable" in block.splitlines()
    assert _referrers(block) == [f"pointer at {l_address} on the stack of thread 1, frame #0 main"]


def test_memleak_block_shows_the_block_holding_a_block(list_block_session):
    _, out, (_, header, head, second) = list_block_session
    # the header is allocation #1, then node_alloc makes #2, #3, #4; the list head is the last one pushed
    assert out["head"].startswith(f"block {head}: 16 bytes, allocated by malloc as allocation #4 "), out["head"]
    assert _referrers(out["head"]) == [f"pointer at {header}, offset 0 in block {header} #1"]
    assert out["second"].startswith(f"block {second}: 16 bytes, allocated by malloc as allocation #3 ")
    assert _referrers(out["second"]) == [f"pointer at {head}, offset 0 in block {head} #4"]
    assert "node_alloc (" in out["second"]


def test_memleak_block_after_the_process_ended_has_the_kind_but_no_referrers(list_block_session):
    _, out, (_, header, _, _) = list_block_session
    assert "exited normally" in out["continue"]
    ended = out["ended"]
    assert ended.startswith(f"block {header}: 16 bytes, allocated by malloc as allocation #1 "), ended
    assert f" kind: {KIND_LABELS[LEAK_SITES.leak_kind(line_of(LEAK_SITES.source, 'struct list *l = malloc('))]}" \
        in ended.splitlines()
    assert " who points at it: unknown (the process has ended)" in ended.splitlines()


@pytest.fixture(scope="module", params=ENGINES)
def snapshot_session(built_targets: Path, request: pytest.FixtureRequest):
    src = LEAK_SITES.source
    run = run_gdb([f"set memleak engine {request.param}", "memleak start",
                   f"break leak_sites.c:{line_of(src, 'leak_in_loop();')}", "run",
                   mark("s1"), "memleak snapshot s1",
                   mark("s2"), "memleak snapshot",
                   "continue",
                   mark("since"), "leaks --since s1 --all",
                   mark("since-default"), "leaks --since s2",
                   mark("unknown"), "leaks --since nosuch",
                   mark("old0"), "leaks --older-than 0 --all",
                   mark("old-huge"), "leaks --older-than 1e9 --all"],
                  built_targets / "leak_sites")
    no_traceback(run)
    return run, sections(run.stdout)


def test_memleak_snapshot_then_leaks_since_lists_only_later_blocks(snapshot_session):
    run, out = snapshot_session
    src = LEAK_SITES.source
    earlier = {line_of(src, "struct list *l = malloc("), line_of(src, "struct node *n = malloc(")}
    before = sum(LEAK_SITES.leaks[line][1] for line in earlier)  # make_list(3): the header and 3 nodes
    assert f"gdb-memleak: snapshot 's1' at allocation #{before} ({before} blocks live)." in out["s1"]
    assert f"gdb-memleak: snapshot 's2' at allocation #{before} ({before} blocks live)." in out["s2"]
    later = {line: v for line, v in expected_leaks(LEAK_SITES).items() if line not in earlier}
    assert table_kinds(out["since"], "leak_sites.c") == later
    assert table_kinds(out["since-default"], "leak_sites.c") == {
        line: v for line, v in later.items() if v[2] in DEFAULT_KINDS}
    assert "gdb-memleak: no snapshot named 'nosuch'; snapshots: s1, s2" in run.stderr.splitlines()


def test_leaks_older_than_0_lists_everything_and_a_huge_age_nothing(snapshot_session):
    _, out = snapshot_session
    assert table_kinds(out["old0"], "leak_sites.c") == expected_leaks(LEAK_SITES)
    assert table_kinds(out["old-huge"], "leak_sites.c") == {}
    assert "LEAKS: 0 bytes in 0 blocks from 0 allocation stacks (all kinds)" in out["old-huge"]


def test_leaks_older_than_separates_blocks_by_age_in_a_running_program(built_targets: Path, engine: str):
    src = LEAK_SITES.source
    run = run_gdb([f"set memleak engine {engine}", "memleak start",
                   f"break leak_sites.c:{line_of(src, 'leak_in_loop();')}", "run",
                   "shell sleep 2", "next",  # leak_in_loop's 10 blocks are fresh, make_list's 2 s old
                   mark("old"), "leaks --older-than 1 --all",
                   mark("all"), "leaks --older-than 0 --all",
                   mark("end"), "kill"],
                  built_targets / "leak_sites")
    no_traceback(run)
    out = sections(run.stdout)
    made_before = {line_of(src, "struct list *l = malloc("), line_of(src, "struct node *n = malloc(")}
    loop_line = line_of(src, "malloc(24)")
    assert table_rows(out["old"], "leak_sites.c") == {line: LEAK_SITES.leaks[line] for line in made_before}
    assert table_rows(out["all"], "leak_sites.c") == {line: LEAK_SITES.leaks[line]
                                                       for line in made_before | {loop_line}}


def test_on_error_skip_lets_the_program_run_to_completion_with_the_double_free_and_the_leak_reported(
        built_targets: Path, engine: str):
    (leak_line, (leak_bytes, leak_blocks)), = SEED.leaks.items()
    run = run_gdb([f"set memleak engine {engine}", "memleak start", "set memleak on-error skip", "run",
                   mark("errors"), "memleak errors"],
                  built_targets / "seed_demo")
    no_traceback(run)
    out = sections(run.stdout)
    report = out[""]
    assert "The call was skipped (memleak on-error skip): the program runs on." in report
    assert "exited normally" in report and "exited with code 0" in report
    assert "SIGABRT" not in run.stdout + run.stderr
    assert "double free detected" not in run.stderr, "glibc never saw the second free"
    assert report.count("Double free of 0x") == 2, "once when it happens, once in the report"
    assert run.stdout.count("HEAP SUMMARY") == 1
    assert SEED.leak_kind(leak_line) == "definite"
    assert table_kinds(report, "seed_demo.c") == {leak_line: (leak_bytes, leak_blocks, "definite")}
    assert leak_summary(report) == SEED.summary
    assert report.rstrip().splitlines()[-1] == verdict(SEED.summary, errors=1)
    assert verdict(SEED.summary, errors=1) == f"SUMMARY: 1 heap error; {leak_bytes} bytes definitely lost"
    assert out["errors"].count("Double free of 0x") == 1


def _generated(text: str) -> list[str]:
    """The `--gen-suppressions` part of a `leaks` listing: the lines after the table, blank lines dropped."""
    lines = text.splitlines()
    last_row = max(i for i, line in enumerate(lines) if TABLE_ROW.match(line))
    return [line for line in lines[last_row + 1:] if line.strip()]


def test_gen_suppressions_entries_loaded_as_a_file_count_those_leaks_as_suppressed(built_targets: Path,
                                                                                    tmp_path: Path):
    src = GLOBAL_HELD.source
    exe = built_targets / "global_held"
    first = run_gdb(["memleak start", "run", mark("gen"), "leaks --gen-suppressions=lsan",
                     mark("gen-all"), "leaks --all --gen-suppressions=lsan"], exe)
    no_traceback(first)
    out = sections(first.stdout)
    generated = _generated(out["gen"])
    entries = [line for line in generated if not line.startswith("#")]
    assert entries and all(line.startswith("leak:") for line in entries), generated
    assert len(entries) == len(expected_leaks(GLOBAL_HELD, DEFAULT_KINDS)) == 1, generated
    all_entries = [line for line in _generated(out["gen-all"]) if not line.startswith("#")]
    assert len(all_entries) == len(expected_leaks(GLOBAL_HELD)) and all(e.startswith("leak:") for e in all_entries)

    supp = tmp_path / "generated.supp"
    supp.write_text("\n".join(generated) + "\n")
    stop = line_of(src, "return 0;")
    second = run_gdb(["memleak start", f"break global_held.c:{stop}", "run",
                      mark("plain"), "memleak check",
                      f"set memleak suppressions {supp}",
                      mark("show"), "show memleak suppressions",
                      mark("suppressed"), "memleak check",
                      mark("continue"), "continue"], exe)
    no_traceback(second)
    assert second.stderr == ""
    out = sections(second.stdout)
    definite = GLOBAL_HELD.summary["definite"]
    assert definite[1] > 0
    assert leak_summary(out["plain"]) == GLOBAL_HELD.summary
    assert f"Suppression files: {supp}." in out["show"]
    for number, entry in enumerate(generated, start=1):
        if entry.startswith("leak:"):
            assert f"  {entry}    ({supp}:{number})" in out["show"].splitlines(), out["show"]
    assert leak_summary(out["suppressed"]) == {**GLOBAL_HELD.summary, "definite": (0, 0), "suppressed": definite}
    assert table_kinds(out["suppressed"], "global_held.c") == {}, "a suppressed leak is not listed"
    assert leak_summary(out["continue"])["suppressed"] == definite
    assert out["continue"].rstrip().splitlines()[-1] == \
        "SUMMARY: no heap errors, no leaks of the kinds that count as errors"


@pytest.mark.parametrize("content, number, message", [
    ("# header\nleak:^ok$\n\nbogus line\n", 4, "expected 'leak:PATTERN', got 'bogus line'"),
    ("leak:\n", 1, "empty pattern after 'leak:'"),
    ("leak:^a$\ncalled_from_lib:libfoo.so\n", 2,
     "unsupported suppression type 'called_from_lib' (only 'leak:' and 'frames:' are supported): "
     "'called_from_lib:libfoo.so'"),
], ids=["not-a-suppression", "empty-pattern", "unsupported-type"])
def test_malformed_suppression_file_is_a_one_line_error_naming_file_and_line(tmp_path: Path, content: str,
                                                                             number: int, message: str):
    good, bad = tmp_path / "good.supp", tmp_path / "bad.supp"
    good.write_text("leak:^fine$\n")
    bad.write_text(content)
    run = run_gdb([f"set memleak suppressions {good}", f"set memleak suppressions {bad}", mark("show"),
                   "show memleak suppressions"])
    assert run.stderr.splitlines() == [f"suppressions: {bad}:{number}: {message}"]
    assert f"Suppression files: {good}." in sections(run.stdout)["show"], "the rejected value is not kept"


def test_set_debug_memleak_on_logs_engine_and_scan_decisions(built_targets: Path):
    """GDB's `debug` prefix convention: off by default (nothing logged), on: decisions on GDB's stderr."""
    quiet = run_gdb(["set memleak on-error skip", "memleak start", "run"], built_targets / "seed_demo")
    assert "[gdb-memleak]" not in quiet.stdout + quiet.stderr
    run = run_gdb(["set debug memleak on", "show debug memleak", "set memleak on-error skip", "memleak start", "run"],
                  built_targets / "seed_demo")
    assert "gdb-memleak debugging is on." in run.stdout, run.stdout
    assert re.search(r"^\[gdb-memleak\] process \d+: scan of 1 blocks read \d+ bytes$", run.stderr, re.M), run.stderr


def test_memleak_reset_forgets_earlier_blocks_and_counts_from_there(built_targets: Path, engine: str):
    """After `memleak reset` at leak_in_loop, make_list's 4 blocks are forgotten: the report at exit has only what
    came after (10 x 24 + 40 + 200 bytes, 14 allocations, 2 frees), under both engines, and allocations keep their
    numbers (leak_in_loop's first is still #5)."""
    src = LEAK_SITES.source
    run = run_gdb([f"set memleak engine {engine}", "memleak start", "break leak_in_loop", "run",
                   mark("reset"), "memleak reset", "continue"],
                  built_targets / "leak_sites")
    no_traceback(run)
    out = sections(run.stdout)
    assert "gdb-memleak: table cleared." in out["reset"]
    report = out["reset"]
    assert "in use at exit: 480 bytes in 12 blocks" in report
    assert "total heap usage: 14 allocs, 2 frees, 588 bytes allocated" in report
    loop_line = line_of(src, "malloc(24)")
    assert table_rows(report, "leak_sites.c") == {loop_line: (240, 10), line_of(src, "calloc(5"): (40, 1),
                                                   line_of(src, "realloc(grow"): (200, 1)}
    assert re.search(rf"malloc +#5 +leak_in_loop \(\S+leak_sites.c:{loop_line}\)", report), report
