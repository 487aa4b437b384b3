"""What a process maps and the shared memory it creates: regions by address, System V segments by shmid, POSIX
shared memory objects by name.

An engine feeds it the results of mmap/munmap/mremap/shmat/shmdt, shmget/shmctl(IPC_RMID) and shm_open/shm_unlink;
the `AllocationTable` owns one, so a forked child gets a copy (what it inherited is its parent's to report: every
entry is reported once, by the process that made it) and a vforked child shares its parent's.

A region is kept as [start, stop): `stop` is start + the length asked for; the kernel's mapping runs to the next
page boundary, which is what munmap/mremap work on. A partial munmap splits a region into the pieces left.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Callable

PROT_READ, PROT_WRITE, PROT_EXEC = 0x1, 0x2, 0x4
MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE, MAP_TYPE = 0x01, 0x02, 0x03, 0x0F
MAP_FIXED, MAP_ANONYMOUS = 0x10, 0x20
MAP_FAILED = 0xFFFF_FFFF_FFFF_FFFF  # (void *) -1
SHM_RDONLY = 0o10000
IPC_RMID = 0
IPC_PRIVATE = 0
O_CREAT = 0o100
SHM_DEST = 0o1000  # /proc/sysvipc/shm `perms`: marked for removal, destroyed at the last detach
SYSV_PROC = "/proc/sysvipc/shm"
POSIX_SHM_DIR = "/dev/shm"
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

_FLAG_NAMES = ((0x100, "MAP_GROWSDOWN"), (0x800, "MAP_DENYWRITE"), (0x1000, "MAP_EXECUTABLE"),
               (0x2000, "MAP_LOCKED"), (0x4000, "MAP_NORESERVE"), (0x8000, "MAP_POPULATE"),
               (0x10000, "MAP_NONBLOCK"), (0x20000, "MAP_STACK"), (0x40000, "MAP_HUGETLB"), (0x80000, "MAP_SYNC"),
               (0x100000, "MAP_FIXED_NOREPLACE"))
_TYPE_NAMES = {MAP_SHARED: "MAP_SHARED", MAP_PRIVATE: "MAP_PRIVATE", MAP_SHARED_VALIDATE: "MAP_SHARED_VALIDATE"}

# The kinds `errors-for-mappings` chooses from. Regions left mapped die with the process (like valgrind's "still
# reachable" they are listed, not counted, by default); System V segments and POSIX objects outlive it: counted.
MAPPING_KINDS = ("mappings", "sysv", "posix")
DEFAULT_MAPPING_ERROR_KINDS = frozenset({"sysv", "posix"})


def parse_mapping_kinds(text: str) -> frozenset[str]:
    """`sysv,posix` | `all` | `none` -> a set of mapping kinds; ValueError names an unknown kind."""
    text = text.strip()
    if text == "all":
        return frozenset(MAPPING_KINDS)
    if text == "none":
        return frozenset()
    words = {w.strip() for w in text.split(",") if w.strip()}
    unknown = words - set(MAPPING_KINDS)
    if unknown or not words:
        raise ValueError(f"unknown mapping kind {', '.join(sorted(unknown)) or repr(text)} "
                         f"(choose from {', '.join(MAPPING_KINDS)}, all, none)")
    return frozenset(words)


def prot_text(prot: int) -> str:
    return "".join(c if prot & bit else "-" for bit, c in ((PROT_READ, "r"), (PROT_WRITE, "w"), (PROT_EXEC, "x")))


def flags_text(flags: int) -> str:
    names = [_TYPE_NAMES.get(flags & MAP_TYPE, f"0x{flags & MAP_TYPE:x}")]
    names += [name for bit, name in ((MAP_FIXED, "MAP_FIXED"), (MAP_ANONYMOUS, "MAP_ANONYMOUS"), *_FLAG_NAMES)
              if flags & bit]
    return "|".join(names)


def backing_of(flags: int, fd: int, target: str | None) -> str:
    """What a new mapping is backed by: "anonymous", or the file its descriptor names ("/dev/zero", a path,
    "/dev/shm/NAME" for a POSIX object, "memfd:NAME" for memfd_create)."""
    if flags & MAP_ANONYMOUS or fd < 0:
        return "anonymous"
    if not target:
        return f"fd {fd}"
    if target.startswith("/memfd:"):
        return target[1:].removesuffix(" (deleted)")
    return target


@dataclass
class Region:
    start: int
    stop: int         # start + length asked for
    prot: int
    flags: int
    backing: str
    call: str         # the call that made it: mmap, mremap, shmat
    pcs: tuple[int, ...]
    thread: int
    time: float
    seq: int
    shmid: int | None = None   # a System V attachment
    inherited: bool = False    # mapped by an ancestor before a fork: its creator reports it

    @property
    def length(self) -> int:
        return self.stop - self.start


@dataclass
class SysvSegment:
    shmid: int
    key: int
    size: int
    pcs: tuple[int, ...]
    thread: int
    time: float
    seq: int
    removed: bool = False      # shmctl(IPC_RMID) seen, or gone / marked for removal in /proc/sysvipc/shm
    inherited: bool = False


@dataclass
class PosixObject:
    name: str
    pcs: tuple[int, ...]
    thread: int
    time: float
    seq: int
    size: int | None = None    # from /dev/shm when last checked
    unlinked: bool = False     # shm_unlink seen, or no longer in /dev/shm
    inherited: bool = False

    @property
    def path(self) -> str:
        return os.path.join(POSIX_SHM_DIR, self.name.lstrip("/"))


@dataclass(frozen=True)
class SysvInfo:
    """One row of /proc/sysvipc/shm."""

    key: int
    shmid: int
    perms: int
    size: int
    cpid: int
    nattch: int

    @property
    def marked_for_removal(self) -> bool:
        return bool(self.perms & SHM_DEST)


def parse_sysvipc(text: str) -> dict[int, SysvInfo]:
    rows: dict[int, SysvInfo] = {}
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 7:
            continue
        try:
            info = SysvInfo(int(parts[0]), int(parts[1]), int(parts[2], 8), int(parts[3]), int(parts[4]),
                            int(parts[6]))
        except ValueError:
            continue
        rows[info.shmid] = info
    return rows


def read_sysvipc(path: str = SYSV_PROC) -> dict[int, SysvInfo] | None:
    """The system's System V segments now; None when the kernel does not show them."""
    try:
        with open(path) as f:
            return parse_sysvipc(f.read())
    except OSError:
        return None


