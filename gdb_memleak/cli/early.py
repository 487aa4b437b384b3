"""Runs first in the batch CLI's GDB (`gdb -ix early.py`), before GDB reads the program's symbols.

GDB's index cache: indexing the DWARF of the program and of libc's debug info (libc6-dbg) is most of GDB's own
start-up time and memory (about 0.1 s and 18 MB for libc alone here). With the cache on, GDB writes each object's
index once (keyed by its build-id) and maps it on later runs; symbols, lines and inlined frames come from the same
DWARF as without it. The cache lives beside the recorder's, in gdb-memleak's per-user cache directory; the user's
own GDB sessions are not touched. debuginfod is turned off here too, before the first objfile is read.
Separate debug files are looked up first among the inflated copies of compressed ones (cli/debug_cache.py, which
the driver fills at the end of a run), then where GDB looks by default.
Every setting is optional: a GDB without it runs as before.
"""

from __future__ import annotations

import os

import gdb


def _cache_root() -> str:
    """agent/build.cache_root, restated: this file runs before the loader has made the package importable."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "gdb-memleak")


def _first_accepted(*commands: str) -> None:
    for command in commands:
        try:
            gdb.execute(command, to_string=True)
            return
        except gdb.error:
            continue


def _debug_files_first(directory: str) -> None:
    """`directory` (cli/debug_cache.py's copies) searched before GDB's own debug-file-directory."""
    try:
        current = str(gdb.parameter("debug-file-directory") or "")
    except RuntimeError:
        return
    dirs = [directory, *(d for d in current.split(os.pathsep) if d and d != directory)]
    _first_accepted(f"set debug-file-directory {os.pathsep.join(dirs)}")


def main() -> None:
    _first_accepted("set debuginfod enabled off")
    root = _cache_root()
    directory = os.path.join(root, "gdb-index")
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError:
        return  # no writable cache: GDB indexes in memory, as without the cache
    _first_accepted(f"set index-cache directory {directory}")
    _first_accepted("set index-cache enabled on", "set index-cache on")  # GDB 13; GDB 8.3-12
    _debug_files_first(os.path.join(root, "debug"))  # debug_cache.directory(root), for the same reason


main()
