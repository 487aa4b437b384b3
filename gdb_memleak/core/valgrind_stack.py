"""A recorded stack as valgrind sees it: what suppression files written for valgrind are matched against.

valgrind's stacks start inside its own replacement of the allocator (`malloc`, `_Znwm`, `free`, ...), in its
preload object; ours start at the allocator's caller, so the allocator's frame is put back first. Each frame is
named as valgrind names it: by the object's ELF symbols (mangled C++ names, glibc's public aliases: elf_names.py);
an inlined call by its bare DWARF name (`resize`, not `std::vector<int>::resize(unsigned long)`); a frame no symbol
covers as `???`. Objects are their real paths (`/usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30`), as the kernel
names what was mapped. The stack is cut as valgrind's --num-callers cuts it (12 addresses by default, the
allocator's among them), inlined calls at an address adding entries but not addresses.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cached_property

from .allocators import DEFAULT_ALLOCATORS
from .elf_names import function_table
from .model import Frame
from .procmaps import real_path
from .symbols import OFFSET_NAME, RAW_ADDRESS, UNNAMED

UNKNOWN = "???"
# Below a thread's start_thread valgrind has the frame of the call that made the thread: `clone` (valgrind 3.19
# does not run clone3, so glibc falls back to clone)
THREAD_ROOT = ("clone", "clone3")
DEFAULT_NUM_CALLERS = 12
VALGRIND_PRELOAD = "/usr/libexec/valgrind/vgpreload_memcheck-amd64-linux.so"

# The function each allocator's frame has in valgrind's stacks (the mangled name for C++ operators, which valgrind
# replaces under that name). valgrind 3.19 names some replacements by an alias: aligned_alloc and valloc show as
# memalign, posix_memalign as memalign called by posix_memalign, reallocarray as realloc (malloc for a NULL
# pointer). Later names (newer valgrind, the call's own name) are accepted as well: a frame matches a `fun:`
# line when any of its names does; suppressions generated here use the first.
_SPECIAL: dict[str, tuple[tuple[str, ...], ...]] = {
    "aligned_alloc": (("memalign", "aligned_alloc"),),
    "valloc": (("memalign", "valloc"),),
    "posix_memalign": (("memalign", "posix_memalign"), ("posix_memalign",)),
    "reallocarray": (("realloc", "malloc", "reallocarray"),),
}
ALLOCATOR_FRAMES: dict[str, tuple[tuple[str, ...], ...]] = {
    **{spec.display: ((spec.name,),) for spec in DEFAULT_ALLOCATORS}, **_SPECIAL}

_IDENTIFIER = re.compile(r"^[A-Za-z_.$@][\w.$@]*$")
_TEMPLATE_ARGUMENTS = re.compile(r"<.*>")
_QUALIFIERS = re.compile(r"(\s+(const|volatile|&&?|noexcept))+$")  # a method's, after its parameters


@dataclass(frozen=True)
class VgFrame:
    """One entry of a stack as valgrind has it: the function's names (the first is what valgrind prints), the
    object's real path, the source file's base name and line (None when unknown)."""

    names: tuple[str, ...]
    obj: str
    file: str | None = None
    line: int | None = None
    exact: bool = True  # the name is valgrind's (ELF symbol, inlined DWARF name), not a guess from GDB's

    @property
    def fun(self) -> str:
        return self.names[0]


def inlined_name(function: str) -> str:
    """An inlined call's DWARF name from GDB's qualified one: no parameters, no enclosing scopes."""
    name = _QUALIFIERS.sub("", function)
    if name.endswith(")"):  # drop the parameter list, matching its parentheses from the end
        depth = 0
        for i in range(len(name) - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(name[i], 0)
            if depth == 0:
                name = name[:i]
                break
    depth, cut = 0, 0
    for i, char in enumerate(name):
        depth += {"<": 1, ">": -1, "(": 1, ")": -1}.get(char, 0)
        if depth == 0 and name.startswith("::", i):
            cut = i + 2
    return name[cut:] or function


def _gdb_name(frame: Frame) -> tuple[str, bool]:
    """(name, exact) from GDB's name when the object's symbols cannot be read: a minimal symbol without its
    offset, `???` for an address or an object offset, else GDB's (demangled) name, which is valgrind's for C."""
    name = frame.function or ""
    if name in UNNAMED or RAW_ADDRESS.match(name):
        return UNKNOWN, True
    offset = OFFSET_NAME.match(name)
    if offset and offset.group("name") == os.path.basename(frame.object or ""):
        return UNKNOWN, True
    name = offset.group("name") if offset else name
    return name, bool(_IDENTIFIER.match(name))


def frame_names(frame: Frame) -> tuple[tuple[str, ...], bool]:
    """(valgrind's names for `frame`, whether the first is surely valgrind's). An inlined template's DWARF name
    may list its arguments (`make_unique<Foo, int>`) or not (`basic_string<>`, GCC's name for a constructor
    template): both are its names, and neither is sure."""
    if frame.inline:
        name = inlined_name(frame.function)
        if "<" not in name:
            return (name,), True
        return (name, _TEMPLATE_ARGUMENTS.sub("<>", name)), False
    if frame.address is not None and frame.object not in ("", "??"):
        table = function_table(frame.object)
        if table is not None:
            return (table.name_at(frame.address) or UNKNOWN,), True
    name, exact = _gdb_name(frame)
    return (name,), exact


def _object(frame: Frame) -> str:
    return real_path(frame.object) if frame.object and frame.object != "??" else UNKNOWN


def valgrind_stack(frames: list[Frame], allocator: str | None,
                   num_callers: int = DEFAULT_NUM_CALLERS) -> list[VgFrame]:
    """The stack valgrind would record for a block allocated (or a release made) by `allocator` from `frames`
    (innermost first, starting at the allocator's caller), cut at `num_callers` addresses."""
    stack = [VgFrame(names, VALGRIND_PRELOAD) for names in ALLOCATOR_FRAMES.get(allocator or "", ())]
    addresses = len(stack)
    for frame in frames:  # each address: its inlined calls, then the function they are in (not inline)
        if addresses >= num_callers:
            return stack
        names, exact = frame_names(frame)
        stack.append(VgFrame(names, _object(frame), os.path.basename(frame.file) if frame.file else None,
                             frame.line, exact))
        addresses += not frame.inline
    if addresses < num_callers and stack and stack[-1].fun == "start_thread":  # our stacks end at a thread's entry
        stack.append(VgFrame(THREAD_ROOT, stack[-1].obj))
    return stack


class StackView:
    """A recorded stack (innermost first, from the allocator's caller) and the allocator or release it reached:
    what every kind of suppression is matched against. valgrind's view of it is made once, when first needed."""

    def __init__(self, frames: list[Frame], allocator: str | None = None,
                 num_callers: int = DEFAULT_NUM_CALLERS) -> None:
        self.frames = frames
        self.allocator = allocator
        self.num_callers = num_callers

    @cached_property
    def valgrind(self) -> list[VgFrame]:
        return valgrind_stack(self.frames, self.allocator, self.num_callers)
