"""Errors found outside the table (the recorder's) are kept once per event number."""

from __future__ import annotations

from gdb_memleak.core.kinds import ErrorType
from gdb_memleak.core.model import HeapError
from gdb_memleak.core.table import AllocationTable


def _error(event: int) -> HeapError:
    return HeapError(ErrorType.DOUBLE_FREE, 0x1000, 1, 0.0, (0x401000,), "free", event=event)


def test_a_recorder_error_is_kept_once_per_event_number():
    table = AllocationTable()
    assert table.add_error(_error(1)) and table.add_error(_error(2))
    assert not table.add_error(_error(1))  # the same event presented again
    assert [e.event for e in table.errors] == [1, 2]
    assert table.knows_event(2) and not table.knows_event(3)


def test_errors_without_an_event_number_are_each_kept():
    table = AllocationTable()
    assert table.add_error(_error(0)) and table.add_error(_error(0))
    assert len(table.errors) == 2 and not table.knows_event(0)
