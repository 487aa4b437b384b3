"""Reads the findings a C target declares about itself (`// expect: ...` comments), so adding a case is one file.

Grammar (one directive per comment; the comment's line is the line it refers to):
  // expect: leak bytes=B [blocks=N] [kind=K] [suppressed] [per=NAME]
                                        unfreed blocks allocated at this line; K (valgrind's verdict on them)
                                        is definite, indirect, possible or reachable; absent means any kind.
                                        `suppressed`: gdb-memleak's default suppressions hide them (a thread's
                                        DTV): listed only with --no-default-suppressions (suppressed_leaks)
                                        `per=NAME`: B and N for each NAME the run made (a server's leaking
                                        request: the test knows how many it sent; leak_per)
  // expect: double_free tag=T           the bad (second) free; `// mark: alloc tag=T`, `// mark: free tag=T`
  // expect: invalid_free                free of a pointer no allocator returned
  // expect: mismatched_free             release by the wrong family (new[] with delete, malloc with delete, ...)
  // expect: clean                       nothing at all
  // expect: mapping bytes=B [regions=N] [process=P] [backing=TEXT]
                                        regions mapped at this line and never unmapped (N pieces, B bytes in all)
                                        in process P (parent or child, as the target prints "parent PID" /
                                        "child PID" on stdout; default parent)
  // expect: sysv bytes=B [process=P]     a System V segment created here and never marked for removal
  // expect: posix bytes=B [process=P]    a POSIX shm object created here and never unlinked
  // expect-exit: code=N | signal=NAME   how the program ends natively
  // expect-cli-exit: code=N | signal=NAME   how it ends under the CLI when that differs (the CLI skips bad frees)
  // expect-args: ARG...                 command-line arguments
  // expect-summary: definite=B/N indirect=B/N possible=B/N reachable=B/N [suppressed=B/N] [HEURISTIC=B/N...]
                                        file-level: valgrind's LEAK SUMMARY (bytes/blocks per kind) under
                                        --leak-check=full --show-leak-kinds=all --run-libc-freeres=no
                                        --run-cxx-freeres=no; all zero when "All heap blocks were freed".
                                        Includes blocks no line declares (libc/libstdc++ start-up allocations).
                                        HEURISTIC (stdstring, length64, newarray, multipleinheritance): its
                                        "of which reachable via heuristic" line (absent: 0/0)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

DIRECTIVE = re.compile(r"//\s*(expect|mark|expect-exit|expect-cli-exit|expect-args|expect-summary):\s*(.*)$")

LEAK_KINDS = ("definite", "indirect", "possible", "reachable")
SUMMARY_KINDS = (*LEAK_KINDS, "suppressed")
HEURISTICS = ("stdstring", "length64", "newarray", "multipleinheritance")  # valgrind's leak-check heuristics


@dataclass(frozen=True)
class LeftBehind:
    """A mapping, System V segment or POSIX object a target leaves behind (`// expect: mapping|sysv|posix`)."""

    type: str           # "mapping", "sysv", "posix"
    line: int
    bytes: int
    regions: int = 1
    process: str = "parent"
    backing: str | None = None


@dataclass
class Expected:
    source: Path
    leaks: dict[int, tuple[int, int]] = field(default_factory=dict)     # line -> (bytes, blocks)
    leak_kinds: dict[int, str] = field(default_factory=dict)            # line -> kind, for lines that declare one
    leak_per: dict[int, str] = field(default_factory=dict)              # line -> NAME its figures are per (per=)
    suppressed_leaks: dict[int, tuple[int, int, str | None]] = field(default_factory=dict)  # hidden by the defaults
    double_frees: dict[str, int] = field(default_factory=dict)          # tag -> line of the bad free
    marks: dict[tuple[str, str], int] = field(default_factory=dict)     # (alloc|free, tag) -> line
    invalid_frees: list[int] = field(default_factory=list)
    mismatched_frees: list[int] = field(default_factory=list)
    clean: bool = False
    exit: dict[str, object] = field(default_factory=lambda: {"code": 0})
    cli_exit: dict[str, object] | None = None                            # None: as `exit`
    args: list[str] = field(default_factory=list)
    summary: dict[str, tuple[int, int]] | None = None                  # kind -> (bytes, blocks), LEAK SUMMARY
    heuristics: dict[str, tuple[int, int]] = field(default_factory=dict)  # heuristic -> (bytes, blocks), all four
    left_behind: list[LeftBehind] = field(default_factory=list)         # mapping / sysv / posix lines

    @property
    def name(self) -> str:
        return self.source.stem

    @property
    def has_findings(self) -> bool:
        return bool(self.leaks or self.double_frees or self.invalid_frees or self.mismatched_frees)

    def leak_kind(self, line: int) -> str | None:
        """The declared kind of the leak at `line`, None when the line declares none (any kind)."""
        return self.leak_kinds.get(line)

    def leaks_with_kinds(self) -> dict[int, tuple[int, int, str | None]]:
        """line -> (bytes, blocks, kind or None)."""
        return {line: (b, n, self.leak_kinds.get(line)) for line, (b, n) in self.leaks.items()}


def _fields(text: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in text.split() if "=" in part)


def _figures(f: dict[str, str], keys: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    figures = {}
    for key in keys:
        nbytes, _, nblocks = f.get(key, "0/0").partition("/")
        figures[key] = (int(nbytes), int(nblocks))
    return figures


def _summary(source: Path, number: int, f: dict[str, str]) -> dict[str, tuple[int, int]]:
    unknown = set(f) - set(SUMMARY_KINDS) - set(HEURISTICS)
    missing = set(LEAK_KINDS) - set(f)
    if unknown or missing:
        raise ValueError(f"{source}:{number}: expect-summary: unknown {sorted(unknown)}, missing {sorted(missing)}")
    return _figures(f, SUMMARY_KINDS)


def defines(source: Path) -> dict[str, int]:
    """The target's numeric `#define NAME N` lines (the figures a target's header states its findings in)."""
    return {name: int(value) for name, value in re.findall(r"^#define (\w+) (\d+)$", source.read_text(), re.M)}


def parse(source: Path) -> Expected:
    expected = Expected(source)
    for number, line in enumerate(source.read_text().splitlines(), start=1):
        match = DIRECTIVE.search(line)
        if not match:
            continue
        kind, body = match.group(1), match.group(2).strip()
        words = body.split()
        f = _fields(body)
        if kind == "expect-args":
            expected.args = words
        elif kind in ("expect-exit", "expect-cli-exit"):
            ending = {"signal": f["signal"]} if "signal" in f else {"code": int(f["code"])}
            setattr(expected, "exit" if kind == "expect-exit" else "cli_exit", ending)
        elif kind == "expect-summary":
            if expected.summary is not None:
                raise ValueError(f"{source}:{number}: second expect-summary")
            expected.summary = _summary(source, number, f)
            expected.heuristics = _figures(f, HEURISTICS)
        elif kind == "mark":
            expected.marks[(words[0], f["tag"])] = number
        elif words[0] == "leak":
            if "kind" in f and f["kind"] not in LEAK_KINDS:
                raise ValueError(f"{source}:{number}: leak kind {f['kind']!r} not one of {LEAK_KINDS}")
            if "suppressed" in words[1:]:
                expected.suppressed_leaks[number] = (int(f["bytes"]), int(f.get("blocks", 1)), f.get("kind"))
                continue
            expected.leaks[number] = (int(f["bytes"]), int(f.get("blocks", 1)))
            if "kind" in f:
                expected.leak_kinds[number] = f["kind"]
            if "per" in f:
                expected.leak_per[number] = f["per"]
        elif words[0] == "double_free":
            expected.double_frees[f["tag"]] = number
        elif words[0] == "invalid_free":
            expected.invalid_frees.append(number)
        elif words[0] == "mismatched_free":
            expected.mismatched_frees.append(number)
        elif words[0] in ("mapping", "sysv", "posix"):
            expected.left_behind.append(LeftBehind(words[0], number, int(f["bytes"]), int(f.get("regions", 1)),
                                                   f.get("process", "parent"), f.get("backing")))
        elif words[0] == "clean":
            expected.clean = True
        else:
            raise ValueError(f"{source}:{number}: unknown directive {body!r}")
    return expected
