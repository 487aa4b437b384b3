"""The closed sets shared by core, the GDB adapter and the CLI: leak kinds (valgrind's names), heap-error types and
`on-error` actions, plus the kind sets users pass as `--kind`, `--errors-for-leak-kinds`.

They are `str` enums: JSON, settings and user input carry the plain words, and a member compares equal to its word.
"""

from __future__ import annotations

from enum import Enum


class _Word(str, Enum):
    """A member prints and formats as its word (`definite`), on every Python version."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class LeakKind(_Word):
    DEFINITE = "definite"
    INDIRECT = "indirect"
    POSSIBLE = "possible"
    REACHABLE = "reachable"
    UNFREED = "unfreed"  # allocated since the last reachability scan (or never scanned): kind unknown


class ErrorType(_Word):
    DOUBLE_FREE = "double_free"          # the block was already freed
    INVALID_FREE = "invalid_free"        # no allocator returned this pointer
    MISMATCHED_FREE = "mismatched_free"  # released by another family (new + free, malloc + delete, new[] + delete)


class OnError(_Word):
    STOP = "stop"      # stop the program at the bad call
    REPORT = "report"  # print it and let the call happen
    SKIP = "skip"      # print it and make the call return at once (valgrind: a bad free is not performed)


def effective_action(action: OnError, error: ErrorType) -> OnError:
    """What happens to the bad call: a mismatched release still releases the block (as valgrind does), so it is
    never skipped."""
    if action is OnError.SKIP and error is ErrorType.MISMATCHED_FREE:
        return OnError.REPORT
    return action


KINDS = (LeakKind.DEFINITE, LeakKind.INDIRECT, LeakKind.POSSIBLE, LeakKind.REACHABLE)
UNFREED = LeakKind.UNFREED
LABELS: dict[str, str] = {
    LeakKind.DEFINITE: "definitely lost", LeakKind.INDIRECT: "indirectly lost", LeakKind.POSSIBLE: "possibly lost",
    LeakKind.REACHABLE: "still reachable", UNFREED: "unfreed (not scanned)", "suppressed": "suppressed"}
ORDER: dict[str, int] = {kind: i for i, kind in enumerate(KINDS + (UNFREED,))}

# valgrind's defaults for --show-leak-kinds and --errors-for-leak-kinds; an unscanned block counts until known.
DEFAULT_SHOWN = frozenset({LeakKind.DEFINITE, LeakKind.POSSIBLE, UNFREED})
DEFAULT_ERROR_KINDS = frozenset({LeakKind.DEFINITE, LeakKind.POSSIBLE, UNFREED})


def parse_kinds(text: str) -> frozenset[LeakKind]:
    """`definite,possible` | `all` | `none` -> a set of kinds; ValueError names an unknown kind."""
    text = text.strip()
    if text == "all":
        return frozenset(KINDS + (UNFREED,))
    if text == "none":
        return frozenset()
    words = {k.strip() for k in text.split(",") if k.strip()}
    unknown = words - {k.value for k in KINDS}
    if unknown or not words:
        raise ValueError(f"unknown leak kind {', '.join(sorted(unknown)) or repr(text)} "
                         f"(choose from {', '.join(KINDS)}, all, none)")
    return frozenset({LeakKind(w) for w in words} | {UNFREED})
