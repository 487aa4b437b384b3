"""valgrind's XML output, protocol 4 (valgrind's docs/internals/xml-output-protocol4.txt), as memcheck writes it with
`--xml=yes --xml-file=FILE`: what IDEs (Qt Creator, CLion, KDevelop) and CI converters (ValgrindCI,
valgrind-codequality) read.

One document is one process, as under valgrind: `%p` in the file name gives each process its own file (its pid;
a process that execs ends with its last image's report, as valgrind's new image rewrites the file); without `%p`
the file holds the process gdb-memleak started (or attached), the processes it forked left out.

What differs from memcheck's document, and why:
- Stacks. memcheck's start in its replacement of the allocator (`malloc` in vgpreload_memcheck-*.so); ours start
  at its caller. Each stack here starts with one frame for the allocator or release function, named as memcheck
  names it (`operator new[](unsigned long)`), with `obj` "gdb-memleak" and `ip` 0x0 (the call went through the
  tool's hook), no source: readers that show "the first frame with a source file" or skip frame 0 land on the same
  user frame as with valgrind's document, and no stack has fewer than two frames. The other frames' `ip` is the
  return address minus one, as valgrind's (inside the call instruction); `fn` is GDB's name (memcheck's
  demangling, except that C++'s `main()` is valgrind's `main`), `dir`/`file`/`line` are given together or not at all.
- Loss records list the kinds the report shows (`--show-leak-kinds`); blocks no scan classified are
  Leak_PossiblyLost, saying so in their text. Suppressed records are numbered but not listed, as in valgrind.
- Times are seconds since tracking began (valgrind's since it started the program). A forked child's document has
  no RUNNING status, as valgrind's: the program started in its parent.
- An invalid free of a pointer to a thread's stack has one `auxwhat`: valgrind's second ("in frame #1, created by
  main (...)") needs the frames of that moment.
"""

from __future__ import annotations

import os
import re
import shlex
from typing import Sequence, TextIO

from ... import __version__
from ..model import Frame
from ..report import ProcessReport
from .memcheck import ERROR_WHAT, allocator_function, aux_lines, error_contexts, loss_records
from .options import ReportOptions

FORMAT = "xml-file"
HELP = ("write valgrind's XML (protocol 4, memcheck's --xml=yes) to FILE; %p in FILE: one file per process, named "
        "by its pid (without %p: the process started only)")

PER_PROCESS = "%p"
TOOL_OBJECT = "gdb-memleak"  # the `obj` of the allocator frame each stack starts with
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")  # no XML 1.0 text may hold these
_OFFSET = re.compile(r"^(?P<name>.+)\+0x[0-9a-fA-F]+$")


def text(value: object) -> str:
    """Character data: `&`, `<`, `>` escaped as valgrind does; characters XML cannot hold (control characters, the
    undecodable bytes of a non-UTF-8 argv) replaced by U+FFFD; non-ASCII as character references, so the document
    is right whatever encoding the file is opened with."""
    plain = _ILLEGAL.sub("\ufffd", str(value)).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return plain.encode("ascii", "xmlcharrefreplace").decode("ascii")


def files(path: str, reports: Sequence[ProcessReport]) -> list[tuple[str, list[ProcessReport]]]:
    """Which report goes to which file: one per pid (`%p` in `path`: its last image), else the started process's."""
    if PER_PROCESS not in path:
        return [(path, [started(reports)] if reports else [])]
    last = {r.result.pid: r for r in reports}  # reports are in the order they ended: an exec'd image after the old
    return [(path.replace(PER_PROCESS, str(pid)), [report]) for pid, report in last.items()]


def started(reports: Sequence[ProcessReport]) -> ProcessReport:
    """The process gdb-memleak started (or attached): the one whose parent is no other process here (its last
    image)."""
    pids = {r.result.pid for r in reports}
    root = next((r for r in reports if r.result.ppid not in pids), reports[0]).result.pid
    return [r for r in reports if r.result.pid == root][-1]


def elapsed(seconds: float) -> str:
    """valgrind's status time: days:hours:minutes:seconds.milliseconds, with its trailing space."""
    ms = max(int(round(seconds * 1000)), 0)
    return (f"{ms // 86_400_000:02d}:{ms // 3_600_000 % 24:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}"
            f".{ms % 1000:03d} ")


def function_name(frame: Frame) -> str | None:
    """`fn` as valgrind gives it: a symbol's name without our `+0x…` offset, none for an address or object offset."""
    name = frame.function or ""
    offset = _OFFSET.match(name)
    if offset:
        name = offset["name"]
        return None if name == os.path.basename(frame.object or "") else name
    if not name or name.startswith(("0x", "<")) or name == "??":
        return None
    return "main" if name == "main()" else name


def frame_lines(frame: Frame) -> list[str]:
    lines = [f"      <ip>0x{max(frame.pc - 1, 0):X}</ip>"]
    if frame.object and frame.object != "??":
        lines.append(f"      <obj>{text(frame.object)}</obj>")
    name = function_name(frame)
    if name:
        lines.append(f"      <fn>{text(name)}</fn>")
    if frame.file and frame.line:
        directory, file = os.path.split(frame.file)
        if directory:
            lines.append(f"      <dir>{text(directory)}</dir>")
        lines += [f"      <file>{text(file)}</file>", f"      <line>{frame.line}</line>"]
    return lines


