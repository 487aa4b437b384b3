"""`set debug memleak on|off`: engine and scan decisions, with full tracebacks, on GDB's stderr.

GDB's own convention (`set debug infrun on`, ...) under its `debug` prefix. Off by default: the logger then drops
records before formatting them, so a `log.debug` in a hot path costs one level check.
"""

from __future__ import annotations

import logging
import sys

import gdb

log = logging.getLogger("gdb_memleak")
log.propagate = False
log.setLevel(logging.WARNING)


class _Stderr(logging.Handler):
    """Writes through sys.stderr as it is at each record (GDB redirects it to its own error stream)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(f"[gdb-memleak] {self.format(record)}\n")
        except Exception:  # noqa: BLE001 - logging must never break a command or a stop()
            self.handleError(record)


_handler = _Stderr()
_handler.setFormatter(logging.Formatter("%(message)s"))
log.addHandler(_handler)


class DebugMemleak(gdb.Parameter):
    """When on, gdb-memleak logs its engine and scan decisions, and every internal error with its traceback."""

    set_doc = "Set gdb-memleak debugging."
    show_doc = "Show gdb-memleak debugging."

    def __init__(self) -> None:
        super().__init__("debug memleak", gdb.COMMAND_MAINTENANCE, gdb.PARAM_BOOLEAN)
        self.value = False

    def get_set_string(self) -> str:
        log.setLevel(logging.DEBUG if self.value else logging.WARNING)
        return ""

    def get_show_string(self, svalue: str) -> str:
        return f"gdb-memleak debugging is {svalue}."


def register() -> None:
    DebugMemleak()
