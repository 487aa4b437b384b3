"""The recorder's memory layout as the reader sees it, on synthetic bytes (no process, no GDB)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from gdb_memleak.core import agent_format as fmt
from gdb_memleak.core.kinds import ErrorType

ROOT = Path(__file__).resolve().parents[2]


def _region(slots: list[tuple], stacks: list[tuple[int, ...]], errors: list[tuple] = ()) -> tuple[bytes, dict]:
    """A region with one shard whose records are `slots`, a pool holding `stacks` (ids returned) and an error ring."""
    names = b"malloc\x000\x00new\x001\x00delete\x001\x00"
    shards_off, names_off, slots_off, errors_off, pool_off = 4096, 4096 + 128, 8192, 16384, 32768
    pool = [0]
    ids = {}
    for pcs in stacks:
        ids[pcs] = len(pool)
        pool += [len(pcs), *pcs]
    blocks = [s for s in slots if s[0]]
    values = dict.fromkeys(fmt.HEADER_FIELDS, 0)
    values.update(magic=fmt.MAGIC, version=fmt.VERSION, header_size=fmt.HEADER.size, region_size=1 << 20,
                  nshards=1, shards_off=shards_off, shard_size=fmt.SHARD.size, record_size=fmt.SLOT.size,
                  pool_off=pool_off, pool_capacity_words=1000, pool_used_words=len(pool), errors_off=errors_off,
                  errors_capacity=4, error_size=fmt.ERROR.size, error_count=len(errors), names_off=names_off,
                  names_size=len(names), allocator_count=3, seq=len(blocks), live_blocks=sum(s[7] == 1 for s in slots),
                  live_bytes=sum(s[1] for s in slots if s[7] == 1), start_ns=1_000_000_000,
                  records_off=slots_off, records_capacity=64, records_used=len(slots))
    data = bytearray(64 << 10)
    data[0:fmt.HEADER.size] = fmt.HEADER.pack(*values.values())
    data[shards_off:shards_off + fmt.SHARD.size] = fmt.SHARD.pack(0, 0, 0, 8, len(blocks), len(blocks), 1,
                                                                  sum(s[1] for s in slots), 0, 0)
    for i, slot in enumerate(slots):
        data[slots_off + i * 64:slots_off + (i + 1) * 64] = fmt.SLOT.pack(*slot)
    data[names_off:names_off + len(names)] = names
    for i, error in enumerate(errors):
        data[errors_off + i * 128:errors_off + (i + 1) * 128] = fmt.ERROR.pack(*error)
    data[pool_off:pool_off + 8 * len(pool)] = struct.pack(f"<{len(pool)}Q", *pool)
    return bytes(data), ids


def _reader(data: bytes, base: int = 0x10000):
    return lambda address, size: data[address - base:address - base + size]


def test_live_blocks_come_out_in_allocation_order_with_their_stacks_and_families():
    stack_a, stack_b = (0x401234, 0x401500), (0x402000,)
    data, ids = _region([], [stack_a, stack_b])
    slots = [(0x5000, 24, 2, 1_500_000_000, ids[stack_b], 7, 1, 1, 0, 0, 0),
             (0x6000, 10, 1, 1_200_000_000, ids[stack_a], 7, 0, 1, 0, 0, 0),
             (0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0),  # a free record (its seq links the free list): nothing
             (0x7000, 99, 3, 1_300_000_000, ids[stack_a], 7, 0, 2, ids[stack_b], 0, 7)]  # freed: not live
    data, ids = _region(slots, [stack_a, stack_b])
    snapshot = fmt.read_snapshot(_reader(data), 0x10000)
    blocks = list(snapshot.blocks())
    assert [(b.address, b.size, b.allocator, b.family, b.pcs) for b in blocks] == [
        (0x6000, 10, "malloc", "malloc", stack_a), (0x5000, 24, "new", "new", stack_b)]
    assert blocks[0].time == pytest.approx(0.2)
    c = snapshot.counters()
    assert (c.allocs, c.frees, c.live_blocks, c.live_bytes) == (3, 1, 2, 34)
    assert snapshot.sizes() == {0x6000: 10, 0x5000: 24}
    assert sorted(snapshot.stack(i) for i in snapshot.stack_ids()) == sorted([stack_a, stack_b])


def test_errors_carry_the_stacks_their_type_needs():
    bad, freed, alloc = (0x401111,), (0x402222, 0x1), (0x403333,)
    _data, ids = _region([], [bad, freed, alloc])
    unknown = fmt.UNKNOWN
    errors = [(1, 0x5000, 7, 1_000_000_000, ids[bad], 0, ids[alloc], ids[freed], 40, unknown, 1, 1),
              (3, 0x6000, 7, 1_000_000_000, ids[bad], 2, ids[alloc], 0, 8, 0, 0, 2),
              (2, 0x7000, 7, 1_000_000_000, ids[bad], 0, 0, 0, unknown, unknown, 0, 3)]
    data, ids = _region([], [bad, freed, alloc], errors)
    double, mismatched, invalid = fmt.read_snapshot(_reader(data), 0x10000).errors()
    assert (double.type, double.pcs, double.free_pcs, double.alloc_pcs, double.block_size) == \
        (ErrorType.DOUBLE_FREE, bad, freed, alloc, 40)
    assert (mismatched.type, mismatched.allocator, mismatched.alloc_allocator, mismatched.free_pcs) == \
        (ErrorType.MISMATCHED_FREE, "delete", "malloc", ())
    assert (invalid.type, invalid.alloc_pcs, invalid.block_size) == (ErrorType.INVALID_FREE, (), None)


def test_memory_that_is_not_a_recorder_region_is_one_clear_error():
    with pytest.raises(fmt.AgentFormatError, match="^gdb-memleak: no recorder header"):
        fmt.read_snapshot(lambda address, size: bytes(size), 0x1000)


def test_only_executables_with_an_interpreter_can_take_a_preload(tmp_path: Path):
    assert fmt.is_dynamic("/bin/sh")
    static = ROOT / "c_targets" / "bin" / "shapes_static"
    if static.exists():
        assert not fmt.is_dynamic(str(static))
    (tmp_path / "text").write_text("not an ELF file")
    assert not fmt.is_dynamic(str(tmp_path / "text"))

