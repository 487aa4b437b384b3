"""The region table (split on partial munmap, mremap, MAP_FIXED overlays), System V segments and POSIX objects, fork
inheritance, and how reports show what is left behind."""

from __future__ import annotations

import io
import json

import pytest

from gdb_memleak.core.mappings import (
    MAP_ANONYMOUS,
    MAP_FAILED,
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    PROT_READ,
    PROT_WRITE,
    MappingTable,
    SysvInfo,
    backing_of,
    flags_text,
    parse_mapping_kinds,
    parse_sysvipc,
    prot_text,
)
from gdb_memleak.core.model import Frame, ProcessResult
from gdb_memleak.core.report import ProcessReport
from gdb_memleak.core.reports import ReportOptions
from gdb_memleak.core.reports.json import build_json, frame_json
from gdb_memleak.core.reports.text import render_mappings, render_report
from gdb_memleak.core.symbols import Symbolizer
from gdb_memleak.core.table import AllocationTable

PAGE = 4096
RW, ANON_PRIVATE = PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS
BASE = 0x7F00_0000_0000
SITE = Frame(0x401234, "share", "/src/app.c", 12, "/src/app")


def mapped(table: MappingTable, address: int, length: int, flags: int = ANON_PRIVATE) -> None:
    table.on_map(address, length, RW, flags, "anonymous", "mmap", (SITE.pc,), 1, 0.0)


def spans(table: MappingTable) -> list[tuple[int, int]]:
    return [(r.start - BASE, r.length) for r in table.leaked_regions()]


def test_partial_munmap_of_the_middle_page_splits_a_region_in_two():
    table = MappingTable(PAGE)
    mapped(table, BASE, 3 * PAGE)
    assert table.on_unmap(BASE + PAGE, PAGE) == PAGE
    assert spans(table) == [(0, PAGE), (2 * PAGE, PAGE)]
    assert all(r.pcs == (SITE.pc,) for r in table.leaked_regions())


def test_munmap_works_on_whole_pages_and_keeps_the_length_asked_for():
    table = MappingTable(PAGE)
    mapped(table, BASE, PAGE + 100)          # two pages in the kernel, 4196 bytes asked for
    table.on_unmap(BASE, 1)                  # rounds up to the first page
    assert spans(table) == [(PAGE, 100)]
    table.on_unmap(BASE + PAGE, 100)
    assert spans(table) == []


def test_one_munmap_across_several_regions_cuts_each():
    table = MappingTable(PAGE)
    mapped(table, BASE, PAGE)
    mapped(table, BASE + PAGE, 2 * PAGE)
    mapped(table, BASE + 4 * PAGE, PAGE)
    table.on_unmap(BASE, 2 * PAGE)  # pages 0 and 1
    assert spans(table) == [(2 * PAGE, PAGE), (4 * PAGE, PAGE)]


def test_munmap_of_untracked_memory_changes_nothing():
    table = MappingTable(PAGE)
    mapped(table, BASE, PAGE)
    assert table.on_unmap(BASE + 8 * PAGE, PAGE) == 0
    assert table.overlapping(BASE + 8 * PAGE, PAGE) == []
    assert spans(table) == [(0, PAGE)]


def test_map_fixed_over_a_region_replaces_the_pages_it_covers():
    table = MappingTable(PAGE)
    mapped(table, BASE, 3 * PAGE)
    table.on_map(BASE + PAGE, PAGE, PROT_READ, ANON_PRIVATE | MAP_FIXED, "/etc/hosts", "mmap", (), 1, 0.0)
    assert spans(table) == [(0, PAGE), (PAGE, PAGE), (2 * PAGE, PAGE)]
    assert [r.backing for r in table.leaked_regions()] == ["anonymous", "/etc/hosts", "anonymous"]


def test_failed_mmap_is_no_region():
    table = MappingTable(PAGE)
    assert table.on_map(MAP_FAILED, PAGE, RW, ANON_PRIVATE, "anonymous", "mmap", (), 1, 0.0) is None
    assert spans(table) == []


