"""/proc/PID/maps parsing: where each object is loaded (its load bias) and which ranges hold code."""

from __future__ import annotations

import bisect
import functools
import os
from dataclasses import dataclass

from .elf import ET_DYN


@dataclass(frozen=True)
class Mapping:
    start: int
    end: int
    perms: str
    offset: int
    path: str

    @property
    def executable(self) -> bool:
        return "x" in self.perms


def parse_maps(text: str) -> list[Mapping]:
    maps = []
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 5:
            continue
        start, end = (int(x, 16) for x in parts[0].split("-"))
        path = parts[5].strip() if len(parts) > 5 else ""
        maps.append(Mapping(start, end, parts[1], int(parts[2], 16), path))
    return maps


def read_maps(pid: int) -> list[Mapping]:
    with open(f"/proc/{pid}/maps") as f:
        return parse_maps(f.read())


@functools.lru_cache(maxsize=4096)
def real_path(path: str) -> str:
    """os.path.realpath, once per path: the same few dozen mapped files are looked up for every object GDB loads
    (hundreds of realpath calls, each an lstat per path component, at every start)."""
    return os.path.realpath(path)


def load_bias(maps: list[Mapping], path: str, e_type: int, min_vaddr: int) -> int | None:
    """Address added to the object's link-time addresses; None when the object is not mapped."""
    real = real_path(path)
    starts = [m.start - m.offset for m in maps if m.path and real_path(m.path) == real]
    if not starts:
        return None
    if e_type != ET_DYN:
        return 0
    return min(starts) - min_vaddr


class CodeRanges:
    """Fast membership test 'is this address in an executable mapping' (validates unwound return addresses)."""

    def __init__(self, maps: list[Mapping]) -> None:
        ranges = sorted((m.start, m.end) for m in maps if m.executable)
        self._starts = [r[0] for r in ranges]
        self._ends = [r[1] for r in ranges]

    def __contains__(self, address: int) -> bool:
        i = bisect.bisect_right(self._starts, address) - 1
        return i >= 0 and address < self._ends[i]
