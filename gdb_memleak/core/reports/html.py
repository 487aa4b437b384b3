"""The HTML report: one self-contained file (inline script and style, nothing fetched) with a flame graph of the live
bytes, a timeline of the live heap, the leak table, the heap errors and the summaries, one view per process.

Python gathers the data (frames interned once, stacks as a prefix tree of frame indices, leak groups pointing into
it) and embeds it as JSON; html_report.js draws it in the browser, so 100,000 distinct stacks cost a few MB of
numbers, not a few hundred thousand pre-drawn boxes.
"""

from __future__ import annotations

import html
import io
import json
from pathlib import Path
from typing import Callable, Sequence, TextIO

from ... import __version__
from ..gc_pause import gc_paused
from ..kinds import KINDS, LABELS, ORDER, UNFREED
from ..model import Frame, HeapError
from ..report import LeakFilter, ProcessReport
from ..source import source_context
from .folded import frame_name
from .options import ReportOptions
from .text import render_error, render_header, render_leak_summary, render_summary, verdict

FORMAT = "html"
HELP = "write a self-contained HTML report (flame graph, timeline, leak table) to FILE"

ASSETS = Path(__file__).resolve().parent
SOURCE_CONTEXT = 3        # lines either side of the first user frame in a table row's source excerpt
MAX_SOURCES = 2000        # source excerpts per process (the rest of the rows show their stack only)
GROWTH_LINES = 5          # the fastest-growing stacks drawn on the timeline
ERROR_TITLES = {"double_free": "double free", "invalid_free": "invalid free", "mismatched_free": "mismatched free"}
_FORMATTER_CLASS = "src"


class StackTree:
    """Stacks as a prefix tree, outermost frame first: node i is (parent[i], frame[i]); frames are interned."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.frame_ids: dict[Frame, int] = {}
        self.parent: list[int] = []
        self.frame: list[int] = []
        self._children: dict[int, int] = {}  # (parent + 1) << 32 | frame -> node: int keys hash fastest

    def frame_id(self, frame: Frame) -> int:
        index = self.frame_ids.get(frame)
        if index is None:
            index = self.frame_ids[frame] = len(self.frames)
            self.frames.append(frame)
        return index

    def node(self, frames: Sequence[Frame]) -> int:
        """The node of a stack given innermost first (as `ProcessReport.frames` returns it); -1 for no frames."""
        node = -1
        ids, children = self.frame_ids, self._children
        for frame in reversed(frames):
            index = ids.get(frame)
            if index is None:
                index = self.frame_id(frame)
            key = (node + 1) << 32 | index
            child = children.get(key)
            if child is None:
                child = children[key] = len(self.parent)
                self.parent.append(node)
                self.frame.append(index)
            node = child
        return node

    def frames_json(self) -> list[list]:
        return [[frame_name(f), f.file, f.line, f.object, f"0x{f.pc:x}", 1 if getattr(f, "inline", False) else 0]
                for f in self.frames]

    def nodes_json(self) -> list[int]:
        flat: list[int] = []
        for parent, frame in zip(self.parent, self.frame):
            flat += (parent, frame)
        return flat


class SourceExcerpts:
    """Highlighted source lines around a frame, once per file:line, at most `limit` per process."""

    def __init__(self, limit: int = MAX_SOURCES) -> None:
        self.limit = limit
        self.snippets: list[str] = []
        self._ids: dict[tuple[str, int], int] = {}

    def excerpt(self, frame: Frame | None) -> int:
        if frame is None or not frame.file or not frame.line:
            return -1
        key = (frame.file, frame.line)
        if key in self._ids:
            return self._ids[key]
        if len(self.snippets) >= self.limit:
            return -1
        lines = source_context(frame.file, frame.line, SOURCE_CONTEXT)
        index = -1
        if lines:
            index = len(self.snippets)
            self.snippets.append(highlight_lines(frame.file, lines, frame.line))
        self._ids[key] = index
        return index


def highlight_lines(path: str, lines: list[tuple[int, str]], marked: int) -> str:
    """pygments' HTML for consecutive (number, text) lines, numbered, the line `marked` highlighted."""
    from pygments import highlight  # noqa: PLC0415 - imported when an HTML report is written, not at load
    from pygments.formatters import HtmlFormatter  # noqa: PLC0415
    from pygments.lexers import CLexer, get_lexer_for_filename  # noqa: PLC0415
    from pygments.util import ClassNotFound  # noqa: PLC0415

    try:
        lexer = get_lexer_for_filename(path, stripnl=False)
    except ClassNotFound:
        lexer = CLexer(stripnl=False)
    first = lines[0][0]
    formatter = HtmlFormatter(cssclass=_FORMATTER_CLASS, linenos="inline", linenostart=first,
                              hl_lines=[marked - first + 1])
    return highlight("\n".join(text for _, text in lines) + "\n", lexer, formatter)


