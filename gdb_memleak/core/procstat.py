"""/proc/PID/stat: a process's state, its parent and how it ended, for the code deciding whether to follow it;
/proc/PID/cmdline: the arguments its image was started with."""

from __future__ import annotations

import os


def stat_fields(pid: int, lwp: int | None = None) -> list[str] | None:
    """The fields after the command name (field 3, the state, first; field 52, the exit code, last); None when
    the process (or its thread `lwp`) is gone. The name is skipped by its closing parenthesis: it may hold spaces
    and parentheses."""
    path = f"/proc/{pid}/stat" if lwp is None else f"/proc/{pid}/task/{lwp}/stat"
    try:
        with open(path) as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def running(pid: int) -> bool:
    """The process exists and has not ended (a zombie has: only its wait status is left)."""
    fields = stat_fields(pid) if pid else None
    return fields is not None and fields[0] not in ("Z", "X")


def wait_status(pid: int) -> int | None:
    """How an ended process ended: waitpid's status, which /proc keeps while it is a zombie (field 52)."""
    fields = stat_fields(pid)
    try:
        return int(fields[49]) if fields is not None else None
    except (IndexError, ValueError):
        return None


def parent_in_vfork(pid: int) -> bool:
    """Whether `pid`'s parent is blocked until `pid` execs or exits (a vfork not seen as one, kcmp missing): its
    parent then sleeps uninterruptibly (state D), and stopping everything would wait for it forever."""
    fields = stat_fields(pid)
    try:
        parent = stat_fields(int(fields[1])) if fields is not None else None
    except (IndexError, ValueError):
        return False
    return parent is not None and parent[0] == "D"


def cmdline(pid: int) -> list[str] | None:
    """The argv of `pid`'s current image, as execve() gave it; None when unreadable or empty (an exec with no
    arguments). Read right after an exec it is the new image's (before that a forked child's is its parent's),
    and before the program could rewrite its argument strings."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            data = f.read()
    except OSError:
        return None
    if not data:
        return None
    return [os.fsdecode(arg) for arg in data.removesuffix(b"\0").split(b"\0")]


def status_fields(pid: int | str) -> dict[str, str] | None:
    """/proc/PID/status as name -> value (`pid` may be "self"); None when the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return {name: value.strip() for name, _, value in (line.partition(":") for line in f)}
    except OSError:
        return None


def signal_masks(pid: int | str) -> dict[str, int]:
    """Its signal masks (SigIgn, SigBlk, SigCgt, ...: bit N-1 is signal N); empty when the process is gone."""
    fields = status_fields(pid) or {}
    return {name: int(value, 16) for name, value in fields.items() if name.startswith("Sig") and name != "SigQ"}


def tracer(pid: int) -> int | None:
    """The pid of the process tracing `pid` (0: none), from /proc/PID/status; None when `pid` is gone."""
    fields = status_fields(pid)
    try:
        return int(fields["TracerPid"]) if fields is not None else None
    except (KeyError, ValueError):
        return None


def let_go(pid: int) -> bool:
    """Whether `pid` runs on without this process tracing it: how a detach differs from a death when the debugger
    reports both alike (GDB's exited event has no exit code for either)."""
    followed_by = tracer(pid) if running(pid) else None
    return followed_by is not None and followed_by != os.getpid()
