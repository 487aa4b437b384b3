"""The recorder engine: the program records its own allocator calls (gdb_memleak/agent/recorder.c, LD_PRELOADed);
GDB reads the recorder's memory in bulk when the table is needed and stops the program only for what needs it.

Breakpoints: the recorder's no-op `memleak_agent_error` (a bad free: `on-error` decides; for skip GDB writes the
record's skip flag and the recorder does not perform the call) and `memleak_agent_break_alloc` (allocation N),
libc's `_exit` / `execve` (the scan at exit, the image before exec) and mmap/munmap/shm* (gdb/mapping_hooks.py), as
the breakpoint engine places them (gdb/engine_core.py, gdb/call_hooks.py).
`sync()` reads the whole state through /proc/PID/mem (core/agent_format.py) and refreshes the table: blocks,
counters, sequence number. Nothing here calls a function in the program. When the recorder is not in the process,
the tracking's engine becomes the breakpoint engine (`fall_back`, given by session.new_engine).

Which engine runs: engine_choice.py; the recorder in the program's environment: preload.py; the frame selected at a
stop inside the recorder: stop_frame.py; GDB's events for running recorders: recorder_events.py.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Callable

import gdb

from ..core import agent_format as fmt
from ..core import procstat
from ..core.abi import Abi
from ..core.allocators import MAPPING_HOOKS, AllocatorSpec, by_name
from ..core.elf import ElfError, read_elf_symbols
from ..core.kinds import OnError
from ..core.model import Block
from ..core.procmaps import Mapping, load_bias, read_maps
from ..core.table import AllocationTable
from . import bad_call, exec_preload, recorder_attach, recorder_events, settings, stop_frame
from .announce import announce
from .call_hooks import CallHooks
from .engine import Clock, EngineEvents
from .engine_core import (
    CoreEngine,
    ExitHooks,
    ForkFamily,
    RoutedBreakpoint,
    is_glibc_malloc,
    maps_without,
    serving_malloc,
)
from .handcall import HandCallError
from .log import log
from .mapping_hooks import MappingHooks
from .resolve import locate
from .symbolize import ROOT_FUNCTIONS, minimal_symbol


class AgentEngine(CoreEngine):
    """Reads the recorder's table; `fall_back()` hands the tracking to the breakpoint engine when the recorder
    never loaded (None for a forked child: its parent's recorder is in it)."""

    name = "agent"

    def __init__(self, inferior: gdb.Inferior, table: AllocationTable, events: EngineEvents, clock: Clock, abi: Abi,
                 depth: int, fall_back: Callable[[], None] | None, from_start: bool = True) -> None:
        super().__init__(inferior, table, events, clock)
        self.abi, self.depth = abi, depth
        self.fall_back = fall_back
        # a process already running: the recorder is brought in by hand (recorder_attach.py), and taken out at stop
        self.from_start = from_start
        self.attachment: recorder_attach.AttachedRecorder | None = None
        # mmap/munmap/shm*: rare calls the recorder does not see, tracked through GDB breakpoints (set with the
        # recorder's own: `_hook_recorder`)
        self.mapping_calls: CallHooks | None = None
        self.mapping_hooks: MappingHooks | None = None
        self.breakpoints: dict[str, RoutedBreakpoint] = {}  # the recorder's functions; forks share them
        self.library: str | None = None
        self.anchor: int | None = None
        self.region = 0
        self.header: fmt.Header | None = None
        self.names: list[tuple[str, str]] = []
        self.threads: dict[int, int] = {}   # kernel tid -> GDB thread number, as threads were seen
        self.trimmed: dict[tuple[int, ...], tuple[int, ...]] = {}
        self.recorder_code = (0, 0)  # the recorder library's mapped range: its frames never show in a stack
        self.syncs, self.sync_seconds = 0, 0.0
        self.break_written: int | None = None
        # (the recorder's change mark, the table's blocks) at the last read: equal means nothing to read again
        self.synced: tuple[tuple[int, ...], object] | None = None
        self.pid = inferior.pid  # a plain copy: the progress thread must not touch GDB objects

    # -- the Engine interface -----------------------------------------------------------------------------------
    def start(self) -> None:
        if not self.inferior.pid:
            return
        self.pid = self.inferior.pid
        maps = read_maps(self.inferior.pid)
        if not self.from_start and (self.attachment is None or not self.attachment.attached):
            if not self._attach():
                return
            maps = read_maps(self.inferior.pid)
        if self.library is None:
            self.library = fmt.recorder_library(maps)
            if self.library is not None:
                if not self._hook_recorder(maps):
                    return
            elif any(os.path.basename(m.path).startswith("libc.so") for m in maps):
                missing = exec_preload.started_with(self.inferior.pid)
                self._fall_back(f"the recorder was not in its environment: {missing}" if missing else
                                "the recorder was not loaded (the program ignored LD_PRELOAD)")
                return
        with contextlib.suppress(OSError, fmt.AgentFormatError), fmt.ProcMemory(self.pid) as mem:
            self._stopped(mem.read)
        served = maps_without(maps, self.library)  # what the recorder calls, not its own hooks
        if self.mapping_calls is not None:
            self.mapping_calls.install(served)
        self.exit_hooks.place(served)
        self.write_settings()

    def remove_hooks(self, last: bool) -> int:
        """The recorder's breakpoints and the mapping calls' entries go when no forked relative still uses them;
        a recorder brought in by an attach is taken out (its table read first: the report keeps it)."""
        if self.attachment is not None and self.attachment.attached:
            self._detach()
        removed = len(self.breakpoints)
        if self.mapping_calls is not None:
            removed += self.mapping_calls.remove(last)
        if last:
            for bp in self.breakpoints.values():
                if bp.is_valid():
                    bp.delete()
        self.breakpoints = {}
        recorder_events.ENGINES.discard(self)
        return removed

    def forked(self, child: gdb.Inferior, table: AllocationTable, events: EngineEvents) -> AgentEngine:
        """A forked child has its own copy of the recorder's memory at the same address; a vfork child writes
        into its parent's (the table it is given is the parent's too)."""
        engine = AgentEngine(child, table, events, self.clock, self.abi, self.depth, None)
        engine.library, engine.anchor, engine.region = self.library, self.anchor, self.region
        engine.header, engine.names, engine.threads = self.header, self.names, dict(self.threads)
        engine.breakpoints = self.breakpoints
        if self.mapping_calls is not None and self.mapping_hooks is not None:
            engine.mapping_calls = self.mapping_calls.forked(child)
            engine.mapping_hooks = self.mapping_hooks.forked(child, table, engine.mapping_calls.stacks)
        recorder_events.ENGINES.add(engine)
        return engine

    def join(self, family: ForkFamily, exit_hooks: ExitHooks) -> None:
        super().join(family, exit_hooks)
        if self.mapping_calls is not None:
            self.mapping_calls.family = family

    @property
    def active(self) -> bool:
        return bool(self.breakpoints)

    @property
    def fully_hooked(self) -> bool:
        return (self.library is not None and self.exit_hooks.complete
                and (self.mapping_calls is None or self.mapping_calls.complete))

    @property
    def glibc_malloc(self) -> bool:
        """Whether the allocator behind the recorder is glibc's (the scan skips its chunk links then)."""
        try:
            maps = maps_without(read_maps(self.inferior.pid), self.library)
        except OSError:
            return True
        return is_glibc_malloc(serving_malloc(maps), self.inferior.progspace.filename)

    def sync(self) -> None:
        """Refresh the table from the recorder's memory (the process must be stopped: GDB's commands and stops).
        Nothing to read when no process has run since the last read (the report, the scan and the commands at one
        stop all ask)."""
        inferior = self.inferior
        if not inferior.is_valid() or not inferior.pid or self.anchor is None:
            return
        started = time.perf_counter()
        table = self.table
        try:
            with fmt.ProcMemory(inferior.pid) as mem:
                if self._stopped(mem.read):
                    return
                if not self.region:
                    self.region = fmt.region_address(mem.read, self.anchor)
                    if not self.region:
                        return  # no allocator call yet
                mark = fmt.change_mark(mem.read, self.region)
                if self.synced is not None and self.synced[0] == mark and self.synced[1] is table.blocks:
                    return
                snapshot = fmt.read_snapshot(mem.read, self.region, mem.read_scratch)
        except (OSError, fmt.AgentFormatError) as exc:
            if not procstat.running(inferior.pid):  # it ended: its table is as read at its exit hook
                log.debug("process %d: ended, recorder not read again: %s", inferior.pid, exc)
                return
            # the table keeps the last read: the report says it may be stale, and why, and so does one line now
            table.read_error = "the recorder's table could not be read: " + str(exc).removeprefix("gdb-memleak: ")
            log.debug("process %d: recorder not readable: %s", inferior.pid, exc)
            announce(f"{self._program_name()}: {table.read_error}; the leak report is incomplete.")
            return
        self.header, self.names = snapshot.header, snapshot.names
        self._learn_threads()
        if snapshot.header.blocks_dropped:  # the region was capped (a file-size limit, a small /dev/shm)
            announce(f"{self._program_name()}: the recorder's memory is full: allocations it could not record are "
                     "missing from the leak report (`memleak status` counts them).")
        table.load_recorded(snapshot.recording(self.clock.now(), self.clock.epoch_ns,
                                               self._thread, self._stack_of(snapshot)))
        self.synced = (mark, table.blocks)
        self.syncs += 1
        self.sync_seconds += time.perf_counter() - started
        self.write_settings()

    def reset(self) -> None:
        """The recorder keeps counting: the table remembers where `memleak reset` was and every later read leaves
        out what came before (core/recorded.py)."""
        self.sync()
        self.table.reset(self.clock.now())
        self.synced = None

    def hidden_memory(self) -> tuple[tuple[int, int], ...]:
        """The recorder's region (it holds every block's address) and the library's own data."""
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

    def describe(self) -> list[str]:
        h = self.header
        unwinder = fmt.UNWINDERS.get(h.unwinder, "?") if h is not None else "?"
        lines = [f"engine: agent (in-process recorder {self.library or 'not loaded yet'}; stacks by {unwinder}, "
                 f"depth {h.depth if h is not None else self.depth})",
                 f"table reads: {self.syncs:,} taking {self.sync_seconds:.3f} s; program stops: {self.stops:,}"]
        try:
            served = locate([by_name()[n] for n in ("malloc", "calloc", "realloc", "free")],
                            maps_without(read_maps(self.inferior.pid), self.library)) if self.inferior.pid else []
        except OSError:
            served = []
        if served:  # the allocator the recorder forwards to (glibc, or a preloaded jemalloc ...)
            lines.append("forwards to: " + ", ".join(f"{d.spec.name} ({d.object})" for d in served))
        if self.mapping_calls is not None:
            s = self.mapping_calls.stats
            lines.append(f"mappings and shared memory through breakpoints: {s.entry_stops:,} entry, "
                         f"{s.return_stops:,} return stops")
        if h is not None and h.stacks_dropped:
            lines.append(f"stacks not stored (pool full): {h.stacks_dropped:,}")
        if h is not None and h.blocks_dropped:
            lines.append(f"blocks not recorded (record area full): {h.blocks_dropped:,}")
        return lines

    # -- stop() handlers (routed and guarded by engine_core.RoutedBreakpoint) -------------------------------------
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
        error = fmt.error_from_record(record, self.names, self._stack_by_id, self.clock.epoch_ns, self._thread)
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
        block = Block(addr, size, label, self._thread(tid), seq, (time_ns - self.clock.epoch_ns) / 1e9,
                      self._stack_by_id(stack_id), family)
        self.events.allocation_break(block)
        return self._stopping(True)

    def _stopping(self, stop: bool) -> bool:
        """The program stops inside the recorder: once GDB reports the stop, the program's own frame (the bad
        free's or the allocation's caller) is selected, so `frame`, `info locals` and `up` start there."""
        if stop and self.library is not None:
            stop_frame.select_at_stop(self.inferior, self.library)
        return stop

    def on_mapping_entry(self, spec: AllocatorSpec) -> bool:
        calls, hooks = self.mapping_calls, self.mapping_hooks
        if calls is None or hooks is None:
            return False
        entry = calls.enter(spec)
        return hooks.on_entry(calls, entry) if entry is not None else False

    def on_mapping_return(self) -> bool:
        calls, hooks = self.mapping_calls, self.mapping_hooks
        returned = calls.leave() if calls is not None else None
        if returned is not None and calls is not None and hooks is not None:
            call, regs = returned
            hooks.returned(call, regs[calls.result])
        return False

    # -- a process already running ---------------------------------------------------------------------------------
    def _attach(self) -> bool:
        """Bring the recorder in and learn the heap as it is; False when it fell back (said why)."""
        try:
            self.attachment = recorder_attach.attach(self.inferior, self.depth, str(settings.on_error.value),
                                                     self.events.break_alloc, self.attachment)
        except recorder_attach.AttachError as exc:
            self._fall_back(str(exc))
            return False
        self.library, self.synced = self.attachment.library, None
        self.break_written = self.events.break_alloc or 0
        if not self.breakpoints and not self._hook_recorder(read_maps(self.inferior.pid)):
            return False
        try:
            adopted, why = recorder_attach.adopt_heap(self.inferior, self.attachment)
        except (recorder_attach.AttachError, HandCallError) as exc:
            adopted, why = 0, str(exc)
        self.table.heap_walked = why is None
        self.preexisting = adopted
        if why is not None:
            announce(f"{self._program_name()}: {why}")
        return True

    def _detach(self) -> None:
        """Read the table a last time, then give the process its allocator calls back."""
        assert self.attachment is not None
        threads = self.inferior.threads() if self.inferior.is_valid() and self.inferior.pid else ()
        if not threads or not procstat.running(self.inferior.pid) or not all(t.is_stopped() for t in threads):
            self.attachment.attached = False  # gone, detached already, or running: nothing can be called in it
            return
        self.sync()
        try:
            recorder_attach.detach(self.inferior, self.attachment)
        except (recorder_attach.AttachError, gdb.error) as exc:
            announce(f"{self._program_name()}: {exc}")
        self.anchor, self.region, self.synced = None, 0, None  # the table's memory is gone: nothing to read

    # -- helpers ------------------------------------------------------------------------------------------------
    def _hook_recorder(self, maps: list[Mapping]) -> bool:
        """Break at the recorder's functions and hook the mapping calls; False when it fell back instead."""
        path = self.library
        assert path is not None
        try:
            symbols = read_elf_symbols(path)
        except ElfError as exc:
            self._fall_back(f"the recorder library is unreadable ({exc})")
            return False
        bias = load_bias(maps, path, symbols.e_type, symbols.min_vaddr)
        self.anchor = fmt.anchor_address(maps)
        mapped = [m for m in maps if m.path == path]
        self.recorder_code = (min(m.start for m in mapped), max(m.end for m in mapped)) if mapped else (0, 0)
        for name, handler in ((fmt.ERROR_FUNCTION, AgentEngine.on_heap_error),
                              (fmt.BREAK_ALLOC_FUNCTION, AgentEngine.on_break_alloc)):
            value = symbols.function(name)
            if bias is None or value is None or self.anchor is None:
                self._fall_back(f"the recorder library lacks {name}")
                return False
            self.breakpoints[name] = RoutedBreakpoint(self.family, bias + value, handler)
        recorder_events.ENGINES.add(self)
        calls = CallHooks(self.inferior, self.abi, self.depth, self.family, list(MAPPING_HOOKS),
                          AgentEngine.on_mapping_entry, AgentEngine.on_mapping_return)
        own = {path}
        served = serving_malloc(maps_without(maps, path))
        if served is not None and not os.path.basename(served.object).startswith("libc.so"):
            own.add(served.object)  # a preloaded jemalloc maps its heap
        # the recorder's stack capture (libunwind) maps its cache
        self.mapping_hooks = MappingHooks(self.inferior, self.table, calls.stacks, self.clock, own, ("libunwind.so",))
        self.mapping_calls = calls
        return True

    def _stopped(self, read: fmt.ReadMemory) -> bool:
        """Whether the recorder stopped recording in this process (its memory could not be had): GDB says why once."""
        why = fmt.stopped_reason(read, self.anchor) if self.anchor is not None else None
        if why:
            announce(f"{self._program_name()}: the recorder stopped, {why}: the program runs on untracked.")
        return why is not None

    def _program_name(self) -> str:
        return os.path.basename(self.inferior.progspace.filename or "") or f"process {self.inferior.pid}"

    def _fall_back(self, why: str) -> None:
        """The recorder is not tracking this process: say why; the tracking's engine becomes the breakpoint
        engine (on the same clock and table), which hooks the process from now on."""
        announce(f"{self._program_name()}: {why}: using the breakpoint engine.")
        self.stop()
        if self.fall_back is None:
            raise RuntimeError("a forked child's recorder engine cannot fall back")
        self.fall_back()

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
        return trim_stack(pcs, self.recorder_code, self.trimmed)

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
        if self.anchor is None or not self.inferior.pid:
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


def trim_stack(pcs: tuple[int, ...], recorder_code: tuple[int, int],
               trimmed: dict[tuple[int, ...], tuple[int, ...]]) -> tuple[int, ...]:
    """A recorded stack ended at main or a thread's entry, as the breakpoint engine's walk ends it, without the
    recorder's own frames (`recorder_code`: its library's mapped range); cached per stack in `trimmed`."""
    done = trimmed.get(pcs)
    if done is None:
        low, high = recorder_code
        done = tuple(pc for pc in pcs if not low <= pc < high)  # its dlopen hook's frame (attached)
        for i, pc in enumerate(done):
            symbol = minimal_symbol(pc - 1)
            if symbol is not None and symbol[0].split("@")[0] in ROOT_FUNCTIONS:
                done = done[:i + 1]
                break
        trimmed[pcs] = done
    return done
