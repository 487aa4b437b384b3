"""A program killed by a signal: the report names the signal, the fault address of a fault, and the stack of the
thread that got it, as valgrind does (issue 16, item 11), in the text report, the JSON and the SARIF."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

import valgrind
from conftest import TARGETS, run_cli, run_gdb

VALGRIND_BLOCK = re.compile(r"==\d+== Process terminating with default action of signal (\d+) \((\w+)\)\n"
                            r"(?:==\d+==  (?P<event>\S.*)\n)?(?P<stack>(?:==\d+==    (?:at|by) .*\n)+)")
VALGRIND_FRAME = re.compile(r"(?:at|by) 0x[0-9A-F]+: (?P<function>\S+) \((?P<file>[^:()]+):(?P<line>\d+)\)")


def valgrind_fatal(argv: list[str]) -> tuple[str, str | None, list[tuple[str, str, int]]]:
    """valgrind's (signal name, fault line, [(function, file name, line)]) for a program a signal kills."""
    proc = valgrind.run(["--run-libc-freeres=no", "--run-cxx-freeres=no", *argv])
    block = VALGRIND_BLOCK.search(proc.stderr)
    assert block is not None, proc.stderr[-2000:]
    frames = [(m["function"], os.path.basename(m["file"]), int(m["line"]))
              for m in VALGRIND_FRAME.finditer(block["stack"])]
    return block.group(2), block["event"], frames


def our_frames(fatal: dict) -> list[tuple[str, str, int]]:
    return [(f["function"], os.path.basename(f["file"] or ""), f["line"] or 0) for f in fatal["stack"]]


def line_of(source: Path, text: str) -> int:
    return next(i for i, line in enumerate(source.read_text().splitlines(), 1) if text in line)


@pytest.mark.valgrind
def test_a_fault_in_a_thread_names_the_signal_the_address_and_that_threads_stack(built_targets: Path,
                                                                                 tmp_path: Path, engine: str):
    program = built_targets / "crash_thread_fault"
    sarif = tmp_path / "report.sarif"
    run = run_cli(["--engine", engine, "--sarif", str(sarif), str(program)], tmp_path)
    process = run.process()
    fatal = process["fatal_signal"]
    assert fatal is not None, run.stderr
    assert (fatal["signal"], fatal["number"], fatal["code"]) == ("SIGSEGV", 11, 1)
    assert fatal["address"] == "0x1008"
    assert fatal["thread"] != process["pid"]  # the worker thread faulted, not the main one
    name, event, theirs = valgrind_fatal([str(program)])
    assert name == "SIGSEGV" and fatal["description"] == event == "Access not within mapped region at address 0x1008"
    ours = our_frames(fatal)
    assert [f[0] for f in ours[:5]] == ["poke", "descend", "descend", "descend", "worker"], ours
    assert ours == theirs[:len(ours)], (ours, theirs)  # valgrind goes on below start_thread (clone)
    faulting = line_of(TARGETS / "crash_thread_fault.c", "the faulting line")
    assert "Process terminating with default action of signal 11 (SIGSEGV)\n" \
           " Access not within mapped region at address 0x1008\n" in run.stderr
    assert re.search(rf"^   at 0x{fatal['stack'][0]['pc'][2:]}: poke \(.*crash_thread_fault\.c:{faulting}\)$",
                     run.stderr, re.M), run.stderr
    result = next(r for r in json.loads(sarif.read_text())["runs"][0]["results"] if r["ruleId"] == "fatal_signal")
    assert result["level"] == "error" and "at address 0x1008" in result["message"]["text"]
    assert result["locations"][0]["physicalLocation"]["region"]["startLine"] == faulting
    assert run.returncode == 128 + 11, run.stderr


@pytest.mark.valgrind
def test_sigbus_names_the_address_of_the_page_past_the_file(built_targets: Path, tmp_path: Path, engine: str):
    program = built_targets / "crash_sigbus"
    run = run_cli(["--engine", engine, str(program)], tmp_path)
    mapped = re.search(r"^mapped (0x[0-9a-f]+)$", run.stdout, re.M)
    assert mapped is not None, run.stdout
    fatal = run.process()["fatal_signal"]
    assert (fatal["signal"], fatal["address"]) == ("SIGBUS", mapped.group(1)), run.stderr
    assert fatal["description"] == f"Non-existent physical address at address {mapped.group(1)}"
    name, event, theirs = valgrind_fatal([str(program)])
    assert name == "SIGBUS" and event is not None and event.startswith("Non-existent physical address at address")
    assert our_frames(fatal) == theirs, (fatal["stack"], theirs)  # touch, main


@pytest.mark.valgrind
def test_a_signal_sent_by_a_process_has_no_fault_address_and_the_receivers_stack(tmp_path: Path):
    argv = ["/bin/sh", "-c", "kill -TERM $$"]
    run = run_cli(argv, tmp_path)
    fatal = run.process()["fatal_signal"]
    assert fatal is not None, run.stderr
    assert (fatal["signal"], fatal["number"], fatal["address"], fatal["description"]) == ("SIGTERM", 15, None, None)
    assert fatal["code"] <= 0  # SI_USER: sent, not raised by the kernel
    name, event, theirs = valgrind_fatal(argv)
    assert (name, event) == ("SIGTERM", None)
    assert our_frames(fatal)[0][1:] == theirs[0][1:]  # kill (syscall-template.S:N); GDB may name it __GI_kill
    assert "Process terminating with default action of signal 15 (SIGTERM)\n   at 0x" in run.stderr


def test_a_normal_exit_has_no_fatal_signal(built_targets: Path, tmp_path: Path):
    run = run_cli([str(built_targets / "clean")], tmp_path)
    assert run.process()["fatal_signal"] is None
    assert "Process terminating" not in run.stderr


@pytest.mark.parametrize("engine", ["breakpoint", "agent"])
def test_interactive_gdb_reports_the_fault_at_the_stop(built_targets: Path, engine: str):
    run = run_gdb([f"set memleak engine {engine}", "memleak start", "run"], built_targets / "crash_thread_fault")
    assert "Traceback" not in run.stderr, run.stderr
    shown = run.stdout
    assert "received signal SIGSEGV" in shown
    assert "Process terminating with default action of signal 11 (SIGSEGV)\n" \
           " Access not within mapped region at address 0x1008\n   at 0x" in shown, shown
    assert shown.index("received signal SIGSEGV") < shown.index("Process terminating")
