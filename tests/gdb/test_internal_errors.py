"""An internal error in a breakpoint handler (a stop() callback) is counted and said, never lost: one line through
the session's output (the CLI's stream in a batch run, where GDB's own stderr is captured while `run` executes)
and a count in `memleak status`, under either engine. The program runs on.

The fault is injected from outside the package: `Tracking.exiting` (what both engines call at `_exit`) raises.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from pathlib import Path

from conftest import ROOT, run_cli, run_gdb

BOOM = "python import gdb_memleak.gdb.tracking as t; t.Tracking.exiting = lambda self: 1 // 0"
SAID = re.compile(r"^gdb-memleak: internal error in .*ZeroDivisionError.*$", re.M)


def test_a_cli_run_says_the_first_internal_error_on_its_stream(built_targets: Path, tmp_path: Path, engine: str):
    wrapper = tmp_path / "gdb"
    wrapper.write_text(f'#!/bin/sh\nexec gdb -iex "{BOOM}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    pythonpath = os.pathsep.join([str(ROOT), *sys.path[1:]])  # the injection runs before the plugin's loader
    run = run_cli(["--engine", engine, "--gdb", str(wrapper), str(built_targets / "clean")], tmp_path,
                  env={"PYTHONPATH": pythonpath})
    assert len(SAID.findall(run.stderr)) == 1, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    assert run.report is not None and run.report["processes"][0]["exit"] == {"code": 0}, run.stderr


def test_memleak_status_counts_internal_errors(built_targets: Path, engine: str):
    run = run_gdb([BOOM, f"set memleak engine {engine}", "memleak start", "catch syscall exit_group", "run",
                   "memleak status", "kill"],
                  built_targets / "clean")
    assert len(SAID.findall(run.stdout)) == 1, run.stdout + run.stderr
    assert re.search(r"^  internal errors: 1$", run.stdout, re.M), run.stdout
    assert "Traceback" not in run.stdout + run.stderr, run.stderr
