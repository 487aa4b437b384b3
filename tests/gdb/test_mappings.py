"""Mappings and shared memory left behind (the seed's mmap and shmget programs, POSIX shm_open): each target under
the batch CLI reports what its `// expect: mapping|sysv|posix` lines declare, in the process that made it.

Every System V segment and /dev/shm object a target leaves is removed afterwards, whatever the test's outcome.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

import expectations
from conftest import TARGETS, run_cli, run_gdb

MAPPING_TARGETS = TARGETS / "mappings"
SOURCES = sorted(MAPPING_TARGETS.glob("*.c"))


@pytest.fixture(scope="module")
def programs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mappings")
    for source in SOURCES:
        subprocess.run(["gcc", "-g", "-O0", "-fno-omit-frame-pointer", "-o", str(out / source.stem), str(source)],
                       check=True)
    return out


def sysv_segments() -> dict[int, dict[str, int]]:
    """/proc/sysvipc/shm: shmid -> key, size, creator pid."""
    rows = {}
    with open("/proc/sysvipc/shm") as f:
        for line in f.read().splitlines()[1:]:
            parts = line.split()
            rows[int(parts[1])] = {"key": int(parts[0]), "size": int(parts[3]), "cpid": int(parts[4])}
    return rows


class Leftovers:
    """What targets may leave in the system: removed at teardown (`ipcrm`, unlink) even when a test failed."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.pids: set[int] = set()

    def shm_name(self, stem: str) -> str:
        name = f"/gdb-memleak-test-{os.getpid()}-{stem}"
        self.names.append(name)
        return name

    def clean(self) -> None:
        for shmid, row in sysv_segments().items():
            if row["cpid"] in self.pids:
                subprocess.run(["ipcrm", "-m", str(shmid)], check=False, capture_output=True)
        for name in self.names:
            try:
                os.unlink("/dev/shm" + name)
            except FileNotFoundError:
                pass


@pytest.fixture
def leftovers():
    tracker = Leftovers()
    try:
        yield tracker
    finally:
        tracker.clean()


def roles(stdout: str) -> dict[int, str]:
    """pid -> "parent" | "child", as each target prints itself."""
    return {int(pid): role for role, pid in re.findall(r"^(parent|child) (\d+)$", stdout, re.MULTILINE)}


def user_line(stack: list[dict], source: str) -> int | None:
    return next((f["line"] for f in stack if f["file"] and os.path.basename(f["file"]) == source), None)


def left_behind(process: dict, source: str) -> dict[tuple[str, int], list]:
    """(type, line) -> [bytes, pieces, backings] of what the JSON report lists for one process."""
    found: dict[tuple[str, int], list] = defaultdict(lambda: [0, 0, set()])
    for region in process["mappings"]:
        entry = found[("mapping", user_line(region["stack"], source))]
        entry[0] += region["length"]
        entry[1] += 1
        entry[2].add(region["backing"])
    for shm in process["shm"]:
        entry = found[(shm["type"], user_line(shm["stack"], source))]
        entry[0] += shm["size"]
        entry[1] += 1
    return dict(found)


def run_target(programs: Path, source: Path, tmp_path: Path, leftovers: Leftovers, engine: str, *options: str):
    run = run_cli(["--engine", engine, *options, str(programs / source.stem), leftovers.shm_name(source.stem)],
                  tmp_path, timeout=120)
    leftovers.pids |= set(roles(run.stdout)) | {p["pid"] for p in (run.report or {}).get("processes", [])}
    return run


@pytest.mark.parametrize("source", SOURCES, ids=[s.stem for s in SOURCES])
def test_target_leaves_behind_what_it_declares_in_the_process_that_made_it(programs: Path, source: Path,
                                                                         tmp_path: Path, leftovers: Leftovers,
                                                                         engine: str):
    expected = expectations.parse(source)
    run = run_target(programs, source, tmp_path, leftovers, engine)
    assert run.report is not None, run.stderr
    who = roles(run.stdout)
    processes = run.report["processes"]
    assert sorted(p["pid"] for p in processes) == sorted(who), run.stdout
    assert all(p["exit"] == {"code": 0} for p in processes), run.stderr
    for process in processes:
        role = who[process["pid"]]
        want = {(e.type, e.line): [e.bytes, e.regions] for e in expected.left_behind if e.process == role}
        found = left_behind(process, source.name)
        assert {k: v[:2] for k, v in found.items()} == want, f"{role}: {run.stderr}"
        for e in expected.left_behind:
            if e.process == role and e.backing:
                assert found[(e.type, e.line)][2] == {e.backing}
    if expected.clean:
        assert all(p["mappings"] == [] and p["shm"] == [] for p in processes)
        assert "MAPPINGS" not in run.stderr and "SHARED MEMORY" not in run.stderr
    outlives = any(e.type in ("sysv", "posix") for e in expected.left_behind)
    assert run.returncode == (1 if outlives else 0), run.stderr  # default: only what outlives the program counts


