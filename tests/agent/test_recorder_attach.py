"""The recorder's attach mode without GDB (issue 18): a threaded program dlopen()s the built recorder
(RTLD_NOW | RTLD_LOCAL) while its threads allocate, calls memleak_agent_attach, and checks through the
`memleak_agent` anchor and layout.h that every call after the attach is counted once (threads paused between two
reads), that adopted blocks are ordinary live blocks, that a library dlopen()ed after the attach is recorded, that
detach gives the GOT slots back and leaves no descriptor, and that a second attach works from an empty table."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gdb_memleak.agent import build

PROGRAMS = Path(__file__).resolve().parent / "attach_programs"  # not programs/: each .c there is a whole program


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    out = tmp_path_factory.mktemp("attach-programs")
    library = build.ensure_built(root=out / "cache")
    subprocess.run(["gcc", "-g", "-O0", "-shared", "-fPIC", "-o", str(out / "libattach_plugin.so"),
                    str(PROGRAMS / "attach_plugin.c")], check=True)
    subprocess.run(["g++", "-g", "-O0", "-c", "-fPIC", "-o", str(out / "attach_cxx.o"),
                    str(PROGRAMS / "attach_cxx.cc")], check=True)
    # full RELRO: the executable's GOT slots are read-only pages the attach must make writable and protect again
    subprocess.run(["gcc", "-g", "-O0", "-pthread", "-Wl,-z,relro,-z,now", "-I", str(build.SOURCE.parent),
                    "-o", str(out / "attach_host"), str(PROGRAMS / "attach_host.c"), str(out / "attach_cxx.o"),
                    "-lstdc++", "-ldl"], check=True)
    return out / "attach_host", library, out / "libattach_plugin.so"


@pytest.mark.parametrize("run", range(3))
def test_attach_counts_every_call_once_adopts_redirects_dlopen_and_detaches(
        host: tuple[Path, Path, Path], run: int) -> None:
    program, library, plugin = host
    proc = subprocess.run([str(program), str(library), str(plugin)], capture_output=True, text=True, timeout=120,
                          check=False)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0 and lines[-1] == "ALL OK", proc.stdout + proc.stderr
    assert sum(line.startswith("ok attached,") for line in lines) == 2  # attached twice
    assert not any(line.startswith("FAIL") for line in lines)
