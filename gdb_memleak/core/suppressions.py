"""Leak suppressions in LeakSanitizer's format: `leak:PATTERN` lines, `#` comments, blank lines.

A leak is suppressed when PATTERN matches the function name, the source file or the object (module) of any frame of
its allocation stack. In PATTERN `*` matches any run of characters; a leading `^` anchors it at the start of the
string and a trailing `$` at the end; without anchors it may match anywhere (a substring), as in LSan. Every other
character is literal: there is no escape character, and `^`/`$` are literal anywhere but at the ends.

(LSan itself treats a `$` in the middle of a pattern as "end of string" and matches each `*`-separated piece at its
first occurrence, so it misses e.g. `a*b$` against "abxb"; here the whole pattern is one regular expression, which
agrees with LSan wherever LSan finds a match.)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Iterator

from .model import Frame
from .symbols import SystemFilter

DEFAULT_SOURCE = "<default>"

# Known one-off allocations that glibc and libstdc++ keep for the whole life of the process and release only in
# __libc_freeres / __gnu_cxx::__freeres, which valgrind calls at exit by default (so valgrind shows none of these
# unless run with --run-libc-freeres=no --run-cxx-freeres=no) and gdb-memleak never calls. Each entry was seen on
# Debian 12 (glibc 2.36, g++ 12) with that valgrind run and with gdb-memleak; the stacks are in the comments.
DEFAULT_SUPPRESSIONS = """\
# gdb-memleak default suppressions (LeakSanitizer format). Disable with --no-default-suppressions.

# libstdc++'s emergency exception-handling pool (eh_alloc.cc), 72,704 bytes malloc'ed once by a static constructor
# of libstdc++.so.6 at load time, in every C++ program:
#   malloc <- libstdc++.so.6+0xa57ba (no symbol: stripped) <- call_init <- _dl_init (ld-linux-x86-64.so.2)
# The libstdc++ frame has no name without its debug symbols, so the loader frame is matched: this also hides
# blocks that other shared libraries' constructors (or ones dlopen runs) allocate and never free.
leak:_dl_init

# stdio stream buffers (BUFSIZ = 4,096 bytes for stdout), allocated on a stream's first read or write and kept
# until the stream is closed; stdout/stderr/stdin are never closed before exit:
#   malloc <- _IO_file_doallocate <- _IO_doallocbuf <- _IO_file_overflow <- ... <- printf/puts/fwrite <- main
# A FILE the program never fclose()s is still reported: its own block comes from fopen, not from here.
leak:_IO_file_doallocate

