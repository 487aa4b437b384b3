"""ProcessReport helpers, Frame.location, allocator specs and the x86-64 ABI table."""

from __future__ import annotations

import os
import re

import pytest

from gdb_memleak.core.abi import ABIS, X86_64_SYSV
from gdb_memleak.core.allocators import C_ALLOCATORS, FAMILY_ALLOCATORS, Role, by_name
from gdb_memleak.core.model import Frame, ProcessResult
from gdb_memleak.core.report import ProcessReport
from gdb_memleak.core.symbols import Symbolizer
from gdb_memleak.core.table import AllocationTable


def counting_symbolizer():
    calls = []

    def resolve(pc):
        calls.append(pc)
        return Frame(pc, f"f{pc:x}", object="/lib/x86_64-linux-gnu/libc.so.6" if pc < 0x100 else "/app")
    return Symbolizer(resolve), calls


def test_warm_resolves_every_pc_a_report_may_show():
    table = AllocationTable()
    table.on_alloc(0x1000, 8, "malloc", 1, (0x11, 0x401000), 0.0)
    table.on_alloc(0x2000, 8, "malloc", 1, (0x402000,), 0.0)
    table.on_free(0x2000, "free", 1, (0x403000,), 0.0)
    table.on_free(0x2000, "free", 1, (0x404000,), 0.0)
    symbolizer, calls = counting_symbolizer()
    ProcessReport(ProcessResult(1), table, symbolizer).warm()
    assert set(calls) == {0x11, 0x401000, 0x402000, 0x403000, 0x404000}


def test_site_is_first_user_frame_of_stack():
    symbolizer, _ = counting_symbolizer()
    report = ProcessReport(ProcessResult(1), AllocationTable(), symbolizer)
    assert report.site((0x11, 0x401000)).pc == 0x401000


def test_has_findings_for_leaks_or_errors_only():
    symbolizer, _ = counting_symbolizer()
    clean = AllocationTable()
    assert not ProcessReport(ProcessResult(1), clean, symbolizer).has_findings
    leaky = AllocationTable()
    leaky.on_alloc(0x1000, 1, "malloc", 1, (), 0.0)
    assert ProcessReport(ProcessResult(1), leaky, symbolizer).has_findings
    bad = AllocationTable()
    bad.on_free(0x1000, "free", 1, (), 0.0)
    assert ProcessReport(ProcessResult(1), bad, symbolizer).has_findings


def test_frame_location_is_file_line_or_object():
    assert Frame(1, "f", "a.c", 3, "/app").location == "a.c:3"
    assert Frame(1, "f", "a.c", None, "/app").location == "/app"
    assert Frame(1, "f").location == "??"


@pytest.mark.parametrize("name, args, size", [
    ("malloc", (100,), 100),
    ("calloc", (7, 9), 63),
    ("realloc", (0x1000, 48), 48),
    ("free", (0x1000,), 1),
])
def test_allocator_size_is_product_of_size_args(name, args, size):
    assert by_name()[name].size(args) == size


def test_allocator_specs_describe_their_arguments():
    specs = by_name(C_ALLOCATORS + FAMILY_ALLOCATORS)
    assert set(by_name(C_ALLOCATORS)) == {"malloc", "calloc", "realloc", "free"}
    assert set(by_name()) >= set(by_name(C_ALLOCATORS))
    assert [specs[n].arg_count for n in ("malloc", "calloc", "realloc", "free", "posix_memalign")] == [1, 2, 2, 1, 3]
    assert specs["free"].needs_return is False
    assert all(specs[n].needs_return for n in specs if n != "free")
    assert specs["realloc"].role is Role.REALLOC and specs["realloc"].ptr_arg == 0
    assert specs["reallocarray"].size((0, 3, 5)) == 15


def test_x86_64_abi_registers():
    abi = ABIS["i386:x86-64"]
    assert abi is X86_64_SYSV
    assert abi.arg_registers[:2] == ("rdi", "rsi")
    assert (abi.index("rdi"), abi.index("rsi"), abi.index("rax"), abi.index("rip"), abi.index("rsp")) == (
        14, 13, 10, 16, 19)
    assert len(abi.user_regs) == 27


def test_x86_64_user_regs_match_system_header():
    header = "/usr/include/x86_64-linux-gnu/sys/user.h"
    if not os.path.exists(header):
        pytest.skip(f"{header} not installed")
    with open(header) as f:
        text = f.read()
    body = re.search(r"struct user_regs_struct\s*\{(.*?)\};", text, re.S).group(1)
    assert tuple(re.findall(r"(\w+);", body)) == X86_64_SYSV.user_regs
