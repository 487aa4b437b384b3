"""The recorder engine: the program records its own allocator calls (gdb_memleak/agent/recorder.c, LD_PRELOADed);
GDB reads the recorder's memory in bulk when the table is needed and stops the program only for what needs it.

Breakpoints: the recorder's no-op `memleak_agent_error` (a bad free: `on-error` decides; for skip GDB writes the
record's skip flag and the recorder does not perform the call) and `memleak_agent_break_alloc` (allocation N), and
libc's `_exit` / `execve` (the scan at exit, the image before exec), as the breakpoint engine does.
`sync()` reads the whole state through /proc/PID/mem (core/agent_format.py) and refreshes the table: blocks,
counters, sequence number. Nothing here calls a function in the program.

Which engine runs (`set memleak engine auto|agent|breakpoint`, CLI `--engine`): `choose()`.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections import OrderedDict
from dataclasses import replace
from typing import Callable, TextIO

import gdb

from ..agent import build
from ..core import agent_format as fmt
from ..core.abi import Abi
from ..core.allocators import EXIT_HOOKS, MAPPING_HOOKS, AllocatorSpec, Role, by_name
from ..core.elf import ElfError, read_elf_symbols
from ..core.kinds import OnError
from ..core.model import Block, Counters
from ..core.own_allocators import defined_allocators, describe, only_libstdcxx_operators
from ..core.procmaps import Mapping, load_bias, read_maps
from ..core.table import AllocationTable
from . import bad_call, exec_preload
from .breakpoint_engine import BreakpointEngine
from .engine import Engine, EngineEvents
from .log import log
from .resolve import locate
from .symbolize import ROOT_FUNCTIONS, minimal_symbol

PRELOAD = "LD_PRELOAD"
ENV_SETTINGS = ("DEPTH", "ON_ERROR", "BREAK_ALLOC")


class AgentBreakpoint(gdb.Breakpoint):
    """One of the few places the program stops; routed to the engine of the inferior that hit it."""

    def __init__(self, members: dict[int, AgentEngine], address: int, handler: str) -> None:
        super().__init__(f"*0x{address:x}", type=gdb.BP_BREAKPOINT, internal=True)
        self.silent = True
        self.members = members
        self.handler = handler

    def stop(self) -> bool:
        engine = self.members.get(gdb.selected_inferior().num)
        return engine.guarded(getattr(engine, self.handler)) if engine is not None else False


def _without(maps: list[Mapping], path: str | None) -> list[Mapping]:
    """The mappings minus one object's: lookups then find what the recorder itself calls (libc's functions)."""
    return [m for m in maps if not path or m.path != path]


class AgentEngine(Engine):
    """Reads the recorder's table; falls back to the breakpoint engine when the recorder never loaded."""

    name = "agent"

    def __init__(self, inferior: gdb.Inferior, table: AllocationTable, events: EngineEvents, abi: Abi, depth: int,
                 fallback: Callable[[], BreakpointEngine]) -> None:
        super().__init__(inferior, table, events)
        self.abi, self.depth = abi, depth
        self.make_fallback = fallback
        self.fallback: BreakpointEngine | None = None
        # mmap/munmap/shm*: rare calls, tracked through GDB breakpoints by the breakpoint engine's mapping hooks
        # (only those specs); the recorder itself sees none of them
        self.mapper: BreakpointEngine | None = None
        self.members: dict[int, AgentEngine] = {inferior.num: self}
        self.breakpoints: dict[str, AgentBreakpoint] = {}  # hooked function or handler -> breakpoint, forks share it
        self.library: str | None = None
        self.anchor: int | None = None
        self.region = 0
        self.header: fmt.Header | None = None
        self.names: list[tuple[str, str]] = []
        self.threads: dict[int, int] = {}   # kernel tid -> GDB thread number, as threads were seen
        self.trimmed: dict[tuple[int, ...], tuple[int, ...]] = {}
        self.syncs, self.sync_seconds, self.stops = 0, 0.0, 0
        self.break_written: int | None = None
        # (the recorder's change mark, the table's blocks) at the last read: equal means nothing to read again
        self.synced: tuple[tuple[int, ...], object] | None = None
        self.reset_mark: tuple[int, Counters, float] | None = None  # `memleak reset`: (last seq, counters, time)
        self.pid = inferior.pid  # a plain copy: the progress thread must not touch GDB objects
        self._warned = False

    # -- the Engine interface -----------------------------------------------------------------------------------
    def start(self) -> None:
        if self.fallback is not None:
            self.fallback.start()
            return
        if not self.inferior.pid:
            return
        self.pid = self.inferior.pid
        maps = read_maps(self.inferior.pid)
        if self.library is None:
            self.library = fmt.recorder_library(maps)
            if self.library is not None:
                self._hook_recorder(maps)
            elif any(os.path.basename(m.path).startswith("libc.so") for m in maps):
                missing = exec_preload.started_with(self.inferior.pid)
                self._fall_back(f"the recorder was not in its environment: {missing}" if missing else
                                "the recorder was not loaded (the program ignored LD_PRELOAD)")
                return
        if self.mapper is not None:
            self.mapper.start()
        with contextlib.suppress(OSError, fmt.AgentFormatError), fmt.ProcMemory(self.pid) as mem:
            self._stopped(mem.read)
        wanted = [s for s in EXIT_HOOKS if s.name not in self.breakpoints]
        placed = {bp.location for bp in self.breakpoints.values()}
        for definition in locate(wanted, _without(maps, self.library)):
            if f"*0x{definition.address:x}" not in placed:
                self._place(definition.address, self._handler(definition.spec), definition.spec.name)
        self.write_settings()

    def stop(self) -> int:
        if self.fallback is not None:
            return self.fallback.stop()
        removed = len(self.breakpoints)
        if self.mapper is not None:
            removed += self.mapper.stop()
        if len(self.members) > 1:  # forked relatives still use the breakpoints
            self.members.pop(self.inferior.num, None)
        else:
            for bp in self.breakpoints.values():
                if bp.is_valid():
                    bp.delete()
        self.members = {self.inferior.num: self}
        self.breakpoints = {}
        _ENGINES.discard(self)
        return removed

    def fork(self, child: gdb.Inferior, table: AllocationTable, events: EngineEvents) -> Engine:
        """A forked child has its own copy of the recorder's memory at the same address; a vfork child writes
        into its parent's (the table it is given is the parent's too)."""
        if self.fallback is not None:
            return self.fallback.fork(child, table, events)
        engine = AgentEngine(child, table, events, self.abi, self.depth, self.make_fallback)
        engine.library, engine.anchor, engine.region = self.library, self.anchor, self.region
        engine.header, engine.names, engine.threads = self.header, self.names, dict(self.threads)
        engine.breakpoints, engine.members = self.breakpoints, self.members
        if self.mapper is not None:
            engine.mapper = self.mapper.fork(child, table, events)
            hooks, ours = engine.mapper.mapping_hooks, self.mapper.mapping_hooks
            hooks.own_objects, hooks.own_prefixes = set(ours.own_objects), ours.own_prefixes
        self.members[child.num] = engine
        _ENGINES.add(engine)
        return engine

    @property
    def active(self) -> bool:
        return self.fallback.active if self.fallback is not None else bool(self.breakpoints)

    @property
    def complete(self) -> bool:
        if self.fallback is not None:
            return self.fallback.complete
        return (self.library is not None and all(s.name in self.breakpoints for s in EXIT_HOOKS)
                and (self.mapper is None or self.mapper.complete))

    @property
    def glibc_malloc(self) -> bool:
        """Whether the allocator behind the recorder is glibc's (the scan skips its chunk links then)."""
        if self.fallback is not None:
            return self.fallback.glibc_malloc
        try:
            maps = _without(read_maps(self.inferior.pid), self.library)
        except OSError:
            return True
        found = locate([by_name()["malloc"]], maps)
        if not found:
            return True
        obj = found[0].object
        return os.path.basename(obj).startswith("libc.so") or obj == self.inferior.progspace.filename

    def sync(self) -> None:
        """Refresh the table from the recorder's memory (the process must be stopped: GDB's commands and stops).
        Nothing to read when no process has run since the last read (the report, the scan and the commands at one
        stop all ask)."""
        if self.fallback is not None:
            self.fallback.sync()
            return
        inferior = self.inferior
        if not inferior.is_valid() or not inferior.pid or self.anchor is None:
            return
        started = time.perf_counter()
        try:
            with fmt.ProcMemory(inferior.pid) as mem:
                if self._stopped(mem.read):
                    return
                if not self.region:
                    self.region = fmt.region_address(mem.read, self.anchor)
                    if not self.region:
                        return  # no allocator call yet
                mark = fmt.change_mark(mem.read, self.region)
                if self.synced is not None and self.synced[0] == mark and self.synced[1] is self.table.blocks:
                    return
                snapshot = fmt.read_snapshot(mem.read, self.region, mem.read_scratch)
        except (OSError, fmt.AgentFormatError) as exc:
            log.debug("process %d: recorder not readable: %s", inferior.pid, exc)
            return
        self.header, self.names = snapshot.header, snapshot.names
        self._learn_threads()
        epoch = int(self.started * 1e9)
        table = self.table
        stack = self._stack_of(snapshot)
        if hasattr(snapshot.live.addr, "argsort"):  # numpy: columns, no Block per live block
            table.blocks = snapshot.columns(epoch, self._thread, stack)
        else:
            table.blocks = {b.address: b for b in snapshot.blocks(epoch, self._thread, stack)}
        table.freed = OrderedDict((f.block.address, f) for f in snapshot.freed(epoch, self._thread, stack))
        counters = snapshot.counters()
        counters.untracked_frees = table.counters.untracked_frees
        table.counters = counters
        h = snapshot.header
        if h.blocks_dropped:  # the region was capped (a file-size limit, a small /dev/shm): say the table is short
            announce(f"{self._program_name()}: the recorder's memory is full: allocations it could not record are "
                     "missing from the leak report (`memleak status` counts them).")
        table.timeline.replay(counters, snapshot.timeline_points(epoch), time.monotonic() - self.started,
                              h.timeline_hi_bytes, h.timeline_hi_blocks)
        self._forget_before_reset(counters)
        table._seq = snapshot.last_seq  # noqa: SLF001 - the recorder numbers allocations itself
        self.synced = (mark, table.blocks)
        self.syncs += 1
        self.sync_seconds += time.perf_counter() - started
        self.write_settings()

    def reset(self) -> None:
        """The recorder keeps counting: remember where `memleak reset` was (the last allocation's number, the
        counters, the time) and leave out what came before at every later read."""
        if self.fallback is not None:
            self.fallback.reset()
            return
        self.sync()
        table = self.table
        self.reset_mark = (table.last_seq, replace(table.counters), time.monotonic() - self.started)
        table.reset()
        self.synced = None

    def _forget_before_reset(self, counters: Counters) -> None:
        """Leave out of the table what was recorded before `memleak reset`, as the breakpoint engine's cleared
        table never saw it: older blocks, their frees (untracked), earlier timeline points."""
        if self.reset_mark is None:
            return
        seq, before, at = self.reset_mark
        table = self.table
        blocks = table.blocks
        if isinstance(blocks, dict):
            table.blocks = {a: b for a, b in blocks.items() if b.seq > seq}
        else:
            table.blocks = blocks.select(blocks.seq > seq)
        table.freed = OrderedDict((a, f) for a, f in table.freed.items() if f.block.seq > seq)
        allocs = counters.allocs - before.allocs
        frees = counters.frees - before.frees
        counters.allocs, counters.frees = allocs, frees
        counters.bytes_allocated -= before.bytes_allocated
        counters.failed_allocs -= before.failed_allocs
        counters.live_blocks = len(table.blocks)
        counters.live_bytes = sum(b.size for b in table.blocks.values()) if isinstance(table.blocks, dict) \
            else int(table.blocks.size.sum())
        # frees of blocks allocated since the reset = those blocks no longer live; the other frees were of
        # forgotten blocks, untracked (as for a table started mid-run)
        forgotten = max(frees - (allocs - counters.live_blocks), 0)
        counters.frees -= forgotten
        counters.untracked_frees += forgotten
        later = [p for p in table.timeline.points if p.time >= at]
        counters.peak_blocks = max([counters.live_blocks, *(p.peak_blocks for p in later)])
        counters.peak_bytes = max([counters.live_bytes, *(p.peak_bytes for p in later)])
        table.timeline.points = later
        table.complete = False

    def hidden_memory(self) -> tuple[tuple[int, int], ...]:
        """The recorder's region (it holds every block's address) and the library's own data."""
        if self.fallback is not None:
            return self.fallback.hidden_memory()
        ranges = []
        if self.region and self.header is not None:
            ranges.append((self.region, self.region + self.header.region_size))
        try:
            maps = read_maps(self.inferior.pid)
        except OSError:
            maps = []
        ranges.extend((m.start, m.end) for m in maps if self.library and m.path == self.library)
        return tuple(ranges)

    def events_seen(self) -> int:
        return self.progress()[0]

    def progress(self) -> tuple[int, int, int]:
        """Straight from the recorder's header and shard counters through /proc/PID/mem (the program may be
        running: the tracer may read it; no GDB call, so the CLI's progress thread can ask)."""
        if self.fallback is not None:
            return self.fallback.progress()
        pid, anchor = self.pid, self.anchor
        if pid and anchor is not None:
            try:
                with fmt.ProcMemory(pid) as mem:
                    region = self.region or fmt.region_address(mem.read, anchor)
                    if region:
                        p = fmt.read_progress(mem.read, region)
                        return p.events, p.live_blocks, p.live_bytes
            except (OSError, fmt.AgentFormatError):
                log.debug("process %d: recorder counters not readable", pid, exc_info=True)
        c = self.table.counters
        return c.allocs + c.frees, c.live_blocks, c.live_bytes

    def status(self) -> list[str]:
        if self.fallback is not None:
            return ["engine: breakpoint (the recorder was not loaded)", *self.fallback.status()]
        h = self.header
        unwinder = fmt.UNWINDERS.get(h.unwinder, "?") if h is not None else "?"
        lines = [f"engine: agent (in-process recorder {self.library or 'not loaded yet'}; stacks by {unwinder}, "
                 f"depth {h.depth if h is not None else self.depth})",
                 f"table reads: {self.syncs:,} taking {self.sync_seconds:.3f} s; program stops: {self.stops:,}"]
        try:
            served = locate([by_name()[n] for n in ("malloc", "calloc", "realloc", "free")],
                            _without(read_maps(self.inferior.pid), self.library)) if self.inferior.pid else []
        except OSError:
            served = []
        if served:  # the allocator the recorder forwards to (glibc, or a preloaded jemalloc ...)
            lines.append("forwards to: " + ", ".join(f"{d.spec.name} ({d.object})" for d in served))
        if self.mapper is not None:
            s = self.mapper.stats
            lines.append(f"mappings and shared memory through breakpoints: {s.entry_stops:,} entry, "
                         f"{s.return_stops:,} return stops")
        if h is not None and h.stacks_dropped:
            lines.append(f"stacks not stored (pool full): {h.stacks_dropped:,}")
        if h is not None and h.blocks_dropped:
            lines.append(f"blocks not recorded (record area full): {h.blocks_dropped:,}")
        return lines

    # -- stop() handlers ----------------------------------------------------------------------------------------
    def guarded(self, handler: Callable[[], bool]) -> bool:
        try:
            self.stops += 1
            return handler()
        except Exception as exc:  # noqa: BLE001 - stop() must never raise into GDB
            if not self._warned:
                self._warned = True
                gdb.write(f"gdb-memleak: internal error in the recorder engine: {exc!r}\n", gdb.STDERR)
            log.debug("recorder engine stop handler failed", exc_info=True)
            return False

    def on_heap_error(self) -> bool:
        """The recorder found a bad free: report it; `skip` is told to the recorder through the record."""
        address = self._argument(0)
        record = fmt.parse_error(self._read(address, fmt.ERROR.size))
        if self.table.knows_event(record[fmt.ERROR_SEQ_INDEX]):
            # the same call presented again (GDB re-reported the hit): its action was decided and written already
            log.debug("process %d: heap error #%d presented again", self.inferior.pid, record[fmt.ERROR_SEQ_INDEX])
            return False
        self.sync()  # the report describes the pointer against the live blocks (inside a block, a stack, ...)
        self._ensure_layout()
        self._learn_threads()
        error = fmt.error_from_record(record, self.names, self._stack_by_id, int(self.started * 1e9), self._thread)
        self.table.add_error(error)
        action = self.events.heap_error(error)
        self._write_skip(address, action is OnError.SKIP)
        if action is OnError.STOP:
            bad_call.stopped_at(self.inferior, error, self.abi.stack_pointer, lambda: self.stops,
                                lambda: self._write_skip(address, True))
        return self._stopping(action is OnError.STOP)

    def _write_skip(self, record: int, skip: bool) -> str:
        """The error record's skip flag, which the recorder reads when memleak_agent_error returns."""
        self.inferior.write_memory(record + fmt.ERROR_SKIP_OFFSET, int(skip).to_bytes(8, "little"))
        return "it returns without freeing when the program goes on"

    def on_break_alloc(self) -> bool:
        slot = fmt.SLOT.unpack(self._read(self._argument(0), fmt.SLOT.size))
        addr, size, seq, time_ns, stack_id, tid, allocator = slot[:7]
        self._ensure_layout()
        self._learn_threads()
        label, family = self.names[allocator]
        block = Block(addr, size, label, self._thread(tid), seq, (time_ns - int(self.started * 1e9)) / 1e9,
                      self._stack_by_id(stack_id), family)
        self.events.allocation_break(block)
        return self._stopping(True)

    def _stopping(self, stop: bool) -> bool:
        """The program stops inside the recorder: once GDB reports the stop, the program's own frame (the bad
        free's or the allocation's caller) is selected, so `frame`, `info locals` and `up` start there."""
        if stop and self.library is not None:
            _PROGRAM_FRAME[self.inferior.num] = self.library
        return stop

    def on_exit(self) -> bool:
        return self.events.exiting()

    def on_exec(self) -> bool:
        self.events.exec_called()
        return False

    # -- helpers ------------------------------------------------------------------------------------------------
    @staticmethod
    def _handler(spec: AllocatorSpec) -> str:
        return "on_exit" if spec.role is Role.EXIT else "on_exec"

    def _place(self, address: int, handler: str, key: str | None = None) -> None:
        """One breakpoint calling `handler`, kept under `key` (the hooked function's name; the handler's own
        name for the recorder's functions)."""
        self.breakpoints[key or handler] = AgentBreakpoint(self.members, address, handler)

    def _hook_recorder(self, maps: list[Mapping]) -> None:
        path = self.library
        assert path is not None
        try:
            symbols = read_elf_symbols(path)
        except ElfError as exc:
            self._fall_back(f"the recorder library is unreadable ({exc})")
            return
        bias = load_bias(maps, path, symbols.e_type, symbols.min_vaddr)
        self.anchor = fmt.anchor_address(maps)
        for name, handler in ((fmt.ERROR_FUNCTION, "on_heap_error"), (fmt.BREAK_ALLOC_FUNCTION, "on_break_alloc")):
            value = symbols.function(name)
            if bias is None or value is None or self.anchor is None:
                self._fall_back(f"the recorder library lacks {name}")
                return
            self._place(bias + value, handler)
        _ENGINES.add(self)
        self.mapper = BreakpointEngine(self.inferior, self.table, self.events, self.abi, self.depth,
                                       list(MAPPING_HOOKS))
        self.mapper.mapping_hooks.own_objects.add(path)
        self.mapper.mapping_hooks.own_prefixes = ("libunwind.so",)  # the recorder's stack capture maps its cache
        served = locate([by_name()["malloc"]], _without(maps, path))
        if served and not os.path.basename(served[0].object).startswith("libc.so"):
            self.mapper.mapping_hooks.own_objects.add(served[0].object)  # a preloaded jemalloc maps its heap
        self.mapper.start()

    def _stopped(self, read: fmt.ReadMemory) -> bool:
        """Whether the recorder stopped recording in this process (its memory could not be had): GDB says why once."""
        why = fmt.stopped_reason(read, self.anchor) if self.anchor is not None else None
        if why:
            announce(f"{self._program_name()}: the recorder stopped, {why}: the program runs on untracked.")
        return why is not None

    def _program_name(self) -> str:
        return os.path.basename(self.inferior.progspace.filename or "") or f"process {self.inferior.pid}"

    def _fall_back(self, why: str) -> None:
        announce(f"{self._program_name()}: {why}: using the breakpoint engine.")
        for bp in self.breakpoints.values():
            if bp.is_valid():
                bp.delete()
        self.breakpoints = {}
        if self.mapper is not None:
            self.mapper.stop()
            self.mapper = None
        self.fallback = self.make_fallback()
        self.name = self.fallback.name  # `memleak status`: the engine that really tracks
        self.fallback.start()

    def _argument(self, index: int) -> int:
        return int(gdb.selected_frame().read_register(self.abi.arg_registers[index])) & 0xFFFFFFFFFFFFFFFF

    def _read(self, address: int, size: int) -> bytes:
        return self.inferior.read_memory(address, size).tobytes()

    def _ensure_layout(self) -> None:
        if self.header is None or not self.names:
            if not self.region and self.anchor is not None:
                self.region = fmt.region_address(self._read, self.anchor)
            self.header = fmt.parse_header(self._read(self.region, fmt.HEADER.size))
            self.names = fmt.parse_names(self._read(self.region + self.header.names_off, self.header.names_size))

    def _stack_by_id(self, stack_id: int) -> tuple[int, ...]:
        """One stack read from the pool (at a stop: a few words, not the whole pool)."""
        if not stack_id or self.header is None:
            return ()
        base = self.region + self.header.pool_off + stack_id * 8
        count = int.from_bytes(self._read(base, 8), "little")
        words = self._read(base + 8, 8 * min(count, 256))
        return self._trim(tuple(int.from_bytes(words[i:i + 8], "little") for i in range(0, len(words), 8)))

    def _stack_of(self, snapshot: fmt.AgentSnapshot) -> Callable[[int], tuple[int, ...]]:
        return lambda stack_id: self._trim(snapshot.stack(stack_id))

    def _trim(self, pcs: tuple[int, ...]) -> tuple[int, ...]:
        """End a stack at main or a thread's entry, as the breakpoint engine's walk does (cached per stack)."""
        done = self.trimmed.get(pcs)
        if done is None:
            done = pcs
            for i, pc in enumerate(pcs):
                symbol = minimal_symbol(pc - 1)
                if symbol is not None and symbol[0].split("@")[0] in ROOT_FUNCTIONS:
                    done = pcs[:i + 1]
                    break
            self.trimmed[pcs] = done
        return done

    def _learn_threads(self) -> None:
        try:
            for thread in self.inferior.threads():
                self.threads[thread.ptid[1]] = thread.num
        except gdb.error:
            pass

    def _thread(self, tid: int) -> int:
        return self.threads.get(tid, tid)

    def write_settings(self) -> None:
        """Tell the recorder the allocation `break-alloc` waits for (0: none), when it changed."""
        if self.fallback is not None or self.anchor is None or not self.inferior.pid:
            return
        wanted = self.events.break_alloc or 0
        if wanted == self.break_written:
            return
        try:
            if not self.region:
                self.region = fmt.region_address(self._read, self.anchor)
            if self.region:
                self.inferior.write_memory(self.region + fmt.BREAK_SEQ_OFFSET, wanted.to_bytes(8, "little"))
                self.break_written = wanted
        except (gdb.error, gdb.MemoryError, fmt.AgentFormatError):
            log.debug("could not write break-alloc to the recorder", exc_info=True)


