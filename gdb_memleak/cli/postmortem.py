"""`gdb-memleak --core CORE PROG`: the checks made before GDB starts (one line each, exit 2), and the part of the run
made inside GDB (`read_core`, called by the driver): the core loaded, its recorder table read and scanned, the
report made as at an exit. The exit status is then 0, or --error-exitcode when something counted was found."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from ..core.corefile import CoreFileError, open_core

if TYPE_CHECKING:
    from ..gdb.session import Session

HELP = ("read the leaks and heap errors from CORE, a core file PROG dumped while it ran under gdb-memleak's recorder "
        "(the kernel's, or GDB's gcore): the usual report and files, no program is run")


def usage_problem(opts: argparse.Namespace) -> str | None:
    """What is wrong with the options around --core, or None."""
    if opts.pid:
        return "give either --core CORE PROG or --pid PID, not both"
    if not opts.program:
        return "--core CORE needs the program whose core it is: gdb-memleak --core CORE PROG"
    if opts.report_every is not None:
        return "--report-every needs a running program: a core is read once"
    if opts.args[1:] if opts.args[:1] == ["--"] else opts.args:
        return ("--core CORE PROG takes no program arguments (options go before PROG): a core is read, nothing "
                "is run")
    return None


def core_problem(core: str, program: str) -> str | None:
    """Why `core` cannot be read as a core of `program` (one line), or None."""
    try:
        with open_core(core) as image:
            executable, missing = image.executable(), image.missing
    except CoreFileError as exc:
        return str(exc)
    if missing:
        return (f"{core} is cut short: {missing:,} bytes of its memory are missing (written under a core size "
                "limit, `ulimit -c`, or onto a full disk)")
    if executable is None:
        return None  # no NT_FILE note saying it: GDB decides
    executable = executable.removesuffix(" (deleted)")
    if _same_file(executable, program) or os.path.basename(executable) == os.path.basename(program):
        return None  # the program, or a copy of it elsewhere (a core from another machine)
    return f"{core} is a core of {executable}, not of {program}"


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def read_core(path: str, session: Session) -> None:
    """Inside GDB: load the core, read the recorder's table from it, scan its memory and make the report (as a
    process's end makes it); gdb.error with one line when the core gives no table."""
    import gdb

    try:
        # the whole rest of the line is the file's name (GDB 13 takes no quotes there); GDB's warnings are kept out
        gdb.execute(f"core-file {path}", to_string=True)
    except gdb.error as exc:
        raise gdb.error(f"{path}: {exc}") from None
    try:
        tracking = session.current()
    except gdb.GdbError as exc:
        raise gdb.error(str(exc).removeprefix("gdb-memleak: ")) from None
    if tracking is None:
        raise gdb.error(f"{path}: GDB did not load it as a core file")
    tracking.scan()
    tracking.finish()

