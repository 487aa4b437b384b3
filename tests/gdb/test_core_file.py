"""Post-mortem from a core file: a core made by GDB's `gcore` of a program stopped under the recorder, and one the
kernel dumps when a program run with the recorder preloaded aborts, give the leaks and leak kinds the program
reports at that point live (and valgrind's at the abort), in GDB (`gdb PROG CORE`, `leaks`, `memleak check`) and
through `gdb-memleak --core CORE PROG`; each core stays small (the recorder's unused memory is never dumped).
Bad input (not a core, another program's core, a core without the recorder's table) is one line and exit 2.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
from test_cli_targets import leaks_by_line
from test_interactive import mark, sections

import cores
import expectations
import valgrind
from conftest import TARGETS, cached_cli, run_cli, run_gdb

CORE_DUMP = expectations.parse(TARGETS / "core_dump.c")
FORKED_CHILD = expectations.parse(TARGETS / "core" / "forked_child.c")
THREAD_HELD = expectations.parse(TARGETS / "core" / "thread_held.c")
KERNEL_CORES = cores.core_pattern_problem()


def summary(process: dict) -> dict[str, tuple[int, int]]:
    return {k: (v["bytes"], v["blocks"]) for k, v in process["leak_summary"].items()}


def groups(process: dict) -> list[tuple]:
    """Every loss record as (kind, bytes, blocks, allocator, its stack as functions, files and lines)."""
    return sorted((g["kind"], g["bytes"], g["blocks"], g["allocator"],
                   tuple((f["function"], os.path.basename(f["file"] or ""), f["line"]) for f in g["stack"]))
                  for g in process["leaks"])


def declared(expected: expectations.Expected, suppressed: bool = False) -> dict[tuple[str, int], tuple[int, int, str]]:
    """The leaks a target declares by line; `suppressed`: with those the default suppressions hide (a DTV)."""
    lines = {**expected.leaks_with_kinds(), **(expected.suppressed_leaks if suppressed else {})}
    return {(expected.source.name, line): (b, n, kind) for line, (b, n, kind) in lines.items()}


@pytest.fixture(scope="module")
def gcore_run(built_targets: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, Path]:
    """core_dump under the recorder, stopped at dump_point: its report there (after a scan) and its gcore."""
    folder = tmp_path_factory.mktemp("gcore")
    live, core = folder / "live.json", folder / "core_dump.core"
    run = run_gdb(["set memleak engine agent", "memleak start", "break dump_point", "run", "memleak check",
                   f"leaks --all --json {live}", cores.GCORE_LIMIT, f"gcore {core}", "kill"],
                  built_targets / "core_dump")
    assert core.exists() and live.exists(), run.stdout + run.stderr
    return core, json.loads(live.read_text())["processes"][0], built_targets / "core_dump"


def test_gcore_of_a_program_under_the_recorder_stays_small(gcore_run: tuple[Path, dict, Path]):
    core, _, _ = gcore_run
    assert core.stat().st_size < cores.CORE_LIMIT


def test_leaks_from_a_gcore_are_those_reported_live_at_that_point(gcore_run: tuple[Path, dict, Path],
                                                                  tmp_path: Path):
    core, live, program = gcore_run
    report = tmp_path / "core.json"
    run = run_gdb([f"core-file {core}", mark("status"), "memleak status", mark("errors"), "memleak errors",
                   mark("leaks"), "leaks --all --stack", mark("check"), "memleak check",
                   f"leaks --all --json {report}"], program)
    out = sections(run.stdout)
    assert re.search(rf"as its core file {re.escape(str(core))} holds it", out["status"]), run.stdout
    assert "live: 292 bytes in 8 blocks" in out["status"]
    assert "no heap errors" in out["errors"]
    # before a scan every block is listed, with its stack, as not scanned yet
    assert "292 bytes in 8 blocks from 5 allocation stacks" in out["leaks"], run.stdout + run.stderr
    assert out["leaks"].count("are unfreed (not scanned)") == 5 and "lose_list (" in out["leaks"]
    assert "LEAK SUMMARY" in out["check"] and "definitely lost: 64 bytes in 2 blocks" in out["check"]
    from_core = json.loads(report.read_text())["processes"][0]
    assert groups(from_core) == groups(live)
    assert summary(from_core) == summary(live) == CORE_DUMP.summary
    assert leaks_by_line(from_core) == declared(CORE_DUMP)
    assert from_core["totals"] == live["totals"] and from_core["in_use_at_exit"] == live["in_use_at_exit"]


def test_the_cli_reads_a_gcore_writes_the_usual_outputs_and_exits_on_findings(gcore_run: tuple[Path, dict, Path],
                                                                             tmp_path: Path):
    core, live, program = gcore_run
    run = run_cli(["--core", str(core), "--html", str(tmp_path / "core.html"), str(program)], tmp_path)
    assert run.returncode == 1, run.stderr  # definite leaks: --error-exitcode's default
    process = run.process()
    assert groups(process) == groups(live) and summary(process) == summary(live)
    assert process["exit"] is None and process["fatal_signal"] is None  # gcore of a stopped process
    assert f"as its core file {core} holds it" in run.stderr and "in use in the core: 292 bytes" in run.stderr
    assert (tmp_path / "core.html").stat().st_size > 0
    quiet = run_cli(["--core", str(core), "--error-exitcode", "0", str(program)], tmp_path)
    assert quiet.returncode == 0, quiet.stderr


@pytest.fixture(scope="module")
def kernel_core(built_targets: Path, recorder_library: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """core_dump run with the recorder preloaded (no GDB), its abort dumped by the kernel."""
    if KERNEL_CORES:
        pytest.skip(f"the kernel cannot write a core file here: {KERNEL_CORES}")
    folder = tmp_path_factory.mktemp("kernel")
    status, core = cores.kernel_core([str(built_targets / "core_dump")], folder,
                                     env={**os.environ, "LD_PRELOAD": str(recorder_library)})
    assert cores.killed_with_core(status, signal.SIGABRT) and core is not None, (status, list(folder.iterdir()))
    return core


def test_a_kernel_core_of_a_program_under_the_recorder_stays_small(kernel_core: Path):
    assert kernel_core.stat().st_size < cores.CORE_LIMIT


def test_leaks_from_a_kernel_core_are_those_reported_live_at_the_abort(kernel_core: Path, built_targets: Path,
                                                                       tmp_path: Path):
    program = built_targets / "core_dump"
    run = run_cli(["--core", str(kernel_core), str(program)], tmp_path)
    assert run.returncode == 1, run.stderr
    process = run.process()
    live = cached_cli(["--engine", "agent", str(program)]).process()  # the same program run to its abort
    assert groups(process) == groups(live)
    assert summary(process) == summary(live) == CORE_DUMP.summary
    assert process["exit"] == {"signal": "SIGABRT"} and process["fatal_signal"]["signal"] == "SIGABRT"
    assert any(f["function"] == "main" for f in process["fatal_signal"]["stack"])
    assert f"killed by SIGABRT; read from its core file {kernel_core}" in run.stderr


@pytest.mark.valgrind
@pytest.mark.skipif(not valgrind.available(), reason="valgrind not installed: comparison skipped")
def test_leak_summary_from_a_kernel_core_equals_valgrinds_at_the_abort(kernel_core: Path, built_targets: Path,
                                                                       tmp_path: Path):
    program = built_targets / "core_dump"
    run = run_cli(["--core", str(kernel_core), "--no-default-suppressions", str(program)], tmp_path)
    assert summary(run.process()) == valgrind.leak_summary([str(program)])


@pytest.fixture(scope="module")
def core_targets(tmp_path_factory: pytest.TempPathFactory, built_targets: Path) -> Path:
    """c_targets/core/*.c, compiled here as the Makefile compiles a target."""
    out = tmp_path_factory.mktemp("core-targets")
    for source in (TARGETS / "core").glob("*.c"):
        subprocess.run(["gcc", "-g", "-O0", "-fno-omit-frame-pointer", "-pthread", "-o", str(out / source.stem),
                        str(source)], check=True)
    return out


@pytest.mark.parametrize("expected", [FORKED_CHILD, THREAD_HELD], ids=["forked_child", "thread_held"])
def test_a_kernel_core_holds_the_table_of_a_forked_child_and_the_stacks_of_every_thread(
        expected: expectations.Expected, core_targets: Path, recorder_library: Path, tmp_path: Path):
    """forked_child: the child's own copy of the table is in its core (re-marked for dumping after the fork);
    thread_held: a block only a blocked thread's stack holds is reachable (its registers come from the core)."""
    if KERNEL_CORES:
        pytest.skip(f"the kernel cannot write a core file here: {KERNEL_CORES}")
    program = core_targets / expected.name
    folder = tmp_path / "run"
    folder.mkdir()
    _, core = cores.kernel_core([str(program)], folder, env={**os.environ, "LD_PRELOAD": str(recorder_library)})
    assert core is not None and core.stat().st_size < cores.CORE_LIMIT, list(folder.iterdir())
    run = run_cli(["--core", str(core), "--no-default-suppressions", str(program)], tmp_path)
    process = run.process()
    assert summary(process) == expected.summary, run.stderr
    found = {key: value for key, value in leaks_by_line(process).items() if key[0] == expected.source.name}
    assert found == declared(expected, suppressed=True)


@pytest.fixture(scope="module")
def breakpoint_core(built_targets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gcore of core_dump tracked by the breakpoint engine: its table lives in GDB, not in the core."""
    core = tmp_path_factory.mktemp("breakpoint") / "core_dump.core"
    run = run_gdb(["set memleak engine breakpoint", "memleak start", "break dump_point", "run", cores.GCORE_LIMIT,
                   f"gcore {core}", "kill"], built_targets / "core_dump")
    assert core.exists(), run.stdout + run.stderr
    return core


def test_a_core_without_the_recorders_table_is_one_line_in_gdb_and_exit_2_in_the_cli(
        breakpoint_core: Path, built_targets: Path, tmp_path: Path):
    program = built_targets / "core_dump"
    run = run_gdb([f"core-file {breakpoint_core}", "leaks", "memleak check"], program)
    said = [line for line in run.stderr.splitlines() if line.startswith("gdb-memleak:")]
    assert len(said) == 2 and all("holds no recorder table" in line for line in said), run.stderr
    cli = run_cli(["--core", str(breakpoint_core), str(program)], tmp_path)
    assert cli.returncode == 2 and cli.report is None
    assert cli.stderr.strip().count("\n") == 0 and "holds no recorder table" in cli.stderr, cli.stderr


@pytest.mark.parametrize(("case", "limit", "coredump_filter", "said"), [
    ("anonymous shared memory not dumped", cores.CORE_LIMIT, 0x31, "does not hold the recorder's table whole"),
    ("a core cut short", 256 << 10, None, "is cut short"),
])
def test_a_kernel_core_without_the_whole_table_is_one_error_line_and_exit_2(
        case: str, limit: int, coredump_filter: int | None, said: str, built_targets: Path, recorder_library: Path,
        tmp_path: Path):
    """coredump_filter 0x31: bit 1 (anonymous shared memory, the recorder's memfd) cleared; a core limit too low."""
    if KERNEL_CORES:
        pytest.skip(f"the kernel cannot write a core file here: {KERNEL_CORES}")
    program = built_targets / "core_dump"
    folder = tmp_path / "run"
    folder.mkdir()
    _, core = cores.kernel_core([str(program)], folder, env={**os.environ, "LD_PRELOAD": str(recorder_library)},
                                limit=limit, coredump_filter=coredump_filter)
    assert core is not None, list(folder.iterdir())
    run = run_cli(["--core", str(core), str(program)], tmp_path)
    assert run.returncode == 2 and run.report is None
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and said in lines[0] and lines[0].startswith("gdb-memleak: error:"), run.stderr


@pytest.mark.parametrize("case", ["not a core", "another program's core", "no program", "with --pid",
                                  "with arguments"])
def test_bad_core_input_is_one_error_line_and_exit_2(case: str, gcore_run: tuple[Path, dict, Path],
                                                    built_targets: Path, tmp_path: Path):
    core, _, program = gcore_run
    args, said = {
        "not a core": (["--core", str(program), str(program)], "is not a core file"),
        "another program's core": (["--core", str(core), str(built_targets / "clean")],
                                   f"is a core of {program}, not of"),
        "no program": (["--core", str(core)], "needs the program whose core it is"),
        "with --pid": (["--core", str(core), "--pid", "1"], "not both"),
        "with arguments": (["--core", str(core), str(program), "x"], "takes no program arguments"),
    }[case]
    run = run_cli(args, tmp_path)
    assert run.returncode == 2 and run.report is None
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and said in lines[0] and lines[0].startswith("gdb-memleak: error:"), run.stderr
