"""A program that defines its own allocator functions (valgrind's `static_malloc`: its own malloc and free;
`new_override`: its own operator new[]) is tracked by the breakpoint engine, said in one line: the executable comes
first in symbol lookup, so a preloaded recorder never sees those calls (the report was empty, with no warning).
c_targets/own_malloc.c declares its findings; test_cli_targets.py checks them and valgrind's figures."""

from __future__ import annotations

import re
from pathlib import Path

from test_engine_choice import engine_lines

from conftest import run_cli, run_gdb

OWN_MALLOC_LINE = ("gdb-memleak: own_malloc defines its own malloc and free (calls to them never reach the preloaded "
                   "recorder): using the breakpoint engine.")


def test_a_program_with_its_own_malloc_gets_the_breakpoint_engine_and_one_line(built_targets: Path,
                                                                                 tmp_path: Path):
    run = run_cli([str(built_targets / "own_malloc")], tmp_path)
    assert engine_lines(run.stderr) == [OWN_MALLOC_LINE], run.stderr
    process = run.process()
    assert process["totals"] == {"allocs": 4, "frees": 1, "bytes_allocated": 6074}, run.stderr
    assert process["in_use_at_exit"] == {"bytes": 6064, "blocks": 3}, run.stderr


def test_nothing_is_preloaded_into_it_and_the_gdb_setting_says_the_same(built_targets: Path):
    run = run_gdb(["memleak start", "show environment LD_PRELOAD", "break free", "run", "memleak status", "kill"],
                  built_targets / "own_malloc")
    assert "Environment variable \"LD_PRELOAD\" not defined." in run.stdout, run.stdout
    assert re.search(r"^gdb-memleak: process \d+: tracking \(breakpoint engine\)$", run.stdout, re.M), run.stdout
    assert re.search(r"hooked: malloc \(\S*own_malloc\), free \(\S*own_malloc\)", run.stdout), run.stdout
    assert engine_lines(run.stderr) == [OWN_MALLOC_LINE], run.stderr
