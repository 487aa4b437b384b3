"""numpy is a dependency (the vectorised reachability scan); GDB's Python, which is not the virtualenv's, may still be
unable to import it. Then the plugin loads all the same, says so in one line, and the pure-Python scan gives the same
report. Through the real loader (gdbinit.sample) in real GDB, with numpy missing, built for another Python, or
failing to import."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import expectations
from conftest import ROOT, TARGETS, run_gdb

SEED = expectations.parse(TARGETS / "seed_demo.c")
BACKEND = "python from gdb_memleak.core.scan import numpy_backend; print('scan backend:', numpy_backend()[0])"


def gdb_env(*path: Path) -> dict[str, str]:
    """GDB's environment with only `path` where its Python looks for the plugin's dependencies."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("GDB_MEMLEAK_PYTHONPATH", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["GDB_MEMLEAK_PYTHONPATH"] = os.pathsep.join(str(p) for p in path)
    return env


def dependencies_without_numpy(tmp_path: Path) -> Path:
    """A site-packages directory holding what the test's own has (pygments, tabulate, their metadata), but numpy."""
    from importlib.util import find_spec

    spec = find_spec("tabulate")
    assert spec is not None and spec.origin is not None
    site_packages = Path(spec.origin).parent.parent
    folder = tmp_path / "deps"
    folder.mkdir()
    for entry in site_packages.iterdir():
        if not entry.name.lower().startswith("numpy"):
            (folder / entry.name).symlink_to(entry)
    return folder


def numpy_package(folder: Path, core_file: str | None = None) -> Path:
    """A numpy package in `folder` whose import fails as a broken or mismatched build's does."""
    package = folder / "numpy"
    (package / "_core").mkdir(parents=True)
    (package / "__init__.py").write_text(
        "from ._core import _multiarray_umath  # the compiled core: fails here\n")
    (package / "_core" / "__init__.py").write_text("")
    if core_file is not None:
        (package / "_core" / core_file).write_bytes(b"\x7fELF not for this Python")
    return folder


def numpy_lines(run: subprocess.CompletedProcess) -> list[str]:
    return [line for line in (run.stdout + run.stderr).splitlines() if "numpy" in line and "scan backend" not in line]


def check_pure_report(run: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in run.stdout + run.stderr, run.stdout + run.stderr
    assert "scan backend: None" in run.stdout, run.stdout
    (leak_line, (leak_bytes, leak_blocks)), = SEED.leaks.items()
    assert f"definitely lost: {leak_bytes} bytes in {leak_blocks} blocks" in run.stdout, run.stdout
    assert "exited with code 0" in run.stdout


def run_seed(env: dict[str, str], engine: str) -> subprocess.CompletedProcess:
    return run_gdb([f"set memleak engine {engine}", "set memleak on-error skip", "memleak start", "run", BACKEND],
                   TARGETS / "bin" / "seed_demo", env=env, deps=False)


def test_numpy_missing_in_gdbs_python_is_one_line_at_load(built_targets: Path, tmp_path: Path):
    env = gdb_env(dependencies_without_numpy(tmp_path))
    loaded = run_gdb(["help leaks"], env=env, deps=False)
    assert loaded.stdout.startswith("List unfreed heap blocks"), loaded.stdout + loaded.stderr
    (line,) = loaded.stderr.splitlines()
    assert re.fullmatch(r"gdb-memleak: numpy is not installed for GDB's Python \(\S+ 3\.\d+\.\d+\): the reachability "
                        r"scan runs in pure Python \(slower on large heaps\)", line), line


def test_numpy_missing_the_pure_scan_gives_the_report(built_targets: Path, tmp_path: Path, engine: str):
    run = run_seed(gdb_env(dependencies_without_numpy(tmp_path)), engine)
    check_pure_report(run)
    assert len(numpy_lines(run)) == 1, numpy_lines(run)


def test_numpy_built_for_another_python_is_one_line_at_load(built_targets: Path, tmp_path: Path):
    broken = numpy_package(tmp_path / "other", "_multiarray_umath.cpython-399-x86_64-linux-gnu.so")
    env = gdb_env(broken, dependencies_without_numpy(tmp_path))
    loaded = run_gdb(["help leaks"], env=env, deps=False)
    assert loaded.stdout.startswith("List unfreed heap blocks"), loaded.stdout + loaded.stderr
    (line,) = loaded.stderr.splitlines()
    assert re.fullmatch(rf"gdb-memleak: numpy in {re.escape(str(broken))} is built for Python 3\.99, this is Python "
                        r"3\.\d+: the reachability scan runs in pure Python \(slower on large heaps\)", line), line


def test_numpy_failing_to_import_is_one_line_and_the_pure_scan_runs(built_targets: Path, tmp_path: Path,
                                                                     engine: str):
    broken = numpy_package(tmp_path / "broken")  # found, looks fine, fails when imported
    run = run_seed(gdb_env(broken, dependencies_without_numpy(tmp_path)), engine)
    check_pure_report(run)
    lines = numpy_lines(run)
    assert len(lines) == 1, lines
    assert lines[0].startswith("gdb-memleak: numpy cannot be imported (") and lines[0].endswith(
        "): the reachability scan runs in pure Python (slower on large heaps)"), lines


def test_the_venvs_numpy_is_used_and_says_nothing(built_targets: Path):
    from gdb_memleak.cli.main import dependency_dirs

    run = run_gdb(["set memleak on-error skip", "memleak start", "run", BACKEND], TARGETS / "bin" / "seed_demo",
                  env=gdb_env(*map(Path, dependency_dirs())), deps=False)
    assert "scan backend: <module 'gdb_memleak.core.scan.numpy_scan'" in run.stdout, run.stdout + run.stderr
    assert numpy_lines(run) == []


def test_numpy_is_a_dependency_of_the_package():
    dependencies = re.search(r"^dependencies = \[(.*)\]$", (ROOT / "pyproject.toml").read_text(), re.M)
    assert dependencies and re.search(r'"numpy\b', dependencies.group(1)), dependencies
