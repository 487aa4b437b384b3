"""What a report is drawn from: one process's table, how it ended, its leak kinds, and the symbolizer for its PCs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Callable

from .deltas import Baselines, Checkpoint, LossKey, records
from .gc_pause import gc_paused
from .grouping import LeakGroup
from .growth import Growing, GrowthHistory, stack_sums
from .heuristics import summary as heuristics_summary
from .kinds import KINDS, ORDER, UNFREED, LeakKind
from .mappings import DEFAULT_MAPPING_ERROR_KINDS, MappingTable
from .model import Block, Frame, HeapError, ProcessResult
from .suppressions import AnySuppression, SuppressionList
from .symbols import Symbolizer, SystemFilter
from .table import AllocationTable


@dataclass
class LeakFilter:
    """Which live blocks a listing shows: kinds (None = all), allocated after a snapshot, older than an age."""

    kinds: frozenset[str] | None = None
    since_seq: int = 0
    older_than: float | None = None
    now: float = 0.0

    @property
    def every_block(self) -> bool:
        """Admits every block whatever its number or age (kinds aside): the loss records a checkpoint keeps."""
        return not self.since_seq and self.older_than is None

    def admits(self, block: Block) -> bool:
        if block.seq <= self.since_seq and self.since_seq:  # seq 0: live before tracking started (an attach)
            return False
        return self.older_than is None or self.now - block.time >= self.older_than


@dataclass
class UsedSuppression:
    """What one suppression hid in a report: valgrind's used-suppression count, and the bytes and blocks of the
    loss records among them."""

    count: int = 0
    bytes: int = 0
    blocks: int = 0


@dataclass
class ProcessReport:
    result: ProcessResult
    table: AllocationTable
    symbolizer: Symbolizer
    system: SystemFilter = field(default_factory=SystemFilter)
    notes: list[str] = field(default_factory=list)   # caveats printed under the report header
    kinds: Mapping[int, LeakKind] | None = None       # block address -> kind, from the last reachability scan
    leaders: dict[int, int] | None = None             # indirect block -> the definite block it is lost through
    heuristics: dict[int, str] = field(default_factory=dict)  # block -> the leak-check heuristic it was reached by
    # where the active suppressions come from: set once when the report is made (the GDB settings, the CLI's
    # files), read at each render so a `set memleak suppressions` applies to every listing at once
    suppression_source: Callable[[], SuppressionList] = SuppressionList
    scans: int = 0  # reachability scans classified so far (`classify`): part of the state a checkpoint is at
    checked_at: float = 0.0  # seconds since tracking began at the last checkpoint: when the last report was made
    # the loss records at the last checkpoints (deltas) and each stack's live figures at every checkpoint (growth)
    baselines: Baselines = field(default_factory=Baselines)
    growth: GrowthHistory = field(default_factory=GrowthHistory)
    _sampled_at: tuple | None = field(default=None, init=False, repr=False)  # the table at the last growth sample
    _deltas_of: tuple | None = field(default=None, init=False, repr=False)  # (groups, baseline) deltas were set for
    # id(error) -> (the suppression list, the error, the suppression hiding it or None)
    _error_verdicts: dict[int, tuple] = field(default_factory=dict, init=False, repr=False)

    @property
    def suppressions(self) -> SuppressionList:
        return self.suppression_source()

    def classify(self, kinds: Mapping[int, LeakKind], leaders: dict[int, int], heuristics: dict[int, str]) -> None:
        """Take a reachability scan's verdicts: each block's kind, the definite block each indirect one is lost
        through, the blocks a heuristic reached."""
        self.kinds, self.leaders, self.heuristics = kinds, leaders, heuristics
        self.scans += 1

    # -- checkpoints: deltas and growth -----------------------------------------------------------------------------
    def _table_state(self) -> tuple:
        c = self.table.counters
        return (self.table.last_seq, c.allocs, c.frees, c.untracked_frees, c.live_blocks, c.live_bytes)

    def state(self) -> tuple:
        """What the loss records depend on: the table's events and the scan that classified them."""
        return (*self._table_state(), self.scans)

    def checkpoint(self, now: float) -> None:
        """A report, check or snapshot at `now` (seconds since tracking began): each stack's live figures become a
        growth sample (once per state of the table) and the loss records the baseline of the next reports. Reports
        made at this same state still compare with the checkpoint before, so this may be called before or after
        rendering them."""
        self.checked_at = now
        state, table_state = self.state(), self._table_state()
        if self.baselines.latest_state == state:
            return  # nothing happened since the last checkpoint
        groups = self.table.blocks.leak_groups(self.kinds, self.leaders, None)  # the grouping reports reuse
        with gc_paused():  # a tuple or two per loss record
            if table_state != self._sampled_at:
                self.growth.sample(now, stack_sums(groups))
                self._sampled_at = table_state
            self.baselines.record(state, now, records(groups))

    def forget_checkpoints(self) -> None:
        """`memleak reset`: the table starts again, so do its baselines and growth samples."""
        self.baselines, self.growth = Baselines(), GrowthHistory()
        self._sampled_at = self._deltas_of = None

    def baseline(self) -> Checkpoint | None:
        """The checkpoint the loss records are compared with now (None: none yet)."""
        return self.baselines.baseline(self.state())

    def growing(self) -> list[Growing]:
        """The allocation stacks whose live bytes keep growing over the checkpoints, fastest first."""
        return self.growth.ranking()

    def kind_of(self, block: Block) -> LeakKind:
        return self.kinds.get(block.address, UNFREED) if self.kinds is not None else UNFREED

    def _groups(self, where: LeakFilter | None) -> list[LeakGroup]:
        groups = self.table.blocks.leak_groups(self.kinds, self.leaders, where)
        suppressions = self.suppressions
        # deltas compare whole loss records: a listing of some blocks (a snapshot's, an age's) has none
        base = self.baseline() if where is None or where.every_block else None
        for group in groups:
            group.suppressed_by = self._suppressed(group.kind, group.allocator, group.pcs, suppressions)
        # the same groups (the columns' cache) against the same baseline: their deltas are set already
        if self._deltas_of is None or self._deltas_of[0] is not groups or self._deltas_of[1] is not base:
            with gc_paused():
                for group in groups:
                    group.delta = base.delta_of(group) if base is not None else None
            self._deltas_of = (groups, base)
        return groups

    def _suppressed(self, kind: str, allocator: str, pcs: tuple[int, ...],
                    suppressions: SuppressionList) -> AnySuppression | None:
        return suppressions.match(self.frames(pcs), kind, allocator) if len(suppressions) else None

    # -- heap errors: valgrind's Memcheck:Free entries suppress them ------------------------------------------------
    def error_suppression(self, error: HeapError) -> AnySuppression | None:
        """The suppression hiding this bad release, if any (decided once per error and suppression list)."""
        suppressions = self.suppressions
        if not len(suppressions):
            return None
        known = self._error_verdicts.get(id(error))
        if known is None or known[0] is not suppressions or known[1] is not error:
            known = self._error_verdicts[id(error)] = (
                suppressions, error, suppressions.match_error(self.frames(error.pcs), error.allocator))
        return known[2]

    def errors(self) -> list[HeapError]:
        """The heap errors no suppression hides, in the order they happened."""
        return [e for e in self.table.errors if self.error_suppression(e) is None]

    def suppressed_errors(self) -> list[HeapError]:
        return [e for e in self.table.errors if self.error_suppression(e) is not None]

    def used_suppressions(self) -> list[tuple[AnySuppression, UsedSuppression]]:
        """Each suppression that hid something, in the list's order, with what it hid: a loss record counts once
        (with its blocks, and its bytes with those lost through it), an error each time it happened, as valgrind
        counts them."""
        used: dict[AnySuppression, UsedSuppression] = {}
        for group in self._groups(None):
            if group.suppressed_by is not None:
                entry = used.setdefault(group.suppressed_by, UsedSuppression())
                entry.count, entry.bytes, entry.blocks = entry.count + 1, entry.bytes + group.total_bytes, \
                    entry.blocks + group.blocks
        for error in self.table.errors:
            hidden_by = self.error_suppression(error)
            if hidden_by is not None:
                used.setdefault(hidden_by, UsedSuppression()).count += 1
        return [(s, used[s]) for s in self.suppressions if s in used]

    def gone_groups(self, where: LeakFilter | None = None) -> list[LeakGroup]:
        """The unsuppressed loss records of the kinds asked for that the baseline had and that are empty now, each
        with no block and its delta down to zero (valgrind's `changed` lists them once)."""
        base = self.baseline()
        if base is None or (where is not None and not where.every_block):
            return []
        gone = base.gone(self._record_keys())
        suppressions = self.suppressions
        return [LeakGroup(kind, allocator, pcs, delta=change) for (kind, allocator, pcs), change in gone.items()
                if (where is None or where.kinds is None or kind in where.kinds)
                and self._suppressed(kind, allocator, pcs, suppressions) is None]

    def _record_keys(self) -> list[LossKey]:
        return [(g.kind, g.allocator, g.pcs) for g in self.table.blocks.leak_groups(self.kinds, self.leaders, None)]

    def leak_groups(self, where: LeakFilter | None = None) -> list[LeakGroup]:
        """Unsuppressed groups of the kinds asked for, by kind (valgrind's order) then size."""
        groups = [g for g in self._groups(where) if g.suppressed_by is None
                  and (where is None or where.kinds is None or g.kind in where.kinds)]
        return sorted(groups, key=lambda g: (ORDER.get(g.kind, 99), -g.total_bytes, -g.blocks, g.first_seq))

    def suppressed_groups(self) -> list[LeakGroup]:
        return [g for g in self._groups(None) if g.suppressed_by is not None]

    def leak_summary(self) -> dict[str, dict[str, int]]:
        """valgrind's LEAK SUMMARY: bytes and blocks per kind, suppressed apart ("unfreed" only when unscanned)."""
        return _summary((g.kind, g.suppressed_by is not None, g.bytes, g.blocks) for g in self._groups(None))

    def baseline_summary(self) -> dict[str, dict[str, int]] | None:
        """The LEAK SUMMARY at the baseline (its records under today's suppressions), None without one."""
        base = self.baseline()
        if base is None:
            return None
        suppressions = self.suppressions
        return _summary((kind, self._suppressed(kind, allocator, pcs, suppressions) is not None, f.bytes, f.blocks)
                        for (kind, allocator, pcs), f in base.records.items())

    def heuristic_summary(self) -> dict[str, dict[str, int]]:
        """valgrind's "of which reachable via heuristic" figures: bytes and blocks per heuristic (every heuristic,
        zeros included), over the live blocks the last scan attributed one to, suppressed or not (as valgrind counts
        them)."""
        blocks = self.table.blocks
        live = {a: name for a, name in self.heuristics.items() if a in blocks}
        return heuristics_summary(live, {a: blocks[a].size for a in live})

    def frames(self, pcs: tuple[int, ...]) -> list[Frame]:
        return self.symbolizer.stack(pcs)

    def fatal_frames(self) -> list[Frame]:
        """The stack of the thread a fatal signal killed, innermost first. Its first PC is where the thread was,
        not a return address: it is looked up as one past it (the symbolizer looks a PC up at PC - 1) and shown
        as it is, as valgrind shows it."""
        fatal = self.result.fatal
        if fatal is None or fatal.pc is None:
            return []
        where = [replace(frame, pc=fatal.pc) for frame in self.frames((fatal.pc + 1,))]
        return where + self.frames(fatal.callers)

    def site(self, pcs: tuple[int, ...]) -> Frame | None:
        return self.system.user_frame(self.frames(pcs))

    @property
    def mappings(self) -> MappingTable:
        return self.table.mappings

    def mapping_findings(self, mapping_kinds: frozenset[str]) -> dict[str, int]:
        """Regions left mapped, System V segments and POSIX objects left behind, of the kinds that count."""
        return {kind: n for kind, n in self.mappings.counts().items() if n and kind in mapping_kinds}

    def findings(self, error_kinds: frozenset[str],
                 mapping_kinds: frozenset[str] = DEFAULT_MAPPING_ERROR_KINDS) -> bool:
        """Heap errors always count; leaks count when their kind is in `error_kinds` and they are not suppressed;
        mappings and shared memory left behind when their kind is in `mapping_kinds`."""
        return (bool(self.errors()) or any(g.kind in error_kinds for g in self.leak_groups())
                or bool(self.mapping_findings(mapping_kinds)))

    @property
    def incomplete(self) -> str | None:
        """Why this report may miss what the process did (its table could not be read last time); None: whole."""
        return self.table.read_error

    @property
    def has_findings(self) -> bool:
        return bool(self.table.blocks) or bool(self.table.errors)

    def warm(self) -> None:
        """Resolve every PC a report may show, while the process's objects are still loaded."""
        for pcs in self.table.stacks():
            self.symbolizer.warm(pcs)
        for error in self.table.errors:
            for pcs in (error.pcs, error.alloc_pcs, error.free_pcs):
                self.symbolizer.warm(pcs)
        for pcs in self.mappings.all_pcs():
            self.symbolizer.warm(pcs)
        self.fatal_frames()


def _summary(records: Iterable[tuple[str, bool, int, int]]) -> dict[str, dict[str, int]]:
    """Bytes and blocks per kind of (kind, suppressed, bytes, blocks) records, the suppressed ones apart."""
    summary = {k: {"bytes": 0, "blocks": 0} for k in KINDS + ("suppressed",)}
    for kind, suppressed, nbytes, nblocks in records:
        entry = summary.setdefault("suppressed" if suppressed else kind, {"bytes": 0, "blocks": 0})
        entry["bytes"] += nbytes
        entry["blocks"] += nblocks
    return summary