_ENGINES: set[AgentEngine] = set()
_PROGRAM_FRAME: dict[int, str] = {}  # inferior number -> the recorder library whose frames a stop steps over


def program_frame(library: str) -> gdb.Frame | None:
    """The newest frame whose code is not the recorder's (the hooked call's caller)."""
    frame: gdb.Frame | None = gdb.newest_frame()
    while frame is not None:
        if gdb.solib_name(frame.pc()) != library:
            return frame
        frame = frame.older()
    return None


def _on_stop(_event: gdb.StopEvent) -> None:
    library = _PROGRAM_FRAME.pop(gdb.selected_inferior().num, None)
    if library is None:
        return
    try:
        frame = program_frame(library)
        if frame is not None:
            frame.select()
    except gdb.error:
        log.debug("could not select the program's frame", exc_info=True)


def _before_prompt(*_event: object) -> None:
    """`memleak break-alloc N` typed at the prompt reaches the recorder before the program runs on."""
    for engine in list(_ENGINES):
        if engine.inferior.is_valid() and engine.inferior.pid:
            engine.write_settings()


# -- choosing the engine and preparing the program's environment -------------------------------------------------

_prepared: dict[str, str] = {}  # what prepare_environment set, and the user's own LD_PRELOAD to restore


def _gdb_env(name: str) -> str | None:
    text = gdb.execute(f"show environment {name}", to_string=True).strip()
    prefix = f"{name} = "
    return text[len(prefix):] if text.startswith(prefix) else None


