"""`memleak block ADDR`: everything known about one heap block, including who points at it."""

from __future__ import annotations

from typing import TextIO

import gdb

from ..core.kinds import LABELS
from ..core.model import Block
from ..core.reports.text import render_stack
from ..core.scan import Referrer
from .symbolize import minimal_symbol
from .tracking import Tracking


def find_block(tracking: Tracking, address: int) -> Block | None:
    tracking.engine.sync()
    table = tracking.report.table
    return table.block_at(address) or table.block_containing(address)  # as heap errors describe it


def stack_frame_of(thread_num: int, address: int) -> str:
    """'frame #N FUNCTION' of the thread whose stack frame holds `address` (frames switched back afterwards)."""
    inferior = gdb.selected_inferior()
    thread = next((t for t in inferior.threads() if t.num == thread_num), None)
    if thread is None:
        return ""
    previous_thread, previous_frame = gdb.selected_thread(), gdb.selected_frame()
    try:
        thread.switch()
        frame: gdb.Frame | None = gdb.newest_frame()
        level, found = 0, ""
        while frame is not None:
            older = frame.older()
            low = int(frame.read_register("rsp"))
            high = int(older.read_register("rsp")) if older is not None else 1 << 64
            if low <= address < high:
                found = f"frame #{level} {frame.name() or '??'}"
                break
            frame, level = older, level + 1
        return found
    except gdb.error:
        return ""
    finally:
        previous_thread.switch()
        previous_frame.select()


def describe_referrer(tracking: Tracking, ref: Referrer) -> str:
    how = "interior pointer" if ref.interior else "pointer"
    if ref.block is not None:
        holder = tracking.report.table.blocks.get(ref.block)
        seq = f" #{holder.seq}" if holder else ""
        return f"{how} at 0x{ref.address:x}, offset {ref.address - ref.block} in block 0x{ref.block:x}{seq}"
    label = ref.label or "?"
    if label.startswith("stack of thread "):
        frame = stack_frame_of(int(label.rsplit(" ", 1)[1]), ref.address)
        return f"{how} at 0x{ref.address:x} on the {label}" + (f", {frame}" if frame else "")
    symbol = minimal_symbol(ref.address)
    name = f"global {symbol[0]}" + (f"+{symbol[1]}" if symbol[1] else "") if symbol else label
    return f"{how} at 0x{ref.address:x}: {name}"


def describe_block(tracking: Tracking, address: int, out: TextIO) -> None:
    report = tracking.report
    block = find_block(tracking, address)
    if block is None:
        freed = report.table.freed.get(address)
        if freed is not None:
            out.write(f"0x{address:x}: freed block of {freed.block.size:,} bytes (allocation #{freed.block.seq})\n"
                      " allocated at:\n")
            render_stack(report.frames(freed.block.pcs), out)
            out.write(" freed at:\n")
            render_stack(report.frames(freed.free_pcs), out)
            return
        raise gdb.GdbError(f"memleak block: 0x{address:x} is not inside a tracked heap block")
    referrers: list[Referrer] = []
    alive = tracking.alive and gdb.selected_inferior().pid == tracking.pid
    if alive:
        result = tracking.scan(watch=block.address)  # kinds and who points at the block, in one pass
        alive = result is not None
        referrers = result.referrers if result is not None else []
    offset = f" (offset {address - block.address} inside it)" if address != block.address else ""
    out.write(f"block 0x{block.address:x}{offset}: {block.size:,} bytes, allocated by {block.allocator} "
              f"as allocation #{block.seq} in thread {block.thread}, "
              f"{tracking.now() - block.time:.3f} s ago\n")
    out.write(f" kind: {LABELS[report.kind_of(block)]}\n allocated at:\n")
    render_stack(report.frames(block.pcs), out)
    if not alive:
        out.write(" who points at it: unknown (the process has ended)\n")
        return
    out.write(" who points at it:" + ("" if referrers else " nothing") + "\n")
    for ref in referrers:
        out.write(f"   {describe_referrer(tracking, ref)}\n")
