"""The batch CLI leaves the program as it is without the tool (argv[0], environment, signals, exit status) and says
in one line what is wrong with a command line before anything runs."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path
from typing import Union

import pytest

from conftest import ROOT, run_cli, run_gdb
from gdb_memleak.core.reports import WRITERS

SHOW = r"""
#include <stdio.h>
extern char **environ;
int main(int argc, char **argv)
{
    printf("argv0=%s\n", argv[0]);
    for (char **e = environ; *e; e++)
        printf("%s\n", *e);
    return 0;
}
"""

# loops until told to stop; with HANDLE set it catches SIGINT and says so instead of dying
LOOP = r"""
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
static void on_signal(int sig) { char m[] = "got signal\n"; write(1, m, sizeof m - 1); (void)sig; }
int main(int argc, char **argv)
{
    struct timespec pause = {0, 10 * 1000 * 1000};
    if (argc > 1)
        signal(SIGINT, on_signal);
    void *held = malloc(100);
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    for (;;) {
        free(malloc(32));
        nanosleep(&pause, NULL);
    }
    return held != NULL;
}
"""


def compile_c(tmp_path: Path, name: str, source: str) -> Path:
    src = tmp_path / f"{name}.c"
    src.write_text(source)
    subprocess.run(["gcc", "-g", "-O0", "-o", str(tmp_path / name), str(src)], check=True)
    return tmp_path / name


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "gdb_memleak.cli.main", *args]


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The CLI's environment with its temporary files kept under tmp_path, so a test can see none is left."""
    private = tmp_path / "tmp"
    private.mkdir(exist_ok=True)
    return {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(private), **extra}


