"""A new image's initial stack (argc, argv, envp, auxv at the stack pointer of its first instruction), and the same
stack with the recorder's entries added to its environment.

Why: glibc's `system()`, `popen()` and `posix_spawn()` start children through an internal `clone` + `execve` that
no PLT hook sees, and `execveat`/`fexecve` or a raw system call bypass the recorder's exec hooks too: such an image
starts without the preload. GDB stops every image it follows at its first instruction (the exec event, before the
dynamic loader runs), so the preload can be put in there, whatever started the image: a new pointer block (argc,
argv, envp with the added entries, the auxiliary vector unchanged) is written below the old one, the added strings
between the two, and the stack pointer moved to the new block (16-byte aligned, as the ABI wants at entry). Every
pointer the old block held (the strings, AT_RANDOM, AT_EXECFN, AT_PLATFORM) points above it and stays valid; the
kernel's own record of the environment (/proc/PID/environ) is untouched, and the recorder removes its entries from
the program's `environ` at start-up, as it does for a preload it was given by its exec hooks.

Pure Python: the caller passes the bytes from the stack pointer up to the end of the environment strings.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Sequence

WORD = struct.Struct("<Q")
AT_NULL, AT_BASE, AT_SECURE = 0, 7, 23
PRELOAD = "LD_PRELOAD="
RESERVE = 128  # bytes left untouched just below the old block (nothing reads there; a margin against off-by-ones)


class StackError(ValueError):
    """The bytes are not an initial stack (truncated, or not at the image's first instruction)."""


@dataclass(frozen=True)
class InitialStack:
    """The pointer block at `sp`: argc's argument pointers, the environment pointers, the auxiliary vector."""

    sp: int
    argv: tuple[int, ...]
    envp: tuple[int, ...]
    auxv: tuple[tuple[int, int], ...]
    data: bytes  # from sp on (the block and the strings above it)

    @property
    def block_bytes(self) -> int:
        return 8 * (1 + len(self.argv) + 1 + len(self.envp) + 1 + 2 * len(self.auxv))

    def aux(self, key: int) -> int | None:
        return next((value for k, value in self.auxv if k == key), None)

    def string(self, address: int) -> str:
        start = address - self.sp
        if not self.block_bytes <= start < len(self.data):
            raise StackError(f"string at 0x{address:x} outside the stack read")
        end = self.data.find(b"\0", start)
        if end < 0:
            raise StackError(f"string at 0x{address:x} unterminated in the stack read")
        return self.data[start:end].decode("utf-8", "surrogateescape")

    def environment(self) -> list[str]:
        return [self.string(p) for p in self.envp]


def _word(data: bytes, offset: int) -> int:
    if offset + 8 > len(data):
        raise StackError("stack read ends inside the pointer block")
    return int(WORD.unpack_from(data, offset)[0])


def parse(data: bytes, sp: int) -> InitialStack:
    """The pointer block of the bytes read at `sp` (the stack pointer at the image's first instruction)."""
    argc = _word(data, 0)
    if argc > len(data) // 8:
        raise StackError(f"argc {argc} is not plausible")
    argv = tuple(_word(data, 8 * (1 + i)) for i in range(argc))
    offset = 8 * (1 + argc)
    if _word(data, offset) != 0:
        raise StackError("argv is not NULL-terminated")
    offset += 8
    envp = []
    while (p := _word(data, offset)) != 0:
        envp.append(p)
        offset += 8
    offset += 8
    auxv = []
    while True:
        key, value = _word(data, offset), _word(data, offset + 8)
        offset += 16
        auxv.append((key, value))
        if key == AT_NULL:
            break
    return InitialStack(sp, argv, tuple(envp), tuple(auxv), data)


def has_library(environment: Sequence[str], library_suffix: str) -> bool:
    """Whether an LD_PRELOAD entry of `environment` already names the recorder (its exec hooks put it there)."""
    for entry in environment:
        if entry.startswith(PRELOAD):
            items = entry[len(PRELOAD):].replace(" ", ":").split(":")
            if any(item.endswith(library_suffix) for item in items):
                return True
    return False


def added_environment(environment: Sequence[str], library: str, settings: Sequence[str],
                      settings_prefix: str) -> list[int | str]:
    """The new environment as a list of old pointer indexes (kept entries) and new strings: the recorder first in
    the first LD_PRELOAD (the user's own entries after it), the recorder's settings replacing any the environment
    had. As the recorder's exec hooks build it (recorder.c, with_preload)."""
    out: list[int | str] = []
    placed = False
    for index, entry in enumerate(environment):
        if entry.startswith(settings_prefix):
            continue
        if entry.startswith(PRELOAD) and not placed:
            rest = entry[len(PRELOAD):]
            out.append(f"{PRELOAD}{library}:{rest}" if rest else f"{PRELOAD}{library}")
            placed = True
            continue
        out.append(index)
    if not placed:
        out.append(f"{PRELOAD}{library}")
    out.extend(settings)
    return out


def with_preload(stack: InitialStack, library: str, settings: Sequence[str],
                 settings_prefix: str) -> tuple[int, bytes]:
    """(the new stack pointer, the bytes to write there): the new pointer block, then the added strings, ending
    RESERVE bytes below the old stack pointer."""
    entries = added_environment(stack.environment(), library, settings, settings_prefix)
    strings = b"".join(e.encode("utf-8", "surrogateescape") + b"\0" for e in entries if isinstance(e, str))
    block = 8 * (1 + len(stack.argv) + 1 + len(entries) + 1 + 2 * len(stack.auxv))
    top = stack.sp - RESERVE
    strings_at = (top - len(strings)) & ~7
    new_sp = (strings_at - block) & ~15
    words = [len(stack.argv), *stack.argv, 0]
    cursor = strings_at
    for entry in entries:
        if isinstance(entry, str):
            words.append(cursor)
            cursor += len(entry.encode("utf-8", "surrogateescape")) + 1
        else:
            words.append(stack.envp[entry])
    words.append(0)
    for key, value in stack.auxv:
        words.extend((key, value))
    image = bytearray(top - new_sp)
    image[:block] = b"".join(WORD.pack(w) for w in words)
    image[strings_at - new_sp:strings_at - new_sp + len(strings)] = strings
    return new_sp, bytes(image)
