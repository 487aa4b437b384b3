"""One batch run: GDB started on the program, and what the CLI does when it is interrupted.

GDB runs in its own process group, so a signal sent to the CLI's group (`kill -INT -PGID`, a shell's job control,
`timeout`) reaches only the CLI, which decides what it means, as valgrind would:
- the first SIGINT/SIGTERM/SIGHUP goes to the program (GDB passes it on; if it kills the program, the driver reports
  first, while the memory is still there); the report and every requested output are written, and the CLI exits
  with the program's status (128+signal when the signal killed it);
- a Ctrl-C typed while the report is being made, or any second interrupt, ends everything at once: GDB and the
  program are killed, nothing is left behind, exit 128+signal.
Ctrl-C typed while the program runs goes straight to the program: GDB hands the terminal to the program's process
group while it runs and gives it back to the CLI's group when the program stops.
With `--pid`, the first interrupt ends the tracking window early (the report is written and the process detached
and left running), a second one detaches at once without a report. The window is ended by a SIGSTOP to the
process, which GDB catches and discards: no mask or `sigwait` of the program holds it back, and the program never
sees it (a SIGINT would reach a server that waits for it in `sigwait` or a signalfd, and shut it down).
SIGUSR1 is the CLI's own: each asks for a live report (cli/live.py), through a pipe GDB reads; the program never
gets it.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from ..core.procstat import running
from . import caller
from .progress import reset_terminal

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXEC_SHIM = os.path.join(PACKAGE_DIR, "cli", "exec_shim.py")
INTERRUPTS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PR_SET_PDEATHSIG = 1
DETACH_GRACE = 10.0  # seconds a GDB asked to detach and quit has before it is killed
WINDOW_STOP = signal.SIGSTOP  # --pid: how the CLI stops the process to end the window (cli/driver.py discards it)
INSIST_AFTER = 10.0  # --pid: seconds after which a window stop the driver has not acted on is sent again

#: files the driver and the shim leave in the run's private directory for the CLI
PID_FILE = "program.pid"      # the program's pid (the shim writes it before exec)
REPORTING = "reporting"       # the driver is making the final report: the program no longer runs
END_WINDOW = "end-window"     # --pid: the CLI asks the driver to end the tracking window now
WINDOW_OPEN = "window-open"   # --pid: the driver started tracking (the window's time counts from then)
WINDOW_OVER = "window-over"   # --pid: the window ended because its time was up (not an interrupt)


@dataclass
class Launch:
    """What one run needs: the GDB command line, the program as the shim execs it, and the driver's config."""

    gdb_argv: list[str]
    executable: str              # the file the shim execs (a #! script itself: the kernel runs its interpreter)
    argv: list[str]              # the program's argv, argv[0] as the user typed it
    config: dict
    environment: dict[str, str] = field(default_factory=caller.environment)  # the program's: the caller's
    gdb_environment: dict[str, str] = field(default_factory=dict)  # added for GDB only
    attach_pid: int | None = None
    signals: caller.SignalState = field(default_factory=caller.signals)  # what the program starts with: the caller's


def write_shim(directory: str) -> str:
    """An executable copy of exec_shim.py for SHELL (package files need not keep their mode bits when installed)."""
    path = os.path.join(directory, "gdb-memleak-exec")
    with open(EXEC_SHIM) as src, open(path, "w") as dst:
        dst.write(f"#!{sys.executable} -S\n{src.read()}")
    os.chmod(path, 0o700)
    return path


def _in_gdb_child() -> None:
    """In GDB's child process: its own process group (the terminal's Ctrl-C reaches the CLI, which passes it on),
    and if the CLI is killed outright (SIGKILL), GDB goes too (and with it the program)."""
    os.setpgid(0, 0)  # what Popen's process_group=0 does, on every Python the package supports (3.9+)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def _send(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except OSError:  # it has just ended
        pass


