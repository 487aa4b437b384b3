"""Deltas and growth in GDB on a real program (c_targets/growth/growth_steps.c): stopped at each step's end,
`memleak check --increased` and `leaks --changed` give each loss record's change since the previous stop, exactly
what the program did in between; `leaks --growing` ranks the leaking site and drops the cache once it plateaus;
the end-of-run report has the GROWING section. Both engines, one GDB run each, the same words."""

from __future__ import annotations

import re

import pytest
from test_interactive import leak_summary, mark, sections

import expectations
from conftest import ENGINES, TARGETS, compile_target, run_gdb

SOURCE = TARGETS / "growth" / "growth_steps.c"
EXPECTED = expectations.parse(SOURCE)
DEFINES = expectations.defines(SOURCE)
STEPS, LEAK_SIZE, CACHE_CAP, ENTRY_SIZE = (DEFINES[k] for k in ("STEPS", "LEAK_SIZE", "CACHE_CAP", "ENTRY_SIZE"))
PLATEAU_SEEN = CACHE_CAP + 2  # the first stop after two intervals without growth (core/growth.py RECENT)

_FIGURE = r"(?P<{0}>[\d,]+)(?: \((?P<d{0}>[+-][\d,]+)\))?"
ROW = re.compile(rf"^(?P<kind>definitely lost|still reachable)\s+{_FIGURE.format('bytes')}\s+"
                 rf"{_FIGURE.format('blocks')}\s+malloc\s+(?:#\d+|-)\s+(?P<function>\w+) \(")
RECORD = re.compile(rf"^{_FIGURE.format('bytes')} bytes? in {_FIGURE.format('blocks')} blocks? are "
                    rf"(?P<kind>definitely lost|still reachable), allocated by malloc \([^)]*\)\n"
                    rf"   at 0x[0-9a-f]+: (?P<function>\w+) \(", re.M)
GROWING_ROW = re.compile(r"^ *\+[\d,.]+ +[\d,]+ +[\d,]+ +\d+ of \d+ +malloc +(?P<function>\w+) \(", re.M)
# per-run values (seconds, rates, the pid) and the column widths they set
RUN_SPECIFIC = [(re.compile(r"[+-]?[\d,]*\d\.\d+"), "N"), (re.compile(r"process \d+"), "process P"),
                (re.compile(r"^ +| +$", re.M), ""), (re.compile(r" +"), " "), (re.compile(r"-{2,}"), "--")]


def figures(match: re.Match) -> tuple:
    """(bytes, delta, blocks, delta) of a row or record; a delta is None when none is shown."""
    def number(text: str | None) -> int | None:
        return None if text is None else int(text.replace(",", ""))
    return tuple(number(match[g]) for g in ("bytes", "dbytes", "blocks", "dblocks"))


def records(text: str) -> dict[str, tuple]:
    """`leaks --stack` records as {allocating function: figures}."""
    return {m["function"]: figures(m) for m in RECORD.finditer(text)}


def rows(text: str) -> dict[str, tuple]:
    """`leaks` table rows as {allocating function: figures}."""
    return {m["function"]: figures(m) for m in map(ROW.match, text.splitlines()) if m}


def growing(text: str) -> list[str]:
    return [m["function"] for m in GROWING_ROW.finditer(text)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """Each engine's GDB session: at every step_done stop a delta check, the records that changed (every kind,
    full stacks) and the growth ranking, then on to the end-of-run report."""
    program = compile_target(SOURCE, tmp_path_factory.mktemp("growth"))
    found = {}
    for engine in ENGINES:
        commands = [f"set memleak engine {engine}", "memleak start", "break step_done", "run"]
        for step in range(1, STEPS + 1):
            commands += [mark(f"check{step}"), "memleak check --increased", mark(f"changed{step}"),
                         "leaks --changed --all --stack", mark(f"growing{step}"), "leaks --growing", mark(f"end{step}"),
                         "continue"]
        run = run_gdb(commands, program)
        assert "Traceback" not in run.stdout + run.stderr, run.stdout + run.stderr
        found[engine] = sections(run.stdout)
    return found


@pytest.mark.parametrize("engine", ENGINES)
def test_a_delta_check_shows_what_each_step_added_to_the_leak(runs, engine: str):
    for step in range(1, STEPS + 1):
        check = runs[engine][f"check{step}"]
        delta = (LEAK_SIZE, 1) if step > 1 else (None, None)
        assert rows(check) == {"leak_one": (LEAK_SIZE * step, delta[0], step, delta[1])}, check
        assert ("no earlier check" in check) == (step == 1), check
        if step > 1:
            assert f"definitely lost: {LEAK_SIZE * step:,} (+{LEAK_SIZE}) bytes in {step} (+1) blocks" in check


@pytest.mark.parametrize("engine", ENGINES)
def test_changed_records_are_the_leak_and_the_cache_while_it_fills_never_the_churn(runs, engine: str):
    first = records(runs[engine]["changed1"])
    assert set(first) == {"leak_one", "cache_put", "churn"} and all(f[1] is None for f in first.values())
    for step in range(2, STEPS + 1):
        expected = {"leak_one": (LEAK_SIZE * step, LEAK_SIZE, step, 1)}
        if step <= CACHE_CAP:
            expected["cache_put"] = (ENTRY_SIZE * step, ENTRY_SIZE, step, 1)
        assert records(runs[engine][f"changed{step}"]) == expected, runs[engine][f"changed{step}"]


@pytest.mark.parametrize("engine", ENGINES)
def test_the_leak_keeps_growing_and_the_cache_drops_out_once_it_plateaus(runs, engine: str):
    assert "needs 3 checkpoints" in runs[engine]["growing2"]
    for step in range(3, STEPS + 1):
        ranked = growing(runs[engine][f"growing{step}"])
        if step < PLATEAU_SEEN:
            assert sorted(ranked) == ["cache_put", "leak_one"], runs[engine][f"growing{step}"]
        else:
            assert ranked == ["leak_one"], runs[engine][f"growing{step}"]


@pytest.mark.parametrize("engine", ENGINES)
def test_the_end_of_run_report_ranks_the_leak_and_counts_as_valgrind(runs, engine: str):
    end = runs[engine][f"end{STEPS}"]
    assert growing(end.split("GROWING: ", 1)[1]) == ["leak_one"], end
    assert leak_summary(end) == EXPECTED.summary


def test_both_engines_say_the_same(runs):
    def comparable(found: dict[str, str]) -> dict[str, str]:
        texts = {}
        for name, text in found.items():
            for pattern, replacement in RUN_SPECIFIC:
                text = pattern.sub(replacement, text)
            texts[name] = text
        return texts

    assert comparable(runs["agent"]) == comparable(runs["breakpoint"])
