"""Human-readable reports (valgrind-like wording), rendered into any text stream."""

from __future__ import annotations

import shlex
from typing import Any, Sequence, TextIO

from ..deltas import CHANGED, selected_by
from ..grouping import LeakGroup, LineGroup, group_by_line, select
from ..growth import MIN_SAMPLES, WINDOW
from ..kinds import LABELS, ORDER, UNFREED, LeakKind
from ..mappings import DEFAULT_MAPPING_ERROR_KINDS, flags_text, prot_text
from ..model import Frame, HeapError
from ..report import ProcessReport
from ..source import highlight_line, source_context
from .options import ReportOptions

FORMAT = "text"
HELP = "the valgrind-like text report"


def tabulate(*args: Any, **kwargs: Any) -> str:
    """tabulate.tabulate, imported on first use: the batch CLI imports the writers only for their names (importing
    tabulate costs ~20 ms, most of it importlib.metadata)."""
    from tabulate import tabulate as render  # noqa: PLC0415

    return render(*args, **kwargs)


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def change(n: int | None) -> str:
    """valgrind's delta after a figure, " (+16)" or " (-16)"; nothing when there is no baseline."""
    return "" if n is None else f" ({n:+,})"


def sizes(group: LeakGroup | LineGroup) -> str:
    """valgrind's loss-record size: "80 (16 direct, 64 indirect)" when blocks are lost through the group, with the
    deltas since the previous checkpoint when there is one: "80 (+80) (16 (+16) direct, 64 (+64) indirect)"."""
    d = getattr(group, "delta", None)  # a line's groups have none
    total = f"{group.total_bytes:,}{change(d.bytes if d else None)}"
    if not group.indirect_bytes and not (d and d.indirect_bytes):
        return total
    return (f"{total} ({group.bytes:,}{change(d.direct_bytes if d else None)} direct, "
            f"{group.indirect_bytes:,}{change(d.indirect_bytes if d else None)} indirect)")


def amount(group: LeakGroup | LineGroup) -> str:
    return f"{sizes(group)} byte{'' if group.total_bytes == 1 and not group.indirect_bytes else 's'}"


def block_count(group: LeakGroup) -> str:
    """Its blocks, and their delta when there is a baseline: "1 (+1) block"."""
    d = group.delta
    return f"{group.blocks:,}{change(d.blocks if d else None)} block{'' if group.blocks == 1 else 's'}"


def describe(frame: Frame) -> str:
    where = f"{frame.file}:{frame.line}" if frame.file and frame.line else frame.object
    return f"{frame.function} ({where})"


def render_stack(frames: list[Frame], out: TextIO, indent: str = "   ") -> None:
    for i, frame in enumerate(frames):
        word = "at" if i == 0 else "by"
        out.write(f"{indent}{word} 0x{frame.pc:x}: {describe(frame)}\n")


def render_header(report: ProcessReport, out: TextIO) -> None:
    r = report.result
    prog = " ".join(r.argv[:1]) or "?"
    if r.signal:
        how = f"killed by {r.signal}"
    elif r.exit_code is not None:
        how = f"exited with code {r.exit_code}"
    elif r.detached:
        how = "detached (still running)"
    elif r.exec_into:
        how = f"replaced its image by exec of {r.exec_into}"
    else:
        how = "still running"
    if r.core_file:
        how = (f"{how}; read from its core file {r.core_file}" if r.signal
               else f"as its core file {r.core_file} holds it")
    out.write(f"gdb-memleak: process {r.pid} ({prog}) {how}\n")
    if len(r.argv) > 1:  # as valgrind's "Command:" line: tells apart the runs of one program (make's cc1s)
        out.write(f"  command: {shlex.join(r.argv)}\n")
    render_fatal(report, out)
    if report.incomplete:
        out.write(f"  INCOMPLETE: {report.incomplete}; the figures below may miss allocations, frees and leaks\n")
    for note in report.notes:
        out.write(f"  note: {note}\n")


