"""SARIF 2.1.0 output (for code-scanning UIs): one run, one result per leak group, per heap error and per fatal
signal.

Each result's location is the leak's site (the first frame in the user's code); its full allocation stack (and, for a
heap error, the bad free's, the first free's and the allocation's) is in `stacks`. A frame without debug info is
located by its object file and address, with no region. Suppressed leak groups are kept, marked suppressed.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
from pathlib import PurePosixPath
from typing import Sequence, TextIO
from urllib.parse import quote

from ... import __version__
from ..model import Frame, HeapError
from ..report import ProcessReport
from ..suppressions import AnySuppression
from .options import ReportOptions

FORMAT = "sarif"
HELP = "write a SARIF 2.1.0 report to FILE"

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
TOOL_NAME = "gdb-memleak"
INFORMATION_URI = "https://pypi.org/project/gdb-memleak/"
SOURCE_ROOT_ID = "SRCROOT"

# id, name, short description, level. Leak kinds are valgrind's; "unfreed" is a block no reachability scan classified.
RULES: tuple[tuple[str, str, str, str], ...] = (
    ("definite", "DefinitelyLost", "Memory definitely lost: no pointer to the block remains", "error"),
    ("indirect", "IndirectlyLost", "Memory indirectly lost: only reachable from definitely lost blocks", "warning"),
    ("possible", "PossiblyLost", "Memory possibly lost: only interior pointers to the block remain", "warning"),
    ("reachable", "StillReachable", "Memory still reachable at exit: a pointer to the block remains", "note"),
    ("unfreed", "Unfreed", "Memory not freed (not classified by a reachability scan)", "warning"),
    ("double_free", "DoubleFree", "A block was freed twice", "error"),
    ("invalid_free", "InvalidFree", "A pointer no allocator returned was freed", "error"),
    ("mismatched_free", "MismatchedFree", "A block was released by a function of another allocator family "
     "(e.g. free() of new[])", "error"),
    ("fatal_signal", "FatalSignal", "The process was killed by a signal (a fault such as SIGSEGV, or one sent to it)",
     "error"),
)
RULE_INDEX = {rule[0]: i for i, rule in enumerate(RULES)}
LEVELS = {rule[0]: rule[3] for rule in RULES}
LEAK_VERBS = {"definite": "are definitely lost", "indirect": "are indirectly lost", "possible": "are possibly lost",
              "reachable": "are still reachable", "unfreed": "are still allocated"}
_RAW_ADDRESS = re.compile(r"^0x[0-9a-fA-F]+$")


def file_uri(path: str, source_root: str | None = None) -> tuple[str, str | None]:
    """(uri, uriBaseId): relative to SRCROOT when under `source_root`, else `file://` (absolute) or relative."""
    if source_root and os.path.isabs(path):
        root = posixpath.normpath(os.path.abspath(source_root))
        normal = posixpath.normpath(path)
        if normal.startswith(root.rstrip("/") + "/"):
            return quote(posixpath.relpath(normal, root)), SOURCE_ROOT_ID
    if os.path.isabs(path):
        return PurePosixPath(posixpath.normpath(path)).as_uri(), None
    return quote(posixpath.normpath(path)), None


def _artifact(path: str, source_root: str | None) -> dict:
    uri, base = file_uri(path, source_root)
    return {"uri": uri, "uriBaseId": base} if base else {"uri": uri}


def frame_location(frame: Frame, source_root: str | None = None, message: str | None = None) -> dict:
    """Source file and line when known; otherwise the object file (when known); always the address."""
    physical: dict = {}
    if frame.file:
        physical["artifactLocation"] = _artifact(frame.file, source_root)
        if frame.line and frame.line > 0:
            physical["region"] = {"startLine": frame.line}
    elif frame.object and frame.object != "??":
        physical["artifactLocation"] = _artifact(frame.object, source_root)
    physical["address"] = {"absoluteAddress": frame.pc, "kind": "instruction"}
    location: dict = {"physicalLocation": physical}
    if frame.function and not _RAW_ADDRESS.match(frame.function):
        location["logicalLocations"] = [{"name": frame.function, "kind": "function"}]
    if message:
        location["message"] = {"text": message}
    return location


def stack_json(frames: list[Frame], message: str, source_root: str | None = None) -> dict:
    return {"message": {"text": message},
            "frames": [{"location": frame_location(f, source_root), "module": f.object} for f in frames]}


def _rule_fields(rule_id: str) -> dict:
    fields: dict = {"ruleId": rule_id, "level": LEVELS.get(rule_id, "warning")}
    if rule_id in RULE_INDEX:
        fields["ruleIndex"] = RULE_INDEX[rule_id]
    return fields


def _where(frame: Frame | None) -> str:
    if frame is None:
        return ""
    if frame.file and frame.line:
        return f" in {frame.function} ({os.path.basename(frame.file)}:{frame.line})"
    return f" in {frame.function} ({os.path.basename(frame.object or '??')})"


def leak_result(report: ProcessReport, group, source_root: str | None = None) -> dict:
    frames = report.frames(group.pcs)
    site = report.site(group.pcs)
    verb = LEAK_VERBS.get(group.kind, f"are {group.kind}")
    text = (f"{group.bytes:,} bytes in {group.blocks:,} blocks {verb}, allocated by {group.allocator}"
            f"{_where(site)}")
    result = {
        **_rule_fields(group.kind),
        "message": {"text": text},
        "locations": [frame_location(site, source_root)] if site is not None else [],
        "stacks": [stack_json(frames, "allocation stack", source_root)],
        "properties": {"pid": report.result.pid, "bytes": group.bytes, "blocks": group.blocks,
                       "allocator": group.allocator, "firstAllocation": group.first_seq},
    }
    _mark_suppressed(result, group.suppressed_by)
    return result


def error_message(error: HeapError) -> str:
    if error.type == "double_free":
        size = f" ({error.block_size:,}-byte block)" if error.block_size is not None else ""
        return f"Double free of 0x{error.address:x}{size} by {error.allocator}"
    if error.type == "invalid_free":
        return f"Invalid free of 0x{error.address:x} by {error.allocator}: no allocator returned this pointer"
    if error.type == "mismatched_free":
        return f"Mismatched free of 0x{error.address:x}: {error.allocator} does not match the block's allocator"
    return f"{error.type.replace('_', ' ').capitalize()} of 0x{error.address:x} by {error.allocator}"


def error_result(report: ProcessReport, error: HeapError, source_root: str | None = None) -> dict:
    site = report.site(error.pcs)
    stacks = [stack_json(report.frames(error.pcs), "bad free", source_root)]
    related: list[dict] = []
    for pcs, what in ((error.free_pcs, "first freed here"), (error.alloc_pcs, "allocated here")):
        if not pcs:
            continue
        stacks.append(stack_json(report.frames(pcs), what, source_root))
        related_site = report.site(pcs)
        if related_site is not None:
            related.append({"id": len(related) + 1, **frame_location(related_site, source_root, what)})
    result = {
        **_rule_fields(error.type),
        "message": {"text": error_message(error) + _where(site)},
        "locations": [frame_location(site, source_root)] if site is not None else [],
        "stacks": stacks,
        "properties": {"pid": report.result.pid, "address": f"0x{error.address:x}", "thread": error.thread},
    }
    if related:
        result["relatedLocations"] = related
    _mark_suppressed(result, report.error_suppression(error))
    return result


def _mark_suppressed(result: dict, suppression: AnySuppression | None) -> None:
    if suppression is not None:
        result["suppressions"] = [{"kind": "external", "justification": f"{suppression.name} ({suppression.where})"}]


def fatal_result(report: ProcessReport, source_root: str | None = None) -> dict | None:
    """The signal that killed the process, in valgrind's words, located at the first frame in the user's code of
    the stack of the thread that got it."""
    fatal = report.result.fatal
    if fatal is None:
        return None
    frames = report.fatal_frames()
    site = report.system.user_frame(frames)
    event = fatal.event()
    properties: dict = {"pid": report.result.pid, "signal": fatal.name, "thread": fatal.thread}
    if fatal.address is not None:
        properties["address"] = f"0x{fatal.address:x}"
    return {
        **_rule_fields("fatal_signal"),
        "message": {"text": fatal.headline() + (f": {event}" if event else "") + _where(site)},
        "locations": [frame_location(site, source_root)] if site is not None else [],
        "stacks": [stack_json(frames, "stack of the thread that got the signal", source_root)] if frames else [],
        "properties": properties,
    }


def _rules() -> list[dict]:
    return [{"id": rule_id, "name": name, "shortDescription": {"text": short},
             "defaultConfiguration": {"level": level}} for rule_id, name, short, level in RULES]


def build_sarif(reports: Sequence[ProcessReport], tool_version: str = __version__,
                source_root: str | None = None) -> dict:
    """The SARIF log. With `source_root`, source files under it get URIs relative to `%SRCROOT%`."""
    results = []
    for report in reports:
        fatal = fatal_result(report, source_root)
        if fatal is not None:
            results.append(fatal)
        for error in report.table.errors:  # suppressed ones too, marked as such (as suppressed leaks are)
            results.append(error_result(report, error, source_root))
        for group in report.leak_groups() + report.suppressed_groups():
            results.append(leak_result(report, group, source_root))
    run: dict = {
        "tool": {"driver": {"name": TOOL_NAME, "version": tool_version, "informationUri": INFORMATION_URI,
                            "rules": _rules()}},
        "results": results,
        "properties": {"processes": [{"pid": r.result.pid, "argv": list(r.result.argv), "exit": r.result.exit_json()}
                                     for r in reports]},
    }
    if source_root:
        root_uri = PurePosixPath(posixpath.normpath(os.path.abspath(source_root))).as_uri().rstrip("/") + "/"
        run["originalUriBaseIds"] = {SOURCE_ROOT_ID: {"uri": root_uri}}
    return {"$schema": SCHEMA_URI, "version": SARIF_VERSION, "runs": [run]}


def write(reports: Sequence[ProcessReport], out: TextIO, options: ReportOptions | None = None) -> None:
    source_root = options.source_root if options is not None else None
    json.dump(build_sarif(reports, __version__, source_root), out, indent=2)
    out.write("\n")
