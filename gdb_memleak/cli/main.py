"""`gdb-memleak [options] [--] PROG [ARGS...]`: run PROG under GDB in batch mode with tracking on.

The program keeps its own stdin/stdout; the report goes to stderr; the exit status is the program's own unless a
leak or heap error was found (then `--error-exitcode`, default 1). Arguments go to GDB as an argv list and GDB
starts the program without a shell.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Sequence

from .. import __version__
from ..argtypes import at_least_one, decimal_count, kind_set, mapping_kinds
from ..core.reports import WRITERS
from ..core.suppressions import SuppressionError, SuppressionList
from ..gdbinit import gdbinit_line

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOADER = os.path.join(PACKAGE_DIR, "load.py")
DRIVER = os.path.join(PACKAGE_DIR, "cli", "driver.py")
EXEC_SHIM = os.path.join(PACKAGE_DIR, "cli", "exec_shim.py")
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gdb-memleak",
        description="Run a program under GDB and report its memory leaks and heap errors (valgrind-style).",
        epilog="Example: gdb-memleak --json report.json -- ./prog arg1 arg2")
    for writer in WRITERS.values():
        parser.add_argument(f"--{writer.format}", metavar="FILE", help=writer.help)
    parser.add_argument("--depth", type=at_least_one, default=16, metavar="N",
                        help="caller frames recorded per allocation (default 16)")
    parser.add_argument("--error-exitcode", type=decimal_count, default=1, metavar="N",
                        help="exit status when a leak or heap error is found (default 1; 0 keeps the program's)")
    parser.add_argument("--errors-for-leak-kinds", type=kind_set, default="definite,possible", metavar="K[,K]",
                        help="leak kinds that count as errors for the exit status (default definite,possible; "
                             "all; none); heap errors always count")
    parser.add_argument("--errors-for-mappings", type=mapping_kinds, default="sysv,posix", metavar="K[,K]",
                        help="mappings and shared memory left behind that count as errors: mappings (regions "
                             "never unmapped), sysv (segments never removed), posix (shm objects never unlinked); "
                             "all; none (default sysv,posix: what outlives the program)")
    parser.add_argument("--show-leak-kinds", type=kind_set, default="definite,possible", metavar="K[,K]",
                        help="leak kinds listed in the report (default definite,possible; all)")
    parser.add_argument("--suppressions", action="append", default=[], metavar="FILE",
                        help="LeakSanitizer-format suppression file (leak:PATTERN lines); repeatable")
    parser.add_argument("--no-default-suppressions", action="store_true",
                        help="do not use the built-in suppressions of libc/libstdc++ one-off allocations")
    parser.add_argument("--on-error", choices=["skip", "report"], default="skip",
                        help="on a double/invalid free: skip the call and run on, like valgrind (default), "
                             "or report it and let it happen (glibc usually aborts)")
    parser.add_argument("--pid", type=at_least_one, metavar="PID",
                        help="attach to a running process instead of starting PROG")
    parser.add_argument("--duration", type=float, default=10.0, metavar="SECONDS",
                        help="with --pid: how long to track before reporting and detaching (default 10)")
    parser.add_argument("--engine", choices=["auto", "agent", "breakpoint"],
                        default=os.environ.get("GDB_MEMLEAK_ENGINE", "breakpoint"),
                        help="breakpoint (default; or $GDB_MEMLEAK_ENGINE): GDB breakpoints (any program; ~200 us a stop); agent: an "
                             "in-process recorder (allocation-heavy programs at near-native speed; dynamically "
                             "linked programs, no mmap/shm tracking yet); auto: agent when it can, else breakpoint, "
                             "saying why")
    parser.add_argument("--gdb", default="gdb", metavar="PATH", help="the GDB to use (default: gdb on PATH)")
    parser.add_argument("--gdbinit", action="store_true",
                        help="print the line for ~/.gdbinit after which `source gdb_memleak` loads the plugin in GDB")
    parser.add_argument("--version", action="version", version=f"gdb-memleak {__version__}")
    parser.add_argument("program", nargs="?", metavar="PROG", help="the program to run")
    parser.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS", help="its arguments")
    return parser


def find_program(name: str) -> str:
    """The executable to run, resolved like a shell would (PATH only when the name has no slash)."""
    path = name if os.sep in name else shutil.which(name)
    if path is None or not os.path.exists(path):
        raise LookupError(f"{name}: no such program")
    if os.path.isdir(path) or not os.access(path, os.X_OK):
        raise LookupError(f"{name}: not an executable file")
    return os.path.abspath(path)


def process_executable(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except FileNotFoundError:
        raise LookupError(f"no process with pid {pid}") from None
    except PermissionError:
        raise LookupError(f"process {pid}: permission denied (attaching needs the same user, or root)") from None


def dependency_dirs() -> list[str]:
    """Directories this Python imports the plugin's dependencies from, for GDB's (system) Python."""
    import pygments
    import tabulate

    dirs = []
    for module in (pygments, tabulate):
        directory = os.path.dirname(os.path.abspath(module.__file__))
        if os.path.basename(module.__file__).startswith("__init__"):
            directory = os.path.dirname(directory)
        if directory not in dirs:
            dirs.append(directory)
    return dirs


def gdb_command(gdb: str, program: str) -> list[str]:
    return [gdb, "-nx", "-q", "-batch", "-x", DRIVER, program]


def write_shim(directory: str) -> str:
    """An executable copy of exec_shim.py for SHELL (package files need not keep their mode bits when installed)."""
    path = os.path.join(directory, "gdb-memleak-exec")
    with open(EXEC_SHIM) as src, open(path, "w") as dst:
        dst.write(f"#!{sys.executable} -S\n{src.read()}")
    os.chmod(path, 0o700)
    return path


def run_under_gdb(gdb: str, program: str, args: Sequence[str], config: dict) -> int:
    """GDB's own stdout is discarded (the report is written to stderr); the program gets the real stdout through the shim (fd passed by number)."""
    stdout_fd = os.dup(1)
    try:
        with tempfile.TemporaryDirectory(prefix="gdb-memleak-") as tmp:
            env = dict(os.environ)
            env.update(
                SHELL=write_shim(tmp),
                GDB_MEMLEAK_CLI=json.dumps(config),
                GDB_MEMLEAK_PYTHONPATH=os.pathsep.join([os.path.dirname(PACKAGE_DIR), *dependency_dirs()]),
                GDB_MEMLEAK_EXEC=json.dumps({"argv": [program, *args], "stdout_fd": stdout_fd,
                                             "shell": os.environ.get("SHELL")}))
            return subprocess.run(gdb_command(gdb, program), env=env, stdout=subprocess.DEVNULL,
                                  pass_fds=(stdout_fd,)).returncode
    finally:
        os.close(stdout_fd)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    opts = parser.parse_args(argv)
    if opts.gdbinit:
        print(gdbinit_line())
        return 0
    if opts.pid and opts.program:
        print("gdb-memleak: error: give either --pid PID or a program to run, not both", file=sys.stderr)
        return EXIT_USAGE
    if not opts.program and not opts.pid:
        parser.print_usage(sys.stderr)
        print("gdb-memleak: error: a program to run (or --pid PID) is required", file=sys.stderr)
        return EXIT_USAGE
    if opts.duration <= 0:
        print("gdb-memleak: error: --duration must be positive", file=sys.stderr)
        return EXIT_USAGE
    args = opts.args[1:] if opts.args[:1] == ["--"] else opts.args
    try:
        program = find_program(opts.program) if opts.program else process_executable(opts.pid)
    except LookupError as exc:
        print(f"gdb-memleak: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    gdb = shutil.which(opts.gdb)
    if gdb is None:
        print(f"gdb-memleak: error: {opts.gdb}: GDB not found (install gdb or pass --gdb PATH)", file=sys.stderr)
        return EXIT_USAGE
    for path in opts.suppressions:
        try:
            SuppressionList.load(path)
        except SuppressionError as exc:
            print(f"gdb-memleak: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    outputs = {name: os.path.abspath(path) if path else None
               for name, path in ((name, getattr(opts, name)) for name in WRITERS)}
    config = {**outputs, "depth": opts.depth, "error_exitcode": opts.error_exitcode, "loader": LOADER,
              "argv": [program, *args], "error_kinds": sorted(opts.errors_for_leak_kinds),
              "pid": opts.pid, "duration": opts.duration, "progress": sys.stderr.isatty(),
              "shown_kinds": sorted(opts.show_leak_kinds),
              "errors_for_mappings": ",".join(sorted(opts.errors_for_mappings)) or "none", "on_error": opts.on_error,
              "engine": opts.engine,
              "suppressions": [os.path.abspath(p) for p in opts.suppressions],
              "default_suppressions": not opts.no_default_suppressions}
    try:
        return run_under_gdb(gdb, program, args, config)
    except KeyboardInterrupt:
        return 130


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
