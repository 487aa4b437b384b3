"""Shared fixtures: the built C targets, and running the batch CLI or an interactive GDB script on them.

pyproject.toml puts the checkout and tests/ on sys.path (pytest's `pythonpath`), so tests import `gdb_memleak`,
`expectations`, `valgrind` and these helpers (`from conftest import ...`) however pytest is started.

The suite runs on several pytest-xdist workers (`scripts/dev test`: `-n 2 --dist loadgroup`). Work shared by tests
(building the targets, a cached CLI run) is done once for all workers under a file lock in the run's shared
temporary directory, and the tests of one C target are kept in one xdist group so they queue on one worker instead
of waiting on each other's lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest

import valgrind

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ROOT / "c_targets"
GDB_TESTS = Path(__file__).resolve().parent / "gdb"
BROWSER_TESTS = Path(__file__).resolve().parent / "browser"
#: markers that make a test slow by what it runs (another program under valgrind, a browser): `--quick` leaves out
#: every test marked `slow` or one of these
SLOW_BY_NATURE = ("valgrind", "browser")
#: C targets slow under one engine: threads_stress makes ~213,000 breakpoint stops (30 s and more on 2 cores)
SLOW_TARGETS = {"threads_stress": "breakpoint"}
TARGET_PARAMS = ("source", "binary")  # a test parametrized by one of these runs one C target
ENGINES = ("breakpoint", "agent")  # the tracking engines (`--engine`); tests that run programs check both

_shared_dir: Path | None = None  # this run's temporary directory, the same for every xdist worker


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--quick", action="store_true",
                     help="leave out the slow tests: those marked slow, valgrind (a run under valgrind) or browser")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the xdist_group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test under tests/gdb is marked `gdb` (`-m "not gdb"` runs the fast half) and every one under
    tests/browser `browser`; `--quick` deselects the slow ones. A test parametrized by a C target joins that
    target's xdist group, so the tests reading one cached CLI run share a worker."""
    quick = config.getoption("--quick")
    kept, slow = [], []
    for item in items:
        if GDB_TESTS in item.path.parents:
            item.add_marker(pytest.mark.gdb)
        if BROWSER_TESTS in item.path.parents:
            item.add_marker(pytest.mark.browser)
        if _slow_target(item):
            item.add_marker(pytest.mark.slow)
        if quick and any(item.get_closest_marker(name) for name in ("slow", *SLOW_BY_NATURE)):
            slow.append(item)
        else:
            kept.append(item)
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = kept
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or item.get_closest_marker("xdist_group") is not None:
            continue
        for name in TARGET_PARAMS:
            if name in callspec.params:
                target = callspec.params[name]
                label = getattr(target, "id", None) or getattr(target, "stem", None) or str(target)
                item.add_marker(pytest.mark.xdist_group(f"{item.path.stem}:{label}"))
                break


def _slow_target(item: pytest.Item) -> bool:
    params = getattr(getattr(item, "callspec", None), "params", {})
    for name in TARGET_PARAMS:
        target = params.get(name)
        if target is not None:
            label = getattr(target, "id", None) or getattr(target, "stem", None) or str(target)
            return SLOW_TARGETS.get(label) == params.get("engine")
    return False


def pytest_sessionstart(session: pytest.Session) -> None:
    """Test modules and their helpers are imported by file name (pytest's default import mode puts each one's
    directory on sys.path, which lets them import each other's helpers): two files of one name under tests/ would
    shadow each other, and pytest would only say "import file mismatch" for one. Refuse the run and name both."""
    found: dict[str, list[Path]] = {}
    for path in Path(__file__).resolve().parent.rglob("*.py"):
        if "__pycache__" not in path.parts:
            found.setdefault(path.name, []).append(path)
    clashes = sorted(f"{name} ({', '.join(str(p) for p in sorted(paths))})" for name, paths in found.items()
                     if len(paths) > 1)
    if clashes:
        raise pytest.UsageError("files under tests/ must have distinct names: " + "; ".join(clashes))


@pytest.hookimpl(tryfirst=True)  # before the test's fixtures, which may run valgrind for it
def pytest_runtest_setup(item: pytest.Item) -> None:
    valgrind.CURRENT_TEST[0] = item


@pytest.fixture(scope="session", autouse=True)
def _shared_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    global _shared_dir
    base = tmp_path_factory.getbasetemp()
    _shared_dir = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    return _shared_dir


