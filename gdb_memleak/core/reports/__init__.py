"""Report writers. Each module renders a list of `ProcessReport`s into a text stream with the same signature,
`write(reports, out, options)`, and names its FORMAT and HELP (and `files`, when its format puts each process in a
file of its own); `WRITERS` maps a file format (the CLI's `--json FILE`, ...) to its writer, so a new format is one
module added to the tuple below."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence, TextIO

from ..report import ProcessReport
from . import folded, html, json, mtrace, sarif, text, valgrind_log, xml
from .options import ReportOptions

WriteFn = Callable[[Sequence[ProcessReport], TextIO, Optional[ReportOptions]], None]
FilesFn = Callable[[str, Sequence[ProcessReport]], Sequence[tuple[str, Sequence[ProcessReport]]]]


def one_file(path: str, reports: Sequence[ProcessReport]) -> list[tuple[str, Sequence[ProcessReport]]]:
    """Every process in the one file asked for."""
    return [(path, reports)]


@dataclass(frozen=True)
class Writer:
    format: str
    help: str
    write: WriteFn
    files: FilesFn = one_file  # which processes go to which file, from the path asked for (XML: one per process)


#: file formats the CLI (`--FORMAT FILE`) and `leaks` can write
WRITERS: dict[str, Writer] = {m.FORMAT: Writer(m.FORMAT, m.HELP, m.write, getattr(m, "files", one_file))
                              for m in (json, sarif, folded, mtrace, html, xml, valgrind_log)}

__all__ = ["WRITERS", "ReportOptions", "Writer", "text"]
