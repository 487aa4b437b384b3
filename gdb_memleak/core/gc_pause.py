"""Python's cyclic garbage collector paused while a report builds many small objects that form no cycles.

Each collection walks every tracked object: with a large table's groups, frames and JSON-ready lists alive, the
passes the collector triggers while tens of thousands of tuples are made cost more than making them (measured:
3/4 of the loss records a checkpoint keeps for 20,000 stacks; a third of an HTML page's build).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