def test_mremap_moves_the_pages_and_keeps_the_attributes_with_the_mremap_stack():
    table = MappingTable(PAGE)
    table.on_map(BASE, 2 * PAGE, RW, MAP_SHARED, "/dev/zero", "mmap", (1,), 1, 0.0)
    new = BASE + 16 * PAGE
    region = table.on_remap(BASE, 2 * PAGE, new, 5 * PAGE, (2,), 1, 0.0)
    assert region is not None and (region.call, region.backing, region.flags, region.pcs) == \
        ("mremap", "/dev/zero", MAP_SHARED, (2,))
    assert spans(table) == [(16 * PAGE, 5 * PAGE)]


def test_mremap_of_memory_not_tracked_stays_untracked():
    table = MappingTable(PAGE)
    assert table.on_remap(BASE, PAGE, BASE + PAGE, 2 * PAGE, (), 1, 0.0) is None
    assert spans(table) == []


def test_sysv_segment_removed_by_rmid_or_by_another_process_is_not_left_behind():
    table = MappingTable(PAGE)
    table.on_shmget(7, 0, 1024, (SITE.pc,), 1, 0.0)
    table.on_shmget(8, 0x1234, 2048, (SITE.pc,), 1, 0.0)
    table.on_shmget(9, 0, 512, (SITE.pc,), 1, 0.0)
    table.on_rmid(7)
    alive = {8: SysvInfo(0x1234, 8, 0o600, 2048, 1, 0), 9: SysvInfo(0, 9, 0o600 | 0o1000, 512, 1, 1)}
    table.settle(alive, lambda path: None)
    assert [(s.shmid, s.key, s.size) for s in table.leaked_segments()] == [(8, 0x1234, 2048)]


def test_sysv_attachment_is_a_region_until_shmdt():
    table = MappingTable(PAGE)
    table.on_map(BASE, 1024, RW, MAP_SHARED, "sysv shmid 3", "shmat", (), 1, 0.0, shmid=3)
    assert not table.on_shmdt(BASE + PAGE)
    assert table.on_shmdt(BASE)
    assert spans(table) == []


def test_posix_object_left_is_reported_with_its_size_unlinked_or_vanished_is_not():
    table = MappingTable(PAGE)
    for name in ("/kept", "/unlinked", "/gone"):
        table.on_shm_open(name, (SITE.pc,), 1, 0.0)
    table.on_shm_unlink("/unlinked")
    sizes = {"/dev/shm/kept": 4096, "/dev/shm/unlinked": 4096}
    table.settle(None, sizes.get)
    assert [(o.name, o.size) for o in table.leaked_objects()] == [("/kept", 4096)]


def test_forked_child_inherits_everything_but_reports_only_what_it_makes():
    parent = MappingTable(PAGE)
    mapped(parent, BASE, 2 * PAGE, MAP_SHARED | MAP_ANONYMOUS)
    parent.on_shmget(5, 0, 1024, (), 1, 0.0)
    parent.on_shm_open("/obj", (), 1, 0.0)
    child = parent.fork()
    assert child.counts() == {"mappings": 0, "sysv": 0, "posix": 0}
    child.on_unmap(BASE, 2 * PAGE)             # its own copy: the parent's stays
    mapped(child, BASE + 8 * PAGE, PAGE)
    assert spans(child) == [(8 * PAGE, PAGE)]
    assert spans(parent) == [(0, 2 * PAGE)]
    assert parent.counts() == {"mappings": 1, "sysv": 1, "posix": 1}


def test_allocation_table_fork_copies_the_mappings():
    table = AllocationTable()
    mapped(table.mappings, BASE, PAGE)
    child = table.fork()
    assert child.mappings is not table.mappings and child.mappings.leaked_regions() == []
    assert len(child.mappings.regions) == 1


