"""`gdb-memleak [options] [--] PROG [ARGS...]`: run PROG under GDB in batch mode with tracking on.

The program keeps its own stdin/stdout; the report goes to stderr; the exit status is the program's own unless a
leak or heap error was found (then `--error-exitcode`, default 1). Arguments go to GDB as an argv list and GDB
starts the program without a shell.
"""

from __future__ import annotations

import argparse
import atexit
import importlib.util
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from .. import __version__
from ..argtypes import (
    ENGINES,
    at_least_one,
    engine_from_environment,
    exit_status,
    heuristic_set,
    kind_set,
    mapping_kinds,
)
from ..core.heuristics import heuristics_text
from ..gdbinit import gdbinit_line
from . import caller, postmortem, runner
from .formats import OUTPUT_FORMATS
from .runner import Launch
from .valgrind_options import NUM_CALLERS, OptionError, expand_log_name, translate

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOADER = os.path.join(PACKAGE_DIR, "load.py")
DRIVER = os.path.join(PACKAGE_DIR, "cli", "driver.py")
EARLY = os.path.join(PACKAGE_DIR, "cli", "early.py")  # before the program's symbols are read: GDB's index cache
EXIT_USAGE = 2
DEFAULT_DURATION = 10.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gdb-memleak",
        description="Run a program under GDB and report its memory leaks and heap errors (valgrind-style).",
        epilog="Example: gdb-memleak --json report.json -- ./prog arg1 arg2. valgrind's options are accepted too "
               "(--leak-check=full, --num-callers=N, --gen-suppressions=all, --xml=yes, ...: see README)",
        allow_abbrev=False)
    for name, help_text in OUTPUT_FORMATS.items():
        parser.add_argument(f"--{name}", dest=name, metavar="FILE", help=help_text.replace("%", "%%"))  # plain text
    parser.add_argument("--depth", type=at_least_one, default=16, metavar="N",
                        help="caller frames recorded per allocation (default 16)")
    parser.add_argument("--error-exitcode", type=exit_status, default=1, metavar="N",
                        help="exit status (0 to 255) when a leak or heap error is found (default 1; 0 keeps the "
                             "program's)")
    parser.add_argument("--errors-for-leak-kinds", type=kind_set, default="definite,possible", metavar="K[,K]",
                        help="leak kinds that count as errors for the exit status (default definite,possible; "
                             "all; none); heap errors always count")
    parser.add_argument("--errors-for-mappings", type=mapping_kinds, default="sysv,posix", metavar="K[,K]",
                        help="mappings and shared memory left behind that count as errors: mappings (regions "
                             "never unmapped), sysv (segments never removed), posix (shm objects never unlinked); "
                             "all; none (default sysv,posix: what outlives the program)")
    parser.add_argument("--leak-check-heuristics", type=heuristic_set, default="all", metavar="H[,H]",
                        help="valgrind's heuristics that count some interior pointers as start pointers: stdstring, "
                             "length64, newarray, multipleinheritance; all (default); none")
    parser.add_argument("--show-leak-kinds", type=kind_set, default="definite,possible", metavar="K[,K]",
                        help="leak kinds listed in the report (default definite,possible; all)")
    parser.add_argument("--suppressions", action="append", default=[], metavar="FILE",
                        help="valgrind suppression file, or LeakSanitizer-format (leak:PATTERN lines); repeatable")
    parser.add_argument("--gen-suppressions", action="store_true",
                        help="after each heap error and loss record, the valgrind suppression block that hides it "
                             "(valgrind's --gen-suppressions=all)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="--log-file: only the heap errors and loss records (valgrind's -q)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="--log-file: the used-suppression counts too (valgrind's -v)")
    parser.add_argument(NUM_CALLERS, type=at_least_one, default=12, help=argparse.SUPPRESS)  # valgrind's
    parser.add_argument("--no-default-suppressions", action="store_true",
                        help="do not use the built-in suppressions of libc/libstdc++ one-off allocations")
    parser.add_argument("--on-error", choices=["skip", "report"], default="skip",
                        help="on a double/invalid free: skip the call and run on, like valgrind (default), "
                             "or report it and let it happen (glibc usually aborts)")
    parser.add_argument("--pid", type=at_least_one, metavar="PID",
                        help="attach to a running process instead of starting PROG")
    parser.add_argument("--core", metavar="CORE", help=postmortem.HELP)
    parser.add_argument("--duration", type=float, metavar="SECONDS",
                        help="with --pid: how long to track before reporting and detaching (default 10)")
    parser.add_argument("--report-every", type=float, metavar="SECONDS",
                        help="while the program runs, print a live report (leak kinds, changes since the last "
                             "report, what keeps growing) every SECONDS and rewrite the output files; the program "
                             "runs on. `kill -USR1` of the gdb-memleak process asks for one at any time (the "
                             "program never gets that signal)")
    parser.add_argument("--engine", choices=ENGINES,  # default: $GDB_MEMLEAK_ENGINE, checked in main()
                        help="auto (default; or $GDB_MEMLEAK_ENGINE): agent when it can, else breakpoint, saying "
                             "why in one line; agent: an in-process recorder (allocation-heavy programs at "
                             "near-native speed; dynamically linked programs GDB starts); breakpoint: GDB "
                             "breakpoints (any program, attach; ~200 us a stop)")
    parser.add_argument("--gdb", default="gdb", metavar="PATH", help="the GDB to use (default: gdb on PATH)")
    parser.add_argument("--gdbinit", action="store_true",
                        help="print the line for ~/.gdbinit after which `source gdb_memleak` loads the plugin in GDB")
    parser.add_argument("--version", action="version", version=f"gdb-memleak {__version__}")
    parser.add_argument("program", nargs="?", metavar="PROG", help="the program to run")
    parser.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS", help="its arguments")
    return parser


@dataclass
class Program:
    """What to run: the file GDB loads (a #! script's interpreter), the file to exec, and argv as typed."""

    target: str        # the executable GDB debugs first
    executable: str    # what the shim execs (the script itself for a #! script: the kernel runs its interpreter)
    argv: list[str]


def find_program(name: str, args: Sequence[str]) -> Program:
    """The program to run, resolved like a shell would (PATH only when the name has no slash); argv[0] stays `name`.
    A `#!` script runs as the kernel runs it: GDB starts on its interpreter and follows it into every program the
    script executes (forks and execs are tracked), as valgrind's --trace-children=yes would."""
    path = name if os.sep in name else shutil.which(name)
    if path is None or not os.path.exists(path):
        raise LookupError(f"{name}: no such program")
    if os.path.isdir(path) or not os.access(path, os.X_OK):
        raise LookupError(f"{name}: not an executable file")
    with open(path, "rb") as f:
        head = f.read(256)
    if head.startswith(b"\x7fELF"):
        return Program(os.path.abspath(path), path, [name, *args])
    if head.startswith(b"#!"):
        interpreter = head[2:].split(b"\n", 1)[0].strip().split(maxsplit=1)
        if not interpreter or not os.access(interpreter[0], os.X_OK):
            shown = interpreter[0].decode(errors="replace") if interpreter else "(none)"
            raise LookupError(f"{name}: its #! interpreter {shown} is not an executable file")
        return Program(os.fsdecode(interpreter[0]), path, [name, *args])  # the kernel passes `path` as $0
    raise LookupError(f"{name}: neither an ELF executable nor a #! script (run it through its interpreter: "
                      f"gdb-memleak -- /bin/sh {name})")


def process_executable(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except FileNotFoundError:
        raise LookupError(f"no process with pid {pid}") from None
    except PermissionError:
        raise LookupError(f"process {pid}: permission denied (attaching needs the same user, or root)") from None


def dependency_dirs() -> list[str]:
    """Directories this Python imports the plugin's dependencies from, for GDB's (system) Python. Found without
    importing them (the CLI itself never uses them)."""
    dirs = []
    for name in ("pygments", "tabulate", "numpy"):
        spec = importlib.util.find_spec(name)
        path = spec.origin if spec is not None else None
        if path is None:  # missing (GDB's loader says so) or a namespace package: not how these are installed
            continue
        directory = os.path.dirname(os.path.abspath(path))
        if os.path.basename(path).startswith("__init__"):
            directory = os.path.dirname(directory)
        if directory not in dirs:
            dirs.append(directory)
    return dirs


def gdb_command(gdb: str, program: str) -> list[str]:
    return [gdb, "-nx", "-q", "-batch", "-ix", EARLY, "-x", DRIVER, program]


def check_output_path(path: str) -> str | None:
    """Why `path` cannot be written (checked before the program runs), or None. Nothing is created."""
    if os.path.isdir(path):
        return "is a directory"
    if os.path.exists(path):
        return None if os.access(path, os.W_OK) else "permission denied"
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        return f"no such directory {directory}"
    return None if os.access(directory, os.W_OK | os.X_OK) else f"directory {directory} is not writable"


def suppression_problem(path: str) -> str | None:
    """What is wrong with a suppression file (one line), or None. The parser is imported here, as most runs
    give no --suppressions (it brings in the report model)."""
    from ..core.suppressions import SuppressionError, SuppressionList

    try:
        SuppressionList.load(path)
    except SuppressionError as exc:
        return str(exc)
    return None


def error(message: str) -> int:
    print(f"gdb-memleak: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def own_options(argv: Sequence[str], opts: argparse.Namespace) -> list[str]:
    """The options given to gdb-memleak itself, as typed: `argv` without the program and its arguments."""
    own = list(argv[:len(argv) - len(opts.args) - (1 if opts.program else 0)])
    return own[:-1] if own[-1:] == ["--"] else own


def option_arities(parser: argparse.ArgumentParser) -> dict[str, bool]:
    """Each option string of `parser` -> whether it takes a value (`--json FILE`: True; `--gdbinit`: False)."""
    return {option: action.nargs != 0 for action in parser._actions for option in action.option_strings}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        translation = translate(argv, option_arities(parser))
    except OptionError as exc:
        return error(str(exc))
    if (note := translation.note()) is not None:
        print(note, file=sys.stderr)
    opts = parser.parse_args(translation.args)
    if opts.gdbinit:
        print(gdbinit_line())
        return 0
    if opts.core and (problem := postmortem.usage_problem(opts)):
        return error(problem)
    if opts.pid and opts.program:
        return error("give either --pid PID or a program to run, not both")
    if not opts.program and not opts.pid:
        parser.print_usage(sys.stderr)
        return error("a program to run (or --pid PID) is required")
    if opts.duration is not None and not opts.pid:
        return error("--duration only applies with --pid (how long to track an attached process); "
                     "a program started by gdb-memleak is tracked until it ends")
    try:
        engine = opts.engine or engine_from_environment()
    except ValueError as exc:
        return error(str(exc))
    if opts.report_every is not None and not opts.report_every > 0:
        return error("--report-every must be a positive number of seconds")
    duration = DEFAULT_DURATION if opts.duration is None else opts.duration
    if duration <= 0:
        return error("--duration must be positive")
    args = opts.args[1:] if opts.args[:1] == ["--"] else opts.args
    try:
        program = find_program(opts.program, args) if opts.program else None
        target = program.target if program else process_executable(opts.pid)
    except LookupError as exc:
        return error(str(exc))
    if opts.core and (problem := postmortem.core_problem(opts.core, target)):
        return error(problem)
    gdb = shutil.which(opts.gdb)
    if gdb is None:
        return error(f"{opts.gdb}: GDB not found (install gdb or pass --gdb PATH)")
    for path in opts.suppressions:
        problem = suppression_problem(path)
        if problem:
            return error(problem)
    try:  # valgrind's %q{VAR} in its file names (%p: per process, in the driver)
        outputs = {name: expand_log_name(path) if path else None
                   for name in OUTPUT_FORMATS for path in [getattr(opts, name)]}
    except OptionError as exc:
        return error(str(exc))
    for name, path in outputs.items():
        problem = check_output_path(path) if path else None
        if problem:
            return error(f"--{name} {path}: cannot write there: {problem}")
    report_argv = program.argv if program else [target]
    config = {**{k: os.path.abspath(v) if v else None for k, v in outputs.items()},
              "depth": opts.depth, "error_exitcode": opts.error_exitcode, "loader": LOADER,
              "argv": report_argv, "error_kinds": sorted(opts.errors_for_leak_kinds),
              "pid": opts.pid, "duration": duration, "report_every": opts.report_every,
              "progress": sys.stderr.isatty() and not opts.core,
              "core": os.path.abspath(opts.core) if opts.core else None,
              "shown_kinds": sorted(opts.show_leak_kinds),
              "errors_for_mappings": ",".join(sorted(opts.errors_for_mappings)) or "none", "on_error": opts.on_error,
              "engine": engine, "heuristics": heuristics_text(opts.leak_check_heuristics),
              "suppressions": [os.path.abspath(p) for p in opts.suppressions],
              "default_suppressions": not opts.no_default_suppressions,
              "gen_suppressions": opts.gen_suppressions, "quiet": opts.quiet, "verbose": opts.verbose,
              "num_callers": getattr(opts, NUM_CALLERS[2:].replace("-", "_")),
              "command": [os.path.abspath(sys.argv[0]) if sys.argv[0] else "gdb-memleak", *own_options(argv, opts)]}
    environment = caller.environment()
    python_set = {k: v for k, v in os.environ.items() if environment.get(k) != v}  # PEP 538's LC_CTYPE: GDB's only
    launch = Launch(gdb_command(gdb, target), program.executable if program else target, report_argv, config,
                    environment=environment,
                    gdb_environment={**python_set,
                                     "GDB_MEMLEAK_PYTHONPATH": os.pathsep.join([os.path.dirname(PACKAGE_DIR),
                                                                                *dependency_dirs()])},
                    attach_pid=opts.pid)
    return runner.run(launch)


def entry() -> None:
    """The console script. Once a run is over the CLI exits without tearing the interpreter down (unloading every
    module costs tens of milliseconds at the end of each run); argparse's exits (--help, usage) go the usual way.
    What the caller gave the CLI (environment, signal state) is read first, before the CLI changes it (cli/caller.py).
    """
    caller.remember()
    status = main()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said there
            pass
    os._exit(status)


if __name__ == "__main__":
    entry()
