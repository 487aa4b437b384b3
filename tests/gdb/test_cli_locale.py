"""The program under the batch CLI gets exactly the caller's environment even under the C locale (issue 16 item 3):
Python sets LC_CTYPE=C.UTF-8 in its own environment at start-up when LC_ALL is unset and LC_CTYPE is the C locale
(PEP 538), and both the CLI and the exec shim are Python; the program must not inherit that."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

CLI = [sys.executable, "-m", "gdb_memleak.cli.main"]


@pytest.mark.parametrize("locale", [{}, {"LANG": "C"}, {"LC_CTYPE": "POSIX"}, {"LC_CTYPE": "C", "LANG": "C.UTF-8"}],
                         ids=["unset", "LANG_C", "LC_CTYPE_POSIX", "LC_CTYPE_C"])
def test_c_locale_environment_is_the_callers(tmp_path: Path, engine: str, locale: dict[str, str]):
    env = {"PATH": "/usr/bin:/bin", **locale}
    native = subprocess.run(["/usr/bin/env"], env=env, capture_output=True, text=True, check=True).stdout
    under = subprocess.run([*CLI, "--engine", engine, "--", "/usr/bin/env"], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert under.returncode == 0, under.stderr
    assert sorted(under.stdout.splitlines()) == sorted(native.splitlines())


def test_c_locale_program_counts_bytes_as_natively(tmp_path: Path, engine: str):
    """`wc -m` under the C locale counts bytes: 6 for "été\\n" (4 characters under C.UTF-8)."""
    text = tmp_path / "f"
    text.write_text("été\n", encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin"}
    native = subprocess.run(["wc", "-m", str(text)], env=env, capture_output=True, text=True, check=True).stdout
    assert native.split()[0] == "6"
    under = subprocess.run([*CLI, "--engine", engine, "--", "wc", "-m", str(text)], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert under.stdout == native, under.stderr
