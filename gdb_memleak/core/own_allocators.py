"""Which allocator functions an executable defines itself (its own malloc and free, an allocator linked into it,
its own `operator new`).

The dynamic linker looks a symbol up in the executable first, so the program's calls to these functions (and
libc's own calls to them) never reach a preloaded library: the recorder would see none of them, or only the
calls to the functions the executable does not define, which pair with blocks it never saw. valgrind replaces
them in the executable too (its soname "NONE"). Those programs are tracked by the breakpoint engine, which
hooks the definitions the process really calls wherever they are (gdb/resolve.py).
"""

from __future__ import annotations

import functools
import os

from .allocators import DEFAULT_ALLOCATORS, AllocatorSpec
from .elf import cached_elf_symbols

#: families whose functions are C++ operators: named "operator new[]" rather than by their mangled name
CXX_FAMILIES = frozenset({"new", "new[]"})


def _name(spec: AllocatorSpec) -> str:
    """`malloc`, or `operator new[]` for every variant of that operator (nothrow, aligned, sized)."""
    if spec.family not in CXX_FAMILIES:
        return spec.display
    return "operator " + spec.display.split("(")[0]


@functools.lru_cache(maxsize=16)
def _defined(path: str, mtime: float) -> tuple[str, ...]:
    symbols = cached_elf_symbols(path, mtime)
    if symbols is None:
        return ()
    names: list[str] = []
    for spec in DEFAULT_ALLOCATORS:
        if symbols.function(spec.name) is not None and _name(spec) not in names:
            names.append(_name(spec))
    return tuple(names)


def defined_allocators(path: str) -> tuple[str, ...]:
    """The allocator functions `path` defines itself, each named once, in the order of the allocator table."""
    try:
        mtime = os.path.getmtime(path)
    except OSError:
        return ()
    return _defined(path, mtime)


#: defined only where libstdc++ itself is linked into the executable (`-static-libstdc++`: GCC's own cc1, cc1plus)
LIBSTDCXX_MARK = "__cxa_allocate_exception"


def _carries_libstdcxx(path: str, mtime: float) -> bool:
    symbols = cached_elf_symbols(path, mtime)
    return symbols is not None and symbols.function(LIBSTDCXX_MARK) is not None


def only_libstdcxx_operators(path: str, names: tuple[str, ...]) -> bool:
    """Whether the allocator functions `path` defines are only C++ operators, and those are libstdc++'s own linked
    into it: they take every block from malloc and give it back to free, which the recorder sees (as malloc and free:
    a release by the wrong family is then not told apart)."""
    if not names or not all(name.startswith("operator ") for name in names):
        return False
    try:
        return _carries_libstdcxx(path, os.path.getmtime(path))
    except OSError:
        return False


def describe(names: tuple[str, ...], most: int = 4) -> str:
    """`malloc and free`; `malloc, calloc, realloc, free and 6 more`."""
    if len(names) <= 1:
        return "".join(names)
    if len(names) <= most:
        return f"{', '.join(names[:-1])} and {names[-1]}"
    return f"{', '.join(names[:most])} and {len(names) - most} more"
