"""Running a program with the recorder preloaded, without GDB, and reading its memory at exit.

GDB_MEMLEAK_AGENT_TEST_STOP makes the recorder stop itself (SIGSTOP) after every exit handler and destructor; the
test then finds the region like GDB does (the `memleak_agent` symbol + /proc/PID/maps) and reads it through
/proc/PID/mem. Every process of a forked family stops the same way, each read on its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

from gdb_memleak.core import agent_format
from gdb_memleak.core.procmaps import read_maps
from gdb_memleak.core.procstat import stat_fields


@dataclass
class Recorded:
    pid: int
    snapshot: agent_format.AgentSnapshot
    maps: list
    fds: list[str]
    region_mapping: str   # the region's line of /proc/PID/maps: perms, offset, device, inode, path


def _state_and_ppid(pid: int) -> tuple[str, int] | None:
    fields = stat_fields(pid)
    return (fields[0], int(fields[1])) if fields is not None else None


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            info = _state_and_ppid(int(name))
            if info:
                children.setdefault(info[1], []).append(int(name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def read_stopped(pid: int) -> Recorded:
    maps = read_maps(pid)
    anchor = agent_format.anchor_address(maps)
    assert anchor is not None, f"recorder not loaded in {pid}"
    fds = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            fds.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass
    with agent_format.ProcMemory(pid) as mem:
        region = agent_format.region_address(mem.read, anchor)
        snapshot = agent_format.read_snapshot(mem.read, region)
    with open(f"/proc/{pid}/maps") as f:
        line = next(line for line in f if int(line.split("-", 1)[0], 16) == region)
    return Recorded(pid, snapshot, maps, fds, line.split(None, 1)[1].strip())


def run_recorded(library: Path, argv: list[str], timeout: float = 120, stdout: int | None = subprocess.DEVNULL,
                 **env: str) -> tuple[list[Recorded], int, bytes]:
    """Run argv with the recorder; every process of its family is read as it stops at exit, in stop order.
    Returns (records, exit status, stdout)."""
    return run_stopping(library, argv, read_stopped, timeout, stdout, **env)


Read = TypeVar("Read")


def run_stopping(library: Path, argv: list[str], read: Callable[[int], Read], timeout: float = 120,
                 stdout: int | None = subprocess.DEVNULL, **env: str) -> tuple[list[Read], int, bytes]:
    """run_recorded with another reading of each stopped process (`read(pid)`)."""
    environment = {**os.environ, "LD_PRELOAD": str(library), "GDB_MEMLEAK_AGENT_TEST_STOP": "1", **env}
    proc = subprocess.Popen(argv, env=environment, stdout=stdout, stderr=subprocess.DEVNULL)
    records: list[Read] = []
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    status = None
    while status is None:
        assert time.monotonic() < deadline, f"{argv} did not finish"
        for pid in _descendants(proc.pid):
            info = _state_and_ppid(pid)
            if pid not in seen and info and info[0] == "T":
                seen.add(pid)
                records.append(read(pid))
                os.kill(pid, signal.SIGCONT)
        pid, raw = os.waitpid(proc.pid, os.WNOHANG | os.WUNTRACED | os.WCONTINUED)
        if pid and (os.WIFEXITED(raw) or os.WIFSIGNALED(raw)):
            status = os.waitstatus_to_exitcode(raw)
        else:
            time.sleep(0.005)
    out = proc.stdout.read() if proc.stdout else b""
    proc.returncode = status
    return records, status, out
