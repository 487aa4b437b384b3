"""The recorder's attach mode without GDB (issue 18): a threaded program dlopen()s the built recorder
(RTLD_NOW | RTLD_LOCAL) while its threads allocate, calls memleak_agent_attach, and checks through the
`memleak_agent` anchor and layout.h that every call after the attach is counted once (threads paused between two
reads), that adopted blocks are ordinary live blocks, that a library dlopen()ed after the attach is recorded, that
detach gives the GOT slots back and leaves no descriptor, and that a second attach works from an empty table;
and (attach_inside.c) that a call still inside the recorder at the detach keeps the region it writes to."""

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
    for program in ("attach_host", "attach_inside"):
        subprocess.run(["gcc", "-g", "-O0", "-pthread", "-Wl,-z,relro,-z,now", "-I", str(build.SOURCE.parent),
                        "-o", str(out / program), str(PROGRAMS / f"{program}.c"), str(out / "attach_cxx.o"),
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


def test_a_call_inside_the_recorder_keeps_its_region_until_it_leaves(host: tuple[Path, Path, Path]) -> None:
    """A thread still inside a hook at the detach (here parked in operator new's new_handler) ran on in the region:
    the next attach unmapped it and mapped a new one under that thread (SIGSEGV in the program, ~1 run in 60 of
    attach_host). Now the region stays while the call is inside, an attach meanwhile is refused (the anchor says
    why), and once the call left (through std::bad_alloc) the next attach records and its detach unmaps at once."""
    program, library, _ = host
    proc = subprocess.run([str(program.parent / "attach_inside"), str(library)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0 and proc.stdout.splitlines()[-1] == "ALL OK", proc.stdout + proc.stderr
