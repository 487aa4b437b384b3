"""valgrind's function names from ELF symbol tables: its choice among aliases, nested and overlapping ranges,
symbols found in a separate debug file, C++ names kept mangled; checked on objects compiled here and on libc."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from gdb_memleak.core.elf_names import FunctionTable, function_table, preference, read_function_table

LIBC = "/lib/x86_64-linux-gnu/libc.so.6"

needs_compilers = pytest.mark.skipif(not (shutil.which("gcc") and shutil.which("g++") and shutil.which("objcopy")),
                                     reason="gcc, g++ and objcopy are needed")

SOURCE = r"""
int visible(int x) { return x * 3; }
int __internal_visible(int x) __attribute__((alias("visible")));
int vis(int x) __attribute__((weak, alias("visible")));
static __attribute__((noinline)) int hidden_helper(int x) { return x + 1; }
int main(int argc, char **argv) { (void)argv; return hidden_helper(visible(argc)); }
"""

CXX_SOURCE = r"""
namespace shapes { struct Box { __attribute__((noinline)) int area(int w) const { return w * w; } }; }
static __attribute__((noinline)) int leak_holder(int n) { return shapes::Box().area(n); }
int main(int argc, char **) { return leak_holder(argc); }
"""


def symbols(path: Path) -> dict[str, int]:
    """name -> value of the defined functions, as `nm` lists them."""
    found = {}
    for line in subprocess.run(["nm", "--defined-only", str(path)], capture_output=True, text=True,
                               check=True).stdout.splitlines():
        value, kind, name = line.split()
        if kind in "tTwW":
            found[name] = int(value, 16)
    return found


@pytest.fixture
def program(tmp_path: Path) -> Path:
    source = tmp_path / "prog.c"
    source.write_text(SOURCE)
    subprocess.run(["gcc", "-g", "-O0", "-o", str(tmp_path / "prog"), str(source)], check=True)
    return tmp_path / "prog"


def test_the_shortest_alias_is_shown_and_versioned_names_win_ties():
    def best(*names):
        return min(names, key=preference)
    assert best("__GI___strdup", "__strdup", "strdup") == "strdup"
    assert best("dlopen", "dlopen@GLIBC_2.2.5", "dlopen@@GLIBC_2.34", "___dlopen") == "dlopen@@GLIBC_2.34"
    assert best("memcmp", "bcmp") == "bcmp"  # valgrind's FAQ: shorter wins, even when it misdescribes
    assert best("foo@V1", "foobar") == "foo@V1"  # the length is counted up to the version
    assert best("zeta", "alfa") == "alfa"


def test_overlapping_ranges_are_cut_as_valgrind_cuts_them():
    table = FunctionTable((0x100, 0x100, 0x180), ((0x100, 0x40, "short"), (0x100, 0x100, "long"), (0x180, 8, "in")))
    assert table.name_at(0x100) == "short"  # two starting together: the shorter keeps the start
    assert table.name_at(0x150) == "long"   # then the longer
    assert table.name_at(0x184) == "in"
    assert table.name_at(0x190) is None     # the longer one ended where `in` started
    assert table.name_at(0xFF) is None


@needs_compilers
def test_aliases_of_a_function_are_shown_by_the_shortest_name(program: Path):
    table = read_function_table(str(program))
    found = symbols(program)
    assert table.name_at(found["visible"] + 3) == "vis"
    assert table.name_at(found["hidden_helper"]) == "hidden_helper"  # local symbols count too
    assert table.name_at(found["main"] + 1) == "main"


@needs_compilers
def test_symbols_of_a_stripped_object_come_from_its_debug_file(program: Path, tmp_path: Path):
    found = symbols(program)
    debug = tmp_path / "prog.debug"
    subprocess.run(["objcopy", "--only-keep-debug", str(program), str(debug)], check=True)
    subprocess.run(["objcopy", "--strip-all", f"--add-gnu-debuglink={debug}", str(program)], check=True,
                   cwd=tmp_path)
    assert "hidden_helper" not in subprocess.run(["nm", "-D", str(program)], capture_output=True, text=True).stdout
    assert read_function_table(str(program)).name_at(found["hidden_helper"] + 2) == "hidden_helper"
    os.unlink(debug)
    assert read_function_table(str(program)).name_at(found["hidden_helper"] + 2) is None  # valgrind: ???


@needs_compilers
def test_cxx_names_stay_mangled(tmp_path: Path):
    source = tmp_path / "prog.cpp"
    source.write_text(CXX_SOURCE)
    subprocess.run(["g++", "-g", "-O0", "-o", str(tmp_path / "prog"), str(source)], check=True)
    found = symbols(tmp_path / "prog")
    table = function_table(str(tmp_path / "prog"))
    assert table is not None
    assert table.name_at(found["_ZL11leak_holderi"] + 4) == "_ZL11leak_holderi"
    assert table.name_at(found["_ZNK6shapes3Box4areaEi"]) == "_ZNK6shapes3Box4areaEi"


def test_an_unreadable_or_non_elf_file_has_no_table(tmp_path: Path):
    text = tmp_path / "notes.txt"
    text.write_text("not an object")
    assert function_table(str(text)) is None
    assert function_table(str(tmp_path / "missing.so")) is None


@pytest.mark.skipif(not os.path.exists(LIBC), reason=f"{LIBC} not present")
def test_libc_functions_have_the_names_valgrind_prints():
    """valgrind 3.19 on Debian 12 prints `strdup`, `asprintf` and (with libc6-dbg) `dlopen@@GLIBC_2.34` where GDB
    names `__GI___strdup`, `___asprintf` and `___dlopen`."""
    table = function_table(LIBC)
    dynamic = {}
    for line in subprocess.run(["nm", "-D", "--defined-only", LIBC], capture_output=True, text=True,
                               check=True).stdout.splitlines():
        value, _kind, name = line.split()
        dynamic[name.split("@")[0]] = int(value, 16)
    assert table is not None
    assert table.name_at(dynamic["strdup"] + 4) == "strdup"
    assert table.name_at(dynamic["asprintf"] + 4) == "asprintf"
    assert table.name_at(dynamic["dlopen"] + 4) in ("dlopen", "dlopen@@GLIBC_2.34")  # the latter with libc6-dbg