def prepare_environment(depth: int, on_error: str, break_alloc: int | None) -> str | None:
    """Before `run`: put the recorder in the program's LD_PRELOAD (ahead of the user's own); returns the one-line
    reason when it cannot be built (the breakpoint engine is used then). Nothing is preloaded into a program that
    defines its own allocator: the breakpoint engine tracks it (`choose` says why), and the recorder's remaining
    hooks would only pair libc's calls with blocks they never saw."""
    program = gdb.selected_inferior().progspace.filename or ""
    if (own := _own_allocators(program)) and not only_libstdcxx_operators(program, own):
        restore_environment()
        return None
    try:
        library = str(build.ensure_built())
    except build.BuildError as exc:
        _prepared.clear()
        _prepared["error"] = str(exc)
        return str(exc)
    user = _prepared.get("user") if "library" in _prepared else _gdb_env(PRELOAD)
    entries = [p for p in (user or "").split(":") if p and not p.endswith(fmt.LIBRARY_SUFFIX)]
    gdb.execute(f"set environment {PRELOAD}={':'.join([library, *entries])}", to_string=True)
    gdb.execute(f"set environment {fmt.ENV_PREFIX}DEPTH={depth}", to_string=True)
    gdb.execute(f"set environment {fmt.ENV_PREFIX}ON_ERROR={'skip' if on_error == 'skip' else 'report'}",
                to_string=True)
    if break_alloc:
        gdb.execute(f"set environment {fmt.ENV_PREFIX}BREAK_ALLOC={break_alloc}", to_string=True)
    else:
        gdb.execute(f"unset environment {fmt.ENV_PREFIX}BREAK_ALLOC", to_string=True)
    _prepared.clear()
    _prepared.update(library=library, user=":".join(entries))
    return None


