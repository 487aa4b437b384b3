"""The correctness oracle: valgrind memcheck's HEAP SUMMARY figures, LEAK SUMMARY and loss records for a program."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IN_USE = re.compile(r"in use at exit: ([\d,]+) bytes in ([\d,]+) blocks")
TOTAL = re.compile(r"total heap usage: ([\d,]+) allocs, ([\d,]+) frees, ([\d,]+) bytes allocated")


@dataclass(frozen=True)
class HeapFigures:
    allocs: int
    frees: int
    bytes_allocated: int
    in_use_bytes: int
    in_use_blocks: int


def available() -> bool:
    return shutil.which("valgrind") is not None


#: the test running now (set by conftest before its fixtures): every run of valgrind goes through `run`, which
#: fails a test not marked `valgrind`, so `-m "not valgrind"` and `--quick` surely leave valgrind out
CURRENT_TEST: list[Any] = [None]


def run(args: list[str], timeout: int = 300, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """valgrind with `args` (its options, then the program's argv), output captured as text."""
    test = CURRENT_TEST[0]
    if test is not None and test.get_closest_marker("valgrind") is None:
        raise AssertionError(f"{test.nodeid} runs valgrind: mark it @pytest.mark.valgrind")
    return subprocess.run(["valgrind", *args], capture_output=True, text=True, timeout=timeout, **kwargs)


def _num(text: str) -> int:
    return int(text.replace(",", ""))


def heap_figures(argv: list[str], timeout: int = 300) -> HeapFigures:
    return parse_heap_figures(run(["--run-libc-freeres=no", "--run-cxx-freeres=no", *argv], timeout=timeout).stderr)


def parse_heap_figures(stderr: str) -> HeapFigures:
    """The HEAP SUMMARY figures in valgrind's output `stderr`."""
    in_use, total = IN_USE.search(stderr), TOTAL.search(stderr)
    assert in_use and total, stderr[-2000:]
    return HeapFigures(_num(total.group(1)), _num(total.group(2)), _num(total.group(3)),
                       _num(in_use.group(1)), _num(in_use.group(2)))


def our_figures(process: dict) -> HeapFigures:
    t, u = process["totals"], process["in_use_at_exit"]
    return HeapFigures(t["allocs"], t["frees"], t["bytes_allocated"], u["bytes"], u["blocks"])


# --- leak kinds ---------------------------------------------------------------------------------------------------

LEAK_FLAGS = ["--leak-check=full", "--show-leak-kinds=all", "--run-libc-freeres=no", "--run-cxx-freeres=no"]
SUMMARY_KEYS = ("definite", "indirect", "possible", "reachable", "suppressed")
_SUMMARY_LINES = {
    "definite": "definitely lost", "indirect": "indirectly lost", "possible": "possibly lost",
    "reachable": "still reachable", "suppressed": "suppressed",
}
_ALL_FREED = re.compile(r"^==\d+== All heap blocks were freed -- no leaks are possible", re.M)
_XML_KINDS = {
    "Leak_DefinitelyLost": "definite", "Leak_IndirectlyLost": "indirect",
    "Leak_PossiblyLost": "possible", "Leak_StillReachable": "reachable",
}
# "160 (16 direct, 144 indirect) bytes in 1 blocks are definitely lost in loss record 2 of 2"
# "144 bytes in 9 blocks are indirectly lost in loss record 1 of 2"
_RECORD = re.compile(r"^([\d,]+) (?:\(([\d,]+) direct, ([\d,]+) indirect\) )?bytes in ([\d,]+) blocks are .*"
                     r" in loss record ([\d,]+) of ([\d,]+)$")


def leak_summary(argv: list[str], timeout: int = 300) -> dict[str, tuple[int, int]]:
    """valgrind's LEAK SUMMARY: kind -> (bytes, blocks) for definite, indirect, possible, reachable, suppressed.

    Run with LEAK_FLAGS; all zero when valgrind says "All heap blocks were freed".  The "of which reachable via
    heuristic" sub-lines valgrind adds when a heuristic applied are not separate keys (they are in `reachable`;
    leak_summary_with_heuristics reads them).
    """
    return leak_summary_with_heuristics(argv, timeout=timeout)[0]


_HEURISTIC_LINE = re.compile(r"^==\d+==\s+(stdstring|length64|newarray|multipleinheritance)\s*: ([\d,]+) bytes in "
                             r"([\d,]+) blocks$", re.M)
HEURISTICS = ("stdstring", "length64", "newarray", "multipleinheritance")


def leak_summary_with_heuristics(argv: list[str], heuristics: str = "all",
                                 timeout: int = 300) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
    """(valgrind's LEAK SUMMARY as leak_summary gives it, its "of which reachable via heuristic" figures for every
    heuristic, 0/0 for those it does not list), run with LEAK_FLAGS and --leak-check-heuristics=`heuristics`."""
    flags = [*LEAK_FLAGS, f"--leak-check-heuristics={heuristics}"]
    return parse_leak_summary(run([*flags, *argv], timeout=timeout).stderr)


def parse_leak_summary(err: str) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
    """The LEAK SUMMARY and heuristic figures (as leak_summary_with_heuristics gives them) in valgrind's output."""
    head = err.rfind("LEAK SUMMARY:")
    figures = {name: (0, 0) for name in HEURISTICS}
    if head < 0:
        assert _ALL_FREED.search(err), err[-2000:]
        return {key: (0, 0) for key in SUMMARY_KEYS}, figures
    summary = {}
    for key, label in _SUMMARY_LINES.items():
        m = re.compile(rf"^==\d+==\s+{label}: ([\d,]+) bytes in ([\d,]+) blocks$", re.M).search(err, head)
        assert m, err[head - 200:]
        summary[key] = (_num(m.group(1)), _num(m.group(2)))
    for m in _HEURISTIC_LINE.finditer(err, head):
        figures[m.group(1)] = (_num(m.group(2)), _num(m.group(3)))
    return summary, figures


def _executable(argv0: str) -> str:
    found = argv0 if os.sep in argv0 else (shutil.which(argv0) or argv0)
    return os.path.realpath(found)


def _frame(elem: ET.Element) -> dict:
    get = lambda tag: elem.findtext(tag)  # noqa: E731
    directory, file, line = get("dir"), get("file"), get("line")
    path = os.path.join(directory, file) if directory and file else file
    return {"ip": get("ip"), "object": get("obj"), "function": get("fn"), "file": file, "path": path,
            "line": int(line) if line else None}


def _user_frame(stack: list[dict], executable: str, source_dir: str | None) -> dict | None:
    """The first frame in the user's source: under `source_dir` when given, else in the program's own object
    with a source file that is not a system header (g++ inlines std:: templates from /usr/include into it)."""
    for frame in stack:
        if not frame["path"] or not frame["line"]:
            continue
        if source_dir is not None:
            if os.path.realpath(frame["path"]).startswith(source_dir + os.sep):
                return frame
        elif frame["object"] and os.path.realpath(frame["object"]) == executable \
                and not os.path.realpath(frame["path"]).startswith("/usr/"):
            return frame
    return None


def xml_document(args: list[str], timeout: int = 300) -> ET.Element:
    """valgrind's `--xml=yes` document of a run with `args` (its options, then the program's argv)."""
    with tempfile.TemporaryDirectory(prefix="vg-xml-") as tmp:
        xml_path = os.path.join(tmp, "memcheck.xml")
        proc = run(["--xml=yes", f"--xml-file={xml_path}", *args], timeout=timeout)
        assert os.path.exists(xml_path), proc.stderr[-2000:]
        return ET.parse(xml_path).getroot()


def leak_records(argv: list[str], source_dir: str | Path | None = None, timeout: int = 300) -> list[dict]:
    """valgrind's loss records (run with LEAK_FLAGS, read from --xml=yes), in valgrind's order.

    Each: kind (definite|indirect|possible|reachable), bytes (the record's own blocks, the "direct" figure when
    valgrind prints "T (D direct, I indirect) bytes"), blocks, indirect_bytes (what is lost through them, 0 unless
    definite/possible), total_bytes, loss_record (its number), file (basename) / path / line / function of the first
    frame in the user's source (None if none), and stack (every frame: ip, object, function, file, path, line).
    """
    executable = _executable(argv[0])
    src = os.path.realpath(source_dir) if source_dir is not None else None
    root = xml_document([*LEAK_FLAGS, *argv], timeout=timeout)
    records = []
    for error in root.iter("error"):
        kind = _XML_KINDS.get(error.findtext("kind") or "")
        if kind is None:  # not a leak (invalid free, uninitialised value, ...)
            continue
        text = error.findtext("xwhat/text") or ""
        m = _RECORD.match(text.strip())
        assert m, text
        total = _num(m.group(1))
        direct = _num(m.group(2)) if m.group(2) else total
        indirect = _num(m.group(3)) if m.group(3) else 0
        assert total == _num(error.findtext("xwhat/leakedbytes")), text
        stack = [_frame(f) for f in error.findall("stack/frame")]
        user = _user_frame(stack, executable, src) or {}
        records.append({
            "kind": kind, "bytes": direct, "blocks": _num(m.group(4)), "indirect_bytes": indirect,
            "total_bytes": total, "loss_record": _num(m.group(5)),
            "file": user.get("file"), "path": user.get("path"), "line": user.get("line"),
            "function": user.get("function"), "stack": stack,
        })
    return records


# --- suppressions --------------------------------------------------------------------------------------------------

_USED = re.compile(r"^--\d+-- used_suppression:\s+(\d+) (.+) (\S+):(\d+)(?: suppressed: ([\d,]+) bytes in ([\d,]+) "
                   r"blocks)?$", re.M)
_HEAP_ERROR = re.compile(r"^==\d+== (Invalid free\(\) / delete / delete\[\] / realloc\(\)|Mismatched free\(\) / "
                         r"delete / delete \[\])$", re.M)
_BLOCK = re.compile(r"^\{\n.*?\n\}$", re.M | re.S)


@dataclass(frozen=True)
class SuppressedRun:
    """What valgrind suppressed in one run: its LEAK SUMMARY, the heap errors it still showed, each suppression it
    used as (name, count, file, line, bytes, blocks) from -v, and the blocks --gen-suppressions=all printed."""

    summary: dict[str, tuple[int, int]]
    heap_errors: int
    used: frozenset[tuple[str, int, str, int, int, int]]
    generated: tuple[str, ...]


def suppressed_run(argv: list[str], suppressions: list[str] = (), generate: bool = False,
                   timeout: int = 300) -> SuppressedRun:
    """valgrind with LEAK_FLAGS and these --suppressions files, and -v (its used-suppression counts) or, with
    `generate`, --gen-suppressions=all instead (-v would print the error list, blocks included, a second time)."""
    flags = [*LEAK_FLAGS, *(f"--suppressions={path}" for path in suppressions)]
    proc = run([*flags, "--gen-suppressions=all" if generate else "-v", *argv], timeout=timeout)
    err = proc.stderr
    head = err.rfind("LEAK SUMMARY:")
    assert head >= 0, err[-2000:]
    summary = {}
    for key, label in _SUMMARY_LINES.items():
        m = re.compile(rf"^==\d+==\s+{label}: ([\d,]+) bytes in ([\d,]+) blocks$", re.M).search(err, head)
        summary[key] = (_num(m.group(1)), _num(m.group(2))) if m else (0, 0)
    used = frozenset((m.group(2), int(m.group(1)), m.group(3), int(m.group(4)), _num(m.group(5) or "0"),
                      _num(m.group(6) or "0")) for m in _USED.finditer(err))
    generated = tuple(sorted(_BLOCK.findall("\n".join(line for line in err.splitlines()
                                                    if not line.startswith(("==", "--"))))))
    shown = _HEAP_ERROR.findall(err, 0, err.find("HEAP SUMMARY:"))  # -v lists them again after it
    return SuppressedRun(summary, len(shown), used, generated)