def render_fatal(report: ProcessReport, out: TextIO) -> None:
    """valgrind's words for the signal that killed the process: which, what the fault was and where, and the stack
    of the thread that got it."""
    fatal = report.result.fatal
    if fatal is None:
        return
    out.write(fatal.headline() + "\n")
    event = fatal.event()
    if event is not None:
        out.write(f" {event}\n")
    render_stack(report.fatal_frames(), out)


def render_summary(report: ProcessReport, out: TextIO) -> None:
    """valgrind's HEAP SUMMARY; for a process that has not ended (detached after an attach window, `memleak
    status` mid-run) the live figures are what is in use now, not at an exit that has not happened."""
    c = report.table.counters
    r = report.result
    when = "now" if r.exit_code is None and r.signal is None and r.exec_into is None else "at exit"
    when = "in the core" if r.core_file and r.signal is None else when
    out.write("HEAP SUMMARY:\n")
    out.write(f"    in use {when}: {c.live_bytes:,} bytes in {c.live_blocks:,} blocks\n")
    out.write(f"  total heap usage: {c.allocs:,} allocs, {c.frees:,} frees, {c.bytes_allocated:,} bytes allocated\n")
    if c.untracked_frees:
        out.write(f"  untracked frees: {c.untracked_frees:,} (blocks allocated before tracking began)\n")


def error_headline(error: HeapError) -> str:
    """valgrind's names: a double free, a mismatched release, an invalid free (or realloc) of a pointer."""
    if error.type == "double_free":
        return f"Double free of 0x{error.address:x} ({error.block_size or 0:,}-byte block)"
    if error.type == "mismatched_free":
        return (f"Mismatched free() / delete / delete []: 0x{error.address:x} ({error.block_size or 0:,}-byte "
                f"block) allocated by {error.alloc_allocator}, released by {error.allocator}")
    call = "realloc" if "realloc" in error.allocator else "free"  # realloc, reallocarray
    return f"Invalid {call} of 0x{error.address:x}: no allocator returned this pointer"


def render_error(report: ProcessReport, error: HeapError, out: TextIO) -> None:
    out.write(error_headline(error) + "\n")
    render_stack(report.frames(error.pcs), out)
    info = error.address_info
    if info is not None:
        out.write(f" {info.describe()}" + (" at:\n" if info.free_pcs or info.alloc_pcs else "\n"))
        if info.free_pcs:
            render_stack(report.frames(info.free_pcs), out)
            out.write(" Block was allocated at:\n")
        render_stack(report.frames(info.alloc_pcs), out)
    if error.free_pcs:
        out.write(" Block was first freed at:\n")
        render_stack(report.frames(error.free_pcs), out)
    if error.alloc_pcs:
        out.write(" Block was allocated at:\n")
        render_stack(report.frames(error.alloc_pcs), out)


def render_errors(report: ProcessReport, out: TextIO) -> None:
    """The heap errors no suppression hides."""
    for error in report.errors():
        out.write("\n")
        render_error(report, error, out)


LABEL_WIDTH = max(len(label) for label in LABELS.values())


def render_leak_summary(report: ProcessReport, out: TextIO, deltas: bool = False) -> None:
    """valgrind's LEAK SUMMARY; with `deltas` (a check of what increased or changed) each figure's change since the
    previous checkpoint too, as valgrind prints them then: "definitely lost: 48 (+16) bytes in 3 (+1) blocks"."""
    summary = report.leak_summary()
    before = report.baseline_summary() if deltas else None
    out.write("\nLEAK SUMMARY:\n")
    for key, entry in summary.items():
        if key == UNFREED and not entry["blocks"]:
            continue
        was = before.get(key, {"bytes": 0, "blocks": 0}) if before is not None else None
        nbytes, nblocks = (f"{entry[f]:,}{change(entry[f] - was[f] if was is not None else None)}"
                           for f in ("bytes", "blocks"))
        out.write(f"  {LABELS[key]:>{LABEL_WIDTH}}: {nbytes} bytes in {nblocks} blocks\n")
        if key == LeakKind.REACHABLE:
            render_heuristics(report, out)


