"""One-line messages of gdb-memleak on stderr, each said once per run: why the recorder is not used, that its
memory is full, that numpy's scan is unavailable. A forked, vforked or exec'd process for the same reason says
nothing more; a new run (or attach) says them again (`new_run`).
"""

from __future__ import annotations

from typing import TextIO

import gdb

_announced: set[str] = set()  # the lines said in this run
_stream: list[TextIO | None] = [None]  # where they go: the session's stream (the CLI's stderr), else GDB's stderr


def announce(line: str) -> None:
    """Say `line` (with or without its `gdb-memleak: ` prefix, spaces folded to one line) unless this run said it."""
    text = " ".join(line.split())
    while text.startswith("gdb-memleak: "):
        text = text[len("gdb-memleak: "):]
    if text in _announced:
        return
    _announced.add(text)
    out = _stream[0]
    if out is not None:  # the batch CLI: GDB's own stderr is captured while `run` executes with to_string
        out.write(f"gdb-memleak: {text}\n")
        out.flush()
    else:
        gdb.write(f"gdb-memleak: {text}\n", gdb.STDERR)


def use_stream(out: TextIO | None) -> None:
    """Where the lines go from now on: the session's stream (None: GDB's stderr)."""
    _stream[0] = out


def new_run() -> None:
    """A process starts (or is attached) with nothing else tracked: its reasons are said again."""
    _announced.clear()
