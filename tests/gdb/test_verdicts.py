"""Verdicts valgrind gives that need more than one c_target's markers: forked children, heap error context."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

import valgrind
from conftest import TARGETS, cached_cli, run_cli

PROCESSES = TARGETS / "processes"


def compile_c(source: Path, out: Path) -> Path:
    program = out / source.stem
    subprocess.run(["gcc", "-g", "-O0", "-fno-omit-frame-pointer", "-o", str(program), str(source)], check=True)
    return program


def summary(process: dict) -> dict[str, tuple[int, int]]:
    return {k: (v["bytes"], v["blocks"]) for k, v in process["leak_summary"].items()}


def valgrind_summaries_per_process(argv: list[str]) -> list[dict[str, tuple[int, int]]]:
    proc = valgrind.run(["--trace-children=yes", *valgrind.LEAK_FLAGS, *argv])
    found: dict[str, dict[str, tuple[int, int]]] = {}
    for key, label in (("definite", "definitely lost"), ("indirect", "indirectly lost"),
                       ("possible", "possibly lost"), ("reachable", "still reachable"), ("suppressed", "suppressed")):
        for pid, b, n in re.findall(rf"==(\d+)== +{label}: ([\d,]+) bytes in ([\d,]+) blocks", proc.stderr):
            found.setdefault(pid, {})[key] = (int(b.replace(",", "")), int(n.replace(",", "")))
    for pid in re.findall(r"==(\d+)== All heap blocks were freed", proc.stderr):
        found[pid] = {key: (0, 0) for key in valgrind.SUMMARY_KEYS}
    return sorted(found.values(), key=sorted)


def test_forked_childs_caller_saved_registers_at_exit_are_no_roots(tmp_path: Path, engine: str):
    program = compile_c(PROCESSES / "fork_exit_registers.c", tmp_path)
    run = run_cli(["--engine", engine, "--no-default-suppressions", str(program)], tmp_path)
    child = next(p for p in run.report["processes"] if p["in_use_at_exit"]["bytes"] == 222)
    assert summary(child)["definite"] == (222, 1), run.stderr
    assert summary(child)["reachable"] == (0, 0)


@pytest.mark.valgrind
@pytest.mark.skipif(not valgrind.available(), reason="valgrind not installed: comparison skipped")
def test_forked_child_at_exit_leak_summary_equals_valgrinds(tmp_path: Path, engine: str):
    program = compile_c(PROCESSES / "fork_exit_registers.c", tmp_path)
    ours = run_cli(["--engine", engine, "--no-default-suppressions", str(program)], tmp_path).report["processes"]
    assert sorted((summary(p) for p in ours), key=sorted) == valgrind_summaries_per_process([str(program)])


# --- heap error context -----------------------------------------------------------------------------------------------
VALGRIND_ADDRESS = re.compile(
    r"Address 0x[0-9a-f]+ is (?:(?P<offset>\d+) bytes inside a block of size (?P<size>[\d,]+) (?P<how>alloc'd|free'd)"
    r"|on thread (?P<thread>\d+)'s stack"
    r"|(?P<goffset>\d+) bytes inside data symbol \"(?P<symbol>[^\"]+)\")")


def valgrind_addresses(argv: list[str]) -> list[tuple]:
    proc = valgrind.run(["--run-libc-freeres=no", "--run-cxx-freeres=no", *argv])
    found = []
    for m in VALGRIND_ADDRESS.finditer(proc.stderr):
        if m["how"]:
            found.append(("block" if m["how"] == "alloc'd" else "freed", int(m["offset"]),
                          int(m["size"].replace(",", ""))))
        elif m["thread"]:
            found.append(("stack", int(m["thread"])))
        else:
            found.append(("global", m["symbol"], int(m["goffset"])))
    return found


def our_addresses(process: dict) -> list[tuple]:
    found = []
    for error in process["errors"]:
        info = error["address_info"]
        if info["place"] in ("block", "freed"):
            found.append((info["place"], info["offset"], info["block_size"]))
        elif info["place"] == "stack":
            found.append(("stack", info["thread"]))
        else:
            found.append((info["place"], info.get("symbol"), info.get("offset")))
    return found


def test_invalid_frees_say_what_the_pointer_is(built_targets: Path, engine: str):
    run = cached_cli(["--engine", engine, str(built_targets / "invalid_free_where")])
    process = run.process()
    assert our_addresses(process) == [("block", 8, 32), ("freed", 16, 48), ("stack", 1), ("global", "table", 16)]
    block, freed = process["errors"][0]["address_info"], process["errors"][1]["address_info"]
    assert block["alloc_stack"][0]["line"] == 21 and freed["free_stack"][0]["line"] == 29
    assert "is 8 bytes inside a block of size 32 allocated at:" in run.stderr
    assert "in a global: table+16 (section .bss" in run.stderr


@pytest.mark.valgrind
@pytest.mark.skipif(not valgrind.available(), reason="valgrind not installed: comparison skipped")
def test_invalid_free_addresses_are_described_as_valgrind_describes_them(built_targets: Path, engine: str):
    argv = [str(built_targets / "invalid_free_where")]
    assert our_addresses(cached_cli(["--engine", engine, *argv]).process()) == valgrind_addresses(argv)


@pytest.mark.valgrind
def test_invalid_realloc_is_named_realloc(tmp_path: Path, engine: str):
    source = tmp_path / "bad_realloc.c"
    source.write_text('#include <stdlib.h>\nint main(void) {\n  char *p = malloc(32);\n  char *q = p + 4;\n'
                      '  __asm__ volatile("" : "+r"(q));\n  q = realloc(q, 64);\n'
                      '  __asm__ volatile("" : : "r"(q));\n  free(p);\n  return 0;\n}\n')
    program = compile_c(source, tmp_path)
    run = run_cli(["--engine", engine, str(program)], tmp_path)
    [error] = run.process()["errors"]
    assert (error["type"], error["allocator"], error["stack"][0]["line"]) == ("invalid_free", "realloc", 6)
    assert error["address_info"]["place"] == "block" and error["address_info"]["offset"] == 4
    assert f"Invalid realloc of {error['address']}" in run.stderr
    if valgrind.available():  # the skipped realloc still counts the allocation it asked for, as valgrind's does
        assert valgrind.our_figures(run.process()) == valgrind.heap_figures([str(program)])


# --- loss records: indirect bytes ---------------------------------------------------------------------------------
@pytest.mark.valgrind
@pytest.mark.skipif(not valgrind.available(), reason="valgrind not installed: comparison skipped")
@pytest.mark.parametrize("name", ["lost_list", "cpp_string", "cpp_object"])
def test_definite_records_carry_the_indirect_bytes_valgrind_gives_them(built_targets: Path, tmp_path: Path,
                                                                        name: str, engine: str):
    argv = [str(built_targets / name)]
    theirs = sorted((r["line"], r["bytes"], r["blocks"], r["indirect_bytes"])
                    for r in valgrind.leak_records(argv, TARGETS) if r["kind"] == "definite")
    process = run_cli(["--engine", engine, "--no-default-suppressions", *argv], tmp_path).process()
    ours = sorted((next(f["line"] for f in leak["stack"] if (f["file"] or "").startswith(str(TARGETS))),
                   leak["bytes"], leak["blocks"], leak["indirect_bytes"])
                  for leak in process["leaks"] if leak["kind"] == "definite")
    assert any(indirect for *_, indirect in theirs)
    assert ours == theirs
