"""Compile the recorder (recorder.c and the parts it includes, shipped in the package) into a per-user cache, once
per source version.

The cache key is the hash of the sources, of recorder.c's path and of the compiler command, so an upgraded package never
runs a stale library, and the library's debug info names this install's recorder.c (GDB's `bt` and `list` show
this file, and still do once another install of the same version is removed):
~/.cache/gdb-memleak/<hash>/librecorder.so (XDG_CACHE_HOME respected). Pure Python, no `gdb` import.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "recorder.c"  # the translation unit; it #includes its parts
PART_SUFFIXES = (".c", ".h", ".def")  # the parts beside it (layout.h, table.c, hooked.def, ...)
LIBRARY_NAME = "librecorder.so"  # recorder.c recognises its own LD_PRELOAD entry by this name
CFLAGS = ("-O2", "-g", "-fPIC", "-shared", "-fvisibility=hidden", "-ftls-model=initial-exec", "-fexceptions",
          "-fno-omit-frame-pointer", "-fno-builtin-malloc", "-fno-builtin-calloc", "-fno-builtin-realloc",
          "-fno-builtin-free", "-pthread")
LIBS = ("-ldl",)


class BuildError(RuntimeError):
    """The recorder cannot be built here; the message is one line saying why."""


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gdb-memleak"


def compiler() -> list[str] | None:
    """The compiler command: $CC split as a shell splits it (`gcc -O2`, `ccache gcc`), else gcc or cc on PATH."""
    cc = os.environ.get("CC") or ""
    try:
        words = shlex.split(cc)
    except ValueError:  # unbalanced quotes: run as one name, which fails with one clear line
        words = [cc]
    if words:
        return words
    found = shutil.which("gcc") or shutil.which("cc")
    return [found] if found else None


def source_files(source: Path = SOURCE) -> list[Path]:
    """recorder.c and the parts beside it that it includes: what a build reads, and what an install must ship."""
    parts = sorted(p for p in source.parent.iterdir() if p.suffix in PART_SUFFIXES and p.name != source.name)
    return [source, *parts]


def source_hash(source: Path = SOURCE, cc: list[str] | None = None) -> str:
    """The cache key: the sources' bytes, recorder.c's path (its debug info names it) and the whole compiler command
    (the compiler's name, not where it lies)."""
    words = cc or ["gcc"]
    digest = hashlib.sha256(source.read_bytes())
    for part in source_files(source)[1:]:
        digest.update(b"\0" + part.name.encode() + b"\0" + part.read_bytes())
    digest.update(os.fsencode(source.resolve()) + b"\0")
    digest.update(" ".join((os.path.basename(words[0]), *words[1:], *CFLAGS, *LIBS)).encode())
    return digest.hexdigest()[:16]


def library_path(source: Path = SOURCE, root: Path | None = None) -> Path:
    """Where the library for this source lives (built or not)."""
    return (root or cache_root()) / source_hash(source, compiler()) / LIBRARY_NAME


def ensure_built(source: Path = SOURCE, root: Path | None = None) -> Path:
    """The path of the built library, compiling it first if this source version was never built."""
    target = library_path(source, root)
    if target.is_file():
        return target
    cc = compiler()
    if cc is None:
        raise BuildError("gdb-memleak: cannot build the recorder: no C compiler (gcc) found")
    if not source.is_file():
        raise BuildError(f"gdb-memleak: cannot build the recorder: {source} is missing from the package")
    try:
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise BuildError(f"gdb-memleak: cannot build the recorder: {target.parent}: {exc.strerror}") from exc
    # Build beside the target and rename: concurrent first uses never see a half-written library.
    fd, tmp = tempfile.mkstemp(prefix=".librecorder-", suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        proc = subprocess.run([*cc, *CFLAGS, "-o", tmp, str(source), *LIBS], capture_output=True, text=True,
                              timeout=120)
        if proc.returncode != 0:
            first = next((line for line in proc.stderr.splitlines() if "error" in line), proc.stderr.strip()) \
                or f"exit status {proc.returncode}"
            raise BuildError(f"gdb-memleak: cannot build the recorder with {shlex.join(cc)}: {first.strip()[:200]}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    except (OSError, subprocess.SubprocessError) as exc:
        raise BuildError(f"gdb-memleak: cannot build the recorder with {shlex.join(cc)}: {exc}") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
