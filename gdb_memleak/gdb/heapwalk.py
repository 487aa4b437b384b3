"""The blocks live in a stopped process's glibc heap (core/glibc_heap.py), its layout and roots read through GDB.

The layout comes from libc's debug info (libc6-dbg): field offsets of malloc_state, heap_info and
tcache_perthread_struct; the roots are &main_arena, mp_.sbrk_base and each thread's `tcache` (a TLS variable, read
with each thread selected in turn: GDB reads TLS through libthread_db). Only symbol look-ups and memory reads:
nothing in the program is called. Memory is read through /proc/PID/mem.
"""

from __future__ import annotations

import contextlib
import dataclasses

import gdb

from ..core.agent_format import AgentFormatError, ProcMemory
from ..core.glibc_heap import GlibcLayout, HeapRoots, HeapWalk
from ..core.glibc_heap import walk as walk_heap
from ..core.procmaps import read_maps
from .threadstop import each_thread

NO_SYMBOLS = ("glibc's debug symbols are missing (install libc6-dbg): blocks allocated before tracking started are "
              "unknown")
TCACHE = "'malloc.c'::tcache"  # malloc.c's own: a program may have a `tcache` of its own


def walk(inferior: gdb.Inferior) -> HeapWalk | str:
    """The in-use blocks of the (stopped) inferior; else one line saying why they cannot be known."""
    layout = glibc_layout()
    if layout is None:
        return NO_SYMBOLS
    try:
        main_arena = int(gdb.parse_and_eval("&main_arena"))
        sbrk_base = int(gdb.parse_and_eval("(unsigned long)mp_.sbrk_base"))
        huge_page = int(gdb.parse_and_eval("mp_.hp_pagesize"))
    except gdb.error:
        return NO_SYMBOLS
    if huge_page:  # the glibc.malloc.hugetlb tunable: heaps are 4 huge pages, aligned to that
        layout = dataclasses.replace(layout, heap_max_size=4 * huge_page)
    tcaches = thread_tcaches(inferior)
    if isinstance(tcaches, str):
        return tcaches
    try:
        roots = HeapRoots(main_arena, sbrk_base, tcaches, tuple(read_maps(inferior.pid)))
        with ProcMemory(inferior.pid) as memory:
            return walk_heap(memory.read, layout, roots)
    except (OSError, AgentFormatError) as error:
        return f"the heap of process {inferior.pid} cannot be read ({error}): blocks allocated before tracking " \
               "started are unknown"


def glibc_layout() -> GlibcLayout | None:
    """Offsets from libc's debug info; None without it."""
    try:
        state = gdb.lookup_type("struct malloc_state")
        heap = gdb.lookup_type("struct _heap_info")
        tcache = gdb.lookup_type("struct tcache_perthread_struct")
    except gdb.error:
        return None
    s, h, t = fields(state), fields(heap), fields(tcache)
    if not {"mutex", "fastbinsY", "top", "bins", "next", "system_mem"} <= set(s) \
            or not {"ar_ptr", "prev", "size"} <= set(h) or not {"counts", "entries"} <= set(t):
        return None
    return GlibcLayout(
        state_mutex=s["mutex"][0], state_fastbins=s["fastbinsY"][0], fastbin_count=s["fastbinsY"][1] // 8,
        state_top=s["top"][0], state_bins=s["bins"][0], bin_count=s["bins"][1] // 8, state_next=s["next"][0],
        state_system_mem=s["system_mem"][0], state_size=state.sizeof,
        heap_ar_ptr=h["ar_ptr"][0], heap_prev=h["prev"][0], heap_size=h["size"][0], heap_info_size=heap.sizeof,
        tcache_counts=t["counts"][0], tcache_entries=t["entries"][0], tcache_bins=t["entries"][1] // 8)


def fields(struct: gdb.Type) -> dict[str, tuple[int, int]]:
    """Each field's (byte offset, size in bytes)."""
    found = {}
    for field in struct.fields():
        if field.name is not None and field.bitpos is not None and field.type is not None:
            found[field.name] = (field.bitpos // 8, field.type.sizeof)
    return found


def thread_tcaches(inferior: gdb.Inferior) -> tuple[int, ...] | str:
    """Each live thread's `tcache` (0 where it is not set up yet). The thread and frame selected before are selected
    again. A thread whose tcache cannot be read makes the walk wrong (its tcache's chunks would count as blocks):
    one line says so instead."""
    values = []
    with contextlib.closing(each_thread(inferior)) as threads:  # closed at once: the selection comes back now
        for thread in threads:
            try:
                values.append(int(gdb.parse_and_eval(TCACHE)))
            except gdb.error as error:
                return f"the tcache of thread {thread.num} cannot be read ({error}): blocks allocated before " \
                       "tracking started are unknown"
    return tuple(values)
