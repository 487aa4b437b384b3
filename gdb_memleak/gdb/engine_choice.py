"""Which engine tracks a process (`set memleak engine auto|agent|breakpoint`, CLI `--engine`): the recorder wherever
it can see the program's allocator calls, else the breakpoint engine, with one line saying why (announce.py).
`auto` and `agent` fall back alike: where the recorder cannot run, the breakpoint engine is the only one that can.
"""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

import gdb

from ..core import agent_format as fmt
from ..core.own_allocators import defined_allocators, describe, only_libstdcxx_operators

if TYPE_CHECKING:
    from .preload import PreloadState


def choose(setting: str, inferior: gdb.Inferior, complete: bool, preload: PreloadState) -> tuple[str, str | None]:
    """("agent" | "breakpoint", the one line saying why not the recorder, or None). `complete`: GDB starts the
    process now (not an attach, not `memleak start` on a running one); `preload`: whether the recorder is in the
    environment GDB starts it with (preload.py), or why it could not be built."""
    if setting == "breakpoint":
        return "breakpoint", None
    program = inferior.progspace.filename or ""
    name = os.path.basename(program) or "the program"
    why = None
    if not complete:
        why = _not_attachable(program, name)
    elif (own := own_allocators(program)) and only_libstdcxx_operators(program, own):
        return "agent", (f"gdb-memleak: {name} carries its own libstdc++: its {describe(own)} are recorded as the "
                         "malloc and free they call (a release by the wrong family is not reported).")
    elif own:
        why = (f"{name} defines its own {describe(own)} (calls to {'it' if len(own) == 1 else 'them'} never reach "
               "the preloaded recorder)")
    elif preload.prepared is None:
        why = preload.build_error or f"the recorder was not in {name}'s environment when it started"
    elif program and not fmt.is_dynamic(program):
        why = f"{name} is statically linked (nothing can be preloaded)"
    elif program and _privileged(program):
        why = f"{name} is set-user-ID or set-group-ID (the dynamic loader ignores LD_PRELOAD there)"
    if why is None:
        return "agent", None
    return "breakpoint", f"{why}: using the breakpoint engine."


def _not_attachable(program: str, name: str) -> str | None:
    """Why the recorder cannot be brought into `program` already running (recorder_attach.py), or None."""
    if program and not fmt.is_dynamic(program):
        return f"{name} is statically linked (the recorder cannot be loaded into it)"
    own = own_allocators(program)
    if own and not only_libstdcxx_operators(program, own):
        return (f"{name} defines its own {describe(own)} (calls to {'it' if len(own) == 1 else 'them'} never reach "
                "the recorder)")
    return None


def own_allocators(program: str) -> tuple[str, ...]:
    """The allocator functions a dynamically linked `program` defines itself (core/own_allocators.py): the
    recorder cannot see their calls, the breakpoint engine hooks them. (A static program is said to be static.)"""
    if not program or not fmt.is_dynamic(program):
        return ()
    return defined_allocators(program)


def _privileged(program: str) -> bool:
    """Whether running `program` changes the process's user or group: the loader's secure-execution mode then
    drops a preload given by path (ld.so(8)), so the recorder could never load. The kernel honours the bits under
    ptrace only for a tracer with CAP_SYS_PTRACE (root, here); for anyone else the program runs unprivileged."""
    if os.geteuid() != 0:
        return False
    try:
        st = os.stat(program)
    except OSError:
        return False
    return bool(st.st_mode & stat.S_ISUID and st.st_uid != os.geteuid()
                or st.st_mode & stat.S_ISGID and st.st_gid != os.getegid())
