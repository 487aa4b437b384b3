"""core/scan/backend.py's numpy_problem on a numpy found where the path names no Python version (a --target install,
GDB_MEMLEAK_PYTHONPATH): the version tags of its compiled core decide."""

from __future__ import annotations

import sys
from importlib.machinery import ModuleSpec
from pathlib import Path

import pytest

from gdb_memleak.core.scan import backend as backends


def fake_numpy(folder: Path, core: str, monkeypatch: pytest.MonkeyPatch) -> None:
    package = folder / "numpy"
    (package / "_core").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "_core" / core).write_bytes(b"")
    spec = ModuleSpec("numpy", None, origin=str(package / "__init__.py"))
    monkeypatch.setattr(backends.importlib.util, "find_spec", lambda name: spec if name == "numpy" else None)


def test_a_core_tagged_for_another_python_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    fake_numpy(tmp_path / "deps", "_multiarray_umath.cpython-399-x86_64-linux-gnu.so", monkeypatch)
    problem = backends.numpy_problem()
    assert problem is not None and "\n" not in problem
    assert problem.startswith(f"numpy in {tmp_path / 'deps'} is built for Python 3.99, this is Python 3.")


def test_a_core_tagged_for_this_python_is_usable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    tag = f"{sys.version_info[0]}{sys.version_info[1]}"
    fake_numpy(tmp_path / "deps", f"_multiarray_umath.cpython-{tag}-x86_64-linux-gnu.so", monkeypatch)
    assert backends.numpy_problem() is None
