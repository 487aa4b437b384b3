"""Load gdb-memleak into GDB: the GDB script `gdb_memleak` (`source gdb_memleak`) sources this file.

GDB embeds the system Python, not a virtualenv's. This script makes the package and its dependencies importable
there: the checkout or site-packages holding this file, the active virtualenv (`VIRTUAL_ENV`), and any directories
in `GDB_MEMLEAK_PYTHONPATH`. If pygments or tabulate still cannot be imported it says so in one line and loads
nothing. Sourcing it again does nothing more.
"""

from __future__ import annotations

import glob
import importlib
import os
import site
import sys

REQUIRED = {"pygments": (2, 0), "tabulate": (0, 9)}  # tabulate 0.9: intfmt


def _extend_path() -> None:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    dirs = [d for d in os.environ.get("GDB_MEMLEAK_PYTHONPATH", "").split(os.pathsep) if d]
    venv = os.environ.get("VIRTUAL_ENV")
    if venv:
        dirs += sorted(glob.glob(os.path.join(venv, "lib", "python3*", "site-packages")))
    for directory in dirs:
        if os.path.isdir(directory) and directory not in sys.path:
            site.addsitedir(directory)  # also runs .pth files (editable installs)
    if here not in sys.path:
        sys.path.insert(0, here)


def _load() -> None:
    import gdb

    _extend_path()
    missing = []
    for name, minimum in REQUIRED.items():
        try:
            module = importlib.import_module(name)
        except ImportError:
            missing.append(name)
            continue
        version = tuple(int(p) for p in getattr(module, "__version__", "0").split(".")[:2] if p.isdigit())
        if version < minimum:
            missing.append(f"{name}>={'.'.join(map(str, minimum))} (found {module.__version__})")
    if missing:
        gdb.write(
            f"gdb-memleak: not loaded: GDB's Python ({sys.executable or 'python'} {sys.version.split()[0]}) cannot "
            f"import {', '.join(missing)}. Start gdb with the virtualenv where gdb-memleak is installed activated "
            f"(VIRTUAL_ENV), or install them for that Python (`{sys.executable or 'python3'} -m pip install "
            f"'tabulate>=0.9' pygments`).\n", gdb.STDERR)
        return
    from gdb_memleak.gdb import numpy_guard

    numpy_guard.install()  # before any module can import numpy
    from gdb_memleak.gdb import plugin

    plugin.register()


_load()
