"""The batch CLI on every C target: findings as the target declares them, heap figures as valgrind counts them."""

from __future__ import annotations

import os
import signal
from collections import defaultdict
from pathlib import Path

import pytest

import expectations
import valgrind
from conftest import TARGETS, run_cli

SOURCES = sorted([*TARGETS.glob("*.c"), *TARGETS.glob("*.cpp")])
ERROR_KINDS = {"definite", "possible"}  # valgrind's default --errors-for-leak-kinds


def first_user_frame(stack: list[dict]) -> dict:
    for frame in stack:
        if frame["file"] and frame["file"].startswith(str(TARGETS)):
            return frame
    return stack[0]


def leaks_by_line(process: dict) -> dict[tuple[str, int], tuple[int, int, str]]:
    found: dict[tuple[str, int], list] = defaultdict(lambda: [0, 0, set()])
    for leak in process["leaks"]:
        frame = first_user_frame(leak["stack"])
        key = (os.path.basename(frame["file"] or frame["object"]), frame["line"])
        found[key][0] += leak["bytes"]
        found[key][1] += leak["blocks"]
        found[key][2].add(leak["kind"])
    return {k: (v[0], v[1], "/".join(sorted(v[2]))) for k, v in found.items()}


def exit_status(ending: dict) -> int:
    return ending["code"] if "code" in ending else 128 + int(getattr(signal, ending["signal"]))


@pytest.mark.parametrize("source", SOURCES, ids=[s.stem for s in SOURCES])
def test_target_findings_match_its_declared_expectations(source: Path, built_targets: Path, tmp_path: Path):
    expected = expectations.parse(source)
    run = run_cli([str(built_targets / expected.name), *expected.args], tmp_path)
    process = run.process()
    ending = expected.cli_exit or expected.exit
    assert process["exit"] == ending, run.stderr
    found = leaks_by_line(process)
    want = {(source.name, line): (b, n, kind or found.get((source.name, line), (0, 0, "?"))[2])
            for line, (b, n, kind) in expected.leaks_with_kinds().items()}
    assert found == want, run.stderr
    errors = [(e["type"], first_user_frame(e["stack"])["line"]) for e in process["errors"]]
    want_errors = [("double_free", line) for line in expected.double_frees.values()]
    want_errors += [("invalid_free", line) for line in expected.invalid_frees]
    assert sorted(errors) == sorted(want_errors), run.stderr
    for error in process["errors"]:
        if error["type"] == "double_free":
            tag = next(t for t, line in expected.double_frees.items() if line == first_user_frame(error["stack"])["line"])
            assert first_user_frame(error["alloc_stack"])["line"] == expected.marks[("alloc", tag)]
            assert first_user_frame(error["free_stack"])["line"] == expected.marks[("free", tag)]
    counted = errors or any(kind in ERROR_KINDS for _, _, kind in found.values())
    assert run.returncode == (1 if counted else exit_status(ending)), run.stderr
    if expected.clean:
        assert not found and not errors


@pytest.mark.valgrind
@pytest.mark.skipif(not valgrind.available(), reason="valgrind not installed: comparison skipped")
@pytest.mark.parametrize("source", SOURCES, ids=[s.stem for s in SOURCES])
def test_heap_totals_and_in_use_equal_valgrinds(source: Path, built_targets: Path, tmp_path: Path):
    expected = expectations.parse(source)
    argv = [str(built_targets / expected.name), *expected.args]
    ours = valgrind.our_figures(run_cli(argv, tmp_path).process())
    assert ours == valgrind.heap_figures(argv)


@pytest.mark.parametrize("source", SOURCES, ids=[s.stem for s in SOURCES])
def test_leak_summary_equals_the_declared_one(source: Path, built_targets: Path, tmp_path: Path):
    """Leak kinds by reachability, default suppressions off (valgrind has none for leaks)."""
    expected = expectations.parse(source)
    if expected.summary is None:
        pytest.skip("target declares no expect-summary")
    run = run_cli(["--no-default-suppressions", str(built_targets / expected.name), *expected.args], tmp_path)
    summary = {k: (v["bytes"], v["blocks"]) for k, v in run.process()["leak_summary"].items()}
    assert summary == expected.summary, run.stderr


@pytest.mark.valgrind
@pytest.mark.skipif(not valgrind.available(), reason="valgrind not installed: comparison skipped")
@pytest.mark.parametrize("source", SOURCES, ids=[s.stem for s in SOURCES])
def test_leak_summary_equals_valgrinds(source: Path, built_targets: Path, tmp_path: Path):
    expected = expectations.parse(source)
    argv = [str(built_targets / expected.name), *expected.args]
    run = run_cli(["--no-default-suppressions", *argv], tmp_path)
    summary = {k: (v["bytes"], v["blocks"]) for k, v in run.process()["leak_summary"].items()}
    assert summary == valgrind.leak_summary(argv), run.stderr
