"""Children started without the exported execve (system(), popen(), fexecve(), execveat()) keep the recorder: each
image GDB follows gets it in its environment at its first instruction (gdb/exec_preload.py)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

import expectations
import valgrind
from conftest import TARGETS, run_cli

SOURCE = TARGETS / "processes" / "spawned_children.c"
FALLBACK = "using the breakpoint engine"


@pytest.fixture(scope="module")
def program(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("spawned") / SOURCE.stem
    subprocess.run(["gcc", "-g", "-O0", "-fno-omit-frame-pointer", "-o", str(out), str(SOURCE)], check=True)
    return out


def figures(process: dict) -> tuple[int, ...]:
    t, u = process["totals"], process["in_use_at_exit"]
    return t["allocs"], t["frees"], t["bytes_allocated"], u["bytes"], u["blocks"]


def valgrind_figures_of(program: Path) -> list[tuple[int, ...]]:
    """valgrind's figures for every process whose command is `program` (not the shells in between)."""
    proc = valgrind.run(["--trace-children=yes", "--run-libc-freeres=no", "--run-cxx-freeres=no", str(program)],
                        timeout=600)
    ours = {pid for pid, command in re.findall(r"==(\d+)== Command: (\S+)", proc.stderr) if command == str(program)}
    per_pid: dict[str, list[int]] = {}
    for pid, b, n in re.findall(r"==(\d+)== +in use at exit: ([\d,]+) bytes in ([\d,]+) blocks", proc.stderr):
        per_pid[pid] = [int(x.replace(",", "")) for x in (b, n)]
    for pid, a, f, b in re.findall(r"==(\d+)== +total heap usage: ([\d,]+) allocs, ([\d,]+) frees, ([\d,]+) bytes",
                                   proc.stderr):
        per_pid[pid] = [int(x.replace(",", "")) for x in (a, f, b)] + per_pid[pid]
    return sorted(tuple(v) for pid, v in per_pid.items() if pid in ours)


@pytest.fixture(scope="module")
def run(program: Path, tmp_path_factory):
    return run_cli([str(program)], tmp_path_factory.mktemp("spawned-run"), timeout=120)


def test_every_child_is_tracked_by_the_recorder_and_its_leak_found(run):
    assert FALLBACK not in run.stderr and "was not loaded" not in run.stderr, run.stderr
    expected = expectations.parse(SOURCE)
    found = []
    for process in run.report["processes"]:
        for leak in process["leaks"]:
            frame = next((f for f in leak["stack"] if f["file"] and f["file"].endswith(SOURCE.name)), None)
            if frame is not None:  # (the shells' own blocks are still reachable)
                found.append((frame["line"], leak["bytes"], leak["blocks"], leak["kind"]))
    want = [(line, b, n, expected.leak_kind(line)) for line, (b, n) in expected.leaks.items()]
    assert sorted(found) == sorted(want), run.stderr
    assert run.report["processes"][-1]["exit"] == expected.exit
    assert run.returncode == 1


@pytest.mark.valgrind
@pytest.mark.skipif(not valgrind.available(), reason="valgrind not installed: comparison skipped")
def test_every_image_of_the_program_has_valgrinds_figures(run, program: Path):
    # argv[0] is the image's own (an fexecve'd child is given a bare name): the shells in between are left out
    ended = [p for p in run.report["processes"] if Path(p["argv"][0]).name == program.name and "code" in p["exit"]]
    assert sorted(figures(p) for p in ended) == valgrind_figures_of(program)


def test_a_shell_command_line_runs_its_commands_under_the_recorder(tmp_path: Path):
    run = run_cli(["/bin/sh", "-c", "ls / >/dev/null; exec /usr/bin/env >/dev/null"], tmp_path, timeout=120)
    assert FALLBACK not in run.stderr, run.stderr
    assert [p["exit"] for p in run.report["processes"]][-1] == {"code": 0}
    assert run.returncode == 0, run.stderr
