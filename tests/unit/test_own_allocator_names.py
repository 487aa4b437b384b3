"""The names the engine line gives for the allocator functions a program defines itself."""

from __future__ import annotations

from gdb_memleak.core.allocators import by_name
from gdb_memleak.core.own_allocators import _name, describe


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
