"""The JSON report; its totals and in-use figures are comparable with valgrind's HEAP SUMMARY."""

from __future__ import annotations

import json
from typing import Sequence, TextIO

from ... import __version__
from ..mappings import flags_text, prot_text
from ..model import Frame
from ..report import ProcessReport
from .options import ReportOptions

FORMAT = "json"
HELP = "write the JSON report to FILE"


def frame_json(frame: Frame) -> dict:
    return {"pc": f"0x{frame.pc:x}", "function": frame.function, "file": frame.file, "line": frame.line,
            "object": frame.object, "inline": frame.inline}


def process_json(report: ProcessReport) -> dict:
    c = report.table.counters
    stack = lambda pcs: [frame_json(f) for f in report.frames(pcs)]  # noqa: E731
    return {
        "pid": report.result.pid,
        "argv": list(report.result.argv),
        "exit": report.result.exit_json(),
        "incomplete": report.incomplete,
        "totals": {"allocs": c.allocs, "frees": c.frees, "bytes_allocated": c.bytes_allocated},
        "in_use_at_exit": {"bytes": c.live_bytes, "blocks": c.live_blocks},
        "leaks": [{"kind": g.kind, "bytes": g.bytes, "blocks": g.blocks, "indirect_bytes": g.indirect_bytes,
                   "indirect_blocks": g.indirect_blocks, "allocator": g.allocator, "stack": stack(g.pcs),
                   "delta": g.delta.to_json() if g.delta is not None else None}
                  for g in report.leak_groups()],
        "leak_summary": report.leak_summary(),
        "reachable_via_heuristic": report.heuristic_summary(),
        "errors": [{"type": e.type, "address": f"0x{e.address:x}", "allocator": e.allocator, "stack": stack(e.pcs),
                    "alloc_stack": stack(e.alloc_pcs), "free_stack": stack(e.free_pcs),
                    "address_info": e.address_info.to_json(stack) if e.address_info is not None else None}
                   for e in report.errors()],
        "suppressions_used": [{"name": s.name, "where": s.where, "count": used.count, "bytes": used.bytes,
                               "blocks": used.blocks} for s, used in report.used_suppressions()],
        **mappings_json(report),
        "fatal_signal": fatal_json(report),
        "growth": [{**g.to_json(), "stack": stack(g.pcs)} for g in report.growing()],
    }


def fatal_json(report: ProcessReport) -> dict | None:
    """The signal that killed the process (None when none did): its number, siginfo's code, valgrind's words for the
    fault and its address (null for a signal a process sent), and the stack of the thread (`thread`: its LWP) that
    got it, `stack[0]` being where that thread was."""
    fatal = report.result.fatal
    if fatal is None:
        return None
    return {"signal": fatal.name, "number": fatal.number, "code": fatal.code, "description": fatal.event(),
            "address": f"0x{fatal.address:x}" if fatal.address is not None else None, "thread": fatal.thread,
            "stack": [frame_json(f) for f in report.fatal_frames()]}


def mappings_json(report: ProcessReport) -> dict:
    """`mappings`: regions this process mapped and never unmapped; `shm`: System V segments it created and nobody
    marked for removal, POSIX objects it created and nobody unlinked."""
    stack = lambda pcs: [frame_json(f) for f in report.frames(pcs)]  # noqa: E731
    m = report.mappings
    return {
        "mappings": [{"address": f"0x{r.start:x}", "length": r.length, "prot": prot_text(r.prot),
                      "flags": flags_text(r.flags), "backing": r.backing, "call": r.call, "stack": stack(r.pcs)}
                     for r in m.leaked_regions()],
        "shm": [{"type": "sysv", "shmid": s.shmid, "key": f"0x{s.key:08x}", "size": s.size, "stack": stack(s.pcs)}
                for s in m.leaked_segments()]
               + [{"type": "posix", "name": o.name, "size": o.size, "stack": stack(o.pcs)}
                  for o in m.leaked_objects()],
    }


def build_json(reports: Sequence[ProcessReport]) -> dict:
    return {"tool": "gdb-memleak", "version": __version__, "processes": [process_json(r) for r in reports]}


def write(reports: Sequence[ProcessReport], out: TextIO, options: ReportOptions | None = None) -> None:
    json.dump(build_json(reports), out, indent=2)
    out.write("\n")
