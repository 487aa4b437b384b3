"""Inflated copies of compressed debug files (cli/debug_cache.py): which files qualify, and that a copy holds the
same sections, uncompressed, at the build-id path GDB looks up."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from gdb_memleak.cli import debug_cache

needs_tools = pytest.mark.skipif(not (shutil.which("gcc") and shutil.which("objcopy")),
                                 reason="gcc and objcopy are needed")
BUILD_ID = "0123456789abcdef0123456789abcdef01234567"


def compiled(tmp_path: Path, *flags: str) -> Path:
    source = tmp_path / "unit.c"
    source.write_text("int answer(int x) { return x * 42; }\n")
    out = tmp_path / f"unit{len(flags)}.o"
    subprocess.run(["gcc", "-g", "-c", *flags, "-o", str(out), str(source)], check=True)
    return out


def sections(path: Path) -> dict[str, str]:
    """Section name -> flags as readelf prints them."""
    text = subprocess.run(["readelf", "-S", "-W", str(path)], capture_output=True, text=True, check=True).stdout
    found = {}
    for line in text.splitlines():
        parts = line.replace("[ ", "[").split()
        if parts and parts[0].startswith("[") and parts[0] != "[Nr]" and len(parts) > 7:
            found[parts[1]] = parts[7] if not parts[7].isdigit() else ""
    return found


@needs_tools
def test_compressed_debug_file_is_kept_inflated_at_its_build_id_path(tmp_path: Path):
    packed = compiled(tmp_path, "-gz=zlib")
    assert debug_cache.inflated_size(str(packed)) > 0
    cache = tmp_path / "cache"
    assert debug_cache.store(str(packed), BUILD_ID, str(cache))
    copy = Path(debug_cache.entry(str(cache), BUILD_ID))
    assert copy == cache / ".build-id" / "01" / f"{BUILD_ID[2:]}.debug"
    assert debug_cache.inflated_size(str(copy)) == 0
    before, after = sections(packed), sections(copy)
    assert before.keys() == after.keys()
    assert any("C" in flags for flags in before.values()) and not any("C" in flags for flags in after.values())
    assert not list(copy.parent.glob("*.partial"))
    assert not debug_cache.store(str(packed), BUILD_ID, str(cache))  # once per build-id
    assert not debug_cache.store(str(copy), "ff" + BUILD_ID[2:], str(cache))  # never a copy of a copy


@needs_tools
def test_uncompressed_or_non_elf_files_are_left_alone(tmp_path: Path):
    plain = compiled(tmp_path)
    text = tmp_path / "notes.txt"
    text.write_text("not an object file\n")
    assert debug_cache.inflated_size(str(plain)) == 0
    assert debug_cache.inflated_size(str(text)) is None
    assert debug_cache.inflated_size(str(tmp_path / "missing")) is None
    cache = tmp_path / "cache"
    assert not debug_cache.store(str(plain), BUILD_ID, str(cache))
    assert not debug_cache.store(str(text), BUILD_ID, str(cache))
    assert not (cache / ".build-id").exists()
