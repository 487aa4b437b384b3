"""A report as valgrind's memcheck presents it, for the writers that speak its formats (XML protocol 4): its error
contexts, its loss records and its words.

- Error contexts: memcheck shows a bad free once per context, the first one seen, and counts the others. A context
  is the error kind (a double free is an InvalidFree, as any free of a pointer that is not a live block's start)
  and the top four frames of the bad call's stack: the release function and its three callers (valgrind's
  default `--leak-resolution`-independent "medium" match of error stacks). Each error takes the next number
  (`unique`) whether or not it is shown, so a context's number is how many errors came before its first.
- Loss records: every record (each kind, suppressed ones included) is numbered after sorting by total size (its
  own bytes plus what is lost through it), then kind (definite, indirect, possible, reachable), then blocks, then
  age; "loss record 3 of 5" counts them all, shown or not.
- Stacks: memcheck's start in its replacement of the allocator (`malloc`, `operator new(unsigned long)`, `free`,
  ...); ours start at its caller. `allocator_function` names the replaced function as memcheck does, for a frame
  put in front of ours.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..addressinfo import AddressInfo, Place
from ..allocators import DEFAULT_ALLOCATORS, AllocatorSpec
from ..grouping import LeakGroup
from ..kinds import LABELS, ORDER, UNFREED, ErrorType, LeakKind
from ..model import HeapError
from ..report import ProcessReport

#: memcheck's error kinds (XML `kind`) for ours; a block never scanned has no kind of its own
LEAK_KINDS = {LeakKind.DEFINITE: "Leak_DefinitelyLost", LeakKind.INDIRECT: "Leak_IndirectlyLost",
              LeakKind.POSSIBLE: "Leak_PossiblyLost", LeakKind.REACHABLE: "Leak_StillReachable",
              UNFREED: "Leak_PossiblyLost"}
ERROR_KINDS = {ErrorType.DOUBLE_FREE: "InvalidFree", ErrorType.INVALID_FREE: "InvalidFree",
               ErrorType.MISMATCHED_FREE: "MismatchedFree"}
ERROR_WHAT = {"InvalidFree": "Invalid free() / delete / delete[] / realloc()",
              "MismatchedFree": "Mismatched free() / delete / delete []"}
CONTEXT_FRAMES = 3  # callers of the release function that tell two contexts apart (with it: memcheck's four)

_OPERATORS = {"_Znwm": "operator new(unsigned long", "_Znam": "operator new[](unsigned long",
              "_ZdlPv": "operator delete(void*", "_ZdaPv": "operator delete[](void*"}
_PARAMETERS = (("m", "unsigned long"), ("St11align_val_t", "std::align_val_t"),
               ("RKSt9nothrow_t", "std::nothrow_t const&"))


def _demangled(spec: AllocatorSpec) -> str:
    """The C++ operators' demangled names (`_ZdlPvm` -> `operator delete(void*, unsigned long)`); C names as they
    are."""
    head = next((h for h in _OPERATORS if spec.name.startswith(h)), None)
    if head is None:
        return spec.name
    rest, words = spec.name[len(head):], [_OPERATORS[head]]
    while rest:
        code, word = next((c, w) for c, w in _PARAMETERS if rest.startswith(c))
        words.append(word)
        rest = rest[len(code):]
    return ", ".join(words) + ")"


_FUNCTIONS = {spec.display: _demangled(spec) for spec in DEFAULT_ALLOCATORS}


def allocator_function(label: str | None) -> str | None:
    """memcheck's name for the allocator or release function a report calls `label` (`new[]` -> `operator
    new[](unsigned long)`, `delete(sized)` -> `operator delete(void*, unsigned long)`); None when unknown."""
    return _FUNCTIONS.get(label, label) if label else None


@dataclass
class ErrorContext:
    """A bad free as memcheck shows it: its first occurrence, how many there were, its number."""

    kind: str
    first: HeapError
    unique: int
    count: int = 1


def error_contexts(report: ProcessReport) -> list[ErrorContext]:
    """The report's heap errors merged into memcheck's contexts, in the order of their first occurrence."""
    contexts: dict[tuple, ErrorContext] = {}
    for number, error in enumerate(report.errors()):
        kind = ERROR_KINDS[ErrorType(error.type)]
        key = (kind, error.allocator, error.pcs[:CONTEXT_FRAMES])
        if key in contexts:
            contexts[key].count += 1
        else:
            contexts[key] = ErrorContext(kind, error, number)
    return list(contexts.values())


@dataclass
class LossRecord:
    group: LeakGroup
    number: int
    of: int
    suppressed: bool

    @property
    def kind(self) -> str:
        return LEAK_KINDS[LeakKind(self.group.kind)]

    def text(self) -> str:
        """memcheck's words: "80 (16 direct, 64 indirect) bytes in 1 blocks are definitely lost in loss record 2 of
        3" (always "bytes" and "blocks"); a record never scanned says it has no kind yet."""
        g = self.group
        size = f"{g.total_bytes:,} ({g.bytes:,} direct, {g.indirect_bytes:,} indirect)" if g.indirect_bytes \
            else f"{g.bytes:,}"
        verb = "possibly lost (not scanned: kind unknown)" if g.kind == UNFREED else LABELS[g.kind]
        return f"{size} bytes in {g.blocks:,} blocks are {verb} in loss record {self.number:,} of {self.of:,}"


def loss_records(report: ProcessReport) -> list[LossRecord]:
    """Every loss record, suppressed ones included, numbered and ordered as memcheck does."""
    suppressed = report.suppressed_groups()
    groups = sorted(report.leak_groups() + suppressed,
                    key=lambda g: (g.total_bytes, ORDER.get(g.kind, len(ORDER)), g.blocks, g.first_seq))
    hidden = {id(g) for g in suppressed}
    return [LossRecord(g, i, len(groups), id(g) in hidden) for i, g in enumerate(groups, 1)]


# -- what the pointer of a bad free is: memcheck's auxiliary lines, each followed by its stack (or none) ----------

AuxLine = tuple[str, tuple[int, ...] | None, str | None]  # text; the stack under it; the allocator at its top

_SECTIONS = {".bss": "BSS", ".data": "Data", ".rodata": "Rodata", ".text": "Text", ".got": "GOT", ".plt": "PLT",
             ".got.plt": "GOTPLT"}


def aux_lines(error: HeapError) -> list[AuxLine]:
    """memcheck's lines under a bad free: "Address 0x… is 0 bytes inside a block of size 40 free'd" with where it
    was freed, "Block was alloc'd at" with where it was allocated; for a mismatched release, "... alloc'd" with
    where; for an invalid free, what the pointer is (nothing when that is not known)."""
    release = error.allocator
    if error.type == ErrorType.DOUBLE_FREE:
        return _block_lines(error.address, 0, error.block_size, error.free_pcs, error.alloc_pcs, release,
                            error.alloc_allocator)
    if error.type == ErrorType.MISMATCHED_FREE:
        return _block_lines(error.address, 0, error.block_size, (), error.alloc_pcs, release, error.alloc_allocator)
    info = error.address_info
    return _address_lines(info, release) if info is not None else []


def _block_lines(address: int, offset: int, size: int | None, free_pcs: tuple[int, ...],
                 alloc_pcs: tuple[int, ...], release: str | None, allocator: str | None) -> list[AuxLine]:
    head = f"Address 0x{address:x} is {offset:,} bytes inside a block of size {size or 0:,}"
    if not free_pcs:
        return [(f"{head} alloc'd", alloc_pcs or None, allocator)]
    return [(f"{head} free'd", free_pcs, release), ("Block was alloc'd at", alloc_pcs or None, allocator)]


def _address_lines(info: AddressInfo, release: str | None) -> list[AuxLine]:
    head = f"Address 0x{info.address:x} is"
    if info.place in (Place.BLOCK, Place.FREED):
        return _block_lines(info.address, info.offset, info.block_size, info.free_pcs, info.alloc_pcs, release,
                            info.allocator)
    if info.place is Place.STACK:
        return [(f"{head} on thread {info.thread}'s stack", None, None)]
    if info.place is Place.GLOBAL and info.symbol:
        return [(f'{head} {info.offset:,} bytes inside data symbol "{info.symbol}"', None, None)]
    if info.place is Place.GLOBAL:
        section = _SECTIONS.get(info.section or "", info.section or "data")
        return [(f"{head} in the {section} segment of {info.object}", None, None)]
    if info.place is Place.MAPPING and info.object and info.object.startswith("/"):
        return [(f"{head} in a mapped file {info.object} segment", None, None)]
    if info.place is Place.MAPPING:
        return [(f"{head} in an anonymous segment", None, None)]
    return [(f"{head} not stack'd, malloc'd or (recently) free'd", None, None)]
