"""The live blocks as a glibc mtrace log, for glibc's `mtrace` script (`mtrace [BINARY] LOG`).

glibc 2.36's mtrace (in libc_malloc_debug.so) writes `= Start`, then per call
`@ OBJECT:(SYMBOL+OFF)[0xCALLER] + 0xADDR 0xSIZE`
(`[0x..]` is the caller's return address minus the object's load base; `@ [%p] ` when dladdr knows no object; no
`@` part at all without a caller), and `= End` at muntrace(). The script splits each line on whitespace and keeps
every `+` address no later `-` releases, so listing only the live blocks, in allocation order, makes its
"Memory not freed" list exactly our live blocks.

The `(SYMBOL+OFF)` part is left out (as glibc does for a caller without a dynamic symbol): ours would be a demangled
name, often with spaces, which the script would split. Without `object_base` the caller is the absolute address
(as older glibc printed it); `object_base(path)` (the object's load address) makes it object-relative, which
`mtrace BINARY LOG` resolves with addr2line. The script knows nothing of processes: write one report per log.
"""

from __future__ import annotations

import re
from typing import Callable, Sequence, TextIO

from ..model import Block
from ..report import ProcessReport
from .options import ReportOptions

FORMAT = "mtrace"
HELP = "write the live blocks to FILE as a glibc mtrace log"

_WHITESPACE = re.compile(r"\s")


def _hex_size(size: int) -> str:
    """glibc's `%#lx`: 0 is printed as `0`, not `0x0`."""
    return f"{size:#x}" if size else "0"


def where(report: ProcessReport, block: Block, object_base: Callable[[str], int | None] | None = None) -> str:
    if not block.pcs:
        return ""
    pc = block.pcs[0]
    frame = report.symbolizer.frame(pc)
    obj = frame.object
    if not obj or obj == "??" or _WHITESPACE.search(obj):
        return f"@ [0x{pc:x}] "
    base = object_base(obj) if object_base is not None else None
    caller = pc - base if base is not None and base <= pc else pc
    return f"@ {obj}:[0x{caller:x}] "


def write(reports: Sequence[ProcessReport], out: TextIO, options: ReportOptions | None = None) -> None:
    object_base = options.object_base if options is not None else None
    for report in reports:
        out.write("= Start\n")
        for block in report.table.in_allocation_order():
            out.write(f"{where(report, block, object_base)}+ 0x{block.address:x} {_hex_size(block.size)}\n")
        out.write("= End\n")
