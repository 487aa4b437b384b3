"""Function calls seen through GDB breakpoints: an entry breakpoint per hooked function and one reused breakpoint
per return address. The breakpoint engine tracks allocator calls with it; both engines track mmap/munmap/shm* with
it (gdb/mapping_hooks.py).

`enter()` (at an entry stop) reads the arguments (ABI registers), the stack pointer and the return address, and
says whether the call is part of one already in flight on that thread; `park()` keeps a call as pending under
(thread, stack pointer after return) until the return breakpoint at its return address matches that key
(`leave()`). Nothing is deleted inside `stop()`; return breakpoints are created there only the first time a return
address is seen (bounded by the number of call sites), and every breakpoint is deleted by `remove()`, which runs
from commands and event handlers only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gdb

from ..core.abi import Abi
from ..core.allocators import MAPPING, AllocatorSpec, Role
from ..core.procmaps import Mapping
from .access import RegisterReader, StackReader
from .engine_core import ForkFamily, Handler, RoutedBreakpoint
from .resolve import Definition, locate
from .stacks import StackCapture
from .symbolize import minimal_symbol


@dataclass
class PendingCall:
    spec: AllocatorSpec
    args: tuple[int, ...]
    pcs: tuple[int, ...]
    thread: int
    entry_sp: int
    time: float
    errored: bool = False
    detail: str | None = None  # mapping calls: what the entry stop read (an mmap's backing, a shm object's name)
    seq: int = 0  # the table's last allocation number at entry: a block numbered above was made during this call


@dataclass
class Entry:
    """What an entry stop read: the call as the hooked function sees it."""

    spec: AllocatorSpec         # the name the program called (of those sharing the address)
    thread: int                 # GDB's thread number
    lwp: int
    regs: tuple[int, ...]
    args: tuple[int, ...]
    stack: StackReader
    return_address: int

    @property
    def sp(self) -> int:
        return self.stack.base


@dataclass
class CallStats:
    entry_stops: int = 0
    return_stops: int = 0
    nested_calls: int = 0
    return_breakpoints: int = 0


class EntryBreakpoint(RoutedBreakpoint):
    def __init__(self, family: ForkFamily, definition: Definition, handler: Handler) -> None:
        super().__init__(family, definition.address, handler)
        self.definition = definition


EntryHandler = Callable[[Any, AllocatorSpec], bool]  # (the engine of the inferior that hit it, the hooked spec)


def _bound(on_entry: EntryHandler, spec: AllocatorSpec) -> Handler:
    """The handler of one function's entry breakpoint (named after it, for an internal error's message)."""

    def handler(engine: Any) -> bool:
        return on_entry(engine, spec)

    handler.__name__ = f"{getattr(on_entry, '__name__', 'entry')}({spec.name})"
    return handler


class CallHooks:
    """Entry and return breakpoints on `specs`; hits go to `on_entry(engine, spec)` and `on_return(engine)`."""

    def __init__(self, inferior: gdb.Inferior, abi: Abi, depth: int, family: ForkFamily, specs: list[AllocatorSpec],
                 on_entry: EntryHandler, on_return: Handler) -> None:
        self.inferior, self.abi, self.family, self.specs = inferior, abi, family, specs
        self.on_entry, self.on_return = on_entry, on_return
        self.stats = CallStats()
        self.regs = RegisterReader(abi)
        self.stacks = StackCapture(inferior, depth)
        self.entries: dict[str, EntryBreakpoint] = {}   # shared by a fork family (set before the fork)
        self.aliases: dict[str, Definition] = {}
        self.returns: dict[int, RoutedBreakpoint] = {}  # each engine's own: one made later has no location elsewhere
        self.pending: dict[tuple[int, int], PendingCall] = {}
        self.in_flight: dict[int, list[PendingCall]] = {}  # per thread, outermost first
        self._sp, self.fp = abi.index(abi.stack_pointer), abi.index(abi.frame_pointer)
        self.result = abi.index(abi.return_register)
        self._args = tuple(abi.index(r) for r in abi.arg_registers)
        self._inside_allocator: dict[int, bool] = {}  # return address -> in the code of a hooked function
        self._called: dict[tuple[str, int], AllocatorSpec] = {}  # (hooked name, return address) -> name called

    def forked(self, child: gdb.Inferior) -> CallHooks:
        """The hooks of a forked child: the same entry breakpoints (GDB gave them a location in the child), its own
        return sites and calls in flight."""
        hooks = CallHooks(child, self.abi, self.stacks.depth, self.family, self.specs, self.on_entry, self.on_return)
        hooks.regs, hooks.stacks.classify = self.regs, self.stacks.classify
        hooks.entries, hooks.aliases = self.entries, self.aliases
        return hooks

    # -- installation (never from stop()) -----------------------------------------------------------------------
    def install(self, maps: list[Mapping]) -> list[Definition]:
        """Hook every function not hooked yet that the objects in `maps` define; returns what was added."""
        wanted = [s for s in self.specs if not self.hooked(s.name)]
        if not wanted:
            return []
        added = locate(wanted, maps)
        hooked = {bp.definition.address for bp in self.entries.values()}
        for definition in added:
            if definition.address in hooked:  # an alias (glibc: aligned_alloc = memalign): one breakpoint
                self.aliases[definition.spec.name] = definition
                continue
            hooked.add(definition.address)
            self.entries[definition.spec.name] = EntryBreakpoint(self.family, definition,
                                                                 _bound(self.on_entry, definition.spec))
        return added

    def hooked(self, name: str) -> bool:
        return name in self.entries or name in self.aliases

    @property
    def complete(self) -> bool:
        return all(self.hooked(s.name) for s in self.specs)

    def definition(self, name: str) -> Definition | None:
        entry = self.entries.get(name)
        return entry.definition if entry is not None else self.aliases.get(name)

    def remove(self, last: bool) -> int:
        """Delete the return sites, and the entries when `last` (no forked relative uses them any more); returns
        how many breakpoints these hooks used."""
        removed = len(self.entries) + len(self.returns)
        self.pending.clear()
        self.in_flight.clear()
        for bp in list(self.returns.values()) + (list(self.entries.values()) if last else []):
            if bp.is_valid():
                bp.delete()
        self.returns.clear()
        if last:
            self.entries.clear()
            self.aliases.clear()
        else:
            self.entries, self.aliases = {}, {}
        return removed

    # -- stop() handlers ----------------------------------------------------------------------------------------
    def enter(self, spec: AllocatorSpec) -> Entry | None:
        """The call at an entry stop; None when it is part of a call in flight (`part_of`) or unreadable."""
        self.stats.entry_stops += 1
        thread = gdb.selected_thread()
        lwp = thread.ptid[1]
        regs = self.regs.read(lwp)
        sp = regs[self._sp]
        calls = self.in_flight.get(lwp)
        if calls:
            while calls and calls[-1].entry_sp < sp:  # never returned through our breakpoint (longjmp): stale
                stale = calls.pop()
                self.pending.pop((lwp, stale.entry_sp + self.abi.word_size), None)
        args = tuple(regs[i] for i in self._args[:spec.arg_count])
        stack = StackReader(self.inferior, sp)
        return_address = stack.read_word(sp)
        if return_address is None:
            return None
        if calls and self.part_of(calls, spec, args, sp, return_address):
            self.stats.nested_calls += 1
            return None
        if self.aliases:
            spec = self.called_spec(spec, return_address)
        return Entry(spec, thread.num, lwp, regs, args, stack, return_address)

    def capture(self, entry: Entry) -> tuple[int, ...]:
        """The caller stack of the call (`depth` frames)."""
        return self.stacks.capture(entry.stack, entry.return_address, entry.regs[self.fp])

    def part_of(self, calls: list[PendingCall], spec: AllocatorSpec, args: tuple[int, ...], sp: int,
                return_address: int) -> bool:
        """Whether a call made while tracked calls are in flight on this thread is part of them rather than one of
        its own: a tail jump (glibc's realloc(NULL, n) to malloc, new[] to new: the same stack pointer), a call
        from a hooked function's own code (libstdc++'s new calling malloc, delete calling free, a program's
        operator new calling malloc), an mmap (malloc's own memory), or the release of the pointer an outer release
        is releasing. Any other is the program's or a library's own allocation made meanwhile (printf inside a
        program's operator new allocates stdout's buffer) and is tracked: valgrind would see it wherever it is
        made. A block such a call makes and the outer call returns is the outer call's (the breakpoint engine's
        `record`)."""
        if calls[-1].entry_sp == sp or spec.family == MAPPING or self._in_hooked_code(return_address):
            return True
        if spec.role in (Role.FREE, Role.REALLOC):
            pointer = spec.pointer(args)
            return any(c.spec.role in (Role.FREE, Role.REALLOC) and c.spec.pointer(c.args) == pointer
                       for c in calls)
        return False

    def _in_hooked_code(self, return_address: int) -> bool:
        """Whether a call returns into the code of a hooked function (its ELF symbol's extent; cached)."""
        known = self._inside_allocator.get(return_address)
        if known is None:
            pc = return_address - 1
            known = any(d.address <= pc < d.address + d.size
                        for d in [bp.definition for bp in self.entries.values()] + list(self.aliases.values()))
            self._inside_allocator[return_address] = known
        return known

    def called_spec(self, spec: AllocatorSpec, return_address: int) -> AllocatorSpec:
        """Which of the names sharing one address the program called (glibc: memalign = aligned_alloc), from the
        call instruction before the return address (`call NAME@plt`); the hooked name when that is not readable.
        Reports then name the function the program called, as the recorder (which hooks each name) does."""
        key = (spec.name, return_address)
        known = self._called.get(key)
        if known is not None:
            return known
        known = spec
        entry = self.entries.get(spec.name)
        sharing = [d.spec for d in self.aliases.values()
                   if entry is not None and d.address == entry.definition.address]
        if sharing:
            try:
                code = self.inferior.read_memory(return_address - 5, 5).tobytes()
            except (gdb.MemoryError, gdb.error):
                code = b""
            if len(code) == 5 and code[0] == 0xE8:  # call rel32
                target = (return_address + int.from_bytes(code[1:], "little", signed=True)) & (2**64 - 1)
                symbol = minimal_symbol(target)
                name = symbol[0].split("@")[0] if symbol is not None and symbol[1] == 0 else None
                known = next((s for s in sharing if s.name == name), spec)
        self._called[key] = known
        return known

    def park(self, call: PendingCall, lwp: int, return_address: int) -> None:
        """Keep the call until it returns through the (reused) breakpoint at its return address."""
        self.pending[(lwp, call.entry_sp + self.abi.word_size)] = call
        self.in_flight.setdefault(lwp, []).append(call)
        if return_address not in self.returns:
            self.returns[return_address] = RoutedBreakpoint(self.family, return_address, self.on_return)
            self.stats.return_breakpoints += 1

    def unpark(self, call: PendingCall, lwp: int) -> None:
        """The call will never return through its breakpoint (`memleak skip` made it return at once)."""
        key = (lwp, call.entry_sp + self.abi.word_size)
        if self.pending.get(key) is call:
            del self.pending[key]
        calls = self.in_flight.get(lwp)
        if calls and call in calls:
            calls.remove(call)

    def leave(self) -> tuple[PendingCall, tuple[int, ...]] | None:
        """At a return stop: the parked call returning now and the registers (None when none is this one's)."""
        self.stats.return_stops += 1
        lwp = gdb.selected_thread().ptid[1]
        regs = self.regs.read(lwp)
        call = self.pending.pop((lwp, regs[self._sp]), None)
        if call is None:
            return None
        calls = self.in_flight.get(lwp)
        if calls:
            if calls[-1] is call:
                calls.pop()
            elif call in calls:
                calls.remove(call)
        return call, regs
