"""Stopped at a bad free (`memleak on-error stop`, the interactive default), the user chooses: `memleak skip` makes the
call return without freeing (valgrind's way: the program runs on to its end and its report), `continue` alone lets it
happen (as without the tool: glibc aborts on seed_demo's double free). Both engines, real GDB, real programs."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

import expectations
import valgrind
from conftest import TARGETS, run_gdb

SEED = expectations.parse(TARGETS / "seed_demo.c")
OFFER = ("Stopped before the call: `memleak skip` makes it return without freeing, as valgrind does;\n"
         " `continue` alone lets it happen (glibc may abort the program).\n")


def mark(name: str) -> str:
    return f"echo @@{name}@@\\n"


def sections(stdout: str) -> dict[str, str]:
    parts = re.split(r"^@@(\S+?)@@$", stdout, flags=re.M)
    return {"": parts[0], **dict(zip(parts[1::2], parts[2::2]))}


def no_traceback(run: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in run.stdout + run.stderr, run.stdout + run.stderr


def summary(process: dict) -> dict[str, tuple[int, int]]:
    return {k: (v["bytes"], v["blocks"]) for k, v in process["leak_summary"].items() if k != "suppressed"}


def test_the_stop_at_a_double_free_says_how_to_skip_it_or_let_it_happen(built_targets: Path, engine: str):
    run = run_gdb([f"set memleak engine {engine}", "memleak start", "run"], built_targets / "seed_demo")
    no_traceback(run)
    assert "Double free of 0x" in run.stdout
    assert OFFER in run.stdout, run.stdout


@pytest.mark.valgrind
def test_memleak_skip_at_the_double_free_runs_the_program_to_its_end_and_report(built_targets: Path,
                                                                               tmp_path: Path, engine: str):
    report = tmp_path / "report.json"
    run = run_gdb([f"set memleak engine {engine}", "memleak start", "run", mark("skip"), "memleak skip",
                   mark("continue"), "continue", mark("json"), f"leaks --json {report}"],
                  built_targets / "seed_demo")
    no_traceback(run)
    out = sections(run.stdout)
    assert re.search(r"^gdb-memleak: free\(0x[0-9a-f]+\) skipped: ", out["skip"], re.M), out["skip"]
    ended = out["continue"]
    assert "exited normally" in ended and "exited with code 0" in ended, run.stdout
    assert "SIGABRT" not in run.stdout + run.stderr
    assert "double free detected" not in run.stderr, "glibc never saw the second free"
    assert ended.count("HEAP SUMMARY") == 1 and "Double free of 0x" in ended
    assert ended.rstrip().splitlines()[-1].startswith("SUMMARY: 1 heap error; ")
    (process,) = json.loads(report.read_text())["processes"]
    assert process["exit"] == {"code": 0}
    assert [e["type"] for e in process["errors"]] == ["double_free"]
    assert summary(process) == {k: v for k, v in SEED.summary.items() if k != "suppressed"}
    if valgrind.available():  # valgrind never performs the bad free either: the same figures
        assert valgrind.our_figures(process) == valgrind.heap_figures([str(built_targets / "seed_demo")])


def test_continue_alone_lets_the_double_free_happen_and_glibc_aborts(built_targets: Path, engine: str):
    run = run_gdb([f"set memleak engine {engine}", "memleak start", "run", mark("continue"), "continue"],
                  built_targets / "seed_demo")
    no_traceback(run)
    out = sections(run.stdout)
    assert "killed by SIGABRT" in out["continue"], run.stdout
    assert "free(): double free detected in tcache 2" in run.stderr


def test_memleak_skip_after_the_program_moved_on_skips_nothing(built_targets: Path, engine: str):
    run = run_gdb([f"set memleak engine {engine}", "memleak start", "run", "stepi", mark("skip"), "memleak skip",
                   mark("continue"), "continue"], built_targets / "seed_demo")
    no_traceback(run)
    assert "memleak skip: the program has run since it stopped at the bad free(0x" in run.stderr, run.stderr
    assert "killed by SIGABRT" in sections(run.stdout)["continue"], "nothing was skipped: glibc saw the free"


def test_memleak_skip_with_no_bad_free_pending_is_one_error_line(built_targets: Path):
    run = run_gdb(["memleak start", "break main", "run", "memleak skip"], built_targets / "seed_demo")
    no_traceback(run)
    assert "memleak skip: the program is not stopped at a bad free" in run.stderr, run.stderr


def test_a_mismatched_release_is_not_skipped(built_targets: Path, engine: str):
    run = run_gdb([f"set memleak engine {engine}", "memleak start", "run", "memleak skip"],
                  built_targets / "cpp_mismatch")
    no_traceback(run)
    assert "Mismatched" in run.stdout, run.stdout
    assert "memleak skip" not in run.stdout, "the stop offers no skip for a release that still releases"
    assert "is not skipped: a mismatched release still releases the block, as valgrind does" in run.stderr


@pytest.mark.valgrind
def test_memleak_skip_at_an_invalid_realloc_returns_null_and_counts_as_valgrind(tmp_path: Path, engine: str):
    source = tmp_path / "bad_realloc.c"
    source.write_text('#include <stdio.h>\n#include <stdlib.h>\nint main(void) {\n  char *p = malloc(32);\n'
                      '  char *q = p + 4;\n  __asm__ volatile("" : "+r"(q));\n  q = realloc(q, 64);\n'
                      '  printf("realloc returned %s\\n", q ? "a block" : "NULL");\n  free(p);\n  return 0;\n}\n')
    program = tmp_path / "bad_realloc"
    subprocess.run(["gcc", "-g", "-O0", "-o", str(program), str(source)], check=True)
    report = tmp_path / "report.json"
    run = run_gdb([f"set memleak engine {engine}", "memleak start", "run", "memleak skip", "continue",
                   f"leaks --json {report}"], program)
    no_traceback(run)
    assert "Invalid realloc of 0x" in run.stdout and OFFER in run.stdout, run.stdout
    assert "realloc returned NULL" in run.stdout and "exited with code 0" in run.stdout, run.stdout
    (process,) = json.loads(report.read_text())["processes"]
    if valgrind.available():  # the skipped realloc still counts the allocation it asked for, as valgrind's does
        assert valgrind.our_figures(process) == valgrind.heap_figures([str(program)])
