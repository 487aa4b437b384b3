"""Suppressions: valgrind's suppression files (valgrind_supp.py), LeakSanitizer's `leak:PATTERN` lines, and
`frames:` lines naming the allocating frames. A file is read as valgrind's when its first line that is not blank or
a comment is `{`, else as LeakSanitizer's; files of both kinds can be given together.

A `leak:PATTERN` suppresses a leak when PATTERN matches the function name, the source file or the object (module) of
any frame of its allocation stack. In PATTERN `*` matches any run of characters; a leading `^` anchors it at the
start of the string and a trailing `$` at the end; without anchors it may match anywhere (a substring), as in LSan.
Every other character is literal: there is no escape character, and `^`/`$` are literal anywhere but at the ends.

(LSan itself treats a `$` in the middle of a pattern as "end of string" and matches each `*`-separated piece at its
first occurrence, so it misses e.g. `a*b$` against "abxb"; here the whole pattern is one regular expression, which
agrees with LSan wherever LSan finds a match.)

Because any frame may match, a `leak:` line naming a runtime function that calls user code (the loader's `_dl_init`
runs every library's constructors) hides the user's leaks under it. A `frames:` line is anchored instead, like a
valgrind suppression's frame lines: `frames: M1 ; M2 ; ...` matches when M1 matches the frame that called the
allocator, M2 the next one out, and so on; `...` stands for any number of frames (none included). Each matcher is
one or more of `fun:GLOB` and `obj:GLOB`, all of which must match that one frame; a GLOB matches the whole function
name or object path, `*` any run of characters and `?` one character. The built-in defaults use this form so that
each names the runtime's own allocating frame and object, never a frame a user's code can be in.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import ClassVar, Iterable, Iterator, Union

from .model import Frame
from .symbols import OFFSET_NAME, RAW_ADDRESS, UNNAMED, SystemFilter
from .valgrind_stack import DEFAULT_NUM_CALLERS, StackView
from .valgrind_supp import SyntaxProblem, ValgrindSuppression, looks_like_valgrind, parse_valgrind

DEFAULT_SOURCE = "<default>"

# Known one-off allocations that glibc and libstdc++ keep for the whole life of the process and release only in
# __libc_freeres / __gnu_cxx::__freeres, which valgrind calls at exit by default (so valgrind shows none of these
# unless run with --run-libc-freeres=no --run-cxx-freeres=no) and gdb-memleak never calls. Each entry was seen on
# Debian 12 (glibc 2.36, g++ 12) with that valgrind run and with gdb-memleak; the stacks are in the comments.
DEFAULT_SUPPRESSIONS = """\
# gdb-memleak default suppressions. Disable with --no-default-suppressions (GDB: set memleak
# default-suppressions off). Each names the runtime's own allocating frame and object, never a user frame.

# libstdc++'s emergency exception-handling pool (eh_alloc.cc), 72,704 bytes malloc'ed once by libstdc++.so.6's
# own static constructor, in every C++ program:
#   malloc <- libstdc++.so.6+0xa57ba (no symbol: stripped) <- call_init <- _dl_init (ld-linux-x86-64.so.2)
# Without libstdc++'s debug symbols its frame has no name: it is matched as a libstdc++ frame called directly by
# the loader's call_init (a constructor of libstdc++ itself); with them, by the pool's constructor.
frames: obj:*/libstdc++.so.6* ; fun:call_init obj:*/ld-linux*.so*
frames: fun:*::pool::pool* obj:*/libstdc++.so.6*

# stdio stream buffers (BUFSIZ = 4,096 bytes for stdout), allocated on a stream's first read or write and kept
# until the stream is closed; stdout/stderr/stdin are never closed before exit:
#   malloc <- _IO_file_doallocate <- _IO_doallocbuf <- _IO_file_overflow <- ... <- printf/puts/fwrite <- main
# A FILE the program never fclose()s is still reported: its own block comes from fopen, not from here.
frames: fun:*_IO_file_doallocate* obj:*/libc.so.6

