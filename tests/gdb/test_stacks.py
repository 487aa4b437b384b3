"""Allocation stacks as valgrind shows them: inlined calls expanded into their source frames, and every stack ending
at the real outermost frame (no argc, argv pointer or 0 unwound past the loader's entry).

valgrind is the oracle: each of its loss records is matched with our leak group of the same kind, bytes and blocks,
and the two stacks are compared frame by frame (object, source file and line, function name, and which frames share
one return address, i.e. were inlined there). valgrind's first frame is its own replacement allocator
(vgpreload_memcheck), which our stacks, starting at the allocator's caller, do not have.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

import expectations
import valgrind
from conftest import TARGETS, cached_cli, run_cli, run_gdb

OPTIMISED = sorted([*TARGETS.glob("*_O2.c"), *TARGETS.glob("*_O2.cpp")])
GDB_CALL = "<function called from gdb>"
STACK_FRAME = re.compile(r"^   (?:at|by) 0x[0-9a-f]+: (?P<function>.+) \((?P<where>[^()]+)\)$")

# A library whose constructor leaks: allocated while the dynamic loader runs constructors, before main.
CTOR_LIBRARY = """\
#include <stdlib.h>
#include <string.h>
__attribute__((constructor)) static void setup(void)
{
    char *table = malloc(500);
    memset(table, 7, 500);
    __asm__ volatile("" : : "r"(table) : "memory");
}
int lib_answer(void) { return 42; }
"""
CTOR_PROGRAM = "int lib_answer(void);\nint main(void) { return lib_answer() - 42; }\n"


def report_of(argv: list[str], engine: str) -> dict:
    run = cached_cli(["--engine", engine, "--no-default-suppressions", *argv])
    assert run.report is not None, run.stderr
    return run.process()


def base_name(function: str) -> str:
    """The function's own name, without scope, template arguments, parameters or return type, as valgrind and GDB
    spell it differently: `std::vector<int, std::allocator<int> >::resize(unsigned long)` and `resize` -> `resize`;
    `leak_holder(int, char const*) [clone .constprop.0]` -> `leak_holder`; `basic_string<>` -> `basic_string`."""
    plain = function
    while (stripped := re.sub(r"<[^<>]*>", "", plain)) != plain:
        plain = stripped
    words = plain.split("(")[0].split("::")[-1].split()
    return words[-1] if words else ""


def same_pc_flags(pcs: list[str]) -> list[bool]:
    return [i > 0 and pc == pcs[i - 1] for i, pc in enumerate(pcs)]


def comparable(frames: list[tuple[str | None, str | None, str | None, int | None, str]]) -> list[tuple]:
    """(object, source file name, line, function base name when the frame has a line, shares the previous PC)."""
    flags = same_pc_flags([pc for *_, pc in frames])
    rows = []
    for (obj, function, path, line, _), same in zip(frames, flags):
        named = base_name(function or "") if path and line else None
        rows.append((os.path.realpath(obj) if obj else None, os.path.basename(path) if path else None, line, named,
                     same))
    return rows


def valgrind_stack(record: dict) -> list[tuple]:
    frames = [(f["object"], f["function"], f["path"], f["line"], f["ip"]) for f in record["stack"]
              if "vgpreload" not in (f["object"] or "")]
    return comparable(frames)


def our_stack(leak: dict) -> list[tuple]:
    return comparable([(f["object"], f["function"], f["file"], f["line"], f["pc"]) for f in leak["stack"]])


def build_ctor_program(directory: Path) -> Path:
    (directory / "ctor.c").write_text(CTOR_LIBRARY)
    (directory / "main.c").write_text(CTOR_PROGRAM)
    flags = ["-g", "-O0", "-fno-omit-frame-pointer"]
    subprocess.run(["gcc", *flags, "-fPIC", "-shared", "-o", str(directory / "libctor.so"), str(directory / "ctor.c")],
                   check=True)
    program = directory / "ctor_main"
    subprocess.run(["gcc", *flags, "-o", str(program), str(directory / "main.c"), f"-L{directory}", "-lctor",
                    "-Wl,-rpath,$ORIGIN"], check=True)
    return program


@pytest.fixture(scope="module")
def ctor_program(tmp_path_factory) -> Path:
    return build_ctor_program(tmp_path_factory.mktemp("ctor"))


def programs(built_targets: Path, ctor_program: Path) -> dict[str, list[str]]:
    found = {s.stem: [str(built_targets / s.stem), *expectations.parse(s).args] for s in OPTIMISED}
    found["cpp_string"] = [str(built_targets / "cpp_string")]  # libstdc++'s pool: allocated at load time
    found["library_constructor"] = [str(ctor_program)]
    return found


# -- inlined frames (issue 8 item 6) ----------------------------------------------------------------------------------

def test_the_optimised_targets_are_built_optimised_with_inlined_calls(built_targets: Path):
    assert OPTIMISED, "c_targets/*_O2.cpp are the optimised targets"
    for source in OPTIMISED:
        info = subprocess.run(["readelf", "--debug-dump=info", str(built_targets / source.stem)],
                              capture_output=True, text=True, check=True).stdout
        assert "DW_TAG_inlined_subroutine" in info and "-O2" in info, source.name


@pytest.mark.valgrind
@pytest.mark.skipif(not valgrind.available(), reason="valgrind not installed: comparison skipped")
@pytest.mark.parametrize("name", [s.stem for s in OPTIMISED] + ["cpp_string", "library_constructor"])
def test_every_stack_equals_valgrinds_frame_for_frame_inlined_calls_expanded(name: str, built_targets: Path,
                                                                             ctor_program: Path, engine: str):
    argv = programs(built_targets, ctor_program)[name]
    ours = {}
    for leak in report_of(argv, engine)["leaks"]:
        key = (leak["kind"], leak["bytes"], leak["blocks"])
        assert key not in ours, f"two groups {key}: the comparison needs distinct records"
        ours[key] = leak
    records = valgrind.leak_records(argv)
    assert sorted(ours) == sorted((r["kind"], r["bytes"], r["blocks"]) for r in records)
    for record in records:
        leak = ours[(record["kind"], record["bytes"], record["blocks"])]
        assert our_stack(leak) == valgrind_stack(record), (leak["stack"], record["stack"])


@pytest.mark.parametrize("source", OPTIMISED, ids=[s.stem for s in OPTIMISED])
def test_inlined_frames_share_the_pc_of_the_function_they_were_inlined_into(source: Path, built_targets: Path,
                                                                           engine: str):
    for leak in report_of([str(built_targets / source.stem)], engine)["leaks"]:
        stack = leak["stack"]
        for frame, after in zip(stack, stack[1:]):
            assert frame["inline"] == (frame["pc"] == after["pc"]), stack
        assert not stack[-1]["inline"], stack


@pytest.mark.parametrize("source", OPTIMISED, ids=[s.stem for s in OPTIMISED])
def test_leaks_through_inlined_library_calls_are_listed_at_the_users_lines(source: Path, built_targets: Path,
                                                                          engine: str):
    """`leaks` (first user frame) and `leaks --by-line` name the user's line, never stl_vector.h/basic_string.h."""
    expected = expectations.parse(source)
    run = run_gdb([f"set memleak engine {engine}", "memleak start", "run", "echo @@table@@\\n", "leaks --all",
                   "echo @@byline@@\\n", "leaks --by-line --all"], built_targets / source.stem, args=expected.args)
    assert "Traceback" not in run.stdout + run.stderr, run.stderr
    table, by_line = run.stdout.split("@@table@@", 1)[1].split("@@byline@@", 1)
    rows: dict[int, list[int]] = {}  # the table has a row per allocation stack: summed per line
    # bytes: "80" or, for a loss record with blocks lost through it, "613 (80 direct, 533 indirect)": the direct part
    for row in re.finditer(rf"\s([\d,]+)(?: \(([\d,]+) direct, [\d,]+ indirect\))?\s+(\d+)\s+\w+\s+#\d+\s+.*"
                           rf"\({re.escape(str(source))}:(\d+)\)$", table, re.MULTILINE):
        entry = rows.setdefault(int(row[4]), [0, 0])
        entry[0] += int((row[2] or row[1]).replace(",", ""))
        entry[1] += int(row[3])
    assert {line: tuple(v) for line, v in rows.items()} == expected.leaks, table
    for line, (nbytes, nblocks) in expected.leaks.items():
        blocks = "block" if nblocks == 1 else "blocks"
        direct = rf"(?:{nbytes}|[\d,]+ \({nbytes} direct, [\d,]+ indirect\))"  # the table's two forms
        assert re.search(rf"^{re.escape(str(source))}:{line}: {direct} bytes in {nblocks} {blocks} ", by_line,
                         re.MULTILINE), by_line
    assert not re.search(r"/usr/include/\S+:\d+", table + by_line), table + by_line


