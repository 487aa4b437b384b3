"""Live reports of the batch CLI (issue 19 item 1): `--report-every SECONDS` and SIGUSR1 sent to the gdb-memleak
process print a report while the program runs on, and every requested file is replaced whole each time.

c_targets/live_ticker.c blocks every signal but SIGUSR1 (as a server's threads do) and dies of SIGUSR1: a report
must stop it without a signal it would have to take, and the CLI's SIGUSR1 must never reach it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT, run_cli

CLI = [sys.executable, "-m", "gdb_memleak.cli.main"]
LIVE = re.compile(r"^gdb-memleak: live report (\d+) at ([0-9.]+) s", re.M)
DEFINITE = re.compile(r"^\s+definitely lost: ([0-9,]+) bytes in ([0-9,]+) blocks", re.M)
LEAK_SIZE = 32  # live_ticker: one 32-byte block leaked per tick


def _figures(text: str) -> list[int]:
    """The definitely lost bytes of each report in `text`, in order."""
    return [int(m.group(1).replace(",", "")) for m in DEFINITE.finditer(text)]


def test_report_every_prints_reports_while_the_program_runs_on(built_targets: Path, tmp_path: Path, engine: str):
    run = run_cli(["--engine", engine, "--error-exitcode", "0", "--report-every", "0.25",
                   str(built_targets / "live_ticker"), "30", "50"], tmp_path, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1] == "ticked 30", run.stdout  # the program ran to its end, output intact
    numbers = [int(m.group(1)) for m in LIVE.finditer(run.stderr)]
    assert len(numbers) >= 2 and numbers == list(range(1, len(numbers) + 1)), run.stderr
    lost = _figures(run.stderr)
    assert len(lost) == len(numbers) + 1, run.stderr  # each live report, then the final one
    assert lost == sorted(lost) and lost[-1] == 30 * LEAK_SIZE, lost  # leaks only grow; at exit: every tick's
    assert lost[0] < lost[-1], lost  # a live report saw the program before its end
    for m in re.finditer(r"\(the program was paused ([0-9.]+) s\)", run.stderr):
        assert float(m.group(1)) < 30, m.group(0)
    assert run.process()["leaks"], run.report  # the final JSON is the whole run's


def _start(spawn, built_targets: Path, args: list[str], *cli_args: str) -> tuple[subprocess.Popen, threading.Thread,
                                                                             list[str]]:
    """The CLI on live_ticker, in its own process group as from a shell, once the program runs; its stderr lines
    as they come, read all along by a thread (a pipe nobody reads blocks GDB once full)."""
    cli = spawn([*CLI, "--error-exitcode", "0", *cli_args, str(built_targets / "live_ticker"), *args],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, process_group=0)
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.extend(cli.stderr), daemon=True)
    reader.start()
    first = cli.stdout.readline()
    assert first.startswith("ticker "), first + "".join(err)
    return cli, reader, err


def _finish(cli: subprocess.Popen, reader: threading.Thread, err: list[str]) -> tuple[str, str]:
    """The program's stdout and the CLI's whole stderr, once it has ended."""
    out = cli.stdout.read()
    cli.wait(timeout=120)
    reader.join(timeout=60)
    return out, "".join(err)


def test_sigusr1_to_the_cli_gives_a_report_and_never_reaches_the_program(built_targets: Path, spawn):
    cli, reader, err = _start(spawn, built_targets, ["120", "50"])
    for number in (1, 2):  # the next request once the report before it is out (requests made meanwhile are one)
        os.kill(cli.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 60
        while not any(f"end of live report {number} " in line for line in err) and time.monotonic() < deadline:
            time.sleep(0.05)
    out, text = _finish(cli, reader, err)
    assert cli.returncode == 0, text  # the program was not killed by SIGUSR1 (its default action)
    assert out.splitlines()[-1] == "ticked 120", out
    assert [m.group(1) for m in LIVE.finditer(text)] == ["1", "2"], text
    lost = _figures(text)
    assert len(lost) == 3 and lost[0] <= lost[1] <= lost[2] == 120 * LEAK_SIZE, lost


def test_output_files_are_replaced_whole_at_each_live_report(built_targets: Path, tmp_path: Path, spawn):
    """A reader polling the JSON file while live reports rewrite it never finds it half written."""
    path = tmp_path / "live.json"
    cli, reader, err = _start(spawn, built_targets, ["40", "50"], "--report-every", "0.1", "--json", str(path))
    versions: set[int] = set()
    while cli.poll() is None:
        try:
            text = path.read_text()
        except FileNotFoundError:  # before the first report
            continue
        report = json.loads(text)  # raises on a partial file
        versions.add(sum(leak["bytes"] for leak in report["processes"][0]["leaks"]))
    _, text = _finish(cli, reader, err)
    assert cli.returncode == 0, text
    assert len(versions) >= 2, versions  # rewritten while the program ran, not only at the end
    assert not [p for p in tmp_path.iterdir() if p.name != "live.json"], list(tmp_path.iterdir())  # no temporaries


@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_report_every_must_be_a_positive_number_of_seconds(built_targets: Path, value: str):
    proc = subprocess.run([*CLI, f"--report-every={value}", str(built_targets / "live_ticker")], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("gdb-memleak: error: --report-every"), proc.stderr


def test_attach_window_reports_live_and_ends_without_a_signal_the_program_could_take(built_targets: Path, spawn):
    """--pid: live reports in the window, and its end, stop the process with a SIGSTOP GDB discards: live_ticker
    blocks SIGINT (a SIGINT would stay pending, and the window would never end) and dies of SIGUSR1."""
    target = spawn([str(built_targets / "live_ticker"), "200", "50"], stdout=subprocess.PIPE, text=True)
    pid = int(target.stdout.readline().split()[1])
    cli = subprocess.run([*CLI, "--pid", str(pid), "--duration", "2", "--report-every", "0.4"], capture_output=True,
                         text=True, cwd=ROOT, timeout=120)
    out, _ = target.communicate(timeout=60)
    assert cli.returncode in (0, 1), cli.stderr
    assert target.returncode == 0 and out.splitlines()[-1] == "ticked 200", (target.returncode, out)
    assert LIVE.findall(cli.stderr), cli.stderr  # how many fit in the window depends on the machine's load
    assert "note: attached for 2 s" in cli.stderr, cli.stderr
    lost = _figures(cli.stderr)
    assert lost == sorted(lost) and lost[-1] > 0, lost