@contextmanager
def exclusive(name: str) -> Iterator[Path]:
    """Hold the run-wide lock `name` (one xdist worker at a time); yields the shared directory."""
    assert _shared_dir is not None, "the _shared_tmp fixture sets the shared directory first"
    with open(_shared_dir / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield _shared_dir


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """The tracking engine a test runs its program under (CLI `--engine`, GDB `set memleak engine`)."""
    return str(request.param)


@pytest.fixture(scope="session")
def built_targets() -> Path:
    if shutil.which("gdb") is None or shutil.which("make") is None:
        pytest.fail("gdb and make are required (the README's setup command installs them)")
    with exclusive("make"):  # two workers running make in one directory would race on the same outputs
        subprocess.run(["make", "-s", "-j2", "-C", str(TARGETS)], check=True)
    return TARGETS / "bin"


def compile_target(source: Path, directory: Path) -> Path:
    """A C target outside the corpus `make` builds (a subdirectory's, built by its own tests), with its flags."""
    program = directory / source.stem
    subprocess.run(["gcc", "-g", "-O0", "-fno-omit-frame-pointer", "-pthread", "-o", str(program), str(source)],
                   check=True)
    return program


def console_script(name: str) -> str:
    """A command the venv installs (gdb-memleak, the test extras' tools), beside this Python or else on PATH."""
    script = Path(sys.executable).parent / name
    found = str(script) if script.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: `scripts/dev test` installs the test extras (pyproject.toml)")
    return found


@pytest.fixture(scope="session")
def recorder_library(tmp_path_factory: pytest.TempPathFactory, built_targets: Path) -> Path:
    """The recorder, built once for the session into a cache of its own: tests without GDB preload it themselves."""
    from gdb_memleak.agent import build

    return build.ensure_built(root=tmp_path_factory.mktemp("recorder-cache"))


@pytest.fixture(scope="session")
def gdb_calls_functions(built_targets: Path) -> None:
    """Skips the test when GDB cannot call a function in the program here. GDB 13 on CPUs with AMX fails every
    `call` ("Couldn't write extended state status: Bad address"); probed once with a real call on a real target."""
    probe = run_gdb(["break main", "run", "call (void*)malloc(1)", "kill"], built_targets / "clean", load="",
                    deps=False, timeout=60)
    if re.search(r"^\$1 = \(void \*\) 0x[0-9a-f]+", probe.stdout, re.M):
        return
    if not re.search(r"^Breakpoint 1, main ", probe.stdout, re.M):  # not the call: GDB could not even run it
        pytest.fail(f"the probe for GDB's `call` could not run the program:\n{probe.stdout}{probe.stderr}")
    reason = next((line for line in probe.stderr.splitlines() if line.strip()), "the call printed no value")
    pytest.skip(f"GDB cannot call functions in the program on this host: {reason}")


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen]]:
    """Starts processes (subprocess.Popen's arguments) that are killed when the test ends, if still running: a
    failing assertion never leaves a target behind."""
    started: list[subprocess.Popen] = []

    def start(*args: Any, **kwargs: Any) -> subprocess.Popen:
        proc = subprocess.Popen(*args, **kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in reversed(started):
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)


@dataclass
class CliRun:
    returncode: int
    stdout: str
    stderr: str
    report: dict | None

    def process(self, index: int = -1) -> dict:
        assert self.report is not None, self.stderr
        return self.report["processes"][index]


def run_cli(args: list[str], tmp_path: Path, stdin: str | None = None, env: dict[str, str] | None = None,
            timeout: int = 300) -> CliRun:
    """The batch CLI with `--json` into `tmp_path`; `env` adds variables (they reach the program through GDB)."""
    out = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "gdb_memleak.cli.main", "--json", str(out), *args],
                          input=stdin, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, **(env or {})})
    report = json.loads(out.read_text()) if out.exists() else None
    return CliRun(proc.returncode, proc.stdout, proc.stderr, report)


_CLI_RUNS: dict[tuple, CliRun] = {}


def cached_cli(args: list[str], env: dict[str, str] | None = None, timeout: int = 1200) -> CliRun:
    """One CLI run per distinct command line and environment for the whole session, across xdist workers: several
    tests read the same report (the slow targets, such as 8 threads x 10,000 allocations, run once instead of once
    per test). The first worker to ask runs it and saves it; another asking meanwhile waits for it."""
    key = (tuple(args), tuple(sorted((env or {}).items())))
    if key not in _CLI_RUNS:
        digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]
        with exclusive(f"cli-{digest}") as shared:
            folder = shared / f"cli-{digest}"
            saved = folder / "run.json"
            if saved.exists():
                run = CliRun(**json.loads(saved.read_text()))
            else:
                folder.mkdir(exist_ok=True)
                run = run_cli(args, folder, env=env, timeout=timeout)
                saved.write_text(json.dumps(asdict(run)))
        _CLI_RUNS[key] = run
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
