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
class Browser:
    """A page in headless Chromium; `console_errors` and `outside_requests` collect what the report must never do."""

    page: object
    console_errors: list[str] = field(default_factory=list)
    outside_requests: list[str] = field(default_factory=list)

    def open(self, path: Path, timeout_ms: int = 60_000) -> None:
        self.page.goto(path.as_uri())  # type: ignore[attr-defined]
        self.page.wait_for_selector("body[data-ready]", timeout=timeout_ms)  # type: ignore[attr-defined]


@contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[Browser]:
    """Debian's chromium driven by Playwright, with an empty profile; requests other than file:// are aborted and
    recorded."""
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is required (scripts/dev installs Debian's chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is required (the test extra: pip install -e '.[test]')")
    with tempfile.TemporaryDirectory(prefix="gdb-memleak-chromium-") as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True,
                                                        args=CHROMIUM_ARGS, viewport={"width": width,
                                                                                      "height": height})
        try:
            page = context.new_page()
            browser = Browser(page)

            def route(r) -> None:
                if r.request.url.startswith("file://"):
                    r.continue_()
                else:
                    browser.outside_requests.append(r.request.url)
                    r.abort()

            context.route("**/*", route)
            page.on("request", lambda request: None if request.url.startswith("file://")
                    else browser.outside_requests.append(request.url))
            page.on("console", lambda message: browser.console_errors.append(message.text)
                    if message.type in ("error", "warning") else None)
            page.on("pageerror", lambda error: browser.console_errors.append(str(error)))
            yield browser
        finally:
            context.close()
