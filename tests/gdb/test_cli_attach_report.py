"""What the report of an attach window says (issue 16 item 15): the time really tracked when an interrupt ended
the window early, and that the figures are the blocks in use now (the process runs on), not at its exit."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT

CLI = [sys.executable, "-m", "gdb_memleak.cli.main"]


def start_target(built_targets: Path, rounds: int) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([str(built_targets / "attach_loop"), str(rounds)], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("ready "), line
    return proc, int(line.split()[1])


@pytest.mark.slow
def test_window_ended_early_states_the_time_really_tracked(built_targets: Path):
    target, pid = start_target(built_targets, 400)
    cli = subprocess.Popen([*CLI, "--pid", str(pid), "--duration", "120"], stderr=subprocess.PIPE, text=True,
                           cwd=ROOT, process_group=0)
    time.sleep(2)
    os.kill(cli.pid, signal.SIGTERM)
    _, err = cli.communicate(timeout=120)
    target.communicate(timeout=60)
    note = re.search(r"note: attached for ([0-9.]+) s\b(.*)$", err, re.M)
    assert note, err
    assert 0.5 < float(note.group(1)) < 60, note.group(0)
    assert "120 s" in note.group(2) and "ended early" in note.group(2), note.group(0)


def test_detached_process_report_says_in_use_now_not_at_exit(built_targets: Path):
    target, pid = start_target(built_targets, 150)
    run = subprocess.run([*CLI, "--pid", str(pid), "--duration", "0.5"], capture_output=True, text=True, cwd=ROOT,
                         timeout=300)
    target.communicate(timeout=60)
    assert "detached (still running)" in run.stderr, run.stderr
    # the round's block (and the previous one when the window ended between its malloc and its free), and stdout's
    # buffer, live since before the attach (the heap walk found it)
    assert re.search(r"^ +in use now: [0-9,]+ bytes in [23] blocks$", run.stderr, re.M), run.stderr
    assert "in use at exit" not in run.stderr


def test_ended_process_report_still_says_at_exit(built_targets: Path):
    run = subprocess.run([*CLI, str(built_targets / "clean")], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert re.search(r"^ +in use at exit: 0 bytes in 0 blocks$", run.stderr, re.M), run.stderr