def test_proc_sysvipc_rows_parse_with_octal_perms():
    text = ("       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime"
            "      dtime      ctime                   rss                  swap\n"
            "         0          3  1600                  1024 14236 14236      1     0     0     0     0 0 0 0"
            " 4096 0\n")
    info = parse_sysvipc(text)[3]
    assert (info.key, info.size, info.cpid, info.nattch, info.marked_for_removal) == (0, 1024, 14236, 1, True)


def test_texts_for_protection_flags_and_backing():
    assert prot_text(PROT_READ) == "r--" and prot_text(RW) == "rw-"
    assert flags_text(MAP_SHARED | MAP_ANONYMOUS) == "MAP_SHARED|MAP_ANONYMOUS"
    assert backing_of(MAP_SHARED, 4, "/dev/zero") == "/dev/zero"
    assert backing_of(MAP_SHARED | MAP_ANONYMOUS, -1, None) == "anonymous"
    assert backing_of(MAP_SHARED, 5, "/memfd:pool (deleted)") == "memfd:pool"


def test_mapping_kinds_parse_like_leak_kinds():
    assert parse_mapping_kinds("all") == {"mappings", "sysv", "posix"}
    assert parse_mapping_kinds("none") == frozenset()
    assert parse_mapping_kinds("sysv") == {"sysv"}
    with pytest.raises(ValueError, match="unknown mapping kind heap"):
        parse_mapping_kinds("heap")


@pytest.fixture
def report() -> ProcessReport:
    table = AllocationTable()
    m = table.mappings
    m.on_map(BASE, 1024, RW, MAP_SHARED | MAP_ANONYMOUS, "anonymous", "mmap", (SITE.pc,), 1, 0.0)
    m.on_shmget(42, 0, 1024, (SITE.pc,), 1, 0.0)
    m.on_shm_open("/app-cache", (SITE.pc,), 1, 0.0).size = 8192
    return ProcessReport(ProcessResult(77, ["./app"], exit_code=0), table, Symbolizer({SITE.pc: SITE}.__getitem__))


def test_json_lists_mappings_and_shm_of_each_process(report: ProcessReport):
    process = build_json([report])["processes"][0]
    assert process["mappings"] == [{"address": f"0x{BASE:x}", "length": 1024, "prot": "rw-",
                                    "flags": "MAP_SHARED|MAP_ANONYMOUS", "backing": "anonymous", "call": "mmap",
                                    "stack": [frame_json(SITE)]}]
    assert [(s["type"], s.get("shmid"), s.get("name"), s["size"]) for s in process["shm"]] == \
        [("sysv", 42, None, 1024), ("posix", None, "/app-cache", 8192)]
    json.dumps(process)


def test_text_report_has_its_own_section_and_the_verdict_counts_the_chosen_kinds(report: ProcessReport):
    out = io.StringIO()
    render_report(report, out, ReportOptions())
    text = out.getvalue()
    assert "MAPPINGS: 1,024 bytes in 1 region mapped and never unmapped" in text
    assert "SHARED MEMORY: 1 System V segment never marked for removal, 1 POSIX object never unlinked" in text
    assert "share (/src/app.c:12)" in text
    assert "1 System V segment never removed; 1 POSIX shm object never unlinked" in text
    assert "region never unmapped" not in text            # not counted by default
    assert report.findings(frozenset(), frozenset({"mappings"}))
    assert not report.findings(frozenset(), frozenset())


def test_full_stacks_on_demand(report: ProcessReport):
    out = io.StringIO()
    render_mappings(report, out, ReportOptions(stack=True), regions=False)
    assert "sysv shmid 42 key 0x00000000: 1,024 bytes, created at:\n   at 0x401234: share (/src/app.c:12)" in \
        out.getvalue()


def test_a_report_without_mappings_has_no_mapping_section():
    report = ProcessReport(ProcessResult(1, ["./x"], exit_code=0), AllocationTable(), Symbolizer(lambda pc: SITE))
    out = io.StringIO()
    render_report(report, out)
    assert "MAPPINGS" not in out.getvalue() and "SHARED MEMORY" not in out.getvalue()
