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
    proc = valgrind.run(["--trace-children=yes", "--run-libc-freeres=no", "--run-cxx-freeres=no", *argv])
    per_pid: dict[str, list[int]] = {}
    for pid, a, f, b in re.findall(r"==(\d+)== +total heap usage: ([\d,]+) allocs, ([\d,]+) frees, ([\d,]+) bytes",
                                   proc.stderr):
        per_pid.setdefault(pid, []).extend(int(x.replace(",", "")) for x in (a, f, b))
    for pid, b, n in re.findall(r"==(\d+)== +in use at exit: ([\d,]+) bytes in ([\d,]+) blocks", proc.stderr):
        per_pid[pid].extend(int(x.replace(",", "")) for x in (b, n))
    return sorted(tuple(v) for v in per_pid.values())


def test_fork_family_reports_every_process_with_its_own_leak(programs: Path, tmp_path: Path, engine: str):
    run = run_cli(["--engine", engine, str(programs / "fork_family")], tmp_path)
    processes = run.report["processes"]
    assert len(processes) == 3, run.stderr
    assert all(p["exit"] == {"code": 0} and p["errors"] == [] for p in processes)
    leaked = sorted(sum(leak["bytes"] for leak in p["leaks"]) for p in processes)
    assert leaked == [30, 100, 300]      # parent 30; child 100; grandchild 200 + its copy of the child's 100
    assert len({p["pid"] for p in processes}) == 3
    assert run.returncode == 1


def test_vfork_child_is_not_a_process_of_its_own_and_its_exec_image_is(programs: Path, tmp_path: Path, engine: str):
    """The vforked child runs in its parent's memory until its exec: only the parent and the new image report."""
    run = run_cli(["--engine", engine, str(programs / "vfork_exec")], tmp_path)
    processes = run.report["processes"]
    assert [p["exit"] for p in processes] == [{"code": 0}, {"code": 0}], run.stderr
    assert sorted(figures(p) for p in processes) == [(1, 1, 33, 0, 0), (2, 0, 77, 77, 2)]  # parent, new image
    assert all(p["errors"] == [] for p in processes)


def test_what_a_vfork_child_allocates_and_frees_is_its_parents_heap(programs: Path, tmp_path: Path, engine: str):
    run = run_cli(["--engine", engine, str(programs / "vfork_shared")], tmp_path)
    processes = run.report["processes"]
    assert len(processes) == 1, run.stderr
    assert processes[0]["errors"] == [], run.stderr
    assert figures(processes[0]) == (2, 2, 72, 0, 0)
    assert run.returncode == 0, run.stderr


def test_shell_script_running_commands_through_vfork_has_no_heap_errors(tmp_path: Path, engine: str):
    """dash runs every external command through vfork: no false invalid free, the shell's own exit status (and no
    hang: numpy's threads in GDB's process once took GDB's SIGCHLD, see gdb/plugin.py)."""
    run = run_cli(["--engine", engine, "/bin/sh", "-c", "/usr/bin/true; /usr/bin/true; exit 3"], tmp_path)
    assert all(p["errors"] == [] for p in run.report["processes"]), run.stderr
    assert "nvalid free" not in run.stderr
    assert run.returncode == 3, run.stderr


def test_a_worker_killed_as_its_parent_exits_is_reported_and_the_status_is_the_parents(programs: Path,
                                                                                       tmp_path: Path, engine: str):
    run = run_cli(["--engine", engine, "--error-exitcode", "0", str(programs / "killed_child")], tmp_path)
    assert run.report is not None, run.stderr
    assert sorted(str(p["exit"]) for p in run.report["processes"]) == ["{'code': 0}", "{'signal': 'SIGKILL'}"]
    assert run.returncode == 0


@pytest.mark.valgrind
@pytest.mark.skipif(not valgrind.available(), reason="valgrind not installed: comparison skipped")
@pytest.mark.parametrize("name", ["fork_family", "vfork_exec"])
def test_every_process_figures_equal_valgrinds_trace_children(programs: Path, tmp_path: Path, name: str, engine: str):
    argv = [str(programs / name)]
    processes = run_cli(["--engine", engine, *argv], tmp_path).report["processes"]
    ours = sorted(figures(p) for p in processes if "exec" not in (p["exit"] or {}))
    assert ours == valgrind_figures_per_process(argv)


PARALLEL_RUNS = 4  # before non-stop mode, every run of either program hung


@pytest.mark.parametrize("argv", [
    ["parallel_spawn"],
    ["/bin/sh", "-c", "for i in 1 2 3 4 5 6 7 8; do /bin/true; done & for i in 1 2 3 4 5 6 7 8; do /bin/true; done; "
     "wait"]], ids=["vfork_workers", "shell_background_loop"])
@pytest.mark.slow
def test_parallel_children_starting_through_vfork_never_hang(programs: Path, tmp_path: Path, argv: list[str],
                                                             engine: str):
    """A process ending (or any stop) while another sleeps in vfork with its child held by GDB: GDB's all-stop mode
    waited forever to stop the vfork parent. Each run ends, with one report per process."""
    if argv[0] == "parallel_spawn":
        argv = [str(programs / "parallel_spawn")]
        expected = 1 + 2 + 2 * 15          # the parent, two workers, 15 /bin/true each
    else:
        expected = 2 + 2 * 8               # the shell, its background subshell, 8 /bin/true each
    for _ in range(PARALLEL_RUNS):
        run = run_cli(["--engine", engine, "--error-exitcode", "0", *argv], tmp_path, timeout=60)
        assert run.returncode == 0, run.stderr
        assert len(run.report["processes"]) == expected, run.stderr
        if "parallel_spawn" in argv[0]:
            leaked = sorted(sum(leak["bytes"] for leak in p["leaks"]) for p in run.report["processes"]
                            if p["leaks"])
            assert leaked == [8, 16 + 8, 32 + 8], run.stderr  # each worker also holds its copy of the parent's 8
