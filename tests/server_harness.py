"""Running the thread-pool server of c_targets/server/ the way a server is run: started (natively, under the CLI or
under valgrind), loaded from outside by its driver (server_load), and ended by QUIT or SIGTERM.

The server writes "listening SOCKET" on stdout once it accepts connections; a run whose stdout a helper captures
(the CLI's `run_cli`, valgrind's helpers) is waited for by connecting instead: the first connection that succeeds
carries no request, and it is one connection in every run, so runs of one shape make the same allocations.
"""

from __future__ import annotations

import contextlib
import json
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from conftest import ROOT, TARGETS

SERVER_SOURCE = TARGETS / "server" / "server.c"
CLI = [sys.executable, "-m", "gdb_memleak.cli.main"]
#: how the server takes SIGTERM/SIGINT/SIGHUP: a handler in the main thread, or a signalfd (every thread blocks them)
SIGNAL_MODES = {"handler": [], "signalfd": ["--signalfd"]}
LIVE_REPORT_END = re.compile(r"^gdb-memleak: end of live report \d+\b", re.M)  # the last line of a live report
STARTUP_SECONDS = 120  # a server not listening by then (or reports not made) has failed: not a timing test
T = TypeVar("T")
R = TypeVar("R", bound="Repeating")


@dataclass(frozen=True)
class Load:
    """The driver's closing line: requests sent, answered OK, failed, and the OK ones of each kind."""

    requests: int
    ok: int
    failed: int
    login: int
    get: int
    echo: int
    stats: int


def drive(built_targets: Path, sock: Path, seconds: float, rate: float, *options: str) -> Load:
    """server_load with `options` (-c CLIENTS, -n REQUESTS, -q) against the server at `sock`; its exit status is
    not checked here (a test asserts `failed`)."""
    proc = subprocess.run([str(built_targets / "server_load"), *options, str(sock), str(seconds), str(rate)],
                          capture_output=True, text=True, timeout=600)
    m = re.fullmatch(r"requests (\d+) ok (\d+) failed (\d+) login (\d+) get (\d+) echo (\d+) stats (\d+)\n",
                     proc.stdout)
    assert m, (proc.returncode, proc.stdout, proc.stderr)
    return Load(*(int(g) for g in m.groups()))


def ask(sock: Path, line: str, timeout: float | None = None) -> str:
    """One request on its own connection; the answer without its newline."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(sock))
        s.sendall(line.encode() + b"\n")
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = s.recv(4096)
            assert chunk, f"the server closed the connection after {answer!r}"
            answer += chunk
    return answer.decode().rstrip("\n")


def stats(sock: Path) -> dict[str, int]:
    """The server's STATS: requests, logins, cache_entries, cache_hits."""
    answer = ask(sock, "STATS")
    assert answer.startswith("OK "), answer
    return {key: int(value) for key, value in (word.split("=") for word in answer.split()[1:])}


def _connectable(sock: Path, ended: threading.Event) -> bool:
    """Waits until the server at `sock` accepts a connection (True), or `ended` is set (False)."""
    while not ended.is_set():
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(str(sock))
            return True
        except (FileNotFoundError, ConnectionRefusedError):
            ended.wait(0.05)
    return False


def driven(built_targets: Path, sock: Path, run: Callable[[], T], rate: float, *options: str) -> tuple[T, Load]:
    """`run()` (a server under valgrind or the CLI: it returns when the server has ended) while a thread waits for
    the server to accept connections and drives it at `rate` with `options`, which end with -q."""
    loads: list[Load] = []
    ended = threading.Event()

    def load() -> None:
        if _connectable(sock, ended):
            loads.append(drive(built_targets, sock, 0, rate, *options))

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    try:
        result = run()
    finally:
        ended.set()
        thread.join(timeout=600)
    assert loads, f"the server never accepted a connection: {result}"
    return result, loads[0]


class Repeating:
    """`step()` done again and again in a thread while the `with` block runs (and once more if it was under way)."""

    def __init__(self, pause: float = 0.0) -> None:
        self.pause = pause
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self._repeat, daemon=True)

    def step(self) -> None:
        raise NotImplementedError

    def _repeat(self) -> None:
        while not self.stopping.wait(self.pause):
            self.step()

    def __enter__(self: R) -> R:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._thread.join(timeout=600)


class Loader(Repeating):
    """The driver run again and again (half a second each) at `rate`: load for as long as a tool takes."""

    def __init__(self, built_targets: Path, sock: Path, rate: float) -> None:
        super().__init__()
        self.built_targets, self.sock, self.rate = built_targets, sock, rate
        self.loads: list[Load] = []

    def step(self) -> None:
        self.loads.append(drive(self.built_targets, self.sock, 0.5, self.rate))

    def failed(self) -> int:
        return sum(load.failed for load in self.loads)


def _first_line(proc: subprocess.Popen, log: Path) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], STARTUP_SECONDS)
    assert ready, f"not listening after {STARTUP_SECONDS} s:\n{log.read_text()}"
    return proc.stdout.readline()


@contextmanager
def serving(command: list[str], log: Path) -> Iterator[subprocess.Popen]:
    """`command` (the server, or a tool running it) started, its stderr in `log`, waited for until the server says
    it listens; when the block ends and it still runs, SIGTERM (a clean shutdown, as a service manager asks for)."""
    with open(log, "w") as err:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT)
    try:
        line = _first_line(proc, log)
        assert line.startswith("listening "), f"{line!r}\n{log.read_text()}"
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def quit_if_serving(sock: Path) -> None:
    """After a test: a server still listening at `sock` (its tool was killed, a test failed before QUIT) is told to
    QUIT, so no server outlives its test (the server removes its socket when it ends)."""
    if sock.exists():
        with contextlib.suppress(OSError, AssertionError):
            ask(sock, "QUIT", timeout=10)


def quit_server(sock: Path, proc: subprocess.Popen) -> int:
    """QUIT, then the exit status of `proc` (the server, or the tool running it)."""
    assert ask(sock, "QUIT") == "BYE"
    return proc.wait(timeout=300)


def live_reports(log: Path) -> int:
    """How many live reports the CLI whose stderr is `log` has finished."""
    return len(LIVE_REPORT_END.findall(log.read_text()))


def await_live_reports(log: Path, count: int, proc: subprocess.Popen) -> None:
    """Waits until `count` live reports are finished (the CLI `proc` still running)."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while live_reports(log) < count:
        assert proc.poll() is None, f"the CLI ended after {live_reports(log)} live reports:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"{live_reports(log)} live reports, not {count}:\n{log.read_text()}"
        time.sleep(0.05)


def summary_of(process: dict) -> dict[str, tuple[int, int]]:
    """A JSON report's leak_summary as valgrind.leak_summary gives valgrind's: kind -> (bytes, blocks)."""
    return {kind: (f["bytes"], f["blocks"]) for kind, f in process["leak_summary"].items()}


def read_report(path: Path) -> dict:
    return json.loads(path.read_text())
