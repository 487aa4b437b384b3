"""valgrind suppression files under gdb-memleak, with valgrind itself as the oracle on real programs: a file in the
shapes projects ship suppresses the same records and errors, crediting the same entries; the blocks `leaks
--gen-suppressions` and `memleak errors --gen-suppressions` print are the ones valgrind's --gen-suppressions=all
prints, and read back (GDB's `set memleak suppressions`, valgrind's --suppressions) they hide everything in both;
a suppressed heap error never stops the program."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

import valgrind
from conftest import ROOT, run_cli, run_gdb

SHAPES = ROOT / "tests" / "data" / "supp_shapes.supp"
GEN = ["leaks --all --gen-suppressions", "memleak errors --gen-suppressions"]
BLOCK = re.compile(r"^\{\n.*?\n\}$", re.M | re.S)
# the entries of supp_shapes.supp valgrind credits on c_targets/supp_shapes (the file's comments say why)
USED_IN_SHAPES = {"list nodes, head and tail (GLib style: tabs, no space after the colon)",
                  "Python style: a name kept for the whole run (still reachable)", "grown-by-realloc",
                  "pointed-into (spaces, any frames first)", "double free in release_twice"}


def our_used(process: dict) -> frozenset[tuple[str, int, str, int, int, int]]:
    found = set()
    for used in process["suppressions_used"]:
        path, line = used["where"].rsplit(":", 1)
        found.add((used["name"], used["count"], path, int(line), used["bytes"], used["blocks"]))
    return frozenset(found)


def our_summary(process: dict) -> dict[str, tuple[int, int]]:
    return {k: (v["bytes"], v["blocks"]) for k, v in process["leak_summary"].items() if k in valgrind.SUMMARY_KEYS}


def generated_in_gdb(program: Path, setup: list[str] = ()) -> tuple[str, ...]:
    """The blocks gdb-memleak prints for every loss record and heap error of `program`, in GDB."""
    run = run_gdb(["set memleak default-suppressions off", "set memleak on-error skip", *setup, "memleak start",
                   "run", *GEN], program)
    assert "Traceback" not in run.stdout + run.stderr, run.stderr
    return tuple(sorted(BLOCK.findall(run.stdout)))


@pytest.mark.valgrind
@pytest.mark.skipif(not valgrind.available(), reason="valgrind not installed: comparison skipped")
def test_a_file_in_the_shapes_projects_ship_suppresses_what_valgrind_suppresses(built_targets: Path,
                                                                                 tmp_path: Path):
    supp = tmp_path / "shapes.supp"  # a path without spaces: valgrind's -v lines are split at them
    shutil.copy(SHAPES, supp)
    program = str(built_targets / "supp_shapes")
    theirs = valgrind.suppressed_run([program], [str(supp)])
    run = run_cli(["--no-default-suppressions", "--suppressions", str(supp), program], tmp_path)
    ours = run.process()
    assert our_summary(ours) == theirs.summary
    assert theirs.summary["suppressed"][1] and theirs.summary["definite"][1], "some hidden, some not"
    assert len(ours["errors"]) == theirs.heap_errors == 1
    assert our_used(ours) == theirs.used
    assert {name for name, *_ in theirs.used} == USED_IN_SHAPES


@pytest.mark.valgrind
@pytest.mark.skipif(not valgrind.available(), reason="valgrind not installed: comparison skipped")
@pytest.mark.parametrize("target", ["supp_shapes", "cpp_mismatch", "threads_kinds"])
def test_generated_blocks_are_the_ones_valgrind_generates(target: str, built_targets: Path):
    """C (libc frames between malloc and the program, a stack cut at 12 callers, Free errors), C++ (mangled names,
    mismatched releases, a libstdc++ frame without a symbol), threads (valgrind's stacks end in clone)."""
    program = built_targets / target
    assert generated_in_gdb(program) == valgrind.suppressed_run([str(program)], generate=True).generated


@pytest.mark.valgrind
@pytest.mark.skipif(not valgrind.available(), reason="valgrind not installed: comparison skipped")
def test_generated_blocks_read_back_hide_everything_in_valgrind_and_here(built_targets: Path, tmp_path: Path):
    program = built_targets / "supp_shapes"
    supp = tmp_path / "generated.supp"
    supp.write_text("\n".join(generated_in_gdb(program)) + "\n")
    theirs = valgrind.suppressed_run([str(program)], [str(supp)])
    hidden = theirs.summary["suppressed"]
    assert theirs.heap_errors == 0
    assert hidden[1] and all(theirs.summary[k] == (0, 0) for k in ("definite", "indirect", "possible", "reachable"))
    again = run_gdb([f"set memleak suppressions {supp}", "set memleak default-suppressions off",
                     "set memleak on-error skip", "memleak start", "run"], program)
    assert f"suppressed: {hidden[0]:,} bytes in {hidden[1]} blocks" in again.stdout, again.stdout
    assert "SUMMARY: no heap errors, no leaks of the kinds that count as errors" in again.stdout


@pytest.mark.valgrind
@pytest.mark.skipif(not valgrind.available(), reason="valgrind not installed: comparison skipped")
def test_valgrinds_own_blocks_hide_inlined_template_frames_here(built_targets: Path, tmp_path: Path):
    """An -O2 C++ program: valgrind names inlined calls by their DWARF names (`basic_string<>`, `push_back`)."""
    program = str(built_targets / "cpp_inlined_O2")
    theirs = valgrind.suppressed_run([program], generate=True)
    supp = tmp_path / "valgrind.supp"
    supp.write_text("\n".join(theirs.generated) + "\n")
    ours = run_cli(["--no-default-suppressions", "--suppressions", str(supp), program], tmp_path).process()
    total = sum(theirs.summary[k][1] for k in valgrind.SUMMARY_KEYS)
    assert our_summary(ours)["suppressed"][1] == total
    assert ours["errors"] == []


def test_a_suppressed_heap_error_is_not_printed_and_never_stops_the_program(built_targets: Path, tmp_path: Path):
    """Interactive (`memleak on-error stop`): the invalid free stops the program; the double free, which
    supp_shapes.supp hides, neither stops it nor is printed; `memleak errors` and `memleak status` count it."""
    run = run_gdb([f"set memleak suppressions {SHAPES}", "show memleak suppressions", "memleak start", "run",
                   "memleak skip", "continue", "memleak errors", "memleak status"], built_targets / "supp_shapes")
    out = run.stdout
    assert "Traceback" not in out + run.stderr, run.stderr
    assert "{grown-by-realloc} Memcheck:Leak fun:realloc src:supp_shapes.c:57" in out
    assert len(re.findall(r"^gdb-memleak: Invalid free of 0x", out, re.M)) == 1
    assert "Double free" not in out
    assert "gdb-memleak: 1 heap error hidden by suppressions." in out
    assert "heap errors: 1 (1 suppressed)" in out
    assert re.search(r"exited normally|exited with code 0", out), out
