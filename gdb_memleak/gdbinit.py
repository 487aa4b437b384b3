"""The one line `gdb-memleak --gdbinit` prints for ~/.gdbinit: `directory …/gdb_memleak/source-path`.

It loads nothing: it puts the directory holding the GDB script `gdb_memleak` on GDB's source path, so that
`source gdb_memleak` typed in any GDB session (from any directory, a checkout included) loads the plugin on demand,
and GDB sessions that do not use it are untouched.
"""

from __future__ import annotations

import os

SOURCE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "source-path")


def gdb_quote(argument: str) -> str:
    """ARGUMENT as one word for a GDB command that splits its arguments like a shell (`directory`)."""
    if argument and not any(c in argument for c in " \t\"'\\"):
        return argument
    return '"{}"'.format(argument.replace("\\", "\\\\").replace('"', '\\"'))


def gdbinit_line() -> str:
    return f"directory {gdb_quote(SOURCE_DIR)}"
