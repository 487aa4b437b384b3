"""Post-mortem: a tracking made from a core file (`gdb PROG CORE`), so `leaks`, `memleak status`, `memleak errors`
and `memleak check` report what the recorder's table held when the core was dumped.

The session asks for it when the selected inferior is a core (Session.current): the tracking's image is the core
(gdb/core_image.py: mappings, memory, registers) and its engine loads the recorder's table from it
(gdb/core_engine.py); nothing else knows it is a core. What cannot be had says why in one line (a gdb.GdbError):
no recorder in the core (a program run under the breakpoint engine, whose table lives in GDB), its memory not
dumped, the recorder stopped in that process.
"""

from __future__ import annotations

import os
import re
import signal
import struct
from typing import TYPE_CHECKING

import gdb

from ..core import agent_format as fmt
from ..core.abi import X86_64_SYSV
from ..core.corefile import CoreFile, CoreFileError, open_core
from ..core.elf import ElfError
from ..core.table import AllocationTable
from . import settings
from .core_engine import CoreTableEngine, FrozenClock, RecordedTable, last_moment
from .core_image import CoreImage
from .fatal import read_fatal_signal
from .tracking import Tracking

if TYPE_CHECKING:
    from .session import Session

#: signals whose default action dumps core (SIGTRAP left out: `gcore` at a breakpoint stop names it)
DUMPING = frozenset({"SIGQUIT", "SIGILL", "SIGABRT", "SIGBUS", "SIGFPE", "SIGSEGV", "SIGSYS", "SIGXCPU", "SIGXFSZ"})
CORE_TARGET = re.compile(r"core dump file:\s*`(?P<path>.+)', file type")


class PostMortemError(Exception):
    """Why a core gives no table (one line, without the `gdb-memleak: ` prefix)."""


def is_core(inferior: gdb.Inferior) -> bool:
    """Whether GDB is reading `inferior` from a core file."""
    connection = getattr(inferior, "connection", None)
    return connection is not None and getattr(connection, "type", None) == "core"


def core_path(inferior: gdb.Inferior) -> str | None:
    """The core file GDB has loaded for `inferior` (GDB 16 names it; before, `info target` does)."""
    corefile = getattr(inferior, "corefile", None)
    if corefile is not None:
        return str(corefile.filename)
    match = CORE_TARGET.search(gdb.execute("info target", to_string=True))
    return os.path.abspath(match["path"]) if match else None


def tracking_for(session: Session, inferior: gdb.Inferior, known: Tracking | None) -> Tracking:
    """The post-mortem tracking of the core `inferior` is read from: `known` while it is of that same file."""
    path = core_path(inferior)
    if path is None:
        raise gdb.GdbError("gdb-memleak: cannot tell which core file is loaded (`info target` names none)")
    if known is not None and isinstance(known.image, CoreImage) and known.image.identity == file_identity(path):
        return known
    try:
        return open_tracking(session, inferior, open_core(path))
    except (CoreFileError, PostMortemError) as exc:
        raise gdb.GdbError(f"gdb-memleak: {exc}") from None


def open_tracking(session: Session, inferior: gdb.Inferior, core: CoreFile) -> Tracking:
    """A tracking of the process `core` holds, its table read, its dumping signal and its stack noted."""
    image = CoreImage(core, file_identity(core.path))
    try:
        recorded = read_table(image)
    except PostMortemError:
        core.close()
        raise
    snapshot = recorded.snapshot
    start = snapshot.header.start_ns if snapshot is not None else 0
    clock = FrozenClock(started=start / 1e9, at=(last_moment(snapshot) - start) / 1e9 if snapshot else 0.0)
    table = AllocationTable(complete=bool(snapshot.header.complete) if snapshot is not None else True)
    argv = core.args.split() or [core.name or inferior.progspace.filename or "?"]
    tracking = Tracking(session, inferior, table, argv, X86_64_SYSV,
                        lambda t: CoreTableEngine(inferior, t.table, t, clock, image, recorded), clock, image=image)
    result = tracking.report.result
    result.core_file = core.path
    name = signal_name(core.signal)
    if name in DUMPING:
        result.signal = name
        result.fatal = read_fatal_signal(name, inferior, int(settings.depth.value), image.maps())
    tracking.refresh_maps()
    return tracking


def read_table(image: CoreImage) -> RecordedTable:
    """The recorder's table in the core, or PostMortemError saying why there is none."""
    path, maps = image.path, image.maps()
    library = fmt.recorder_library(maps)
    if library is None:
        raise PostMortemError(f"{path} holds no recorder table: the program did not run under gdb-memleak's "
                              "recorder (a program run under the breakpoint engine keeps its table in GDB, not in "
                              "its own memory)")
    try:
        anchor = fmt.anchor_address(maps)
    except (OSError, ElfError, struct.error) as exc:
        raise PostMortemError(f"{path}: the recorder library it maps ({library}) cannot be read here: {exc}") from None
    if anchor is None:
        raise PostMortemError(f"{path}: the recorder library it maps ({library}) has no table anchor")
    try:
        why = fmt.stopped_reason(image.read_exact, anchor)
        if why is not None:
            raise PostMortemError(f"{path}: the recorder had stopped in that process ({why}): it holds no table")
        region = fmt.region_address(image.read_exact, anchor)
        snapshot = fmt.read_snapshot(image.read_exact, region) if region else None
    except fmt.AgentFormatError as exc:
        why = str(exc).removeprefix("gdb-memleak: ")
        raise PostMortemError(f"{path} does not hold the recorder's table whole ({why}): its memory was not dumped "
                              "whole (the process's coredump_filter must keep bit 1, anonymous shared memory, as by "
                              "default, and `ulimit -c` let the core be written whole)") from None
    return RecordedTable(library, region, snapshot)


def file_identity(path: str) -> tuple[int, ...]:
    """Tells apart a file written again at the same path (a new core)."""
    try:
        st = os.stat(path)
    except OSError:
        return ()
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def signal_name(number: int) -> str | None:
    try:
        return signal.Signals(number).name if number else None
    except ValueError:
        return None