def recorder_environment() -> exec_preload.RecorderEnvironment | None:
    """What an image GDB follows needs in its environment for the recorder (exec_preload.py): the entries
    prepare_environment put in GDB's, None when the recorder is not in use."""
    library = _prepared.get("library")
    if library is None:
        return None
    settings = []
    for name in ENV_SETTINGS:
        value = _gdb_env(f"{fmt.ENV_PREFIX}{name}")
        if value is not None:
            settings.append(f"{fmt.ENV_PREFIX}{name}={value}")
    return exec_preload.RecorderEnvironment(library, tuple(settings), fmt.ENV_PREFIX)


def break_alloc_changed(number: int | None) -> None:
    """`memleak break-alloc N|off`: the next run's recorder reads N from its environment; a running one gets it
    written into its memory now (a batch GDB shows no prompt before `continue`)."""
    if "library" in _prepared:
        if number:
            gdb.execute(f"set environment {fmt.ENV_PREFIX}BREAK_ALLOC={number}", to_string=True)
        else:
            gdb.execute(f"unset environment {fmt.ENV_PREFIX}BREAK_ALLOC", to_string=True)
    _before_prompt()


def restore_environment() -> None:
    """`memleak stop`: the next run gets the user's own environment back."""
    if "library" not in _prepared:
        return
    user = _prepared.get("user")
    if user:
        gdb.execute(f"set environment {PRELOAD}={user}", to_string=True)
    else:
        gdb.execute(f"unset environment {PRELOAD}", to_string=True)
    for name in ENV_SETTINGS:
        gdb.execute(f"unset environment {fmt.ENV_PREFIX}{name}", to_string=True)
    _prepared.clear()