def _text(render: Callable[..., None], *args: object) -> str:
    """What a text-report renderer writes, as a string (the page shows the same words)."""
    out = io.StringIO()
    render(*args, out)
    return out.getvalue()


def _live_filter(where: LeakFilter | None) -> LeakFilter | None:
    """The blocks the graph and table draw from: those `where` admits (snapshot, age), of every kind."""
    if where is None:
        return None
    return LeakFilter(kinds=None, since_seq=where.since_seq, older_than=where.older_than, now=where.now)


def process_data(report: ProcessReport, options: ReportOptions) -> dict:
    """Everything the page shows of one process, as JSON-ready lists (compact: the file may hold 100,000 stacks)."""
    tree = StackTree()
    sources = SourceExcerpts()
    kinds = [str(k) for k in KINDS + (UNFREED,)]   # a group's kind is its index here (ORDER's numbering)
    groups = []
    for group in report.leak_groups(_live_filter(options.where)):
        frames = report.frames(group.pcs)
        site = report.system.user_frame(frames)
        groups.append([ORDER.get(group.kind, ORDER[UNFREED]), group.allocator, group.bytes, group.blocks,
                       group.first_seq, tree.node(frames), tree.frame_id(site) if site else -1,
                       sources.excerpt(site), group.indirect_bytes, group.indirect_blocks])
    errors = [error_data(report, error, tree) for error in report.errors()]
    shown = options.where.kinds if options.where is not None else None
    c = report.table.counters
    timeline = report.table.timeline
    return {
        "pid": report.result.pid,
        "argv": list(report.result.argv),
        "header": _text(render_header, report),
        "heap": {"live_bytes": c.live_bytes, "live_blocks": c.live_blocks, "peak_bytes": c.peak_bytes,
                 "peak_blocks": c.peak_blocks, "allocs": c.allocs, "frees": c.frees},
        "summary": _text(render_summary, report) + _text(render_leak_summary, report).lstrip("\n"),
        "verdict": verdict(report, options.error_kinds),
        "kinds": [[k, LABELS[k]] for k in kinds],
        "shown": [k for k in kinds if shown is None or k in shown],
        "frames": tree.frames_json(),
        "nodes": tree.nodes_json(),
        "groups": groups,
        "errors": errors,
        "sources": sources.snippets,
        "timeline": {
            "points": [[round(p.time, 6), p.bytes, p.blocks, p.peak_bytes, p.peak_blocks] for p in timeline.series()],
            "marks": [[m.name, round(m.time, 6), m.bytes, m.blocks] for m in timeline.marks],
            "growth": growth_data(report, tree),
        },
    }


def growth_data(report: ProcessReport, tree: StackTree) -> list[list]:
    """The fastest-growing stacks (core/growth.py), each as [site frame (-1: none), allocator, bytes/s, its samples
    [[time, bytes, blocks], ...]]: the timeline draws their live bytes over the checkpoints."""
    lines = []
    for g in report.growing()[:GROWTH_LINES]:
        site = report.site(g.pcs)
        lines.append([tree.frame_id(site) if site else -1, g.allocator, round(g.rate, 3),
                      [[round(s.time, 6), s.bytes, s.blocks] for s in g.history]])
    return lines


def error_data(report: ProcessReport, error: HeapError, tree: StackTree) -> dict:
    text = _text(render_error, report, error)
    return {"type": error.type, "title": ERROR_TITLES.get(error.type, error.type), "time": round(error.time, 6),
            "headline": text.split("\n", 1)[0], "text": text, "node": tree.node(report.frames(error.pcs))}


def _script_json(value: object) -> str:
    """JSON safe inside <script>: no `<`, `>` or `&` that could close the element or start a comment."""
    text = json.dumps(value, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _title(reports: Sequence[ProcessReport]) -> str:
    programs = sorted({r.result.argv[0] for r in reports if r.result.argv})
    return "gdb-memleak: " + (", ".join(programs) if programs else "report")


def render_page(reports: Sequence[ProcessReport], options: ReportOptions) -> str:
    from pygments.formatters import HtmlFormatter  # noqa: PLC0415 - see highlight_lines

    data = {"tool": "gdb-memleak", "version": __version__, "processes": [process_data(r, options) for r in reports]}
    style = (ASSETS / "html_report.css").read_text(encoding="utf-8")
    style += "\n" + HtmlFormatter(cssclass=_FORMATTER_CLASS).get_style_defs(f".{_FORMATTER_CLASS}")
    script = (ASSETS / "html_report.js").read_text(encoding="utf-8")
    return (ASSETS / "html_report.html").read_text(encoding="utf-8").format(
        title=html.escape(_title(reports)), style=style, data=_script_json(data), script=script)


def write(reports: Sequence[ProcessReport], out: TextIO, options: ReportOptions | None = None) -> None:
    with gc_paused():  # the page's data is ~10^6 small objects that live until it is written
        page = render_page(reports, options or ReportOptions())
    out.write(page)
