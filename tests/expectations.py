"""Reads the findings a C target declares about itself (`// expect: ...` comments), so adding a case is one file.

Grammar (one directive per comment; the comment's line is the line it refers to):
  // expect: leak bytes=B [blocks=N]     unfreed blocks allocated at this line
  // expect: double_free tag=T           the bad (second) free; `// mark: alloc tag=T`, `// mark: free tag=T`
  // expect: invalid_free                free of a pointer no allocator returned
  // expect: clean                       nothing at all
  // expect-exit: code=N | signal=NAME   how the program ends natively
  // expect-args: ARG...                 command-line arguments
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

DIRECTIVE = re.compile(r"//\s*(expect|mark|expect-exit|expect-args):\s*(.*)$")


@dataclass
class Expected:
    source: Path
    leaks: dict[int, tuple[int, int]] = field(default_factory=dict)     # line -> (bytes, blocks)
    double_frees: dict[str, int] = field(default_factory=dict)          # tag -> line of the bad free
    marks: dict[tuple[str, str], int] = field(default_factory=dict)     # (alloc|free, tag) -> line
    invalid_frees: list[int] = field(default_factory=list)
    clean: bool = False
    exit: dict[str, object] = field(default_factory=lambda: {"code": 0})
    args: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.source.stem

    @property
    def has_findings(self) -> bool:
        return bool(self.leaks or self.double_frees or self.invalid_frees)


def _fields(text: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in text.split() if "=" in part)


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
        elif kind == "expect-exit":
            expected.exit = {"signal": f["signal"]} if "signal" in f else {"code": int(f["code"])}
        elif kind == "mark":
            expected.marks[(words[0], f["tag"])] = number
        elif words[0] == "leak":
            expected.leaks[number] = (int(f["bytes"]), int(f.get("blocks", 1)))
        elif words[0] == "double_free":
            expected.double_frees[f["tag"]] = number
        elif words[0] == "invalid_free":
            expected.invalid_frees.append(number)
        elif words[0] == "clean":
            expected.clean = True
        else:
            raise ValueError(f"{source}:{number}: unknown directive {body!r}")
    return expected
