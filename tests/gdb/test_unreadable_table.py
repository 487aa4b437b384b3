"""A read of the recorder's table that fails is an error the user sees: the report says it is incomplete and why
(a text line, the JSON `incomplete` field, one line on the CLI's stderr), never a silent report from a stale or empty
table. The fault is real: c_targets/unreadable/header_overwritten.c overwrites the recorder's header magic."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import TARGETS, run_cli

SOURCE = TARGETS / "unreadable" / "header_overwritten.c"
WHY = "the recorder's table could not be read: no recorder header at the anchored address"


def build(tmp_path: Path) -> Path:
    program = tmp_path / SOURCE.stem
    subprocess.run(["gcc", "-g", "-O0", "-fno-omit-frame-pointer", "-o", str(program), str(SOURCE)], check=True)
    return program


def test_a_table_the_recorder_engine_cannot_read_makes_the_report_say_it_is_incomplete(tmp_path: Path):
    run = run_cli(["--engine", "agent", "--", str(build(tmp_path))], tmp_path)
    assert "Traceback" not in run.stderr, run.stderr
    [process] = run.report["processes"]
    assert process["incomplete"] == WHY
    assert [line for line in run.stderr.splitlines() if line.startswith("gdb-memleak: header_overwritten: ")] == \
        [f"gdb-memleak: header_overwritten: {WHY}; the leak report is incomplete."]
    assert f"  INCOMPLETE: {WHY}; the figures below may miss" in run.stderr, run.stderr


def test_the_same_program_without_the_recorder_gives_a_whole_report(tmp_path: Path):
    """The breakpoint engine reads no recorder: nothing is overwritten, the 100 bytes are found (valgrind: 100
    bytes definitely lost)."""
    run = run_cli(["--engine", "breakpoint", "--", str(build(tmp_path))], tmp_path)
    [process] = run.report["processes"]
    assert process["incomplete"] is None and "INCOMPLETE" not in run.stderr
    assert process["leak_summary"]["definite"] == {"bytes": 100, "blocks": 1}