def stack(report: ProcessReport, pcs: tuple[int, ...], allocator: str | None) -> str:
    """A `stack`: the allocator's frame (see the module's notes), then ours."""
    frames = [["      <ip>0x0</ip>", f"      <obj>{TOOL_OBJECT}</obj>"]
              + ([f"      <fn>{text(name)}</fn>"] if (name := allocator_function(allocator)) else [])]
    frames += [frame_lines(f) for f in report.frames(pcs)]
    body = "".join("    <frame>\n" + "\n".join(lines) + "\n    </frame>\n" for lines in frames)
    return f"  <stack>\n{body}  </stack>\n"


def header(report: ProcessReport | None, options: ReportOptions) -> str:
    result = report.result if report is not None else None
    argv = result.argv if result is not None and result.argv else ["?"]
    command = list(options.command) or ["gdb-memleak"]

    def args(tag: str, words: Sequence[str]) -> str:
        return (f"  <{tag}>\n    <exe>{text(words[0])}</exe>\n"
                + "".join(f"    <arg>{text(word)}</arg>\n" for word in words[1:]) + f"  </{tag}>\n")

    return (
        '<?xml version="1.0"?>\n\n<valgrindoutput>\n\n<protocolversion>4</protocolversion>\n'
        "<protocoltool>memcheck</protocoltool>\n\n<preamble>\n"
        "  <line>gdb-memleak, a memory leak and heap error finder in GDB (memcheck's XML)</line>\n"
        f"  <line>Using gdb-memleak-{text(__version__)}</line>\n"
        f"  <line>Command: {text(shlex.join(argv))}</line>\n</preamble>\n\n"
        f"<pid>{result.pid if result else 0}</pid>\n<ppid>{(result.ppid or 0) if result else 0}</ppid>\n"
        "<tool>memcheck</tool>\n\n"
        f"<args>\n{args('vargv', command)}{args('argv', argv)}</args>\n\n"
    )


def status(state: str, seconds: float) -> str:
    return f"<status>\n  <state>{state}</state>\n  <time>{elapsed(seconds)}</time>\n</status>\n\n"


def body(report: ProcessReport, options: ReportOptions) -> str:
    """The process's bad frees (memcheck's contexts) while it ran, then its loss records, the counts of each."""
    parts = [] if report.result.forked else [status("RUNNING", 0.0)]  # valgrind's fork child: started in its parent
    contexts = error_contexts(report)
    for context in contexts:
        error = context.first
        aux = "".join(f"  <auxwhat>{text(line)}</auxwhat>\n" + (stack(report, pcs, top) if pcs else "")
                      for line, pcs, top in aux_lines(error))
        parts.append(f"<error>\n  <unique>0x{context.unique:x}</unique>\n  <tid>{error.thread}</tid>\n"
                     f"  <kind>{context.kind}</kind>\n  <what>{ERROR_WHAT[context.kind]}</what>\n"
                     f"{stack(report, error.pcs, error.allocator)}{aux}</error>\n\n")
    parts.append("\n" + status("FINISHED", report.checked_at))
    records = loss_records(report)
    shown = options.where.kinds if options.where is not None else None
    unique = len(report.errors())
    for record in records:
        group = record.group
        if record.suppressed or (shown is not None and group.kind not in shown):
            continue
        parts.append(f"<error>\n  <unique>0x{unique:x}</unique>\n  <tid>1</tid>\n  <kind>{record.kind}</kind>\n"
                     f"  <xwhat>\n    <text>{record.text()}</text>\n"
                     f"    <leakedbytes>{group.total_bytes}</leakedbytes>\n"
                     f"    <leakedblocks>{group.blocks}</leakedblocks>\n  </xwhat>\n"
                     f"{stack(report, group.pcs, group.allocator)}</error>\n\n")
        unique += 1
    pairs = "".join(f"  <pair>\n    <count>{c.count}</count>\n    <unique>0x{c.unique:x}</unique>\n  </pair>\n"
                    for c in reversed(contexts))  # valgrind lists the latest first
    used = "".join(f"  <pair>\n    <count>{counts.count}</count>\n    <name>{text(s.name)}</name>\n  </pair>\n"
                   for s, counts in report.used_suppressions())
    parts.append(f"<errorcounts>\n{pairs}</errorcounts>\n\n<suppcounts>\n{used}</suppcounts>\n\n")
    return "".join(parts)


def write(reports: Sequence[ProcessReport], out: TextIO, options: ReportOptions | None = None) -> None:
    """One process's document (the started one when given several: `files` splits them)."""
    options = options or ReportOptions()
    report = started(reports) if reports else None
    out.write(header(report, options))
    if report is not None:
        out.write(body(report, options))
    out.write("</valgrindoutput>\n\n")
