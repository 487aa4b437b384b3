"""`memleak reset`, then reads of the table at later stops: each read gives the figures since the reset, as the
breakpoint engine's cleared table has them; frees of blocks allocated before it are untracked, counted once however
often the recorder's table is read (they were added again at every read)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from conftest import TARGETS, run_gdb

SOURCE = TARGETS / "reset" / "frees_after_reset.c"


def build(tmp_path: Path) -> Path:
    program = tmp_path / SOURCE.stem
    subprocess.run(["gcc", "-g", "-O0", "-fno-omit-frame-pointer", "-o", str(program), str(SOURCE)], check=True)
    return program


def test_frees_of_blocks_from_before_a_reset_are_untracked_once_at_every_read(tmp_path: Path, engine: str):
    run = run_gdb([f"set memleak engine {engine}", "memleak start", "break first_phase", "break second_phase", "run",
                   "memleak reset", "continue", "memleak status", "continue"], build(tmp_path))
    assert "Traceback" not in run.stdout + run.stderr, run.stdout + run.stderr
    assert re.findall(r"untracked frees: (\d+)", run.stdout) == ["1", "2"], run.stdout  # `memleak status`, exit
    assert re.findall(r"total heap usage: (.*)", run.stdout)[-1] == "1 allocs, 1 frees, 32 bytes allocated"
    assert "in use at exit: 0 bytes in 0 blocks" in run.stdout


def test_a_second_reset_counts_from_itself(tmp_path: Path, engine: str):
    """Reset at first_phase and again at second_phase: the exit report counts from the second (no allocation, the
    two frees untracked), not from the first reset's figures taken again."""
    run = run_gdb([f"set memleak engine {engine}", "memleak start", "break first_phase", "break second_phase", "run",
                   "memleak reset", "continue", "memleak reset", "continue"], build(tmp_path))
    assert "Traceback" not in run.stdout + run.stderr, run.stdout + run.stderr
    assert re.findall(r"total heap usage: (.*)", run.stdout)[-1] == "0 allocs, 0 frees, 0 bytes allocated", run.stdout
    assert re.findall(r"untracked frees: (\d+)", run.stdout)[-1] == "2", run.stdout
