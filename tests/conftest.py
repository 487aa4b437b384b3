"""Shared fixtures: the built C targets, and running the batch CLI or an interactive GDB script on them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ROOT / "c_targets"
sys.path.insert(0, str(Path(__file__).resolve().parent))  # expectations, valgrind, conftest helpers
if str(ROOT) not in sys.path:  # the checkout's gdb_memleak, however pytest is started
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def built_targets() -> Path:
    if shutil.which("gdb") is None or shutil.which("make") is None:
        pytest.fail("gdb and make are required (the README's setup command installs them)")
    subprocess.run(["make", "-s", "-j2", "-C", str(TARGETS)], check=True)
    return TARGETS / "bin"


@dataclass
class CliRun:
    returncode: int
    stdout: str
    stderr: str
    report: dict | None

    def process(self, index: int = -1) -> dict:
        assert self.report is not None, self.stderr
        return self.report["processes"][index]


def run_cli(args: list[str], tmp_path: Path, stdin: str | None = None, timeout: int = 300) -> CliRun:
    out = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "gdb_memleak.cli.main", "--json", str(out), *args],
                          input=stdin, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    report = json.loads(out.read_text()) if out.exists() else None
    return CliRun(proc.returncode, proc.stdout, proc.stderr, report)


_CLI_RUNS: dict[tuple, CliRun] = {}


def cached_cli(args: list[str], env: dict[str, str] | None = None, timeout: int = 1200) -> CliRun:
    """One CLI run per distinct command line and environment for the whole session: several tests read the same
    report (the slow targets, such as 8 threads x 10,000 allocations, run once instead of once per test)."""
    key = (tuple(args), tuple(sorted((env or {}).items())))
    if key not in _CLI_RUNS:
        out = Path(tempfile.mkdtemp(prefix="gdb-memleak-test-")) / "report.json"
        proc = subprocess.run([sys.executable, "-m", "gdb_memleak.cli.main", "--json", str(out), *args],
                              capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                              env={**os.environ, **(env or {})})
        report = json.loads(out.read_text()) if out.exists() else None
        _CLI_RUNS[key] = CliRun(proc.returncode, proc.stdout, proc.stderr, report)
    return _CLI_RUNS[key]


def run_gdb(commands: list[str], program: Path | None = None, args: list[str] = (), cwd: Path = ROOT,
            env: dict | None = None, load: str = "gdbinit.sample", deps: bool = True,
            timeout: int = 300, extra: list[str] = ()) -> subprocess.CompletedProcess:
    """One GDB per test, in batch mode, the plugin loaded the way a user loads it."""
    cmd = ["gdb", "-nx", "-q", "-batch", "-iex", "set debuginfod enabled off"]
    if load:
        cmd += ["-x", load]
    cmd += list(extra)
    for command in commands:
        cmd += ["-ex", command]
    if program is not None:
        cmd += ["--args", str(program), *args]
    environment = dict(os.environ if env is None else env)
    if deps:  # where the test's Python finds pygments/tabulate, as an activated venv would provide them
        environment.setdefault("GDB_MEMLEAK_PYTHONPATH", os.pathsep.join(_dependency_dirs()))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=environment)


def _dependency_dirs() -> list[str]:
    from gdb_memleak.cli.main import dependency_dirs

    return dependency_dirs()
