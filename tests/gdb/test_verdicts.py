"""Verdicts valgrind gives that need more than one c_target's markers: forked children, heap error context."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

import valgrind
from conftest import TARGETS, run_cli

PROCESSES = TARGETS / "processes"


def compile_c(source: Path, out: Path) -> Path:
    program = out / source.stem
    subprocess.run(["gcc", "-g", "-O0", "-fno-omit-frame-pointer", "-o", str(program), str(source)], check=True)
    return program


def summary(process: dict) -> dict[str, tuple[int, int]]:
    return {k: (v["bytes"], v["blocks"]) for k, v in process["leak_summary"].items()}


def valgrind_summaries_per_process(argv: list[str]) -> list[dict[str, tuple[int, int]]]:
    proc = subprocess.run(["valgrind", "--trace-children=yes", *valgrind.LEAK_FLAGS, *argv], capture_output=True,
                          text=True, timeout=300)
    found: dict[str, dict[str, tuple[int, int]]] = {}
    for key, label in (("definite", "definitely lost"), ("indirect", "indirectly lost"),
                       ("possible", "possibly lost"), ("reachable", "still reachable"), ("suppressed", "suppressed")):
        for pid, b, n in re.findall(rf"==(\d+)== +{label}: ([\d,]+) bytes in ([\d,]+) blocks", proc.stderr):
            found.setdefault(pid, {})[key] = (int(b.replace(",", "")), int(n.replace(",", "")))
    for pid in re.findall(r"==(\d+)== All heap blocks were freed", proc.stderr):
        found[pid] = {key: (0, 0) for key in valgrind.SUMMARY_KEYS}
    return sorted(found.values(), key=sorted)


def test_forked_childs_caller_saved_registers_at_exit_are_no_roots(tmp_path: Path):
    program = compile_c(PROCESSES / "fork_exit_registers.c", tmp_path)
    run = run_cli(["--no-default-suppressions", str(program)], tmp_path)
    child = next(p for p in run.report["processes"] if p["in_use_at_exit"]["bytes"] == 222)
    assert summary(child)["definite"] == (222, 1), run.stderr
    assert summary(child)["reachable"] == (0, 0)


@pytest.mark.valgrind
@pytest.mark.skipif(not valgrind.available(), reason="valgrind not installed: comparison skipped")
def test_forked_child_at_exit_leak_summary_equals_valgrinds(tmp_path: Path):
    program = compile_c(PROCESSES / "fork_exit_registers.c", tmp_path)
    ours = run_cli(["--no-default-suppressions", str(program)], tmp_path).report["processes"]
    assert sorted((summary(p) for p in ours), key=sorted) == valgrind_summaries_per_process([str(program)])