def test_a_suppression_naming_an_inlined_user_function_hides_the_leaks_made_through_it(built_targets: Path,
                                                                                        tmp_path: Path, engine: str):
    source = TARGETS / "cpp_inlined_O2.cpp"
    expected = expectations.parse(source)
    inlined = [line for line, text in enumerate(source.read_text().splitlines(), start=1)
               if line in expected.leaks and text.startswith("    h->")]  # the lines of fill(), inlined at -O2
    assert len(inlined) == 3
    supp = tmp_path / "fill.supp"
    supp.write_text("leak:^fill$\n")
    run = run_cli(["--engine", engine, "--no-default-suppressions", "--suppressions", str(supp),
                   str(built_targets / source.stem)], tmp_path)
    summary = run.process()["leak_summary"]
    assert summary["suppressed"] == {"bytes": sum(expected.leaks[n][0] for n in inlined),
                                     "blocks": sum(expected.leaks[n][1] for n in inlined)}, run.stderr
    assert summary["definite"] == {"bytes": 80, "blocks": 1}


# -- junk frames (issue 8 item 7) -------------------------------------------------------------------------------------

def junk(frame: dict) -> bool:
    return (frame["object"] in ("??", "[stack]") or frame["function"] == GDB_CALL
            or re.fullmatch(r"0x[0-9a-f]+", frame["function"]) is not None)


