"""valgrind's leak-check heuristics on real programs: the targets' declared "of which reachable via heuristic"
figures, valgrind's own under the same --leak-check-heuristics, and the GDB setting."""

from __future__ import annotations

from pathlib import Path

import pytest

import expectations
import valgrind
from conftest import TARGETS, cached_cli, run_gdb

SOURCES = sorted([*TARGETS.glob("heuristic_*.c"), *TARGETS.glob("heuristic_*.cpp")])
# with interior_only.c: an interior pointer no heuristic accepts (its first word is 'xxxxxxxx') stays possible
COMPARED = [*SOURCES, TARGETS / "interior_only.c"]
LENGTH64 = expectations.parse(TARGETS / "heuristic_length64.c")


def figures(process: dict, key: str) -> dict[str, tuple[int, int]]:
    return {k: (v["bytes"], v["blocks"]) for k, v in process[key].items()}


def run(source: Path, built_targets: Path, engine: str, heuristics: str | None = None):
    expected = expectations.parse(source)
    option = ["--leak-check-heuristics", heuristics] if heuristics is not None else []
    return cached_cli(["--engine", engine, "--no-default-suppressions", *option, str(built_targets / expected.name),
                       *expected.args])


def test_every_heuristic_has_a_target():
    declared = {name for s in SOURCES for name, (_, n) in expectations.parse(s).heuristics.items() if n}
    assert declared == set(expectations.HEURISTICS)


@pytest.mark.parametrize("source", SOURCES, ids=[s.stem for s in SOURCES])
def test_heuristic_figures_equal_the_declared_ones(source: Path, built_targets: Path, engine: str):
    expected = expectations.parse(source)
    process = run(source, built_targets, engine).process()
    assert figures(process, "leak_summary") == expected.summary
    assert figures(process, "reachable_via_heuristic") == expected.heuristics


@pytest.mark.valgrind
@pytest.mark.skipif(not valgrind.available(), reason="valgrind not installed: comparison skipped")
@pytest.mark.parametrize("heuristics", ["all", "none", "stdstring,newarray"])
@pytest.mark.parametrize("source", COMPARED, ids=[s.stem for s in COMPARED])
def test_leak_summary_and_heuristic_figures_equal_valgrinds(source: Path, built_targets: Path, engine: str,
                                                            heuristics: str):
    expected = expectations.parse(source)
    argv = [str(built_targets / expected.name), *expected.args]
    process = run(source, built_targets, engine, heuristics).process()
    ours = figures(process, "leak_summary"), figures(process, "reachable_via_heuristic")
    assert ours == valgrind.leak_summary_with_heuristics(argv, heuristics)


def test_no_heuristics_make_the_blocks_possibly_lost_and_fail_the_run(built_targets: Path, engine: str):
    """What the heuristics change for the exit status: possibly lost blocks count as errors by default."""
    source = TARGETS / "heuristic_newarray.cpp"
    assert run(source, built_targets, engine).returncode == 1  # its own possibly lost block (`odd`)
    process = run(source, built_targets, engine, "none").process()
    summary = figures(process, "leak_summary")
    assert summary["possible"] == (48 + 68, 2)
    assert set(figures(process, "reachable_via_heuristic").values()) == {(0, 0)}


def test_setting_applies_from_the_next_scan_and_rejects_unknown_names(built_targets: Path, engine: str):
    lines = LENGTH64.source.read_text().splitlines()
    main_return = max(n for n, line in enumerate(lines, start=1) if "return 0;" in line)  # after scribble()
    run_ = run_gdb([f"set memleak engine {engine}", "set memleak leak-check-heuristics none", "memleak start",
                    f"break {LENGTH64.source}:{main_return}", "run",
                    "echo @@none@@\\n", "memleak check",
                    "set memleak leak-check-heuristics length64", "echo @@length64@@\\n", "memleak check",
                    "set memleak leak-check-heuristics sqlite", "echo @@show@@\\n",
                    "show memleak leak-check-heuristics", "echo @@end@@\\n"],
                   built_targets / LENGTH64.name)
    out = run_.stdout
    none, length64 = out.split("@@none@@")[1].split("@@length64@@")
    length64, show = length64.split("@@show@@")
    assert "possibly lost: 80 bytes in 2 blocks" in none and "via heuristic" not in none, out
    assert "possibly lost: 24 bytes in 1 blocks" in length64, out
    assert "still reachable: 56 bytes in 1 blocks" in length64, out
    assert "  length64           : 56 bytes in 1 blocks" in length64, out
    assert "leak-check heuristics applied are length64." in show.split("@@end@@")[0], out
    [error] = [line for line in run_.stderr.splitlines() if "sqlite" in line]
    assert "unknown heuristic 'sqlite'" in error
    assert "Traceback" not in run_.stderr
