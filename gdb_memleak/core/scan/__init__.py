"""The reachability scan: valgrind memcheck's leak classification of live heap blocks (see pure.py)."""

from __future__ import annotations

from .pure import (
    DEFAULT_MAX_BLOCK_SCAN,
    KIND_OF_STATE,
    KindArray,
    Memory,
    Referrer,
    RootRegion,
    ScanResult,
    SpanMemory,
    numpy_backend,
    numpy_problem,
    referrers,
    scan,
)

__all__ = ["DEFAULT_MAX_BLOCK_SCAN", "KIND_OF_STATE", "KindArray", "Memory", "Referrer", "RootRegion", "ScanResult",
           "SpanMemory", "numpy_backend", "numpy_problem", "referrers", "scan"]
