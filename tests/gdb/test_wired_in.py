"""gdb-memleak where a build system runs the tests under valgrind: tests/data/wired_project (a leak, a double free, a
mismatched delete, a program without error) built by CMake for `ctest -T memcheck` with MEMORYCHECK_COMMAND set to
valgrind and then to gdb-memleak (CTest passes its valgrind options and reads the `--log-file` text), and by meson for
`meson test --wrapper=...`. The verdicts must be the same with either checker, and those the programs declare."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

import expectations
from conftest import console_script, exclusive

PROJECT = Path(__file__).resolve().parent.parent / "data" / "wired_project"
SOURCES = sorted(p for p in PROJECT.iterdir() if p.suffix in (".c", ".cpp"))
# CTest's defect names for what its valgrind log parser matches (cmCTestMemCheckHandler.cxx: "definitely lost" is
# MLK, "possibly lost" and "still reachable" MPK, "Invalid free()" FIM; indirect leaks are not counted)
CTEST_LEAK = {"definite": "Memory Leak", "possible": "Potential Memory Leak", "reachable": "Potential Memory Leak"}


def declared_defects(source: Path) -> dict[str, int]:
    """The defects CTest must count for `source`'s program, from the findings the source declares."""
    declared = expectations.parse(source)
    defects = Counter(CTEST_LEAK[kind] for _, _, kind in declared.leaks_with_kinds().values() if kind in CTEST_LEAK)
    defects["FIM"] += len(declared.double_frees) + len(declared.invalid_frees)
    defects["Mismatched deallocation"] += len(declared.mismatched_frees)
    return {name: count for name, count in defects.items() if count}


def tools_env() -> dict[str, str]:
    """The environment with the venv's scripts first on PATH (meson looks for ninja there)."""
    return {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}


def run(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`command` run to its end (a failing test is not an error here: the callers read the verdicts)."""
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300, env=tools_env())


def built(command: list[str], cwd: Path | None = None) -> None:
    proc = run(command, cwd)
    assert proc.returncode == 0, f"{command}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"


# --- CTest ----------------------------------------------------------------------------------------------------------

def ctest_memcheck(checker: str, build: Path) -> dict[str, dict[str, int]]:
    """Per test, the defects `ctest -T memcheck` counts with MEMORYCHECK_COMMAND=`checker` (type Valgrind), read from
    the DynamicAnalysis.xml it writes (a test without defects has no entry of its own there)."""
    built(["cmake", "-G", "Ninja", "-S", str(PROJECT), "-B", str(build), f"-DMEMORYCHECK_COMMAND={checker}",
           "-DMEMORYCHECK_TYPE=Valgrind"])
    built(["cmake", "--build", str(build), "-j2"])
    memcheck = run(["ctest", "-T", "memcheck", "-j2"], cwd=build)
    [analysis] = build.glob("Testing/*/DynamicAnalysis.xml")
    root = ET.parse(analysis).getroot()
    listed = root.iterfind(".//TestList/Test")
    defects: dict[str, dict[str, int]] = {Path(test.text or "").name: {} for test in listed}
    for test in root.iterfind(".//DynamicAnalysis/Test"):
        defects[test.findtext("Name", "")] = {d.get("type", ""): int(d.text or 0) for d in test.iter("Defect")}
    assert len(defects) == len(SOURCES), memcheck.stdout
    return defects


@pytest.mark.parametrize("checker", ["gdb-memleak", pytest.param("valgrind", marks=pytest.mark.valgrind)])
def test_ctest_memcheck_counts_per_test_the_defects_the_programs_declare(checker: str, tmp_path: Path):
    """With valgrind and with gdb-memleak, so the two counts agree (one configuration each: the two run at once)."""
    if shutil.which("ctest") is None:
        pytest.fail("cmake is not installed (scripts/dev installs it)")
    command = console_script("gdb-memleak") if checker == "gdb-memleak" else shutil.which("valgrind") or "valgrind"
    assert ctest_memcheck(command, tmp_path) == {source.stem: declared_defects(source) for source in SOURCES}


# --- meson ----------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def meson_build() -> Path:
    """The project built by meson once for the run (every worker shares it)."""
    with exclusive("meson-wired-project") as shared:
        build = shared / "meson-wired-project"
        if not (build / "build.ninja").exists():
            built([console_script("meson"), "setup", str(build), str(PROJECT)])
        built([console_script("meson"), "compile", "-C", str(build)])
        return build


def meson_verdicts(build: Path, wrapper: list[str]) -> dict[str, str]:
    """Per test, meson's result (OK, FAIL, ...) with `meson test --wrapper=WRAPPER`."""
    proc = run([console_script("meson"), "test", "-C", str(build), "--no-rebuild", "--logbase", "wrapped",
                f"--wrapper={shlex.join(wrapper)}"])
    log = build / "meson-logs" / f"wrapped-{Path(wrapper[0]).name}.json"  # meson adds the wrapper's name
    assert log.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    results = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return {entry["name"].split(":")[-1]: entry["result"] for entry in results}


@pytest.mark.parametrize("checker", ["gdb-memleak", pytest.param("valgrind", marks=pytest.mark.valgrind)])
def test_meson_test_wrapper_fails_the_tests_with_findings(checker: str, meson_build: Path):
    wrapper = ([console_script("gdb-memleak"), "--error-exitcode=1"] if checker == "gdb-memleak"
               else ["valgrind", "--error-exitcode=1", "--leak-check=full"])
    verdicts = meson_verdicts(meson_build, wrapper)
    assert verdicts == {source.stem: "FAIL" if expectations.parse(source).has_findings else "OK"
                        for source in SOURCES}
