"""What every writer is told besides the reports: one options record for text, JSON, SARIF, folded, mtrace and XML."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from ..kinds import DEFAULT_ERROR_KINDS, DEFAULT_SHOWN
from ..mappings import DEFAULT_MAPPING_ERROR_KINDS
from ..report import LeakFilter


@dataclass
class ReportOptions:
    top: int | None = None            # only the first N groups of a listing
    min_bytes: int = 0                # hide groups smaller than this
    stack: bool = False               # full allocation stacks in listings
    changes: str | None = None        # "increased" / "changed": only the loss records that did since the previous
                                      # checkpoint (core/deltas.py), and the LEAK SUMMARY's deltas
    color: bool = False               # pygments/ANSI colours (only where GDB itself would colour)
    where: LeakFilter | None = field(default_factory=lambda: LeakFilter(kinds=DEFAULT_SHOWN))
    error_kinds: frozenset[str] = DEFAULT_ERROR_KINDS   # leak kinds the verdict counts as errors
    mapping_error_kinds: frozenset[str] = DEFAULT_MAPPING_ERROR_KINDS  # mappings, sysv, posix: which count
    source_root: str | None = None    # SARIF: files under it get %SRCROOT%-relative URIs
    object_base: Callable[[str], int | None] | None = None   # mtrace: load address of an object
    command: Sequence[str] = ()       # XML: gdb-memleak's own command line, its options only (valgrind's vargv)
    gen_suppressions: bool = False    # valgrind's --gen-suppressions=all: a suppression block after each record
    quiet: bool = False               # valgrind's -q (--log-file): only the errors and loss records
    verbose: bool = False             # valgrind's -v (--log-file): the used-suppression lines too
