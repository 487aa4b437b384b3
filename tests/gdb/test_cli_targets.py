"""The batch CLI on every C target: findings as the target declares them, heap figures as valgrind counts them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

import expectations
import valgrind
from conftest import TARGETS, cached_cli, run_cli

SOURCES = sorted([*TARGETS.glob("*.c"), *TARGETS.glob("*.cpp")])
ERROR_KINDS = {"definite", "possible"}  # valgrind's default --errors-for-leak-kinds


def first_user_frame(stack: list[dict]) -> dict:
    for frame in stack:
        if frame["file"] and frame["file"].startswith(str(TARGETS)):
            return frame
    return stack[0]


def leaks_by_line(process: dict) -> dict[tuple[str, int], tuple[int, int, str]]:
    found: dict[tuple[str, int], list] = defaultdict(lambda: [0, 0, set()])
    for leak in process["leaks"]:
        frame = first_user_frame(leak["stack"])
        key = (os.path.basename(frame["file"] or frame["object"]), frame["line"])
        found[key][0] += leak["bytes"]
        found[key][1] += leak["blocks"]
        found[key][2].add(leak["kind"])
    return {k: (v[0], v[1], "/".join(sorted(v[2]))) for k, v in found.items()}


def exit_status(ending: dict) -> int:
    return ending["code"] if "code" in ending else 128 + int(getattr(signal, ending["signal"]))


@pytest.mark.parametrize("source", SOURCES, ids=[s.stem for s in SOURCES])
def test_target_findings_match_its_declared_expectations(source: Path, built_targets: Path, tmp_path: Path,
                                                          engine: str):
    expected = expectations.parse(source)
    run = cached_cli(["--engine", engine, str(built_targets / expected.name), *expected.args])
    process = run.process()
    ending = expected.cli_exit or expected.exit
    assert process["exit"] == ending, run.stderr
    found = leaks_by_line(process)
    want = {(source.name, line): (b, n, kind or found.get((source.name, line), (0, 0, "?"))[2])
            for line, (b, n, kind) in expected.leaks_with_kinds().items()}
    assert found == want, run.stderr
    errors = [(e["type"], first_user_frame(e["stack"])["line"]) for e in process["errors"]]
    want_errors = [("double_free", line) for line in expected.double_frees.values()]
    want_errors += [("invalid_free", line) for line in expected.invalid_frees]
    want_errors += [("mismatched_free", line) for line in expected.mismatched_frees]
    assert sorted(errors) == sorted(want_errors), run.stderr
    for error in process["errors"]:
        if error["type"] == "double_free":
            bad_line = first_user_frame(error["stack"])["line"]
            tag = next(t for t, line in expected.double_frees.items() if line == bad_line)
            assert first_user_frame(error["alloc_stack"])["line"] == expected.marks[("alloc", tag)]
            assert first_user_frame(error["free_stack"])["line"] == expected.marks[("free", tag)]
    counted = errors or any(k in ERROR_KINDS for _, _, kind in found.values() for k in kind.split("/"))
    # killed by a signal: 128+N whatever was found (valgrind too dies of the signal); else 1 when something counts
    assert run.returncode == (exit_status(ending) if "signal" in ending or not counted else 1), run.stderr
    if expected.clean:
        assert not found and not errors


@pytest.mark.valgrind
@pytest.mark.skipif(not valgrind.available(), reason="valgrind not installed: comparison skipped")
@pytest.mark.parametrize("source", SOURCES, ids=[s.stem for s in SOURCES])
def test_heap_totals_and_in_use_equal_valgrinds(source: Path, built_targets: Path, tmp_path: Path, engine: str):
    expected = expectations.parse(source)
    argv = [str(built_targets / expected.name), *expected.args]
    run = cached_cli(["--engine", engine, "--no-default-suppressions", *argv])  # totals: any flags
    ours = valgrind.our_figures(run.process())
    assert ours == valgrind.heap_figures(argv)


WITH_SUMMARY = [s for s in SOURCES if expectations.parse(s).summary is not None]


@pytest.mark.parametrize("source", WITH_SUMMARY, ids=[s.stem for s in WITH_SUMMARY])
def test_leak_summary_equals_the_declared_one(source: Path, built_targets: Path, tmp_path: Path, engine: str):
    """Leak kinds by reachability, default suppressions off (valgrind has none for leaks)."""
    expected = expectations.parse(source)
    run = cached_cli(["--engine", engine, "--no-default-suppressions", str(built_targets / expected.name),
                      *expected.args])
    summary = {k: (v["bytes"], v["blocks"]) for k, v in run.process()["leak_summary"].items()}
    assert summary == expected.summary, run.stderr


@pytest.mark.valgrind
@pytest.mark.skipif(not valgrind.available(), reason="valgrind not installed: comparison skipped")
@pytest.mark.parametrize("source", SOURCES, ids=[s.stem for s in SOURCES])
def test_leak_summary_equals_valgrinds(source: Path, built_targets: Path, tmp_path: Path, engine: str):
    expected = expectations.parse(source)
    argv = [str(built_targets / expected.name), *expected.args]
    run = cached_cli(["--engine", engine, "--no-default-suppressions", *argv])
    summary = {k: (v["bytes"], v["blocks"]) for k, v in run.process()["leak_summary"].items()}
    assert summary == valgrind.leak_summary(argv), run.stderr


def test_seed_demo_reports_exactly_one_definite_leak_and_one_double_free_and_runs_to_completion(
        built_targets: Path, tmp_path: Path):
    """The CLI's on-error skip: the bad free is reported, not performed, so the program exits normally."""
    expected = expectations.parse(TARGETS / "seed_demo.c")
    run = run_cli([str(built_targets / "seed_demo")], tmp_path)
    process = run.process()
    assert process["exit"] == {"code": 0}
    assert [(g["kind"], g["bytes"], g["blocks"], g["stack"][0]["line"]) for g in process["leaks"]] == [
        ("definite", 30, 1, next(iter(expected.leaks)))]
    [error] = process["errors"]
    assert (error["type"], error["stack"][0]["line"], error["free_stack"][0]["line"],
            error["alloc_stack"][0]["line"]) == ("double_free", expected.double_frees["p4"],
                                                 expected.marks[("free", "p4")], expected.marks[("alloc", "p4")])
    assert run.returncode == 1
    assert run_cli(["--error-exitcode", "0", str(built_targets / "seed_demo")], tmp_path).returncode == 0


