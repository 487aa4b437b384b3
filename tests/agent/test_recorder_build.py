"""Building the recorder (gdb_memleak/agent/build.py) as users' set-ups ask for it (issue 16 item 15): CC as a
shell would use it (a command with flags, a wrapper such as ccache), and a library whose debug info names the
source of the install that built it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from gdb_memleak.agent import build


def _wrapper(tmp_path: Path) -> Path:
    """A compiler wrapper as ccache is one: it runs the command it is given."""
    wrapper = tmp_path / "fakecache"
    wrapper.write_text('#!/bin/sh\nexec "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


@pytest.mark.parametrize("cc", ["gcc -O2", "WRAPPER gcc"], ids=["with_flags", "wrapper"])
def test_cc_with_words_builds_the_recorder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cc: str) -> None:
    monkeypatch.setenv("CC", cc.replace("WRAPPER", str(_wrapper(tmp_path))))
    library = build.ensure_built(root=tmp_path / "cache")
    assert library.is_file() and library.name == build.LIBRARY_NAME


def test_cc_flags_are_part_of_the_cache_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", "gcc -O0")
    plain = build.library_path(root=tmp_path)
    monkeypatch.setenv("CC", "gcc -O2")
    assert build.library_path(root=tmp_path) != plain


def _compile_unit_names(library: Path) -> str:
    return subprocess.run(["readelf", "--debug-dump=info", str(library)], capture_output=True, text=True,
                          check=True).stdout


@pytest.mark.slow
def test_each_install_builds_a_library_naming_its_own_source(tmp_path: Path) -> None:
    """Two installs of the same version (same recorder.c and parts) in other places: each library's debug info
    names its own install's file, so GDB's `bt` and `list` show this install's source, and still work once the other
    install is removed."""
    first, second = tmp_path / "one" / "recorder.c", tmp_path / "two" / "recorder.c"
    for copy in (first, second):
        copy.parent.mkdir()
        for part in build.source_files():
            shutil.copy(part, copy.parent / part.name)
    cache = tmp_path / "cache"
    built_first = build.ensure_built(first, cache)
    shutil.rmtree(first.parent)
    built_second = build.ensure_built(second, cache)
    assert built_second != built_first
    names = _compile_unit_names(built_second)
    assert str(second) in names and str(first) not in names


def test_a_changed_part_is_a_new_build(tmp_path: Path) -> None:
    """recorder.c includes its parts: editing one (layout.h, table.c, ...) must not reuse a library built before."""
    install = tmp_path / "install"
    install.mkdir()
    for part in build.source_files():
        shutil.copy(part, install / part.name)
    before = build.library_path(install / "recorder.c", tmp_path)
    (install / "table.c").write_text((install / "table.c").read_text() + "\n/* changed */\n")
    assert build.library_path(install / "recorder.c", tmp_path) != before
