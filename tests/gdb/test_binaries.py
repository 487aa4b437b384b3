"""Real programs in every process shape: each binary's leaks at the lines its source marks, figures equal valgrind's.

Each row of BINARIES is one process: a binary from c_targets/bin (see c_targets/Makefile for how it is built), the
source whose `// expect:` markers hold for it, and what the process shape changes:

  shapes_pie, shapes_nopie   shapes.c as PIE / non-PIE
  shapes_static              shapes.c linked -static: glibc's malloc is in the executable
  shapes_stripped            `strip` of bin/shapes: frames are object+offset, mapped to lines with addr2line on
                             bin/shapes (the same code, unstripped)
  shapes_lib                 the leaking functions in the user's own libshapes.so (rpath $ORIGIN)
  shapes_jemalloc            bin/shapes with LD_PRELOAD=libjemalloc.so.2: jemalloc's malloc/free are the real ones
  libc_helpers               blocks allocated inside libc (strdup, strndup, asprintf, getline) for the program
  cpp_string                 a std::string's buffer allocated inside libstdc++
  threads_stress             8 threads x 10,000 allocations (one CLI run takes about 75 s: ~215,000 stops)

Each binary runs once per engine (`--engine breakpoint|agent`) through the batch CLI (--no-default-suppressions,
so `leaks` lists every group of every kind and `leak_summary` is comparable with valgrind's); the tests share that
run, and valgrind runs once per binary for both engines. The recorder cannot be preloaded into shapes_static:
there `--engine agent` (and `auto`) falls back to the breakpoint engine and says so in one line, which
test_static_build_under_the_recorder_falls_back_to_the_breakpoint_engine_in_one_line checks; its other checks then
hold as for the breakpoint engine.

Blocks no source line declares are start-up allocations of libc/libstdc++ made before main (libstdc++'s
emergency exception pool; in a static executable glibc's own start-up blocks, which the dynamic loader makes with
its private malloc in a dynamic one). Only binaries marked `startup` may have them, and each must come from a stack
without `main`.

valgrind as the oracle:
  - a static executable: valgrind cannot replace malloc there (its replacement is preloaded, and nothing is
    preloaded into a static executable: it reports 0 allocs), so the static build is compared with valgrind's
    figures for the dynamic build of the same source (bin/shapes) plus the start-up blocks valgrind cannot see.
  - jemalloc: valgrind replaces jemalloc's malloc/free with its own (valgrind 3.19 already redirects
    libjemalloc.so.2's functions by default; --soname-synonyms=somalloc=*jemalloc* makes it explicit), so jemalloc
    never runs under valgrind and valgrind counts the calls the program and its libraries make, which are the
    calls gdb-memleak sees at jemalloc's entry points: the comparison is meaningful and exact.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest

import expectations
import valgrind
from conftest import TARGETS, CliRun, cached_cli, run_cli, run_gdb

JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
VALGRIND_JEMALLOC = "--soname-synonyms=somalloc=*jemalloc*"
KINDS = valgrind.SUMMARY_KEYS


@dataclass(frozen=True)
class Binary:
    id: str
    program: str                      # c_targets/bin/<program>
    source: str                       # c_targets/<source>: its markers hold for this binary
    preload: str | None = None        # LD_PRELOAD for the program (passed through the CLI and GDB)
    library: str | None = None        # the object the marked leaking lines run in (the user's shared library)
    twin: str | None = None           # stripped: the unstripped build of the same code (addr2line source)
    startup: bool = False             # may have start-up blocks of libc/libstdc++ (allocated before main)
    undeclared_startup: bool = False  # ... that the source's expect-summary does not count (the shape adds them)
    valgrind_program: str | None = None  # valgrind cannot track this binary: the build it is compared with

    @property
    def path(self) -> Path:
        return TARGETS / "bin" / self.program

    @property
    def source_path(self) -> Path:
        return TARGETS / self.source

    @property
    def env(self) -> dict[str, str]:
        return {"LD_PRELOAD": self.preload} if self.preload else {}

    def expected(self) -> expectations.Expected:
        return expectations.parse(self.source_path)


BINARIES = [
    Binary("shapes_pie", "shapes_pie", "shapes.c"),
    Binary("shapes_nopie", "shapes_nopie", "shapes.c"),
    Binary("shapes_static", "shapes_static", "shapes.c", startup=True, undeclared_startup=True,
           valgrind_program="shapes"),
    Binary("shapes_stripped", "shapes_stripped", "shapes.c", twin="shapes"),
    Binary("shapes_lib", "shapes_lib", "shapes.c", library="libshapes.so"),
    # Debian's libjemalloc.so.2 links libstdc++, whose emergency pool is then allocated (through jemalloc)
    Binary("shapes_jemalloc", "shapes", "shapes.c", preload=JEMALLOC, startup=True, undeclared_startup=True),
    Binary("libc_helpers", "libc_helpers", "libc_helpers.c"),
    Binary("cpp_string", "cpp_string", "cpp_string.cpp", startup=True),
    Binary("threads_stress", "threads_stress", "threads_stress.c"),
]
BY_ID = {b.id: b for b in BINARIES}
IDS = [b.id for b in BINARIES]


# --- running ------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def reports(built_targets: Path, tmp_path_factory):
    """(binary, engine) -> its one CLI run (--no-default-suppressions), made on first use and shared by the tests."""
    cache: dict[tuple[str, str], CliRun] = {}

    def get(binary: Binary, engine: str) -> CliRun:
        if (binary.id, engine) not in cache:
            if binary.preload and not os.path.exists(binary.preload):
                pytest.fail(f"{binary.preload} is missing (scripts/dev installs libjemalloc2)")
            cache[binary.id, engine] = cached_cli(["--engine", engine, "--no-default-suppressions", str(binary.path)],
                                                  binary.env)
        return cache[binary.id, engine]

    return get


# --- reading a report -----------------------------------------------------------------------------------------------

OBJECT_OFFSET = re.compile(r"^(?P<object>.+)\+0x(?P<offset>[0-9a-f]+)$")


@lru_cache(maxsize=None)
def addr2line(executable: str, address: int) -> tuple[str | None, int | None]:
    if shutil.which("addr2line") is None:
        pytest.fail("addr2line (binutils) is required to map a stripped binary's offsets to lines")
    out = subprocess.run(["addr2line", "-e", executable, f"0x{address:x}"], capture_output=True, text=True,
                         check=True).stdout.strip()
    file, _, line = out.partition(" ")[0].rpartition(":")
    return (file if file != "??" else None), (int(line) if line.isdigit() and line != "0" else None)


def user_line(frame: dict, binary: Binary) -> int | None:
    """The line of `binary.source` this frame is at, None when it is not in the user's source."""
    if binary.twin is not None:  # stripped: "<object>+0x<offset of the return address>" in the program
        match = OBJECT_OFFSET.match(frame["function"] or "")
        if not match or match["object"] != binary.program or os.path.basename(frame["object"]) != binary.program:
            return None
        file, line = addr2line(str(binary.path.with_name(binary.twin)), int(match["offset"], 16) - 1)
    else:
        file, line = frame["file"], frame["line"]
    if file is None or os.path.realpath(file) != os.path.realpath(binary.source_path):
        return None
    return line


