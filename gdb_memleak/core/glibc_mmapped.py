"""glibc's mmapped chunks (2.36, x86-64), of which the allocator keeps no list: found by their headers.

Each such chunk has a mapping of its own, starting with its header: prev_size 0 and a size of whole pages with only
IS_MMAPPED set. memalign moves the chunk forward to an aligned address inside that mapping (prev_size then says how
far), leaving the first header as it was. The kernel merges adjacent anonymous mappings into one line of
/proc/PID/maps, so several chunks may follow one another in one mapping, or share it with an arena's heap or the
program's own memory: each page start is looked at, and a chunk found is skipped whole.
"""

from __future__ import annotations

from typing import Callable, Iterable

from .procmaps import Mapping

Reader = Callable[[int, int], bytes | bytearray | memoryview]

PREV_INUSE, IS_MMAPPED = 1, 2
FLAGS = 7                 # PREV_INUSE, IS_MMAPPED, NON_MAIN_ARENA: the low bits of a chunk's size field
MINSIZE = 32
ALIGN = 16
CHUNK_HEADER = 16         # prev_size and size: the user's block starts 16 bytes into its chunk
RECORDER_PATHS = ("gdb-memleak", "librecorder")  # the recorder's own mappings are never the program's heap
PROBE_WINDOW = 1 << 20    # page headers are looked at in reads of this many bytes


def mmapped_blocks(read: Reader, mappings: Iterable[Mapping], heaps: list[tuple[int, int]],
                   page: int) -> list[tuple[int, int]]:
    """(address, usable size) of every mmapped chunk in the anonymous read-write mappings, outside `heaps` (the
    arenas' heaps, walked otherwise)."""
    found: list[tuple[int, int]] = []
    for mapping in mappings:
        if not candidate_mapping(mapping):
            continue
        for start, end in outside(mapping.start, mapping.end, heaps):
            try:
                probe(read, start, end, page, found)
            except Exception:  # an unreadable mapping (it went away, or is not backed): nothing of malloc's there
                continue
    return found


def candidate_mapping(mapping: Mapping) -> bool:
    """An anonymous read-write mapping, not a stack and not the recorder's: where mmapped chunks can be."""
    if not mapping.perms.startswith("rw"):
        return False
    if any(name in mapping.path for name in RECORDER_PATHS):
        return False
    return mapping.path == "" or mapping.path.startswith("[anon:")


def outside(start: int, end: int, heaps: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of [start, end) outside the heaps."""
    parts = [(start, end)]
    for low, high in heaps:
        parts = [piece for a, b in parts for piece in ((a, min(b, low)), (max(a, high), b)) if piece[0] < piece[1]]
    return parts


def probe(read: Reader, start: int, end: int, page: int, found: list[tuple[int, int]]) -> None:
    """The mmapped chunks in [start, end), appended to `found`: each page start is looked at; a chunk is jumped."""
    at = start
    window_start, window = -1, memoryview(b"").cast("Q")
    while at + CHUNK_HEADER <= end:
        if not window_start <= at < window_start + 8 * len(window):
            window_start = at
            window = memoryview(bytes(read(at, min(PROBE_WINDOW, end - at)))).cast("Q")
        index = (at - window_start) >> 3
        prev_size, head = window[index], window[index + 1]
        size = head & ~FLAGS
        if prev_size == 0 and head & FLAGS == IS_MMAPPED and size and at + size <= end:
            chunk, chunk_size = aligned_inside(read, at, size, end, page)
            if chunk_size or size % page == 0:
                if not chunk_size:
                    chunk, chunk_size = at, size
                found.append((chunk + CHUNK_HEADER, chunk_size - CHUNK_HEADER))
                at = (chunk + chunk_size + page - 1) & -page
                continue
        at += page


def aligned_inside(read: Reader, mapping: int, size: int, end: int, page: int) -> tuple[int, int]:
    """The chunk memalign placed inside an mmapped chunk whose header at `mapping` it left as it was: at the first
    offset L where memalign puts a block aligned to some power of two, a header whose prev_size is L and whose size
    ends the mapping on a page. (0, 0) when there is none."""
    alignment = 2 * ALIGN
    while alignment <= size:
        chunk = ((mapping + CHUNK_HEADER + alignment - 1) & -alignment) - CHUNK_HEADER
        if chunk - mapping < MINSIZE:
            chunk += alignment
        lead = chunk - mapping
        if lead < size:
            header = bytes(read(chunk, CHUNK_HEADER))
            prev_size = int.from_bytes(header[:8], "little")
            head = int.from_bytes(header[8:], "little")
            inner = head & ~FLAGS
            if prev_size == lead and head & FLAGS == IS_MMAPPED and inner and (lead + inner) % page == 0 \
                    and chunk + inner <= end:
                return chunk, inner
        alignment *= 2
    return 0, 0
