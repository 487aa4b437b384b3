"""One process run being tracked: its table and report, its engine, and what happens at its end.

A `Tracking` is the `EngineEvents` its engine calls back (exit, exec, heap error, break-alloc), and the one place
that ends a tracking (`finish`): at exit, at exec (the replaced image), and at the end of an attach window.
It is kept after the process ended so `leaks` works until the next `run`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import gdb

from ..core.abi import Abi
from ..core.kinds import OnError, effective_action
from ..core.mappings import read_sysvipc
from ..core.model import Block, HeapError, ProcessResult
from ..core.procmaps import Mapping
from ..core.procstat import parent_in_vfork
from ..core.report import ProcessReport
from ..core.reports.text import render_error, render_report
from ..core.scan import ScanResult
from ..core.symbols import Symbolizer, SystemFilter
from ..core.table import AllocationTable
from . import addressinfo, bad_call, settings
from .access import RegisterReader
from .engine import Clock, Engine
from .heapscan import HeapScan
from .image import LiveImage, ProcessImage
from .log import log
from .numpy_guard import give_back_free_memory
from .symbolize import GdbResolver

if TYPE_CHECKING:
    from .session import Session

EngineFactory = Callable[["Tracking"], Engine]


class Tracking:
    """Implements `EngineEvents` for its engine; `session` gives the output stream and the user's choices."""

    def __init__(self, session: Session, inferior: gdb.Inferior, table: AllocationTable, argv: list[str],
                 abi: Abi, make_engine: EngineFactory, clock: Clock,
                 shares_memory_with: Tracking | None = None, image: ProcessImage | None = None) -> None:
        self.session = session
        self.inferior_num = inferior.num
        self.abi = abi
        self.image: ProcessImage = image if image is not None else LiveImage(inferior)  # or a core file's
        self.maps: list[Mapping] = []
        self.report = ProcessReport(ProcessResult(pid=inferior.pid, argv=argv), table,
                                    Symbolizer(GdbResolver(self.maps)), SystemFilter(settings.system_objects.value),
                                    suppression_source=settings.active_suppressions)
        self.regs = RegisterReader(abi)
        self.reported = False
        self.finished = False
        self.last_scan: ScanResult | None = None
        self.exec_pending = False      # execve() was called; the next image load replaces this one
        self.ended_at: float | None = None
        # a vfork child runs in its parent's memory until it execs or exits: it records into the parent's table
        # and is not a process of its own for the report
        self.shares_memory_with = shares_memory_with
        self.clock = clock  # a forked child's is its parent's: its table holds the parent's times
        self.engine: Engine = make_engine(self)

    @property
    def pid(self) -> int:
        return self.report.result.pid

    @property
    def table(self) -> AllocationTable:
        return self.report.table

    @property
    def alive(self) -> bool:
        """The process is running (or stopped) under GDB and this tracking still follows it."""
        inferior = self.engine.inferior
        return not self.finished and inferior.is_valid() and bool(self.pid) and inferior.pid == self.pid

    # -- EngineEvents -------------------------------------------------------------------------------------------
    @property
    def break_alloc(self) -> int | None:
        return self.session.break_alloc

    def exiting(self) -> bool:
        """`_exit`: classify the blocks while the memory is intact (a vfork child's heap is its parent's).

        In the batch CLI (`session.end_at_exit`) the process then stops here and is let go (detached) once its
        report is made, so GDB never handles its exit: GDB 13 presents an inferior's exit by stopping every process,
        and waits forever for a shell blocked in its next vfork (the child it waits for is one GDB stopped). A
        vfork child never stops here: its parent is blocked until it is gone. There the scan waits for that stop:
        inside stop() GDB has not stopped the other threads yet, and a running thread's registers (its stack pointer:
        where its stack's roots start) cannot be read."""
        if self.shares_memory_with is not None:
            return False
        if not self.session.end_at_exit or parent_in_vfork(self.pid):
            self.scan(exiting=True)
            return False
        status = int(gdb.selected_frame().read_register(self.regs.abi.arg_registers[0])) & 0xFF
        self.session.at_exit[self.pid] = (self, status, gdb.selected_thread())
        return True

    def exec_called(self) -> None:
        """execve() is about to replace the image: classify and symbolize its blocks while they still exist."""
        self.exec_pending = True  # if it fails the program goes on; the scan is then just an early one
        if self.shares_memory_with is not None:
            return
        self.refresh_maps()
        self.scan()
        self.report.warm()

    def heap_error(self, error: HeapError) -> OnError:
        """Print the error now (from stop()); returns what happens to the call. One a suppression hides is not
        printed and never stops the program: the call is skipped as valgrind skips it (unless `memleak on-error
        report` lets bad calls happen)."""
        addressinfo.annotate(error, self.table, self.engine.inferior, self.regs)  # verdicts: what the pointer is
        if self.report.error_suppression(error) is not None:
            report = OnError(settings.on_error.value) is OnError.REPORT
            return effective_action(OnError.REPORT if report else OnError.SKIP, error.type)
        out = self.session.out()
        out.write("\ngdb-memleak: ")
        render_error(self.report, error, out)
        action = effective_action(OnError(settings.on_error.value), error.type)
        if action is OnError.SKIP:
            out.write(" The call was skipped (memleak on-error skip): the program runs on.\n")
        elif action is OnError.STOP and bad_call.skippable(error):
            out.write(" Stopped before the call: `memleak skip` makes it return without freeing, as valgrind does;\n"
                      " `continue` alone lets it happen (glibc may abort the program).\n")
        return action

    def allocation_break(self, block: Block) -> None:
        self.session.out().write(f"\ngdb-memleak: allocation #{block.seq} made: {block.size:,} bytes at "
                                 f"0x{block.address:x} by {block.allocator} (memleak break-alloc)\n")

    def say(self, line: str) -> None:
        out = self.session.out()
        out.write(f"gdb-memleak: {line}\n")
        out.flush()

    # -- state --------------------------------------------------------------------------------------------------
    def state(self) -> str:
        """Where the tracking stands, for `memleak status`."""
        result = self.report.result
        if self.finished:
            return "ended"
        if result.core_file:
            return f"as its core file {result.core_file} holds it" + (f" ({result.signal})" if result.signal else "")
        if result.signal:
            return f"reported at {result.signal} (the process has not ended yet)"
        return f"tracking ({self.engine.name} engine)" if self.engine.active else "not tracking"

    def refresh_maps(self) -> None:
        try:
            self.maps[:] = self.image.maps()
        except OSError:
            log.debug("process %d: maps not readable", self.pid, exc_info=True)

    def now(self) -> float:
        """Seconds since tracking began (block times use the same clock); frozen when the process ended."""
        if self.ended_at is not None:
            return self.ended_at
        return self.clock.now()

    def heap_scan(self, exiting: bool = False) -> HeapScan | None:
        """A scan of the process's memory as it is now (None when the process is gone); the caller closes it."""
        if not self.alive:
            return None
        self.engine.sync()
        sizes, arrays = self.table.blocks.scan_input()  # the recorder's columns: their arrays as they are
        return HeapScan(self.engine.inferior, sizes, self.regs, glibc=self.engine.glibc_malloc, exiting=exiting,
                        hidden=self.engine.hidden_memory(), arrays=arrays,
                        heuristics=settings.enabled_heuristics(), image=self.image)

    def scan(self, exiting: bool = False, watch: int | None = None) -> ScanResult | None:
        """Classify every live block (valgrind's leak kinds); with `watch` (a block's start), also find who points
        into that block in the same pass."""
        heap = self.heap_scan(exiting)
        if heap is None:
            return None
        give_back_free_memory()  # the table read's garbage is not the scan's peak
        try:
            result = heap.run(watch)
        finally:
            heap.close()
        give_back_free_memory()
        # verdicts: each block's kind, indirect blocks -> their definite leader, blocks a heuristic reached
        self.report.classify(result.kinds, result.leader, result.heuristics)
        self.last_scan = result
        log.debug("process %d: scan of %d blocks read %d bytes", self.pid, len(result.kinds), result.scanned_bytes)
        return result

    def checkpoint(self) -> None:
        """A report, check or snapshot now: a growth sample of every allocation stack, and the loss records become
        the baseline of the next report's deltas (core/report.py ProcessReport.checkpoint; the table as last read)."""
        self.report.checkpoint(self.now())

    # -- the end ------------------------------------------------------------------------------------------------
    def conclude(self) -> None:
        """Symbolize what the report needs and print it once (also at a fatal signal, before the process dies); the
        end is a checkpoint too, so the report's GROWING section has its last sample. After an exec the old image's
        memory is gone: its table is as read at the exec call."""
        if not self.exec_pending:
            self.engine.sync()
        self.settle_shared_memory()
        self.report.warm()
        if self.shares_memory_with is None:  # a vfork child's table is its parent's
            self.checkpoint()
        session = self.session
        if not self.reported and settings.report_at_exit.value and self.shares_memory_with is None:
            render_report(self.report, session.out(), session.report_options())
        self.reported = True

    def settle_shared_memory(self) -> None:
        """Segments another process removed and objects it unlinked are not this one's to report: ask the
        system (/proc/sysvipc/shm, /dev/shm) before a report."""
        self.table.mappings.settle(read_sysvipc())

    def finish(self) -> None:
        """End this tracking: hooks out, clock frozen, report printed once, kept for `leaks` (a vfork child's
        table is its parent's: nothing of its own to keep)."""
        if self.finished:
            return
        self.engine.stop()
        self.ended_at = self.now()
        self.conclude()
        self.finished = True
        if self.shares_memory_with is None:
            self.session.ended.append(self)

