"""A thread-pool server under load (c_targets/server/, issue 19 item 5): what gdb-memleak says of a program that
runs until it is told to stop — live reports while it serves, what keeps growing, and at QUIT valgrind's verdicts.

The server leaks a session record per LOGIN (session_new), keeps an LRU cache that fills and then plateaus
(cache_fill), and churns on every request; its header states what valgrind reports at exit (per LOGIN answered).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import expectations
import valgrind
from conftest import ROOT, run_cli
from gdb_memleak.core.growth import WINDOW
from server_harness import (
    CLI,
    LIVE_REPORT_END,
    SERVER_SOURCE,
    SIGNAL_MODES,
    Load,
    Loader,
    Repeating,
    ask,
    await_live_reports,
    drive,
    driven,
    live_reports,
    quit_if_serving,
    quit_server,
    read_report,
    serving,
    stats,
    summary_of,
)

#: the driver's rate and options for runs compared with valgrind's: one client, so the same requests in the same
#: order in every run (valgrind's run and ours make the same calls); 2 s long, so live reports happen meanwhile
SHAPE = (100, "-c", "1", "-n", "200", "-q")


@contextmanager
def short_socket() -> Iterator[Path]:
    """A short socket path: a UNIX socket's must fit in 108 bytes, and pytest's temporary directories can be long."""
    with tempfile.TemporaryDirectory(prefix="server-") as directory:
        path = Path(directory) / "socket"
        try:
            yield path
        finally:
            quit_if_serving(path)


@pytest.fixture
def sock() -> Iterator[Path]:
    with short_socket() as path:
        yield path


def expected_at_exit(logins: int) -> dict[str, tuple[int, int]]:
    """The LEAK SUMMARY the server's header states, for `logins` LOGINs answered (no default suppressions)."""
    expected = expectations.parse(SERVER_SOURCE)
    leaks = [(line, *figures) for line, figures in expected.leaks_with_kinds().items()]
    leaks += [(line, *figures) for line, figures in expected.suppressed_leaks.items()]
    found = {kind: (0, 0) for kind in valgrind.SUMMARY_KEYS}
    for line, nbytes, nblocks, kind in leaks:
        assert kind is not None, "the server's header gives every leak its kind"
        times = logins if expected.leak_per.get(line) == "LOGIN" else 1
        found[kind] = (found[kind][0] + nbytes * times, found[kind][1] + nblocks * times)
    return found


def session_line() -> int:
    expected = expectations.parse(SERVER_SOURCE)
    return next(line for line, name in expected.leak_per.items() if name == "LOGIN")


@pytest.fixture(scope="module")
def valgrind_at_quit(built_targets: Path) -> tuple[subprocess.CompletedProcess, Load]:
    """valgrind's run of the server under SHAPE: its output, and the driver's closing line."""
    with short_socket() as sock:
        return driven(built_targets, sock, lambda: valgrind.run([*valgrind.LEAK_FLAGS, str(built_targets / "server"),
                                                                str(sock)]), *SHAPE)


@pytest.mark.valgrind
@pytest.mark.skipif(not valgrind.available(), reason="valgrind not installed: comparison skipped")
@pytest.mark.parametrize("live", [[], ["--report-every", "0.25"]], ids=["at-exit", "live-reports"])
def test_server_at_quit_gives_valgrinds_verdicts(built_targets: Path, sock: Path, tmp_path: Path, engine: str,
                                                 live: list[str], valgrind_at_quit):
    theirs, their_load = valgrind_at_quit
    ours, our_load = driven(built_targets, sock, lambda: run_cli(
        ["--engine", engine, "--no-default-suppressions", *live, str(built_targets / "server"), str(sock)],
        tmp_path), *SHAPE)
    assert their_load == our_load and our_load.failed == 0 and our_load.login == 20, (their_load, our_load)
    assert theirs.returncode == 0, theirs.stderr[-2000:]
    assert ours.returncode == 1, ours.stderr  # the program's 0, but leaks were found
    if live:
        assert LIVE_REPORT_END.search(ours.stderr), ours.stderr
    process = ours.process()
    assert process["exit"] == {"code": 0}
    assert summary_of(process) == valgrind.parse_leak_summary(theirs.stderr)[0] == expected_at_exit(20)
    assert valgrind.our_figures(process) == valgrind.parse_heap_figures(theirs.stderr)
    definite = [leak for leak in process["leaks"] if leak["kind"] == "definite"]
    assert [(d["stack"][0]["function"], d["stack"][0]["line"]) for d in definite] == [("session_new", session_line())]


