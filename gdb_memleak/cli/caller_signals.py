"""The signal state the CLI's caller gave it, which the program must start with (ignored signals and the mask).

Between the caller and the program stand several processes that change signal state: the CLI (Python), GDB, and
the exec shim (Python again). Exec resets caught signals to their default action but keeps ignored ones ignored and
keeps the mask, so the program would inherit whatever the last of them ignored or blocked: Python ignores SIGPIPE
and SIGXFSZ at start-up, and the CLI catches SIGINT/SIGTERM/SIGHUP (which GDB, its child, then gets as default).
So the CLI reads its own state once, as its first act (`remember()` in the console entry point, before it installs
any handler), passes it to the exec shim (GDB_MEMLEAK_EXEC), and the shim sets exactly that state, every signal's
disposition and the mask, just before it execs the program.

What cannot be read: Python's interpreter ignores SIGPIPE and SIGXFSZ before any Python code runs, so whether the
caller had ignored those two is lost; they are given their default action, as a shell gives them to every command
(a signal ignored when the shell itself started is the exception). Every other disposition, and the whole mask, is
the caller's.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

#: ignored by Python's start-up itself (CPython's signal_install_handlers): the CLI's state says nothing about them
IGNORED_BY_PYTHON = frozenset({int(signal.SIGPIPE), int(signal.SIGXFSZ)})


@dataclass(frozen=True)
class SignalState:
    """Signals (numbers 1..64) ignored and blocked, as /proc/PID/status's SigIgn and SigBlk masks list them."""

    ignored: tuple[int, ...]
    blocked: tuple[int, ...]

    def as_json(self) -> dict[str, list[int]]:
        return {"ignored": list(self.ignored), "blocked": list(self.blocked)}


def _signals(mask: int) -> tuple[int, ...]:
    return tuple(n for n in range(1, 65) if mask >> (n - 1) & 1)


def read_own() -> SignalState:
    """This process's state now, less the two signals Python's start-up ignored on its own."""
    masks = {}
    with open("/proc/self/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("SigIgn", "SigBlk"):
                masks[name] = int(value, 16)
    ignored = tuple(n for n in _signals(masks.get("SigIgn", 0)) if n not in IGNORED_BY_PYTHON)
    return SignalState(ignored=ignored, blocked=_signals(masks.get("SigBlk", 0)))


_remembered: SignalState | None = None


def remember() -> None:
    """Read the caller's state now: call before the CLI installs a handler or changes its mask."""
    global _remembered
    _remembered = read_own()


def callers() -> SignalState:
    """The state remembered at start-up (or read now, when `main()` is called without the console entry point)."""
    return _remembered if _remembered is not None else read_own()
