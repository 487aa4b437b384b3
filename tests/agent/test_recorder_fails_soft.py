"""The recorder fails soft: when it cannot record (no memory for its region, no thread key, a failed check, a forked
child without its copy of the table) the program runs on untracked, as it would alone, and GDB says why on one
line; a fork from a signal handler, threads making the first calls at once and threads waiting for a long fork
neither hang nor spin."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from recorded import Recorded, read_stopped, run_stopping

from conftest import run_cli
from gdb_memleak.core import agent_format as fmt
from gdb_memleak.core.procmaps import read_maps

PROGRAMS = Path(__file__).resolve().parent / "programs"
SOURCES = ["runs_untracked", "fork_copy_fails", "signal_fork", "fork_spin", "cxx_plugin_host"]


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("soft-programs")
    for name in SOURCES:
        subprocess.run(["gcc", "-g", "-O0", "-fno-omit-frame-pointer", "-pthread", "-o", str(out / name),
                        str(PROGRAMS / f"{name}.c")], check=True)
    subprocess.run(["g++", "-g", "-O0", "-shared", "-fPIC", "-o", str(out / "libcxx_plugin.so"),
                    str(PROGRAMS / "cxx_plugin.cc")], check=True)
    return out


@dataclass
class Stopped:
    """A process of the family at its exit: its table, or why its recorder records nothing."""

    pid: int
    record: Recorded | None
    reason: str | None


def read_either(pid: int) -> Stopped:
    anchor = fmt.anchor_address(read_maps(pid))
    assert anchor is not None, f"recorder not loaded in {pid}"
    with fmt.ProcMemory(pid) as mem:
        region, reason = fmt.region_address(mem.read, anchor), fmt.stopped_reason(mem.read, anchor)
    assert bool(region) != bool(reason), (region, reason)  # a table, or a reason: never both
    return Stopped(pid, read_stopped(pid) if region else None, reason)


def live_sizes(record: Recorded) -> dict[int, int]:
    counts: dict[int, int] = {}
    for block in record.snapshot.blocks():
        if block.size in (16, 24, 32):
            counts[block.size] = counts.get(block.size, 0) + 1
    return counts


LIMITED = """
import os, resource, sys
os.environ["LD_PRELOAD"] = os.environ.pop("SOFT_PRELOAD")
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]), int(sys.argv[1])))
os.execv(sys.argv[2], sys.argv[2:])
"""


def with_address_limit(library: Path, megabytes: int, argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """argv run under `ulimit -v` (RLIMIT_AS): a real shortage of address space for the recorder's region. The
    launcher is not recorded (a recorder under that limit could not pass itself on through exec)."""
    return [sys.executable, "-c", LIMITED, str(megabytes << 20), *argv], {"LD_PRELOAD": "",
                                                                         "SOFT_PRELOAD": str(library)}


FAILURES = {
    "ulimit-v": ({}, "it cannot map its memory: Cannot allocate memory"),
    "key": ({"GDB_MEMLEAK_AGENT_FAULT": "key"},
            "it cannot create its thread key (pthread_key_create): Resource temporarily unavailable"),
    "check": ({"GDB_MEMLEAK_AGENT_FAULT": "check"}, "a check of its memory failed"),
}


@pytest.mark.parametrize("failure", list(FAILURES))
def test_a_recorder_that_cannot_start_leaves_the_program_running_untracked(recorder_library: Path, programs: Path,
                                                                           failure: str) -> None:
    """Was `_exit(127)` for an unmappable region; the key and check failures had no way out. Now the program's output
    and exit status are its own, and the anchor says why there is no table (the forked child says the same)."""
    exe = str(programs / "runs_untracked")
    native = subprocess.run([exe], capture_output=True, check=False)
    env, why = FAILURES[failure]
    argv = [exe]
    if failure == "ulimit-v":
        argv, env = with_address_limit(recorder_library, 200, argv)
    stopped, status, out = run_stopping(recorder_library, argv, read_either, stdout=subprocess.PIPE, **env)
    assert (status, out) == (native.returncode, native.stdout) == (3, b"sum -212, child 5\n")
    assert [(s.record, s.reason) for s in stopped] == [(None, why)]


def test_a_forked_child_without_its_copy_stops_recording_and_leaves_the_parents_table_alone(
        recorder_library: Path, programs: Path) -> None:
    """No file and no private memory for the child's copy (RLIMIT_FSIZE, RLIMIT_AS): the child used to go on writing
    into its parent's table (its frees and blocks showed up in the parent's report)."""
    stopped, status, out = run_stopping(recorder_library, [str(programs / "fork_copy_fails")], read_either,
                                        stdout=subprocess.PIPE)
    assert (status, out) == (0, b"child 0\n")
    child, parent = stopped  # the child exits first: its parent waits for it
    assert child.record is None and child.reason is not None
    assert child.reason.startswith("the copy of its table for this forked process failed")
    assert parent.record is not None and live_sizes(parent.record) == {16: 10000, 32: 1000}


def test_forked_child_without_its_copy_under_gdb_says_why_once(programs: Path, tmp_path: Path) -> None:
    run = run_cli(["--engine", "agent", str(programs / "fork_copy_fails")], tmp_path)
    assert run.report is not None, run.stderr
    processes = run.report["processes"]
    assert all(p["exit"] == {"code": 0} for p in processes), run.stderr
    parent = next(p for p in processes if p["in_use_at_exit"]["bytes"])
    assert (parent["in_use_at_exit"]["bytes"], parent["in_use_at_exit"]["blocks"]) == (196096, 11001)  # valgrind's
    said = [line for line in run.stderr.splitlines() if "the recorder stopped" in line]
    assert said == ["gdb-memleak: fork_copy_fails: the recorder stopped, the copy of its table for this forked "
                    "process failed: Cannot allocate memory: the program runs on untracked."]


def test_a_recorder_that_cannot_start_under_gdb_says_why_once(programs: Path, tmp_path: Path) -> None:
    run = run_cli(["--engine", "agent", str(programs / "runs_untracked")], tmp_path,
                  env={"GDB_MEMLEAK_AGENT_FAULT": "check"})
    assert run.report is not None, run.stderr
    assert sorted(p["exit"]["code"] for p in run.report["processes"]) == [3, 5]
    assert "sum -212, child 5" in run.stdout
    said = [line for line in run.stderr.splitlines() if "recorder" in line]
    assert said == ["gdb-memleak: runs_untracked: the recorder stopped, a check of its memory failed: the program "
                    "runs on untracked."]


def test_fork_from_a_signal_handler_that_interrupted_the_recorder_does_not_hang(recorder_library: Path,
                                                                                programs: Path) -> None:
    """The fork handler waited for a lock the interrupted allocation held (as _Fork already did not)."""
    argv = [str(programs / "signal_fork"), "300"]
    native = subprocess.run(argv, capture_output=True, timeout=60, check=True)
    env = {**os.environ, "LD_PRELOAD": str(recorder_library)}
    try:
        ours = subprocess.run(argv, capture_output=True, timeout=60, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail("deadlocked: a fork from a signal handler waited for the recorder's lock")
    assert (ours.returncode, ours.stdout) == (0, native.stdout) == (0, b"forks 300\n")


def test_threads_making_the_first_calls_at_once_race_on_nothing(tmp_path: Path) -> None:
    """ThreadSanitizer over the recorder's set-up, eight threads calling at once (the hooks renamed, see
    init_race.c): `init_owner` and `tkey_ready` were plain variables every waiting thread wrote or read."""
    if shutil.which("gcc") is None:
        pytest.skip("no gcc")
    exe = tmp_path / "init_race"
    built = subprocess.run(["gcc", "-fsanitize=thread", "-g", "-O1", "-pthread", "-o", str(exe),
                            str(PROGRAMS / "init_race.c"), "-ldl"], capture_output=True, text=True)
    if built.returncode != 0 and "tsan" in built.stderr:
        pytest.skip("no ThreadSanitizer runtime (libtsan)")
    assert built.returncode == 0, built.stderr
    for fault, recording in (("", "yes"), ("key", "no")) * 3:
        proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "GDB_MEMLEAK_AGENT_FAULT": fault})
        assert "ThreadSanitizer" not in proc.stderr, proc.stderr
        assert (proc.returncode, proc.stdout) == (0, f"recording: {recording}\n")


def test_threads_waiting_for_a_fork_copying_a_million_blocks_sleep(recorder_library: Path, programs: Path) -> None:
    """Three threads allocate while the main thread forks with a million live blocks (the copy holds every lock for
    tenths of a second): they spun on the locks, using about 40% of the fork's time in CPU; now they sleep."""
    env = {**os.environ, "LD_PRELOAD": str(recorder_library)}
    proc = subprocess.run([str(programs / "fork_spin")], capture_output=True, text=True, timeout=120, env=env,
                          check=True)
    found = re.fullmatch(r"fork ([\d.]+) s, other threads' cpu ([\d.]+) s\n", proc.stdout)
    assert found, proc.stdout
    wall, cpu = float(found.group(1)), float(found.group(2))
    assert wall > 0.02  # the copy took long enough to tell spinning from sleeping
    assert cpu < 0.1 * wall + 0.005, (wall, cpu)


def test_cxx_plugin_loaded_locally_is_recorded_instead_of_aborting(recorder_library: Path, programs: Path) -> None:
    """A C program dlopening a C++ plugin RTLD_LOCAL: libstdc++ is outside the global scope, where the recorder looked
    for the next operator new, and it called abort() when it found none."""
    argv = [str(programs / "cxx_plugin_host"), str(programs / "libcxx_plugin.so")]
    stopped, status, out = run_stopping(recorder_library, argv, read_either, stdout=subprocess.PIPE)
    assert (status, out) == (0, b"sum 14950\n")
    (process,) = stopped
    assert process.record is not None
    snapshot = process.record.snapshot
    assert [(b.size, b.allocator) for b in snapshot.blocks() if b.size == 40] == [(40, "new[]")]
    assert snapshot.counters().frees >= 200  # each string: its object and its buffer, made by new and deleted
