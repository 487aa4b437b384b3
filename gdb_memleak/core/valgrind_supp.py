"""valgrind's suppression files, read as valgrind reads them, and suppressions written in its format.

    {
       a name (anything but `}`)
       Memcheck:Leak                        TOOL[,TOOL...]:KIND
       match-leak-kinds: definite,possible  Leak only, optional: definite indirect possible reachable | all | none
       fun:malloc                           fun:GLOB  obj:GLOB  src:GLOB[:LINE]  ...  (at most --num-callers lines
       ...                                  count; `...` is any number of frames, none included)
       fun:make_*
    }

Lines are trimmed; blank lines and lines starting with `#` are skipped anywhere. GLOBs are whole-string with `*` (any
run) and `?` (one character), no escape. The frame lines are matched against the start of the stack valgrind has
for the error (valgrind_stack.py: the allocator's or release's own frame first). Memcheck:Leak suppresses the
loss records of the kinds it names, Memcheck:Free double, invalid and mismatched frees. Memcheck's other kinds
(Addr4, Cond, Param with its extra line, ...) are read and checked but suppress nothing here: this tool does not
report those errors. Other tools' entries (Helgrind:Race, drd:ConflictingAccess) are skipped to their `}`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import ClassVar

from .valgrind_stack import DEFAULT_NUM_CALLERS, UNKNOWN, StackView, VgFrame

TOOL = "Memcheck"
LEAK, FREE = "Leak", "Free"
# every suppression kind memcheck knows (valgrind 3.19 to 3.24): read, and ignored unless Leak or Free
MEMCHECK_KINDS = frozenset({
    "Param", "User", "CoreMem", "Addr1", "Addr2", "Addr4", "Addr8", "Addr16", "Addr32", "Jump", FREE, LEAK,
    "Overlap", "Mempool", "Cond", "Value0", "Value1", "Value2", "Value4", "Value8", "Value16", "Value32",
    "FishyValue", "ReallocZero", "BadAlign", "BadSize", "UnsafeZeroSize", "SizeMismatch", "AlignMismatch"})
LEAK_KINDS = ("reachable", "possible", "indirect", "definite")  # valgrind's tokens, in its order
MATCH_LEAK_KINDS = "match-leak-kinds:"
ANY = "..."
PLACEHOLDER = "<insert_a_suppression_name_here>"
MAX_FRAMES = 500  # valgrind's VG_DEEPEST_BACKTRACE: more frame lines is an error


class SyntaxProblem(ValueError):
    """A malformed entry: `line` is the line valgrind would name."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


@cache
def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.DOTALL)


@dataclass(frozen=True)
class Location:
    """One frame line: `fun:`, `obj:` or `src:` with its glob (and source line, 0 for any), or `...`."""

    kind: str
    pattern: str = ""
    line: int = 0

    def matches(self, frame: VgFrame) -> bool:
        if self.kind == "fun":
            return any(_glob(self.pattern).fullmatch(name) for name in frame.names)
        if self.kind == "obj":
            return _glob(self.pattern).fullmatch(frame.obj) is not None
        return (frame.file is not None and _glob(self.pattern).fullmatch(frame.file) is not None
                and (not self.line or self.line == frame.line))

    def __str__(self) -> str:
        if self.kind == ANY:
            return ANY
        return f"{self.kind}:{self.pattern}" + (f":{self.line}" if self.line else "")

    @classmethod
    def parse(cls, text: str) -> Location | None:
        if text == ANY:
            return cls(ANY)
        kind, colon, rest = text.partition(":")
        if not colon or kind not in ("fun", "obj", "src"):
            return None
        if kind == "src":
            name, colon, number = rest.partition(":")
            return cls(kind, name, int(number) if colon and number.isdigit() else 0)
        return cls(kind, rest)


