"""Helpers for the HTML report's tests: its embedded data, scripted reports of any size, and a headless Chromium
that records console errors and every request the page tries to make."""

from __future__ import annotations

import io
import json
import random
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gdb_memleak.core.model import Frame, ProcessResult
from gdb_memleak.core.report import ProcessReport
from gdb_memleak.core.reports import ReportOptions
from gdb_memleak.core.reports.html import write
from gdb_memleak.core.symbols import Symbolizer
from gdb_memleak.core.table import AllocationTable

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
_DATA = re.compile(r'<script type="application/json" id="memleak-data">(.*?)</script>', re.S)


def embedded_data(page: str) -> dict:
    """The JSON the page draws from (exactly one such element)."""
    found = _DATA.findall(page)
    assert len(found) == 1, "one embedded data element"
    return json.loads(found[0])


def render_html(reports: list[ProcessReport], options: ReportOptions | None = None) -> str:
    out = io.StringIO()
    write(reports, out, options)
    return out.getvalue()


def synthetic_report(stacks: int, seed: int = 0, pid: int = 1000) -> ProcessReport:
    """`stacks` distinct allocation stacks (3 to 14 frames over 3,000 functions, like a large C++ program) with one
    live block each, several leak kinds, and a few heap errors spread over time."""
    rng = random.Random(seed)
    frames: dict[int, Frame] = {}
    functions = [f"ns{i % 40}::module{i % 300}::function_{i}" for i in range(3000)]
    pc = 0x400000
    table = AllocationTable()
    kinds: dict[int, str] = {}
    kind_choice = ["definite"] * 5 + ["indirect", "possible", "reachable", "reachable"]
    seen: set[tuple[int, ...]] = set()
    call_sites: dict[tuple[str, str], int] = {}
    main = Frame(0x3FFFF0, "main", "/src/app/main.cc", 10, "/opt/app/bin/app")
    frames[main.pc] = main
    while len(seen) < stacks:
        depth = rng.randint(2, 13)
        names = [functions[min(int(rng.paretovariate(0.8)) * (d + 1) + d * 17, 2999)] for d in range(depth)]
        pcs = []
        for d, name in enumerate(names):  # one call site per (caller, callee), as in a program's code
            site = (name, names[d - 1] if d else "")
            if site not in call_sites:
                pc += 16
                call_sites[site] = pc
                frames[pc] = Frame(pc, name, f"/src/app/{name.split('::')[1]}.cc", 10 + len(call_sites) % 500,
                                   "/opt/app/bin/app")
            pcs.append(call_sites[site])
        stack = tuple(reversed(pcs)) + (main.pc,)
        if stack in seen:
            continue
        seen.add(stack)
        address = 0x10_0000_0000 + 32 * len(seen)
        table.on_alloc(address, rng.choice((8, 16, 24, 48, 64, 200, 4096)) * rng.randint(1, 4), "malloc", 1, stack,
                       len(seen) * 1e-4)
        kinds[address] = rng.choice(kind_choice)
    for i in range(5):
        table.on_free(0xBAD0 + 16 * i, "free", 1, (main.pc,), 1e-4 * stacks * (i + 1) / 6)
    return ProcessReport(ProcessResult(pid, ["/opt/app/bin/app", "--big"], exit_code=0), table,
                         Symbolizer(frames.__getitem__), kinds=kinds)


@dataclass
class Page:
    """A page in headless Chromium; `console_errors` and `outside_requests` collect what the report must never do
    (requests other than file:// are aborted, and recorded)."""

    page: Any
    console_errors: list[str] = field(default_factory=list)
    outside_requests: list[str] = field(default_factory=list)

    def open(self, path: Path, timeout_ms: int = 120_000) -> None:
        self.page.goto(path.as_uri(), timeout=timeout_ms)
        self.page.wait_for_selector("body[data-ready]", timeout=timeout_ms)

    def _route(self, route: Any) -> None:
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            self.outside_requests.append(route.request.url)
            route.abort()

    def _request(self, request: Any) -> None:
        if not request.url.startswith("file://"):
            self.outside_requests.append(request.url)

    def _console(self, message: Any) -> None:
        if message.type in ("error", "warning"):
            self.console_errors.append(f"{message.type}: {message.text}")


class Chromium:
    """Debian's chromium driven by Playwright with an empty profile; `page()` opens a fresh watched page."""

    def __init__(self, context: Any, width: int, height: int) -> None:
        self.context = context
        self.viewport = {"width": width, "height": height}

    def page(self) -> Page:
        raw = self.context.new_page()
        raw.set_viewport_size(self.viewport)
        page = Page(raw)
        raw.route("**/*", page._route)
        raw.on("request", page._request)
        raw.on("console", page._console)
        raw.on("pageerror", lambda error: page.console_errors.append(f"pageerror: {error}"))
        return page


@contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[Chromium]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is required (scripts/dev installs Debian's chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is required (the test extra: pip install -e '.[test]')")
    with tempfile.TemporaryDirectory(prefix="gdb-memleak-chromium-") as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True,
                                                        args=CHROMIUM_ARGS)
        try:
            yield Chromium(context, width, height)
        finally:
            context.close()