def first_user_frame(stack: list[dict], binary: Binary) -> tuple[int, dict] | None:
    for index, frame in enumerate(stack):
        if user_line(frame, binary) is not None:
            return index, frame
    return None


def split_groups(process: dict, binary: Binary) -> tuple[dict[int, tuple[int, int, str]], list[dict]]:
    """(leaks by first user line: line -> (bytes, blocks, kinds), the groups with no frame in the user's source)."""
    by_line: dict[int, list] = defaultdict(lambda: [0, 0, set()])
    startup = []
    for leak in process["leaks"]:
        found = first_user_frame(leak["stack"], binary)
        if found is None:
            startup.append(leak)
            continue
        entry = by_line[user_line(found[1], binary)]
        entry[0] += leak["bytes"]
        entry[1] += leak["blocks"]
        entry[2].add(leak["kind"])
    return {line: (b, n, "/".join(sorted(k))) for line, (b, n, k) in by_line.items()}, startup


def summary_of(process: dict) -> dict[str, tuple[int, int]]:
    return {k: (v["bytes"], v["blocks"]) for k, v in process["leak_summary"].items()}


def groups_summary(groups: list[dict]) -> dict[str, tuple[int, int]]:
    total = {k: (0, 0) for k in KINDS}
    for g in groups:
        if g["kind"] not in total:  # "unfreed" (never scanned): not in any summary; the line checks report it
            continue
        b, n = total[g["kind"]]
        total[g["kind"]] = (b + g["bytes"], n + g["blocks"])
    return total


