"""Decompressed copies of the separate debug files GDB reads in the batch CLI (no `gdb` import: early.py and the
driver call it).

Debian's debug packages (libc6-dbg) ship their DWARF zlib-compressed. GDB's index cache spares it indexing them, but
the first address it looks up in such an object (a breakpoint on libc's `mmap` or `_exit`, a stop there) still
inflates whole sections: ~90 ms of every run for libc and ld.so, the largest fixed cost of a small run here. The
CLI's GDB therefore searches this directory first (`debug-file-directory`, early.py), where a copy of each
compressed debug file it used is kept with its sections inflated (`objcopy --decompress-debug-sections`), under
the same build-id path GDB looks up: the same DWARF, byte for byte once inflated, read without zlib. A copy is
made once per build-id, at the end of the run that first needed it; the user's own GDB sessions are not touched.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile

SHF_COMPRESSED = 0x800
MAX_BYTES = 256 << 20  # a debug file larger than this once inflated is left as it is (disk before speed)
ALTLINK = b".gnu_debugaltlink"


def directory(cache_root: str) -> str:
    """Where the copies live, under gdb-memleak's per-user cache directory (early.py names it too)."""
    return os.path.join(cache_root, "debug")


def entry(cache: str, build_id: str) -> str:
    """The path GDB looks up for `build_id` in the directory `cache` (.build-id/xx/rest.debug)."""
    return os.path.join(cache, ".build-id", build_id[:2], f"{build_id[2:]}.debug")


def inflated_size(path: str) -> int | None:
    """Bytes of the compressed sections once inflated (0: none compressed); None when this is not a 64-bit
    little-endian ELF file, or a dwz-style `.gnu_debugaltlink` (a path that may be relative to the file) is there."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
                return None
            e_shoff, e_shentsize, e_shnum, e_shstrndx = (struct.unpack_from("<QIHHHHHH", head, 40)[i]
                                                         for i in (0, 5, 6, 7))
            f.seek(e_shoff)
            table = f.read(e_shentsize * e_shnum)
            sections = [struct.unpack_from("<IIQQQQ", table, i * e_shentsize) for i in range(e_shnum)]
            names_offset, names_size = sections[e_shstrndx][4], sections[e_shstrndx][5]
            f.seek(names_offset)
            names = f.read(names_size)
            total = 0
            for name, _type, flags, _addr, offset, _size in sections:
                if names[name:name + len(ALTLINK) + 1] == ALTLINK + b"\0":
                    return None
                if flags & SHF_COMPRESSED:
                    f.seek(offset)
                    total += struct.unpack("<IIQ", f.read(16))[2]  # Elf64_Chdr: ch_type, reserved, ch_size
            return total
    except (OSError, struct.error, IndexError):
        return None


def store(debug_file: str, build_id: str, cache: str) -> bool:
    """Keep an inflated copy of `debug_file` for later runs, if it has compressed sections and none is kept yet.
    Written beside its final name and renamed into place, so a concurrent run never reads half a file."""
    target = entry(cache, build_id)
    debug_file, cache = os.path.abspath(debug_file), os.path.abspath(cache)
    if len(build_id) < 3 or os.path.exists(target) or os.path.commonpath([debug_file, cache]) == cache:
        return False
    size = inflated_size(debug_file)
    objcopy = shutil.which("objcopy")
    if not size or size > MAX_BYTES or objcopy is None:
        return False
    try:
        os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
        fd, partial = tempfile.mkstemp(dir=os.path.dirname(target), suffix=".partial")
        os.close(fd)
    except OSError:
        return False
    try:
        subprocess.run([objcopy, "--decompress-debug-sections", debug_file, partial], check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        os.chmod(partial, 0o600)
        os.replace(partial, target)
        return True
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