def render_heuristics(report: ProcessReport, out: TextIO) -> None:
    """valgrind's lines under "still reachable", for the heuristics that reached some block (none: no lines)."""
    used = {name: entry for name, entry in report.heuristic_summary().items() if entry["blocks"]}
    if not used:
        return
    indent = " " * (LABEL_WIDTH + 4)
    out.write(f"{indent}of which reachable via heuristic:\n")
    for name, entry in used.items():
        out.write(f"{indent}  {name:<19}: {entry['bytes']:,} bytes in {entry['blocks']:,} blocks\n")


def render_leaks(report: ProcessReport, out: TextIO, options: ReportOptions | None = None) -> None:
    options = options or ReportOptions()
    groups = report.leak_groups(options.where)
    total_bytes = sum(g.bytes for g in groups)
    total_blocks = sum(g.blocks for g in groups)
    listed = [g for g in groups if selected_by(g, options.changes)]
    if options.changes == CHANGED:
        listed += report.gone_groups(options.where)
    chosen = select(listed, options.top, options.min_bytes)
    kinds = options.where.kinds if options.where is not None else None
    ordered = sorted(kinds, key=lambda kind: ORDER.get(kind, len(ORDER))) if kinds is not None else []
    kinds_shown = "all kinds" if kinds is None else ", ".join(LABELS[k] for k in ordered)
    out.write(f"\nLEAKS: {plural(total_bytes, 'byte')} in {plural(total_blocks, 'block')} from "
              f"{plural(len(groups), 'allocation stack')} ({kinds_shown})")
    out.write(f" (showing {len(chosen)})\n" if len(chosen) != len(groups) else "\n")
    if options.changes:
        base = report.baseline()
        out.write(f"  loss records that {options.changes} since the previous check (at {base.time:.3f} s)\n"
                  if base is not None else "  no earlier check: every loss record is new\n")
    if not chosen:
        return
    if options.stack:
        for group in chosen:
            first = f"first is allocation #{group.first_seq}" if group.blocks else "none left"
            out.write(f"\n{amount(group)} in {block_count(group)} are {LABELS[group.kind]}, "
                      f"allocated by {group.allocator} ({first})\n")
            render_stack(report.frames(group.pcs), out)
        return
    rows = []
    for group in chosen:
        site = report.site(group.pcs)
        blocks = group.blocks if group.delta is None else f"{group.blocks:,}{change(group.delta.blocks)}"
        rows.append([LABELS[group.kind], sizes(group), blocks, group.allocator,
                     f"#{group.first_seq}" if group.blocks else "-", describe(site) if site else "??"])
    # bytes are text ("80 (16 direct, 64 indirect)" for a loss record with indirect bytes), right-aligned as numbers
    out.write(tabulate(rows, headers=["kind", "bytes", "blocks", "allocator", "first", "allocated at"],
                       tablefmt="simple", intfmt=",",
                       colalign=("left", "right", "right", "left", "left", "left")) + "\n")


def render_by_line(report: ProcessReport, out: TextIO, options: ReportOptions | None = None) -> None:
    options = options or ReportOptions()
    every = group_by_line(report.leak_groups(options.where), report.symbolizer, report.system)
    groups = select(every, options.top, options.min_bytes)
    out.write(f"\nLEAKS BY LINE: {plural(len(every), 'line')}")
    out.write(f" (showing {len(groups)})\n" if len(groups) != len(every) else "\n")
    for group in groups:
        frame = group.frame
        where = f"{frame.file}:{frame.line}" if frame.file and frame.line else f"0x{frame.pc:x} ({frame.object})"
        out.write(f"\n{where}: {amount(group)} in {plural(group.blocks, 'block')}"
                  f" ({', '.join(sorted(group.allocators))}) in {frame.function}\n")
        for number, text in source_context(frame.file, frame.line):
            shown = highlight_line(frame.file or "", text) if options.color else text
            marker = ">" if number == frame.line else " "
            out.write(f"  {marker}{number:5} | {shown}\n")


