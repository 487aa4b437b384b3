"""The README's two-minute tour, typed as written in the checkout after `scripts/dev demo`, against real GDB.

The tour's `$` lines run in bash with a fresh HOME (its ~/.gdbinit is the one the tour writes), the `(gdb)` lines are
typed at GDB's prompt, and every other line the README shows must appear, in order, in what GDB prints. In the
README `…` stands for any text (paths as /…/) and a hex address for any address.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

import expectations
from conftest import ROOT, TARGETS

PROMPT = "(gdb) "
ANSI = re.compile(r"\x1b\[[0-9;]*m")
GDB_ERRORS = ("Undefined command", "not loaded", "Is a directory", "No such file", "Traceback", "Invalid character",
              "Error")


@dataclass
class Tour:
    shell: list[str]  # the `$ ` lines, run in bash
    gdb: list[str]    # the `(gdb) ` lines, typed at GDB's prompt
    shown: list[str]  # every other non-blank line: what the README says appears


def read_tour(readme: str) -> Tour:
    """The first code block of the README's "Two-minute tour" section (the interactive one)."""
    section = readme.split("\n## Two-minute tour\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"^```\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    assert match, "the tour section has no code block"
    tour = Tour([], [], [])
    for line in match.group(1).splitlines():
        if line.startswith("$ "):
            tour.shell.append(line[2:])
        elif line.startswith(PROMPT):
            tour.gdb.append(line[len(PROMPT):])
        elif line.strip():
            tour.shown.append(line.rstrip())
    return tour


def shown_pattern(line: str) -> re.Pattern[str]:
    parts = re.split(r"(…|0x[0-9a-f]+)", line)
    return re.compile("".join(".*" if part == "…" else "0x[0-9a-f]+" if re.fullmatch("0x[0-9a-f]+", part)
                              else re.escape(part) for part in parts))


def first_line_not_printed(shown: list[str], printed: list[str]) -> str | None:
    at = 0
    for line in shown:
        pattern = shown_pattern(line)
        found = next((i for i in range(at, len(printed)) if pattern.fullmatch(printed[i])), None)
        if found is None:
            return line
        at = found + 1
    return None


def printed_lines(output: str) -> list[str]:
    """GDB's output as a terminal shows it, minus the prompts (typed commands are not echoed from a pipe)."""
    lines = []
    for line in ANSI.sub("", output).splitlines():
        while line.startswith(PROMPT):
            line = line[len(PROMPT):]
        lines.append(line.rstrip())
    return lines


TOUR = read_tour((ROOT / "README.md").read_text())
TERMINAL_COLUMNS = 4096 + 200  # a path (PATH_MAX) and the rest of a frame's line
SEED = expectations.parse(TARGETS / "seed_demo.c")


@pytest.fixture(scope="module")
def tour_output(built_targets: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    if not (ROOT / ".venv" / "bin" / "activate").is_file():
        pytest.skip("the tour starts after `scripts/dev demo`, which makes .venv in the checkout (none here)")
    home = tmp_path_factory.mktemp("home")
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "GDB_MEMLEAK_PYTHONPATH", "PYTHONPATH", "PYTHONHOME", "DEBUGINFOD_URLS")}
    # A terminal wider than any line GDB prints here: GDB wraps lines at the terminal's width, and through a pipe
    # it assumes 80 columns, so a frame naming a file of a checkout at a longer path than /work/x would be split
    # in two where the README shows one line (GDB takes the width from COLUMNS).
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), COLUMNS=str(TERMINAL_COLUMNS))
    typed = "".join(f"{command}\n" for command in TOUR.gdb)
    run = subprocess.run(["bash", "-c", "set -e\n" + "\n".join(TOUR.shell)], input=typed, check=False, cwd=ROOT,
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert run.returncode == 0, run.stdout
    return run.stdout


def test_readme_tour_starts_by_loading_the_plugin_with_source_gdb_memleak():
    assert TOUR.gdb[0] == "source gdb_memleak"
    assert TOUR.gdb[1:3] == ["memleak start", "run"]


def test_readme_tour_commands_run_without_an_error(tour_output: str):
    errors = [line for line in printed_lines(tour_output) if any(e in line for e in GDB_ERRORS)]
    assert errors == [], tour_output


def test_readme_tour_shows_what_gdb_prints(tour_output: str):
    assert len(TOUR.shown) >= 15, TOUR.shown
    missing = first_line_not_printed(TOUR.shown, printed_lines(tour_output))
    assert missing is None, f"the README shows\n{missing}\nbut GDB printed (after the lines before it):\n{tour_output}"


def test_readme_tour_line_numbers_are_those_seed_demo_marks():
    # the README's seed_demo.c:N in the order it shows them: the bad free, the first free, the allocation, the leak
    (leak_line,) = SEED.leaks
    expected = [SEED.double_frees["p4"], SEED.marks[("free", "p4")], SEED.marks[("alloc", "p4")],
                SEED.double_frees["p4"], leak_line]
    cited = [int(n) for line in TOUR.shown for n in re.findall(r"seed_demo\.c:(\d+)", line)]
    assert cited == expected
    source = (TARGETS / "seed_demo.c").read_text().splitlines()
    context = [(int(m.group(1)), m.group(2)) for line in TOUR.shown
               if (m := re.fullmatch(r"  [ >] +(\d+) \| (.*)", line))]
    assert [n for n, _ in context] == [leak_line - 1, leak_line, leak_line + 1]
    for number, text in context:
        assert shown_pattern(text).fullmatch(source[number - 1]), (number, text)
