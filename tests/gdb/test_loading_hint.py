"""The loader's one line when GDB's Python cannot import pygments or tabulate names a command that works on this
system (issue 16 item 15): not GDB's `sys.executable` (Debian 12's GDB reports /usr/bin/python, which does not
exist) and not the system Python's pip (externally managed, PEP 668), but the pip of the virtualenv that holds the
gdb-memleak the ~/.gdbinit line names."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, run_gdb

HIDE_TABULATE = "python import sys; sys.modules['tabulate'] = None"  # as if it were not installed


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if k not in ("GDB_MEMLEAK_PYTHONPATH", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}


def notice(stderr: str) -> str:
    [line] = [line for line in stderr.splitlines() if line.startswith("gdb-memleak: not loaded:")]
    return line


def command_in(line: str) -> list[str]:
    """The shell command the line gives (between backquotes, the last one), split as a shell would."""
    import shlex

    return shlex.split(re.findall(r"`([^`]+)`", line)[-1])


@pytest.mark.slow
def test_hint_in_a_virtualenv_install_is_that_virtualenvs_pip(tmp_path: Path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    site = next((venv / "lib").glob("python3*/site-packages"))
    shutil.copytree(ROOT / "gdb_memleak", site / "gdb_memleak", ignore=shutil.ignore_patterns("__pycache__"))
    run = run_gdb([HIDE_TABULATE, f"directory {site / 'gdb_memleak' / 'source-path'}", "source gdb_memleak"],
                  cwd=tmp_path, load=None, deps=False, env=clean_env())
    line = notice(run.stderr)
    assert "cannot import tabulate." in line and "/usr/bin/python " not in line, line
    command = command_in(line)
    assert command[:4] == [str(venv / "bin" / "python"), "-m", "pip", "install"], line
    assert command[4:] == ["tabulate>=0.9"], line
    pip = subprocess.run([*command[:3], "--version"], capture_output=True, text=True, timeout=120)
    assert pip.returncode == 0 and str(venv) in pip.stdout, pip.stdout + pip.stderr


def test_hint_names_no_interpreter_that_does_not_exist(tmp_path: Path):
    """From a checkout with no virtualenv beside it and none active: every program the line names exists."""
    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT / "gdb_memleak", checkout / "gdb_memleak", ignore=shutil.ignore_patterns("__pycache__"))
    run = run_gdb([HIDE_TABULATE, f"directory {checkout / 'gdb_memleak' / 'source-path'}", "source gdb_memleak"],
                  cwd=tmp_path, load=None, deps=False, env=clean_env())
    line = notice(run.stderr)
    for command in re.findall(r"`([^`]+)`", line):
        first = command.split()[0]
        if first not in (".", "VENV/bin/activate"):
            assert shutil.which(first), (first, line)
    assert "/usr/bin/python " not in line and "-m venv" in line, line
