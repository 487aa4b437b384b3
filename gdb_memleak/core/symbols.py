"""Lazy symbolization: raw PCs are resolved once each, at report time, through a resolver the adapter supplies."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

from .model import Frame

DEFAULT_SYSTEM_OBJECTS = r"^/(usr/)?lib(32|64|x32)?/|linux-vdso|^\[vdso\]"
# Headers of installed libraries: the C++ standard library's templates (std::vector, std::string, ...) are compiled
# into the user's own object, inlined or not, yet the line a leak is shown at is the user's call, not the header's.
DEFAULT_SYSTEM_SOURCES = r"^/usr/(local/)?include/"

# How a frame without debug information is named (gdb/symbolize.py): its ELF symbol and the offset in it
# (`malloc+0x1a`), else its object's file name and the offset in that (`libfoo.so+0x1234`), else its address
OFFSET_NAME = re.compile(r"^(?P<name>.+)\+0x[0-9a-fA-F]+$")
RAW_ADDRESS = re.compile(r"^0x[0-9a-fA-F]+$")
UNNAMED = frozenset({"", "??", "<function called from gdb>"})  # no name at all, or GDB's own call's frame

# A resolver gives one Frame, or several for a PC where calls were inlined (innermost first, the physical
# function last).
Resolver = Callable[[int], Frame | Sequence[Frame]]


class Symbolizer:
    """Caches `resolve(pc)` per PC; the resolver is GDB in production and a dict in tests."""

    def __init__(self, resolve: Resolver) -> None:
        self._resolve = resolve
        self._cache: dict[int, tuple[Frame, ...]] = {}

    def frames(self, pc: int) -> tuple[Frame, ...]:
        """Every source frame at `pc`: the inlined calls there, innermost first, then the physical function."""
        frames = self._cache.get(pc)
        if frames is None:
            try:
                resolved = self._resolve(pc)
                frames = (resolved,) if isinstance(resolved, Frame) else tuple(resolved)
            except Exception:  # a PC in unmapped or corrupt memory still gets a line in the report
                frames = ()
            if not frames:
                frames = (Frame(pc, f"0x{pc:x}"),)
            self._cache[pc] = frames
        return frames

    def frame(self, pc: int) -> Frame:
        """The innermost source frame at `pc`."""
        return self.frames(pc)[0]

    def stack(self, pcs: Iterable[int]) -> list[Frame]:
        """The source stack of recorded PCs, inlined frames expanded (as valgrind and GDB's `backtrace` show it)."""
        return [frame for pc in pcs for frame in self.frames(pc)]

    def warm(self, pcs: Iterable[int]) -> None:
        """Resolve now (e.g. before the process's libraries are unloaded at exit)."""
        for pc in pcs:
            self.frames(pc)


class SystemFilter:
    """Decides which frames are 'system' (libc, libstdc++, the loader, library headers) so a leak is shown at the
    user's code."""

    def __init__(self, pattern: str = DEFAULT_SYSTEM_OBJECTS, sources: str = DEFAULT_SYSTEM_SOURCES) -> None:
        self.pattern = pattern
        self._regex = re.compile(pattern) if pattern else None
        self._sources = re.compile(sources) if sources else None

    def is_system(self, frame: Frame) -> bool:
        if self._regex and self._regex.search(frame.object or ""):
            return True
        return bool(self._sources and frame.file and self._sources.search(frame.file))

    def user_frame(self, frames: list[Frame]) -> Frame | None:
        for frame in frames:
            if not self.is_system(frame):
                return frame
        return frames[0] if frames else None