MAPPING_LABELS = {"mappings": ("region", "never unmapped"), "sysv": ("System V segment", "never removed"),
                  "posix": ("POSIX shm object", "never unlinked")}


def _site(report: ProcessReport, pcs: tuple[int, ...]) -> str:
    site = report.site(pcs)
    return describe(site) if site else "??"


def render_mappings(report: ProcessReport, out: TextIO, options: ReportOptions | None = None,
                    regions: bool = True, shm: bool = True) -> None:
    """Regions mapped and never unmapped; shared memory created and left behind (System V segments nobody marked
    for removal, POSIX objects nobody unlinked): each process lists what it made itself."""
    options = options or ReportOptions()
    m = report.mappings
    if regions:
        found = m.leaked_regions()
        out.write(f"\nMAPPINGS: {plural(sum(r.length for r in found), 'byte')} in {plural(len(found), 'region')} "
                  "mapped and never unmapped\n")
        _stacks_or_table(report, out, options.stack, [(
            f"{plural(r.length, 'byte')} at 0x{r.start:x} {prot_text(r.prot)} {flags_text(r.flags)} ({r.backing}), "
            f"mapped by {r.call}", r.pcs,
            [f"0x{r.start:x}", r.length, prot_text(r.prot), flags_text(r.flags), r.backing, r.call,
             _site(report, r.pcs)]) for r in found],
            headers=["address", "bytes", "prot", "flags", "backing", "call", "mapped at"], intfmt=",")
    if shm:
        segments, objects = m.leaked_segments(), m.leaked_objects()
        out.write(f"\nSHARED MEMORY: {plural(len(segments), 'System V segment')} never marked for removal, "
                  f"{plural(len(objects), 'POSIX object')} never unlinked\n")
        entries: list[tuple[str, str, str, int | None, tuple[int, ...]]] = [
            ("sysv", f"shmid {s.shmid}", f"0x{s.key:08x}", s.size, s.pcs) for s in segments]
        entries += [("posix", o.name, "", o.size, o.pcs) for o in objects]
        _stacks_or_table(report, out, options.stack, [(
            f"{kind} {name}{' key ' + key if key else ''}: "
            f"{plural(size, 'byte') if size is not None else 'size unknown'}, created at:", pcs,
            [kind, name, key, size if size is not None else "?", _site(report, pcs)])
            for kind, name, key, size, pcs in entries],
            headers=["type", "name", "key", "bytes", "created at"], intfmt=",")


def _stacks_or_table(report: ProcessReport, out: TextIO, stack: bool,
                     entries: list[tuple[str, tuple[int, ...], list]], **table: Any) -> None:
    """A listing of (heading, stack, row) entries: with `stack` each heading and its full stack, else one table row
    per entry (`table`: tabulate's headers and formats); nothing for no entries."""
    if stack:
        for heading, pcs, _ in entries:
            out.write(f"\n{heading}\n")
            render_stack(report.frames(pcs), out)
    elif entries:
        out.write(tabulate([row for _, _, row in entries], tablefmt="simple", **table) + "\n")


