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
from dataclasses import dataclass
from typing import Callable

import gdb

from ..core.abi import Abi
from ..core.agent_format import is_dynamic, recorder_library
from ..core.allocators import INTERNAL_RELEASERS, MAPPING, AllocatorSpec, Role
from ..core.kinds import OnError
from ..core.model import Block, HeapError
from ..core.procmaps import read_maps
from ..core.table import AllocationTable
from . import bad_call
from .access import RegisterReader, StackReader, read_word
from .engine import Engine, EngineEvents
from .log import log
from .mapping_hooks import MappingHooks
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
class EngineStats:
    entry_stops: int = 0
    return_stops: int = 0
    nested_calls: int = 0
    internal_errors: int = 0
    return_breakpoints: int = 0


class EntryBreakpoint(gdb.Breakpoint):
    def __init__(self, engine: BreakpointEngine, definition: Definition) -> None:
        super().__init__(f"*0x{definition.address:x}", type=gdb.BP_BREAKPOINT, internal=True)
        self.silent = True
        self.members = engine.members  # inferior number -> engine: a forked child's stops go to its own engine
        self.definition = definition

    def stop(self) -> bool:
        engine = self.members.get(gdb.selected_inferior().num)
        return engine.guarded(engine.on_entry, self.definition.spec) if engine is not None else False


class ReturnBreakpoint(gdb.Breakpoint):
    def __init__(self, engine: BreakpointEngine, address: int) -> None:
        super().__init__(f"*0x{address:x}", type=gdb.BP_BREAKPOINT, internal=True)
        self.silent = True
        self.members = engine.members

    def stop(self) -> bool:
        engine = self.members.get(gdb.selected_inferior().num)
        return engine.guarded(engine.on_return) if engine is not None else False


