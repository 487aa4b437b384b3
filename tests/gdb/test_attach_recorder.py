"""Attaching with the recorder (issue 18): `gdb-memleak --pid` and `gdb -p` + `memleak start` load the recorder
into the running process by hand and redirect its allocator calls; detaching gives them back.

Targets (c_targets/attach/, compiled here): attach_threads.c churns in several threads (most of the time inside
malloc or free: the attach happens while they allocate) and, on SIGUSR1, makes an exact number of allocations of
its own sizes; late_dlopen.c loads a library after the attach.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT, TARGETS, run_cli, run_gdb

SOURCES = TARGETS / "attach"
THREADS, COUNTED, COUNTED_SIZE = 3, 400, 5000  # attach_threads.c: each thread keeps every other counted block


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("attach_recorder")
    flags = ["gcc", "-g", "-O0", "-fno-omit-frame-pointer", "-pthread"]
    subprocess.run([*flags, "-o", str(out / "attach_threads"), str(SOURCES / "attach_threads.c")], check=True)
    subprocess.run([*flags, "-fPIC", "-shared", "-o", str(out / "late_plugin.so"), str(SOURCES / "late_plugin.c")],
                   check=True)
    subprocess.run([*flags, "-o", str(out / "late_dlopen"), str(SOURCES / "late_dlopen.c"), "-ldl"], check=True)
    return out


def start(spawn, *argv: str) -> tuple[subprocess.Popen, int]:
    """The target, through the test's `spawn` (conftest.py: killed if the test fails before ending it)."""
    proc = spawn(list(argv), stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    ready = proc.stdout.readline()
    assert ready.startswith("ready "), ready
    return proc, int(ready.split()[1])


def when_recording(pid: int, then: int, timeout: float = 120.0) -> None:
    """Send signal `then` to `pid` once the attach is over: the recorder's table is mapped in it and the process has
    run on, traced, for 0.3 s without a stop (while GDB brings the recorder in, it stops the process between calls)."""
    deadline = time.monotonic() + timeout
    running_since = None
    while time.monotonic() < deadline:
        mapped = "memfd:gdb-memleak" in Path(f"/proc/{pid}/maps").read_text()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if mapped and state in ("R", "S"):
            running_since = running_since or time.monotonic()
            if time.monotonic() - running_since >= 0.3:
                os.kill(pid, then)
                return
        else:
            running_since = None
        time.sleep(0.01)
    raise AssertionError("the attach never ended")


def cli_window(pid: int, tmp_path: Path, seconds: float, signal_when_recording: int | None = None):
    sender = None
    if signal_when_recording is not None:
        sender = threading.Thread(target=when_recording, args=(pid, signal_when_recording))
        sender.start()
    run = run_cli(["--pid", str(pid), "--duration", str(seconds), "--show-leak-kinds", "all"], tmp_path)
    if sender is not None:
        sender.join()
    return run


def _link(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:  # closed meanwhile
        return ""


def leak_groups(process: dict, line: str) -> list[dict]:
    """The loss records whose first program frame is `line` (file:line)."""
    found = []
    for leak in process["leaks"]:
        frames = leak.get("stack") or []
        if any(f"{frame.get('file', '')}:{frame.get('line', '')}".endswith(line) for frame in frames):
            found.append(leak)
    return found


def test_attach_while_threads_allocate_records_exactly_what_they_did_after(spawn, programs: Path, tmp_path: Path):
    proc, pid = start(spawn, str(programs / "attach_threads"), str(THREADS), str(COUNTED))
    run = cli_window(pid, tmp_path, 3.0, signal_when_recording=10)  # SIGUSR1: the counted allocations
    maps = Path(f"/proc/{pid}/maps").read_text()
    fds = [target for fd in os.listdir(f"/proc/{pid}/fd") if (target := _link(f"/proc/{pid}/fd/{fd}"))]
    proc.terminate()
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and rest == "done\nfinished\n", run.stderr
    assert "using the breakpoint engine" not in run.stderr, run.stderr
    assert run.returncode == 1, run.stderr  # the leaks it made before the attach (default --error-exitcode)
    process = run.process()
    assert process["errors"] == [], process["errors"]
    # attach_threads leaks 5 blocks of 200 bytes before anything else: found by the heap walk, definitely lost
    # (one may still be referenced from a register or the stack, as under valgrind)
    before = [leak for leak in process["leaks"] if leak["allocator"] == "allocated before tracking started"]
    definite = [leak for leak in before if leak["kind"] == "definite"]
    assert definite and definite[0]["bytes"] in (800, 1000) and definite[0]["stack"] == [], before
    counted = leak_groups(process, "attach_threads.c:63")
    assert sum(leak["blocks"] for leak in counted) == THREADS * COUNTED // 2, counted
    assert {leak["bytes"] // leak["blocks"] for leak in counted} <= {COUNTED_SIZE + i for i in range(THREADS)}
    assert process["totals"]["allocs"] >= THREADS * COUNTED
    # detached: the recorder stays loaded, idle; its table's memory and any descriptor of it are gone
    assert "librecorder" in maps and "memfd:gdb-memleak" not in maps, maps
    assert not any("gdb-memleak" in target for target in fds), fds


def test_detach_then_attach_again_frees_of_the_first_windows_blocks_confuse_nothing(spawn, programs: Path,
                                                                                      tmp_path: Path):
    proc, pid = start(spawn, str(programs / "attach_threads"), str(THREADS), str(COUNTED))
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first = cli_window(pid, tmp_path / "first", 2.0, signal_when_recording=10)
    assert first.returncode in (0, 1) and first.report is not None, first.stderr
    # the second window: the process frees the first window's blocks (SIGTERM) and exits while attached
    second = cli_window(pid, tmp_path / "second", 30.0, signal_when_recording=15)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and rest.endswith("finished\n"), second.stderr
    process = second.process()
    assert process["exit"] == {"code": 0}, process["exit"]
    assert process["errors"] == [], process["errors"]
    assert leak_groups(process, "attach_threads.c:63") == []


def test_library_loaded_after_the_attach_is_recorded(spawn, programs: Path, tmp_path: Path):
    proc, pid = start(spawn, str(programs / "late_dlopen"), str(programs / "late_plugin.so"))
    run = cli_window(pid, tmp_path, 2.0, signal_when_recording=10)
    proc.terminate()
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and rest == "loaded\n", run.stderr
    process = run.process()
    lost = leak_groups(process, "late_plugin.c:9")
    kept = leak_groups(process, "late_plugin.c:12")
    assert [(leak["kind"], leak["bytes"]) for leak in lost] == [("definite", 777)], process["leaks"]
    assert [(leak["kind"], leak["bytes"]) for leak in kept] == [("reachable", 555)], process["leaks"]


def test_interactive_attach_stop_detach_leaves_the_process_native(spawn, programs: Path):
    proc, pid = start(spawn, str(programs / "attach_threads"), str(THREADS), str(COUNTED))
    # the interrupt comes from here, once the program says "done": only `continue` (after `set var phase = 1`)
    # lets it get there, so the SIGINT cannot land in `memleak start` instead
    sender = threading.Thread(target=lambda: (proc.stdout.readline(), os.kill(pid, signal.SIGINT)))
    sender.start()
    run = run_gdb(["memleak start", "set var phase = 1", "continue", "memleak status",
                   "memleak stop", "detach"], load="gdbinit.sample", cwd=ROOT, extra=["-p", str(pid)])
    sender.join()
    maps = Path(f"/proc/{pid}/maps").read_text()
    proc.terminate()
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and rest == "finished\n", run.stdout + run.stderr
    assert "engine: agent (in-process recorder" in run.stdout, run.stdout
    assert "memfd:gdb-memleak" not in maps
    assert "Traceback" not in run.stderr and "internal error" not in run.stdout, run.stderr


def test_bare_detach_leaves_the_recorder_recording_and_the_program_unharmed(spawn, programs: Path):
    """Without `memleak stop`, GDB's own `detach` cannot be followed by calls into the process: the recorder
    keeps recording (README), and the program runs on as it would."""
    proc, pid = start(spawn, str(programs / "attach_threads"), str(THREADS), str(COUNTED))
    run = run_gdb(["memleak start", "detach"], load="gdbinit.sample", cwd=ROOT, extra=["-p", str(pid)])
    os.kill(pid, 10)
    time.sleep(0.5)
    proc.terminate()
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and rest == "done\nfinished\n", run.stdout + run.stderr
    assert "Traceback" not in run.stderr, run.stderr


def test_recorder_that_cannot_be_built_falls_back_to_the_breakpoint_engine_with_one_line(spawn, programs: Path,
                                                                                          tmp_path: Path):
    proc, pid = start(spawn, str(programs / "late_dlopen"), str(programs / "late_plugin.so"))
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "CC": "/bin/false"}
    run = run_cli(["--pid", str(pid), "--duration", "0.5"], tmp_path, env=env)
    proc.send_signal(10)
    time.sleep(0.3)
    proc.terminate()
    proc.communicate(timeout=60)
    lines = [line for line in run.stderr.splitlines() if "using the breakpoint engine" in line]
    assert lines == ["gdb-memleak: late_dlopen: cannot build the recorder with /bin/false: exit status 1: using "
                     "the breakpoint engine."], run.stderr
    assert run.returncode == 0 and proc.returncode == 0, run.stderr
