"""Lazy symbolization: raw PCs are resolved once each, at report time, through a resolver the adapter supplies."""

from __future__ import annotations

import re
from typing import Callable, Iterable

from .model import Frame

DEFAULT_SYSTEM_OBJECTS = r"^/(usr/)?lib(32|64|x32)?/|linux-vdso|^\[vdso\]"


class Symbolizer:
    """Caches `resolve(pc) -> Frame` per PC; the resolver is GDB in production and a dict in tests."""

    def __init__(self, resolve: Callable[[int], Frame]) -> None:
        self._resolve = resolve
        self._cache: dict[int, Frame] = {}

    def frame(self, pc: int) -> Frame:
        frame = self._cache.get(pc)
        if frame is None:
            try:
                frame = self._resolve(pc)
            except Exception:  # a PC in unmapped or corrupt memory still gets a line in the report
                frame = Frame(pc, f"0x{pc:x}")
            self._cache[pc] = frame
        return frame

    def stack(self, pcs: Iterable[int]) -> list[Frame]:
        return [self.frame(pc) for pc in pcs]

    def warm(self, pcs: Iterable[int]) -> None:
        """Resolve now (e.g. before the process's libraries are unloaded at exit)."""
        for pc in pcs:
            self.frame(pc)


class SystemFilter:
    """Decides which frames are 'system' (libc, libstdc++, the loader) so a leak is shown at the user's code."""

    def __init__(self, pattern: str = DEFAULT_SYSTEM_OBJECTS) -> None:
        self.pattern = pattern
        self._regex = re.compile(pattern) if pattern else None

    def is_system(self, frame: Frame) -> bool:
        return bool(self._regex and self._regex.search(frame.object or ""))

    def user_frame(self, frames: list[Frame]) -> Frame | None:
        for frame in frames:
            if not self.is_system(frame):
                return frame
        return frames[0] if frames else None