def processes_running(path: Path) -> list[str]:
    """Command lines of live processes mentioning path (the program, or a GDB started on it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if str(path) in cmdline and state != "Z":
            found.append(cmdline)
    return found


def assert_nothing_left(tmp_path: Path, program: Path) -> None:
    deadline = time.monotonic() + 10
    while processes_running(program) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_running(program) == []
    assert list((tmp_path / "tmp").iterdir()) == []


def read_line(stream, timeout: float = 120) -> bytes:
    """One line of a pipe, or what came before the timeout (a test fails rather than hangs)."""
    data, deadline = b"", time.monotonic() + timeout
    while not data.endswith(b"\n") and time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], 0.5)
        if ready:
            byte = os.read(stream.fileno(), 1)
            if not byte:
                break
            data += byte
    return data


def wait_ready(stream) -> int:
    line = read_line(stream)
    assert line.startswith(b"ready "), line
    return int(line.split()[1])


# -- argv[0] and environment (issue 8 item 9) -------------------------------------------------------------------

@pytest.mark.parametrize("terminal_vars", [{}, {"LINES": "7", "COLUMNS": "33"}], ids=["unset", "users_own"])
def test_program_gets_argv0_as_typed_and_exactly_the_users_environment(tmp_path: Path, terminal_vars: dict):
    compile_c(tmp_path, "show", SHOW)
    env = {k: v for k, v in cli_env(tmp_path).items() if k not in ("LINES", "COLUMNS")}
    env.update(terminal_vars, PATH=f"{tmp_path}{os.pathsep}{env['PATH']}")
    for typed in ("./show", "show"):
        plain = subprocess.run([typed], cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
                               executable=None if typed == "./show" else str(tmp_path / "show")).stdout
        under = subprocess.run(cli_command(typed), cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
        assert under.returncode == 0, under.stderr
        assert under.stdout.splitlines()[0] == f"argv0={typed}"
        assert sorted(under.stdout.splitlines()) == sorted(plain.splitlines())


# -- interrupts (item 10) ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("sig,to_group", [(signal.SIGTERM, False), (signal.SIGINT, True), (signal.SIGHUP, False)],
                         ids=["SIGTERM_to_cli", "SIGINT_to_group", "SIGHUP_to_cli"])
def test_signal_to_the_cli_kills_the_program_and_the_report_and_json_are_still_written(
        tmp_path: Path, sig: signal.Signals, to_group: bool):
    """As `timeout` or `kill` would: the program gets the signal and dies of it, the report is made first."""
    program = compile_c(tmp_path, "loop", LOOP)
    out = tmp_path / "report.json"
    proc = subprocess.Popen(cli_command("--json", str(out), str(program)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=cli_env(tmp_path), cwd=tmp_path, process_group=0)
    wait_ready(proc.stdout)
    time.sleep(0.5)
    if to_group:
        os.killpg(proc.pid, sig)
    else:
        os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    assert f"killed by {sig.name}" in err.decode()
    [process] = json.loads(out.read_text())["processes"]
    assert process["exit"] == {"signal": sig.name}
    assert process["in_use_at_exit"]["bytes"] >= 100
    assert_nothing_left(tmp_path, program)


Typed = tuple[Union[str, Callable[[bytes], bool]], bytes]


def on_terminal(command: list[str], tmp_path: Path, keys: list[Typed], timeout: float = 120,
                typed: list[float] | None = None) -> tuple[int, str]:
    """Run command as a shell runs a job on a 24x80 terminal (its own session, the terminal controlling it); each
    (when, key) types key once `when` (a text) has appeared in the output or (a function of the output) holds;
    `typed` collects when each key was typed. Returns the exit status and everything shown."""
    env = cli_env(tmp_path, TERM="xterm")
    pid, master = pty.fork()
    if pid == 0:  # the child: a new session whose controlling terminal is the pty
        try:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
            os.chdir(tmp_path)
            os.execvpe(command[0], command, env)
        finally:
            os._exit(127)
    shown, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        if keys:
            when = keys[0][0]
            if when(shown) if callable(when) else when.encode() in shown:
                os.write(master, keys.pop(0)[1])
                if typed is not None:
                    typed.append(time.monotonic())
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            shown += data
    for _ in range(300):
        ended, status = os.waitpid(pid, os.WNOHANG)
        if ended:
            break
        time.sleep(0.1)
    else:
        os.killpg(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail(f"still running after {timeout} s: {shown.decode(errors='replace')}")
    os.close(master)
    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")


def test_ctrl_c_on_a_terminal_reaches_the_program_and_the_report_is_written(tmp_path: Path):
    program = compile_c(tmp_path, "loop", LOOP)
    out = tmp_path / "report.json"
    status, shown = on_terminal(cli_command("--json", str(out), str(program)), tmp_path, [("ready", b"\x03")])
    assert status == 130, shown
    assert "killed by SIGINT" in shown and "LEAK SUMMARY" in shown
    assert json.loads(out.read_text())["processes"][0]["exit"] == {"signal": "SIGINT"}
    assert_nothing_left(tmp_path, program)


def test_program_that_handles_the_interrupt_gets_it_and_a_second_one_ends_at_once(tmp_path: Path):
    program = compile_c(tmp_path, "loop", LOOP)
    proc = subprocess.Popen(cli_command(str(program), "handle"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=cli_env(tmp_path), cwd=tmp_path, process_group=0)
    wait_ready(proc.stdout)
    os.kill(proc.pid, signal.SIGINT)
    assert read_line(proc.stdout, 30) == b"got signal\n"  # passed on; the program handles it and runs on
    os.kill(proc.pid, signal.SIGINT)
    started = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert time.monotonic() - started < 10
    assert "interrupted" in err.decode()
    assert_nothing_left(tmp_path, program)


def test_ctrl_c_while_the_report_is_made_ends_at_once(tmp_path: Path):
    """The first Ctrl-C kills the program; scanning its 128 MB block takes seconds; a second Ctrl-C typed then ends
    everything at once, without the report."""
    program = compile_c(tmp_path, "big", r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
void *keep;
int main(void)
{
    keep = malloc(128 << 20);
    memset(keep, 0x11, 128 << 20);
    printf("ready\n");
    fflush(stdout);
    pause();
    return 0;
}
""")
    out = tmp_path / "report.json"

    def reporting(shown: bytes) -> bool:
        return any((private / "reporting").exists() for private in (tmp_path / "tmp").iterdir())

    typed: list[float] = []
    status, shown = on_terminal(cli_command("--json", str(out), str(program)), tmp_path,
                                [("ready", b"\x03"), (reporting, b"\x03")], typed=typed)
    assert status == 130, shown
    assert "interrupted (SIGINT): stopped without a report" in shown
    assert "LEAK SUMMARY" not in shown and not out.exists()
    assert time.monotonic() - typed[-1] < 5
    assert_nothing_left(tmp_path, program)


