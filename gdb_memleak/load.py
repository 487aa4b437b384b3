"""Load gdb-memleak into GDB: the GDB script `gdb_memleak` (`source gdb_memleak`) sources this file.

GDB embeds the system Python, not a virtualenv's. This script makes the package and its dependencies importable
there: the checkout or site-packages holding this file, the active virtualenv (`VIRTUAL_ENV`), and any directories
in `GDB_MEMLEAK_PYTHONPATH`. If pygments or tabulate still cannot be imported it says so in one line and loads
nothing, with a command that installs them where it looks (a virtualenv's pip). Sourcing it again does nothing
more.
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


def _venv_holding(directory: str) -> str | None:
    """The virtualenv `directory` lies in (its root holds pyvenv.cfg), if any: where gdb-memleak is installed when
    the ~/.gdbinit line names a directory inside a virtualenv's site-packages."""
    while True:
        if os.path.isfile(os.path.join(directory, "pyvenv.cfg")):
            return directory
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def _install_hint(requirements: list[str]) -> str:
    """A command that works here: the pip of a virtualenv (never GDB's sys.executable, which may not exist, e.g.
    /usr/bin/python on Debian 12, and never the system Python, which may be externally managed (PEP 668))."""
    packages = " ".join(f"'{r}'" for r in requirements)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    installed_in = _venv_holding(here)
    if installed_in and os.path.isfile(os.path.join(installed_in, "bin", "python")):
        return (f"Install into the virtualenv gdb-memleak is installed in: "
                f"`{installed_in}/bin/python -m pip install {packages}`")
    active = os.environ.get("VIRTUAL_ENV")
    if active and os.path.isfile(os.path.join(active, "bin", "python")):
        return f"Install into the active virtualenv: `{active}/bin/python -m pip install {packages}`"
    checkout_venv = os.path.join(here, ".venv")  # a checkout's own (scripts/dev makes it)
    if os.path.isfile(os.path.join(checkout_venv, "pyvenv.cfg")):
        return f"Start gdb with the checkout's virtualenv activated: `. {checkout_venv}/bin/activate`"
    python = f"python{sys.version_info[0]}.{sys.version_info[1]}"  # GDB's version: its compiled numpy loads too
    return (f"Start gdb with the virtualenv where gdb-memleak is installed activated (`. VENV/bin/activate`), or "
            f"make one: `{python} -m venv ~/.venvs/memleak && ~/.venvs/memleak/bin/python -m pip install {packages}` "
            f"and start gdb after `. ~/.venvs/memleak/bin/activate`")


def _load() -> None:
    import gdb

    _extend_path()
    missing, requirements = [], []
    for name, minimum in REQUIRED.items():
        wanted = f"{name}>={'.'.join(map(str, minimum))}"
        try:
            module = importlib.import_module(name)
        except ImportError:
            missing.append(name)
            requirements.append(wanted)
            continue
        version = tuple(int(p) for p in getattr(module, "__version__", "0").split(".")[:2] if p.isdigit())
        if version < minimum:
            missing.append(f"{wanted} (found {module.__version__})")
            requirements.append(wanted)
    if missing:
        gdb.write(f"gdb-memleak: not loaded: GDB's Python {sys.version.split()[0]} cannot import "
                  f"{', '.join(missing)}. {_install_hint(requirements)}.\n", gdb.STDERR)
        return
    from gdb_memleak.gdb import numpy_guard

    numpy_guard.install()  # before any module can import numpy
    from gdb_memleak.gdb import plugin

    plugin.register()


_load()
