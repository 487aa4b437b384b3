"""numpy in GDB's process without threads that could take GDB's signals (no `gdb` import: installed by the loader
before anything can import numpy).

numpy's BLAS starts worker threads when numpy is imported. A thread of GDB's process that can take SIGCHLD steals
the wake-ups GDB waits for, and GDB then hangs waiting for the program (seen with a shell's vfork child). numpy is
imported on first use (the scan, the recorder's reader), not at load (~0.1 s and ~13 MB a session may never need),
so wherever that happens: the BLAS libraries are told to start no thread (their settings in GDB's own environment,
read when they load; the programs GDB starts get the environment GDB itself started with), and numpy's package
initialisation, which loads the BLAS library, runs with every signal blocked in GDB's thread (GDB 13 has no
`gdb.block_signals`), so a thread it would start anyway inherits that mask.
"""

from __future__ import annotations

import ctypes
import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from .signal_mask import signals_blocked

#: thread-count settings of the BLAS libraries numpy may be built with (OpenBLAS, OpenMP builds, MKL, BLIS)
BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


M_MMAP_THRESHOLD = -3  # mallopt(3) parameter of glibc's malloc.h


def install() -> None:
    """Once per GDB session, before numpy is imported."""
    for name in BLAS_THREADS:
        os.environ[name] = "1"
    fixed_mmap_threshold()
    if not any(isinstance(finder, SignalsBlockedImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, SignalsBlockedImport())


class SignalsBlockedImport(importlib.abc.MetaPathFinder):
    """Finds numpy as the path finder does; its package initialisation runs with all signals blocked."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "numpy":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is not None and isinstance(spec.loader, importlib.abc.Loader):
            spec.loader = MaskedLoader(spec.loader)
        return spec


class MaskedLoader(importlib.abc.Loader):
    """The path finder's loader, its `exec_module` run with every signal blocked; anything else is the loader's."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with signals_blocked():
            self.loader.exec_module(module)


def fixed_mmap_threshold(size: int = 8 << 20) -> None:
    """GDB's own malloc (this process, not the program's): every block over `size` (the arrays of a million-block
    table and scan) gets its own mapping, given back when freed. glibc otherwise raises that threshold after the
    first big free (up to 32 MiB), so those arrays end up in a heap that never shrinks (~10 MiB more peak at 1M
    blocks); a lower threshold costs fresh pages for every mid-sized temporary (128 KiB: +0.1 s at 1M blocks)."""
    try:
        ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, size)
    except (OSError, AttributeError):  # not glibc: its own policy stays
        pass


def give_back_free_memory() -> None:
    """malloc_trim(0) in GDB's own process (around the scan): the free pages of its heap go back to the system, so
    one phase's garbage does not add to the next phase's peak."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass
