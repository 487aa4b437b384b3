"""The HTML report in a real headless browser (Debian's chromium driven by Playwright): the files real runs write
(`gdb-memleak --html FILE -- c_targets/bin/...`) and a synthetic 100,000-stack report.

Every test ends by checking that the page logged no console error and tried no request outside the file.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import expectations
from conftest import ROOT, TARGETS, compile_target, run_gdb
from html_pages import Chromium, Page, chromium, embedded_data, render_html, synthetic_report

SEED = expectations.parse(TARGETS / "seed_demo.c")
LEAK_SITES = expectations.parse(TARGETS / "leak_sites.c")
LARGE_STACKS = 100_000
LARGE_RENDER_SECONDS = 20  # "a few seconds" on a quiet machine; generous for a loaded 2-core one


def cli_html(program: Path, page: Path) -> Path:
    """The page of a CLI run under the breakpoint engine: its timeline is the one with points and error marks (the
    recorder engine does not feed the timeline yet: tests/gdb/test_html_runs.py)."""
    run = subprocess.run([sys.executable, "-m", "gdb_memleak.cli.main", "--engine", "breakpoint", "--html", str(page),
                          "--", str(program)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert page.exists(), run.stderr
    return page


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    with chromium() as instance:
        yield instance


@pytest.fixture(scope="module")
def seed_html(built_targets: Path, tmp_path_factory) -> Path:
    return cli_html(built_targets / "seed_demo", tmp_path_factory.mktemp("seed") / "seed.html")


@pytest.fixture(scope="module")
def leak_sites_html(built_targets: Path, tmp_path_factory) -> Path:
    return cli_html(built_targets / "leak_sites", tmp_path_factory.mktemp("leak_sites") / "leak_sites.html")


@pytest.fixture
def page(browser: Chromium) -> Iterator[Page]:
    opened = browser.page()
    yield opened
    assert opened.console_errors == []
    assert opened.outside_requests == []
    opened.page.close()


def box(page: Page, name: str):
    return page.page.locator(f'#flame .box[data-name="{name}"]')


def hover_text(page: Page, name: str) -> str:
    box(page, name).hover()
    return page.page.inner_text("#tooltip")


def table_column(page: Page, index: int) -> list[str]:
    return page.page.eval_on_selector_all("#leaks tbody tr.row", f"rows => rows.map(r => r.cells[{index}].innerText)")


def as_int(text: str) -> int:
    return int(text.replace(",", "").lstrip("#"))


def width(page: Page, selector: str) -> float:
    return page.page.eval_on_selector(selector, "e => e.getBoundingClientRect().width")


# -- the seed demo --------------------------------------------------------------------------------------------------
def test_seed_report_shows_main_with_30_bytes_and_a_double_free_marker(page: Page, seed_html: Path):
    page.open(seed_html)
    (line, (nbytes, nblocks)), = SEED.leaks.items()
    main = box(page, "main")
    assert main.count() == 1
    assert main.get_attribute("data-value") == str(nbytes)
    tip = hover_text(page, "main")
    assert f"{nbytes} bytes in {nblocks} block" in tip
    assert f"seed_demo.c:{line}" in tip and "allocated by malloc" in tip
    assert f"seed_demo.c:{SEED.double_frees['p4']}" not in tip  # the bad free's line holds no live byte
    assert "Double free of 0x" in tip
    marker = main.locator(".err")
    assert marker.get_attribute("title") == "double free"
    timeline_mark = page.page.locator('#timeline .mark-error[data-type="double_free"]')
    assert timeline_mark.count() == 1 and timeline_mark.locator("text").text_content() == "double free"
    assert page.page.locator("#errors .error h3").inner_text().startswith("Double free of 0x")
    assert "SUMMARY: 1 heap error; 30 bytes definitely lost" in page.page.inner_text("#verdict")


def test_clicking_the_double_free_marker_scrolls_to_the_error(page: Page, seed_html: Path):
    page.page.set_viewport_size({"width": 1280, "height": 500})
    page.open(seed_html)
    below = "() => document.getElementById('error-0').getBoundingClientRect().top >= innerHeight"
    assert page.page.evaluate(below)
    box(page, "main").locator(".err").click()
    page.page.wait_for_function(f"() => !({below})()")


def test_seed_table_row_expands_to_its_stack_and_source(page: Page, seed_html: Path):
    page.open(seed_html)
    (line, (nbytes, _)), = SEED.leaks.items()
    page.page.click("#leaks tbody tr.row")
    detail = page.page.locator("#leaks tr.detail")
    assert "at 0x" in detail.locator("pre").first.inner_text()
    marked = detail.locator(".src .hll").inner_text()
    assert f"malloc({nbytes})" in marked and str(line) in marked


# -- leak_sites: several stacks, several kinds -----------------------------------------------------------------------
def test_clicking_a_box_zooms_into_its_subtree(page: Page, leak_sites_html: Path):
    page.open(leak_sites_html)
    flame = width(page, "#flame")
    assert width(page, '#flame .box[data-name="make_list"]') < flame * 0.9
    assert box(page, "leak_in_loop").count() == 1
    box(page, "make_list").click()
    assert width(page, '#flame .box[data-name="make_list"]') == pytest.approx(flame, abs=3)
    assert box(page, "leak_in_loop").count() == 0        # a sibling: outside the zoomed subtree
    assert "anc" in box(page, "main").get_attribute("class")   # ancestors stay above, dimmed, to zoom back out
    box(page, "main").click()
    assert box(page, "leak_in_loop").count() == 1
    box(page, "make_list").click()
    page.page.click("#reset-zoom")
    assert box(page, "leak_in_loop").count() == 1


def test_search_highlights_the_matching_frames(page: Page, leak_sites_html: Path):
    page.open(leak_sites_html)
    page.page.fill("#search", "node_al+oc")
    page.page.wait_for_selector("#flame .box.hit")
    hits = page.page.eval_on_selector_all("#flame .box.hit", "boxes => boxes.map(b => b.dataset.name)")
    assert hits == ["node_alloc"]
    assert page.page.locator("#flame .box.dim").count() > 0
    (node_line,) = [line for line in LEAK_SITES.leaks if LEAK_SITES.leak_kind(line) == "indirect"]
    nbytes = LEAK_SITES.leaks[node_line][0]
    assert page.page.inner_text("#search-result").startswith(f"matched 1 frame: {nbytes} bytes")
    page.page.fill("#search", "no_such_function")
    page.page.wait_for_function("() => document.getElementById('search-result').textContent === 'no frame matches'")
    page.page.fill("#search", "")
    page.page.wait_for_function("() => !document.querySelector('#flame .box.hit, #flame .box.dim')")


def test_switch_to_blocks_sizes_boxes_by_block_count(page: Page, leak_sites_html: Path):
    page.open(leak_sites_html)
    (loop_line,) = [line for line, (b, n) in LEAK_SITES.leaks.items() if n == 10]
    nbytes, nblocks = LEAK_SITES.leaks[loop_line]
    assert box(page, "leak_in_loop").get_attribute("data-value") == str(nbytes)
    page.page.check('input[name=metric][value=blocks]')
    assert box(page, "leak_in_loop").get_attribute("data-value") == str(nblocks)


def test_flip_turns_the_icicle_into_a_flame(page: Page, leak_sites_html: Path):
    page.open(leak_sites_html)
    top = lambda: page.page.eval_on_selector('#flame .box[data-id="0"]', "b => b.offsetTop")  # noqa: E731
    assert top() == 0
    page.page.click("#flip")
    lowest = page.page.eval_on_selector_all("#flame .box", "boxes => Math.max(...boxes.map(b => b.offsetTop))")
    assert top() > 0 and top() == lowest


def test_table_sorts_by_the_clicked_column(page: Page, leak_sites_html: Path):
    page.open(leak_sites_html)
    page.page.click('#leaks th[data-key="bytes"]')
    down = [as_int(t.split(" ")[0]) for t in table_column(page, 2)]  # the total: "64 (16 direct, 48 indirect)"
    assert len(down) > 2 and down == sorted(down, reverse=True) and down != sorted(down)
    page.page.click('#leaks th[data-key="bytes"]')
    assert [as_int(t.split(" ")[0]) for t in table_column(page, 2)] == sorted(down)
    page.page.click('#leaks th[data-key="first"]')
    firsts = [as_int(t) for t in table_column(page, 5)]
    assert firsts == sorted(firsts)


def test_table_filters_by_kind_like_leaks(page: Page, leak_sites_html: Path):
    page.open(leak_sites_html)
    labels = set(table_column(page, 1))
    assert labels and all(label.strip() in ("definitely lost", "possibly lost") for label in labels)
    page.page.check('#table-kinds input[data-k="1"]')   # indirectly lost
    assert "indirectly lost" in {label.strip() for label in table_column(page, 1)}
    page.page.uncheck('#table-kinds input[data-k="0"]')
    assert {label.strip() for label in table_column(page, 1)} == {"indirectly lost"}


def test_unchecking_a_kind_removes_its_bytes_from_the_graph(page: Page, leak_sites_html: Path):
    page.open(leak_sites_html)
    assert box(page, "node_alloc").count() == 1
    page.page.uncheck('#flame-kinds input[data-k="1"]')   # indirectly lost: node_alloc's list nodes
    assert box(page, "node_alloc").count() == 0


# -- size and processes ---------------------------------------------------------------------------------------------
def test_large_report_of_100000_stacks_renders_within_seconds(page: Page, tmp_path: Path):
    path = tmp_path / "large.html"
    path.write_text(render_html([synthetic_report(LARGE_STACKS)]))
    start = time.monotonic()
    page.open(path)
    elapsed = time.monotonic() - start
    assert elapsed < LARGE_RENDER_SECONDS, f"{elapsed:.1f} s to render {LARGE_STACKS:,} stacks"
    boxes = page.page.locator("#flame .box").count()
    assert 10 < boxes < 20_000                               # tiny boxes merged, not 100,000s drawn
    assert page.page.locator("#flame .box.merged").count() > 0
    assert page.page.locator("#leaks tbody tr.row").count() == 500   # the table draws a page at a time
    page.page.click("#more")
    assert page.page.locator("#leaks tbody tr.row").count() == 1000
    print(f"\n{LARGE_STACKS:,} stacks: {path.stat().st_size / 1e6:.1f} MB, rendered in {elapsed:.1f} s, "
          f"{boxes} boxes")


def test_several_processes_get_a_selector(page: Page, tmp_path: Path):
    path = tmp_path / "two.html"
    path.write_text(render_html([synthetic_report(20, pid=111), synthetic_report(30, seed=1, pid=222)]))
    page.open(path)
    assert page.page.is_visible("#process")
    assert "process 111" in page.page.inner_text("#header-text")
    page.page.select_option("#process", "1")
    assert "process 222" in page.page.inner_text("#header-text")
    groups = embedded_data(path.read_text())["processes"][1]["groups"]
    assert page.page.locator("#leaks tbody tr.row").count() == sum(1 for g in groups if g[0] in (0, 2, 4))


# -- a definite loss record's indirect bytes in the table, as `leaks` shows them ("160 (16 direct,
# 144 indirect)") and sorted by that total; the timeline's mark labels never overlap, however close the errors are --

LABEL_BOXES = """() => [...document.querySelectorAll('#timeline .mark text')].map(t => {
  const r = t.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom, t.textContent]; })"""
PLOT_TOP = "() => document.querySelector('#timeline .peak').getBoundingClientRect().top"
SVG_BOX = """() => { const r = document.querySelector('#timeline svg').getBoundingClientRect();
  return [r.left, r.right]; }"""


def overlapping(boxes: list) -> list:
    return [(a[4], b[4]) for i, a in enumerate(boxes) for b in boxes[i + 1:]
            if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]]


def assert_labels_apart(page: Page) -> list:
    boxes = page.page.evaluate(LABEL_BOXES)
    assert boxes, "no mark label drawn"
    assert overlapping(boxes) == [], boxes
    left, right = page.page.evaluate(SVG_BOX)
    assert all(left <= b[0] and b[2] <= right for b in boxes), boxes
    assert max(b[3] for b in boxes) <= page.page.evaluate(PLOT_TOP) + 1  # above the plot, not over the curves
    return boxes


def test_labels_of_heap_errors_made_close_together_do_not_overlap(page: Page, built_targets: Path, tmp_path: Path):
    """bad_free_burst makes three invalid frees in a row after a long run: three labels at nearly one x."""
    page.open(cli_html(built_targets / "bad_free_burst", tmp_path / "burst.html"))
    assert page.page.locator("#timeline .mark-error").count() == 3
    assert [b[4] for b in assert_labels_apart(page)] == ["invalid free"] * 3


def test_labels_of_many_errors_at_one_time_keep_apart_and_their_marks_stay(page: Page, tmp_path: Path):
    report = synthetic_report(50)
    for i in range(30):  # 30 invalid frees in the same instant, beside the 5 spread ones
        report.table.on_free(0xDEAD00 + 16 * i, "free", 1, report.table.errors[0].pcs, 0.001)
    path = tmp_path / "many.html"
    path.write_text(render_html([report]))
    page.open(path)
    assert page.page.locator("#timeline .mark-error").count() == 35  # every mark keeps its line and tooltip
    assert 2 <= len(assert_labels_apart(page)) < 35


def test_table_shows_indirect_bytes_like_leaks_and_sorts_by_the_total(page: Page, built_targets: Path,
                                                                      tmp_path: Path):
    """lost_list: the head is definitely lost with its list behind it, "160 (16 direct, 144 indirect)" in `leaks`
    and valgrind ("160 (16 direct, 144 indirect) bytes in 1 blocks are definitely lost")."""
    page.open(cli_html(built_targets / "lost_list", tmp_path / "lost_list.html"))
    cells = page.page.eval_on_selector_all("#leaks tbody tr.row", "rows => rows.map(r => r.cells[2].innerText)")
    assert "160 (16 direct, 144 indirect)" in cells, cells
    page.page.click('#leaks th[data-key="bytes"]')  # largest first
    cells = page.page.eval_on_selector_all("#leaks tbody tr.row", "rows => rows.map(r => r.cells[2].innerText)")
    totals = [int(c.split(" ")[0].replace(",", "")) for c in cells]
    assert totals == sorted(totals, reverse=True), cells
    row = page.page.locator("#leaks tbody tr.row", has_text="160 (16 direct, 144 indirect)")
    row.click()
    assert "160 (16 direct, 144 indirect) bytes in 1 block are definitely lost" in \
        page.page.inner_text("#leaks tbody tr.detail")


# -- what keeps growing: its lines over the timeline ----------------------------------------------------------------
GROWTH_SOURCE = TARGETS / "growth" / "growth_steps.c"
GROWTH = expectations.defines(GROWTH_SOURCE)


def test_timeline_draws_the_line_of_the_stack_that_keeps_growing(page: Page, tmp_path: Path):
    """growth_steps checked at each of its steps, then `leaks --html`: the leak's live bytes at every checkpoint
    as one rising line in the timeline's growth panel; the cache, which stopped growing, has none."""
    program = compile_target(GROWTH_SOURCE, tmp_path)
    path = tmp_path / "growth.html"
    steps = ["memleak check", "continue"] * (GROWTH["STEPS"] - 1)
    run = run_gdb(["set memleak engine breakpoint", "memleak start", "break step_done", "run", *steps,
                   "memleak check", f"leaks --html {path}"], program)
    assert path.exists(), run.stdout + run.stderr
    page.open(path)
    line = page.page.locator("#timeline g.growth")
    assert line.count() == 1 and line.get_attribute("data-site") == "leak_one"
    assert line.locator("text").text_content().startswith("leak_one (")
    heights = [float(y) for y in page.page.eval_on_selector_all("#timeline g.growth circle",
                                                                "cs => cs.map(c => c.getAttribute('cy'))")]
    assert len(heights) == GROWTH["STEPS"]
    assert heights == sorted(heights, reverse=True) and heights[0] > heights[-1]  # rising: y grows downwards
