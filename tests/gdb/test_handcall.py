"""Calling functions in an attached process by hand (handcall) and loading a library with it (inject)."""
from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT, TARGETS, run_gdb


@pytest.fixture(scope="module")
def built_targets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """c_targets/handcall/*.c, compiled here (a _O2 name optimised, as the Makefile would)."""
    out = tmp_path_factory.mktemp("handcall")
    for source in sorted((TARGETS / "handcall").glob("*.c")):
        flags = ["-O2"] if source.stem.endswith("_O2") else ["-O0", "-fno-omit-frame-pointer"]
        subprocess.run(["gcc", "-g", *flags, "-pthread", "-o", str(out / source.stem), str(source)], check=True)
    return out


def start(binary: Path, args: list[str]) -> subprocess.Popen:
    proc = subprocess.Popen([str(binary), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().startswith("ready ")
    return proc


def attach_and_run(proc: subprocess.Popen, script: str, tmp_path: Path) -> str:
    """Attach GDB to the process, run the Python script (handcall/inject imported), let the program go on."""
    driver = tmp_path / "driver.py"
    driver.write_text(f"import sys\nsys.path.insert(0, {str(ROOT)!r})\n"
                      "import gdb\nfrom gdb_memleak.gdb import handcall, inject\n"
                      "from gdb_memleak.core.procmaps import read_maps\n" + textwrap.dedent(script))
    run = run_gdb([f"source {driver}", "detach"], load="", deps=False, extra=["-p", str(proc.pid)])
    assert "Traceback" not in run.stderr, run.stderr
    return run.stdout


def finish(proc: subprocess.Popen, stdin: str = "") -> tuple[str, int]:
    out, _ = proc.communicate(stdin, timeout=120)
    return out, proc.returncode


def test_a_call_in_a_thread_blocked_in_read_returns_and_the_read_goes_on(built_targets: Path, tmp_path: Path):
    proc = start(built_targets / "handcall_sleep", [])
    out = attach_and_run(proc, """
        def state():
            sp = int(gdb.parse_and_eval("$rsp"))
            registers = gdb.execute("info registers general", to_string=True)
            stack = bytes(gdb.selected_inferior().read_memory(sp, 256))  # main's frame is near the stack's top
            return gdb.execute("bt", to_string=True), registers, stack
        before = state()
        result = handcall.call_function(int(gdb.parse_and_eval("(long)&bump")), [2])
        print("value", result.value, "counter", int(gdb.parse_and_eval("counter")))
        print("same stack, registers and stack bytes", state() == before)
    """, tmp_path)
    assert "value 420 counter 42" in out
    assert "same stack, registers and stack bytes True" in out
    assert finish(proc, "hello\n") == ("counter 42 read 6 hello\n", 3)


def test_a_call_in_the_middle_of_a_vector_loop_leaves_its_result_as_native(built_targets: Path, tmp_path: Path):
    binary = built_targets / "handcall_vector_O2"
    native = subprocess.run([str(binary), "1"], capture_output=True, text=True, check=True).stdout.splitlines()[1]
    proc = start(binary, ["0"])  # passes until scramble() sets finish
    out = attach_and_run(proc, """
        print("mid-loop", gdb.selected_frame().name() == "main")
        handcall.call_function(int(gdb.parse_and_eval("(long)&scramble")), [7])
    """, tmp_path)
    assert "mid-loop True" in out
    assert finish(proc) == (native + "\n", 0)


def test_dlopen_by_hand_while_threads_allocate_loads_the_library(built_targets: Path, tmp_path: Path):
    source = tmp_path / "answer.c"
    source.write_text("long hc_answer(long x) { return x * 7; }\n")
    library = tmp_path / "libanswer.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    proc = start(built_targets / "handcall_threads", ["0"])  # threads churn until finish_now()
    out = attach_and_run(proc, f"""
        foreign = gdb.Breakpoint("free")  # the churning threads hit it during the call: let go
        handle = inject.load_library(gdb.selected_inferior(), {str(library)!r})
        print("free hit during the call", foreign.hit_count > 0)
        foreign.delete()
        print("handle", handle != 0)
        answer = inject.exported(read_maps(gdb.selected_inferior().pid), {str(library)!r}, "hc_answer")
        print("answer", handcall.call_function(answer, [6]).value)
        print("listed", {str(library)!r} in gdb.execute("info sharedlibrary", to_string=True))
        handcall.call_function(int(gdb.parse_and_eval("(long)&finish_now")), [])
    """, tmp_path)
    assert "answer 42" in out
    assert "handle True" in out
    assert "free hit during the call True" in out
    assert "listed True" in out
    assert finish(proc) == ("".join(f"thread {t} errors 0\n" for t in range(3)), 0)


def test_a_faulting_call_is_undone_and_the_program_goes_on(built_targets: Path, tmp_path: Path):
    proc = start(built_targets / "handcall_sleep", [])
    out = attach_and_run(proc, """
        before = gdb.execute("bt", to_string=True)
        try:
            handcall.call_function(16, [])
        except handcall.HandCallError as error:
            print("error:", error)
        print("same stack", gdb.execute("bt", to_string=True) == before)
    """, tmp_path)
    assert "error: the function called by hand got SIGSEGV at 0x10\n" in out
    assert "same stack True" in out
    assert finish(proc, "x\n") == ("counter 40 read 2 x\n", 3)


def test_dlopen_of_a_missing_library_is_one_line_with_dlerrors_text(built_targets: Path, tmp_path: Path):
    proc = start(built_targets / "handcall_sleep", [])
    out = attach_and_run(proc, """
        try:
            inject.load_library(gdb.selected_inferior(), "/nonexistent/libnothing.so")
        except handcall.HandCallError as error:
            print("error:", error)
    """, tmp_path)
    assert ("error: the process could not load libnothing.so: /nonexistent/libnothing.so: cannot open shared "
            "object file: No such file or directory\n") in out
    assert finish(proc, "y\n") == ("counter 40 read 2 y\n", 3)


def test_the_process_exiting_during_a_call_is_one_line(built_targets: Path, tmp_path: Path):
    proc = start(built_targets / "handcall_sleep", [])
    out = attach_and_run(proc, """
        try:
            inject.call_libc(read_maps(gdb.selected_inferior().pid), "_exit", [5])
        except handcall.HandCallError as error:
            print("error:", error)
    """, tmp_path)
    assert "error: the process exited during a call made by hand\n" in out
    assert finish(proc) == ("", 5)


def test_a_signal_sent_to_the_process_during_a_call_is_held_then_delivered(built_targets: Path, tmp_path: Path):
    """The borrowed thread takes a SIGUSR1 another process sent while the called function runs: the call still
    returns, and the program's handler runs once, after the thread is put back (not inside the trampoline)."""
    proc = start(built_targets / "handcall_signal", [])
    out = attach_and_run(proc, f"""
        import os, signal, threading
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())  # SIGCHLD stays GDB's
        threading.Timer(0.2, os.kill, ({proc.pid}, signal.SIGUSR1)).start()
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        result = handcall.call_function(int(gdb.parse_and_eval("(long)&spin")), [1500])
        print("value", result.value, "handled during the call", int(gdb.parse_and_eval("handled")))
    """, tmp_path)
    assert "value 7 handled during the call 0" in out, out
    assert finish(proc, "x\n") == ("handled 1 read 2\n", 0)
