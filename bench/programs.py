"""The benchmarks' C programs (bench/c/NAME.c), compiled into a run's temporary directory: one place for the
compiler line, so every benchmark builds its program the same way (debug info for stacks, -O1 unless told)."""

from __future__ import annotations

import subprocess
from pathlib import Path

SOURCES = Path(__file__).resolve().parent / "c"


def build(name: str, into: str | Path, *flags: str) -> Path:
    """bench/c/NAME.c compiled to INTO/NAME with -g and `flags` (default -O1); its path."""
    program = Path(into) / name
    subprocess.run(["gcc", *(flags or ("-O1",)), "-g", "-o", str(program), str(SOURCES / f"{name}.c")], check=True)
    return program