def add(a: dict[str, tuple[int, int]], b: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    return {k: (a[k][0] + b[k][0], a[k][1] + b[k][1]) for k in KINDS}


def function_names(stack: list[dict]) -> list[str]:
    return [(f["function"] or "").split("(")[0] for f in stack]


def plain_name(function: str) -> str:
    """`__GI___strdup` / `__strdup+0x1a` / `strdup` -> `strdup`."""
    name = function.split("+")[0].split("(")[0]
    return re.sub(r"^(__GI_)?_*", "", name)


# --- what each binary reports ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("binary", BINARIES, ids=IDS)
def test_leaks_are_reported_at_the_lines_the_source_marks(binary: Binary, reports, engine: str):
    run = reports(binary, engine)
    process = run.process()
    expected = binary.expected()
    assert process["exit"] == expected.exit, run.stderr
    assert process["errors"] == [], run.stderr
    found, startup = split_groups(process, binary)
    want = {line: (b, n, kind) for line, (b, n, kind) in expected.leaks_with_kinds().items()}
    want.update(expected.suppressed_leaks)  # this run has the default suppressions off
    assert found == want, run.stderr
    if not binary.startup:
        assert startup == [], run.stderr
    for group in startup:  # libc/libstdc++ start-up blocks only: nothing allocated once main runs
        assert "main" not in function_names(group["stack"]), group
    assert run.returncode == 1  # every binary leaks definitely lost blocks


def test_stripped_binary_reports_object_and_offset_with_no_file_or_line(reports, engine: str):
    binary = BY_ID["shapes_stripped"]
    process = reports(binary, engine).process()
    expected = binary.expected()
    assert len(process["leaks"]) == len(expected.leaks)
    for leak in process["leaks"]:
        index, frame = first_user_frame(leak["stack"], binary)
        assert index == 0  # the frame that called malloc/calloc is the program's own
        assert frame["file"] is None and frame["line"] is None, frame
        assert OBJECT_OFFSET.match(frame["function"])["object"] == "shapes_stripped", frame
        assert os.path.realpath(frame["object"]) == os.path.realpath(binary.path)


def test_library_leaks_are_reported_in_the_library_at_its_source_lines(reports, engine: str):
    binary = BY_ID["shapes_lib"]
    process = reports(binary, engine).process()
    assert process["leaks"]
    for leak in process["leaks"]:
        index, frame = first_user_frame(leak["stack"], binary)
        assert index == 0
        assert os.path.basename(frame["object"]) == "libshapes.so", frame
        assert os.path.realpath(os.path.dirname(frame["object"])) == os.path.realpath(binary.path.parent)
        assert frame["function"] in ("shape_new", "shape_points"), frame
        caller = leak["stack"][1]  # main, in the program, calling into the library
        assert (caller["function"], os.path.basename(caller["object"])) == ("main", "shapes_lib"), caller


def test_preloaded_jemalloc_is_what_gets_hooked(built_targets: Path, engine: str):
    """The breakpoint engine hooks jemalloc's functions; the recorder forwards to them (`memleak status` lists
    each allocator with the object serving it under both engines)."""
    if not os.path.exists(JEMALLOC):
        pytest.fail(f"{JEMALLOC} is missing (scripts/dev installs libjemalloc2)")
    result = run_gdb([f"set memleak engine {engine}", "memleak start", "break shape_scratch", "run", "memleak status",
                      "kill"], built_targets / "shapes", env={**os.environ, "LD_PRELOAD": JEMALLOC})
    for function in ("malloc", "calloc", "realloc", "free"):
        assert f" {function} ({JEMALLOC})" in result.stdout, result.stdout + result.stderr


# libc helpers: the leak is shown at the user's line, and the libc frame that called the allocator is kept.
LIBC_HELPERS = {
    "strdup": {"strdup"},
    "strndup": {"strndup"},
    "asprintf": {"asprintf", "vasprintf_internal", "vasprintf"},
    "getline": {"getline", "getdelim", "IO_getdelim"},
}


def test_libc_helper_leaks_keep_the_libc_frame_before_the_user_line(reports, engine: str):
    binary = BY_ID["libc_helpers"]
    process = reports(binary, engine).process()
    source = binary.source_path.read_text().splitlines()
    expected = binary.expected()
    seen = set()
    for leak in process["leaks"]:
        index, frame = first_user_frame(leak["stack"], binary)
        line = user_line(frame, binary)
        assert line in expected.leaks
        [helper] = [h for h in LIBC_HELPERS if re.search(rf"\b{h}\(", source[line - 1])]
        libc = [f for f in leak["stack"][:index] if os.path.basename(f["object"] or "").startswith("libc.so")]
        assert libc and plain_name(libc[0]["function"]) in LIBC_HELPERS[helper], leak["stack"]
        assert leak["stack"][0] is libc[0]  # the allocator's caller is libc's helper, not the program
        seen.add(helper)
    assert seen == set(LIBC_HELPERS)


def _string_buffer_leak(process: dict, binary: Binary) -> tuple[int, dict]:
    [line] = [n for n, kind in binary.expected().leak_kinds.items() if kind == "indirect"]
    [leak] = [leak for leak in process["leaks"] if (found := first_user_frame(leak["stack"], binary))
              and user_line(found[1], binary) == line]
    return line, leak


def test_cpp_string_buffer_is_allocated_inside_libstdcxx_and_shown_at_the_user_line(reports, engine: str):
    binary = BY_ID["cpp_string"]
    process = reports(binary, engine).process()
    line, leak = _string_buffer_leak(process, binary)
    index, frame = first_user_frame(leak["stack"], binary)
    assert index > 0 and frame["function"].startswith("make_record")
    inside = leak["stack"][:index]
    assert all(os.path.basename(f["object"]).startswith("libstdc++.so") for f in inside), inside
    assert leak["allocator"] == "new" and leak["kind"] == "indirect"


def test_cpp_string_libstdcxx_frames_are_named_as_valgrind_names_them(reports, engine: str):
    binary = BY_ID["cpp_string"]
    _, leak = _string_buffer_leak(reports(binary, engine).process(), binary)
    index, _ = first_user_frame(leak["stack"], binary)
    names = [f["function"] for f in leak["stack"][:index]]
    assert any("basic_string" in n and ("_M_mutate" in n or "_M_replace" in n) for n in names), names


def test_static_build_reports_only_the_programs_own_leaks_by_default(built_targets: Path, tmp_path: Path,
                                                                    engine: str):
    binary = BY_ID["shapes_static"]
    run = run_cli(["--engine", engine, str(binary.path)], tmp_path)
    found, startup = split_groups(run.process(), binary)
    assert [g for g in startup if g["kind"] in ("definite", "possible")] == [], run.stderr


STATIC_FALLBACK = ("gdb-memleak: shapes_static is statically linked (nothing can be preloaded): "
                   "using the breakpoint engine.")


@pytest.mark.parametrize("choice", ["agent", "auto", "breakpoint"])
def test_static_build_under_the_recorder_falls_back_to_the_breakpoint_engine_in_one_line(reports, choice: str):
    """Nothing can be preloaded into a static executable: asked for the recorder (or `auto`), the run says so in
    one line and the breakpoint engine tracks it, with the same report; asked for the breakpoint engine, no line."""
    binary = BY_ID["shapes_static"]
    run = reports(binary, choice)
    said = [line for line in run.stderr.splitlines() if "nothing can be preloaded" in line]
    assert said == ([] if choice == "breakpoint" else [STATIC_FALLBACK]), run.stderr
    ours, theirs = run.process(), reports(binary, "breakpoint").process()
    assert (summary_of(ours), valgrind.our_figures(ours)) == (summary_of(theirs), valgrind.our_figures(theirs))
    assert split_groups(ours, binary)[0] == split_groups(theirs, binary)[0]


def test_binaries_have_the_process_shape_their_name_says(built_targets: Path):
    def elf(path: Path) -> tuple[int, str]:
        data = path.read_bytes()
        headers = subprocess.run(["readelf", "-lSdW", str(path)], capture_output=True, text=True, check=True)
        return int.from_bytes(data[16:18], "little"), headers.stdout

    if shutil.which("readelf") is None:
        pytest.fail("readelf (binutils) is required")
    ET_EXEC, ET_DYN = 2, 3
    e_type, text = elf(built_targets / "shapes_pie")
    assert e_type == ET_DYN and "INTERP" in text
    e_type, text = elf(built_targets / "shapes_nopie")
    assert e_type == ET_EXEC and "INTERP" in text
    e_type, text = elf(built_targets / "shapes_static")
    assert e_type == ET_EXEC and "INTERP" not in text and "(NEEDED)" not in text
    _, text = elf(built_targets / "shapes_stripped")
    assert ".symtab" not in text and ".debug_info" not in text
    _, text = elf(built_targets / "shapes_lib")
    assert "Shared library: [libshapes.so]" in text and "[$ORIGIN]" in text
    _, text = elf(built_targets / "libshapes.so")
    assert ".debug_info" in text


# --- figures ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("binary", BINARIES, ids=IDS)
def test_leak_summary_equals_the_declared_one(binary: Binary, reports, engine: str):
    process = reports(binary, engine).process()
    _, startup = split_groups(process, binary)
    want = binary.expected().summary
    if binary.undeclared_startup:
        want = add(want, groups_summary(startup))
    assert summary_of(process) == want


def _valgrind_run(binary: Binary, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """argv for tests/valgrind.py (valgrind options may lead it), LD_PRELOAD set in the environment it inherits."""
    if binary.preload:
        monkeypatch.setenv("LD_PRELOAD", binary.preload)
        return [VALGRIND_JEMALLOC, str(binary.path)]
    return [str(binary.path.with_name(binary.valgrind_program or binary.program))]


# valgrind's figures, once per binary and worker: both engines' tests of a binary share its xdist group
@lru_cache(maxsize=None)
def valgrind_heap_figures(binary: Binary) -> valgrind.HeapFigures:
    with pytest.MonkeyPatch.context() as monkeypatch:
        return valgrind.heap_figures(_valgrind_run(binary, monkeypatch), timeout=600)


@lru_cache(maxsize=None)
def valgrind_leak_summary(binary: Binary) -> dict[str, tuple[int, int]]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        return valgrind.leak_summary(_valgrind_run(binary, monkeypatch), timeout=600)


def _blind_startup(binary: Binary, process: dict) -> dict[str, tuple[int, int]]:
    """Start-up blocks valgrind cannot see in this binary (static: glibc's own, with the malloc it links)."""
    _, startup = split_groups(process, binary)
    return groups_summary(startup if binary.valgrind_program else [])


@pytest.mark.valgrind
@pytest.mark.skipif(not valgrind.available(), reason="valgrind not installed: comparison skipped")
@pytest.mark.parametrize("binary", BINARIES, ids=IDS)
def test_heap_totals_and_in_use_equal_valgrinds(binary: Binary, reports, engine: str):
    process = reports(binary, engine).process()
    ours = valgrind.our_figures(process)
    theirs = valgrind_heap_figures(binary)
    blind = _blind_startup(binary, process)
    blocks, nbytes = sum(n for _, n in blind.values()), sum(b for b, _ in blind.values())
    # start-up blocks valgrind cannot see are allocated once and never freed
    assert ours == valgrind.HeapFigures(theirs.allocs + blocks, theirs.frees, theirs.bytes_allocated + nbytes,
                                        theirs.in_use_bytes + nbytes, theirs.in_use_blocks + blocks)


@pytest.mark.valgrind
@pytest.mark.skipif(not valgrind.available(), reason="valgrind not installed: comparison skipped")
@pytest.mark.parametrize("binary", BINARIES, ids=IDS)
def test_leak_summary_equals_valgrinds(binary: Binary, reports, engine: str):
    process = reports(binary, engine).process()
    theirs = valgrind_leak_summary(binary)
    assert summary_of(process) == add(theirs, _blind_startup(binary, process))


@pytest.mark.valgrind
@pytest.mark.skipif(not valgrind.available(), reason="valgrind not installed: comparison skipped")
def test_valgrind_cannot_track_the_static_build(built_targets: Path):
    """Why shapes_static is compared with the dynamic build: valgrind's malloc replacement is preloaded, which a
    static executable never loads. If this fails, valgrind learned to: compare shapes_static with it directly."""
    assert valgrind.heap_figures([str(built_targets / "shapes_static")]) == valgrind.HeapFigures(0, 0, 0, 0, 0)
