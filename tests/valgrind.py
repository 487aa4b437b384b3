"""The correctness oracle: valgrind memcheck's HEAP SUMMARY figures for a program."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

IN_USE = re.compile(r"in use at exit: ([\d,]+) bytes in ([\d,]+) blocks")
TOTAL = re.compile(r"total heap usage: ([\d,]+) allocs, ([\d,]+) frees, ([\d,]+) bytes allocated")


@dataclass(frozen=True)
class HeapFigures:
    allocs: int
    frees: int
    bytes_allocated: int
    in_use_bytes: int
    in_use_blocks: int


def available() -> bool:
    return shutil.which("valgrind") is not None


def _num(text: str) -> int:
    return int(text.replace(",", ""))


def heap_figures(argv: list[str], timeout: int = 300) -> HeapFigures:
    proc = subprocess.run(["valgrind", "--run-libc-freeres=no", "--run-cxx-freeres=no", *argv],
                          capture_output=True, text=True, timeout=timeout)
    in_use, total = IN_USE.search(proc.stderr), TOTAL.search(proc.stderr)
    assert in_use and total, proc.stderr[-2000:]
    return HeapFigures(_num(total.group(1)), _num(total.group(2)), _num(total.group(3)),
                       _num(in_use.group(1)), _num(in_use.group(2)))


def our_figures(process: dict) -> HeapFigures:
    t, u = process["totals"], process["in_use_at_exit"]
    return HeapFigures(t["allocs"], t["frees"], t["bytes_allocated"], u["bytes"], u["blocks"])