# A thread's DTV (dynamic thread vector), calloc'ed by the loader when pthread_create sets up the thread's TLS;
# glibc keeps it with the cached stack of a joined thread and frees it only in libc freeres (valgrind's default
# run), and LeakSanitizer ignores TLS. Pointed to from the thread's control block 16 bytes past its start, so a
# scan calls it "possibly lost" (valgrind with --run-libc-freeres=no: 272 bytes per thread):
#   calloc (rtld-malloc.h, inlined) <- _dl_allocate_tls (ld-linux-x86-64.so.2) <- allocate_stack / pthread_create
#   (libc.so.6) <- the user's pthread_create call
frames: ... ; fun:*_dl_allocate_tls* obj:*/ld-linux*.so* ; obj:*/libc.so.6

# Statically linked programs: glibc's start-up (_dl_non_dynamic_init: search paths, the main link map, the
# _dl_find_object tables) allocates with the program's own malloc and keeps the blocks for the whole run; no user
# code runs under it. Dynamically linked programs make these before malloc is hooked.
frames: ... ; fun:_dl_non_dynamic_init*
"""

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
    """`leak:PATTERN`: LSan's form, matching any frame of the stack."""

    later_first: ClassVar[bool] = False  # LeakSanitizer credits the first matching line
    pattern: str
    source: str = DEFAULT_SOURCE
    line: int = 0

    def matches_text(self, text: str | None) -> bool:
        """LSan never matches an empty or missing name."""
        return text is not None and text != "" and _compile(self.pattern).search(text) is not None

    def matches(self, frame: Frame) -> bool:
        return (self.matches_text(frame.function) or self.matches_text(frame.file)
                or self.matches_text(frame.object))

    def matches_stack(self, frames: list[Frame]) -> bool:
        return any(self.matches(frame) for frame in frames)

    def matches_leak(self, view: StackView, leak_kind: str | None) -> bool:
        return self.matches_stack(view.frames)

    def matches_error(self, view: StackView) -> bool:
        return False  # LeakSanitizer's `leak:` is for leaks only

    @property
    def name(self) -> str:
        return str(self)

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"

    def __str__(self) -> str:
        return f"leak:{self.pattern}"