@pytest.mark.parametrize("mode", SIGNAL_MODES)
def test_attach_under_load_leaves_the_server_serving(built_targets: Path, sock: Path, tmp_path: Path, mode: str):
    report = tmp_path / "attach.json"
    with serving([str(built_targets / "server"), *SIGNAL_MODES[mode], str(sock)], tmp_path / "server.log") as server:
        with Loader(built_targets, sock, 200) as loader:
            attach = subprocess.run([*CLI, "--json", str(report), "--pid", str(server.pid), "--duration", "1"],
                                    capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert "detached (still running)" in attach.stderr, attach.stderr
        assert loader.loads and loader.failed() == 0, loader.loads
        after = drive(built_targets, sock, 0, 0, "-n", "20", "-q")
        assert after.failed == 0 and after.ok == 20, after
        assert server.wait(timeout=60) == 0
    definite = [leak for leak in read_report(report)["processes"][0]["leaks"] if leak["kind"] == "definite"]
    assert any(leak["stack"] and leak["stack"][0]["function"] == "session_new" for leak in definite), definite


def cli_serving(built_targets: Path, sock: Path, tmp_path: Path, *options: str, mode: str = "handler"):
    """The server started by the CLI with `options` (its JSON in tmp_path/report.json, its stderr in cli.log)."""
    return serving([*CLI, "--json", str(tmp_path / "report.json"), *options, str(built_targets / "server"),
                    *SIGNAL_MODES[mode], str(sock)], tmp_path / "cli.log")


def functions(stack: list[dict]) -> list[str | None]:
    return [frame["function"] for frame in stack]


CACHE_MAX = expectations.defines(SERVER_SOURCE)["CACHE_MAX"]


def test_growth_ranking_names_the_leak_first_not_the_cache(built_targets: Path, sock: Path, tmp_path: Path,
                                                           engine: str):
    """The cache is filled first (its stacks grew), then the server is loaded for a whole ranking window of live
    reports: the leak keeps growing, the cache has plateaued."""
    with cli_serving(built_targets, sock, tmp_path, "--engine", engine, "--report-every", "0.4") as cli:
        for key in range(CACHE_MAX):
            assert ask(sock, f"GET fill{key}").startswith("OK ")
        assert stats(sock)["cache_entries"] == CACHE_MAX
        with Loader(built_targets, sock, 40) as loader:
            await_live_reports(tmp_path / "cli.log", live_reports(tmp_path / "cli.log") + WINDOW + 1, cli)
            report = read_report(tmp_path / "report.json")
        assert loader.failed() == 0, loader.loads
        assert quit_server(sock, cli) == 1  # leaks found
    growth = report["processes"][0]["growth"]
    assert growth and functions(growth[0]["stack"])[0] == "session_new", growth
    assert growth[0]["rate_bytes_per_s"] > 0
    assert not [g for g in growth if "cache_fill" in functions(g["stack"])], growth
    leaked = [leak for leak in report["processes"][0]["leaks"] if functions(leak["stack"])[:1] == ["session_new"]]
    assert leaked and all(leak["delta"]["bytes"] >= 0 for leak in leaked), leaked
    assert sum(leak["delta"]["bytes"] for leak in leaked) > 0, leaked  # it grew since the report before
    growing = (tmp_path / "cli.log").read_text().rpartition("\nGROWING")[2]
    assert "session_new" in growing.split("\n\n")[0].splitlines()[3], growing  # its first row, under the header


@pytest.mark.parametrize("mode", SIGNAL_MODES)
def test_usr1_gives_a_live_report_and_the_server_keeps_serving(built_targets: Path, sock: Path, tmp_path: Path,
                                                              mode: str):
    """SIGUSR1 to the CLI is the CLI's: the server (whose main thread would die of it in handler mode) never gets
    it, and no signal the tool uses to stop it reaches its signal handling (a signalfd would read it)."""
    log = tmp_path / "cli.log"
    with cli_serving(built_targets, sock, tmp_path, mode=mode) as cli:
        before = drive(built_targets, sock, 0, 0, "-n", "50")
        assert live_reports(log) == 0
        os.kill(cli.pid, signal.SIGUSR1)
        await_live_reports(log, 1, cli)
        after = drive(built_targets, sock, 0, 0, "-n", "50", "-q")
        assert before.failed == after.failed == 0 and before.ok == after.ok == 50, (before, after)
        assert cli.wait(timeout=300) == 1  # leaks found
    assert live_reports(log) == 1
    process = read_report(tmp_path / "report.json")["processes"][0]
    assert process["exit"] == {"code": 0}
    assert summary_of(process)["definite"] == expected_at_exit(before.login + after.login)["definite"]


@pytest.mark.parametrize("mode", SIGNAL_MODES)
def test_sigterm_to_the_cli_shuts_the_server_down_as_quit_does(built_targets: Path, sock: Path, tmp_path: Path,
                                                               mode: str):
    """SIGTERM to the CLI goes to the program (as a service manager stopping it): the server takes it through its
    handler or its signalfd, shuts down cleanly, and the report is the one at QUIT."""
    with cli_serving(built_targets, sock, tmp_path, mode=mode) as cli:
        load = drive(built_targets, sock, 0, 0, "-n", "50")
        cli.send_signal(signal.SIGTERM)
        assert cli.wait(timeout=300) == 1  # leaks found
    assert load.failed == 0, load
    process = read_report(tmp_path / "report.json")["processes"][0]
    assert process["exit"] == {"code": 0}
    assert summary_of(process)["definite"] == expected_at_exit(load.login)["definite"]


class JsonWatcher(Repeating):
    """Reads a file again and again, as a tool watching a report would: every text it finds must be a whole JSON
    document (a file not there yet is not a failure). A short pause between reads: a rewrite takes milliseconds."""

    def __init__(self, path: Path) -> None:
        super().__init__(pause=0.0005)
        self.path = path
        self.seen: set[str] = set()
        self.broken: list[str] = []

    def step(self) -> None:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return
        if text not in self.seen:
            try:
                json.loads(text)
            except ValueError:
                self.broken.append(text)
            self.seen.add(text)


def test_json_file_is_never_seen_half_written(built_targets: Path, sock: Path, tmp_path: Path):
    log = tmp_path / "cli.log"
    with JsonWatcher(tmp_path / "report.json") as watcher:
        with cli_serving(built_targets, sock, tmp_path, "--report-every", "0.1") as cli:
            with Loader(built_targets, sock, 200) as loader:
                await_live_reports(log, 15, cli)
            assert quit_server(sock, cli) == 1
    assert loader.failed() == 0, loader.loads
    assert watcher.broken == [], f"{len(watcher.broken)} of {len(watcher.seen)} versions read were not whole"
    assert len(watcher.seen) >= 5, "the reader saw the file rewritten"
