"""The numpy scan's array-shaped input and output: kinds as a KindArray, blocks given as prepared arrays."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest

from gdb_memleak.core.kinds import LeakKind as Kind
from gdb_memleak.core.scan import KIND_OF_STATE, KindArray, RootRegion, scan
from gdb_memleak.core.scan import backend as backends

np = pytest.importorskip("numpy")
fast = backends.numpy_backend()[0]
pytestmark = pytest.mark.skipif(fast is None, reason="numpy cannot serve this Python")

HEAP = 0x5555_5555_9000
DATA = 0x5555_5555_8000


@pytest.fixture(autouse=True)
def numpy_backend(monkeypatch):
    monkeypatch.setattr(backends, "BACKEND", "numpy")


class FlatMemory:
    def __init__(self, regions: dict[int, bytes]) -> None:
        self.regions = regions

    def read(self, address: int, size: int) -> bytes:
        for start, data in self.regions.items():
            if start <= address < start + len(data):
                return data[address - start:address - start + size]
        return b""


class LookupOnly(Mapping[int, int]):
    """A blocks mapping as the recorder's columnar table gives it: looked up, never to be iterated."""

    def __init__(self, blocks: dict[int, int]) -> None:
        self.blocks = blocks
        self.lookups = 0

    def __getitem__(self, address: int) -> int:
        self.lookups += 1
        return self.blocks[address]

    def __iter__(self) -> Iterator[int]:
        raise AssertionError("the blocks were iterated")

    def __len__(self) -> int:
        raise AssertionError("the blocks were counted")


def words(*values: int) -> bytes:
    return b"".join(v.to_bytes(8, "little") for v in values)


def every_kind() -> tuple[dict[int, int], FlatMemory, list[RootRegion], dict[str, int]]:
    """A heap with one block of each kind: kept (reachable), maybe (possible), head (definite) -> child (indirect)."""
    kept, maybe, child, head = HEAP, HEAP + 0x40, HEAP + 0x80, HEAP + 0xC0
    contents = {kept: words(1, 2), maybe: words(3, 4, 5), child: words(6), head: words(child, 0, 0, 0)}
    blocks = {kept: 10, maybe: 24, child: 8, head: 32}
    memory = FlatMemory({**contents, DATA: words(kept, maybe + 8)})
    return blocks, memory, [RootRegion(DATA, DATA + 16, "data")], dict(kept=kept, maybe=maybe, child=child, head=head)


def test_numpy_scan_returns_kinds_as_arrays_equal_to_the_pure_scans_dict(monkeypatch):
    blocks, memory, roots, at = every_kind()
    result = scan(blocks, memory, roots)
    kinds = result.kinds
    assert isinstance(kinds, KindArray)
    assert kinds.starts.dtype == np.int64 and kinds.states.dtype == np.uint8
    assert kinds.starts.tolist() == sorted(blocks)
    assert [KIND_OF_STATE[s] for s in kinds.states.tolist()] == [Kind.REACHABLE, Kind.POSSIBLE, Kind.INDIRECT,
                                                                  Kind.DEFINITE]
    monkeypatch.setattr(backends, "BACKEND", "python")
    pure = scan(blocks, memory, roots)
    assert isinstance(pure.kinds, dict)
    assert kinds == pure.kinds and pure.kinds == kinds
    assert dict(kinds) == pure.kinds and list(kinds.items()) == sorted(pure.kinds.items())
    assert result.leader == pure.leader == {at["child"]: at["head"]}


def test_kind_array_looks_up_by_block_start_only():
    blocks, memory, roots, at = every_kind()
    kinds = scan(blocks, memory, roots).kinds
    assert len(kinds) == 4 and list(kinds) == sorted(blocks)
    assert kinds[at["maybe"]] is Kind.POSSIBLE and kinds.get(at["head"]) is Kind.DEFINITE
    assert at["kept"] in kinds and at["kept"] + 8 not in kinds and "x" not in kinds and -1 not in kinds
    assert kinds.get(at["kept"] + 8, "none") == "none" and kinds.get(1 << 64) is None
    with pytest.raises(KeyError):
        kinds[HEAP - 16]
    assert list(kinds.values()) == [Kind.REACHABLE, Kind.POSSIBLE, Kind.INDIRECT, Kind.DEFINITE]
    states = kinds.states_at([at["head"], at["head"] + 1, 0, at["kept"]]).tolist()
    assert states == [KIND_OF_STATE.index(Kind.DEFINITE), KindArray.ABSENT, KindArray.ABSENT,
                      KIND_OF_STATE.index(Kind.REACHABLE)]


