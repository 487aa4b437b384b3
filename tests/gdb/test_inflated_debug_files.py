"""The batch CLI's inflated debug files (cli/debug_cache.py, cli/early.py): the first run keeps an inflated copy of
libc's compressed debug file, later runs' GDB reads that copy, and the reports are the same either way."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, run_cli

EARLY = ROOT / "gdb_memleak" / "cli" / "early.py"
SYSTEM_DEBUG = Path("/usr/lib/debug/.build-id")


def debug_files_read(program: Path, env: dict[str, str]) -> list[str]:
    """The separate debug files GDB reads for `program` at main, with the CLI's early settings."""
    probe = subprocess.run(
        ["gdb", "-nx", "-q", "-batch", "-ix", str(EARLY), "-ex", "break main", "-ex", "run",
         "-ex", "python print('OBJFILES', [o.filename for o in gdb.objfiles() if o.owner is not None])",
         "-ex", "kill", str(program)],
        capture_output=True, text=True, timeout=300, env={**os.environ, **env}, check=False)
    line = next(line for line in probe.stdout.splitlines() if line.startswith("OBJFILES"))
    return json.loads(line.split(" ", 1)[1].replace("'", '"'))


@pytest.mark.skipif(not SYSTEM_DEBUG.is_dir(), reason="no system debug files (libc6-dbg)")
def test_later_runs_read_the_inflated_copy_and_report_the_same_libc_frames(built_targets: Path, tmp_path: Path):
    program = built_targets / "libc_helpers"
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    copies = tmp_path / "cache" / "gdb-memleak" / "debug" / ".build-id"
    first = run_cli(["--engine", "breakpoint", str(program)], tmp_path, env=env)
    kept = sorted(copies.glob("*/*.debug"))
    assert kept, first.stderr  # libc's (and ld.so's) compressed debug files, inflated
    assert not list(copies.glob("*/*.partial"))
    read = debug_files_read(program, env)
    assert any(Path(path) in kept for path in read), read
    second = run_cli(["--engine", "breakpoint", str(program)], tmp_path, env=env)
    assert sorted(copies.glob("*/*.debug")) == kept
    frames = [frame for p in (first.report, second.report) for leak in p["processes"][0]["leaks"]
              for frame in leak["stack"]]
    assert any(frame.get("file", "").endswith("strdup.c") for frame in frames)
    for run in (first, second):
        for process in run.report["processes"]:
            process.pop("pid", None)
    assert first.report == second.report