class Run:
    """Starts GDB for one launch and handles interrupts until it ends; `start()` returns the CLI's exit status."""

    def __init__(self, launch: Launch, private_dir: str) -> None:
        self.launch, self.dir = launch, private_dir
        self.proc: subprocess.Popen | None = None
        self.received: list[int] = []
        self.aborted: int | None = None
        self.report_requests: int | None = None  # the pipe's write end: SIGUSR1 asks GDB for a live report
        self.window_lock = threading.Lock()  # --pid: the window's stop is sent once (signal handler or timer)
        self.window_stopped = False

    # -- files shared with the driver and the shim -----------------------------------------------------------
    def _path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def program_pid(self) -> int | None:
        if self.launch.attach_pid:
            return self.launch.attach_pid
        try:
            with open(self._path(PID_FILE)) as f:
                return int(f.read())
        except (OSError, ValueError):
            return None

    def reporting(self) -> bool:
        pid = self.program_pid()
        return os.path.exists(self._path(REPORTING)) or (pid is not None and not running(pid))

    # -- signals ----------------------------------------------------------------------------------------------
    def on_report_request(self, signum: int, frame: FrameType | None) -> None:
        """SIGUSR1: a live report now (a byte on the pipe; a full pipe already holds enough requests)."""
        if self.report_requests is not None:
            with contextlib.suppress(OSError):
                os.write(self.report_requests, b"!")

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)
        if self.aborted is not None:
            return
        pid = self.program_pid()
        if len(self.received) > 1 or pid is None or (signum == signal.SIGINT and self.reporting()):
            self.abort(signum)
        elif self.launch.attach_pid:
            Path(self._path(END_WINDOW)).touch()
            if os.path.exists(self._path(WINDOW_OPEN)):
                self._stop_window(pid)
            # else: GDB is still attaching (its catchpoint is not set yet): _end_window sends it once the window opens
        elif not self.reporting():
            _send(pid, signum)
        # else: the program is gone and the report is being written: let it finish

    def abort(self, signum: int) -> None:
        """End at once, leaving nothing behind: a started program is killed with GDB; an attached one is detached
        (GDB's own SIGTERM handling detaches from processes it attached to)."""
        self.aborted = signum
        sys.stderr.write(f"\ngdb-memleak: interrupted ({signal.Signals(signum).name}): stopped without a report\n")
        sys.stderr.flush()
        if self.proc is None:
            return
        if self.launch.attach_pid:
            self.proc.terminate()
            killer = threading.Timer(DETACH_GRACE, self._kill_gdb)  # a GDB asked to quit is killed if it has not
            killer.daemon = True
            killer.start()
            return
        pid = self.program_pid()
        if pid is not None and running(pid):
            _send(pid, signal.SIGKILL)
        self._kill_gdb()

    def _end_window(self, duration: float) -> None:
        """--pid: once the driver says tracking started, wait `duration` seconds, then end the window as an
        interrupt would. An interrupt that came while GDB was still attaching ends it as soon as it opens: the stop
        is never sent before the driver catches it (it would stop the process for good)."""
        while not os.path.exists(self._path(WINDOW_OPEN)):
            if self.proc is None or self.proc.poll() is not None:
                return
            time.sleep(0.02)
        pid = self.program_pid()
        if self.received:  # interrupted before the window opened: on_signal left the stop to us
            if self.aborted is None and pid is not None and not self.reporting():
                self._stop_window(pid)
            return
        time.sleep(duration)
        if self.aborted is not None or self.received or pid is None or self.reporting():
            return
        Path(self._path(WINDOW_OVER)).touch()
        Path(self._path(END_WINDOW)).touch()
        self._stop_window(pid)

    def _stop_window(self, pid: int) -> None:
        """Stop the process under GDB to end the window: once, then again every INSIST_AFTER seconds while the
        driver has not started the report (GDB may take a process-directed SIGSTOP for one of the SIGSTOPs it
        sends its threads itself). One left pending at the detach would stop the process: the driver continues
        a process it finds stopped after detaching (driver.py `_not_left_stopped`)."""
        with self.window_lock:
            if self.window_stopped:
                return
            self.window_stopped = True
            _send(pid, WINDOW_STOP)
        threading.Thread(target=self._insist, args=(pid,), daemon=True).start()

    def _insist(self, pid: int) -> None:
        while True:
            time.sleep(INSIST_AFTER)
            if self.aborted is not None or self.proc is None or self.proc.poll() is not None or self.reporting():
                return
            _send(pid, WINDOW_STOP)

    def _kill_gdb(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()

    def _wait(self, proc: subprocess.Popen) -> int:
        """Blocks in waitpid (signal handlers still run: Python retries it after them), so the CLI ends as soon as
        GDB does; `wait(timeout)` would poll, sleeping up to 50 ms past GDB's end."""
        return proc.wait()

    # -- the run ----------------------------------------------------------------------------------------------
    def start(self, env: dict[str, str], pass_fds: Sequence[int]) -> int:
        previous = {s: signal.signal(s, self.on_signal) for s in INTERRUPTS}
        previous[signal.SIGUSR1] = signal.signal(signal.SIGUSR1, self.on_report_request)
        try:
            self.proc = subprocess.Popen(  # preexec_fn is safe: the CLI runs no other thread
                self.launch.gdb_argv, env=env, stdout=subprocess.DEVNULL, pass_fds=tuple(pass_fds),
                preexec_fn=_in_gdb_child)
            if self.launch.attach_pid:
                threading.Thread(target=self._end_window, args=(float(self.launch.config["duration"]),),
                                 daemon=True).start()
            status = self._wait(self.proc)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        if self.aborted is not None:
            if self.launch.config.get("progress"):
                reset_terminal(2)  # GDB was killed: the status line's scroll region may still be set
            return 128 + self.aborted
        if self.launch.attach_pid and self.received and status == 0:
            return 128 + self.received[0]
        return status


def run(launch: Launch) -> int:
    """GDB's own stdout is discarded (the report goes to stderr); the program gets the real stdout through the
    shim (fd passed by number). The private directory is removed however the run ends."""
    stdout_fd = os.dup(1)
    requests, request_end = os.pipe()  # SIGUSR1 -> a live report: read in GDB (cli/live.py), written here
    os.set_blocking(request_end, False)
    try:
        with tempfile.TemporaryDirectory(prefix="gdb-memleak-") as private_dir:
            env_file = os.path.join(private_dir, "environment.json")
            with open(env_file, "w") as f:
                json.dump(launch.environment, f)
            config = {**launch.config, "private_dir": private_dir, "environment_file": env_file,
                      "report_fd": requests}
            env = {**launch.environment, **launch.gdb_environment}
            env.update(
                SHELL=write_shim(private_dir),
                GDB_MEMLEAK_CLI=json.dumps(config),
                GDB_MEMLEAK_EXEC=json.dumps({"executable": launch.executable, "argv": launch.argv,
                                             "stdout_fd": stdout_fd,
                                             "shell": launch.environment.get("SHELL"),
                                             "signals": launch.signals.as_json(),
                                             "pid_file": os.path.join(private_dir, PID_FILE)}))
            run = Run(launch, private_dir)
            run.report_requests = request_end
            return run.start(env, (stdout_fd, requests))
    finally:
        for fd in (stdout_fd, requests, request_end):
            os.close(fd)
