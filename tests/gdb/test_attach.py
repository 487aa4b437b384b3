"""Attaching to a running process: track a window, detach, and the process finishes as if nothing happened."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import ROOT, run_cli, run_gdb


def start_target(built_targets: Path, rounds: int) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([str(built_targets / "attach_loop"), str(rounds)], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("ready "), line
    return proc, int(line.split()[1])


def test_cli_attach_window_reports_and_detaches_leaving_the_program_to_finish(built_targets: Path, tmp_path: Path):
    proc, pid = start_target(built_targets, 150)
    run = run_cli(["--pid", str(pid), "--duration", "0.5"], tmp_path)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and rest == "finished 150\n"
    process = run.process()
    assert process["pid"] == pid and process["exit"] is None
    assert process["totals"]["allocs"] >= 5 and process["errors"] == []
    # the block of the current round, still held (and the previous one if the window ended between its malloc and
    # its free), and stdout's buffer, live since before the attach (the heap walk found it)
    assert process["in_use_at_exit"]["blocks"] in (2, 3), process["in_use_at_exit"]
    assert "untracked frees" not in run.stderr                   # the block allocated before attaching is known
    assert "detached (still running)" in run.stderr
    assert run.returncode == 0


def test_interactive_attach_start_stop_detach_leaves_no_breakpoint_behind(built_targets: Path):
    proc, pid = start_target(built_targets, 150)
    interrupt = (f"python import threading, os, signal; "
                 f"threading.Timer(0.5, os.kill, ({pid}, signal.SIGINT)).start()")
    run = run_gdb(["memleak start", interrupt, "continue", "memleak status", "leaks --all",
                   "memleak stop", "maint info breakpoints", "detach"], load="gdbinit.sample",
                  cwd=ROOT, extra=["-p", str(pid)])
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and rest == "finished 150\n", run.stderr
    assert "tracking process" in run.stdout and "from now on" in run.stdout
    assert "Invalid free" not in run.stdout and "Traceback" not in run.stderr
    assert "untracked frees" not in run.stdout  # the block allocated before attaching was found by the heap walk
    after_stop = run.stdout.split("breakpoints removed")[1]
    assert not any(line.split()[1:2] == ["breakpoint"] for line in after_stop.splitlines()
                   if line.startswith("-")), after_stop


def test_attach_to_a_missing_process_is_one_clear_error(tmp_path: Path):
    proc = subprocess.run([sys.executable, "-m", "gdb_memleak.cli.main", "--pid", "999999999"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "gdb-memleak: error: no process with pid 999999999"
