"""/proc/PID/maps parsing, load bias and executable-range membership."""

from __future__ import annotations

import os

import pytest

from gdb_memleak.core.elf import ET_DYN, ET_EXEC
from gdb_memleak.core.procmaps import CodeRanges, Mapping, load_bias, parse_maps

APP = "/home/user/build/app with space"
LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"

SAMPLE = f"""\
555555554000-555555555000 r--p 00000000 08:01 1048600                    {APP}
555555555000-555555556000 r-xp 00001000 08:01 1048600                    {APP}
555555556000-555555557000 r--p 00002000 08:01 1048600                    {APP}
555555558000-555555559000 rw-p 00003000 08:01 1048600                    {APP}
555555559000-55555557a000 rw-p 00000000 00:00 0                          [heap]
7ffff7d80000-7ffff7da8000 r--p 00000000 08:01 2097300                    {LIBC}
7ffff7da8000-7ffff7f3d000 r-xp 00028000 08:01 2097300                    {LIBC}
7ffff7f3d000-7ffff7f95000 r--p 001bd000 08:01 2097300                    {LIBC}
7ffff7f95000-7ffff7f9b000 rw-p 00000000 00:00 0
7ffff7fc5000-7ffff7fc7000 r-xp 00000000 00:00 0                          [vdso]
7ffffffde000-7ffffffff000 rw-p 00000000 00:00 0                          [stack]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
"""


@pytest.fixture
def maps():
    return parse_maps(SAMPLE)


def test_parse_maps_reads_every_line(maps):
    assert len(maps) == 12
    assert maps[0] == Mapping(0x555555554000, 0x555555555000, "r--p", 0, APP)
    assert maps[6] == Mapping(0x7FFFF7DA8000, 0x7FFFF7F3D000, "r-xp", 0x28000, LIBC)


def test_parse_maps_keeps_paths_with_spaces_and_pseudo_paths(maps):
    assert maps[1].path == APP
    assert [m.path for m in maps if m.path.startswith("[")] == ["[heap]", "[vdso]", "[stack]", "[vsyscall]"]


def test_parse_maps_gives_anonymous_mapping_empty_path(maps):
    anonymous = maps[8]
    assert (anonymous.start, anonymous.perms, anonymous.path) == (0x7FFFF7F95000, "rw-p", "")


def test_parse_maps_skips_blank_and_short_lines():
    text = "\n   \n555555554000-555555555000 r--p\n" + SAMPLE.splitlines()[4] + "\n"
    assert [m.path for m in parse_maps(text)] == ["[heap]"]


def test_mapping_executable_follows_x_permission(maps):
    assert [m.executable for m in maps[:4]] == [False, True, False, False]


def test_load_bias_of_shared_object_is_lowest_start_minus_offset(maps):
    assert load_bias(maps, LIBC, ET_DYN, 0) == 0x7FFFF7D80000
    assert load_bias(maps, APP, ET_DYN, 0) == 0x555555554000


def test_load_bias_subtracts_min_vaddr_of_prelinked_object():
    maps = parse_maps("7f0000010000-7f0000020000 r-xp 00000000 08:01 1  /opt/lib/libpre.so\n")
    assert load_bias(maps, "/opt/lib/libpre.so", ET_DYN, 0x10000) == 0x7F0000000000


def test_load_bias_uses_min_over_segments_not_first_line():
    text = ("7f0000002000-7f0000003000 r-xp 00002000 08:01 1  /opt/lib/libx.so\n"
            "7f0000000000-7f0000001000 r--p 00000000 08:01 1  /opt/lib/libx.so\n")
    assert load_bias(parse_maps(text), "/opt/lib/libx.so", ET_DYN, 0) == 0x7F0000000000


def test_load_bias_of_fixed_address_executable_is_zero():
    maps = parse_maps("00400000-00401000 r-xp 00000000 08:01 1  /opt/bin/static\n")
    assert load_bias(maps, "/opt/bin/static", ET_EXEC, 0x400000) == 0


def test_load_bias_is_none_when_object_not_mapped(maps):
    assert load_bias(maps, "/usr/lib/x86_64-linux-gnu/libm.so.6", ET_DYN, 0) is None
    assert load_bias(maps, "/opt/bin/static", ET_EXEC, 0x400000) is None


def test_load_bias_matches_symlinked_path(tmp_path):
    real = tmp_path / "libreal.so"
    real.write_bytes(b"")
    link = tmp_path / "liblink.so"
    os.symlink(real, link)
    maps = parse_maps(f"7f0000000000-7f0000001000 r-xp 00000000 08:01 1  {real}\n")
    assert load_bias(maps, str(link), ET_DYN, 0) == 0x7F0000000000


@pytest.mark.parametrize("address, inside", [
    (0x555555555000, True),    # first byte of the app's text
    (0x555555555FFF, True),    # last byte
    (0x555555556000, False),   # end is exclusive
    (0x555555554FFF, False),   # just below, in the read-only segment
    (0x555555559000, False),   # [heap] is not code
    (0x7FFFF7DA8000, True),
    (0x7FFFF7F3CFFF, True),
    (0x7FFFF7FC5000, True),    # [vdso]
    (0xFFFFFFFFFF600000, True),  # [vsyscall] (--xp)
    (0, False),                # below every range
    (0xFFFFFFFFFFFFFFFF, False),
])
def test_code_ranges_membership_edges(maps, address, inside):
    assert (address in CodeRanges(maps)) is inside


def test_code_ranges_of_no_maps_contain_nothing():
    assert 0x401000 not in CodeRanges([])
