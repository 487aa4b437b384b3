"""The names the engine line gives for the allocator functions a program defines itself."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from gdb_memleak.core.allocators import by_name
from gdb_memleak.core.own_allocators import _name, defined_allocators, describe, only_libstdcxx_operators


def test_the_functions_are_listed_in_words_and_a_long_list_is_cut():
    assert describe(("malloc",)) == "malloc"
    assert describe(("malloc", "free")) == "malloc and free"
    assert describe(("malloc", "calloc", "realloc", "free", "posix_memalign", "operator new")) == \
        "malloc, calloc, realloc, free and 2 more"


def test_every_variant_of_a_cxx_operator_is_named_once_by_the_operator():
    specs = by_name()
    assert _name(specs["_Znam"]) == _name(specs["_ZnamRKSt9nothrow_t"]) == "operator new[]"
    assert _name(specs["_ZdlPvm"]) == "operator delete"
    assert _name(specs["malloc"]) == "malloc"


def test_gccs_cc1_carries_libstdcxx_and_keeps_the_recorder_a_program_with_its_own_operators_does_not(
        built_targets: Path):
    """cc1 links libstdc++ in (its operator new calls malloc: the recorder sees every block); cpp_own_new's operators
    are the program's own (the breakpoint engine hooks them, as valgrind replaces them)."""
    gcc = shutil.which("gcc")
    assert gcc is not None
    cc1 = subprocess.run([gcc, "-print-prog-name=cc1"], capture_output=True, text=True, check=True).stdout.strip()
    assert only_libstdcxx_operators(cc1, defined_allocators(cc1))
    own_new = str(built_targets / "cpp_own_new")
    assert defined_allocators(own_new) and not only_libstdcxx_operators(own_new, defined_allocators(own_new))
    own_malloc = str(built_targets / "own_malloc")
    assert not only_libstdcxx_operators(own_malloc, defined_allocators(own_malloc))