def test_errors_for_leak_kinds_decides_the_exit_status(built_targets: Path, tmp_path: Path):
    program = str(built_targets / "global_held")  # 40 bytes definitely lost, 100 bytes still reachable
    assert run_cli([program], tmp_path).returncode == 1
    assert run_cli(["--errors-for-leak-kinds", "reachable", program], tmp_path).returncode == 1
    assert run_cli(["--errors-for-leak-kinds", "possible,indirect", program], tmp_path).returncode == 0
    assert run_cli(["--errors-for-leak-kinds", "none", program], tmp_path).returncode == 0


def test_suppression_file_moves_matching_leaks_to_suppressed(built_targets: Path, tmp_path: Path):
    supp = tmp_path / "app.supp"
    supp.write_text("# the lost list of lost_list.c\nleak:new_head\n")
    run = run_cli(["--no-default-suppressions", "--suppressions", str(supp), str(built_targets / "lost_list")],
                  tmp_path)
    summary = run.process()["leak_summary"]
    assert summary["definite"] == {"bytes": 0, "blocks": 0}
    assert summary["suppressed"] == {"bytes": 16, "blocks": 1}
    assert summary["indirect"] == {"bytes": 144, "blocks": 9}   # valgrind also suppresses only matching records


def test_malformed_suppression_file_is_one_error_naming_file_and_line(built_targets: Path, tmp_path: Path):
    supp = tmp_path / "bad.supp"
    supp.write_text("leak:ok\nrace:nope\n")
    run = run_cli(["--suppressions", str(supp), str(built_targets / "clean")], tmp_path)
    assert run.returncode == 2
    [line] = run.stderr.splitlines()
    assert line.startswith("gdb-memleak: error: ") and f"{supp}:2" in line


def test_sarif_folded_and_mtrace_outputs_describe_the_same_leaks(built_targets: Path, tmp_path: Path):
    jsonschema = pytest.importorskip("jsonschema")
    sarif, folded, mtrace = tmp_path / "r.sarif", tmp_path / "r.folded", tmp_path / "r.mtrace"
    run = run_cli(["--sarif", str(sarif), "--folded", str(folded), "--mtrace", str(mtrace),
                   str(built_targets / "seed_demo")], tmp_path)
    document = json.loads(sarif.read_text())
    schema = json.loads((Path(__file__).resolve().parent.parent / "data" / "sarif-schema-2.1.0.json").read_text())
    jsonschema.Draft4Validator(schema).validate(document)
    results = document["runs"][0]["results"]
    lines = sorted(r["locations"][0]["physicalLocation"]["region"]["startLine"] for r in results)
    expected = expectations.parse(TARGETS / "seed_demo.c")
    assert lines == sorted([next(iter(expected.leaks)), expected.double_frees["p4"]])
    assert folded.read_text().strip().endswith("main 30")
    if shutil.which("mtrace") is None:
        pytest.fail("glibc's mtrace script is missing (scripts/dev installs libc-devtools)")
    out = subprocess.run(["mtrace", str(mtrace)], capture_output=True, text=True).stdout
    assert "Memory not freed:" in out and "0x1e" in out, out
    assert run.returncode == 1


@pytest.mark.parametrize("on_error", ["skip", "report"])
def test_double_delete_is_reported_once_not_again_for_the_free_inside_delete(tmp_path: Path, on_error: str):
    source = tmp_path / "double_delete.cpp"
    source.write_text("int main() { int *p = new int(1); delete p; delete p; return 0; }\n")
    program = tmp_path / "double_delete"
    subprocess.run(["g++", "-g", "-O0", "-o", str(program), str(source)], check=True)
    run = run_cli(["--on-error", on_error, str(program)], tmp_path)
    assert [e["type"] for e in run.process()["errors"]] == ["double_free"], run.stderr
    # `report` lets the second delete happen: glibc aborts, and a program killed by a signal exits 128+N
    assert run.returncode == (1 if on_error == "skip" else 128 + signal.SIGABRT)
