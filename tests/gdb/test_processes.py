"""fork, vfork and exec: every process (and every image an exec replaces) is tracked and reported on its own."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

import valgrind
from conftest import TARGETS, run_cli

PROCESSES = TARGETS / "processes"


@pytest.fixture(scope="module")
def programs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("processes")
    for source in PROCESSES.glob("*.c"):
        subprocess.run(["gcc", "-g", "-O0", "-fno-omit-frame-pointer", "-o", str(out / source.stem), str(source)],
                       check=True)
    return out


def figures(process: dict) -> tuple[int, ...]:
    t, u = process["totals"], process["in_use_at_exit"]
    return t["allocs"], t["frees"], t["bytes_allocated"], u["bytes"], u["blocks"]


def valgrind_figures_per_process(argv: list[str]) -> list[tuple[int, ...]]:
    proc = subprocess.run(["valgrind", "--trace-children=yes", "--run-libc-freeres=no", "--run-cxx-freeres=no",
                           *argv], capture_output=True, text=True, timeout=300)
    per_pid: dict[str, list[int]] = {}
    for pid, a, f, b in re.findall(r"==(\d+)== +total heap usage: ([\d,]+) allocs, ([\d,]+) frees, ([\d,]+) bytes",
                                   proc.stderr):
        per_pid.setdefault(pid, []).extend(int(x.replace(",", "")) for x in (a, f, b))
    for pid, b, n in re.findall(r"==(\d+)== +in use at exit: ([\d,]+) bytes in ([\d,]+) blocks", proc.stderr):
        per_pid[pid].extend(int(x.replace(",", "")) for x in (b, n))
    return sorted(tuple(v) for v in per_pid.values())


def test_fork_family_reports_every_process_with_its_own_leak(programs: Path, tmp_path: Path):
    run = run_cli([str(programs / "fork_family")], tmp_path)
    processes = run.report["processes"]
    assert len(processes) == 3, run.stderr
    assert all(p["exit"] == {"code": 0} and p["errors"] == [] for p in processes)
    leaked = sorted(sum(l["bytes"] for l in p["leaks"]) for p in processes)
    assert leaked == [30, 100, 300]      # parent 30; child 100; grandchild 200 + its copy of the child's 100
    assert len({p["pid"] for p in processes}) == 3
    assert run.returncode == 1


def test_vfork_exec_reports_the_replaced_image_and_the_new_one(programs: Path, tmp_path: Path):
    run = run_cli([str(programs / "vfork_exec")], tmp_path)
    processes = run.report["processes"]
    endings = sorted(str(p["exit"]) for p in processes)
    assert endings == sorted([str({"exec": str(programs / "vfork_exec")}), str({"code": 0}), str({"code": 0})])
    new_image = next(p for p in processes if p["exit"] == {"code": 0} and p["argv"][0] != str(programs / "vfork_exec")
                     or p["exit"] == {"code": 0} and p["in_use_at_exit"]["bytes"] == 77)
    assert new_image["in_use_at_exit"] == {"bytes": 77, "blocks": 2}


@pytest.mark.valgrind
@pytest.mark.skipif(not valgrind.available(), reason="valgrind not installed: comparison skipped")
@pytest.mark.parametrize("name", ["fork_family", "vfork_exec"])
def test_every_process_figures_equal_valgrinds_trace_children(programs: Path, tmp_path: Path, name: str):
    argv = [str(programs / name)]
    ours = sorted(figures(p) for p in run_cli(argv, tmp_path).report["processes"] if "exec" not in (p["exit"] or {}))
    assert ours == valgrind_figures_per_process(argv)
