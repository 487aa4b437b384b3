"""The in-process recorder without GDB: its counters and live blocks equal valgrind's HEAP SUMMARY, its errors carry
the three stacks, its stacks are the breakpoint engine's (return addresses into the caller), and it leaves the
program's environment, files and process shapes (fork, exec) as they are."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from recorded import run_recorded

import expectations
import valgrind
from gdb_memleak.agent import build
from gdb_memleak.core import agent_format

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "c_targets" / "bin"

TARGETS = ["seed_demo", "leak_sites", "realloc_cases", "memalign_family", "cpp_object", "cpp_mismatch",
           "cpp_string", "threads_stress", "threads", "threads_kinds", "libc_helpers", "clean", "invalid_free"]


@pytest.fixture(scope="session")
def library(tmp_path_factory: pytest.TempPathFactory, built_targets: Path) -> Path:
    return build.ensure_built(root=tmp_path_factory.mktemp("cache"))


def _source(name: str) -> Path:
    return next(p for p in (ROOT / "c_targets").glob(f"{name}.c*"))


def _args(name: str) -> list[str]:
    return expectations.parse(_source(name)).args


def _figures(snapshot: agent_format.AgentSnapshot) -> valgrind.HeapFigures:
    c = snapshot.counters()
    return valgrind.HeapFigures(c.allocs, c.frees, c.bytes_allocated, c.live_bytes, c.live_blocks)


@pytest.mark.valgrind
@pytest.mark.parametrize("name", TARGETS)
def test_counters_and_live_blocks_equal_valgrind_heap_summary(library: Path, name: str) -> None:
    if not valgrind.available():
        pytest.skip("valgrind not installed")
    argv = [str(BIN / name), *_args(name)]
    records, _status, _out = run_recorded(library, argv, GDB_MEMLEAK_AGENT_ON_ERROR="skip")
    assert len(records) == 1
    snapshot = records[0].snapshot
    theirs = valgrind.heap_figures(argv)
    assert _figures(snapshot) == theirs
    blocks = list(snapshot.blocks())
    assert (sum(b.size for b in blocks), len(blocks)) == (theirs.in_use_bytes, theirs.in_use_blocks)
    assert [b.seq for b in blocks] == sorted(b.seq for b in blocks)


def _lines(executable: Path, pcs: list[int], maps: list) -> list[int | None]:
    """Source lines of return addresses in the executable (looked up at pc - 1, like the reports)."""
    base = min(m.start - m.offset for m in maps if m.path == str(executable))
    out = subprocess.run(["addr2line", "-e", str(executable), *[hex(pc - 1 - base) for pc in pcs]],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    return [int(m.group(1)) if (m := re.search(r":(\d+)", line)) else None for line in out]


def test_double_free_reports_all_three_stacks_at_their_lines(library: Path) -> None:
    exe = BIN / "seed_demo"
    records, status, _out = run_recorded(library, [str(exe)], GDB_MEMLEAK_AGENT_ON_ERROR="skip")
    assert status == 0  # skipped, as valgrind does: the program runs on
    rec = records[0]
    (error,) = rec.snapshot.errors()
    assert error.type == "double_free" and error.allocator == "free" and error.block_size is not None
    expected = expectations.parse(_source("seed_demo"))
    tag = next(iter(expected.double_frees))
    bad, freed, alloc = _lines(exe, [error.pcs[0], error.free_pcs[0], error.alloc_pcs[0]], rec.maps)
    assert bad == expected.double_frees[tag]
    assert freed == expected.marks[("free", tag)]
    assert alloc == expected.marks[("alloc", tag)]


def test_leak_stacks_start_at_the_allocating_line(library: Path) -> None:
    exe = BIN / "leak_sites"
    records, _status, _out = run_recorded(library, [str(exe)])
    rec = records[0]
    blocks = [b for b in rec.snapshot.blocks()
              if any(m.start <= b.pcs[0] < m.end and m.path == str(exe) for m in rec.maps)]
    lines = _lines(exe, [b.pcs[0] for b in blocks], rec.maps)
    declared = expectations.parse(_source("leak_sites")).leaks
    found: dict[int, list[int]] = {}
    for block, line in zip(blocks, lines):
        assert line is not None
        found.setdefault(line, [0, 0])
        found[line][0] += block.size
        found[line][1] += 1
    assert {line: tuple(v) for line, v in found.items()} == declared


def test_mismatched_release_reports_the_allocating_operator(library: Path) -> None:
    records, _status, _out = run_recorded(library, [str(BIN / "cpp_mismatch")])
    errors = records[0].snapshot.errors()
    assert errors and all(e.type == "mismatched_free" for e in errors)
    assert all(e.alloc_allocator and e.alloc_pcs and e.block_size is not None for e in errors)
    assert len(errors) == len(expectations.parse(_source("cpp_mismatch")).mismatched_frees)


def test_each_distinct_stack_is_stored_once(library: Path) -> None:
    records, _status, _out = run_recorded(library, [str(BIN / "threads_stress")])
    snapshot = records[0].snapshot
    stacks = [snapshot.stack(i) for i in snapshot.stack_ids()]
    assert snapshot.counters().allocs > 10_000
    assert len(stacks) == len(set(stacks)) < 200


def test_depth_setting_bounds_the_stacks(library: Path) -> None:
    records, _status, _out = run_recorded(library, [str(BIN / "leak_sites")], GDB_MEMLEAK_AGENT_DEPTH="2")
    snapshot = records[0].snapshot
    assert snapshot.header.depth == 2
    assert {len(b.pcs) for b in snapshot.blocks()} == {2}


def test_program_sees_its_own_environment(library: Path) -> None:
    env = dict(os.environ, USER_PRELOAD_MARK="1")
    plain = subprocess.run(["/usr/bin/env"], capture_output=True, env=env, check=True).stdout
    records, status, out = run_recorded(library, ["/usr/bin/env"], stdout=subprocess.PIPE, USER_PRELOAD_MARK="1",
                                        GDB_MEMLEAK_AGENT_DEPTH="8")
    assert status == 0 and records
    assert sorted(out.splitlines()) == sorted(line for line in plain.splitlines())


def test_user_preload_stays_visible_and_exec_is_recorded_again(library: Path) -> None:
    """sh execs env (no fork): the exec'd program carries the recorder again, yet sees only the user's preload."""
    user_lib = "/lib/x86_64-linux-gnu/libm.so.6"
    records, status, out = run_recorded(library, ["/bin/sh", "-c", "exec /usr/bin/env"], stdout=subprocess.PIPE,
                                        LD_PRELOAD=f"{library}:{user_lib}")
    assert status == 0
    visible = [line for line in out.decode().splitlines() if line.startswith(("LD_PRELOAD=", "GDB_MEMLEAK"))]
    assert visible == [f"LD_PRELOAD={user_lib}"]
    assert len(records) == 1  # one process image at exit: env, which replaced sh and was recorded from its start
    assert any(m.path.endswith("/env") for m in records[0].maps)


@pytest.mark.valgrind
@pytest.mark.parametrize("name", ["fork_family", "vfork_exec"])
def test_every_process_of_a_family_equals_valgrind(library: Path, tmp_path: Path, name: str) -> None:
    """fork: each child has its own copy of the table; vfork + exec: the exec'd image is recorded from its start."""
    if not valgrind.available():
        pytest.skip("valgrind not installed")
    exe = str(tmp_path / name)
    subprocess.run(["gcc", "-g", "-O0", "-fno-omit-frame-pointer", "-o", exe,
                    str(ROOT / "c_targets" / "processes" / f"{name}.c")], check=True)
    records, status, _out = run_recorded(library, [exe])
    assert status == 0
    ours = sorted((_figures(r.snapshot) for r in records), key=lambda f: f.in_use_bytes)
    proc = valgrind.run(["--trace-children=yes", "--run-libc-freeres=no", "--run-cxx-freeres=no", exe], timeout=120)
    theirs = []
    for pid in sorted(set(re.findall(r"^==(\d+)== HEAP SUMMARY", proc.stderr, re.M))):
        text = "\n".join(line for line in proc.stderr.splitlines() if line.startswith(f"=={pid}=="))
        used, total = valgrind.IN_USE.search(text), valgrind.TOTAL.search(text)
        assert used and total
        n = lambda s: int(s.replace(",", ""))  # noqa: E731
        theirs.append(valgrind.HeapFigures(n(total.group(1)), n(total.group(2)), n(total.group(3)),
                                           n(used.group(1)), n(used.group(2))))
    assert ours == sorted(theirs, key=lambda f: f.in_use_bytes)


def test_build_failure_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    with pytest.raises(build.BuildError) as info:
        build.ensure_built(root=tmp_path)
    message = str(info.value)
    assert "\n" not in message and message.startswith("gdb-memleak: cannot build the recorder")


def test_library_is_cached_by_source_hash(tmp_path: Path, library: Path) -> None:
    first = build.ensure_built(root=tmp_path)
    assert first.parent.parent == tmp_path and first.name == "librecorder.so"
    assert build.ensure_built(root=tmp_path) == first
    changed = tmp_path / "recorder.c"
    changed.write_text(build.SOURCE.read_text() + "\n/* changed */\n")
    assert build.library_path(changed, tmp_path) != first