def test_kind_array_iterates_in_chunks_in_address_order(monkeypatch):
    monkeypatch.setattr(KindArray, "CHUNK", 3)
    starts = np.arange(10, dtype=np.int64) * 32 + HEAP
    kinds = KindArray(starts, np.arange(10, dtype=np.uint8) % 4)
    assert list(kinds) == starts.tolist()
    assert list(kinds.values()) == [KIND_OF_STATE[i % 4] for i in range(10)]
    assert kinds.get(int(starts[7])) is KIND_OF_STATE[3]
    expected = dict(zip(starts.tolist(), kinds.values()))
    for order in (starts.tolist(), starts.tolist()[::-1], [int(starts[i]) for i in (3, 4, 4, 9, 0, 1, 5)]):
        assert [kinds.get(a) for a in order] == [expected[a] for a in order]  # in address order or not
        assert [kinds.get(a + 8) for a in order] == [None] * len(order)
    strided = KindArray(starts[::2], (np.arange(10, dtype=np.uint8) % 4)[::2])  # not contiguous: still looked up
    assert strided.get(int(starts[4])) is KIND_OF_STATE[0] and int(starts[3]) not in strided


def test_summary_of_a_kind_array_is_vectorised_and_equals_the_pure_summary(monkeypatch):
    blocks, memory, roots, _at = every_kind()
    result = scan(blocks, memory, roots)
    expected = {"definite": {"bytes": 32, "blocks": 1}, "indirect": {"bytes": 8, "blocks": 1},
                "possible": {"bytes": 24, "blocks": 1}, "reachable": {"bytes": 10, "blocks": 1}}
    assert result.summary() == expected  # the sizes the scan kept: no step per block
    assert result.summary(blocks) == expected
    monkeypatch.setattr(KindArray, "items", lambda self: pytest.fail("summary walked the blocks"))
    assert result.summary() == expected
    monkeypatch.setattr(backends, "BACKEND", "python")
    assert scan(blocks, memory, roots).summary(blocks) == expected


def test_prepared_arrays_are_scanned_without_iterating_the_blocks():
    blocks, memory, roots, at = every_kind()
    starts = np.array(sorted(blocks), dtype=np.int64)
    arrays = fast.Blocks(starts, np.array([blocks[a] for a in starts.tolist()], dtype=np.int64), in_order=True)
    lookup = LookupOnly(blocks)
    result = scan(lookup, memory, roots, prepared=arrays, watch=at["child"])
    expected = scan(blocks, memory, roots, watch=at["child"])
    assert result.kinds == expected.kinds and result.leader == expected.leader
    assert result.referrers == expected.referrers and len(result.referrers) == 1
    assert (result.scanned_bytes, result.unreadable_bytes) == (expected.scanned_bytes, expected.unreadable_bytes)
    assert result.kinds.starts is starts  # the caller's own array, not a copy
    assert scan(lookup, memory, roots, prepared=arrays, watch=at["child"] + 8).referrers == []


def test_prepared_empty_arrays_give_an_empty_result():
    empty = fast.Blocks(np.zeros(0, np.int64), np.zeros(0, np.int64), in_order=True)
    result = scan(LookupOnly({}), FlatMemory({DATA: words(HEAP)}), [RootRegion(DATA, DATA + 8, "data")],
                  prepared=empty)
    assert isinstance(result.kinds, KindArray) and len(result.kinds) == 0 and result.kinds == {}
    assert (result.leader, result.scanned_bytes, result.unreadable_bytes) == ({}, 0, 0)
    assert result.summary() == {k: {"bytes": 0, "blocks": 0} for k in ("definite", "indirect", "possible",
                                                                        "reachable")}