def posix_size(path: str) -> int | None:
    """Size of a POSIX shared memory object (its file under /dev/shm); None when it no longer exists."""
    try:
        return os.stat(path).st_size
    except OSError:
        return None


class MappingTable:
    """One process's mapped regions and the shared memory objects it created."""

    def __init__(self, page_size: int = PAGE_SIZE) -> None:
        self.page_size = page_size
        self.regions: dict[int, Region] = {}
        self._starts: list[int] = []        # sorted keys of `regions`
        self.segments: dict[int, SysvSegment] = {}
        self.objects: dict[str, PosixObject] = {}
        self._seq = 0

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def _page_end(self, address: int) -> int:
        return -(-address // self.page_size) * self.page_size

    # -- regions ------------------------------------------------------------------------------------------------
    def overlapping(self, address: int, length: int) -> list[Region]:
        """Regions sharing a page with [address, address + length), in address order."""
        end = address + self._page_end(max(length, 1))
        i = max(bisect.bisect_right(self._starts, address) - 1, 0)
        found = []
        while i < len(self._starts) and self._starts[i] < end:
            region = self.regions[self._starts[i]]
            if self._page_end(region.stop) > address:
                found.append(region)
            i += 1
        return found

    def _insert(self, region: Region) -> None:
        if region.start not in self.regions:
            bisect.insort(self._starts, region.start)
        self.regions[region.start] = region

    def _drop(self, region: Region) -> None:
        del self.regions[region.start]
        self._starts.pop(bisect.bisect_left(self._starts, region.start))

    def on_map(self, address: int, length: int, prot: int, flags: int, backing: str, call: str,
               pcs: tuple[int, ...], thread: int, now: float, shmid: int | None = None) -> Region | None:
        """A new mapping; whatever it overlays (MAP_FIXED) is gone. MAP_FAILED or an empty length is no region."""
        if address == MAP_FAILED or length <= 0:
            return None
        self.on_unmap(address, length)
        region = Region(address, address + length, prot, flags, backing, call, pcs, thread, now, self._next(), shmid)
        self._insert(region)
        return region

    def on_unmap(self, address: int, length: int) -> int:
        """munmap(address, length) succeeded: cut the pages out of every region they touch; returns bytes removed."""
        if length <= 0:
            return 0
        cut_end = address + self._page_end(length)
        removed = 0
        for region in self.overlapping(address, length):
            self._drop(region)
            if region.start < address:
                self._insert(replace(region, stop=address))
            if cut_end < region.stop:
                self._insert(replace(region, start=cut_end))
            removed += max(0, min(region.stop, cut_end) - max(region.start, address))
        return removed

    def on_remap(self, old: int, old_size: int, new: int, new_size: int, pcs: tuple[int, ...], thread: int,
                 now: float) -> Region | None:
        """mremap returned `new`: the pages [old, old + old_size) of a tracked region now live at `new` with
        `new_size` bytes (old_size 0 duplicates a shared mapping). A region we do not track stays untracked."""
        if new == MAP_FAILED:
            return None
        source = next(iter(self.overlapping(old, max(old_size, 1))), None)
        if source is None or not source.start <= old < source.stop:
            return None
        if old_size:
            self.on_unmap(old, old_size)
        return self.on_map(new, new_size, source.prot, source.flags, source.backing, "mremap", pcs, thread, now,
                           source.shmid)

    def on_shmdt(self, address: int) -> bool:
        """shmdt(address) succeeded: the attachment made there is gone (every piece of it)."""
        region = self.regions.get(address)
        if region is None or region.shmid is None:
            return False
        for piece in [r for r in self.regions.values() if r.shmid == region.shmid and r.seq == region.seq]:
            self._drop(piece)
        return True

    # -- System V segments --------------------------------------------------------------------------------------
    def on_shmget(self, shmid: int, key: int, size: int, pcs: tuple[int, ...], thread: int,
                  now: float) -> SysvSegment | None:
        """A segment this process created (the caller decides: /proc/sysvipc/shm names its creator)."""
        if shmid in self.segments and not self.segments[shmid].removed:
            return None
        segment = SysvSegment(shmid, key, size, pcs, thread, now, self._next())
        self.segments[shmid] = segment
        return segment

    def segment_size(self, shmid: int) -> int | None:
        segment = self.segments.get(shmid)
        return segment.size if segment is not None else None

    def on_rmid(self, shmid: int) -> None:
        segment = self.segments.get(shmid)
        if segment is not None:
            segment.removed = True

    # -- POSIX objects ------------------------------------------------------------------------------------------
    def on_shm_open(self, name: str, pcs: tuple[int, ...], thread: int, now: float) -> PosixObject:
        """shm_open created `name` (O_CREAT, and it did not exist before the call)."""
        obj = PosixObject(name, pcs, thread, now, self._next())
        self.objects[name] = obj
        return obj

    def on_shm_unlink(self, name: str) -> None:
        obj = self.objects.get(name)
        if obj is not None:
            obj.unlinked = True

    # -- life cycle ---------------------------------------------------------------------------------------------
    def fork(self) -> MappingTable:
        """A forked child's view: the same regions, segments and objects, all its parent's to report."""
        child = MappingTable(self.page_size)
        child.regions = {a: replace(r, inherited=True) for a, r in self.regions.items()}
        child._starts = list(self._starts)
        child.segments = {k: replace(s, inherited=True) for k, s in self.segments.items()}
        child.objects = {k: replace(o, inherited=True) for k, o in self.objects.items()}
        child._seq = self._seq
        return child

    def settle(self, sysv: dict[int, SysvInfo] | None, size_of: Callable[[str], int | None] = posix_size) -> None:
        """Bring segments and objects in line with the system: another process may have removed a segment
        (gone, or marked for removal) or unlinked an object. `sysv` None: the kernel does not say; keep ours."""
        for segment in self.segments.values():
            if segment.removed or sysv is None:
                continue
            info = sysv.get(segment.shmid)
            if info is None or info.marked_for_removal:
                segment.removed = True
            else:
                segment.size = info.size
        for obj in self.objects.values():
            if not obj.unlinked:
                obj.size = size_of(obj.path)
                obj.unlinked = obj.size is None

    # -- what a report lists ------------------------------------------------------------------------------------
    def leaked_regions(self) -> list[Region]:
        """Regions this process mapped and has not unmapped, by address."""
        return [r for r in (self.regions[s] for s in self._starts) if not r.inherited]

    def leaked_segments(self) -> list[SysvSegment]:
        """System V segments this process created and nobody marked for removal."""
        return sorted((s for s in self.segments.values() if not s.removed and not s.inherited), key=lambda s: s.seq)

    def leaked_objects(self) -> list[PosixObject]:
        """POSIX shared memory objects this process created and nobody unlinked."""
        return sorted((o for o in self.objects.values() if not o.unlinked and not o.inherited), key=lambda o: o.seq)

    def counts(self) -> dict[str, int]:
        return {"mappings": len(self.leaked_regions()), "sysv": len(self.leaked_segments()),
                "posix": len(self.leaked_objects())}

    def all_pcs(self) -> Iterable[tuple[int, ...]]:
        yield from (r.pcs for r in self.regions.values())
        yield from (s.pcs for s in self.segments.values())
        yield from (o.pcs for o in self.objects.values())
