"""Which implementation of the scan runs: numpy's (numpy_scan.py) when GDB's Python can import numpy, else the pure
Python one (pure.py). Found out once, cheaply at load time (numpy_problem) and for good at the first scan."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from typing import Any

BACKEND = "auto"  # "auto": numpy when usable (numpy_scan.py), else pure Python; "python"; "numpy" (tests)
_backend: tuple[Any, str | None] | None = None


PURE_SCAN = "the reachability scan runs in pure Python (slower on large heaps)"


def numpy_problem() -> str | None:
    """Why the numpy scan cannot run, found without importing numpy (cheap enough for load time): numpy (a
    dependency) is missing from this Python, or is a compiled build for another Python version. GDB embeds the
    system Python, which may not be the virtualenv's. None when numpy looks usable (its import may still fail:
    `numpy_backend` says so then)."""
    here = sys.version_info[:2]
    try:
        spec = importlib.util.find_spec("numpy")
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.origin is None:
        return f"numpy is not installed for GDB's Python ({sys.executable or 'python'} {sys.version.split()[0]}): " \
               f"{PURE_SCAN}"
    package = os.path.dirname(spec.origin)
    built = re.search(r"[/\\]python(\d+)\.(\d+)[/\\]", spec.origin)
    # no version in the path (a --target install, GDB_MEMLEAK_PYTHONPATH): ask its compiled core
    versions = {(built[1], built[2])} if built else _core_versions(package)
    if versions and (str(here[0]), str(here[1])) not in versions:
        major, minor = sorted(versions)[0]
        return (f"numpy in {os.path.dirname(package)} is built for Python {major}.{minor}, this is Python "
                f"{here[0]}.{here[1]}: {PURE_SCAN}")
    return None


def _core_versions(package: str) -> set[tuple[str, str]]:
    """The CPython versions numpy's compiled core is built for (numpy 2: _core/, numpy 1: core/), from the version
    tags of its file names (`_multiarray_umath.cpython-311-x86_64-linux-gnu.so`); empty when untagged."""
    versions: set[tuple[str, str]] = set()
    for folder in ("_core", "core"):
        try:
            names = os.listdir(os.path.join(package, folder))
        except OSError:
            continue
        for name in names:
            tag = re.match(r"_multiarray_umath\.cpython-(\d)(\d+)", name)
            if tag:
                versions.add((tag[1], tag[2]))
    return versions


def numpy_backend() -> tuple[Any, str | None]:
    """(the numpy scan module, numpy_scan.py, or None; why not, when numpy is installed but unusable)."""
    global _backend
    if _backend is not None:
        return _backend
    problem = numpy_problem()
    if problem is not None:
        _backend = (None, problem)
        return _backend
    try:
        from . import numpy_scan
    except Exception as error:  # a broken or mismatched build raises ImportError, or worse
        text = str(error).strip().splitlines()
        _backend = (None, f"numpy cannot be imported ({text[0] if text else type(error).__name__}): {PURE_SCAN}")
        return _backend
    _backend = (numpy_scan, None)
    return _backend

