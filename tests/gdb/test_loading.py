"""Getting the plugin into GDB (checkout, installed virtualenv, missing dependency) and the batch CLI's contract:
its own errors, and the program's stdin, stdout, arguments and exit status passing through untouched."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import expectations
from conftest import ROOT, TARGETS, run_cli, run_gdb

SEED = expectations.parse(TARGETS / "seed_demo.c")


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without anything that would let GDB's Python find the dependencies on its own."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("GDB_MEMLEAK_PYTHONPATH", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env.update(extra)
    return env


# -- a. from a checkout ---------------------------------------------------------------------------------------------

SOURCE_DIR = ROOT / "gdb_memleak" / "source-path"


def test_loading_from_a_checkout_prints_nothing():
    run = run_gdb([])
    assert (run.stdout, run.stderr) == ("", "")
    assert run.returncode == 0


def test_loading_from_a_checkout_registers_leaks():
    run = run_gdb(["help leaks"])
    assert run.stderr == ""
    assert run.stdout.startswith("List unfreed heap blocks")
    assert "Usage: leaks" in run.stdout


def test_source_gdb_memleak_inside_the_checkout_loads_the_plugin():
    # ./gdb_memleak is the package directory here: GDB skips it and finds the script on the source path
    assert (ROOT / "gdb_memleak").is_dir()
    run = run_gdb([f"directory {SOURCE_DIR}", "source gdb_memleak", "help leaks"], load=None)
    assert run.stderr == ""
    assert run.stdout.startswith("List unfreed heap blocks")


def test_sourcing_gdb_memleak_twice_is_silent_and_registers_its_directory_once():
    run = run_gdb([f"directory {SOURCE_DIR}", "source gdb_memleak", "source gdb_memleak",
                   "python print(gdb.parameter('directories'))"], load=None)
    assert run.stderr == ""
    assert run.stdout == f"{SOURCE_DIR}:$cdir:$cwd\n"


def test_source_path_entry_through_a_symlink_is_not_registered_again(tmp_path: Path):
    link = tmp_path / "link"
    link.symlink_to(SOURCE_DIR)
    run = run_gdb([f"directory {link}", "source gdb_memleak", "python print(gdb.parameter('directories'))"],
                  load=None)
    assert run.stderr == ""
    assert run.stdout == f"{link}:$cdir:$cwd\n"


def test_gdbinit_sample_by_absolute_path_loads_from_any_directory(tmp_path: Path):
    # ... and leaves `source gdb_memleak` working there afterwards (a silent no-op)
    run = run_gdb(["source gdb_memleak", "help leaks", "python print(gdb.parameter('directories'))"],
                  cwd=tmp_path, load=str(ROOT / "gdbinit.sample"))
    assert run.stderr == ""
    assert run.stdout.startswith("List unfreed heap blocks")
    assert run.stdout.endswith(f"\n{SOURCE_DIR}:$cdir:$cwd\n")


def test_a_copy_of_the_script_away_from_the_package_says_so_in_one_line(tmp_path: Path):
    shutil.copy(SOURCE_DIR / "gdb_memleak", tmp_path / "gdb_memleak")
    run = run_gdb(["source gdb_memleak", "leaks"], cwd=tmp_path, load=None)
    lines = run.stderr.splitlines()
    assert lines[0] == (f"gdb-memleak: not loaded: {tmp_path.parent / 'load.py'} not found beside "
                        f"{tmp_path / 'gdb_memleak'}; source the script gdb_memleak where the package installed it "
                        "(see `gdb-memleak --gdbinit`)"), run.stderr
    assert lines[1:] == ['Undefined command: "leaks".  Try "help".'], run.stderr


# -- b. from an installed virtualenv --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def installed_venv(tmp_path_factory) -> Path:
    """A fresh virtualenv with the package pip-installed (non-editable) from a copy of the checkout.

    The copy keeps pip's in-tree build (build/, *.egg-info) out of the checkout. Needs PyPI for pygments/tabulate."""
    base = tmp_path_factory.mktemp("install")
    source = base / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis", "bin", "tests"))
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                          str(source)], capture_output=True, text=True, timeout=300, env=clean_env())
    assert pip.returncode == 0, pip.stdout + pip.stderr
    return venv


def gdbinit_line(venv: Path) -> str:
    out = subprocess.run([str(venv / "bin" / "gdb-memleak"), "--gdbinit"], capture_output=True, text=True,
                         check=True, env=clean_env())
    return out.stdout.strip()