@cache
def _glob(pattern: str) -> re.Pattern[str]:
    """valgrind's wildcards: `*` any run, `?` one character, the whole string."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.DOTALL)


_FIELD = re.compile(r"(fun|obj):(.*?)(?=\s+(?:fun|obj):|$)")
ANY_FRAMES = "..."


@dataclass(frozen=True)
class FrameMatcher:
    """One frame of a `frames:` line: every field given must match that frame."""

    fun: str | None = None
    obj: str | None = None

    def matches(self, frame: Frame) -> bool:
        return ((self.fun is None or _glob(self.fun).fullmatch(frame.function or "") is not None)
                and (self.obj is None or _glob(self.obj).fullmatch(frame.object or "") is not None))

    def __str__(self) -> str:
        return " ".join(f"{key}:{value}" for key, value in (("fun", self.fun), ("obj", self.obj)) if value is not None)

    @classmethod
    def parse(cls, text: str) -> FrameMatcher:
        fields: dict[str, str] = {}
        position = 0
        for match in _FIELD.finditer(text):
            if text[position:match.start()].strip() or match.group(1) in fields or not match.group(2).strip():
                raise ValueError(text)
            fields[match.group(1)] = match.group(2).strip()
            position = match.end()
        if not fields or text[position:].strip():
            raise ValueError(text)
        return cls(**fields)


@dataclass(frozen=True)
class FrameSuppression:
    """`frames: M1 ; M2 ; ...`: anchored at the frame that called the allocator (None in `frames` is `...`)."""

    later_first: ClassVar[bool] = False
    frames: tuple[FrameMatcher | None, ...]
    source: str = DEFAULT_SOURCE
    line: int = 0

    def matches_stack(self, frames: list[Frame]) -> bool:
        matchers = self.frames

        def walk(m: int, f: int) -> bool:
            while m < len(matchers):
                matcher = matchers[m]
                if matcher is None:  # `...`: try every number of skipped frames
                    return any(walk(m + 1, skip) for skip in range(f, len(frames) + 1))
                if f >= len(frames) or not matcher.matches(frames[f]):
                    return False
                m, f = m + 1, f + 1
            return True

        return walk(0, 0)

    def matches_leak(self, view: StackView, leak_kind: str | None) -> bool:
        return self.matches_stack(view.frames)

    def matches_error(self, view: StackView) -> bool:
        return False

    @property
    def name(self) -> str:
        return str(self)

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"

    def __str__(self) -> str:
        return "frames: " + " ; ".join(ANY_FRAMES if m is None else str(m) for m in self.frames)

    @classmethod
    def parse(cls, text: str, source: str = DEFAULT_SOURCE, line: int = 0) -> FrameSuppression:
        """ValueError names the part that is neither `...` nor `fun:GLOB`/`obj:GLOB` fields."""
        parts = [part.strip() for part in text.split(";")]
        matchers = tuple(None if part == ANY_FRAMES else FrameMatcher.parse(part) for part in parts)
        if all(m is None for m in matchers):
            raise ValueError(text)
        return cls(matchers, source, line)


AnySuppression = Union[Suppression, FrameSuppression, ValgrindSuppression]


class SuppressionList:
    """Suppressions in the order given. One entry is credited with each thing suppressed (a report says which):
    valgrind-format entries first, the last read first (valgrind puts each entry it reads in front of those read
    before, so of two that match, the later one counts), then the others in order, first match winning.

    `num_callers` is valgrind's --num-callers for its entries: how many addresses of a stack they see (the
    allocator's own frame included) and how many of their frame lines count."""

    def __init__(self, suppressions: Iterable[AnySuppression] = (), num_callers: int = DEFAULT_NUM_CALLERS) -> None:
        self._items: list[AnySuppression] = list(suppressions)
        self._order: list[AnySuppression] | None = None
        self.num_callers = num_callers

    @classmethod
    def parse(cls, text: str, source: str) -> SuppressionList:
        """Either format, told by the content."""
        if looks_like_valgrind(text):
            try:
                return cls(parse_valgrind(text, source))
            except SyntaxProblem as problem:
                raise SuppressionError(f"{source}:{problem.line}: {problem}") from None
        items: list[AnySuppression] = []
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            kind, colon, pattern = line.partition(":")
            if not colon or not kind or not re.fullmatch(r"[A-Za-z_]+", kind):
                raise SuppressionError(f"{source}:{number}: expected 'leak:PATTERN', got {line!r}")
            if kind == "frames":
                try:
                    items.append(FrameSuppression.parse(pattern, source, number))
                except ValueError:
                    raise SuppressionError(f"{source}:{number}: expected 'frames: M ; M ...' with each M '...' or "
                                           f"'fun:GLOB' and/or 'obj:GLOB': {line!r}") from None
                continue
            if kind != "leak":
                raise SuppressionError(f"{source}:{number}: unsupported suppression type {kind!r} "
                                       f"(only 'leak:' and 'frames:' are supported): {line!r}")
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

    def extend(self, other: Iterable[AnySuppression]) -> None:
        self._items.extend(other)
        self._order = None

    def _search_order(self) -> list[AnySuppression]:
        if self._order is None:
            later_first = [s for s in reversed(self._items) if s.later_first]
            self._order = later_first + [s for s in self._items if not s.later_first]
        return self._order

    def match(self, frames: list[Frame], kind: str | None = None,
              allocator: str | None = None) -> AnySuppression | None:
        """The first suppression matching a loss record of `kind` allocated by `allocator` at `frames` (innermost
        first, from the allocator's caller), or None. LeakSanitizer's lines ignore kind and allocator."""
        view = StackView(frames, allocator, self.num_callers)
        return next((s for s in self._search_order() if s.matches_leak(view, kind)), None)

    def match_error(self, frames: list[Frame], allocator: str) -> AnySuppression | None:
        """The first suppression matching a bad release (double, invalid or mismatched) by `allocator` at `frames`:
        valgrind's Memcheck:Free entries."""
        view = StackView(frames, allocator, self.num_callers)
        return next((s for s in self._search_order() if s.matches_error(view)), None)

    def __iter__(self) -> Iterator[AnySuppression]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"SuppressionList({self._items!r})"


def _stable_name(frame: Frame) -> str | None:
    """What to put in a pattern for this frame, or None when its name is only an address."""
    name = frame.function or ""
    if name in UNNAMED or RAW_ADDRESS.match(name):
        return None
    return name


def _pattern_for(name: str, frame: Frame) -> str:
    """`^name$`; for a minimal-symbol name `sym+0x1a` (no debug info) `^sym+0x`, matching any offset in sym."""
    offset = OFFSET_NAME.match(name)
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
