"""An exec'd image is reported with the argv it was given, not with its file name alone (issue 16, item 10)."""

from __future__ import annotations

from pathlib import Path

from conftest import run_cli


def test_each_exec_image_has_its_own_argv(tmp_path: Path, engine: str):
    """dash vforks and execs each command: the same program twice with different arguments gives two processes,
    each listed with its own argv (read at the exec), beside the shell's."""
    script = "/usr/bin/true one; /usr/bin/true two 'three four'; exit 0"
    run = run_cli(["--engine", engine, "/bin/sh", "-c", script], tmp_path)
    assert run.report is not None, run.stderr
    argvs = sorted(p["argv"] for p in run.report["processes"])
    assert argvs == [["/bin/sh", "-c", script], ["/usr/bin/true", "one"],
                     ["/usr/bin/true", "two", "three four"]], run.stderr
    assert run.returncode == 0, run.stderr
