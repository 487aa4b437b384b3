"""The batch CLI on every C target: findings as the target declares them, heap figures as valgrind counts them."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import pytest

import expectations
import valgrind
from conftest import TARGETS, run_cli

SOURCES = sorted(TARGETS.glob("*.c"))


def first_user_frame(stack: list[dict]) -> dict:
    for frame in stack:
        if frame["file"] and frame["file"].startswith(str(TARGETS)):
            return frame
    return stack[0]


def leaks_by_line(process: dict) -> dict[tuple[str, int], tuple[int, int]]:
    found: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
    for leak in process["leaks"]:
        frame = first_user_frame(leak["stack"])
        key = (os.path.basename(frame["file"] or frame["object"]), frame["line"])
        found[key][0] += leak["bytes"]
        found[key][1] += leak["blocks"]
    return {k: tuple(v) for k, v in found.items()}


@pytest.mark.parametrize("source", SOURCES, ids=[s.stem for s in SOURCES])
def test_target_findings_match_its_declared_expectations(source: Path, built_targets: Path, tmp_path: Path):
    expected = expectations.parse(source)
    run = run_cli([str(built_targets / expected.name), *expected.args], tmp_path)
    process = run.process()
    assert process["exit"] == expected.exit, run.stderr
    want_leaks = {(source.name, line): v for line, v in expected.leaks.items()}
    assert leaks_by_line(process) == want_leaks, run.stderr
    errors = [(e["type"], first_user_frame(e["stack"])["line"]) for e in process["errors"]]
    want_errors = [("double_free", line) for line in expected.double_frees.values()]
    want_errors += [("invalid_free", line) for line in expected.invalid_frees]
    assert sorted(errors) == sorted(want_errors), run.stderr
    for error in process["errors"]:
        if error["type"] == "double_free":
            tag = next(t for t, line in expected.double_frees.items() if line == first_user_frame(error["stack"])["line"])
            assert first_user_frame(error["alloc_stack"])["line"] == expected.marks[("alloc", tag)]
            assert first_user_frame(error["free_stack"])["line"] == expected.marks[("free", tag)]
    if expected.has_findings:
        assert run.returncode == 1
    else:
        assert expected.clean
        assert run.returncode == expected.exit.get("code", 0)


@pytest.mark.valgrind
@pytest.mark.skipif(not valgrind.available(), reason="valgrind not installed: comparison skipped")
@pytest.mark.parametrize("source", SOURCES, ids=[s.stem for s in SOURCES])
def test_heap_totals_and_in_use_equal_valgrinds(source: Path, built_targets: Path, tmp_path: Path):
    expected = expectations.parse(source)
    argv = [str(built_targets / expected.name), *expected.args]
    ours = valgrind.our_figures(run_cli(argv, tmp_path).process())
    assert ours == valgrind.heap_figures(argv)
