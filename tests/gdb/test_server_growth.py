"""A thread-pool server under load (c_targets/server/, issue 19 item 5): what gdb-memleak says of a program that
runs until it is told to stop — live reports while it serves, what keeps growing, and at QUIT valgrind's verdicts.

The server leaks a session record per LOGIN (session_new), keeps an LRU cache that fills and then plateaus
(cache_fill), and churns on every request; its header states what valgrind reports at exit (per LOGIN answered).
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import expectations
import valgrind
from conftest import ROOT, run_cli
from server_harness import CLI, SERVER_SOURCE, SIGNAL_MODES, Loader, drive, driven, read_report, serving, summary_of

#: one client: the same requests in the same order in every run, so valgrind's run and ours make the same calls
SHAPE = ("-c", "1", "-n", "200", "-q")


@pytest.fixture
def sock() -> Iterator[Path]:
    """A short socket path: a UNIX socket's must fit in 108 bytes, and pytest's temporary directories can be long."""
    with tempfile.TemporaryDirectory(prefix="server-") as directory:
        yield Path(directory) / "socket"


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


@pytest.mark.valgrind
@pytest.mark.skipif(not valgrind.available(), reason="valgrind not installed: comparison skipped")
def test_server_at_quit_gives_valgrinds_verdicts(built_targets: Path, sock: Path, tmp_path: Path, engine: str):
    server = [str(built_targets / "server"), str(sock)]
    theirs, their_load = driven(built_targets, sock, lambda: valgrind.run([*valgrind.LEAK_FLAGS, *server]), *SHAPE)
    ours, our_load = driven(built_targets, sock, lambda: run_cli(
        ["--engine", engine, "--no-default-suppressions", *server], tmp_path), *SHAPE)
    assert their_load == our_load and our_load.failed == 0 and our_load.login == 20, (their_load, our_load)
    assert theirs.returncode == 0, theirs.stderr[-2000:]
    assert ours.returncode == 1, ours.stderr  # the program's 0, but leaks were found
    process = ours.process()
    assert process["exit"] == {"code": 0}
    assert summary_of(process) == valgrind.parse_leak_summary(theirs.stderr)[0] == expected_at_exit(20)
    assert valgrind.our_figures(process) == valgrind.parse_heap_figures(theirs.stderr)
    definite = [leak for leak in process["leaks"] if leak["kind"] == "definite"]
    assert [(d["stack"][0]["function"], d["stack"][0]["line"]) for d in definite] == [("session_new", session_line())]


#: known: the CLI ends an attach window by sending SIGINT to the process (cli/runner.py), which GDB sees only when a
#: thread takes it; a server taking its signals through a signalfd (or sigwait) reads it and shuts down
ATTACH_SIGINT = pytest.mark.xfail(strict=True, reason="the attach window ends with a SIGINT the server reads")


@pytest.mark.parametrize("mode", [pytest.param(mode, marks=[ATTACH_SIGINT] if mode == "signalfd" else [])
                                  for mode in SIGNAL_MODES])
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
