"""GDB's `detach` ends a tracking as a detach, not as a death: GDB 13 presents a detached inferior as exited with no
exit code, which is also how it presents a process killed by SIGKILL. The report must say which one happened."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import ROOT, run_gdb


def start_loop(built_targets: Path, rounds: int) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([str(built_targets / "attach_loop"), str(rounds)], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("ready "), line
    return proc, int(line.split()[1])


def interrupt_after(pid: int, seconds: float) -> str:
    return (f"python import threading, os, signal; "
            f"threading.Timer({seconds}, os.kill, ({pid}, signal.SIGINT)).start()")


def test_detach_from_an_attached_process_reports_it_detached_and_still_running(built_targets: Path):
    proc, pid = start_loop(built_targets, 120)
    run = run_gdb(["memleak start", interrupt_after(pid, 0.5), "continue", "detach"], load="gdbinit.sample",
                  cwd=ROOT, extra=["-p", str(pid)])
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and rest == "finished 120\n", run.stdout + run.stderr
    assert f"gdb-memleak: process {pid} " in run.stdout, run.stdout + run.stderr
    assert "killed by" not in run.stdout, run.stdout
    assert f"process {pid} ({built_targets / 'attach_loop'}) detached (still running)" in run.stdout, run.stdout
    assert "Traceback" not in run.stderr, run.stderr


def test_detach_from_a_process_gdb_started_reports_it_detached(built_targets: Path):
    run = run_gdb(["memleak start", "break nanosleep", "run", "continue 3", "detach",
                   "python import time; time.sleep(0.1)"],
                  built_targets / "attach_loop", args=["20"], cwd=ROOT)
    assert "detached (still running)" in run.stdout, run.stdout + run.stderr
    assert "killed by" not in run.stdout, run.stdout


def test_kill_is_still_reported_as_killed_by_sigkill(built_targets: Path):
    run = run_gdb(["memleak start", "break nanosleep", "run", "continue 3", "kill"],
                  built_targets / "attach_loop", args=["20"], cwd=ROOT)
    assert "killed by SIGKILL" in run.stdout, run.stdout + run.stderr
    assert "detached" not in run.stdout, run.stdout