def render_growing(report: ProcessReport, out: TextIO, options: ReportOptions | None = None) -> None:
    """The allocation stacks whose live bytes keep growing over the checkpoints (core/growth.py), fastest first:
    rate, live bytes and blocks now, in how many of the window's intervals they rose, where allocated."""
    options = options or ReportOptions()
    samples = len(report.growth)
    if samples < MIN_SAMPLES:
        out.write(f"\nGROWING: needs {MIN_SAMPLES} checkpoints (`memleak check`, `leaks --check`, `memleak snapshot`, "
                  f"a report); {samples} so far\n")
        return
    every = report.growing()
    chosen = select(every, options.top)
    times = report.growth.times
    window = list(times)[-WINDOW:]
    out.write(f"\nGROWING: {plural(len(every), 'allocation stack')} whose live bytes keep growing (the last "
              f"{len(window)} of {samples} samples, {window[-1] - window[0]:.3f} s)")
    out.write(f" (showing {len(chosen)})\n" if len(chosen) != len(every) else "\n")
    if report.growth.pushed_out:
        out.write(f"  following the {report.growth.max_stacks:,} largest stacks ({report.growth.pushed_out:,} "
                  "smaller ones left out)\n")
    # figures as written ("+64.0": the sign says it is a rate), right-aligned as numbers
    _stacks_or_table(report, out, options.stack, [(
        f"{g.rate:+,.1f} bytes/s: {plural(g.bytes, 'byte')} in {plural(g.blocks, 'block')} live, grew in {g.grew} of "
        f"{g.samples - 1} intervals, allocated by {g.allocator}", g.pcs,
        [f"{g.rate:+,.1f}", f"{g.bytes:,}", f"{g.blocks:,}", f"{g.grew} of {g.samples - 1}", g.allocator,
         _site(report, g.pcs)]) for g in chosen],
        headers=["bytes/s", "live bytes", "blocks", "grew", "allocator", "allocated at"], disable_numparse=True,
        colalign=("right", "right", "right", "left", "left", "left"))


def render_report(report: ProcessReport, out: TextIO, options: ReportOptions | None = None) -> None:
    """The end-of-run report (and a live one): header, heap summary, heap errors, leaks, leak summary, then the
    stacks that keep growing, mappings and shared memory left behind (each only when there are some)."""
    options = options or ReportOptions()
    out.write("\n")
    render_header(report, out)
    render_summary(report, out)
    render_errors(report, out)
    render_leaks(report, out, options)
    if options.gen_suppressions:  # valgrind's --gen-suppressions=all: a block for each error and record listed
        from .suppression_blocks import all_blocks  # noqa: PLC0415 - only when asked for

        out.write("".join(f"\n{block.rstrip()}\n" for block in all_blocks(report, options.where)))
    render_leak_summary(report, out, deltas=options.changes is not None)
    if len(report.growth) >= MIN_SAMPLES and report.growing():
        render_growing(report, out, options)
    left = report.mappings.counts()
    if any(left.values()):
        render_mappings(report, out, options, regions=bool(left["mappings"]), shm=bool(left["sysv"] or left["posix"]))
    out.write(f"\nSUMMARY: {verdict(report, options.error_kinds, options.mapping_error_kinds)}\n")


def verdict(report: ProcessReport, error_kinds: frozenset[str],
            mapping_kinds: frozenset[str] = DEFAULT_MAPPING_ERROR_KINDS) -> str:
    """The closing SUMMARY line: heap errors, the leaks of the kinds that count as errors, and the mappings and
    shared memory left behind of the kinds that count."""
    summary = report.leak_summary()
    counted = [k for k in summary if k in error_kinds and summary[k]["blocks"]]
    mapped = report.mapping_findings(mapping_kinds)
    errors = len(report.errors())
    if not errors and not counted and not mapped:
        return "no heap errors, no leaks of the kinds that count as errors"
    leaks = ", ".join(f"{summary[k]['bytes']:,} bytes {LABELS[k]}" for k in counted) or "no counted leaks"
    left = "".join(f"; {plural(n, MAPPING_LABELS[kind][0])} {MAPPING_LABELS[kind][1]}" for kind, n in mapped.items())
    return f"{plural(errors, 'heap error')}; {leaks}{left}"


def write(reports: Sequence[ProcessReport], out: TextIO, options: ReportOptions | None = None) -> None:
    for report in reports:
        render_report(report, out, options)
