"""Report writers. Each module renders a list of `ProcessReport`s into a text stream with the same signature,
`write(reports, out, options)`, and names its FORMAT and HELP; `WRITERS` maps a file format (the CLI's `--json
FILE`, ...) to its writer, so a new format is one module added to the tuple below."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence, TextIO

from ..report import ProcessReport
from . import folded, html, json, mtrace, sarif, text
from .options import ReportOptions

WriteFn = Callable[[Sequence[ProcessReport], TextIO, Optional[ReportOptions]], None]


@dataclass(frozen=True)
class Writer:
    format: str
    help: str
    write: WriteFn


#: file formats the CLI (`--FORMAT FILE`) and `leaks` can write
WRITERS: dict[str, Writer] = {m.FORMAT: Writer(m.FORMAT, m.HELP, m.write) for m in (json, sarif, folded, mtrace, html)}

__all__ = ["WRITERS", "ReportOptions", "Writer", "text"]
