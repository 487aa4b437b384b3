"""Leaked bytes as folded stacks (Brendan Gregg's format, input of flamegraph.pl and speedscope).

One line per distinct stack: `outer;...;inner BYTES`, frames outermost first (`main` leftmost, the allocator's caller
rightmost), function names only. Leak groups whose stacks read the same (e.g. two lines of one function) are merged;
lines are sorted by stack, as stackcollapse tools print them.
"""

from __future__ import annotations

import os
import re
from typing import Sequence, TextIO

from ..model import Frame
from ..report import ProcessReport
from .options import ReportOptions

FORMAT = "folded"
HELP = "write folded stacks of leaked bytes (flame graphs) to FILE"

_RAW_ADDRESS = re.compile(r"^0x[0-9a-fA-F]+$")
_SPACES = re.compile(r"\s+")


def frame_name(frame: Frame) -> str:
    """The function name, else `object+0x<pc>`; `;` (the separator) becomes `:` and whitespace `_`."""
    name = frame.function or ""
    if not name or name == "??" or _RAW_ADDRESS.match(name):
        obj = frame.object if frame.object and frame.object != "??" else None
        name = f"{os.path.basename(obj)}+0x{frame.pc:x}" if obj else f"0x{frame.pc:x}"
    return _SPACES.sub("_", name.replace(";", ":"))


def folded_stacks(reports: Sequence[ProcessReport]) -> dict[str, int]:
    """stack line (without the count) -> leaked bytes, over every unsuppressed leak group of every report."""
    stacks: dict[str, int] = {}
    for report in reports:
        for group in report.leak_groups():
            frames = report.frames(group.pcs)
            key = ";".join(frame_name(f) for f in reversed(frames)) or "[unknown]"
            stacks[key] = stacks.get(key, 0) + group.bytes
    return stacks


def write(reports: Sequence[ProcessReport], out: TextIO, options: ReportOptions | None = None) -> None:
    for stack, size in sorted(folded_stacks(reports).items()):
        out.write(f"{stack} {size}\n")
