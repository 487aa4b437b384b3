"""A forked child's tracking keeps its parent's clock: the blocks it inherits keep their ages.

The child starts with a copy of its parent's table, whose times count from the start of the parent's tracking; its
own `now` and new blocks must count from the same moment, or `leaks --older-than`, `memleak block` and the HTML
timeline give inherited blocks the wrong age in the child (a negative time, or an age that restarts at the fork).
c_targets/processes/fork_aged.c allocates a block, sleeps 1.5 s, forks; the child allocates one more and stops.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from conftest import ENGINES, TARGETS, run_gdb
from html_pages import embedded_data

SOURCE = TARGETS / "processes" / "fork_aged.c"
PAUSE = 1.5  # seconds between the first block and the fork (the target's nanosleep)


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    binary = tmp_path_factory.mktemp("fork_clock") / SOURCE.stem
    subprocess.run(["gcc", "-g", "-O0", "-fno-omit-frame-pointer", "-o", str(binary), str(SOURCE)], check=True)
    return binary


@pytest.fixture(scope="module", params=ENGINES)
def child_at_checkpoint(request: pytest.FixtureRequest, program: Path, tmp_path_factory: pytest.TempPathFactory):
    """GDB follows the child (the parent is kept) and stops it once it made its own block."""
    page = tmp_path_factory.mktemp("fork_clock_html") / "child.html"
    run = run_gdb([f"set memleak engine {request.param}", "memleak start", "set detach-on-fork off",
                   "set follow-fork-mode child", "break child_checkpoint", "run",
                   "echo @@old@@\\n", "leaks --older-than 1 --all",
                   "echo @@young@@\\n", "leaks --older-than 0 --all",
                   "echo @@block@@\\n", "memleak block young",
                   f"leaks --all --html {page}", "kill inferiors 1 2"],
                  program)
    assert "Traceback" not in run.stdout + run.stderr, run.stderr
    parts = re.split(r"^@@(\w+)@@$", run.stdout, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2])), embedded_data(page.read_text()), run


def header(text: str) -> tuple[int, int]:
    found = re.search(r"^LEAKS: ([\d,]+) bytes? in ([\d,]+) blocks?", text, re.M)
    assert found, text
    return int(found[1].replace(",", "")), int(found[2].replace(",", ""))


def test_an_inherited_block_is_as_old_in_the_child_as_in_the_parent(child_at_checkpoint):
    out, _, run = child_at_checkpoint
    assert re.search(r"hit Breakpoint 1(\.\d+)?, child_checkpoint", run.stdout), run.stdout + run.stderr
    assert header(out["young"]) == (96, 2), out["young"]     # the inherited 64 bytes and the child's 32
    assert header(out["old"]) == (64, 1), out["old"]         # only the inherited block is older than 1 s


def test_the_childs_own_block_is_new_on_the_same_clock(child_at_checkpoint):
    out, _, _ = child_at_checkpoint
    age = re.search(r"allocated by malloc as allocation #\d+ in thread \d+, ([\d.]+) s ago", out["block"])
    assert age, out["block"]
    assert float(age[1]) < 1.0, out["block"]


def test_the_childs_timeline_starts_with_the_parent_and_runs_forward(child_at_checkpoint):
    _, data, _ = child_at_checkpoint
    child, = data["processes"]
    times = [point[0] for point in child["timeline"]["points"]]
    assert times and min(times) >= 0, times                  # no point before the tracking began
    assert times == sorted(times), times                     # inherited points, then the child's own
    assert times[-1] >= PAUSE - 0.1, times                   # the child's block was made after the pause