def test_shmget_segment_is_reported_once_by_its_creator_and_is_still_in_the_system(programs: Path, tmp_path: Path,
                                                                                   leftovers: Leftovers,
                                                                                   engine: str):
    source = MAPPING_TARGETS / "shm_sysv.c"
    run = run_target(programs, source, tmp_path, leftovers, engine)
    shmid = int(re.search(r"^shmid (\d+)$", run.stdout, re.MULTILINE).group(1))
    who = roles(run.stdout)
    by_role = {who[p["pid"]]: p for p in run.report["processes"]}
    [segment] = by_role["parent"]["shm"]
    assert by_role["child"]["shm"] == []              # the child only inherited the attachment
    assert (segment["type"], segment["shmid"], segment["key"], segment["size"]) == ("sysv", shmid, "0x00000000", 1024)
    assert [f["function"] for f in segment["stack"][:2]] == ["shm_alloc", "main"]
    row = sysv_segments()[shmid]                        # the kernel agrees: it outlived the program
    assert (row["size"], row["cpid"]) == (1024, next(pid for pid, r in who.items() if r == "parent"))
    assert re.search(rf"^sysv +shmid {shmid} +0x00000000 +1,024 +shm_alloc \(\S*shm_sysv\.c:15\)$", run.stderr,
                     re.MULTILINE), run.stderr
    assert "SUMMARY: 0 heap errors; no counted leaks; 1 System V segment never removed" in run.stderr


def test_posix_object_is_reported_with_its_name_and_is_left_in_dev_shm(programs: Path, tmp_path: Path,
                                                                      leftovers: Leftovers, engine: str):
    source = MAPPING_TARGETS / "shm_posix.c"
    run = run_target(programs, source, tmp_path, leftovers, engine)
    name = leftovers.names[-1]
    [obj] = run.report["processes"][0]["shm"]
    assert (obj["type"], obj["name"], obj["size"]) == ("posix", name, 4096)
    assert os.path.exists("/dev/shm" + name)
    assert re.search(rf"^posix +{re.escape(name)} +4,096 +main \(\S*shm_posix\.c:16\)$", run.stderr, re.MULTILINE)
    assert run.report["processes"][0]["mappings"] == []   # its mapping of the object was unmapped


def test_errors_for_mappings_chooses_what_sets_the_exit_status(programs: Path, tmp_path: Path,
                                                              leftovers: Leftovers, engine: str):
    source = MAPPING_TARGETS / "mmap_anon_shared.c"
    assert run_target(programs, source, tmp_path, leftovers, engine, "--errors-for-mappings", "all").returncode == 1
    sysv = MAPPING_TARGETS / "shm_sysv.c"
    assert run_target(programs, sysv, tmp_path, leftovers, engine, "--errors-for-mappings",
                      "mappings").returncode == 0
    bad = run_cli(["--errors-for-mappings", "heap", str(programs / source.stem)], tmp_path)
    assert bad.returncode == 2 and "unknown mapping kind heap" in bad.stderr


def test_leaks_mappings_and_shm_list_them_on_demand(programs: Path, leftovers: Leftovers, engine: str):
    """Stopped between mmap and munmap of a POSIX object: the region (backed by /dev/shm/NAME) and the object."""
    name = leftovers.shm_name("interactive")
    line = next(n for n, text in enumerate((MAPPING_TARGETS / "shm_posix.c").read_text().splitlines(), 1)
                if "munmap(" in text)
    run = run_gdb([f"set memleak engine {engine}", "memleak start", f"break shm_posix.c:{line}", "run",
                   "echo @@mappings\\n", "leaks --mappings",
                   "echo @@shm\\n", "leaks --shm --stack", "echo @@bad\\n", "leaks --shm --pid 1", "kill"],
                  programs / "shm_posix", args=[name])
    assert "Traceback" not in run.stderr, run.stderr
    out = run.stdout.split("@@mappings\n", 1)[1]
    mappings, rest = out.split("@@shm\n", 1)
    shm = rest.split("@@bad\n", 1)[0]
    assert "MAPPINGS: 4,096 bytes in 1 region mapped and never unmapped" in mappings
    assert re.search(rf"4,096 +rw- +MAP_SHARED +/dev/shm{re.escape(name)} +mmap +main \(\S*shm_posix\.c:\d+\)",
                     mappings), mappings
    assert "SHARED MEMORY: 0 System V segments never marked for removal, 1 POSIX object never unlinked" in shm
    assert f"posix {name}: 4,096 bytes, created at:\n   at 0x" in shm
    assert "no allocation data for process 1" in run.stderr
