"""The recorder in the environment of the program GDB starts: `memleak start` before `run` puts the recorder library
first in GDB's LD_PRELOAD for the program (ahead of the user's own entries) with its settings; `memleak stop` gives
the user's environment back. The entries live in GDB's environment (`set environment`), never in GDB's own process:
the program sees exactly what the user set plus the preload, and exec_preload.py completes the environment of
every image GDB follows from the same entries (`recorder_environment`).
"""

from __future__ import annotations

from dataclasses import dataclass

import gdb

from ..agent import build
from ..core import agent_format as fmt
from ..core.own_allocators import only_libstdcxx_operators
from . import exec_preload
from .engine_choice import own_allocators

PRELOAD = "LD_PRELOAD"
ENV_SETTINGS = ("DEPTH", "ON_ERROR", "BREAK_ALLOC")


@dataclass(frozen=True)
class PreparedPreload:
    """What `prepare_environment` put in GDB's environment: the recorder library now first in LD_PRELOAD, and the
    user's own LD_PRELOAD entries (without any recorder), which `restore_environment` gives back."""

    library: str
    user_preload: str


@dataclass
class PreloadState:
    """The environment GDB will start the program with, as far as the recorder goes. `prepared` is None while the
    recorder is not in it; `build_error` then says why when the library could not be built (the engine choice
    repeats it as its reason for the breakpoint engine)."""

    prepared: PreparedPreload | None = None
    build_error: str | None = None


STATE = PreloadState()


def in_use() -> bool:
    """Whether the recorder is in the environment of the program GDB starts (a cheap test for every new image)."""
    return STATE.prepared is not None


def _gdb_env(name: str) -> str | None:
    """The value of `name` in the environment GDB gives the program (None when unset)."""
    text = gdb.execute(f"show environment {name}", to_string=True).strip()
    prefix = f"{name} = "
    return text[len(prefix):] if text.startswith(prefix) else None


def prepare_environment(depth: int, on_error: str, break_alloc: int | None) -> str | None:
    """Before `run`: put the recorder in the program's LD_PRELOAD (ahead of the user's own); returns the one-line
    reason when it cannot be built (the breakpoint engine is used then). Nothing is preloaded into a program that
    defines its own allocator: the breakpoint engine tracks it (`engine_choice.choose` says why), and the recorder's
    remaining hooks would only pair libc's calls with blocks they never saw."""
    program = gdb.selected_inferior().progspace.filename or ""
    if (own := own_allocators(program)) and not only_libstdcxx_operators(program, own):
        restore_environment()
        return None
    try:
        library = str(build.ensure_built())
    except build.BuildError as exc:
        STATE.prepared, STATE.build_error = None, str(exc)
        return str(exc)
    # prepared twice (`memleak start` again): the user's entries are the ones kept, not GDB's with the recorder
    user = STATE.prepared.user_preload if STATE.prepared is not None else _gdb_env(PRELOAD)
    entries = [p for p in (user or "").split(":") if p and not p.endswith(fmt.LIBRARY_SUFFIX)]
    gdb.execute(f"set environment {PRELOAD}={':'.join([library, *entries])}", to_string=True)
    gdb.execute(f"set environment {fmt.ENV_PREFIX}DEPTH={depth}", to_string=True)
    gdb.execute(f"set environment {fmt.ENV_PREFIX}ON_ERROR={'skip' if on_error == 'skip' else 'report'}",
                to_string=True)
    set_break_alloc(break_alloc)
    STATE.prepared, STATE.build_error = PreparedPreload(library, ":".join(entries)), None
    return None


def set_break_alloc(number: int | None) -> None:
    """The allocation number the next run's recorder stops at, read from its environment (None or 0: none)."""
    if number:
        gdb.execute(f"set environment {fmt.ENV_PREFIX}BREAK_ALLOC={number}", to_string=True)
    else:
        gdb.execute(f"unset environment {fmt.ENV_PREFIX}BREAK_ALLOC", to_string=True)


def break_alloc_changed(number: int | None) -> None:
    """`memleak break-alloc N|off`: the next run's recorder gets N, if the recorder is in its environment."""
    if STATE.prepared is not None:
        set_break_alloc(number)


def recorder_environment() -> exec_preload.RecorderEnvironment | None:
    """What an image GDB follows needs in its environment for the recorder (exec_preload.py): the entries
    prepare_environment put in GDB's, None when the recorder is not in use."""
    if STATE.prepared is None:
        return None
    settings = []
    for name in ENV_SETTINGS:
        value = _gdb_env(f"{fmt.ENV_PREFIX}{name}")
        if value is not None:
            settings.append(f"{fmt.ENV_PREFIX}{name}={value}")
    return exec_preload.RecorderEnvironment(STATE.prepared.library, tuple(settings), fmt.ENV_PREFIX)


def restore_environment() -> None:
    """`memleak stop`: the next run gets the user's own environment back."""
    if STATE.prepared is None:
        return
    user = STATE.prepared.user_preload
    if user:
        gdb.execute(f"set environment {PRELOAD}={user}", to_string=True)
    else:
        gdb.execute(f"unset environment {PRELOAD}", to_string=True)
    for name in ENV_SETTINGS:
        gdb.execute(f"unset environment {fmt.ENV_PREFIX}{name}", to_string=True)
    STATE.prepared = None
