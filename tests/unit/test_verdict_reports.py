"""Loss records carry the bytes lost through them, and heap errors say what the bad pointer is (valgrind's wording)."""

from __future__ import annotations

import io
import json

import scan_backends
from gdb_memleak.core.addressinfo import AddressInfo, Place, containing
from gdb_memleak.core.model import Frame, ProcessResult
from gdb_memleak.core.report import ProcessReport
from gdb_memleak.core.reports import ReportOptions
from gdb_memleak.core.reports.json import build_json
from gdb_memleak.core.reports.text import render_error, render_report
from gdb_memleak.core.scan import RootRegion, scan
from gdb_memleak.core.symbols import Symbolizer
from gdb_memleak.core.table import AllocationTable

APP, SRC = "/home/user/app", "/home/user/app.c"
MAIN = Frame(0x401500, "main", SRC, 50, APP)
NEW_HEAD = Frame(0x401010, "new_head", SRC, 10, APP)
NEW_NODE = Frame(0x401020, "new_node", SRC, 20, APP)
BAD_FREE = Frame(0x401030, "release", SRC, 30, APP)
FRAMES = {f.pc: f for f in (MAIN, NEW_HEAD, NEW_NODE, BAD_FREE)}
HEAP = 0x5555_5555_0000
backend = scan_backends.backend  # the tests that scan take it: they run on the pure and on the numpy scan


class Memory:
    def __init__(self, words: dict[int, int]) -> None:
        self.words = words

    def read(self, address: int, size: int) -> bytes:
        return b"".join(self.words.get(a, 0).to_bytes(8, "little") for a in range(address, address + size, 8))


def lost_list_report() -> ProcessReport:
    """A 16-byte head (lost) -> 4 nodes of 16 bytes chained: valgrind's "80 (16 direct, 64 indirect) bytes in 1
    blocks are definitely lost"; a second, separate 16-byte head with nothing behind it."""
    table = AllocationTable()
    table.on_alloc(HEAP, 16, "malloc", 1, (NEW_HEAD.pc, MAIN.pc), 0.0)
    nodes = [HEAP + 0x100 + 0x20 * i for i in range(4)]
    for node in nodes:
        table.on_alloc(node, 16, "malloc", 1, (NEW_NODE.pc, MAIN.pc), 0.0)
    table.on_alloc(HEAP + 0x400, 16, "malloc", 1, (NEW_HEAD.pc, MAIN.pc), 0.0)
    words = {HEAP: nodes[0], **{a: b for a, b in zip(nodes, nodes[1:])}}
    blocks = {b.address: b.size for b in table.blocks.values()}
    result = scan(blocks, Memory(words), [RootRegion(0x1000, 0x1010, "global")])
    report = ProcessReport(ProcessResult(1, ["./app"], exit_code=0), table, Symbolizer(FRAMES.__getitem__))
    report.kinds = {a: k.value for a, k in result.kinds.items()}
    report.leaders = result.leader
    return report


def test_definite_record_carries_the_indirect_bytes_lost_through_it(backend):
    report = lost_list_report()
    [definite, indirect] = report.leak_groups()
    assert (definite.kind, definite.bytes, definite.blocks) == ("definite", 32, 2)
    assert (definite.indirect_bytes, definite.indirect_blocks, definite.total_bytes) == (64, 4, 96)
    assert (indirect.kind, indirect.bytes, indirect.indirect_bytes) == ("indirect", 64, 0)
    leaks = build_json([report])["processes"][0]["leaks"]
    assert [(lk["kind"], lk["bytes"], lk["indirect_bytes"], lk["indirect_blocks"]) for lk in leaks] == [
        ("definite", 32, 64, 4), ("indirect", 64, 0, 0)]


def test_text_report_prints_valgrinds_direct_and_indirect_figures(backend):
    out = io.StringIO()
    render_report(lost_list_report(), out, ReportOptions(stack=True))
    assert "96 (32 direct, 64 indirect) bytes in 2 blocks are definitely lost" in out.getvalue()
    out = io.StringIO()
    render_report(lost_list_report(), out, ReportOptions())
    assert "96 (32 direct, 64 indirect)" in out.getvalue()
    assert "definitely lost: 32 bytes in 2 blocks" in out.getvalue()  # LEAK SUMMARY: direct bytes, as valgrind


def test_containing_finds_the_block_and_prefers_the_last_given():
    assert containing(0x1010, [(0x1000, 32), (0x2000, 8)]) == (0x1000, 32)
    assert containing(0x1020, [(0x1000, 32)]) is None
    assert containing(0x1008, [(0x1000, 32), (0x1008, 8)]) == (0x1008, 8)


def error_text(error, table) -> str:
    out = io.StringIO()
    render_error(ProcessReport(ProcessResult(1, ["./app"]), table, Symbolizer(FRAMES.__getitem__)), error, out)
    return out.getvalue()


def test_invalid_free_inside_a_live_block_says_where_and_shows_its_allocation():
    table = AllocationTable()
    table.on_alloc(HEAP, 32, "malloc", 1, (NEW_NODE.pc, MAIN.pc), 0.0)
    error = table.on_free(HEAP + 8, "free", 1, (BAD_FREE.pc, MAIN.pc), 0.0)
    assert error is not None
    error.address_info = AddressInfo(HEAP + 8, Place.BLOCK, 8, HEAP, 32, (NEW_NODE.pc, MAIN.pc))
    text = error_text(error, table)
    assert f"Invalid free of 0x{HEAP + 8:x}" in text
    assert f"Address 0x{HEAP + 8:x} is 8 bytes inside a block of size 32 allocated at:\n" \
           f"   at 0x{NEW_NODE.pc:x}: new_node ({SRC}:20)" in text
    info = json.loads(json.dumps(build_json([ProcessReport(ProcessResult(1, ["./app"]), table,
                                                            Symbolizer(FRAMES.__getitem__))])))
    address_info = info["processes"][0]["errors"][0]["address_info"]
    assert address_info["place"] == "block" and address_info["offset"] == 8 and address_info["block_size"] == 32
    assert address_info["alloc_stack"][0]["function"] == "new_node"


def test_invalid_realloc_is_named_as_such_and_freed_blocks_show_both_stacks():
    table = AllocationTable()
    error = table.on_free(HEAP + 16, "realloc", 1, (BAD_FREE.pc,), 0.0)
    assert error is not None
    error.address_info = AddressInfo(HEAP + 16, Place.FREED, 16, HEAP, 64, (NEW_NODE.pc,), (NEW_HEAD.pc,))
    text = error_text(error, table)
    assert text.startswith(f"Invalid realloc of 0x{HEAP + 16:x}")
    assert "is 16 bytes inside a block of size 64 free'd at:\n   at 0x401010: new_head" in text
    assert " Block was allocated at:\n   at 0x401020: new_node" in text


def test_stack_global_and_unknown_addresses_read_like_valgrind():
    assert AddressInfo(0x7FFE0, Place.STACK, thread=2).describe() == "Address 0x7ffe0 is on thread 2's stack"
    assert AddressInfo(0x4010, Place.GLOBAL, 8, symbol="table", section=".bss", object=APP).describe() == \
        f"Address 0x4010 is in a global: table+8 (section .bss of {APP})"
    assert "not on a stack, not in a heap block" in AddressInfo(0x10, Place.UNKNOWN).describe()
