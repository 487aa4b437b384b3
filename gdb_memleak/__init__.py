"""gdb-memleak: valgrind-style leak and heap-error reports from inside GDB.

`core` is pure Python (no `gdb` import); `gdb` is the adapter that talks to GDB; `cli` is the batch front end.
"""

from __future__ import annotations

__version__ = "0.1.0"
