"""Runs inside GDB (`gdb -batch -x driver.py PROG`) for the batch CLI; configured by GDB_MEMLEAK_CLI.

Either runs the program to its end, or (`--pid`) attaches to a running process, tracks it for a while, reports
and detaches.

Quits GDB with the CLI's exit status: the program's own, or `error_exitcode` when something was found.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TextIO

import gdb

if TYPE_CHECKING:  # imported at run time only once the loader has made the package importable
    from gdb_memleak.cli.live import LiveReports
    from gdb_memleak.core.report import ProcessReport
    from gdb_memleak.core.reports import ReportOptions, Writer

QUIET = ["set pagination off", "set confirm off", "set width 0",
         "set print inferior-events off", "set suppress-cli-notifications on", "set print thread-events off",
         "set debuginfod enabled off",
         # every signal goes to the program as without GDB (`all` leaves out SIGINT, which GDB keeps for itself)
         "handle all nostop noprint pass", "handle SIGINT nostop noprint pass",
         # forked children stay under GDB and run alongside their parent: each is tracked and reported
         "set detach-on-fork off", "set schedule-multiple on", "set follow-exec-mode same"]

#: a started program runs in non-stop mode: a stop halts only the thread that reports it. In all-stop mode GDB 13
#: halts every process to present any stop (a process at its `_exit`, a signal), and waits forever for a shell
#: sleeping in vfork while GDB holds the vfork child (`sh -c 'cmd & cmd; wait'`, `make -j2`)
NON_STOP = "set non-stop on"

#: signals whose default action ends the process (besides the faults in FATAL_SIGNALS): caught so that, when one is
#: about to kill the program, the report is made first, while its memory is still there
TERMINATING = frozenset({"SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGPIPE", "SIGALRM", "SIGUSR1", "SIGUSR2",
                         "SIGVTALRM", "SIGPROF", "SIGXCPU", "SIGXFSZ", "SIGIO", "SIGPWR"})


#: --pid: the signal that stops the attached process for the end of the window or a live report (runner.py)
STOP_SIGNAL = "SIGSTOP"


def _quiet(command: str) -> None:
    """A setting this GDB may not have (older versions): the run goes on without it."""
    from gdb_memleak.gdb.log import log

    try:
        gdb.execute(command, to_string=True)
    except gdb.error:
        log.debug("driver: %r not accepted by this GDB", command, exc_info=True)


def _environment() -> dict[str, str]:
    """The environment GDB will give the program (`show environment`; lines that are not NAME=VALUE belong to a
    multi-line value and are skipped)."""
    env = {}
    for line in gdb.execute("show environment", to_string=True).splitlines():
        name, eq, value = line.partition("=")
        if eq and name and not name[0].isspace():
            env[name] = value
    return env


def _give_the_users_environment(user: dict[str, str]) -> None:
    """GDB adds its own variables to the program's environment (LINES and COLUMNS, from readline) and the CLI adds
    its GDB_MEMLEAK_* ones: give the program exactly the user's, keeping the user's own values where set. The
    exec shim still needs GDB_MEMLEAK_EXEC (it removes it) and restores SHELL."""
    for name, value in _environment().items():
        if name in ("GDB_MEMLEAK_EXEC", "SHELL"):
            continue
        if name not in user:
            _quiet(f"unset environment {name}")
        elif value != user[name] and "\n" not in user[name]:
            _quiet(f"set environment {name}={user[name]}")


def _kills_the_process(pid: int, name: str) -> bool:
    """Whether signal `name`, being delivered now, ends the process: its action is the default one (no handler,
    not ignored), read from /proc (SigCgt/SigIgn)."""
    from gdb_memleak.core.procstat import signal_masks

    bit = 1 << (int(getattr(signal, name)) - 1)
    masks = signal_masks(pid)
    if not masks:
        return True
    return not (masks.get("SigCgt", 0) | masks.get("SigIgn", 0)) & bit


def _stop_signal() -> str | None:
    try:
        return signal.Signals(int(gdb.parse_and_eval("$_siginfo.si_signo"))).name
    except (gdb.error, ValueError):
        return None


#: threads whose signal stop ended the last `continue` (in non-stop mode the selected thread need not be one)
_SIGNALLED: list[gdb.InferiorThread] = []


def _note_signal(event: gdb.StopEvent) -> None:
    if isinstance(event, gdb.SignalEvent):
        from gdb_memleak.gdb.session import stopped_thread

        thread = stopped_thread(event)
        if thread is not None:
            _SIGNALLED.append(thread)


def _follow_to_the_end(session, private_dir: str | None, live: LiveReports | None = None,
                       report_now: Callable[[], None] | None = None) -> None:
    """Continue until every process has ended; at a signal that kills one, report first (memory still there), then
    let the signal be delivered, so the process dies of it as natively (its parent's wait status, a core dump as
    the limits allow). A signal the program handles or ignores is simply passed on. When `live` says a live report
    is due (it stopped every thread), `report_now` makes it before the processes go on."""
    from gdb_memleak.core.procstat import running, wait_status
    from gdb_memleak.gdb.session import FATAL_SIGNALS
    from gdb_memleak.gdb.threadstop import non_stop as in_non_stop_mode

    non_stop = in_non_stop_mode()
    while True:
        session.let_go_at_exit()
        signalled, _SIGNALLED[:] = list(_SIGNALLED), []
        for thread in signalled:
            if not thread.is_valid() or not thread.is_stopped():
                continue
            thread.switch()
            tracking = session.current()
            name = _stop_signal()
            inferior = gdb.selected_inferior()
            if tracking is not None and name in FATAL_SIGNALS | TERMINATING \
                    and _kills_the_process(inferior.pid, name):
                _mark(private_dir, "reporting")
                session.fatal_signal(tracking, name)
                _deliver(tracking, non_stop)
        for inferior in gdb.inferiors():
            if inferior.pid and not running(inferior.pid):  # ended, GDB not told yet: report it as it is
                session.ended_unseen(inferior, wait_status(inferior.pid))
        alive = [inferior for inferior in gdb.inferiors() if running(inferior.pid)]
        if not alive:
            return
        if live is not None and report_now is not None and live.due():
            report_now()
        if gdb.selected_inferior() not in alive:
            gdb.execute(f"inferior {alive[0].num}", to_string=True)
        gdb.execute("continue -a" if non_stop else "continue", to_string=True)


def _deliver(tracking, non_stop: bool) -> None:
    """Let the selected thread take its signal, which ends its process as natively (its parent's wait status, a core
    dump as the limits allow). In non-stop mode the process is detached: GDB hands each thread's pending signal on as
    it lets go, so the process dies of it without GDB (resuming it under GDB waited, now and then, forever for the
    end of threads halted for the scan)."""
    if not non_stop:
        gdb.execute("continue", to_string=True)
        return
    tracking.finish()
    gdb.execute(f"detach inferior {gdb.selected_inferior().num}", to_string=True)


def _mark(private_dir: str | None, name: str) -> None:
    """Tell the CLI (a file in the run's private directory), e.g. that the final report is being made."""
    if private_dir:
        with open(os.path.join(private_dir, name), "w"):
            pass


def _attach_window(pid: int, duration: float, session, private_dir: str, fatal: frozenset[str],
                   live: LiveReports, report_now: Callable[[], None]) -> None:
    """Attach, track for `duration` seconds (the CLI ends the window: runner.py) or until the CLI is interrupted,
    report what is known and still live, detach. The CLI ends the window, and a live report is asked for, with a
    SIGSTOP to the process (`STOP_SIGNAL`): caught here and never delivered while the window is open (GDB runs an
    attached process in all-stop mode, where its own `interrupt` would send the process group a SIGINT)."""
    ended = os.path.join(private_dir, "end-window")
    gdb.execute(f"attach {pid}", to_string=True)
    session.start()
    gdb.execute(f"catch signal {STOP_SIGNAL}", to_string=True)
    gdb.breakpoints()[-1].silent = True
    _quiet(f"handle {STOP_SIGNAL} nopass")
    live.stop_with = lambda: os.kill(pid, getattr(signal, STOP_SIGNAL))
    live.start()  # only now: a SIGSTOP before the catchpoint would stop the process for good
    _mark(private_dir, "window-open")
    gdb.execute("continue", to_string=True)
    while gdb.selected_inferior().pid:
        name = _stop_signal()
        if name == STOP_SIGNAL and os.path.exists(ended):
            _mark(private_dir, "reporting")
            live.stop()
            early = not os.path.exists(os.path.join(private_dir, "window-over"))
            session.detach(session.current(), duration, early=early)
            _not_left_stopped(pid)
            return
        if name == STOP_SIGNAL and live.due():
            report_now()
        elif name in fatal:  # the program crashes: reported as a run's end is
            _follow_to_the_end(session, private_dir)
            return
        # another signal the catchpoints stop at (SIGUSR1, SIGTERM ...): the program gets it, as without GDB
        gdb.execute("continue", to_string=True)


def _not_left_stopped(pid: int, seconds: float = 0.2) -> None:
    """After the window's detach: a window stop the CLI sent again (runner.py `_insist`) that was still pending
    when GDB let the process go stops it for good; it is continued (checked for a moment: the signal is taken when
    the process next runs)."""
    import time

    from gdb_memleak.core.procstat import stat_fields

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        fields = stat_fields(pid)
        if fields is None:
            return
        if fields[0] == "T":
            os.kill(pid, signal.SIGCONT)
            return
        time.sleep(0.01)


def _run(config: dict) -> int:
    gdb.execute(f"source {config['loader']}")
    root = 0
    try:
        from gdb_memleak.cli.progress import Progress
        from gdb_memleak.gdb import settings
        from gdb_memleak.gdb.session import FATAL_SIGNALS, SESSION
    except ImportError:
        return 2  # the loader already said what is missing
    for command in QUIET:
        _quiet(command)
    if config.get("environment_file"):
        with open(config["environment_file"]) as f:
            _give_the_users_environment(json.load(f))
    SESSION.stream = open(os.dup(2), "w", buffering=1)
    SESSION.argv = list(config["argv"])
    settings.depth.value = int(config["depth"])
    settings.on_error.value = config["on_error"]
    settings.engine.value = config.get("engine", "auto")
    settings.default_suppressions.value = config["default_suppressions"]
    settings.suppressions.value = ":".join(config["suppressions"])
    settings.num_callers = int(config.get("num_callers", settings.num_callers))
    SESSION.gen_suppressions = bool(config.get("gen_suppressions"))
    SESSION.shown_kinds = frozenset(config["shown_kinds"])
    SESSION.error_kinds = frozenset(config["error_kinds"])
    settings.errors_for_mappings.value = config.get("errors_for_mappings", "sysv,posix")
    settings.leak_check_heuristics.value = config.get("heuristics", "all")
    gdb.execute(f"catch signal {' '.join(sorted(FATAL_SIGNALS | TERMINATING))}", to_string=True)
    gdb.breakpoints()[-1].silent = True  # a silent catchpoint: the program's stdout gets no GDB chatter
    progress = Progress(SESSION, SESSION.stream.fileno()) if config.get("progress") else None
    if progress is not None:
        progress.start()
    live = _live_reports(config)
    try:
        if config.get("core"):
            from gdb_memleak.cli.postmortem import read_core

            read_core(config["core"], SESSION)
        elif config.get("pid"):
            _attach_window(int(config["pid"]), float(config["duration"]), SESSION, config["private_dir"],
                           frozenset(FATAL_SIGNALS), live, lambda: _report_live(live, config))
        else:
            SESSION.start()
            SESSION.end_at_exit = True  # processes are let go at their `_exit` (Tracking.exiting)
            _quiet(NON_STOP)
            live.start()  # its requests interrupt the program once it runs (before, `interrupt -a` does nothing)
            gdb.execute("run", to_string=True)
            root = gdb.inferiors()[0].pid  # the program started (its forked children end in any order)
            _follow_to_the_end(SESSION, config.get("private_dir"), live, lambda: _report_live(live, config))
    except gdb.error as exc:
        SESSION.stream.write(f"gdb-memleak: error: {exc}\n")
        return 2
    finally:
        live.stop()
        if progress is not None:
            progress.finish()
    reports = SESSION.finished_reports()
    if not reports or not _write_files(config, reports):
        return 2
    # the exit status is the program's own: its last image's (after an exec), not that of a child ending later
    result = next((r.result for r in reversed(reports) if r.result.pid == root), reports[-1].result)
    core = bool(config.get("core"))  # a core is read, not run: what it holds decides, not how the process ended
    if result.signal is not None and not core:  # killed by a signal: 128+N like a shell; valgrind dies of it too
        return 128 + int(getattr(signal, result.signal, 9))
    # None: detached, the process runs on
    status = result.exit_code if result.exit_code is not None and not core else 0
    found = any(r.findings(SESSION.error_kinds, settings.mapping_error_kinds()) for r in reports)
    return config["error_exitcode"] if found and config["error_exitcode"] else status


def _live_reports(config: dict) -> LiveReports:
    """The live reports asked for (`--report-every`, and SIGUSR1 through the CLI's pipe), not started yet (the
    caller starts them once the program runs: requests made before wait in the pipe). The pipe's end is GDB's alone:
    the program, which GDB forks, must not inherit it."""
    from gdb_memleak.cli.live import LiveReports

    fd = config.get("report_fd")
    if fd is not None:
        os.set_inheritable(fd, False)
    every = config.get("report_every")
    return LiveReports(fd, float(every) if every else None)


def _report_live(live: LiveReports, config: dict) -> None:
    """A live report of every process being tracked, the requested files rewritten with the processes that ended
    and those still running."""
    from gdb_memleak.core.reports.text import render_report
    from gdb_memleak.gdb.session import SESSION

    running = [t for t in SESSION.tracking.values() if t.alive and t.shares_memory_with is None and not t.reported]
    options = SESSION.report_options()

    def render(out: TextIO, shown: Sequence) -> None:
        for tracking in shown:
            render_report(tracking.report, out, options)

    def write(shown: Sequence) -> bool:
        return _write_files(config, SESSION.finished_reports() + [t.report for t in shown])

    live.report(running, render, SESSION.out(), write)


def _write_files(config: dict, reports: Sequence[ProcessReport]) -> bool:
    """Every file the run was asked for (they list what the report lists); whether all were written."""
    from gdb_memleak.core.report import LeakFilter
    from gdb_memleak.core.reports import WRITERS, ReportOptions
    from gdb_memleak.gdb.session import SESSION

    options = ReportOptions(where=LeakFilter(kinds=SESSION.shown_kinds), error_kinds=SESSION.error_kinds,
                            command=config.get("command", ()), gen_suppressions=SESSION.gen_suppressions,
                            quiet=bool(config.get("quiet")), verbose=bool(config.get("verbose")))
    return all([_write_file(f"--{key}", path, writer, part, options, SESSION.out())
                for key, writer in WRITERS.items() if config.get(key)
                for path, part in writer.files(config[key], reports)])


def _write_file(option: str, path: str, writer: Writer, reports: Sequence[ProcessReport], options: ReportOptions,
                stream: TextIO) -> bool:
    """One requested file, replaced whole: written beside it under a temporary name, then renamed over it, so a
    reader (a tool watching a file live reports rewrite) never sees it half written. A path that is not a regular
    file (/dev/stdout, a FIFO) or whose directory cannot take the temporary file is written in place. When it fails
    (a full disk, /dev/full: every check made before the run passed), one line names it and the run exits 2.
    Whether it was written."""
    temporary = _beside(path)
    try:
        with open(temporary or path, "w") as f:
            writer.write(reports, f, options)
        if temporary:
            os.replace(temporary, path)
    except OSError as exc:
        if temporary:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        stream.write(f"gdb-memleak: error: cannot write {option} {path}: {exc.strerror or exc}\n")
        return False
    return True


def _beside(path: str) -> str | None:
    """A temporary name in `path`'s directory for an atomic replace, or None when `path` must be written in place."""
    directory, name = os.path.split(os.path.abspath(path))
    if os.path.exists(path) and not os.path.isfile(path) or not os.access(directory, os.W_OK | os.X_OK):
        return None
    return os.path.join(directory, f".{name}.{os.getpid()}.tmp")


def _profiled(config: dict) -> int:
    """`GDB_MEMLEAK_PROFILE=FILE`: the run under cProfile, its statistics written to FILE (for `python -m pstats`);
    how the end-to-end benchmarks find where GDB's time goes."""
    import cProfile

    profile = cProfile.Profile()
    try:
        return profile.runcall(_run, config)
    finally:
        profile.dump_stats(os.environ["GDB_MEMLEAK_PROFILE"])


#: (path, build-id) of each separate debug file GDB read this run (objfiles go when their process does)
_DEBUG_FILES: list[tuple[str, str]] = []


def _note_debug_file(event: gdb.NewObjFileEvent) -> None:
    objfile = event.new_objfile
    if objfile.owner is not None and objfile.filename and objfile.build_id:
        _DEBUG_FILES.append((objfile.filename, objfile.build_id))


def _keep_inflated_debug_files() -> None:
    """Inflated copies of the compressed separate debug files this run read, for the next runs (cli/early.py
    looks there first): made once per build-id, after the report is out."""
    if not _DEBUG_FILES:
        return
    from gdb_memleak.agent.build import cache_root
    from gdb_memleak.cli import debug_cache

    cache = debug_cache.directory(str(cache_root()))
    for path, build_id in dict(_DEBUG_FILES).items():
        debug_cache.store(path, build_id, cache)


def _index_cache_wrote() -> bool:
    """Whether GDB indexed an object this run that its index cache did not hold: GDB then writes that index in a
    background thread, which a normal quit waits for."""
    try:
        stats = gdb.execute("show index-cache stats", to_string=True)
    except gdb.error:
        return True
    misses = re.search(r"misses[^:]*:\s*(\d+)", stats)
    return misses is None or int(misses.group(1)) > 0


def _quit(status: int) -> None:
    """Leave GDB with `status`. When every process has ended and no index is being written, the report and files
    are already out: after the exit handlers (atexit) and a flush, the process exits at once, skipping GDB's and
    Python's teardown (freeing every symbol table and module: ~50 ms at a small program). Otherwise GDB's `quit`
    kills what is left."""
    if not _processes_left() and not _index_cache_wrote():
        _exit_now(status)
    try:
        gdb.execute(f"quit {status}")
    except gdb.error:  # a process GDB still lists has ended meanwhile: nothing left to kill
        _exit_now(status)


def _processes_left() -> bool:
    """Whether GDB has a process that has not ended (one it still lists may have: a vfork child let go with its
    parent); GDB's own word when the package did not load."""
    try:
        from gdb_memleak.core.procstat import running
    except ImportError:
        return any(inferior.pid for inferior in gdb.inferiors())
    return any(running(inferior.pid) for inferior in gdb.inferiors())


def _exit_now(status: int) -> None:
    atexit._run_exitfuncs()
    session = sys.modules.get("gdb_memleak.gdb.session")
    for stream in (sys.stdout, sys.stderr, getattr(getattr(session, "SESSION", None), "stream", None)):
        if stream is not None and not getattr(stream, "closed", False):
            stream.flush()
    gdb.flush(gdb.STDOUT)
    gdb.flush(gdb.STDERR)
    os._exit(status)


def main() -> None:
    gdb.events.new_objfile.connect(_note_debug_file)
    gdb.events.stop.connect(_note_signal)
    try:
        config = json.loads(os.environ["GDB_MEMLEAK_CLI"])
        status = _profiled(config) if os.environ.get("GDB_MEMLEAK_PROFILE") else _run(config)
        _keep_inflated_debug_files()
    except Exception as exc:  # noqa: BLE001 - report, never leave GDB at a prompt
        os.write(2, f"gdb-memleak: internal error: {exc!r}\n".encode())
        status = 2
    _quit(status)


main()
