"""Source lines of code addresses as binutils' `addr2line -i` (and valgrind) read them from the DWARF line table.

Optimised code has several line-table rows at one address (GCC's location views): statement rows for lines whose
code was merged away, then the row of the instruction really there. valgrind and addr2line take the last row; GDB
prefers a statement row (what a breakpoint wants), so for a return address in -O2 code it can name a line of the
wrong inlined function (`new_allocator.h:112`, the size check, where valgrind says `new_allocator.h:137`, the call).
One `addr2line` process per object serves every address of that object (it answers one address at a time).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import weakref

SENTINEL = "0x0000000000000000"  # `-a` echo of the address 0 sent after each query: the answer's end
_LINE = re.compile(r"^(?P<file>.*):(?P<line>\d+|\?)(?: \(discriminator \d+\))?$")

SourceLine = tuple[str | None, int | None]


def parse_line(text: str) -> SourceLine:
    """`/src/a.c:12`, `/src/a.c:12 (discriminator 3)`, `??:0`, `a.c:?` -> (file, line), None for unknown parts."""
    match = _LINE.match(text)
    if not match:
        return None, None
    file = None if match["file"] in ("", "??") else match["file"]
    line = int(match["line"]) if match["line"].isdigit() and match["line"] != "0" else None
    return file, line


def _close(servers: dict[tuple, subprocess.Popen | None]) -> None:
    for server in servers.values():
        if server is not None:
            if server.stdin is not None:
                server.stdin.close()
            server.wait()


class Addr2Line:
    """`lines(path, address)` -> one (file, line) per source frame at an ELF virtual address of the object at `path`,
    innermost inlined call first; None when addr2line is missing or fails (the caller keeps what it has)."""

    def __init__(self, program: str = "addr2line") -> None:
        self.program = shutil.which(program)
        self._servers: dict[tuple, subprocess.Popen | None] = {}
        weakref.finalize(self, _close, self._servers)

    def lines(self, path: str, address: int) -> list[SourceLine] | None:
        server = self._server(path)
        if server is None or server.stdin is None or server.stdout is None:
            return None
        try:
            server.stdin.write(f"0x{address:x}\n0\n")
            server.stdin.flush()
            echo = server.stdout.readline()
            if not echo.startswith("0x"):
                raise OSError("addr2line: unexpected answer")
            rows = []
            while (text := server.stdout.readline()) and text.rstrip("\n") != SENTINEL:
                rows.append(parse_line(text.rstrip("\n")))
            if not text or not server.stdout.readline():  # the sentinel's own `??:0`
                raise OSError("addr2line: ended")
        except OSError:
            self._forget(path)
            return None
        return rows

    def close(self) -> None:
        _close(self._servers)
        self._servers.clear()

    def _key(self, path: str) -> tuple | None:
        try:
            st = os.stat(path)  # a rebuilt object gets a new server
        except OSError:
            return None
        return (path, st.st_ino, st.st_mtime_ns)

    def _server(self, path: str) -> subprocess.Popen | None:
        key = self._key(path)
        if key is None or self.program is None:
            return None
        if key not in self._servers:
            try:
                self._servers[key] = subprocess.Popen([self.program, "-i", "-a", "-e", path], stdin=subprocess.PIPE,
                                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                                      bufsize=1)
            except OSError:
                self._servers[key] = None
        return self._servers[key]

    def _forget(self, path: str) -> None:
        key = self._key(path)
        server = self._servers.get(key) if key is not None else None
        if server is not None:
            server.kill()
            server.wait()
        if key is not None:
            self._servers[key] = None  # failed once: not again for this object
