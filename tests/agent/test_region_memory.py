"""The recorder's memory: a memfd (else an unlinked 0600 file, else private memory) that leaves nothing in /dev/shm
or /tmp even after SIGKILL, holds no descriptor of the program's, and gives every forked process its own table."""

from __future__ import annotations

import collections
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from recorded import Recorded, run_recorded

import valgrind
from conftest import run_cli
from gdb_memleak.agent import build

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = Path(__file__).resolve().parent / "programs"
MEMFD = "/memfd:gdb-memleak (deleted)"
HIGH_FDS = 1024 - 8  # where the recorder moves libunwind's pipe (see pipe2 in recorder.c)


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, built_targets: Path) -> Path:
    return build.ensure_built(root=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("region-programs")
    for source in PROGRAMS.glob("*.c"):
        subprocess.run(["gcc", "-g", "-O0", "-fno-omit-frame-pointer", "-o", str(out / source.stem), str(source)],
                       check=True)
    return out


def sizes(record: Recorded) -> dict[int, int]:
    """Live blocks per size: the programs here tell their processes apart by block size."""
    return dict(collections.Counter(b.size for b in record.snapshot.blocks() if b.size in (16, 24, 32, 40, 48)))


# live blocks per size in each process of fork_tables: the grandchild (_Fork), the child (fork), the parent
FORK_TABLES = sorted([((16, 5000), (24, 3000), (40, 500)), ((16, 10000), (24, 3000)), ((16, 15000), (32, 1000))])


def tables(records: list[Recorded]) -> list[tuple[tuple[int, int], ...]]:
    return sorted(tuple(sorted(sizes(r).items())) for r in records)


def perms_and_path(record: Recorded) -> tuple[str, str]:
    fields = record.region_mapping.split(None, 4)
    return fields[0], fields[4] if len(fields) > 4 else ""


def test_region_is_a_shared_memfd_and_no_descriptor_stays_open(library: Path) -> None:
    records, _status, _out = run_recorded(library, [str(ROOT / "c_targets" / "bin" / "leak_sites")])
    (record,) = records
    assert perms_and_path(record) == ("rw-s", MEMFD)
    assert not [fd for fd in record.fds if "memfd" in fd or fd.startswith(("/dev/shm", "/tmp"))]


@pytest.mark.parametrize("file_limit", [None, "1048576"], ids=["copy-in-memfd", "copy-in-private-memory"])
def test_forked_processes_keep_their_own_tables(library: Path, programs: Path, file_limit: str | None) -> None:
    """fork and glibc's _Fork: each process's table holds exactly its own history, in a region of its own."""
    argv = [str(programs / "fork_tables"), *([file_limit] if file_limit else [])]
    records, status, _out = run_recorded(library, argv)
    assert status == 0 and len(records) == 3
    assert tables(records) == FORK_TABLES
    (parent,) = [r for r in records if 32 in sizes(r)]
    children = [perms_and_path(r) for r in records if r is not parent]
    assert perms_and_path(parent) == ("rw-s", MEMFD)
    if file_limit is None:
        assert children == [("rw-s", MEMFD)] * 2
        inodes = {r.region_mapping.split()[3] for r in records}
        assert len(inodes) == 3  # three files, not one shared
    else:  # no file may be that large after the limit: the copies are private memory
        assert all(perms == "rw-p" for perms, _path in children)


@pytest.mark.parametrize(("launcher", "perms", "path_start"),
                         [([], "rw-s", "/dev/shm/#"), (["--no-tmpfile"], "rw-p", "")],
                         ids=["unlinked-file", "private-memory"])
def test_without_memfd_the_region_falls_back_silently(library: Path, programs: Path, launcher: list[str],
                                                       perms: str, path_start: str) -> None:
    argv = [str(programs / "no_memfd"), *launcher, str(programs / "fork_tables")]
    records, status, _out = run_recorded(library, argv)
    assert status == 0 and len(records) == 3
    assert tables(records) == FORK_TABLES
    for record in records:
        got_perms, path = perms_and_path(record)
        assert got_perms == perms
        if perms == "rw-p":  # named where the kernel names anonymous memory (CONFIG_ANON_VMA_NAME)
            assert path in ("", "[anon:gdb-memleak]")
        else:
            assert path.startswith(path_start)
            assert path.endswith(" (deleted)")
            inode = int(record.region_mapping.split()[3])
            assert not [p for p in Path("/dev/shm").iterdir() if p.stat().st_ino == inode]


@pytest.mark.valgrind
def test_block_table_under_threaded_churn_holds_exactly_the_live_blocks(library: Path, programs: Path,
                                                                       tmp_path: Path) -> None:
    """600,000 events over 4 threads: records are recycled as freed blocks are forgotten, the index grows; what the
    table holds at exit is what the program kept, and a block freed twice at once is still a double free."""
    listing = tmp_path / "kept.txt"
    records, status, _out = run_recorded(library, [str(programs / "table_churn"), str(listing)],
                                         GDB_MEMLEAK_AGENT_ON_ERROR="skip")
    assert status == 0
    (record,) = records
    kept = sorted(tuple(int(w) for w in line.split()) for line in listing.read_text().splitlines())
    assert len(kept) > 10000
    snapshot = record.snapshot
    ours = {(b.address, b.size) for b in snapshot.blocks()}
    assert set(kept) <= ours  # and the C library's own blocks (threads' DTVs)
    c = snapshot.counters()
    assert (c.live_blocks, c.live_bytes) == (len(ours), sum(size for _a, size in ours)) and c.allocs > 300000
    if valgrind.available():
        theirs = valgrind.heap_figures([str(programs / "table_churn"), str(tmp_path / "again.txt")])
        assert valgrind.HeapFigures(c.allocs, c.frees, c.bytes_allocated, c.live_bytes, c.live_blocks) == theirs
    (error,) = snapshot.errors()
    assert (error.type.name, error.block_size) == ("DOUBLE_FREE", 77) and error.free_pcs and error.alloc_pcs


@pytest.mark.valgrind
def test_blocks_a_full_region_cannot_record_are_released_silently_and_a_bad_free_is_still_reported(
        library: Path, programs: Path) -> None:
    """A file-size limit caps the region at 256 MiB (about a million records): the blocks past that are counted in
    the totals but not kept, their frees are no errors, and a free of an address no allocator returned still is."""
    limit = "import os, resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (256 << 20, 256 << 20)); " \
            "os.execv(sys.argv[1], sys.argv[1:])"
    argv = [sys.executable, "-c", limit, str(programs / "dropped_blocks")]
    records, status, _out = run_recorded(library, argv, GDB_MEMLEAK_AGENT_ON_ERROR="skip")
    assert status == 0
    (record,) = records
    snapshot = record.snapshot
    assert snapshot.header.region_size == 256 << 20 and snapshot.header.blocks_dropped > 0
    assert [e.type.name for e in snapshot.errors()] == ["INVALID_FREE"]
    c = snapshot.counters()
    assert (c.live_blocks, c.live_bytes) == (0, 0)
    if valgrind.available():
        theirs = valgrind.heap_figures([str(programs / "dropped_blocks")])
        assert (c.allocs, c.frees, c.bytes_allocated) == (theirs.allocs, theirs.frees, theirs.bytes_allocated)


def test_program_closing_every_descriptor_sees_its_own_descriptors_and_gets_its_report(
        library: Path, programs: Path) -> None:
    exe = str(programs / "close_fds")
    native = subprocess.run([exe], capture_output=True, text=True, check=True).stdout
    records, status, out = run_recorded(library, [exe], stdout=subprocess.PIPE)
    assert status == 0
    ours = "\n".join(" ".join(w for w in line.split() if not (w.isdigit() and int(w) >= HIGH_FDS))
                     for line in out.decode().splitlines())
    assert ours == "\n".join(" ".join(line.split()) for line in native.splitlines())
    assert "next open: 3" in native and "errno after malloc: 77" in native
    (record,) = records
    assert sizes(record) == {48: 1234}


def test_program_closing_every_descriptor_under_gdb_reports_its_leak(programs: Path, tmp_path: Path) -> None:
    run = run_cli(["--engine", "agent", str(programs / "close_fds")], tmp_path)
    (process,) = run.report["processes"]
    assert process["exit"] == {"code": 0}, run.stderr
    assert "next open: 3" in run.stdout
    leaked = {(leak["kind"], leak["bytes"], leak["blocks"]) for leak in process["leaks"]}
    assert ("definitely_lost", 48 * 1234, 1234) in leaked or \
        sum(leak["bytes"] for leak in process["leaks"] if leak["bytes"] % 48 == 0) >= 48 * 1234


def test_forked_processes_under_gdb_report_their_own_blocks(programs: Path, tmp_path: Path) -> None:
    run = run_cli(["--engine", "agent", str(programs / "fork_tables")], tmp_path)
    processes = run.report["processes"]
    assert len(processes) == 3 and all(p["exit"] == {"code": 0} for p in processes), run.stderr
    in_use = sorted(p["in_use_at_exit"]["bytes"] for p in processes)
    expected = sorted([5000 * 16 + 3000 * 24 + 500 * 40, 10000 * 16 + 3000 * 24, 15000 * 16 + 1000 * 32])
    assert in_use == expected


NAMESPACE_SCRIPT = r"""
set -e
mount --bind "$WORK" /mnt
mount -t tmpfs none /tmp
mount -t tmpfs none /dev/shm
wait_for_region() {
    for _ in $(seq 500); do grep -q "$1" "/proc/$2/maps" 2>/dev/null && return 0; sleep 0.01; done
    echo "no region in $2"; exit 1
}
# a normal run, then a run killed with SIGKILL while its region exists; memfd first, then the unlinked file
for launcher in "" "/mnt/no_memfd"; do
    LD_PRELOAD=/mnt/librecorder.so $launcher /bin/cat </dev/null >/dev/null
    LD_PRELOAD=/mnt/librecorder.so $launcher /bin/sleep 30 &
    pid=$!
    if [ -n "$launcher" ]; then wait_for_region "/dev/shm/#" $pid; else wait_for_region "memfd:gdb-memleak" $pid; fi
    kill -9 $pid
    wait $pid || true
done
echo "left:$(find /tmp /dev/shm -mindepth 1 -printf ' %p')"
"""


def test_nothing_is_left_in_dev_shm_or_tmp_after_a_run_or_sigkill(library: Path, programs: Path,
                                                                   tmp_path: Path) -> None:
    """In a mount namespace of its own with empty tmpfs on /tmp and /dev/shm: both must stay empty."""
    unshare = shutil.which("unshare")
    probe = subprocess.run([unshare or "unshare", "-rm", "true"], capture_output=True) if unshare else None
    if probe is None or probe.returncode != 0:
        pytest.skip("no user and mount namespaces here (unshare -rm)")
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(library, work / "librecorder.so")
    shutil.copy(programs / "no_memfd", work / "no_memfd")
    proc = subprocess.run([unshare, "-rm", "sh", "-c", NAMESPACE_SCRIPT], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "WORK": str(work)}, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1] == "left:"
