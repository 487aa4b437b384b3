"""What valgrind's --gen-suppressions=all and -v print for a report: a suppression block in valgrind's format for
each error and loss record shown (it reads back in, here and in valgrind, and suppresses exactly that record), and
the used-suppression counts."""

from __future__ import annotations

from dataclasses import dataclass

from ..grouping import LeakGroup
from ..model import HeapError
from ..report import LeakFilter, ProcessReport
from ..valgrind_stack import valgrind_stack
from ..valgrind_supp import FREE, LEAK, PLACEHOLDER, generate_valgrind, used_line


def leak_block(report: ProcessReport, group: LeakGroup, name: str = PLACEHOLDER) -> str:
    """The Memcheck:Leak block (with its match-leak-kinds) suppressing this loss record."""
    stack = valgrind_stack(report.frames(group.pcs), group.allocator, report.suppressions.num_callers)
    return generate_valgrind(LEAK, stack, name, leak_kind=group.kind)


def error_block(report: ProcessReport, error: HeapError, name: str = PLACEHOLDER) -> str:
    """The Memcheck:Free block suppressing this double, invalid or mismatched release."""
    stack = valgrind_stack(report.frames(error.pcs), error.allocator, report.suppressions.num_callers)
    return generate_valgrind(FREE, stack, name)


def all_blocks(report: ProcessReport, where: LeakFilter | None = None) -> list[str]:
    """A block for every heap error and every loss record `where` lists (no suppression hides them)."""
    return [error_block(report, e) for e in report.errors()] + [leak_block(report, g)
                                                                 for g in report.leak_groups(where)]


def used_lines(report: ProcessReport) -> list[str]:
    """valgrind's -v lines: `used_suppression:     12 name file:line`, a Leak entry with what it suppressed."""
    return [used_line(used.count, s.name, s.where, used.bytes, used.blocks)
            for s, used in report.used_suppressions()]


@dataclass(frozen=True)
class ErrorSummary:
    """valgrind's ERROR SUMMARY: errors shown and their contexts (distinct stacks), suppressed ones apart."""

    errors: int
    contexts: int
    suppressed: int
    suppressed_contexts: int

    def line(self) -> str:
        return (f"ERROR SUMMARY: {self.errors:,} errors from {self.contexts:,} contexts "
                f"(suppressed: {self.suppressed:,} from {self.suppressed_contexts:,})")


def error_summary(report: ProcessReport, error_kinds: frozenset[str]) -> ErrorSummary:
    """Each heap error counts once per occurrence, errors of the same kind at the same stack being one context
    (double and invalid frees are one kind for valgrind, mismatched ones another); each loss record of a kind in
    `error_kinds` counts as one error and one context, as valgrind's leak check counts them."""
    depth = report.suppressions.num_callers - 1  # the stack valgrind compares, less the release's own frame
    errors = {False: 0, True: 0}  # suppressed? -> occurrences
    contexts: dict[bool, set[tuple]] = {False: set(), True: set()}
    for error in report.table.errors:
        hidden = report.error_suppression(error) is not None
        errors[hidden] += 1
        contexts[hidden].add((error.type == "mismatched_free", error.allocator, error.pcs[:depth]))
    for group in report.leak_groups() + report.suppressed_groups():
        if group.kind in error_kinds:
            hidden = group.suppressed_by is not None
            errors[hidden] += 1
            contexts[hidden].add(("leak", group.kind, group.allocator, group.pcs))
    return ErrorSummary(errors[False], len(contexts[False]), errors[True], len(contexts[True]))