@pytest.mark.slow
def test_interrupt_with_pid_ends_the_window_early_and_the_process_runs_on(built_targets: Path, tmp_path: Path):
    target = subprocess.Popen([str(built_targets / "attach_loop"), "400"], stdout=subprocess.PIPE)
    pid = wait_ready(target.stdout)
    out = tmp_path / "report.json"
    proc = subprocess.Popen(cli_command("--json", str(out), "--pid", str(pid), "--duration", "120"),
                            stderr=subprocess.PIPE, env=cli_env(tmp_path), cwd=tmp_path, process_group=0)
    time.sleep(2)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "detached (still running)" in err.decode()
    assert json.loads(out.read_text())["processes"][0]["exit"] is None
    assert target.stdout.read() == b"finished 400\n"  # not killed, no breakpoint left behind
    assert target.wait(timeout=60) == 0
    assert list((tmp_path / "tmp").iterdir()) == []


# -- output paths (item 11) -------------------------------------------------------------------------------------

@pytest.mark.parametrize("option", [f"--{name}" for name in WRITERS])
@pytest.mark.parametrize("where", ["missing_dir", "a_directory"])
def test_unwritable_output_path_is_one_error_before_the_program_runs(tmp_path: Path, option: str, where: str):
    path = tmp_path / "no" / "such" / "r.out" if where == "missing_dir" else tmp_path
    marker = tmp_path / "ran"
    run = subprocess.run(cli_command(option, str(path), "/usr/bin/touch", str(marker)), capture_output=True,
                         text=True, check=False, env=cli_env(tmp_path), cwd=ROOT)
    assert run.returncode == 2
    [line] = run.stderr.splitlines()
    assert line.startswith("gdb-memleak: error: ") and f"{option} {path}" in line
    assert not marker.exists()


# -- what to do, in one line; exit statuses (item 12) ----------------------------------------------------------

def test_shell_script_runs_and_the_programs_it_executes_are_tracked(built_targets: Path, tmp_path: Path):
    script = tmp_path / "run.sh"
    script.write_text(f"#!/bin/sh\necho \"script $0 $1\"\nexec {built_targets / 'seed_demo'}\n")
    script.chmod(0o755)
    out = tmp_path / "report.json"
    run = subprocess.run(cli_command("--json", str(out), "./run.sh", "one"), capture_output=True, text=True,
                         check=False, env=cli_env(tmp_path), cwd=tmp_path)
    assert run.stdout.splitlines()[0] == "script ./run.sh one", run.stderr
    processes = json.loads(out.read_text())["processes"]
    demo = next(p for p in processes if p["argv"][0].endswith("seed_demo"))
    assert [(leak["kind"], leak["bytes"]) for leak in demo["leaks"]] == [("definite", 30)]
    assert [e["type"] for e in demo["errors"]] == ["double_free"]
    assert run.returncode == 1


def test_file_that_is_neither_a_program_nor_a_script_is_one_error(tmp_path: Path):
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    text.chmod(0o755)
    run = run_cli([str(text)], tmp_path)
    assert run.returncode == 2
    [line] = run.stderr.splitlines()
    assert line.startswith("gdb-memleak: error: ") and "/bin/sh" in line


def test_duration_without_pid_is_one_error_saying_what_it_is_for(built_targets: Path, tmp_path: Path):
    run = run_cli(["--duration", "3", str(built_targets / "clean")], tmp_path)
    assert run.returncode == 2
    [line] = run.stderr.splitlines()
    assert "--duration only applies with --pid" in line


def test_program_killed_by_sigkill_exits_137_like_a_shell(tmp_path: Path):
    """valgrind: 137 as well, whatever it found (it dies of the signal itself)."""
    program = compile_c(tmp_path, "killself", r"""
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
int main(void)
{
    void *volatile p = malloc(5);
    p = NULL;
    kill(getpid(), SIGKILL);
    return 3;
}
""")
    run = run_cli([str(program)], tmp_path)
    assert run.process()["exit"] == {"signal": "SIGKILL"}
    assert run.returncode == 137, run.stderr


def test_memleak_without_subcommand_and_stop_before_start_say_what_to_do():
    run = run_gdb(["memleak", "memleak stop"])
    lines = run.stderr.splitlines()
    assert any(line.startswith("memleak: needs a subcommand: start, stop") and "memleak start" in line
               for line in lines), run.stderr
    assert any(line.startswith("memleak stop: not tracking") and "memleak start" in line for line in lines)