@dataclass(frozen=True)
class ValgrindSuppression:
    """One `{ ... }` entry of kind Leak or Free. `line` is the line of its name, as valgrind's -v names it."""

    later_first: ClassVar[bool] = True  # valgrind tries the entries it read last first
    name: str
    kind: str
    locations: tuple[Location, ...]
    leak_kinds: frozenset[str] | None = None  # None: every kind (no match-leak-kinds line, or `all`)
    source: str = ""
    line: int = 0

    def matches_kind(self, leak_kind: str | None) -> bool:
        """A loss record of `leak_kind` (None or "unfreed": not classified yet, so only an entry for every kind)."""
        return self.leak_kinds is None or leak_kind in self.leak_kinds

    def matches_leak(self, view: StackView, leak_kind: str | None) -> bool:
        return self.kind == LEAK and self.matches_kind(leak_kind) and self.matches(view.valgrind, view.num_callers)

    def matches_error(self, view: StackView) -> bool:
        return self.kind == FREE and self.matches(view.valgrind, view.num_callers)

    def matches(self, stack: list[VgFrame], num_callers: int = DEFAULT_NUM_CALLERS) -> bool:
        """The frame lines (the first `num_callers`, as valgrind reads them) match the start of `stack`."""
        pattern = self.locations[:num_callers]
        failed: set[tuple[int, int]] = set()

        def walk(p: int, s: int) -> bool:
            while p < len(pattern):
                if pattern[p].kind == ANY:
                    if (p, s) in failed:
                        return False
                    if any(walk(p + 1, skip) for skip in range(s, len(stack) + 1)):
                        return True
                    failed.add((p, s))
                    return False
                if s >= len(stack) or not pattern[p].matches(stack[s]):
                    return False
                p, s = p + 1, s + 1
            return True

        return walk(0, 0)

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"

    def __str__(self) -> str:
        kinds = "" if self.leak_kinds is None else \
            f" {MATCH_LEAK_KINDS} {','.join(k for k in LEAK_KINDS if k in self.leak_kinds) or 'none'}"
        return f"{{{self.name}}} {TOOL}:{self.kind}{kinds} " + " ".join(str(loc) for loc in self.locations)


def _leak_kinds(text: str) -> frozenset[str] | None:
    """valgrind's `match-leak-kinds:` value; ValueError for an unknown token."""
    value = text.strip()
    if value == "all":
        return None
    if value == "none":
        return frozenset()
    tokens = [token.strip() for token in value.split(",")]
    if not value or any(token not in LEAK_KINDS for token in tokens):
        raise ValueError(value)
    return None if set(tokens) == set(LEAK_KINDS) else frozenset(tokens)


def _lines(text: str) -> list[tuple[int, str]]:
    """(number, trimmed line) of every line that is not blank or a comment."""
    found = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            found.append((number, line))
    return found


def looks_like_valgrind(text: str) -> bool:
    """A file is in valgrind's format when its first line that is not blank or a comment is `{`."""
    lines = _lines(text)
    return bool(lines) and lines[0][1] == "{"


class _Reader:
    def __init__(self, text: str) -> None:
        self.lines = _lines(text)
        self.at = 0
        self.last = self.lines[-1][0] if self.lines else 1

    def next(self, expecting: str) -> tuple[int, str]:
        if self.at >= len(self.lines):
            raise SyntaxProblem(self.last, f"unexpected end of file ({expecting})")
        self.at += 1
        return self.lines[self.at - 1]

    def peek(self) -> str | None:
        return self.lines[self.at][1] if self.at < len(self.lines) else None

    def done(self) -> bool:
        return self.at >= len(self.lines)


def _is_location(line: str | None) -> bool:
    return line is not None and (line == ANY or line.startswith(("fun:", "obj:", "src:")))


