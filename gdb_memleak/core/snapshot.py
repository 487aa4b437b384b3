"""What a report is drawn from: one process's table, how it ended, and the symbolizer for its PCs."""

from __future__ import annotations

from dataclasses import dataclass, field

from .grouping import LeakGroup, group_by_stack
from .model import Frame, ProcessResult
from .symbols import Symbolizer, SystemFilter
from .table import AllocationTable


@dataclass
class ProcessReport:
    result: ProcessResult
    table: AllocationTable
    symbolizer: Symbolizer
    system: SystemFilter = field(default_factory=SystemFilter)
    notes: list[str] = field(default_factory=list)  # caveats printed under the report header

    def leak_groups(self) -> list[LeakGroup]:
        return group_by_stack(self.table.live())

    def frames(self, pcs: tuple[int, ...]) -> list[Frame]:
        return self.symbolizer.stack(pcs)

    def site(self, pcs: tuple[int, ...]) -> Frame | None:
        return self.system.user_frame(self.frames(pcs))

    @property
    def has_findings(self) -> bool:
        return bool(self.table.blocks) or bool(self.table.errors)

    def warm(self) -> None:
        """Resolve every PC a report may show, while the process's objects are still loaded."""
        for block in self.table.blocks.values():
            self.symbolizer.warm(block.pcs)
        for error in self.table.errors:
            for pcs in (error.pcs, error.alloc_pcs, error.free_pcs):
                self.symbolizer.warm(pcs)
