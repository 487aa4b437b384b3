"""AllocationTable: counters as valgrind's HEAP SUMMARY counts them, heap errors, realloc semantics."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gdb_memleak.core.table import AllocationTable

ALLOC_PCS = (0x401100, 0x401500)
FREE_PCS = (0x401200, 0x401500)
BAD_FREE_PCS = (0x401300, 0x401500)
REALLOC_PCS = (0x401400, 0x401500)


def malloc(table, address, size, pcs=ALLOC_PCS, thread=1, now=0.0):
    return table.on_alloc(address, size, "malloc", thread, pcs, now)


def free(table, address, pcs=FREE_PCS, thread=1, now=0.0):
    return table.on_free(address, "free", thread, pcs, now)


def realloc(table, old, new, size, pcs=REALLOC_PCS):
    return table.on_realloc(old, new, size, "realloc", 1, pcs, 0.0)


def live(table):
    return {block.address: block.size for block in table.live()}


# -- malloc / free ------------------------------------------------------------------------------------------------
def test_alloc_and_free_update_counters():
    table = AllocationTable()
    malloc(table, 0x1000, 10)
    malloc(table, 0x2000, 20)
    assert free(table, 0x1000) is None
    c = table.counters
    assert (c.allocs, c.frees, c.bytes_allocated) == (2, 1, 30)
    assert (c.live_blocks, c.live_bytes) == (1, 20)
    assert live(table) == {0x2000: 20}
    assert table.errors == []


def test_alloc_records_block_details():
    table = AllocationTable()
    block = table.on_alloc(0x1000, 10, "calloc", 7, ALLOC_PCS, 1.5)
    assert table.block_at(0x1000) is block
    assert (block.address, block.size, block.allocator, block.thread, block.time, block.pcs) == (
        0x1000, 10, "calloc", 7, 1.5, ALLOC_PCS)
    assert table.block_at(0x2000) is None


def test_free_null_is_noop_and_not_counted():
    table = AllocationTable()
    malloc(table, 0x1000, 10)
    assert free(table, 0) is None
    assert table.counters.frees == 0
    assert table.counters.untracked_frees == 0
    assert table.errors == []
    assert live(table) == {0x1000: 10}


def test_double_free_keeps_alloc_and_first_free_stacks():
    table = AllocationTable()
    malloc(table, 0x1000, 24, pcs=ALLOC_PCS)
    free(table, 0x1000, pcs=FREE_PCS)
    error = free(table, 0x1000, pcs=BAD_FREE_PCS, thread=3, now=2.0)
    assert error is not None
    assert table.errors == [error]
    assert error.type == "double_free"
    assert error.address == 0x1000
    assert error.pcs == BAD_FREE_PCS
    assert error.alloc_pcs == ALLOC_PCS
    assert error.free_pcs == FREE_PCS
    assert error.block_size == 24
    assert (error.thread, error.time, error.allocator) == (3, 2.0, "free")
    assert table.counters.frees == 2  # valgrind counts the bad free too
    assert (table.counters.live_blocks, table.counters.live_bytes) == (0, 0)


def test_third_free_still_reports_the_first_free_stack():
    table = AllocationTable()
    malloc(table, 0x1000, 8)
    free(table, 0x1000, pcs=FREE_PCS)
    free(table, 0x1000, pcs=BAD_FREE_PCS)
    error = free(table, 0x1000, pcs=(0x999,))
    assert error.type == "double_free" and error.free_pcs == FREE_PCS
    assert table.counters.frees == 3
    assert len(table.errors) == 2


def test_free_of_unknown_pointer_is_invalid_free_when_tracking_complete():
    table = AllocationTable(complete=True)
    error = free(table, 0xdead0, pcs=BAD_FREE_PCS)
    assert error is not None and error.type == "invalid_free"
    assert error.address == 0xdead0 and error.pcs == BAD_FREE_PCS
    assert error.alloc_pcs == () and error.free_pcs == () and error.block_size is None
    assert table.counters.frees == 1
    assert table.counters.untracked_frees == 0
    assert table.errors == [error]


def test_free_of_unknown_pointer_is_untracked_when_tracking_incomplete():
    table = AllocationTable(complete=False)
    assert free(table, 0xdead0) is None
    assert table.errors == []
    assert table.counters.untracked_frees == 1
    assert table.counters.frees == 0


def test_double_free_is_reported_even_when_tracking_incomplete():
    table = AllocationTable(complete=False)
    malloc(table, 0x1000, 8)
    free(table, 0x1000)
    error = free(table, 0x1000)
    assert error is not None and error.type == "double_free"


def test_null_malloc_result_is_failed_alloc_not_block():
    table = AllocationTable()
    assert malloc(table, 0, 100) is None
    c = table.counters
    assert c.failed_allocs == 1
    assert (c.allocs, c.bytes_allocated, c.live_blocks, c.live_bytes) == (0, 0, 0, 0)
    assert table.live() == []


def test_alloc_at_live_address_replaces_stale_block():
    table = AllocationTable()
    malloc(table, 0x1000, 10)
    malloc(table, 0x1000, 30)  # its free went through a path we do not hook
    c = table.counters
    assert live(table) == {0x1000: 30}
    assert (c.allocs, c.bytes_allocated, c.live_blocks, c.live_bytes) == (2, 40, 1, 30)


# -- realloc ------------------------------------------------------------------------------------------------------
def test_realloc_null_counts_one_alloc():
    table = AllocationTable()
    assert realloc(table, 0, 0x1000, 16) is None
    c = table.counters
    assert (c.allocs, c.frees, c.bytes_allocated) == (1, 0, 16)
    assert live(table) == {0x1000: 16}
    assert table.block_at(0x1000).allocator == "realloc"


def test_realloc_counts_one_free_and_one_alloc_when_block_moves():
    table = AllocationTable()
    malloc(table, 0x1000, 10)
    assert realloc(table, 0x1000, 0x2000, 50) is None
    c = table.counters
    assert (c.allocs, c.frees, c.bytes_allocated) == (2, 1, 60)
    assert (c.live_blocks, c.live_bytes) == (1, 50)
    assert live(table) == {0x2000: 50}
    assert table.block_at(0x2000).pcs == REALLOC_PCS


def test_realloc_counts_one_free_and_one_alloc_when_grown_in_place():
    table = AllocationTable()
    malloc(table, 0x1000, 10)
    assert realloc(table, 0x1000, 0x1000, 50) is None
    c = table.counters
    assert (c.allocs, c.frees, c.bytes_allocated) == (2, 1, 60)
    assert (c.live_blocks, c.live_bytes) == (1, 50)
    assert live(table) == {0x1000: 50}
    assert free(table, 0x1000) is None  # the grown block is live, not freed
    assert table.errors == []


def test_realloc_to_zero_returning_null_frees_block():
    table = AllocationTable()
    malloc(table, 0x1000, 10)
    assert realloc(table, 0x1000, 0, 0) is None
    c = table.counters
    assert (c.allocs, c.frees, c.bytes_allocated) == (1, 1, 10)
    assert c.failed_allocs == 0
    assert live(table) == {}
    assert free(table, 0x1000).type == "double_free"


def test_failed_realloc_leaves_old_block_live():
    table = AllocationTable()
    malloc(table, 0x1000, 10)
    assert realloc(table, 0x1000, 0, 1 << 40) is None
    c = table.counters
    assert c.failed_allocs == 1
    assert (c.allocs, c.frees, c.bytes_allocated) == (1, 0, 10)
    assert live(table) == {0x1000: 10}
    assert table.block_at(0x1000).pcs == ALLOC_PCS


def test_realloc_of_freed_pointer_reports_double_free_and_still_records_result():
    table = AllocationTable()
    malloc(table, 0x1000, 10)
    free(table, 0x1000)
    error = realloc(table, 0x1000, 0x2000, 20)
    assert error is not None and error.type == "double_free"
    assert error.pcs == REALLOC_PCS and error.free_pcs == FREE_PCS
    assert live(table) == {0x2000: 20}


# -- bookkeeping --------------------------------------------------------------------------------------------------
def test_seq_numbers_follow_allocation_order_per_table():
    first, second = AllocationTable(), AllocationTable()
    seqs = [malloc(first, 0x1000, 1).seq]
    malloc(first, 0, 1)  # a failed allocation takes no number
    seqs.append(malloc(first, 0x2000, 1).seq)
    realloc(first, 0x1000, 0x3000, 2)
    seqs.append(first.block_at(0x3000).seq)
    assert seqs == [1, 2, 3]
    assert malloc(second, 0x1000, 1).seq == 1


def test_peak_tracks_highest_live_bytes_and_blocks():
    table = AllocationTable()
    malloc(table, 0x1000, 100)
    malloc(table, 0x2000, 50)       # 150 bytes, 2 blocks
    free(table, 0x1000)
    malloc(table, 0x3000, 1)
    malloc(table, 0x4000, 1)        # 52 bytes, 3 blocks
    free(table, 0x2000)
    c = table.counters
    assert (c.peak_bytes, c.peak_blocks) == (150, 3)
    assert (c.live_bytes, c.live_blocks) == (2, 2)


def test_bounded_freed_history_turns_forgotten_double_free_into_invalid_free():
    table = AllocationTable(freed_history=3)
    for address in (0x1000, 0x2000, 0x3000, 0x4000):
        malloc(table, address, 8)
        free(table, address)
    assert list(table.freed) == [0x2000, 0x3000, 0x4000]
    assert free(table, 0x1000).type == "invalid_free"   # forgotten: oldest in history
    assert free(table, 0x2000).type == "double_free"    # still remembered


def test_reused_address_free_is_not_double_free_and_next_double_free_reports_new_block():
    table = AllocationTable()
    malloc(table, 0x1000, 10, pcs=(0xa1,))
    free(table, 0x1000, pcs=(0xf1,))
    malloc(table, 0x1000, 20, pcs=(0xa2,))   # the allocator hands the address out again
    assert free(table, 0x1000, pcs=(0xf2,)) is None
    assert table.errors == []
    error = free(table, 0x1000, pcs=(0xf3,))
    assert error.type == "double_free"
    assert (error.alloc_pcs, error.free_pcs, error.block_size) == ((0xa2,), (0xf2,), 20)


def test_reset_clears_state_and_marks_tracking_incomplete_but_keeps_allocation_numbers():
    table = AllocationTable(complete=True, freed_history=5)
    malloc(table, 0x1000, 10)
    malloc(table, 0x2000, 10)
    free(table, 0x2000)
    free(table, 0x2000)
    table.reset()
    assert table.complete is False
    assert table.freed_history == 5
    assert table.live() == [] and table.errors == [] and len(table.freed) == 0
    assert table.counters.allocs == 0 and table.counters.frees == 0 and table.counters.peak_bytes == 0
    assert free(table, 0x1000) is None  # allocated before the reset: untracked, not an error
    assert table.counters.untracked_frees == 1
    assert malloc(table, 0x3000, 1).seq == 3  # allocations keep their numbers across a reset (break-alloc N)


# -- property test against a reference model ----------------------------------------------------------------------
POOL = (0x1000, 0x2000, 0x3000, 0x4000)


class ReferenceHeap:
    """The counting rules above, written as plainly as possible."""

    def __init__(self, complete):
        self.complete = complete
        self.live = {}
        self.freed = set()
        self.allocs = self.frees = self.bytes_allocated = 0
        self.untracked_frees = self.failed_allocs = 0
        self.peak_bytes = self.peak_blocks = 0
        self.errors = []

    def alloc(self, address, size):
        if address == 0:
            self.failed_allocs += 1
            return
        self.live[address] = size
        self.freed.discard(address)
        self.allocs += 1
        self.bytes_allocated += size
        self.peak_bytes = max(self.peak_bytes, sum(self.live.values()))
        self.peak_blocks = max(self.peak_blocks, len(self.live))

    def free(self, address):
        if address == 0:
            return
        if address in self.live:
            del self.live[address]
            self.freed.add(address)
            self.frees += 1
        elif address in self.freed:
            self.frees += 1
            self.errors.append("double_free")
        elif self.complete:
            self.frees += 1
            self.errors.append("invalid_free")
        else:
            self.untracked_frees += 1

    def realloc(self, old, new, size):
        if old == 0:
            self.alloc(new, size)
        elif new == 0 and size == 0:
            self.free(old)
        elif new == 0:
            self.failed_allocs += 1
        else:
            self.free(old)
            self.alloc(new, size)


addresses = st.sampled_from(POOL)
sizes = st.integers(min_value=0, max_value=64)
operations = st.one_of(
    st.tuples(st.just("malloc"), st.one_of(st.just(0), addresses), sizes),
    st.tuples(st.just("free"), st.one_of(st.just(0), addresses)),
    st.tuples(st.just("realloc"), st.one_of(st.just(0), addresses), st.one_of(st.just(0), addresses), sizes),
)


@settings(max_examples=200, deadline=None)
@given(complete=st.booleans(), ops=st.lists(operations, max_size=40))
def test_table_matches_simple_model(complete, ops):
    table, model = AllocationTable(complete=complete), ReferenceHeap(complete)
    for op in ops:
        if op[0] == "malloc":
            malloc(table, op[1], op[2])
            model.alloc(op[1], op[2])
        elif op[0] == "free":
            free(table, op[1])
            model.free(op[1])
        else:
            realloc(table, op[1], op[2], op[3])
            model.realloc(op[1], op[2], op[3])
        c = table.counters
        assert live(table) == model.live, op
        assert (c.allocs, c.frees, c.bytes_allocated) == (model.allocs, model.frees, model.bytes_allocated), op
        assert (c.live_blocks, c.live_bytes) == (len(model.live), sum(model.live.values())), op
        assert (c.untracked_frees, c.failed_allocs) == (model.untracked_frees, model.failed_allocs), op
        assert (c.peak_blocks, c.peak_bytes) == (model.peak_blocks, model.peak_bytes), op
        assert [e.type for e in table.errors] == model.errors, op
