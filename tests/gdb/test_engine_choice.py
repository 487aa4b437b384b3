"""`auto`, the default engine: the recorder for a dynamically linked program GDB starts, silently; the breakpoint
engine everywhere the recorder cannot run, said in exactly one line on stderr, once per run.

Which engine really ran is read from the program itself (`/proc/self/maps` lists the recorder library or not) or
from `memleak status`, never from the line alone.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import run_cli, run_gdb

RECORDER = "librecorder.so"
FALLBACK = re.compile(r"^gdb-memleak: .*: using the breakpoint engine\.$", re.M)


def engine_lines(stderr: str) -> list[str]:
    return FALLBACK.findall(stderr)


def seed_demo_findings(process: dict) -> tuple:
    """seed_demo's figures (c_targets/seed_demo.c): the same under either engine."""
    leaks = [(leak["kind"], leak["bytes"]) for leak in process["leaks"]]
    return process["totals"], leaks, [e["type"] for e in process["errors"]]


SEED_DEMO = ({"allocs": 4, "frees": 4, "bytes_allocated": 100}, [("definite", 30)], ["double_free"])


def test_auto_is_the_default_and_preloads_the_recorder_into_a_dynamic_program_silently(
        built_targets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("GDB_MEMLEAK_ENGINE", raising=False)
    run = run_cli(["/bin/cat", "/proc/self/maps"], tmp_path)
    assert RECORDER in run.stdout, run.stderr
    assert engine_lines(run.stderr) == [] and "recorder" not in run.stderr, run.stderr
    demo = run_cli([str(built_targets / "seed_demo")], tmp_path)
    assert seed_demo_findings(demo.process()) == SEED_DEMO, demo.stderr
    assert engine_lines(demo.stderr) == []


def test_gdb_setting_defaults_to_auto_and_status_names_the_recorder(built_targets: Path):
    run = run_gdb(["show memleak engine", "memleak start", "break free", "run", "memleak status", "kill"],
                  built_targets / "seed_demo")
    assert "Which engine tracks the allocator calls (takes effect at the next `memleak start` before `run`) is auto." \
        in run.stdout
    assert re.search(r"^ *engine: agent \(in-process recorder .*librecorder\.so", run.stdout, re.M), run.stdout
    assert engine_lines(run.stderr) == [] and engine_lines(run.stdout) == []


def test_static_binary_gets_the_breakpoint_engine_and_one_line(built_targets: Path, tmp_path: Path):
    run = run_cli([str(built_targets / "shapes_static")], tmp_path)
    assert engine_lines(run.stderr) == [
        "gdb-memleak: shapes_static is statically linked (nothing can be preloaded): using the breakpoint engine."]
    assert "using the breakpoint engine" not in run.stdout
    process = run.process()
    assert process["exit"] == {"code": 0} and process["totals"]["allocs"] > 0, run.stderr


def test_the_line_is_said_once_per_run_not_once_per_process(built_targets: Path, tmp_path: Path):
    """find forks a child per -exec, which execs the static binary: three processes, one line. (Not a shell: GDB 13
    can deadlock when a child's exit is reported while the shell waits in its next vfork; see the README.)"""
    static = built_targets / "shapes_static"
    run = run_cli(["/usr/bin/find", "/dev/null", *(["-exec", str(static), ";"] * 3)], tmp_path)
    assert [p["argv"][0] for p in run.report["processes"]].count(str(static)) == 3, run.stderr
    assert len(engine_lines(run.stderr)) == 1, run.stderr


def test_explicit_breakpoint_engine_says_nothing_even_for_a_static_binary(built_targets: Path, tmp_path: Path):
    run = run_cli(["--engine", "breakpoint", str(built_targets / "shapes_static")], tmp_path)
    assert engine_lines(run.stderr) == [] and run.process()["exit"] == {"code": 0}, run.stderr


def _without_a_compiler(tmp_path: Path) -> dict[str, str]:
    """PATH with GDB and addr2line but no C compiler; CC empty (unset for the build)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("gdb", "addr2line"):
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).symlink_to(found)
    return {"PATH": str(bin_dir), "CC": ""}


@pytest.mark.parametrize("how", ["no compiler on PATH", "CC fails"])
def test_recorder_that_cannot_be_built_falls_back_with_one_line(built_targets: Path, tmp_path: Path, how: str):
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}  # nothing built before
    if how == "CC fails":
        env["CC"] = "/bin/false"
        reason = "cannot build the recorder with /bin/false: exit status 1"
    else:
        env.update(_without_a_compiler(tmp_path))
        reason = "cannot build the recorder: no C compiler (gcc) found"
    run = run_cli(["--", "/bin/cat", "/proc/self/maps"], tmp_path, env=env)
    assert engine_lines(run.stderr) == [f"gdb-memleak: {reason}: using the breakpoint engine."], run.stderr
    assert RECORDER not in run.stdout and "[stack]" in run.stdout, run.stderr  # it ran, without the recorder
    demo = run_cli([str(built_targets / "seed_demo")], tmp_path, env=env)
    assert seed_demo_findings(demo.process()) == SEED_DEMO, demo.stderr
    assert len(engine_lines(demo.stderr)) == 1


def test_cli_attach_uses_the_recorder_silently(built_targets: Path, tmp_path: Path):
    proc = subprocess.Popen([str(built_targets / "attach_loop"), "150"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    pid = int(proc.stdout.readline().split()[1])  # "ready PID"
    run = run_cli(["--pid", str(pid), "--duration", "0.5"], tmp_path)
    maps = Path(f"/proc/{pid}/maps").read_text()  # the recorder stays loaded (idle) after the detach
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and rest == "finished 150\n"
    assert engine_lines(run.stderr) == [], run.stderr
    assert RECORDER in maps, run.stderr
    assert run.process()["totals"]["allocs"] >= 5


def test_memleak_start_mid_run_uses_the_recorder_silently(built_targets: Path):
    run = run_gdb(["break main", "run", "memleak start", "memleak status", "continue"], built_targets / "seed_demo")
    assert engine_lines(run.stderr) == [], run.stderr
    assert re.search(r"^ *engine: agent \(in-process recorder .*librecorder", run.stdout, re.M), run.stdout
    assert "Double free" in run.stdout, run.stdout


def test_attach_to_a_static_binary_uses_the_breakpoint_engine_and_says_so(built_targets: Path):
    run = run_gdb(["break main", "run", "memleak start", "memleak status", "kill"],
                  built_targets / "shapes_static")
    assert engine_lines(run.stderr) == ["gdb-memleak: shapes_static is statically linked (the recorder cannot be "
                                        "loaded into it): using the breakpoint engine."], run.stderr
    assert re.search(r"^ *hooked: malloc ", run.stdout, re.M), run.stdout  # the breakpoint engine's status


@pytest.fixture
def setuid_copy(built_targets: Path, tmp_path: Path) -> Path:
    """seed_demo as a set-user-ID program of user nobody: the loader runs it in secure-execution mode, where a
    preload given by path is ignored. Under ptrace the kernel honours the bit only for a root tracer."""
    if os.geteuid() != 0:
        pytest.skip("a set-user-ID program changes user under GDB only when GDB runs as root")
    program = tmp_path / "seed_demo"
    shutil.copy(built_targets / "seed_demo", program)
    os.chown(program, 65534, -1)
    os.chmod(program, 0o4755)
    if os.statvfs(program).f_flag & os.ST_NOSUID:
        pytest.skip(f"{tmp_path} is on a nosuid mount")
    return program


def test_setuid_program_gets_the_breakpoint_engine_and_one_line(setuid_copy: Path, tmp_path: Path):
    run = run_cli([str(setuid_copy)], tmp_path)
    assert engine_lines(run.stderr) == ["gdb-memleak: seed_demo is set-user-ID or set-group-ID (the dynamic loader "
                                        "ignores LD_PRELOAD there): using the breakpoint engine."], run.stderr
    assert seed_demo_findings(run.process()) == SEED_DEMO, run.stderr


def test_program_that_ignored_the_preload_falls_back_with_one_line(setuid_copy: Path):
    """Without the set-user-ID check, the recorder is put in the environment and the loader drops it: the engine
    sees no recorder once libc is loaded and falls back, saying so on stderr (in the CLI too: GDB's own stderr is
    captured while `run` executes, so the line goes through the session's stream)."""
    no_check = "python import gdb_memleak.gdb.engine_choice as c; c._privileged = lambda program: False"
    run = run_gdb([no_check, "memleak start", "set memleak on-error skip", "catch syscall exit_group", "run",
                   "memleak status", "continue"], setuid_copy)
    assert engine_lines(run.stderr) == ["gdb-memleak: seed_demo: the recorder was not loaded (the program ignored "
                                        "LD_PRELOAD): using the breakpoint engine."], run.stderr
    assert "tracking (breakpoint engine)" in run.stdout and "engine: breakpoint (the recorder was not loaded)" \
        in run.stdout, run.stdout
    assert "total heap usage: 4 allocs, 4 frees, 100 bytes allocated" in run.stdout
