"""Tools that read valgrind's XML read ours the same: two consumers from PyPI (the test extras install them), ValgrindCI
(`valgrind-ci`: error counts, and per source line the kinds, as CI jobs print them) and valgrind-codequality (GitLab's
Code Quality JSON: severity, description, file, line, fingerprint per finding), each fed valgrind's `--xml=yes`
document and gdb-memleak's `--xml-file` document of the same program, give the same output."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import valgrind
from conftest import ROOT, TARGETS, console_script, run_cli

# the oracle's settings (libc's and libstdc++'s own buffers left allocated at exit, as GDB sees them); valgrind's
# default --show-leak-kinds and ours agree (definite and possible), so neither document lists reachable blocks
ORACLE = ["--leak-check=full", "--run-libc-freeres=no", "--run-cxx-freeres=no", "--num-callers=50"]


def xml_documents(program: Path, tmp_path: Path) -> dict[str, Path]:
    """valgrind's and gdb-memleak's XML documents of one run each of `program`."""
    documents = {"valgrind": tmp_path / "valgrind.xml", "gdb-memleak": tmp_path / "gdb-memleak.xml"}
    vg = valgrind.run(["--xml=yes", f"--xml-file={documents['valgrind']}", *ORACLE, str(program)])
    assert documents["valgrind"].exists(), vg.stderr[-2000:]
    ours = run_cli(["--xml-file", str(documents["gdb-memleak"]), "--depth", "50", str(program)], tmp_path)
    assert documents["gdb-memleak"].exists(), ours.stderr[-2000:]
    return documents


def valgrind_ci(document: Path) -> str:
    """ValgrindCI's verdict: the number of errors, then per file of the corpus each line's error kinds and counts."""
    run = subprocess.run([console_script("valgrind-ci"), str(document), "--source-dir", str(TARGETS),
                          "--number-of-errors", "--summary"], capture_output=True, text=True, timeout=60, check=True)
    return run.stdout


def code_quality(document: Path, tmp_path: Path) -> list[dict]:
    """valgrind-codequality's GitLab Code Quality findings, paths relative to the checkout."""
    output = tmp_path / f"{document.stem}.json"
    subprocess.run([console_script("valgrind-codequality"), "-i", str(document), "-o", str(output), "-b", str(ROOT),
                    "-r", str(ROOT), "-l", "error"], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(output.read_text())


@pytest.mark.valgrind
@pytest.mark.parametrize(("target", "kinds"), [
    ("seed_demo", {"Leak_DefinitelyLost", "InvalidFree"}),          # a leak and a double free
    ("invalid_free_where", {"InvalidFree"}),                        # frees of pointers into blocks, stack, globals
    ("cpp_mismatch", {"Leak_DefinitelyLost", "MismatchedFree"}),    # new[]/delete, malloc/delete; direct+indirect
])
@pytest.mark.usefixtures("built_targets")
def test_valgrind_xml_consumers_give_the_same_verdict_on_our_xml(target: str, kinds: set[str], tmp_path: Path):
    documents = xml_documents(TARGETS / "bin" / target, tmp_path)

    summaries = {tool: valgrind_ci(path) for tool, path in documents.items()}
    assert summaries["gdb-memleak"] == summaries["valgrind"]
    assert f"{target}." in summaries["valgrind"] and all(kind in summaries["valgrind"] for kind in kinds)

    findings = {tool: code_quality(path, tmp_path) for tool, path in documents.items()}
    assert findings["gdb-memleak"] == findings["valgrind"]
    assert {f["description"].split(":")[0] for f in findings["valgrind"]} == kinds
    assert all(f["location"]["path"].startswith("c_targets/") for f in findings["valgrind"])