@pytest.mark.parametrize("name", ["cpp_string", "library_constructor"])
def test_load_time_stacks_end_at_the_loaders_entry_with_no_junk_frames(name: str, built_targets: Path,
                                                                      ctor_program: Path, engine: str):
    process = report_of(programs(built_targets, ctor_program)[name], engine)
    load_time = [leak for leak in process["leaks"] if any(f["function"] == "_dl_init" for f in leak["stack"])]
    assert load_time, process["leaks"]
    for leak in process["leaks"]:
        assert not [f for f in leak["stack"] if junk(f)], leak["stack"]
    for leak in load_time:
        assert leak["stack"][-1]["function"].startswith("_dl_start_user"), leak["stack"]


def test_text_stacks_and_sites_of_load_time_allocations_have_no_junk_frames(built_targets: Path, engine: str):
    run = run_gdb([f"set memleak engine {engine}", "set memleak default-suppressions off", "memleak start", "run",
                   "echo @@table@@\\n", "leaks --all", "echo @@stacks@@\\n", "leaks --all --stack"],
                  built_targets / "cpp_string")
    assert "Traceback" not in run.stdout + run.stderr, run.stderr
    table, stacks = run.stdout.split("@@table@@", 1)[1].split("@@stacks@@", 1)
    assert re.search(r"^still reachable\s+72,704\s+1\s+malloc\s+#\d+\s+libstdc\+\+\.so\.6\+0x[0-9a-f]+ \(\S+\)$",
                     table, re.MULTILINE), table
    frames = [STACK_FRAME.match(line) for line in stacks.splitlines() if line.startswith(("   at ", "   by "))]
    assert frames and all(frames), stacks
    for frame in frames:
        assert frame["where"] not in ("??", "[stack]") and frame["function"] != GDB_CALL, stacks
        assert not re.fullmatch(r"0x[0-9a-f]+", frame["function"]), stacks
    assert frames[-1]["function"].startswith("_dl_start_user"), stacks  # the pool is the last group listed
