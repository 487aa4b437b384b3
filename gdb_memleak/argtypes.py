"""argparse argument types shared by the batch CLI and the GDB commands (pure Python: no `gdb` import)."""

from __future__ import annotations

import argparse
import os

from .core.kinds import parse_kinds


def _non_negative(text: str, base: int) -> int:
    try:
        value = int(text, base)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text}")
    return value


ENGINES = ("auto", "agent", "breakpoint")
ENGINE_VARIABLE = "GDB_MEMLEAK_ENGINE"


def engine_from_environment() -> str:
    """$GDB_MEMLEAK_ENGINE (unset or empty: auto), the default of the CLI's --engine and of `set memleak engine`;
    ValueError, one line, when it names no engine."""
    value = os.environ.get(ENGINE_VARIABLE) or "auto"
    if value not in ENGINES:
        raise ValueError(f"{ENGINE_VARIABLE}={value}: not an engine (auto, agent or breakpoint)")
    return value


def count(text: str) -> int:
    """A number >= 0, written as GDB users write numbers (0x10 too)."""
    return _non_negative(text, 0)


def decimal_count(text: str) -> int:
    """A decimal number >= 0 (command-line options such as --error-exitcode)."""
    return _non_negative(text, 10)


def exit_status(text: str) -> int:
    """A decimal exit status, 0 to 255: a process cannot exit with more (the parent sees it modulo 256: 256 is 0)."""
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 255:
        raise argparse.ArgumentTypeError(f"an exit status is 0 to 255, not {text}")
    return value


def at_least_one(text: str) -> int:
    value = decimal_count(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def kind_set(text: str) -> frozenset[str]:
    """`definite,possible` | `all` | `none` (valgrind's --show-leak-kinds syntax)."""
    try:
        return parse_kinds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def mapping_kinds(text: str) -> frozenset[str]:
    """`sysv,posix` | `all` | `none`: which mappings and shared memory left behind count as errors. core.mappings
    is imported here, when the option is used: the CLI's start does without its records (~5 ms)."""
    from .core.mappings import parse_mapping_kinds

    try:
        return parse_mapping_kinds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def heuristic_set(text: str) -> frozenset[str]:
    """`all` | `none` | some of stdstring,length64,newarray,multipleinheritance (valgrind's
    --leak-check-heuristics syntax)."""
    from .core.heuristics import NAMES, parse_heuristics

    try:
        return parse_heuristics(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (give all, none, or some of {','.join(NAMES)})") from None
