"""valgrind's command line given to gdb-memleak (what CTest's `ctest -T memcheck` runs: `-q --tool=memcheck
--leak-check=yes --show-reachable=yes --num-callers=50 --log-file=...`): the --log-file text is valgrind's, line for
line, addresses, pids and the frame inside valgrind's replacement allocator aside."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import valgrind
from conftest import TARGETS, run_cli

CTEST = ["--tool=memcheck", "--leak-check=yes", "--show-reachable=yes", "--num-callers=50"]
PREFIX = re.compile(r"^(==|--)\d+(==|--) ?")
HEX = re.compile(r"0x[0-9A-Fa-f]+")
STACK_FRAME_LINE = re.compile(r"^ in frame #\d+, created by ")  # valgrind's; not kept here (core/reports/xml.py)
REPLACEMENT = re.compile(r"\(in /\S*vgpreload_memcheck\S*\.so\)")

needs_valgrind = pytest.mark.skipif(not valgrind.available(), reason="valgrind not installed: comparison skipped")


def body(log: str) -> list[str]:
    """The log's lines without the preamble (it names the tool), pids and addresses."""
    lines = [HEX.sub("0x…", REPLACEMENT.sub("(in gdb-memleak)", PREFIX.sub("", line))) for line in log.splitlines()
             if not STACK_FRAME_LINE.match(PREFIX.sub("", line))]
    start = next((i + 2 for i, line in enumerate(lines) if line.startswith("Parent PID:")), 0)
    return lines[start:]


@pytest.mark.valgrind
@needs_valgrind
@pytest.mark.parametrize(("target", "quiet"), [("seed_demo", False), ("leak_sites", False),
                                               ("invalid_free_where", True)])
@pytest.mark.usefixtures("built_targets")
def test_log_file_is_valgrinds_log_line_for_line(target: str, quiet: bool, tmp_path: Path):
    program = str(TARGETS / "bin" / target)
    common = [*CTEST, *(["-q"] if quiet else []), "--run-libc-freeres=no", "--run-cxx-freeres=no"]
    valgrind.run([*common, f"--log-file={tmp_path}/theirs.%p.log", program])
    run = run_cli([*common, "--no-default-suppressions", f"--log-file={tmp_path}/ours.%p.log", program], tmp_path)
    ours, theirs = (list(tmp_path.glob(f"{who}.*.log")) for who in ("ours", "theirs"))
    assert len(ours) == 1 and ours[0].name == f"ours.{run.report['processes'][0]['pid']}.log", run.stderr
    assert body(ours[0].read_text()) == body(theirs[0].read_text())
    assert "note: valgrind options that change nothing here, ignored: --run-libc-freeres=no --run-cxx-freeres=no" \
        in run.stderr


@pytest.mark.usefixtures("built_targets")
def test_unknown_option_is_one_error_and_nothing_runs(tmp_path: Path):
    run = run_cli(["--leak-chek=full", str(TARGETS / "bin" / "seed_demo")], tmp_path)
    assert run.returncode == 2 and run.report is None
    assert run.stderr.strip().splitlines() == ["gdb-memleak: error: unknown option --leak-chek=full (neither "
                                               "gdb-memleak's, see --help, nor one of valgrind's it accepts)"]