def choose(setting: str, inferior: gdb.Inferior, complete: bool) -> tuple[str, str | None]:
    """("agent" | "breakpoint", the one line saying why not the recorder, or None). `auto` and `agent` fall back
    alike: where the recorder cannot run, the breakpoint engine is the only one that can."""
    if setting == "breakpoint":
        return "breakpoint", None
    program = inferior.progspace.filename or ""
    name = os.path.basename(program) or "the program"
    why = None
    if not complete and inferior.was_attached:
        why = f"attached to {name}: the recorder is only preloaded into a program GDB starts"
    elif not complete:
        why = f"{name} was already running at `memleak start`: the recorder is only preloaded when GDB starts it"
    elif (own := _own_allocators(program)) and only_libstdcxx_operators(program, own):
        return "agent", (f"gdb-memleak: {name} carries its own libstdc++: its {describe(own)} are recorded as the "
                         "malloc and free they call (a release by the wrong family is not reported).")
    elif own:
        why = (f"{name} defines its own {describe(own)} (calls to {'it' if len(own) == 1 else 'them'} never reach "
               "the preloaded recorder)")
    elif "library" not in _prepared:
        why = _prepared.get("error") or f"the recorder was not in {name}'s environment when it started"
    elif program and not fmt.is_dynamic(program):
        why = f"{name} is statically linked (nothing can be preloaded)"
    elif program and _privileged(program):
        why = f"{name} is set-user-ID or set-group-ID (the dynamic loader ignores LD_PRELOAD there)"
    if why is None:
        return "agent", None
    return "breakpoint", f"{why}: using the breakpoint engine."


