"""Source lines for `leaks --by-line`, highlighted with pygments when the terminal wants colour."""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=256)
def _lines(path: str) -> tuple[str, ...]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return tuple(f.read().splitlines())
    except OSError:
        return ()


def source_context(path: str | None, line: int | None, context: int = 1) -> list[tuple[int, str]]:
    """(number, text) for `line` and `context` lines either side; empty when the file cannot be read."""
    if not path or not line:
        return []
    lines = _lines(path)
    if not 1 <= line <= len(lines):
        return []
    first, last = max(1, line - context), min(len(lines), line + context)
    return [(n, lines[n - 1]) for n in range(first, last + 1)]


def highlight_line(path: str, text: str) -> str:
    from pygments import highlight  # noqa: PLC0415 - on first use: most runs never colour a source line
    from pygments.formatters import TerminalFormatter  # noqa: PLC0415
    from pygments.lexers import CLexer, get_lexer_for_filename  # noqa: PLC0415
    from pygments.util import ClassNotFound  # noqa: PLC0415

    try:
        lexer = get_lexer_for_filename(path, stripnl=False)
    except ClassNotFound:
        lexer = CLexer(stripnl=False)
    return highlight(text, lexer, TerminalFormatter()).rstrip("\n")
