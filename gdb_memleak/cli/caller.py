"""What the CLI's caller gave it, which the program must start with: its environment, its ignored signals and its
signal mask, read once as the CLI's first act (`remember()` in the console entry point).

Between the caller and the program stand several processes that change both: the CLI (Python), GDB, and the exec
shim (Python again).

Signals. Exec resets caught signals to their default action but keeps ignored ones ignored and keeps the mask, so
the program would inherit whatever the last of them ignored or blocked: Python ignores SIGPIPE and SIGXFSZ at
start-up, and the CLI catches SIGINT/SIGTERM/SIGHUP (which GDB, its child, then gets as default). The CLI passes its
caller's state to the exec shim (GDB_MEMLEAK_EXEC), which sets exactly that, every signal's disposition and the
mask, just before it execs the program. What cannot be read: Python's interpreter ignores SIGPIPE and SIGXFSZ before
any Python code runs, so whether the caller had ignored those two is lost; they are given their default action, as
a shell gives them to every command (a signal ignored when the shell itself started is the exception). Every other
disposition, and the whole mask, is the caller's.

Environment. Python changes its own environment at start-up (PEP 538: with LC_ALL unset and LC_CTYPE the C locale,
it sets LC_CTYPE=C.UTF-8), before any Python code runs, so `os.environ` is not what the caller gave. The kernel's
copy, /proc/self/environ, is (glibc's setenv builds a new array and never writes into it): the program gets
LC_CTYPE as given there, unset if it was not given; GDB (whose embedded Python writes the report) keeps what the
CLI's Python set. Only LC_CTYPE is taken from there: a preloaded library (the recorder itself, when the CLI runs
under gdb-memleak) may have hidden variables from `environ` that the kernel's copy still holds.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

from ..core.procstat import signal_masks

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


def read_signals() -> SignalState:
    """This process's state now, less the two signals Python's start-up ignored on its own."""
    masks = signal_masks("self")
    ignored = tuple(n for n in _signals(masks.get("SigIgn", 0)) if n not in IGNORED_BY_PYTHON)
    return SignalState(ignored=ignored, blocked=_signals(masks.get("SigBlk", 0)))


def read_environment() -> dict[str, str]:
    """This process's environment with LC_CTYPE as it was given (the one variable Python's start-up sets)."""
    env = dict(os.environ)
    given = _given(b"LC_CTYPE")
    if given is None:
        env.pop("LC_CTYPE", None)
    else:
        env["LC_CTYPE"] = os.fsdecode(given)
    return env


def _given(name: bytes) -> bytes | None:
    """The value of `name` in the environment this process was started with (the first, as getenv finds it)."""
    with open("/proc/self/environ", "rb") as f:
        for entry in f.read().split(b"\0"):
            key, eq, value = entry.partition(b"=")
            if eq and key == name:
                return value
    return None


@dataclass(frozen=True)
class CallerState:
    environment: dict[str, str]
    signals: SignalState


_remembered: CallerState | None = None


def remember() -> None:
    """Read the caller's state now: call before the CLI installs a handler or changes its mask or environment."""
    global _remembered
    _remembered = CallerState(read_environment(), read_signals())


def environment() -> dict[str, str]:
    """The environment remembered at start-up (`os.environ` when `main()` is called as a function: its caller's)."""
    return dict(_remembered.environment if _remembered is not None else os.environ)


def signals() -> SignalState:
    """The signal state remembered at start-up (or read now, when `main()` runs without the console entry point)."""
    return _remembered.signals if _remembered is not None else read_signals()
