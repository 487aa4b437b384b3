"""The breakpoint engine: allocator entry breakpoints and one reused breakpoint per return address.

Entry `stop()` reads the arguments (ABI registers), the caller stack and the stack pointer, and parks the call as
pending under (thread, stack pointer after return). The return breakpoint at the caller's return address matches
that key, reads the result register and updates the table. Nothing is deleted inside `stop()`; return breakpoints
are created there only the first time a return address is seen (bounded by the number of call sites), and every
breakpoint is deleted by `remove()`, which runs from commands and event handlers only.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import gdb

from ..core.abi import Abi
from ..core.allocators import INTERNAL_RELEASERS, AllocatorSpec, Role
from ..core.model import Block, HeapError
from ..core.procmaps import read_maps
from ..core.table import AllocationTable
from .access import RegisterReader, StackReader, read_word
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


@dataclass
class EngineStats:
    entry_stops: int = 0
    return_stops: int = 0
    nested_calls: int = 0
    internal_errors: int = 0
    return_breakpoints: int = 0


class EntryBreakpoint(gdb.Breakpoint):
    def __init__(self, engine: "Engine", definition: Definition) -> None:
        super().__init__(f"*0x{definition.address:x}", type=gdb.BP_BREAKPOINT, internal=True)
        self.silent = True
        self.members = engine.members  # inferior number -> engine: a forked child's stops go to its own engine
        self.definition = definition

    def stop(self) -> bool:
        engine = self.members.get(gdb.selected_inferior().num)
        return engine.guarded(engine.on_entry, self.definition.spec) if engine is not None else False


class ReturnBreakpoint(gdb.Breakpoint):
    def __init__(self, engine: "Engine", address: int) -> None:
        super().__init__(f"*0x{address:x}", type=gdb.BP_BREAKPOINT, internal=True)
        self.silent = True
        self.members = engine.members

    def stop(self) -> bool:
        engine = self.members.get(gdb.selected_inferior().num)
        return engine.guarded(engine.on_return) if engine is not None else False


@dataclass
class Engine:
    """Tracks one inferior's allocator calls into `table`."""

    inferior: gdb.Inferior
    table: AllocationTable
    abi: Abi
    depth: int
    on_error: Callable[[HeapError], str]    # "stop" the program at the bad free, "report" it, or "skip" the call
    specs: list[AllocatorSpec]
    on_exit: Callable[[], None] = lambda: None  # `_exit` reached: memory is still intact
    on_exec: Callable[[], None] = lambda: None  # `execve` called: the image may be replaced
    on_break_alloc: Callable[[Block], None] = lambda block: None
    break_alloc: int | None = None           # stop when the allocation with this sequence number is made
    stats: EngineStats = field(default_factory=EngineStats)

    def __post_init__(self) -> None:
        self.regs = RegisterReader(self.abi)
        self.stacks = StackCapture(self.inferior, self.depth)
        self.entries: dict[str, EntryBreakpoint] = {}
        self.aliases: dict[str, Definition] = {}
        self.returns: dict[int, ReturnBreakpoint] = {}
        self.pending: dict[tuple[int, int], PendingCall] = {}
        self.in_flight: dict[int, list[PendingCall]] = {}  # per thread, outermost first
        self.started = time.monotonic()
        abi = self.abi
        self._sp, self._fp = abi.index(abi.stack_pointer), abi.index(abi.frame_pointer)
        self._ret = abi.index(abi.return_register)
        self._args = tuple(abi.index(r) for r in abi.arg_registers)
        self._warned = False
        self._internal_callers: dict[int, bool] = {}
        self._placed: list[int] = []
        # Engines of forked children share the parent's breakpoints (GDB inserts them in every inferior of the
        # same image); each stop is routed to the engine of the inferior that hit it.
        self.members: dict[int, Engine] = {self.inferior.num: self}

    def fork(self, child: gdb.Inferior, table: AllocationTable, on_error: Callable[[HeapError], str],
             on_exit: Callable[[], None], on_exec: Callable[[], None]) -> "Engine":
        """An engine for a forked child: its own table (the parent's, copied at the fork), the same breakpoints."""
        engine = Engine(child, table, self.abi, self.depth, on_error, self.specs, on_exit=on_exit, on_exec=on_exec,
                        on_break_alloc=self.on_break_alloc, break_alloc=self.break_alloc)
        engine.regs, engine.stacks.classify = self.regs, self.stacks.classify
        # Entry breakpoints were set before the fork: GDB gave them a location in the child too. Return-site
        # breakpoints stay per engine: one created later gets a location only in its creator's program space.
        engine.entries, engine.aliases = self.entries, self.aliases
        engine.members = self.members
        self.members[child.num] = engine
        return engine

    # -- installation (never from stop()) -----------------------------------------------------------------------
    def install(self) -> list[Definition]:
        """Hook every allocator not hooked yet that the objects loaded now define; returns what was added."""
        wanted = [s for s in self.specs if not self.hooked(s.name)]
        if not wanted or not self.inferior.pid:
            return []
        added = locate(wanted, read_maps(self.inferior.pid))
        hooked = {bp.definition.address for bp in self.entries.values()}
        for definition in added:
            if definition.address in hooked:  # an alias (glibc: aligned_alloc = memalign): one breakpoint
                self.aliases[definition.spec.name] = definition
                continue
            hooked.add(definition.address)
            self.entries[definition.spec.name] = EntryBreakpoint(self, definition)
            self._placed.append(definition.address)
        return added

    @property
    def hooked_addresses(self) -> list[int]:
        """Every address this engine has stopped at (entries and return sites), kept after `remove()`."""
        return list(self._placed)

    @property
    def glibc_malloc(self) -> bool:
        """Whether malloc is glibc's (libc.so, or linked into a static executable) rather than a replacement."""
        entry = self.entries.get("malloc")
        if entry is None:
            return True
        obj = os.path.basename(entry.definition.object)
        return obj.startswith("libc.so") or entry.definition.object == self.inferior.progspace.filename

    def hooked(self, name: str) -> bool:
        return name in self.entries or name in self.aliases

    @property
    def complete(self) -> bool:
        return all(self.hooked(s.name) for s in self.specs)

    def remove(self) -> None:
        """Stop tracking this inferior. Entry breakpoints go when no forked relative still uses them; return-site
        breakpoints are each engine's own."""
        self.pending.clear()
        self.in_flight.clear()
        shared = len(self.members) > 1
        for bp in list(self.returns.values()) + ([] if shared else list(self.entries.values())):
            if bp.is_valid():
                bp.delete()
        self.returns.clear()
        if shared:
            self.members.pop(self.inferior.num, None)
            self.members = {self.inferior.num: self}
            self.entries, self.aliases = {}, {}
        else:
            self.entries.clear()
            self.aliases.clear()

    # -- stop() handlers ----------------------------------------------------------------------------------------
    def guarded(self, handler, *args) -> bool:
        """A stop() must never raise into GDB: count and report the first internal error, keep the program going."""
        try:
            return handler(*args)
        except Exception as exc:  # noqa: BLE001 - stop() is a boundary
            self.stats.internal_errors += 1
            if not self._warned:
                self._warned = True
                print(f"gdb-memleak: internal error in breakpoint handler: {exc!r}", file=sys.stderr)
            return False

    def on_entry(self, spec: AllocatorSpec) -> bool:
        self.stats.entry_stops += 1
        if spec.role is Role.EXIT:
            self.on_exit()
            return False
        if spec.role is Role.EXEC:
            self.on_exec()
            return False
        thread = gdb.selected_thread()
        lwp = thread.ptid[1]
        regs = self.regs.read(lwp)
        sp = regs[self._sp]
        calls = self.in_flight.get(lwp)
        if calls:
            while calls and calls[-1].entry_sp < sp:  # never returned through our breakpoint (longjmp): stale
                stale = calls.pop()
                self.pending.pop((lwp, stale.entry_sp + self.abi.word_size), None)
            if calls:  # called (or tail-jumped to, same sp) from inside a tracked allocator: part of that call
                self.stats.nested_calls += 1
                return False
        args = tuple(regs[i] for i in self._args[:spec.arg_count])
        stack = StackReader(self.inferior, sp)
        return_address = stack.read_word(sp)
        if return_address is None:
            return False
        pcs = self.stacks.capture(stack, return_address, regs[self._fp])
        now = time.monotonic() - self.started
        call = PendingCall(spec, args, pcs, thread.num, sp, now)
        if spec.role is Role.FREE:
            if self._released_internally(args[spec.ptr_arg], return_address):
                return False
            error = self.table.on_free(args[spec.ptr_arg], spec.display, thread.num, pcs, now, spec.family)
            if error is not None and self.handle_error(error, return_address, sp):
                return True
            if spec.wraps:  # operator delete -> free: the inner free belongs to this call (even a bad one)
                self._await_return(call, lwp, sp, return_address)
            return False
        if spec.role is Role.REALLOC and args[spec.ptr_arg] and args[spec.ptr_arg] not in self.table.blocks:
            # an invalid realloc is reported at the call: glibc may abort before it returns
            error = self.table.on_free(args[spec.ptr_arg], spec.display, thread.num, pcs, now, spec.family)
            call.errored = True
            if error is not None:
                return self.handle_error(error, return_address, sp, result=0)
        self._await_return(call, lwp, sp, return_address)
        return False

    def _await_return(self, call: PendingCall, lwp: int, sp: int, return_address: int) -> None:
        """Park the call until it returns through the (reused) breakpoint at its return address."""
        self.pending[(lwp, sp + self.abi.word_size)] = call
        self.in_flight.setdefault(lwp, []).append(call)
        if return_address not in self.returns:
            self.returns[return_address] = ReturnBreakpoint(self, return_address)
            self._placed.append(return_address)
            self.stats.return_breakpoints += 1

    def handle_error(self, error: HeapError, return_address: int, sp: int, result: int | None = None) -> bool:
        """Apply `on-error`: True stops the program; "skip" makes the bad call return at once (as valgrind,
        which reports a bad free and does not perform it), so glibc never sees it and the program runs on."""
        action = self.on_error(error)
        if action == "stop":
            return True
        if action == "skip" and error.type != "mismatched_free":  # a mismatched release still releases
            abi = self.abi
            if result is not None:
                gdb.parse_and_eval(f"${abi.return_register} = {result}")
            gdb.parse_and_eval(f"${abi.stack_pointer} = {sp + abi.word_size}")
            gdb.parse_and_eval(f"$pc = {return_address}")
        return False

    def _released_internally(self, address: int, return_address: int) -> bool:
        """A free of a pointer we do not know, made by the allocator's own housekeeping (rare path: cached)."""
        if not address or address in self.table.blocks:
            return False
        internal = self._internal_callers.get(return_address)
        if internal is None:
            symbol = minimal_symbol(return_address - 1)
            internal = self._internal_callers[return_address] = bool(symbol and symbol[0] in INTERNAL_RELEASERS)
        return internal

    def on_return(self) -> bool:
        self.stats.return_stops += 1
        lwp = gdb.selected_thread().ptid[1]
        regs = self.regs.read(lwp)
        call = self.pending.pop((lwp, regs[self._sp]), None)
        if call is None:
            return False
        calls = self.in_flight.get(lwp)
        if calls:
            if calls[-1] is call:
                calls.pop()
            elif call in calls:
                calls.remove(call)
        block = self.record(call, regs[self._ret])
        if block is not None and block.seq == self.break_alloc:
            self.on_break_alloc(block)
            return True
        return False

    def record(self, call: PendingCall, result: int) -> Block | None:
        spec, args = call.spec, call.args
        size = spec.size(args)
        if spec.role is Role.ALLOC:
            return self.table.on_alloc(result, size, spec.display, call.thread, call.pcs, call.time, spec.family)
        if spec.role is Role.REALLOC:
            old = 0 if call.errored else args[spec.ptr_arg]
            self.table.on_realloc(old, result, size, spec.display, call.thread, call.pcs, call.time)
            return self.table.blocks.get(result) if result else None
        if spec.role is Role.MEMPTR and result == 0:
            address = read_word(self.inferior, args[spec.out_arg])
            return self.table.on_alloc(address or 0, size, spec.display, call.thread, call.pcs, call.time)
        return None
