"""`--xml-file`: our valgrind XML (protocol 4) against valgrind's own `--xml=yes` document for the same program —
the same elements, kinds, leaked bytes and blocks, loss-record texts, auxiliary lines, errorcounts, and each
stack's frames in the program (function, directory, file, line). Addresses, unique numbers, times and pids aside,
and the frames outside the program (valgrind's replacement allocator, libc's internals) too."""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import valgrind
from conftest import TARGETS, compile_target, run_cli

HEX = re.compile(r"0x[0-9a-fA-F]+")
# valgrind's second line under a pointer into a stack: which frame made it (not kept by gdb-memleak)
STACK_FRAME_LINE = re.compile(r"^in frame #\d+, created by ")
CHECKS = ["--leak-check=full", "--run-libc-freeres=no", "--run-cxx-freeres=no", "--num-callers=50"]

needs_valgrind = pytest.mark.skipif(not valgrind.available(), reason="valgrind not installed: comparison skipped")


def outline(root: ET.Element, program: Path) -> dict:
    """What must agree between the two documents."""
    executable = os.path.realpath(program)

    def frames(stack: ET.Element) -> list[tuple]:
        return [tuple(f.findtext(tag) for tag in ("fn", "dir", "file", "line")) for f in stack.iter("frame")
                if os.path.realpath(f.findtext("obj") or "/") == executable]

    errors = [{"kind": e.findtext("kind"), "what": e.findtext("what"), "text": e.findtext("xwhat/text"),
               "bytes": e.findtext("xwhat/leakedbytes"), "blocks": e.findtext("xwhat/leakedblocks"),
               "auxwhat": [HEX.sub("0x…", a.text or "") for a in e.findall("auxwhat")
                           if not STACK_FRAME_LINE.match(a.text or "")],
               "stacks": [frames(s) for s in e.findall("stack")]} for e in root.findall("error")]
    return {"elements": [child.tag for child in root], "errors": errors,
            "errorcounts": [p.findtext("count") for p in root.findall("errorcounts/pair")],
            "suppcounts": [(p.findtext("count"), p.findtext("name")) for p in root.findall("suppcounts/pair")],
            "tool": (root.findtext("protocolversion"), root.findtext("protocoltool"), root.findtext("tool")),
            "argv": [a.text for a in root.findall("args/argv/*")]}


@pytest.mark.valgrind
@needs_valgrind
@pytest.mark.parametrize(("binary", "kinds", "engine"), [
    (TARGETS / "bin" / "seed_demo", "all", "agent"),           # a double free, its free and allocation stacks
    (TARGETS / "bin" / "seed_demo", "all", "breakpoint"),
    (TARGETS / "bin" / "cpp_mismatch", "all", "agent"),        # mismatched releases; definite with indirect; reachable
    (TARGETS / "bin" / "invalid_free_where", "all", "agent"),  # what an invalid pointer is: block, freed, stack, global
    (TARGETS / "bin" / "threads_kinds", "default", "agent"),   # kinds valgrind does not show by default still numbered
], ids=lambda value: getattr(value, "name", value))
@pytest.mark.usefixtures("built_targets")
def test_xml_file_has_valgrinds_elements_and_values(binary: Path, kinds: str, engine: str, tmp_path: Path):
    shown = [] if kinds == "default" else [f"--show-leak-kinds={kinds}"]
    theirs = valgrind.xml_document([*CHECKS, *shown, str(binary)])
    ours_path = tmp_path / "ours.xml"
    options = ["--engine", engine, "--xml-file", str(ours_path), "--depth", "50", "--no-default-suppressions",
               *(["--show-leak-kinds", kinds] if shown else [])]
    run = run_cli([*options, str(binary)], tmp_path)
    assert ours_path.exists(), run.stderr
    ours = ET.parse(ours_path).getroot()
    assert outline(ours, binary) == outline(theirs, binary)
    # valgrind's vargv is its own command line: ours, its options as given (run_cli adds --json first)
    assert [a.text for a in ours.findall("args/vargv/arg")] == ["--json", str(tmp_path / "report.json"), *options]


@pytest.mark.valgrind
@needs_valgrind
def test_percent_p_gives_each_forked_process_its_own_document_as_valgrind(tmp_path: Path):
    program = compile_target(TARGETS / "processes" / "fork_family.c", tmp_path)
    (tmp_path / "theirs").mkdir()
    (tmp_path / "ours").mkdir()
    valgrind.run(["--trace-children=yes", "--xml=yes", f"--xml-file={tmp_path}/theirs/%p.xml", *CHECKS,
                  str(program)])
    run = run_cli(["--xml-file", f"{tmp_path}/ours/%p.xml", "--depth", "50", "--no-default-suppressions",
                   str(program)], tmp_path)
    assert by_generation(tmp_path / "ours", program) == by_generation(tmp_path / "theirs", program), run.stderr


def by_generation(directory: Path, program: Path) -> list[dict]:
    """Each process's document (named by its pid, holding it) by how far it is from the first process."""
    roots = {int(path.stem): ET.parse(path).getroot() for path in directory.glob("*.xml")}
    assert all(int(root.findtext("pid") or 0) == pid for pid, root in roots.items())
    parent = {pid: int(root.findtext("ppid") or 0) for pid, root in roots.items()}

    def generation(pid: int) -> int:
        return 1 + generation(parent[pid]) if parent[pid] in roots else 0

    return [outline(roots[pid], program) for pid in sorted(roots, key=generation)]
