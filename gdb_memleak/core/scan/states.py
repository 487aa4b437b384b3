"""A block's state in the scan, the leak kind it stands for, and KindArray: the numpy scan's answer (block start ->
kind) as two arrays instead of a dict of a million entries. numpy is imported only where an array is at hand."""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, Mapping, ValuesView
from typing import Any, Literal

from ..kinds import LeakKind

UNREACHED, POSSIBLE, REACHABLE, INDIRECT = 0, 1, 2, 3  # phase 1 only raises a state: UNREACHED < POSSIBLE < REACHABLE


KIND_OF_STATE = (LeakKind.DEFINITE, LeakKind.POSSIBLE, LeakKind.REACHABLE, LeakKind.INDIRECT)


class KindArray(Mapping[int, LeakKind]):
    """Block start -> leak kind as two numpy arrays, read-only: the numpy scan's answer (numpy_scan.py).

    A dict of a million kinds costs ~100 bytes a block and a Python step each to build; these arrays cost 9 (starts
    shared with the scan's input, one state byte each). `starts`: the blocks' starts, int64, ascending (the scan's
    own order); `states`: uint8, an index into KIND_OF_STATE; `sizes`: the scanned sizes (int64, aligned with
    `starts`) when known, for `totals`. Look-ups are binary searches; iteration is in address order.
    """

    __slots__ = ("starts", "states", "sizes", "_start_at", "_state_at", "_count", "_next")
    CHUNK = 1 << 16  # iteration converts the arrays to Python objects this many blocks at a time
    ABSENT = 255  # states_at's answer for an address where no block starts

    def __init__(self, starts: Any, states: Any, sizes: Any = None) -> None:
        if len(starts) != len(states) or (sizes is not None and len(sizes) != len(starts)):
            raise ValueError("starts, states and sizes must have one entry per block")
        self.starts, self.states, self.sizes = starts, states, sizes
        # one element as a Python int, without a numpy scalar each (a look-up costs half as much)
        self._start_at = _flat_view(starts, "q")
        self._state_at = _flat_view(states, "B")
        self._count = len(starts)
        self._next = 0  # the block after the one looked up last: tried first (callers often go in address order)

    def _index(self, address: object) -> int:
        """The index of the block starting at `address`, or -1."""
        i = self._next
        if i < self._count and self._start_at[i] == address:
            self._next = i + 1
            return i
        if not isinstance(address, int) or not 0 <= address < 1 << 63:
            return -1
        i = int(self.starts.searchsorted(address))
        if i < self._count and self._start_at[i] == address:
            self._next = i + 1
            return i
        return -1

    def __getitem__(self, address: int) -> LeakKind:
        i = self._index(address)
        if i < 0:
            raise KeyError(address)
        return KIND_OF_STATE[self._state_at[i]]

    def get(self, address: int, default: Any = None) -> Any:  # Mapping's get would raise and catch a KeyError
        i = self._index(address)
        return KIND_OF_STATE[self._state_at[i]] if i >= 0 else default

    def states_at(self, addresses: Any) -> Any:
        """The state (index into KIND_OF_STATE) of the block starting at each address (an int64 array), ABSENT where
        none starts: many look-ups in one vectorised step."""
        import numpy as np  # present: the arrays were made with it

        addresses = np.asarray(addresses, dtype=np.int64)
        out = np.full(len(addresses), self.ABSENT, np.uint8)
        if not len(self.starts):
            return out
        i = np.minimum(np.searchsorted(self.starts, addresses), len(self.starts) - 1)
        hit = self.starts[i] == addresses
        out[hit] = self.states[i[hit]]
        return out

    def __contains__(self, address: object) -> bool:
        return self._index(address) >= 0

    def __len__(self) -> int:
        return len(self.starts)

    def __iter__(self) -> Iterator[int]:
        for i in range(0, len(self.starts), self.CHUNK):
            yield from self.starts[i:i + self.CHUNK].tolist()

    def _kinds(self) -> Iterator[LeakKind]:
        for i in range(0, len(self.states), self.CHUNK):
            yield from map(KIND_OF_STATE.__getitem__, self.states[i:i + self.CHUNK].tolist())

    def items(self) -> ItemsView[int, LeakKind]:
        return _KindItems(self)

    def values(self) -> ValuesView[LeakKind]:
        return _KindValues(self)

    def __repr__(self) -> str:
        return f"KindArray({len(self)} blocks)"

    def totals(self, sizes: Any = None) -> dict[LeakKind, tuple[int, int]]:
        """kind -> (bytes, blocks), vectorised; `sizes` an array aligned with `starts` (default: the scanned sizes;
        without either, bytes are 0)."""
        import numpy as np  # present: the arrays were made with it

        sizes = self.sizes if sizes is None else sizes
        k = len(KIND_OF_STATE)
        blocks = np.bincount(self.states, minlength=k)
        if sizes is None or not len(sizes):
            amounts = [0] * k
        else:  # bincount's float weights would round totals past 2**53: add up per kind in int64
            amounts = [int(sizes[self.states == state].sum()) if blocks[state] else 0 for state in range(k)]
        return {kind: (amounts[state], int(blocks[state])) for state, kind in enumerate(KIND_OF_STATE)}


def _flat_view(values: Any, code: Literal["q", "B"]) -> Any:
    """`values` (a numpy array of 8-byte signed or 1-byte unsigned integers) as a memoryview of format `code`, whose
    items are Python ints; the array itself when it cannot be viewed so (not contiguous, another type)."""
    try:
        view = memoryview(values)
    except TypeError:
        return values
    formats, size = (("l", "q"), 8) if code == "q" else (("B",), 1)
    if not view.c_contiguous or view.ndim != 1 or view.format not in formats or view.itemsize != size:
        return values
    return view.cast("B").cast(code)


class _KindItems(ItemsView[int, LeakKind]):
    _mapping: KindArray

    def __iter__(self) -> Iterator[tuple[int, LeakKind]]:
        return zip(self._mapping, self._mapping._kinds())


class _KindValues(ValuesView[LeakKind]):
    _mapping: KindArray

    def __iter__(self) -> Iterator[LeakKind]:
        return self._mapping._kinds()