# Statically linked programs: glibc's start-up allocates its _dl_find_object tables (160 bytes) with the program's
# own malloc; their only pointer lies in RELRO memory that start-up then makes read-only, which the scan (like
# valgrind's) does not take as a root. Dynamically linked programs allocate them before malloc is hooked.
leak:_dl_find_object_init
"""

_RAW_ADDRESS = re.compile(r"^0x[0-9a-fA-F]+$")
_OFFSET_SUFFIX = re.compile(r"^(?P<name>.+)\+0x[0-9a-fA-F]+$")
_UNNAMED = frozenset({"", "??", "<function called from gdb>"})
# Functions that only pass an allocation through: a generated suppression names the caller instead.
_ALLOCATOR_NAMES = re.compile(
    r"^(operator new|operator delete|_Zn[wa]|_Zd[la]|(__libc_)?(malloc|calloc|realloc|reallocarray|memalign|"
    r"aligned_alloc|posix_memalign|valloc|pvalloc|free)\b)")


class SuppressionError(ValueError):
    """A suppression file that cannot be read or has a malformed line; the message starts with `file:line:`."""


@lru_cache(maxsize=None)
def _compile(pattern: str) -> re.Pattern[str]:
    start = pattern.startswith("^")
    body = pattern[1:] if start else pattern
    end = body.endswith("$")
    body = body[:-1] if end else body
    regex = ".*".join(re.escape(piece) for piece in body.split("*"))
    return re.compile(("^" if start else "") + regex + ("$" if end else ""), re.DOTALL)


@dataclass(frozen=True)
class Suppression:
    pattern: str
    source: str = DEFAULT_SOURCE
    line: int = 0

    def matches_text(self, text: str | None) -> bool:
        """LSan never matches an empty or missing name."""
        return bool(text) and _compile(self.pattern).search(text) is not None

    def matches(self, frame: Frame) -> bool:
        return (self.matches_text(frame.function) or self.matches_text(frame.file)
                or self.matches_text(frame.object))

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"

    def __str__(self) -> str:
        return f"leak:{self.pattern}"


class SuppressionList:
    """Suppressions in the order given (first match wins, so a report can say which line hid a leak)."""

    def __init__(self, suppressions: Iterable[Suppression] = ()) -> None:
        self._items: list[Suppression] = list(suppressions)

    @classmethod
    def parse(cls, text: str, source: str) -> SuppressionList:
        items = []
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            kind, colon, pattern = line.partition(":")
            if not colon or not kind or not re.fullmatch(r"[A-Za-z_]+", kind):
                raise SuppressionError(f"{source}:{number}: expected 'leak:PATTERN', got {line!r}")
            if kind != "leak":
                raise SuppressionError(f"{source}:{number}: unsupported suppression type {kind!r} "
                                       f"(only 'leak:' is supported): {line!r}")
            pattern = pattern.strip()
            if not pattern:
                raise SuppressionError(f"{source}:{number}: empty pattern after 'leak:'")
            items.append(Suppression(pattern, source, number))
        return cls(items)

    @classmethod
    def load(cls, path: str) -> SuppressionList:
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise SuppressionError(f"{path}: cannot read: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise SuppressionError(f"{path}: cannot read: not UTF-8 text (byte {exc.start})") from None
        return cls.parse(text, path)

    @classmethod
    def default(cls) -> SuppressionList:
        return cls.parse(DEFAULT_SUPPRESSIONS, DEFAULT_SOURCE)

    def extend(self, other: Iterable[Suppression]) -> None:
        self._items.extend(other)

    def match(self, frames: list[Frame]) -> Suppression | None:
        """The first suppression matching any frame of the stack, or None."""
        for suppression in self._items:
            if any(suppression.matches(frame) for frame in frames):
                return suppression
        return None

    def __iter__(self) -> Iterator[Suppression]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"SuppressionList({self._items!r})"


def _stable_name(frame: Frame) -> str | None:
    """What to put in a pattern for this frame, or None when its name is only an address."""
    name = frame.function or ""
    if name in _UNNAMED or _RAW_ADDRESS.match(name):
        return None
    return name


def _pattern_for(name: str, frame: Frame) -> str:
    """`^name$`; for a minimal-symbol name `sym+0x1a` (no debug info) `^sym+0x`, matching any offset in sym."""
    offset = _OFFSET_SUFFIX.match(name)
    if offset and offset.group("name") != os.path.basename(frame.object or ""):
        return f"^{offset.group('name')}+0x"
    return f"^{name}$"


def generate(frames: list[Frame], system: SystemFilter | None = None) -> str:
    """A `leak:` line suppressing the leak allocated at `frames` (innermost first), for `leaks --gen-suppressions`.

    It names the first frame in the user's code (per `system`) that has a function name, else the innermost named
    frame that is not an allocator entry point (`operator new`, `malloc`, ...), else the innermost named frame.
    The pattern is anchored at both ends, so it hides this function's allocations, not those of every function
    whose name contains it. Nothing is escaped, and nothing needs to be: `*` (as in `operator*` or `f(char*)`)
    still matches itself, and `^`/`$` are only special as the pattern's first and last characters, which the
    anchors occupy. A frame known only by address is never used; a stack with no named frame gives a pattern on
    the innermost frame's object (`^/path/to/lib.so$`).
    """
    system = system or SystemFilter()
    named = [(frame, name) for frame in frames if (name := _stable_name(frame)) is not None]
    chosen = next(((f, n) for f, n in named if not system.is_system(f)), None)
    if chosen is None:
        chosen = next(((f, n) for f, n in named if not _ALLOCATOR_NAMES.match(n)), None)
    if chosen is None and named:
        chosen = named[0]
    if chosen is not None:
        return f"leak:{_pattern_for(chosen[1], chosen[0])}"
    objects = [f.object for f in frames if f.object and f.object != "??"]
    if objects:
        return f"leak:^{objects[0]}$"
    raise ValueError("cannot generate a suppression for a stack without names or objects")
