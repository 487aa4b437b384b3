"""The recorder in the environment of the program GDB starts (gdb/preload.py): `memleak start` puts it first in
LD_PRELOAD, ahead of the user's own entries and only once however often it is said; `memleak stop` gives the user's
value back with the recorder's settings unset; a recorder that cannot be built leaves the environment alone and the
breakpoint engine says why, in the compiler's words."""

from __future__ import annotations

import os
import re
from pathlib import Path

from test_engine_choice import engine_lines

from conftest import run_gdb

USER_PRELOAD = "/opt/a.so:/old/librecorder.so:/opt/b.so"  # a stale recorder entry is dropped, the others kept


def test_the_users_preload_is_kept_behind_the_recorder_and_given_back_at_stop(built_targets: Path):
    run = run_gdb([f"set environment LD_PRELOAD={USER_PRELOAD}", "memleak break-alloc 5", "memleak start",
                   "show environment LD_PRELOAD", "show environment GDB_MEMLEAK_AGENT_BREAK_ALLOC",
                   "memleak break-alloc off", "show environment GDB_MEMLEAK_AGENT_BREAK_ALLOC",
                   "memleak start", "show environment LD_PRELOAD",
                   "memleak stop", "show environment LD_PRELOAD", "show environment GDB_MEMLEAK_AGENT_DEPTH",
                   "memleak break-alloc 7", "show environment GDB_MEMLEAK_AGENT_BREAK_ALLOC"],
                  built_targets / "seed_demo")
    shown = [line for line in run.stdout.splitlines() if not line.startswith("gdb-memleak: ")]
    with_recorder = r"LD_PRELOAD = /\S+/librecorder\.so:/opt/a\.so:/opt/b\.so"
    unset = 'Environment variable "{}" not defined.'
    expected = [with_recorder, re.escape("GDB_MEMLEAK_AGENT_BREAK_ALLOC = 5"),
                re.escape(unset.format("GDB_MEMLEAK_AGENT_BREAK_ALLOC")),
                with_recorder,
                re.escape("LD_PRELOAD = /opt/a.so:/opt/b.so"), re.escape(unset.format("GDB_MEMLEAK_AGENT_DEPTH")),
                re.escape(unset.format("GDB_MEMLEAK_AGENT_BREAK_ALLOC"))]
    assert len(shown) == len(expected), run.stdout + run.stderr
    for line, pattern in zip(shown, expected):
        assert re.fullmatch(pattern, line), (line, run.stdout + run.stderr)


def test_a_recorder_that_cannot_be_built_leaves_the_environment_alone(built_targets: Path, tmp_path: Path):
    env = {**os.environ, "CC": "false", "XDG_CACHE_HOME": str(tmp_path)}
    env.pop("LD_PRELOAD", None)
    run = run_gdb(["memleak start", "show environment LD_PRELOAD", "set memleak on-error skip",
                   "catch syscall exit_group", "run", "memleak status", "continue"], built_targets / "seed_demo",
                  env=env)
    assert 'Environment variable "LD_PRELOAD" not defined.' in run.stdout, run.stdout
    assert engine_lines(run.stderr) == ["gdb-memleak: cannot build the recorder with false: exit status 1: using the "
                                        "breakpoint engine."], run.stderr
    assert "tracking (breakpoint engine)" in run.stdout, run.stdout
    assert "total heap usage: 4 allocs, 4 frees, 100 bytes allocated" in run.stdout, run.stdout
