"""The breakpoint engine: allocator entry breakpoints and one reused breakpoint per return address.

Entry `stop()` reads the arguments (ABI registers), the caller stack and the stack pointer, and parks the call as
pending under (thread, stack pointer after return). The return breakpoint at the caller's return address matches
that key, reads the result register and updates the table. The breakpoints and the call matching are
gdb/call_hooks.py (shared with the recorder engine's mapping calls); routing, guarding, fork and stop bookkeeping
and the `_exit`/`execve` hooks are gdb/engine_core.py.
"""

from __future__ import annotations

import gdb

from ..core.abi import Abi
from ..core.agent_format import recorder_library
from ..core.allocators import INTERNAL_RELEASERS, MAPPING, AllocatorSpec, Role
from ..core.kinds import OnError
from ..core.model import Block, HeapError
from ..core.procmaps import read_maps
from ..core.table import AllocationTable
from . import bad_call
from .access import read_word
from .call_hooks import CallHooks, PendingCall
from .engine import Clock, EngineEvents
from .engine_core import CoreEngine, ExitHooks, ForkFamily, is_glibc_malloc, maps_without
from .mapping_hooks import MappingHooks
from .symbolize import minimal_symbol


class BreakpointEngine(CoreEngine):
    """Allocator calls seen through GDB breakpoints: two stops per allocation, one per free."""

    name = "breakpoint"

    def __init__(self, inferior: gdb.Inferior, table: AllocationTable, events: EngineEvents, clock: Clock, abi: Abi,
                 depth: int, specs: list[AllocatorSpec], replaces: str | None = None) -> None:
        super().__init__(inferior, table, events, clock)
        self.abi, self.depth, self.specs = abi, depth, specs
        self.replaces = replaces  # why the recorder is not tracking this process, when this engine took over
        self.calls = CallHooks(inferior, abi, depth, self.family, specs, BreakpointEngine.on_entry,
                               BreakpointEngine.on_return)
        self.mapping_hooks = MappingHooks(inferior, table, self.calls.stacks, clock)
        self._internal_callers: dict[int, bool] = {}

    def forked(self, child: gdb.Inferior, table: AllocationTable, events: EngineEvents) -> BreakpointEngine:
        """An engine for a forked child: its own table, the same entry breakpoints."""
        engine = BreakpointEngine(child, table, events, self.clock, self.abi, self.depth, self.specs)
        engine.calls = self.calls.forked(child)
        engine.mapping_hooks = self.mapping_hooks.forked(child, table, engine.calls.stacks)
        return engine

    def join(self, family: ForkFamily, exit_hooks: ExitHooks) -> None:
        super().join(family, exit_hooks)
        self.calls.family = family

    # -- installation (never from stop()) -----------------------------------------------------------------------
    def start(self) -> None:
        """Hook every allocator not hooked yet that the objects loaded now define."""
        if not self.inferior.pid:
            return
        maps = read_maps(self.inferior.pid)
        # the recorder loaded but not used (an exec'd image it cannot serve): its hooks only forward to the real ones
        maps = maps_without(maps, recorder_library(maps))
        self.calls.install(maps)
        self.exit_hooks.place(maps)
        malloc = self.calls.definition("malloc")
        if malloc is not None:
            self.mapping_hooks.own(malloc.object)  # a preloaded malloc (jemalloc) maps its own heap

    @property
    def glibc_malloc(self) -> bool:
        return is_glibc_malloc(self.calls.definition("malloc"), self.inferior.progspace.filename)

    @property
    def fully_hooked(self) -> bool:
        return self.calls.complete and self.exit_hooks.complete

    @property
    def active(self) -> bool:
        return bool(self.calls.entries)

    def events_seen(self) -> int:
        return self.calls.stats.entry_stops + self.calls.stats.return_stops

    def describe(self) -> list[str]:
        lines = [f"engine: breakpoint ({self.replaces})"] if self.replaces else []
        entries = self.calls.entries
        if entries:
            hooked = ", ".join(f"{bp.definition.spec.name} ({bp.definition.object})" for bp in entries.values())
            lines.append(f"hooked: {hooked}")
        s, stacks = self.calls.stats, self.calls.stacks
        lines.append(f"stops: {s.entry_stops:,} entry, {s.return_stops:,} return; {s.nested_calls:,} nested calls; "
                     f"{s.return_breakpoints:,} return sites; stacks {stacks.fast:,} fast, {stacks.slow:,} via GDB")
        return lines

    def remove_hooks(self, last: bool) -> int:
        """Entry breakpoints go when no forked relative still uses them; return-site breakpoints are each
        engine's own."""
        return self.calls.remove(last)

    # -- stop() handlers ----------------------------------------------------------------------------------------
    def on_entry(self, spec: AllocatorSpec) -> bool:
        entry = self.calls.enter(spec)
        if entry is None:
            return False
        spec = entry.spec
        if spec.family == MAPPING:  # mmap, munmap, shm*: gdb/mapping_hooks.py decides what matters
            return self.mapping_hooks.on_entry(self.calls, entry)
        lwp, sp, return_address, args = entry.lwp, entry.sp, entry.return_address, entry.args
        pcs = self.calls.capture(entry)
        now = self.clock.now()
        call = PendingCall(spec, args, pcs, entry.thread, sp, now, seq=self.table.last_seq)
        if spec.role is Role.FREE:
            if self._released_internally(spec.pointer(args), return_address):
                return False
            error = self.table.on_free(spec.pointer(args), spec.display, entry.thread, pcs, now, spec.family)
            action = self.events.heap_error(error) if error is not None else OnError.REPORT
            if spec.wraps and action is not OnError.SKIP:
                # operator delete -> free: the inner free belongs to this call, even a bad one; a skipped call
                # never runs, so it must not stay in flight (its later calls would all look nested)
                self.calls.park(call, lwp, return_address)
            if error is not None and action is OnError.STOP:
                self._hold(error, call, lwp, return_address)
            return self.apply(action, return_address, sp)
        if spec.role is Role.REALLOC and spec.pointer(args) and spec.pointer(args) not in self.table.blocks:
            # an invalid realloc is reported at the call: glibc may abort before it returns
            error = self.table.on_free(spec.pointer(args), spec.display, entry.thread, pcs, now, spec.family)
            call.errored = True
            if error is not None:
                action = self.events.heap_error(error)
                if action is OnError.SKIP:
                    self.table.on_skipped_realloc(spec.size(args))
                else:
                    self.calls.park(call, lwp, return_address)
                if action is OnError.STOP:
                    self._hold(error, call, lwp, return_address, result=0)
                return self.apply(action, return_address, sp, result=0)
        self.calls.park(call, lwp, return_address)
        return False

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
            self.calls.unpark(call, lwp)
            if result is not None:
                self.table.on_skipped_realloc(call.spec.size(call.args))
            self.apply(OnError.SKIP, return_address, call.entry_sp, result)
            return f"it returned{' NULL' if result is not None else ''} without freeing; the program is in its caller"

        bad_call.stopped_at(self.inferior, error, self.abi.stack_pointer, lambda: self.stops, skip)

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
        returned = self.calls.leave()
        if returned is None:
            return False
        call, regs = returned
        block = self.record(call, regs[self.calls.result])
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
