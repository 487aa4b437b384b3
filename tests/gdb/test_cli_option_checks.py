"""What the batch CLI checks in its command line and environment (issue 16 item 15): a value it cannot honour is
one line on stderr and exit status 2 before anything runs, and $GDB_MEMLEAK_ENGINE means the same inside GDB."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, run_gdb

CLI = [sys.executable, "-m", "gdb_memleak.cli.main"]


def cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, **env})


@pytest.mark.parametrize("value", ["256", "1000", "-1"])
def test_error_exitcode_outside_an_exit_status_is_rejected(built_targets: Path, value: str):
    run = cli(f"--error-exitcode={value}", str(built_targets / "seed_demo"))
    assert run.returncode == 2
    assert "--error-exitcode" in run.stderr and "0 to 255" in run.stderr, run.stderr
    assert "HEAP SUMMARY" not in run.stderr


def test_error_exitcode_255_is_the_status(built_targets: Path):
    assert cli("--error-exitcode", "255", str(built_targets / "seed_demo")).returncode == 255


def test_unknown_engine_in_the_environment_is_one_clear_error(built_targets: Path):
    run = cli(str(built_targets / "clean"), GDB_MEMLEAK_ENGINE="bogus")
    assert run.returncode == 2
    assert run.stderr.splitlines() == [
        "gdb-memleak: error: GDB_MEMLEAK_ENGINE=bogus: not an engine (auto, agent or breakpoint)"]


def test_engine_from_the_environment_is_gdbs_default_too(built_targets: Path):
    run = run_gdb(["show memleak engine"], built_targets / "clean",
                  env={**os.environ, "GDB_MEMLEAK_ENGINE": "breakpoint"})
    assert "is breakpoint." in run.stdout, run.stdout + run.stderr
    bogus = run_gdb(["show memleak engine"], built_targets / "clean",
                    env={**os.environ, "GDB_MEMLEAK_ENGINE": "bogus"})
    assert "is auto." in bogus.stdout, bogus.stdout + bogus.stderr
    assert "gdb-memleak: GDB_MEMLEAK_ENGINE=bogus: not an engine (auto, agent or breakpoint): using auto" \
        in bogus.stderr.splitlines(), bogus.stderr


def test_output_failing_while_written_is_named_and_exits_2_after_the_report(built_targets: Path, tmp_path: Path):
    """/dev/full passes every check made before the run (it exists and is writable); writing it fails. The other
    files are still written."""
    sarif = tmp_path / "report.sarif"
    run = cli("--json", "/dev/full", "--sarif", str(sarif), str(built_targets / "seed_demo"))
    assert run.returncode == 2, run.stderr
    lines = run.stderr.splitlines()
    assert lines[-1] == "gdb-memleak: error: cannot write --json /dev/full: No space left on device", run.stderr
    assert any(line.startswith("SUMMARY: 1 heap error") for line in lines[:-1]), run.stderr
    assert "internal error" not in run.stderr
    assert sarif.stat().st_size > 0
