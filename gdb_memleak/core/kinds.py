"""Leak kinds (valgrind's names) and the sets users pass as `--kind`, `--errors-for-leak-kinds`."""

from __future__ import annotations

KINDS = ("definite", "indirect", "possible", "reachable")
UNFREED = "unfreed"  # a block allocated since the last reachability scan (or never scanned): kind unknown
LABELS = {"definite": "definitely lost", "indirect": "indirectly lost", "possible": "possibly lost",
          "reachable": "still reachable", UNFREED: "unfreed (not scanned)", "suppressed": "suppressed"}
ORDER = {kind: i for i, kind in enumerate(KINDS + (UNFREED,))}

# valgrind's defaults for --show-leak-kinds and --errors-for-leak-kinds; an unscanned block counts until known.
DEFAULT_SHOWN = frozenset({"definite", "possible", UNFREED})
DEFAULT_ERROR_KINDS = frozenset({"definite", "possible", UNFREED})


def parse_kinds(text: str) -> frozenset[str]:
    """`definite,possible` | `all` | `none` -> a set of kinds; ValueError names an unknown kind."""
    text = text.strip()
    if text == "all":
        return frozenset(KINDS + (UNFREED,))
    if text == "none":
        return frozenset()
    kinds = {k.strip() for k in text.split(",") if k.strip()}
    unknown = kinds - set(KINDS)
    if unknown or not kinds:
        raise ValueError(f"unknown leak kind {', '.join(sorted(unknown)) or repr(text)} "
                         f"(choose from {', '.join(KINDS)}, all, none)")
    return frozenset(kinds | {UNFREED})