class BreakpointEngine(Engine):
    """Allocator calls seen through GDB breakpoints: two stops per allocation, one per free."""

    name = "breakpoint"

    def __init__(self, inferior: gdb.Inferior, table: AllocationTable, events: EngineEvents, abi: Abi, depth: int,
                 specs: list[AllocatorSpec]) -> None:
        super().__init__(inferior, table, events)
        self.abi, self.depth, self.specs = abi, depth, specs
        self.stats = EngineStats()
        self.regs = RegisterReader(abi)
        self.stacks = StackCapture(inferior, depth)
        self.entries: dict[str, EntryBreakpoint] = {}
        self.aliases: dict[str, Definition] = {}
        self.returns: dict[int, ReturnBreakpoint] = {}
        self.pending: dict[tuple[int, int], PendingCall] = {}
        self.in_flight: dict[int, list[PendingCall]] = {}  # per thread, outermost first
        self._sp, self._fp = abi.index(abi.stack_pointer), abi.index(abi.frame_pointer)
        self._ret = abi.index(abi.return_register)
        self._args = tuple(abi.index(r) for r in abi.arg_registers)
        self._warned = False
        self._internal_callers: dict[int, bool] = {}
        self._inside_allocator: dict[int, bool] = {}  # return address -> in the code of a hooked allocator
        self._called: dict[tuple[str, int], AllocatorSpec] = {}  # (hooked name, return address) -> name called
        self._placed: list[int] = []
        # Engines of forked children share the parent's breakpoints (GDB inserts them in every inferior of the
        # same image); each stop is routed to the engine of the inferior that hit it.
        self.members: dict[int, BreakpointEngine] = {inferior.num: self}
        self.mapping_hooks = MappingHooks(self)

    def fork(self, child: gdb.Inferior, table: AllocationTable, events: EngineEvents) -> BreakpointEngine:
        """An engine for a forked child: its own table, the same entry breakpoints."""
        engine = BreakpointEngine(child, table, events, self.abi, self.depth, self.specs)
        engine.regs, engine.stacks.classify = self.regs, self.stacks.classify
        # Entry breakpoints were set before the fork: GDB gave them a location in the child too. Return-site
        # breakpoints stay per engine: one created later gets a location only in its creator's program space.
        engine.entries, engine.aliases = self.entries, self.aliases
        engine.members = self.members
        self.members[child.num] = engine
        return engine

    # -- installation (never from stop()) -----------------------------------------------------------------------
    def start(self) -> None:
        self.install()

    def install(self) -> list[Definition]:
        """Hook every allocator not hooked yet that the objects loaded now define; returns what was added."""
        wanted = [s for s in self.specs if not self.hooked(s.name)]
        if not wanted or not self.inferior.pid:
            return []
        maps = read_maps(self.inferior.pid)
        recorder = recorder_library(maps)  # loaded but not used (an exec'd image the recorder cannot serve): its
        added = locate(wanted, [m for m in maps if m.path != recorder])  # hooks only forward to the real ones
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
        """Whether malloc is glibc's (libc.so, or linked into a static executable) rather than a replacement (a
        dynamic executable's own malloc is the program's allocator)."""
        entry = self.entries.get("malloc")
        if entry is None:
            return True
        obj = entry.definition.object
        if obj == self.inferior.progspace.filename:
            return not is_dynamic(obj)
        return os.path.basename(obj).startswith("libc.so")

    def hooked(self, name: str) -> bool:
        return name in self.entries or name in self.aliases

    @property
    def complete(self) -> bool:
        return all(self.hooked(s.name) for s in self.specs)

    @property
    def active(self) -> bool:
        return bool(self.entries)

    def events_seen(self) -> int:
        return self.stats.entry_stops + self.stats.return_stops

    def status(self) -> list[str]:
        lines = []
        if self.entries:
            hooked = ", ".join(f"{bp.definition.spec.name} ({bp.definition.object})" for bp in self.entries.values())
            lines.append(f"hooked: {hooked}")
        s = self.stats
        lines.append(f"stops: {s.entry_stops:,} entry, {s.return_stops:,} return; {s.nested_calls:,} nested calls; "
                     f"{s.return_breakpoints:,} return sites; stacks {self.stacks.fast:,} fast, "
                     f"{self.stacks.slow:,} via GDB")
        if s.internal_errors:
            lines.append(f"internal errors: {s.internal_errors}")
        return lines

    def stop(self) -> int:
        """Stop tracking this inferior. Entry breakpoints go when no forked relative still uses them; return-site
        breakpoints are each engine's own."""
        removed = len(self.entries) + len(self.returns) if self.entries else len(self.returns)
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
        return removed

    # -- stop() handlers ----------------------------------------------------------------------------------------
    def guarded(self, handler: Callable[..., bool], *args: object) -> bool:
        """A stop() must never raise into GDB: count the error, say the first one (with its traceback under
        `set debug memleak on`, every one), and keep the program going."""
        try:
            return handler(*args)
        except Exception as exc:  # noqa: BLE001 - stop() is a boundary
            self.stats.internal_errors += 1
            log.debug("internal error in breakpoint handler %s", getattr(handler, "__name__", handler),
                      exc_info=True)
            if not self._warned:
                self._warned = True
                print(f"gdb-memleak: internal error in breakpoint handler: {exc!r} "
                      "(`set debug memleak on` shows the traceback)", file=sys.stderr)
            return False

    def on_entry(self, spec: AllocatorSpec) -> bool:
        self.stats.entry_stops += 1
        if spec.role is Role.EXIT:
            return self.events.exiting()
        if spec.role is Role.EXEC:
            self.events.exec_called()
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
        args = tuple(regs[i] for i in self._args[:spec.arg_count])
        stack = StackReader(self.inferior, sp)
        return_address = stack.read_word(sp)
        if return_address is None:
            return False
        if calls and self._part_of(calls, spec, args, sp, return_address):
            self.stats.nested_calls += 1
            return False
        if self.aliases:
            spec = self.called_spec(spec, return_address)
        if spec.family == MAPPING:  # mmap, munmap, shm*: gdb/mapping_hooks.py decides what matters
            parked = self.mapping_hooks.entry(spec, args, return_address, regs[self._fp], stack)
            if parked is not None:
                call = PendingCall(spec, args, parked[0], thread.num, sp, time.monotonic() - self.started,
                                   detail=parked[1])
                self._await_return(call, lwp, sp, return_address)
            return False
        pcs = self.stacks.capture(stack, return_address, regs[self._fp])
        now = time.monotonic() - self.started
        call = PendingCall(spec, args, pcs, thread.num, sp, now, seq=self.table.last_seq)
        if spec.role is Role.FREE:
            if self._released_internally(spec.pointer(args), return_address):
                return False
            error = self.table.on_free(spec.pointer(args), spec.display, thread.num, pcs, now, spec.family)
            action = self.events.heap_error(error) if error is not None else OnError.REPORT
            if spec.wraps and action is not OnError.SKIP:
                # operator delete -> free: the inner free belongs to this call, even a bad one; a skipped call
                # never runs, so it must not stay in flight (its later calls would all look nested)
                self._await_return(call, lwp, sp, return_address)
            if error is not None and action is OnError.STOP:
                self._hold(error, call, lwp, return_address)
            return self.apply(action, return_address, sp)
        if spec.role is Role.REALLOC and spec.pointer(args) and spec.pointer(args) not in self.table.blocks:
            # an invalid realloc is reported at the call: glibc may abort before it returns
            error = self.table.on_free(spec.pointer(args), spec.display, thread.num, pcs, now, spec.family)
            call.errored = True
            if error is not None:
                action = self.events.heap_error(error)
                if action is OnError.SKIP:
                    self.table.on_skipped_realloc(spec.size(args))
                else:
                    self._await_return(call, lwp, sp, return_address)
                if action is OnError.STOP:
                    self._hold(error, call, lwp, return_address, result=0)
                return self.apply(action, return_address, sp, result=0)
        self._await_return(call, lwp, sp, return_address)
        return False

    def _part_of(self, calls: list[PendingCall], spec: AllocatorSpec, args: tuple[int, ...], sp: int,
                 return_address: int) -> bool:
        """Whether a call made while tracked allocator calls are in flight on this thread is part of them rather
        than an allocation of its own: a tail jump (glibc's realloc(NULL, n) to malloc, new[] to new: the same
        stack pointer), a call from a hooked allocator's own code (libstdc++'s new calling malloc, delete calling
        free, a program's operator new calling malloc), an mmap (malloc's own memory), or the release of the
        pointer an outer release is releasing. Any other is the program's or a library's own allocation made
        meanwhile (printf inside a program's operator new allocates stdout's buffer) and is tracked: valgrind
        would see it wherever it is made. A block such a call makes and the outer call returns is the outer
        call's (`record`)."""
        if calls[-1].entry_sp == sp or spec.family == MAPPING or self._in_allocator_code(return_address):
            return True
        if spec.role in (Role.FREE, Role.REALLOC):
            pointer = spec.pointer(args)
            return any(c.spec.role in (Role.FREE, Role.REALLOC) and c.spec.pointer(c.args) == pointer
                       for c in calls)
        return False

    def _in_allocator_code(self, return_address: int) -> bool:
        """Whether a call returns into the code of a hooked allocator (its ELF symbol's extent; cached)."""
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

    def _await_return(self, call: PendingCall, lwp: int, sp: int, return_address: int) -> None:
        """Park the call until it returns through the (reused) breakpoint at its return address."""
        self.pending[(lwp, sp + self.abi.word_size)] = call
        self.in_flight.setdefault(lwp, []).append(call)
        if return_address not in self.returns:
            self.returns[return_address] = ReturnBreakpoint(self, return_address)
            self._placed.append(return_address)
            self.stats.return_breakpoints += 1

    def apply(self, action: OnError, return_address: int, sp: int, result: int | None = None) -> bool:
        """Carry out what `heap_error` decided: True stops the program; skip makes the bad call return at once
        (as valgrind, which reports a bad free and does not perform it), so glibc never sees it and the program
        runs on; report lets the call happen."""
        if action is OnError.STOP:
            return True
        if action is OnError.SKIP:
            abi = self.abi
            if result is not None:
                gdb.parse_and_eval(f"${abi.return_register} = {result}")
            gdb.parse_and_eval(f"${abi.stack_pointer} = {sp + abi.word_size}")
            gdb.parse_and_eval(f"$pc = {return_address}")
        return False

    def _hold(self, error: HeapError, call: PendingCall, lwp: int, return_address: int,
              result: int | None = None) -> None:
        """Stopped at a bad release's entry: `memleak skip` may still make it return at once (gdb/bad_call.py), as
        `on-error skip` would have: nothing in flight for it any more, and an invalid realloc returns NULL."""

        def skip() -> str:
            if self.pending.get((lwp, call.entry_sp + self.abi.word_size)) is call:
                del self.pending[(lwp, call.entry_sp + self.abi.word_size)]
            calls = self.in_flight.get(lwp)
            if calls and call in calls:
                calls.remove(call)
            if result is not None:
                self.table.on_skipped_realloc(call.spec.size(call.args))
            self.apply(OnError.SKIP, return_address, call.entry_sp, result)
            return f"it returned{' NULL' if result is not None else ''} without freeing; the program is in its caller"

        bad_call.stopped_at(self.inferior, error, self.abi.stack_pointer, lambda: self.stats.entry_stops, skip)

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
        if block is not None and block.seq == self.events.break_alloc:
            self.events.allocation_break(block)
            return True
        return False

    def record(self, call: PendingCall, result: int) -> Block | None:
        spec, args = call.spec, call.args
        if spec.family == MAPPING:
            self.mapping_hooks.returned(call, result)
            return None
        size = spec.size(args)
        if spec.role is Role.ALLOC:
            self._adopt(call, result)
            return self.table.on_alloc(result, size, spec.display, call.thread, call.pcs, call.time, spec.family)
        if spec.role is Role.REALLOC:
            old = 0 if call.errored else spec.pointer(args)
            self._adopt(call, result)
            self.table.on_realloc(old, result, size, spec.display, call.thread, call.pcs, call.time)
            return self.table.blocks.get(result) if result else None
        if spec.role is Role.MEMPTR and result == 0:
            address = read_word(self.inferior, spec.out_pointer(args))
            self._adopt(call, address or 0)
            return self.table.on_alloc(address or 0, size, spec.display, call.thread, call.pcs, call.time)
        return None

    def _adopt(self, call: PendingCall, address: int) -> None:
        """The block an allocator returns was made by a call tracked inside it (a program's operator new getting
        its memory through a helper that calls malloc): it is the outer call's block, counted once, as the
        outer call's."""
        block = self.table.blocks.get(address) if address else None
        if block is not None and block.seq > call.seq:
            self.table.withdraw(address)
