"""The report in valgrind's text layout, as memcheck writes it with `--log-file=FILE`: tools parse it (CTest's
`ctest -T memcheck` reads its error headlines, loss records and ERROR SUMMARY with regular expressions).

Every line starts with `==PID== ` (the `-v` lines with `--PID-- `, as valgrind's); the preamble, each heap error
at its first occurrence (memcheck's contexts), HEAP SUMMARY, each loss record shown, LEAK SUMMARY and ERROR SUMMARY
use memcheck's words and numbers (core/reports/memcheck.py). `-q` keeps only the errors and loss records.
Differences from memcheck's log: the preamble names gdb-memleak; each stack starts with one frame for the
allocator or release function (`at 0x0: malloc (in gdb-memleak)`) where memcheck's starts inside its replacement
(`at 0x48417B4: malloc (in /usr/libexec/valgrind/vgpreload_memcheck-amd64-linux.so)`); the other frames have the
return address minus one, as valgrind's. `%p` in FILE gives each process its own file, as valgrind's; without it
every process is written to the one file, one after the other.
"""

from __future__ import annotations

import os
import shlex
from typing import Sequence, TextIO

from ... import __version__
from ..kinds import LABELS, LeakKind
from ..report import ProcessReport
from .memcheck import ERROR_WHAT, allocator_function, aux_lines, error_contexts, loss_records
from .options import ReportOptions
from .suppression_blocks import error_block, error_summary, leak_block, used_lines
from .xml import PER_PROCESS, TOOL_OBJECT, function_name

FORMAT = "log-file"
HELP = ("write the report in valgrind's text layout (memcheck's --log-file: ==PID== lines) to FILE; %p in FILE: one "
        "file per process, named by its pid")

class Raw(str):
    """A line written as it is, without the `==PID==` prefix (valgrind's suppression blocks)."""


_SUMMARY_KINDS = (LeakKind.DEFINITE, LeakKind.INDIRECT, LeakKind.POSSIBLE, LeakKind.REACHABLE)


def files(path: str, reports: Sequence[ProcessReport]) -> list[tuple[str, Sequence[ProcessReport]]]:
    """One file per pid with `%p` (a process that exec'd: its images in order), else every process in `path`."""
    if PER_PROCESS not in path:
        return [(path, reports)]
    by_pid: dict[int, list[ProcessReport]] = {}
    for report in reports:
        by_pid.setdefault(report.result.pid, []).append(report)
    return [(path.replace(PER_PROCESS, str(pid)), images) for pid, images in by_pid.items()]


def stack_lines(report: ProcessReport, pcs: Sequence[int], allocator: str | None) -> list[str]:
    """valgrind's stack lines, "   at 0x…: fn (file:line)" then "   by …", the allocator's frame first."""
    lines = []
    if name := allocator_function(allocator):
        lines.append(f"0x0: {name} (in {TOOL_OBJECT})")
    for frame in report.frames(tuple(pcs)):
        where = f"{os.path.basename(frame.file)}:{frame.line}" if frame.file and frame.line \
            else f"in {frame.object or '???'}"
        lines.append(f"0x{max(frame.pc - 1, 0):X}: {function_name(frame) or '???'} ({where})")
    return [f"   {'at' if i == 0 else 'by'} {line}" for i, line in enumerate(lines)]


def error_lines(report: ProcessReport, options: ReportOptions) -> list[str]:
    """Each heap error context at its first occurrence, a blank line after each (and its suppression block)."""
    lines = []
    for context in error_contexts(report):
        error = context.first
        lines += [ERROR_WHAT[context.kind], *stack_lines(report, error.pcs, error.allocator)]
        for text, pcs, top in aux_lines(error):
            lines += [f" {text}", *(stack_lines(report, pcs, top) if pcs else [])]
        lines.append("")
        if options.gen_suppressions:
            lines += [Raw(line) for line in error_block(report, error).splitlines()]
    return lines


def record_lines(report: ProcessReport, options: ReportOptions) -> list[str]:
    """Each loss record of a kind shown, with its stack, numbered among all records as memcheck does."""
    shown = options.where.kinds if options.where is not None else None
    lines = []
    for record in loss_records(report):
        if record.suppressed or (shown is not None and record.group.kind not in shown):
            continue
        group = record.group
        lines += [record.text(), *stack_lines(report, group.pcs, group.allocator), ""]
        if options.gen_suppressions:
            lines += [Raw(line) for line in leak_block(report, group).splitlines()]
    return lines


def summary_lines(report: ProcessReport, options: ReportOptions) -> list[str]:
    """HEAP SUMMARY, the records, LEAK SUMMARY (or valgrind's line for a heap left empty)."""
    c = report.table.counters
    lines = ["", "HEAP SUMMARY:", f"    in use at exit: {c.live_bytes:,} bytes in {c.live_blocks:,} blocks",
             f"  total heap usage: {c.allocs:,} allocs, {c.frees:,} frees, {c.bytes_allocated:,} bytes allocated", ""]
    if not c.live_blocks:
        return [*lines, "All heap blocks were freed -- no leaks are possible", ""]
    lines += record_lines(report, options)
    summary = report.leak_summary()
    lines.append("LEAK SUMMARY:")
    for kind in (*_SUMMARY_KINDS, "suppressed"):
        entry = summary.get(kind, {"bytes": 0, "blocks": 0})
        label = LABELS.get(kind, kind)
        lines.append(f"   {label:>15}: {entry['bytes']:,} bytes in {entry['blocks']:,} blocks")
        used = {name: e for name, e in report.heuristic_summary().items() if e["blocks"]}
        if kind == LeakKind.REACHABLE and used:
            lines += [f"{' ' * 19}of which reachable via heuristic:"] + [
                f"{' ' * 21}{name:<19}: {e['bytes']:,} bytes in {e['blocks']:,} blocks" for name, e in used.items()]
    shown = options.where.kinds if options.where is not None else None
    if shown is not None and LeakKind.REACHABLE not in shown and summary.get(LeakKind.REACHABLE, {}).get("blocks"):
        lines += ["Reachable blocks (those to which a pointer was found) are not shown.",
                  "To see them, rerun with: --leak-check=full --show-leak-kinds=all"]
    return [*lines, ""]


def header_lines(report: ProcessReport) -> list[str]:
    r = report.result
    return ["Memcheck, a memory error detector (gdb-memleak, in memcheck's layout)",
            f"Using gdb-memleak-{__version__}", f"Command: {shlex.join(r.argv) if r.argv else '?'}",
            f"Parent PID: {r.ppid or 0}", ""]


def write_process(report: ProcessReport, out: TextIO, options: ReportOptions) -> None:
    pid = report.result.pid
    lines = [] if options.quiet else header_lines(report)
    lines += error_lines(report, options)
    if options.quiet:
        lines += record_lines(report, options)
    else:
        lines += summary_lines(report, options)
    prefixed = [line if isinstance(line, Raw) else f"=={pid}== {line}" for line in lines]
    if not options.quiet:
        summary = error_summary(report, options.error_kinds).line()
        if options.verbose:
            prefixed += [f"--{pid}-- {line}" for line in used_lines(report)]
        else:
            prefixed.append(f"=={pid}== For lists of detected and suppressed errors, rerun with: -s")
        prefixed.append(f"=={pid}== {summary}")
    out.write("".join(f"{line}\n" for line in prefixed))


def write(reports: Sequence[ProcessReport], out: TextIO, options: ReportOptions | None = None) -> None:
    options = options or ReportOptions()
    for report in reports:
        write_process(report, out, options)