# -- colour and the status line (item 13) -----------------------------------------------------------------------

def test_leaks_by_line_into_a_pipe_has_no_colour_codes_even_with_styling_on(built_targets: Path):
    run = run_gdb(["set style enabled on", "memleak start", "run", "leaks --by-line"],
                  built_targets / "leak_sites")
    assert "leak_sites.c:" in run.stdout, run.stderr
    assert "\x1b[" not in run.stdout


STATUS = re.compile(r"\x1b7\x1b\[(\d+);1H\x1b\[2Kgdb-memleak: [\d,]+ events/s, [\d,]+ live blocks, [\d,]+ live "
                    r"bytes\x1b8")


def test_status_line_only_on_a_terminal_and_on_its_last_row_out_of_the_programs_output(built_targets: Path,
                                                                                       tmp_path: Path):
    """The program prints while the status line is live: its lines come out whole, never glued to the status."""
    status, shown = on_terminal(cli_command(str(built_targets / "attach_loop"), "60"), tmp_path, [])
    assert status == 0, shown
    reserve = "\r\n\x1b7\x1b[1;23r\x1b8\x1b[1A"  # rows 1-23 scroll, row 24 holds the status
    assert shown.startswith(reserve), shown
    draws = STATUS.findall(shown)
    assert draws and set(draws) == {"24"}, shown
    program_output = STATUS.sub("", shown[len(reserve):])  # what is left where the program writes
    assert re.match(r"ready \d+\r\nfinished 60\r\n\r\ngdb-memleak: process", program_output), program_output
    assert program_output.endswith("\x1b7\x1b[r\x1b[24;1H\x1b[2K\x1b8")  # the region reset, the row cleared
    piped = run_cli([str(built_targets / "churn"), "300"], tmp_path)  # no terminal, no status line
    assert "events/s" not in piped.stderr and "\x1b" not in piped.stderr


def test_progress_thread_calls_no_gdb_api(built_targets: Path, tmp_path: Path, engine: str):
    """Every `gdb` function is wrapped to note calls from other threads while the status line runs (the recorder
    engine's figures come from its memory through /proc/PID/mem, the breakpoint engine's from its table)."""
    script = tmp_path / "progress.py"
    script.write_text("""
import os, re, threading, gdb
calls = []
for name in dir(gdb):
    fn = getattr(gdb, name)
    if callable(fn) and not isinstance(fn, type) and not name.startswith("_"):
        def wrapper(*a, _fn=fn, _name=name, **k):
            if threading.current_thread() is not threading.main_thread():
                calls.append(_name)
            return _fn(*a, **k)
        setattr(gdb, name, wrapper)
from gdb_memleak.cli.progress import Progress
from gdb_memleak.gdb.session import SESSION
master, slave = os.openpty()
import fcntl, struct, termios
fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
os.environ["TERM"] = "xterm"
progress = Progress(SESSION, slave, interval=0.05)
progress.start()
gdb.execute("set memleak engine ENGINE")
gdb.execute("memleak start")
gdb.execute("run", to_string=True)
progress.finish()
shown = os.read(master, 1 << 20).decode(errors="replace")
print("drawn:", shown.count("events/s"))
print("counting:", any(not r.startswith("0 ") for r in re.findall(r"([\\d,]+ events/s)", shown)))
print("gdb calls from the progress thread:", sorted(set(calls)))
""".replace("ENGINE", engine))
    pairs = "3000" if engine == "breakpoint" else "3000000"  # about a second under either
    run = run_gdb([f"source {script}"], built_targets / "churn", [pairs])
    drawn = int(re.search(r"drawn: (\d+)", run.stdout).group(1))
    assert drawn > 0, run.stdout + run.stderr
    assert "counting: True" in run.stdout, run.stdout  # the events rate moves while the program runs
    assert "gdb calls from the progress thread: []" in run.stdout, run.stdout


# -- README (item 16) -------------------------------------------------------------------------------------------

def test_readme_synopsis_is_the_parsers_usage_and_names_valgrinds_options():
    from gdb_memleak.cli.main import build_parser

    readme = " ".join((ROOT / "README.md").read_text().split())
    usage = " ".join(build_parser().format_usage().split())
    assert usage in readme
    for option in ("--pid", "--duration", "--version"):
        assert option in usage
    assert "--run-libc-freeres=no --run-cxx-freeres=no" in readme.split("## JSON report")[0]
