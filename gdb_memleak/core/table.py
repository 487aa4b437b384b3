"""The allocation table: address -> live block, plus the counters valgrind prints and the heap errors seen.

Every operation is O(1); freed blocks are remembered (bounded, oldest forgotten first) only to explain double frees.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from typing import Iterable, Iterator

from .kinds import ErrorType
from .liveblocks import BlockDict, BlockSet
from .mappings import MappingTable
from .model import Block, Counters, FreedBlock, HeapError
from .recorded import Recording, ResetMark, forget_before
from .timeline import Timeline

DEFAULT_FREED_HISTORY = 100_000


#: the family of a block found live when tracking started (core/pre_tracking.py): any release matches it
ANY_FAMILY = "any"

class AllocationTable:
    """One process's heap as seen through its allocator calls.

    `complete` says tracking began before the process's first allocation: only then is a free of an unknown pointer
    an invalid free; otherwise (attached or started mid-run) it is counted as untracked.
    """

    def __init__(self, complete: bool = True, freed_history: int = DEFAULT_FREED_HISTORY) -> None:
        self.complete = complete
        # address -> live block (core/liveblocks.py): a dict the events update, or the recorder's columns
        self.blocks: BlockSet = BlockDict()
        self.freed: OrderedDict[int, FreedBlock] = OrderedDict()
        self.freed_history = freed_history
        self.counters = Counters()
        self.timeline = Timeline(self.counters)  # live bytes/blocks over time (HTML report)
        self.errors: list[HeapError] = []
        self._events: set[int] = set()  # the recorder's error numbers among `errors` (add_error)
        self.mappings = MappingTable()  # regions and shared memory, beside the heap (core/mappings.py)
        self._seq = 0
        self.reset_mark: ResetMark | None = None  # the last `memleak reset`: what a recording loaded leaves out
        self._recorded: Counters | None = None  # the counters of the last recording loaded, as the recorder has them
        # why the table may be stale or short (the recorder's table could not be read); None when it is whole
        self.read_error: str | None = None
        self.heap_walked = False  # the blocks live when tracking started on a running process are in (glibc's heap)

    # -- events -------------------------------------------------------------------------------------------------
    def on_alloc(self, address: int, size: int, allocator: str, thread: int, pcs: tuple[int, ...],
                 now: float, family: str = "malloc") -> Block | None:
        """Record a block the allocator returned; a NULL result is a failed allocation, not a block."""
        c = self.counters
        if address == 0:
            c.failed_allocs += 1
            return None
        stale = self._editable().pop(address, None)
        if stale is not None:  # its free was never seen (e.g. released by a path we do not hook)
            c.live_blocks -= 1
            c.live_bytes -= stale.size
        self.freed.pop(address, None)
        self._seq += 1
        block = Block(address, size, allocator, thread, self._seq, now, pcs, family)
        self._editable()[address] = block
        c.allocs += 1
        c.bytes_allocated += size
        c.live_blocks += 1
        c.live_bytes += size
        if c.live_bytes > c.peak_bytes:
            c.peak_bytes = c.live_bytes
        if c.live_blocks > c.peak_blocks:
            c.peak_blocks = c.live_blocks
        self.timeline.tick(now)
        return block

    def on_free(self, address: int, allocator: str, thread: int, pcs: tuple[int, ...],
                now: float, family: str = "malloc") -> HeapError | None:
        """Release a block; returns the heap error when the pointer was not live (or is released by the wrong
        family: the block is still released, as valgrind does). free(NULL) is a no-op."""
        if address == 0:
            return None
        c = self.counters
        block = self._editable().pop(address, None)
        if block is not None:
            c.frees += 1
            c.live_blocks -= 1
            c.live_bytes -= block.size
            self.timeline.tick(now)
            self.freed[address] = FreedBlock(block, pcs, thread, now)
            if len(self.freed) > self.freed_history:
                self.freed.popitem(last=False)
            if block.family in (family, ANY_FAMILY):
                return None
            error = HeapError(ErrorType.MISMATCHED_FREE, address, thread, now, pcs, allocator, alloc_pcs=block.pcs,
                              block_size=block.size, alloc_allocator=block.allocator)
            self.errors.append(error)
            return error
        previous = self.freed.get(address)
        if previous is not None:
            c.frees += 1  # valgrind counts the bad free too
            error = HeapError(ErrorType.DOUBLE_FREE, address, thread, now, pcs, allocator,
                              alloc_pcs=previous.block.pcs, free_pcs=previous.free_pcs,
                              block_size=previous.block.size, alloc_allocator=previous.block.allocator)
        elif self.complete:
            c.frees += 1
            error = HeapError(ErrorType.INVALID_FREE, address, thread, now, pcs, allocator)
        else:
            c.untracked_frees += 1
            return None
        self.errors.append(error)
        return error

    def add_error(self, error: HeapError) -> bool:
        """Keep an error found outside the table (the recorder's), once per event: GDB can present one breakpoint
        hit twice (a forked child's, under load), and both presentations carry the recorder's same error number.
        Returns whether it was new."""
        if self.knows_event(error.event):
            return False
        self.errors.append(error)
        if error.event:
            self._events.add(error.event)
        return True

    def knows_event(self, event: int) -> bool:
        """Whether the recorder's error number `event` is recorded already (0: not a recorder's error)."""
        return bool(event) and event in self._events

    def withdraw(self, address: int) -> Block | None:
        """Forget a live block as if it had never been allocated (its allocation uncounted, its number given back
        when it was the last): a nested call's block that the outer allocator call returns as its own."""
        block = self._editable().pop(address, None)
        if block is None:
            return None
        c = self.counters
        c.allocs -= 1
        c.bytes_allocated -= block.size
        c.live_blocks -= 1
        c.live_bytes -= block.size
        if block.seq == self._seq:
            self._seq -= 1
        return block

    def on_skipped_realloc(self, size: int) -> None:
        """An invalid realloc not performed (on-error skip) returns NULL; valgrind, which never performs it either,
        still counts the allocation it was asked for (its bad free is counted by `on_free`)."""
        self.counters.allocs += 1
        self.counters.bytes_allocated += size

    def on_realloc(self, old: int, new: int, size: int, allocator: str, thread: int, pcs: tuple[int, ...],
                   now: float) -> HeapError | None:
        """realloc = free of `old` + allocation of `new`, as valgrind counts it.

        realloc(NULL, n) is an allocation; realloc(p, 0) returning NULL freed p (glibc); any other NULL result is a
        failure that leaves `old` live.
        """
        if old == 0:
            self.on_alloc(new, size, allocator, thread, pcs, now)
            return None
        if new == 0:
            if size == 0:
                return self.on_free(old, allocator, thread, pcs, now)
            self.counters.failed_allocs += 1
            return None
        error = self.on_free(old, allocator, thread, pcs, now)
        self.on_alloc(new, size, allocator, thread, pcs, now)
        return error

    def fork(self) -> "AllocationTable":
        """The table of a forked child: every live block, counter and sequence number as they are now; heap errors
        are each process's own."""
        child = AllocationTable(self.complete, self.freed_history)
        child.blocks = self.blocks.copy()
        child.freed = OrderedDict(self.freed)
        child.counters = replace(self.counters)
        child.timeline = self.timeline.fork(child.counters)
        child._seq = self._seq
        child.reset_mark = self.reset_mark  # the child's copy of the recorder holds the blocks before it too
        child._recorded = self._recorded
        child.mappings = self.mappings.fork()
        child.heap_walked = self.heap_walked
        return child

    def reset(self, now: float = 0.0) -> None:
        """Forget everything (`memleak reset`, at `now` seconds): later frees of blocks allocated before are
        untracked. Allocations keep their numbers (they number the program's calls: `memleak break-alloc N` means
        the same call). A recording loaded later leaves out what came before (`load_recorded`)."""
        seq, recorded = self._seq, self._recorded
        mark = ResetMark(seq, replace(recorded or self.counters), now)
        self.__dict__.update(vars(AllocationTable(complete=False, freed_history=self.freed_history)))
        self._seq, self._recorded = seq, recorded
        self.reset_mark = mark

    def load_recorded(self, recording: Recording) -> None:
        """Take the recorder's table as read (it numbers and counts allocations itself), less what came before the
        last `memleak reset`, as the breakpoint engine's cleared table never saw it."""
        self._recorded = recording.counters
        if self.reset_mark is not None:
            recording = forget_before(recording, self.reset_mark)
            self.complete = False
        self.blocks = recording.blocks
        self.freed = OrderedDict((f.block.address, f) for f in recording.freed)
        self.counters = recording.counters
        self.timeline.replay(recording.counters, recording.points, recording.now, recording.high_bytes,
                             recording.high_blocks)
        self._seq = recording.last_seq
        self.read_error = None

    def _editable(self) -> BlockDict:
        """The blocks as a dict an event may change (columns read from the recorder become one: rare, small)."""
        self.blocks = editable = self.blocks.editable()
        return editable

    # -- queries ------------------------------------------------------------------------------------------------
    @property
    def last_seq(self) -> int:
        """Sequence number of the latest allocation (0 before the first)."""
        return self._seq

    def live(self) -> list[Block]:
        """Every live block as an object (a listing of each block; counts and groups use the columns)."""
        return list(self.blocks.blocks())

    def in_allocation_order(self) -> Iterator[Block]:
        """Every live block, oldest allocation first (a listing of each block: columns are not all made at once)."""
        return self.blocks.in_allocation_order()

    def block_at(self, address: int) -> Block | None:
        return self.blocks.get(address)

    def block_containing(self, address: int) -> Block | None:
        """The live block whose bytes hold `address` (its start or inside)."""
        return self.blocks.containing(address)

    def stacks(self) -> Iterable[tuple[int, ...]]:
        """Each distinct allocation stack of the live blocks (what a report symbolizes), once."""
        return self.blocks.stacks()