def _own_allocators(program: str) -> tuple[str, ...]:
    """The allocator functions a dynamically linked `program` defines itself (core/own_allocators.py): the
    recorder cannot see their calls, the breakpoint engine hooks them. (A static program is said to be static.)"""
    if not program or not fmt.is_dynamic(program):
        return ()
    return defined_allocators(program)


def _privileged(program: str) -> bool:
    """Whether running `program` changes the process's user or group: the loader's secure-execution mode then
    drops a preload given by path (ld.so(8)), so the recorder could never load. The kernel honours the bits under
    ptrace only for a tracer with CAP_SYS_PTRACE (root, here); for anyone else the program runs unprivileged."""
    if os.geteuid() != 0:
        return False
    try:
        st = os.stat(program)
    except OSError:
        return False
    return bool(st.st_mode & stat.S_ISUID and st.st_uid != os.geteuid()
                or st.st_mode & stat.S_ISGID and st.st_gid != os.getegid())


_announced: set[str] = set()  # the engine lines said in this run
_stream: list[TextIO | None] = [None]  # where they go: the session's stream (the CLI's stderr), else GDB's stderr


def announce(line: str) -> None:
    """Say something of the recorder (why it is not used, that its memory is full) on one line of stderr, once per
    run: a forked, vforked or exec'd process for the same reason says nothing more (`new_run()` starts over)."""
    text = " ".join(line.split())
    while text.startswith("gdb-memleak: "):
        text = text[len("gdb-memleak: "):]
    if text in _announced:
        return
    _announced.add(text)
    out = _stream[0]
    if out is not None:  # the batch CLI: GDB's own stderr is captured while `run` executes with to_string
        out.write(f"gdb-memleak: {text}\n")
        out.flush()
    else:
        gdb.write(f"gdb-memleak: {text}\n", gdb.STDERR)


def use_stream(out: TextIO | None) -> None:
    _stream[0] = out


def new_run() -> None:
    """A process starts (or is attached) with nothing else tracked: its reasons are said again."""
    _announced.clear()


def register() -> None:
    gdb.events.before_prompt.connect(_before_prompt)
    gdb.events.stop.connect(_on_stop)
    exec_preload.connect(recorder_environment, lambda: "library" in _prepared)

