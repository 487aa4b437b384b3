"""The program under the batch CLI starts with the caller's signal state: every disposition (ignored or default) and
the signal mask, as natively (issue 16 item 2). Python ignores SIGPIPE and SIGXFSZ at start-up and exec keeps
ignored signals ignored, so neither the CLI nor the exec shim (both Python) may pass theirs on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import ROOT

PROGRAM = ROOT / "c_targets" / "bin" / "signal_state"
CLI = [sys.executable, "-m", "gdb_memleak.cli.main"]


def _as_a_shell_starts_it() -> None:
    """Nothing changed: a command started by a shell (Python's subprocess resets SIGPIPE/SIGXFSZ for the child)."""


def _ignoring_and_blocking() -> None:
    """A caller that ignores some signals (as `nohup` or a background job does) and blocks others."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2, signal.SIGWINCH, signal.SIGRTMIN + 3})
    for signum in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGALRM):
        signal.signal(signum, signal.SIG_IGN)


def signal_lines(command: list[str], caller: Callable[[], None]) -> list[str]:
    proc = subprocess.run(command, preexec_fn=caller, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return sorted(line for line in proc.stdout.splitlines() if line.startswith("Sig"))


@pytest.mark.parametrize("caller", [_as_a_shell_starts_it, _ignoring_and_blocking], ids=["default", "ign_blk"])
def test_program_gets_the_callers_dispositions_and_mask(built_targets: Path, engine: str,
                                                        caller: Callable[[], None]):
    native = signal_lines([str(PROGRAM)], caller)
    assert len(native) == 3
    assert signal_lines([*CLI, "--engine", engine, "--", str(PROGRAM)], caller) == native


def test_a_closed_pipe_kills_the_writer_as_natively(built_targets: Path, engine: str):
    """`yes | head -1`: natively yes dies of SIGPIPE, silently, leaking nothing it would report."""
    script = "yes | head -1; echo \"status ${PIPESTATUS[0]}\""
    native = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert native.stdout == f"y\nstatus {128 + signal.SIGPIPE}\n"
    under = subprocess.run([*CLI, "--engine", engine, "--error-exitcode", "0", "--", "bash", "-c", script],
                           capture_output=True, text=True, cwd=ROOT, timeout=300, env=dict(os.environ))
    assert under.stdout == native.stdout, under.stderr
    assert "Broken pipe" not in under.stderr
    assert "killed by SIGPIPE" in under.stderr
    assert "definitely lost: 0 bytes" in under.stderr and "definitely lost: 8," not in under.stderr
