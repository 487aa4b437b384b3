"""The recorder brought into a process that is already running (`gdb -p` + `memleak start`, `gdb-memleak --pid`,
`memleak start` mid-run), and taken out again at the detach.

The way in, all by hand (handcall.py: no GDB inferior call): on a thread that is outside the allocator (best one
blocked in a system call), `dlopen` of the recorder (inject.py), then `memleak_agent_attach(depth, flags,
break_seq)`, which redirects every loaded object's GOT slots of the allocator family to the recorder (agent/got.c,
agent/attach.c). The dynamic loader's own allocator pointers (`__rtld_malloc` ...: ld.so calls libc's malloc
through them, not through a GOT) are written from here, when libc's debug symbols name them.
Then the heap as it was (heapwalk.py): the recorder's gate holds every allocator call (agent/gate.c) until no
thread is inside one (allocator_quiet.py), glibc's arenas are walked, the blocks found enter the recorder's table
(`memleak_agent_adopt`, through a buffer mmap'd by hand) and the gate opens.
The way out: the loader's pointers back, `memleak_agent_detach` (slots back, recording off, the table's memory
released); the library stays loaded, and a later attach reuses it with an empty table.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

import gdb

from ..agent import build
from ..core import agent_format as fmt
from ..core.kinds import OnError
from ..core.procmaps import Mapping, read_maps
from . import allocator_quiet, heapwalk, inject
from .handcall import HandCallError, call_function
from .log import log

RTLD_POINTERS = {"__rtld_malloc": "malloc", "__rtld_free": "free", "__rtld_calloc": "calloc",
                 "__rtld_realloc": "realloc"}
HOLD_ATTEMPTS = 10
PROT_RW, MAP_PRIVATE_ANON = 0x3, 0x22


class AttachError(Exception):
    """The recorder could not be brought in; one line (the breakpoint engine takes over)."""


@dataclass
class AttachedRecorder:
    library: str
    rtld_saved: list[tuple[int, bytes]] = field(default_factory=list)
    attached: bool = False
    # the heap's live blocks just before the recorder was loaded: what the loader allocated for it (its link map,
    # names, libunwind's) is live after, and is the tool's, not the program's
    before_load: frozenset[int] | None = None

    def function(self, maps: list[Mapping], name: str) -> int:
        return inject.exported(maps, self.library, name)


def attach(inferior: gdb.Inferior, depth: int, on_error: str, break_alloc: int | None,
           loaded: AttachedRecorder | None = None) -> AttachedRecorder:
    """Load (or reuse) the recorder and start it recording; AttachError says why not, with the process as it was."""
    try:
        maps = read_maps(inferior.pid)
        with borrowed_thread(inferior):
            if loaded is None:
                present = fmt.recorder_library(maps)
                if present is None:
                    try:
                        library = str(build.ensure_built())
                    except build.BuildError as exc:
                        raise AttachError(str(exc).removeprefix("gdb-memleak: ")) from None
                    before = heapwalk.walk(inferior)
                    inject.load_library(inferior, library)
                    maps = read_maps(inferior.pid)
                    present = fmt.recorder_library(maps)
                    if present is None:
                        raise AttachError("the recorder loaded but is not in the process's mappings")
                    loaded = AttachedRecorder(present)
                    if not isinstance(before, str) and before.status is None:
                        loaded.before_load = frozenset(before.addresses)
                else:
                    loaded = AttachedRecorder(present)
            flags = 1 if on_error == OnError.SKIP.value else 0
            reason = call_function(loaded.function(maps, "memleak_agent_attach"),
                                   [depth, flags, break_alloc or 0]).value
            if reason == 0xFFFFFFFFFFFFFFFF or reason == 0xFFFFFFFF:
                raise AttachError("the recorder in the process was preloaded: it records from the start")
            if reason:
                why = fmt.stopped_reason(inferior_reader(inferior), fmt.anchor_address(maps) or 0)
                raise AttachError(f"the recorder could not start: {why or f'reason {reason}'}")
            loaded.attached = True
            loaded.rtld_saved = _redirect_loader(inferior, maps, loaded)
    except HandCallError as exc:
        raise AttachError(str(exc)) from None
    except (OSError, gdb.error) as exc:
        raise AttachError(f"the recorder could not be loaded: {exc}") from None
    return loaded


def detach(inferior: gdb.Inferior, loaded: AttachedRecorder) -> None:
    """Give the process its own allocator calls back (the process must be stopped and alive)."""
    if not loaded.attached or not inferior.pid:
        return
    for address, old in loaded.rtld_saved:
        inferior.write_memory(address, old)
    loaded.rtld_saved = []
    try:
        maps = read_maps(inferior.pid)
        with borrowed_thread(inferior):
            call_function(loaded.function(maps, "memleak_agent_detach"))
    except (HandCallError, OSError, gdb.error) as exc:
        log.debug("recorder detach failed: %s", exc)
        raise AttachError(f"the recorder could not be detached: {exc}") from None
    finally:
        loaded.attached = False


def adopt_heap(inferior: gdb.Inferior, loaded: AttachedRecorder) -> tuple[int, str | None]:
    """Hold the allocator, walk glibc's heap, enter what is live into the recorder's table, let go: (blocks
    entered, why the heap before the attach is not (wholly) known or None)."""
    maps = read_maps(inferior.pid)
    hold, release = (loaded.function(maps, name) for name in ("memleak_agent_hold", "memleak_agent_release"))
    with borrowed_thread(inferior) as caller:
        if call_function(hold).value != 0:
            return 0, "the recorder is not recording"
        try:
            for _ in range(HOLD_ATTEMPTS):
                states = allocator_quiet.thread_states(inferior, loaded.library)
                busy = [s.thread for s in states if s.busy and s.thread != caller]
                if not busy:
                    break
                for thread in busy:  # run it to the end of its call (GDB may leave a thread stopped otherwise)
                    allocator_quiet.run_out(thread, loaded.library)
                caller.switch()
            else:
                return 0, "a thread stayed inside the allocator: blocks allocated before tracking started are unknown"
            found = heapwalk.walk(inferior)
            if isinstance(found, str):
                return 0, found
            if found.status is not None:
                return 0, (f"glibc's heap could not be read whole ({found.status}): blocks allocated before "
                           "tracking started are unknown")
            addresses, sizes = found.addresses, found.sizes
            if loaded.before_load is not None:  # the loader's blocks for the recorder left out (see before_load)
                kept = [i for i, a in enumerate(addresses) if a in loaded.before_load]
                addresses, sizes = [addresses[i] for i in kept], [sizes[i] for i in kept]
                loaded.before_load = None
            return _enter(inferior, maps, loaded, addresses, sizes), None
        finally:
            call_function(release)


def _enter(inferior: gdb.Inferior, maps: list[Mapping], loaded: AttachedRecorder, addresses: list[int],
           sizes: list[int]) -> int:
    count = len(addresses)
    if not count:
        return 0
    pairs = array("Q", bytes(16 * count))  # (address, size) pairs, as memleak_agent_adopt reads them
    pairs[0::2] = array("Q", addresses)
    pairs[1::2] = array("Q", sizes)
    data = pairs.tobytes()
    size = (len(data) + 4095) & ~4095
    buffer = inject.call_libc(maps, "mmap", [0, size, PROT_RW, MAP_PRIVATE_ANON, 0xFFFFFFFFFFFFFFFF, 0])
    if buffer in (0, 0xFFFFFFFFFFFFFFFF):
        raise AttachError("no memory in the process for the blocks found")
    try:
        inferior.write_memory(buffer, data)
        entered = call_function(loaded.function(maps, "memleak_agent_adopt"), [buffer, count]).value
    finally:
        inject.call_libc(maps, "munmap", [buffer, size])
    return entered if entered < 1 << 63 else 0


def _redirect_loader(inferior: gdb.Inferior, maps: list[Mapping], loaded: AttachedRecorder) -> list[tuple[int, bytes]]:
    """ld.so's pointers to libc's allocator (they bypass every GOT) now point at the recorder's hooks; the old
    values are kept. Without libc's debug symbols nothing is written: the loader's own blocks stay unknown."""
    saved: list[tuple[int, bytes]] = []
    for pointer, function in RTLD_POINTERS.items():
        try:
            address = int(gdb.parse_and_eval(f"(unsigned long)&{pointer}"))
        except gdb.error:
            log.debug("no symbol %s: the loader's allocations are not redirected", pointer)
            return _undo(inferior, saved)
        hook = loaded.function(maps, function)
        saved.append((address, bytes(inferior.read_memory(address, 8))))
        inferior.write_memory(address, hook.to_bytes(8, "little"))
    return saved


def _undo(inferior: gdb.Inferior, saved: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    for address, old in saved:
        inferior.write_memory(address, old)
    return []


def inferior_reader(inferior: gdb.Inferior):
    return lambda address, size: bytes(inferior.read_memory(address, size))


class borrowed_thread:
    """Select a thread fit to make calls by hand for the `with` block, and the user's thread again after: one
    blocked in a system call and outside the allocator if there is one, else any outside the allocator."""

    def __init__(self, inferior: gdb.Inferior) -> None:
        self.inferior = inferior
        self.selected: gdb.InferiorThread | None = None

    def __enter__(self) -> gdb.InferiorThread:
        self.selected = gdb.selected_thread()
        states = allocator_quiet.thread_states(self.inferior, None)
        fit = sorted((s for s in states if not s.busy and not s.held), key=lambda s: not s.in_syscall)
        if fit:
            fit[0].thread.switch()
            return fit[0].thread
        thread = states[0].thread  # every thread is inside the allocator: let one finish its call
        allocator_quiet.run_out(thread, None)
        return thread

    def __exit__(self, *exc: object) -> None:
        if self.selected is not None and self.selected.is_valid():
            self.selected.switch()