def _entry(reader: _Reader, source: str) -> ValgrindSuppression | None:
    """The next `{ ... }` entry; None for one that suppresses nothing here (another tool's, another kind)."""
    number, line = reader.next("expecting '{'")
    if line != "{":
        raise SyntaxProblem(number, f"expected '{{' to start a suppression, got {line!r}")
    name_line, name = reader.next("expecting the suppression's name")
    if name == "}":
        raise SyntaxProblem(name_line, "unexpected '}': a suppression needs a name, a TOOL:KIND line and frames")
    number, line = reader.next("expecting TOOL:KIND")
    tools, colon, kind = line.partition(":")
    if not colon:
        raise SyntaxProblem(number, f"expected 'TOOL:KIND' (e.g. Memcheck:Leak), got {line!r}")
    if TOOL not in tools.split(","):  # another tool's suppression: skipped whole
        while reader.next("expecting '}' closing the suppression")[1] != "}":
            pass
        return None
    if kind not in MEMCHECK_KINDS:
        raise SyntaxProblem(number, f"unknown Memcheck suppression kind {kind!r}")
    leak_kinds = _extra(reader, kind)
    locations = []
    while True:
        number, line = reader.next("expecting frame lines and '}'")
        if line == "}":
            break
        location = Location.parse(line)
        if location is None:
            raise SyntaxProblem(number, f"expected a frame line: 'fun:', 'obj:', 'src:' or '...', got {line!r}")
        locations.append(location)
        if len(locations) > MAX_FRAMES:
            raise SyntaxProblem(number, f"more than {MAX_FRAMES} frame lines")
    if not locations:
        raise SyntaxProblem(number, "a suppression needs at least one frame line")
    if all(loc.kind == ANY for loc in locations):
        raise SyntaxProblem(number, "a suppression needs a frame line other than '...'")
    if kind not in (LEAK, FREE):
        return None
    return ValgrindSuppression(name, kind, tuple(locations), leak_kinds, source, name_line)


def _extra(reader: _Reader, kind: str) -> frozenset[str] | None:
    """Read what comes between the kind and the frames: Param's parameter line, FishyValue's `function(argument)`
    (optional), Leak's optional match-leak-kinds line (returned)."""
    following = reader.peek()
    if kind == "Param" or (kind == "FishyValue" and following is not None and not _is_location(following)):
        number, line = reader.next("expecting the parameter line")
        if _is_location(line) or line == "}" or (kind == "FishyValue" and "(" not in line):
            raise SyntaxProblem(number, f"expected the {kind} suppression's extra line, got {line!r}")
    if kind == LEAK and following is not None and following.startswith(MATCH_LEAK_KINDS):
        number, line = reader.next(MATCH_LEAK_KINDS)
        try:
            return _leak_kinds(line[len(MATCH_LEAK_KINDS):])
        except ValueError:
            raise SyntaxProblem(number, f"bad {MATCH_LEAK_KINDS} value {line[len(MATCH_LEAK_KINDS):].strip()!r} "
                                        f"(give all, none, or some of {','.join(LEAK_KINDS)})") from None
    if kind == LEAK and following is not None and not _is_location(following) and following != "}":
        number = reader.lines[reader.at][0]
        raise SyntaxProblem(number, f"expected '{MATCH_LEAK_KINDS}' or a frame line, got {following!r}")
    return None


def parse_valgrind(text: str, source: str) -> list[ValgrindSuppression]:
    """The Leak and Free entries of a valgrind suppression file, in file order; SyntaxProblem for a bad entry."""
    reader = _Reader(text)
    entries = []
    while not reader.done():
        entry = _entry(reader, source)
        if entry is not None:
            entries.append(entry)
    return entries


def frame_line(frame: VgFrame) -> str:
    """How valgrind writes a frame in a generated suppression: its function, else its object, else `obj:*`."""
    if frame.fun != UNKNOWN and frame.exact:
        return f"fun:{frame.fun}"
    return f"obj:{frame.obj}" if frame.obj != UNKNOWN else "obj:*"


def generate_valgrind(kind: str, stack: list[VgFrame], name: str = PLACEHOLDER, leak_kind: str | None = None) -> str:
    """A suppression in valgrind's --gen-suppressions layout for an error of `kind` (Leak or Free) at `stack` (as
    valgrind_stack gives it); `leak_kind` (definite, ...) for a loss record, None when not classified."""
    lines = ["{", f"   {name}", f"   {TOOL}:{kind}"]
    if kind == LEAK and leak_kind in LEAK_KINDS:
        lines.append(f"   {MATCH_LEAK_KINDS} {leak_kind}")
    lines += [f"   {frame_line(frame)}" for frame in stack]
    return "\n".join(lines + ["}"]) + "\n"


def used_line(count: int, name: str, where: str, nbytes: int = 0, blocks: int = 0) -> str:
    """valgrind's -v line for a suppression used `count` times; a Leak entry adds what it suppressed."""
    extra = f" suppressed: {nbytes:,} bytes in {blocks:,} blocks" if blocks else ""
    return f"used_suppression: {count:6d} {name} {where}{extra}"
