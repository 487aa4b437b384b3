"""Running one bench script inside GDB with the plugin importable, and reading back its `BENCH {json}` line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from gdb_memleak.cli.main import LOADER, dependency_dirs  # noqa: E402


def run_in_gdb(script: str, argv: list[str], **env: str) -> dict:
    environment = dict(os.environ, BENCH_LOADER=LOADER, **env,
                       GDB_MEMLEAK_PYTHONPATH=os.pathsep.join([str(ROOT), *dependency_dirs()]))
    proc = subprocess.run(["gdb", "-nx", "-q", "-batch", "-iex", "set debuginfod enabled off",
                           "-x", str(ROOT / "bench" / script), "--args", *argv],
                          capture_output=True, text=True, env=environment, check=True)
    line = next(text for text in proc.stdout.splitlines() if text.startswith("BENCH "))
    return json.loads(line[len("BENCH "):])
