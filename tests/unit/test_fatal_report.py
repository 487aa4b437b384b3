"""core/fatal.py and the writers: the signal that killed a process, in valgrind's words, with the stack of the thread
that got it (its first PC where the thread was, not a return address)."""

from __future__ import annotations

import io

from gdb_memleak.core.fatal import FatalSignal
from gdb_memleak.core.model import Frame, ProcessResult
from gdb_memleak.core.report import ProcessReport
from gdb_memleak.core.reports.json import build_json
from gdb_memleak.core.reports.sarif import build_sarif
from gdb_memleak.core.reports.text import render_report
from gdb_memleak.core.symbols import Symbolizer
from gdb_memleak.core.table import AllocationTable

POKE = 0x1165       # the faulting instruction
AFTER_POKE = 0x118A  # the return address in descend


def lookup(pc: int) -> Frame:
    """As GdbResolver: a PC is looked up at PC - 1, the call before a return address."""
    return {POKE: Frame(pc, "poke", "/src/app.c", 20, "/bin/app"),
            AFTER_POKE - 1: Frame(pc, "descend", "/src/app.c", 26, "/bin/app")}[pc - 1]


def crashed(fatal: FatalSignal) -> ProcessReport:
    return ProcessReport(ProcessResult(9, ["./app", "-x"], signal=fatal.name, fatal=fatal), AllocationTable(),
                         Symbolizer(lookup))


SEGV = FatalSignal("SIGSEGV", 11, code=1, address=0x1008, thread=12, pc=POKE, callers=(AFTER_POKE,))


def test_valgrinds_words_for_faults_and_none_for_a_sent_signal():
    assert SEGV.event() == "Access not within mapped region at address 0x1008"
    assert FatalSignal("SIGSEGV", 11, code=2, address=0x4000).event() == \
        "Bad permissions for mapped region at address 0x4000"
    assert FatalSignal("SIGSEGV", 11, code=0x80, address=0).event() == "General Protection Fault"
    assert FatalSignal("SIGBUS", 7, code=2, address=0x7000).event() == "Non-existent physical address at address 0x7000"
    assert FatalSignal("SIGFPE", 8, code=1, address=0x401000).event() == \
        "Integer divide by zero at address 0x401000"
    assert FatalSignal("SIGSEGV", 11, code=0).event() is None   # SI_USER: kill(pid, SIGSEGV)
    assert FatalSignal("SIGABRT", 6, code=-6).event() is None   # SI_TKILL: abort()
    assert SEGV.headline() == "Process terminating with default action of signal 11 (SIGSEGV)"


def test_text_report_shows_the_fault_and_the_stack_at_the_faulting_pc():
    out = io.StringIO()
    render_report(crashed(SEGV), out)
    assert ("gdb-memleak: process 9 (./app) killed by SIGSEGV\n"
            "  command: ./app -x\n"
            "Process terminating with default action of signal 11 (SIGSEGV)\n"
            " Access not within mapped region at address 0x1008\n"
            f"   at 0x{POKE:x}: poke (/src/app.c:20)\n"
            f"   by 0x{AFTER_POKE:x}: descend (/src/app.c:26)\n") in out.getvalue()


def test_json_and_sarif_carry_the_fatal_signal():
    process = build_json([crashed(SEGV)])["processes"][0]
    fatal = process["fatal_signal"]
    assert {k: fatal[k] for k in ("signal", "number", "code", "address", "thread", "description")} == {
        "signal": "SIGSEGV", "number": 11, "code": 1, "address": "0x1008", "thread": 12,
        "description": "Access not within mapped region at address 0x1008"}
    assert [(f["pc"], f["function"], f["line"]) for f in fatal["stack"]] == [
        (f"0x{POKE:x}", "poke", 20), (f"0x{AFTER_POKE:x}", "descend", 26)]
    assert process["argv"] == ["./app", "-x"]
    results = build_sarif([crashed(SEGV)])["runs"][0]["results"]
    assert [r["ruleId"] for r in results] == ["fatal_signal"]
    assert results[0]["locations"][0]["physicalLocation"]["region"] == {"startLine": 20}


def test_a_process_that_exited_has_no_fatal_signal():
    report = ProcessReport(ProcessResult(3, ["./ok"], exit_code=0), AllocationTable(), Symbolizer(lookup))
    assert build_json([report])["processes"][0]["fatal_signal"] is None
    out = io.StringIO()
    render_report(report, out)
    assert "Process terminating" not in out.getvalue()
