"""The recorder's entries added to a new image's initial stack (core/initial_stack.py): what the loader then reads
at the new stack pointer is the same argv and auxiliary vector, and the environment with the preload in it."""

from __future__ import annotations

import struct

import pytest

from gdb_memleak.core import initial_stack as st

LIB = "/home/u/.cache/gdb-memleak/0123/librecorder.so"
PREFIX = "GDB_MEMLEAK_AGENT_"
TOP = 0x7FFFFFFFF000


def build_stack(argv: list[str], env: list[str], auxv: list[tuple[int, int]]) -> tuple[int, bytes]:
    """A stack as the kernel lays it out: the strings at the top, the pointer block below them, 16-byte aligned."""
    strings = b""
    pointers: list[int] = []
    for text in argv + env:
        pointers.append(len(strings))
        strings += text.encode() + b"\0"
    strings_at = TOP - len(strings)
    words = [len(argv), *(strings_at + p for p in pointers[:len(argv)]), 0,
             *(strings_at + p for p in pointers[len(argv):]), 0]
    for key, value in auxv:
        words += [key, value]
    block = struct.pack(f"<{len(words)}Q", *words)
    sp = (strings_at - len(block)) & ~15
    data = block + bytes(strings_at - sp - len(block)) + strings
    return sp, data


def apply(sp: int, data: bytes, new_sp: int, image: bytes) -> tuple[int, bytes]:
    """The memory from `new_sp` up after the rewrite: the new image, the old bytes above it."""
    assert new_sp + len(image) <= sp
    return new_sp, image + bytes(sp - new_sp - len(image)) + data


AUXV = [(33, 0x7FFFF7FC1000), (st.AT_BASE, 0x7FFFF7FC3000), (st.AT_SECURE, 0), (31, TOP - 16), (st.AT_NULL, 0)]


@pytest.mark.parametrize("env, expected", [
    (["HOME=/root", "PATH=/bin"], ["HOME=/root", "PATH=/bin", f"LD_PRELOAD={LIB}", f"{PREFIX}DEPTH=16"]),
    (["LD_PRELOAD=/usr/lib/libjemalloc.so", "A=1"],
     [f"LD_PRELOAD={LIB}:/usr/lib/libjemalloc.so", "A=1", f"{PREFIX}DEPTH=16"]),
    ([f"{PREFIX}DEPTH=4", "LD_PRELOAD="], [f"LD_PRELOAD={LIB}", f"{PREFIX}DEPTH=16"]),
    ([], [f"LD_PRELOAD={LIB}", f"{PREFIX}DEPTH=16"]),
])
def test_the_loader_reads_the_same_argv_and_auxv_and_the_completed_environment(env: list[str],
                                                                                  expected: list[str]):
    sp, data = build_stack(["/bin/prog", "an argument"], env, AUXV)
    old = st.parse(data, sp)
    assert old.environment() == env
    new_sp, image = st.with_preload(old, LIB, [f"{PREFIX}DEPTH=16"], PREFIX)
    assert new_sp % 16 == 0
    new = st.parse(*reversed(apply(sp, data, new_sp, image)))
    assert [new.string(p) for p in new.argv] == ["/bin/prog", "an argument"]
    assert new.argv == old.argv and new.auxv == old.auxv  # the kernel's strings and AT_* pointers are kept
    assert new.environment() == expected
    assert all(p in old.envp for p in new.envp if not new.string(p).startswith(("LD_PRELOAD=", PREFIX)))


def test_an_environment_already_naming_the_recorder_is_left_alone():
    assert st.has_library(["A=1", f"LD_PRELOAD=/x/libfoo.so:{LIB}"], "librecorder.so")
    assert not st.has_library(["A=1", "LD_PRELOAD=/x/libfoo.so"], "librecorder.so")
    assert not st.has_library([f"B={LIB}"], "librecorder.so")


def test_bytes_that_are_not_an_initial_stack_are_refused():
    sp, data = build_stack(["/bin/prog"], ["A=1"], AUXV)
    with pytest.raises(st.StackError):
        st.parse(data[:40], sp)
    with pytest.raises(st.StackError):
        st.parse(struct.pack("<Q", 1 << 40) + data[8:], sp)
