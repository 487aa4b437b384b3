"""The two implementations of the reachability scan, for the unit tests: a test taking the `backend` fixture (or a
module marked `pytest.mark.usefixtures("backend")`) runs once on the pure-Python scan (core/scan/pure.py) and once on
the numpy scan (core/scan/numpy_scan.py), so that a change breaking either fails a test.
tests/unit/test_scan_backends.py checks that every scan test module does so."""

from __future__ import annotations

import contextlib
from unittest.mock import patch

import pytest

from gdb_memleak.core.scan import backend as backends

BACKENDS = ("python", "numpy")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The scan implementation this run of the test uses (the ids carry its name)."""
    if request.param == "numpy" and backends.numpy_backend()[0] is None:
        pytest.skip("numpy cannot be imported by this Python")
    monkeypatch.setattr(backends, "BACKEND", request.param)
    return request.param


def small_steps(backend: str) -> contextlib.AbstractContextManager:
    """The numpy scan with tiny thresholds, so that small heaps go through its wide (numpy) closure steps, split
    spans and gaps too; nothing for the pure scan."""
    if backend != "numpy":
        return contextlib.nullcontext()
    from gdb_memleak.core.scan import numpy_graph, numpy_heap

    stack = contextlib.ExitStack()
    stack.enter_context(patch.object(numpy_graph, "WIDE", 2))
    stack.enter_context(patch.object(numpy_heap, "SPAN_BYTES", 40))
    stack.enter_context(patch.object(numpy_heap, "MAX_GAP", 16))
    return stack
