#!/usr/bin/env python3
"""Core files of a program under the recorder: size and time of GDB's `gcore` and of the kernel's dump, and of
reading one back (`gdb-memleak --core`), at 10 and 1M live blocks, beside the same program without the recorder.

`bench/c/many_blocks.c N abort` makes N live 32-byte blocks and stops itself (SIGSTOP). gcore: `gdb -p PID`
writes the core, timed inside GDB around `gcore` alone; kernel: the program is continued, aborts, and the kernel
writes `core` into a scratch directory, timed from the SIGCONT to the parent's wait; read: `gdb-memleak --core CORE
PROG`, end to end (GDB, the table read, the scan, the report). Sizes: the file's length, and the disk it takes (the
kernel leaves holes where pages were never touched; gcore writes every byte). Every core is written under a 4 GiB
limit (RLIMIT_CORE for the kernel, GDB's RLIMIT_FSIZE for gcore) and deleted once measured. Medians of --repeat
runs.

Usage: python bench/core_dump_size.py [--blocks 10,1000000] [--repeat 1]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import programs  # noqa: E402
from gdb_memleak.agent import build  # noqa: E402

LIMIT = 4 << 30
GCORE = ("python import time; t = time.perf_counter(); gdb.execute('gcore {path}', to_string=True); "
         "print('GCORE %.4f' % (time.perf_counter() - t))")


def _limits(core: bool) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (LIMIT if core else 0, resource.getrlimit(resource.RLIMIT_CORE)[1]))


def stopped(program: Path, blocks: int, env: dict[str, str], cwd: Path, core: bool) -> int:
    """The program started with `blocks`, once it has stopped itself: its pid."""
    proc = subprocess.Popen([str(program), str(blocks), "abort"], cwd=cwd, env=env, preexec_fn=lambda: _limits(core))
    _, status = os.waitpid(proc.pid, os.WUNTRACED)
    proc.returncode = 0  # reaped by hand from here on
    if not os.WIFSTOPPED(status):
        raise SystemExit(f"{program} {blocks} did not stop itself (status {status})")
    return proc.pid


def sizes(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_blocks * 512


def gcore(program: Path, blocks: int, env: dict[str, str], folder: Path) -> tuple[float, int]:
    """(seconds of `gcore` inside GDB, the core's length)."""
    pid = stopped(program, blocks, env, folder, core=False)
    path = folder / "gcore.core"
    try:
        run = subprocess.run(["gdb", "-nx", "-q", "-batch", "-iex", "set debuginfod enabled off", "-p", str(pid),
                              "-ex", GCORE.format(path=path)], capture_output=True, text=True,
                             preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT)))
        found = re.search(r"^GCORE (\S+)$", run.stdout, re.M)
        if found is None or not path.exists():
            raise SystemExit(f"gcore failed:\n{run.stdout}{run.stderr}")
        return float(found[1]), sizes(path)[0]
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        path.unlink(missing_ok=True)


def kernel_dump(program: Path, blocks: int, env: dict[str, str], folder: Path,
                reader: list[str] | None) -> tuple[float, int, int, float | None]:
    """(seconds from SIGCONT to the end of the dump, the core's length, its disk use, seconds of
    `gdb-memleak --core` reading it back when `reader` is given)."""
    pid = stopped(program, blocks, env, folder, core=True)
    started = time.perf_counter()
    os.kill(pid, signal.SIGCONT)
    _, status = os.waitpid(pid, 0)
    took = time.perf_counter() - started
    path = folder / "core"
    if not os.WCOREDUMP(status) or not path.exists():
        raise SystemExit(f"no core dumped (status {status}): check /proc/sys/kernel/core_pattern")
    try:
        length, disk = sizes(path)
        read = None
        if reader is not None:
            started = time.perf_counter()
            subprocess.run([*reader, "--core", str(path), str(program)], capture_output=True, check=False)
            read = time.perf_counter() - started
        return took, length, disk, read
    finally:
        path.unlink(missing_ok=True)


def mib(n: float) -> str:
    return f"{n / (1 << 20):,.1f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", default="10,1000000")
    parser.add_argument("--repeat", type=int, default=1)
    options = parser.parse_args()
    pattern = Path("/proc/sys/kernel/core_pattern").read_text().strip()
    if pattern.startswith("|") or "/" in pattern:
        raise SystemExit(f"core_pattern is {pattern!r}: the kernel's dumps need a plain file name (e.g. `core`)")
    reader = [sys.executable, "-m", "gdb_memleak.cli.main"]
    library = build.ensure_built()
    print(f"{'blocks':>9}  {'recorder':8}  {'gcore':>10}  {'gcore s':>7}  {'kernel core (disk)':>22}  "
          f"{'kernel s':>8}  {'--core read s':>13}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        program = programs.build("many_blocks", folder)
        for blocks in (int(b) for b in options.blocks.split(",")):
            for recorder in (False, True):
                env = {**os.environ, **({"LD_PRELOAD": str(library)} if recorder else {})}
                g = [gcore(program, blocks, env, folder) for _ in range(options.repeat)]
                k = [kernel_dump(program, blocks, env, folder, reader if recorder else None)
                     for _ in range(options.repeat)]
                read = statistics.median(r[3] for r in k) if recorder else None
                kernel = f"{mib(statistics.median(r[1] for r in k))} ({mib(statistics.median(r[2] for r in k))})"
                print(f"{blocks:>9,}  {'yes' if recorder else 'no':8}  {mib(statistics.median(s for _, s in g)):>10}  "
                      f"{statistics.median(t for t, _ in g):>7.2f}  {kernel:>22}  "
                      f"{statistics.median(r[0] for r in k):>8.2f}  {'' if read is None else f'{read:.2f}':>13}")

if __name__ == "__main__":
    main()
