"""A heap error the recorder reports is recorded once, however often GDB presents its breakpoint hit.

Under parallel load GDB sometimes presented one hit of `memleak_agent_error` twice in a forked child (valgrind's
`noisy_child`: the child's double free listed twice in 6 of 24 runs; both presentations carried the same record:
same error number, thread and time). `jump` to the breakpoint's own address presents the same hit again on demand
(GDB does not step over a breakpoint at a jump's target), so the test does not depend on the race.
"""

from __future__ import annotations

import re
from pathlib import Path

from test_interactive import mark, sections

import expectations
from conftest import TARGETS, run_gdb

SEED = expectations.parse(TARGETS / "seed_demo.c")


def test_the_same_recorder_error_presented_twice_is_reported_and_counted_once(built_targets: Path):
    run = run_gdb(["set memleak engine agent", "memleak start", "run", "frame 0", mark("again"),
                   "jump *memleak_agent_error", mark("errors"), "memleak errors", "kill"], built_targets / "seed_demo")
    assert "Traceback" not in run.stderr, run.stderr
    out = sections(run.stdout)
    assert out[""].count("Double free of 0x") == 1 and re.search(r"^#0 .*memleak_agent_error", out[""], re.M), \
        run.stdout + run.stderr
    # presented again: not printed, not stopped at; the program runs on into glibc's own abort (on-error stop lets
    # the bad free happen)
    assert "Double free of 0x" not in out["again"].split("HEAP SUMMARY")[0], out["again"]
    assert "SIGABRT" in out["again"], out["again"]
    assert "SUMMARY: 1 heap error;" in out["again"], out["again"]
    assert out["errors"].count("Double free of 0x") == 1, out["errors"]