@pytest.mark.slow
def test_gdbinit_line_puts_the_installed_script_on_gdbs_source_path(installed_venv: Path):
    line = gdbinit_line(installed_venv)
    match = re.fullmatch(r"directory (\S+)", line)
    assert match, line
    directory = Path(match.group(1))
    assert directory.is_absolute() and (directory / "gdb_memleak").is_file()
    assert (directory.parent / "load.py").is_file() and directory.parent.name == "gdb_memleak"
    assert installed_venv in directory.parents, "the installed copy, not the checkout"


def test_loading_from_a_virtualenv_in_another_directory_works(built_targets: Path, installed_venv: Path,
                                                               tmp_path: Path):
    (leak_line, (leak_bytes, _)), = SEED.leaks.items()
    run = run_gdb([gdbinit_line(installed_venv), "source gdb_memleak",
                   "python import gdb_memleak; print('package:', gdb_memleak.__file__)",
                   "help leaks",
                   "memleak start", "set memleak on-error report", "run", "leaks --all"],
                  built_targets / "seed_demo", cwd=tmp_path, load=None, deps=False,
                  env=clean_env(VIRTUAL_ENV=str(installed_venv)))
    assert "not loaded" not in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    package = re.search(r"^package: (.+)$", run.stdout, re.M).group(1)
    assert installed_venv in Path(package).parents
    assert "Usage: leaks" in run.stdout
    assert "killed by SIGABRT" in run.stdout
    # at the abort p3 is still in main's live frame: still reachable, listed by `leaks --all`
    assert re.search(rf"^\s*still reachable\s+{leak_bytes}\s+1\s+malloc\s+#\d+\s+main \(\S*seed_demo\.c:{leak_line}\)$",
                     run.stdout, re.M), run.stdout


def test_installed_line_inside_a_checkout_loads_the_installed_copy(installed_venv: Path):
    run = run_gdb([gdbinit_line(installed_venv), "source gdb_memleak",
                   "python import gdb_memleak; print(gdb_memleak.__file__)"],
                  cwd=ROOT, load=None, deps=False, env=clean_env(VIRTUAL_ENV=str(installed_venv)))
    assert run.stderr == ""
    assert installed_venv in Path(run.stdout.strip()).parents, run.stdout


@pytest.mark.slow
def test_installed_cli_prints_the_report_on_stderr_and_exits_1(built_targets: Path, installed_venv: Path,
                                                               tmp_path: Path):
    (leak_line, (leak_bytes, _)), = SEED.leaks.items()
    run = subprocess.run([str(installed_venv / "bin" / "gdb-memleak"), "--", str(built_targets / "seed_demo")],
                         capture_output=True, text=True, cwd=tmp_path, env=clean_env(), timeout=300)
    assert run.returncode == 1, run.stderr
    assert run.stdout == ""
    assert "HEAP SUMMARY" in run.stderr
    assert "Double free of 0x" in run.stderr
    # the CLI skips the bad free (--on-error skip), so the program runs to its end and p3 is definitely lost
    assert "The call was skipped" in run.stderr
    assert "exited with code 0" in run.stderr and "SIGABRT" not in run.stderr
    assert re.search(rf"^definitely lost\s+{leak_bytes}\s+1\s+malloc\s+#\d+\s+main \(\S*seed_demo\.c:{leak_line}\)$",
                     run.stderr, re.M), run.stderr
    assert run.stderr.rstrip().splitlines()[-1] == f"SUMMARY: 1 heap error; {leak_bytes} bytes definitely lost"
    assert "not loaded" not in run.stderr


# -- c. a dependency missing -----------------------------------------------------------------------------------------

def test_missing_dependency_is_one_line_and_loads_nothing():
    # The -ex before `source gdbinit.sample` runs before the loader, as an -iex would.
    run = run_gdb(["python import sys; sys.modules['tabulate'] = None", "source gdbinit.sample", "leaks"],
                  load=None, deps=False, env=clean_env())
    notices = [line for line in run.stderr.splitlines() if line.startswith("gdb-memleak: not loaded:")]
    assert len(notices) == 1, run.stderr
    assert "cannot import tabulate." in notices[0]
    assert "pygments" not in notices[0].split("cannot import")[1].split(".")[0]
    assert 'Undefined command: "leaks".' in run.stderr
    assert "Traceback" not in run.stderr
    assert run.stdout == ""


