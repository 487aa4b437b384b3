"""gdb_memleak.core must stay importable (and testable) in a Python where `import gdb` is impossible."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = textwrap.dedent(
    """
    import importlib, importlib.abc, pkgutil, sys

    class NoGdb(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path=None, target=None):
            if fullname == "gdb" or fullname.startswith("gdb."):
                raise ImportError("gdb is not importable outside GDB")
            return None

    sys.meta_path.insert(0, NoGdb())
    try:
        import gdb
    except ImportError:
        pass
    else:
        raise SystemExit("the blocker did not work")

    import gdb_memleak.core as core
    names = [info.name for info in pkgutil.iter_modules(core.__path__, core.__name__ + ".")]
    for name in names:
        importlib.import_module(name)
    assert "gdb" not in sys.modules, "core imported gdb"
    assert "gdb_memleak.gdb" not in sys.modules, "core imported the GDB adapter"
    print(" ".join(sorted(names)))
    """
)

EXPECTED_MODULES = {"model", "allocators", "abi", "table", "unwind", "elf", "procmaps", "symbols", "grouping",
                    "report", "source", "reports"}


def test_core_imports_without_gdb():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO_ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": REPO_ROOT}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    imported = {name.rsplit(".", 1)[1] for name in proc.stdout.split()}
    assert EXPECTED_MODULES <= imported