# -- d. CLI errors --------------------------------------------------------------------------------------------------

def test_cli_missing_program_is_a_usage_error(tmp_path: Path):
    run = run_cli(["./no-such-program"], tmp_path)
    assert run.returncode == 2
    assert run.stderr == "gdb-memleak: error: ./no-such-program: no such program\n"
    assert run.stdout == ""


@pytest.mark.parametrize("kind", ["file", "directory"])
def test_cli_non_executable_program_is_a_usage_error(tmp_path: Path, kind: str):
    target = tmp_path / "data"
    if kind == "file":
        target.write_text("not a program\n")
    else:
        target.mkdir()
    run = run_cli([str(target)], tmp_path)
    assert run.returncode == 2
    assert run.stderr == f"gdb-memleak: error: {target}: not an executable file\n"


def test_cli_malformed_suppression_file_is_a_usage_error_naming_file_and_line(built_targets: Path, tmp_path: Path):
    supp = tmp_path / "bad.supp"
    supp.write_text("# comment\nleak:^ok$\nnot a suppression\n")
    run = run_cli(["--suppressions", str(supp), str(built_targets / "clean")], tmp_path)
    assert run.returncode == 2
    assert run.stderr == f"gdb-memleak: error: {supp}:3: expected 'leak:PATTERN', got 'not a suppression'\n"
    assert run.stdout == ""
    assert run.report is None


def test_cli_without_a_program_prints_usage(tmp_path: Path):
    run = run_cli([], tmp_path)
    assert run.returncode == 2
    assert run.stderr.startswith("usage: gdb-memleak ")
    assert run.stderr.endswith("gdb-memleak: error: a program to run (or --pid PID) is required\n")
    assert run.stdout == ""


def test_cli_with_a_missing_gdb_is_a_clear_error(built_targets: Path, tmp_path: Path):
    run = run_cli(["--gdb", "/nonexistent", str(built_targets / "clean")], tmp_path)
    assert run.returncode == 2
    assert run.stderr == "gdb-memleak: error: /nonexistent: GDB not found (install gdb or pass --gdb PATH)\n"
    assert run.report is None


# -- e. passthrough -------------------------------------------------------------------------------------------------

def test_cli_passes_stdin_and_stdout_through_untouched(tmp_path: Path):
    # what cat keeps allocated at exit is still reachable (or suppressed), which does not count: status 0
    run = run_cli(["/bin/cat"], tmp_path, stdin="hello\nworld\n")
    assert run.stdout == "hello\nworld\n"
    assert run.returncode == 0, run.stderr
    assert "HEAP SUMMARY" in run.stderr
    summary = run.process()["leak_summary"]
    assert summary["definite"]["blocks"] == summary["possible"]["blocks"] == 0, summary


def test_cli_exit_status_is_the_programs_when_nothing_is_found(built_targets: Path, tmp_path: Path):
    run = run_cli([str(built_targets / "churn"), "10"], tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout == ""
    assert run.stderr.rstrip().splitlines()[-1] == "SUMMARY: no heap errors, no leaks of the kinds that count as errors"


def test_cli_nonzero_exit_status_passes_through(tmp_path: Path):
    # sh keeps its blocks reachable at exit: not errors by default, so its own status comes through
    run = run_cli(["/bin/sh", "-c", "exit 3"], tmp_path)
    assert run.returncode == 3, run.stderr
    assert run.process()["exit"] == {"code": 3}
    assert run.process()["leak_summary"]["reachable"]["blocks"] > 0, "the next two runs need findings of that kind"
    # counted as errors, they give --error-exitcode (default 1) ...
    counted = run_cli(["--errors-for-leak-kinds", "all", "/bin/sh", "-c", "exit 3"], tmp_path)
    assert counted.returncode == 1, counted.stderr
    # ... unless it is 0, which keeps the program's status even with findings
    kept = run_cli(["--errors-for-leak-kinds", "all", "--error-exitcode", "0", "/bin/sh", "-c", "exit 3"], tmp_path)
    assert kept.returncode == 3, kept.stderr


def test_cli_arguments_arrive_verbatim_without_a_shell(tmp_path: Path):
    run = run_cli(["/bin/echo", "a b", "$HOME", "*"], tmp_path)
    assert run.stdout == "a b $HOME *\n"
    assert run.returncode == 0, run.stderr
    assert run.process()["argv"] == ["/bin/echo", "a b", "$HOME", "*"]
