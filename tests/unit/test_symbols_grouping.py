"""Symbolizer cache, system-frame filter, and grouping of live blocks into leak sites."""

from __future__ import annotations

import pytest

from gdb_memleak.core.grouping import group_by_line, group_by_stack, select
from gdb_memleak.core.model import Block, Frame
from gdb_memleak.core.symbols import Symbolizer, SystemFilter

APP_OBJ = "/home/user/app"
LIBC_OBJ = "/lib/x86_64-linux-gnu/libc.so.6"


def block(address, size, pcs, allocator="malloc", seq=None):
    return Block(address, size, allocator, thread=1, seq=seq if seq is not None else address, time=0.0, pcs=pcs)


def user(pc, function, line, file="app.c"):
    return Frame(pc, function, file, line, APP_OBJ)


def system(pc, function, obj=LIBC_OBJ):
    return Frame(pc, function, None, None, obj)


# -- Symbolizer ---------------------------------------------------------------------------------------------------
def test_symbolizer_calls_resolver_once_per_pc():
    calls = []

    def resolve(pc):
        calls.append(pc)
        return Frame(pc, f"f{pc:x}")

    symbolizer = Symbolizer(resolve)
    first = symbolizer.stack([0x10, 0x20, 0x10])
    again = symbolizer.stack([0x20, 0x10])
    symbolizer.warm([0x10, 0x30])
    assert calls == [0x10, 0x20, 0x30]
    assert [f.function for f in first] == ["f10", "f20", "f10"]
    assert again == [first[1], first[0]]


def test_symbolizer_turns_resolver_exception_into_hex_frame_and_caches_it():
    calls = []

    def resolve(pc):
        calls.append(pc)
        raise RuntimeError("Cannot access memory")

    symbolizer = Symbolizer(resolve)
    frame = symbolizer.frame(0x401ABC)
    assert frame == Frame(0x401ABC, "0x401abc")
    assert (frame.file, frame.line, frame.object) == (None, None, "??")
    assert symbolizer.frame(0x401ABC) is frame
    assert calls == [0x401ABC]


def test_symbolizer_expands_a_pc_into_its_inlined_frames_innermost_first():
    """One return address where calls were inlined stands for several source frames, as valgrind prints them."""
    resize = Frame(0x401234, "std::vector<int>::resize", "/usr/include/c++/12/bits/stl_vector.h", 1011, APP_OBJ,
                   inline=True)
    fill = Frame(0x401234, "fill", "app.cpp", 37, APP_OBJ, inline=True)
    holder = Frame(0x401234, "leak_holder(int)", "app.cpp", 44, APP_OBJ)
    main = Frame(0x401500, "main", "app.cpp", 60, APP_OBJ)
    calls = []

    def resolve(pc):
        calls.append(pc)
        return [resize, fill, holder] if pc == 0x401234 else main

    symbolizer = Symbolizer(resolve)
    assert symbolizer.stack([0x401234, 0x401500]) == [resize, fill, holder, main]
    assert symbolizer.stack([0x401234]) == [resize, fill, holder]
    assert symbolizer.frames(0x401234) == (resize, fill, holder)
    assert symbolizer.frame(0x401234) is resize
    assert calls == [0x401234, 0x401500]


def test_symbolizer_gives_a_hex_frame_when_the_resolver_finds_nothing():
    symbolizer = Symbolizer(lambda pc: [])
    assert symbolizer.stack([0x401ABC]) == [Frame(0x401ABC, "0x401abc")]


# -- SystemFilter -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("obj, is_system", [
    ("/lib/x86_64-linux-gnu/libc.so.6", True),
    ("/usr/lib/x86_64-linux-gnu/libstdc++.so.6", True),
    ("/lib64/ld-linux-x86-64.so.2", True),
    ("/usr/lib32/libc.so.6", True),
    ("linux-vdso.so.1", True),
    ("[vdso]", True),
    ("/usr/local/lib/libmine.so", False),
    ("/home/user/lib/libmine.so", False),
    ("/home/user/app", False),
    ("??", False),
])
def test_system_filter_classifies_objects(obj, is_system):
    assert SystemFilter().is_system(system(0x1, "f", obj)) is is_system


def test_user_frame_skips_lib_and_usr_lib_objects():
    frames = [system(0x1, "malloc"), system(0x2, "operator new", "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"),
              user(0x3, "make_node", 12), user(0x4, "main", 30)]
    assert SystemFilter().user_frame(frames) == frames[2]


def test_user_frame_falls_back_to_frame_zero_when_all_frames_are_system():
    frames = [system(0x1, "strdup"), system(0x2, "__libc_start_main")]
    assert SystemFilter().user_frame(frames) == frames[0]
    assert SystemFilter().user_frame([]) is None


@pytest.mark.parametrize("file, is_system", [
    ("/usr/include/c++/12/bits/stl_vector.h", True),
    ("/usr/local/include/boost/container/vector.hpp", True),
    ("/home/user/include/vector.h", False),
    ("/usr/src/app/main.cpp", False),
    (None, False),
])
def test_frames_in_installed_library_headers_are_system_even_in_the_users_object(file, is_system):
    """g++ compiles std::vector's templates into the user's object (inlined at -O2, out of line at -O0)."""
    assert SystemFilter().is_system(Frame(0x401234, "f", file, 10, APP_OBJ)) is is_system


def test_user_frame_of_an_inlined_library_call_is_the_users_call_site():
    frames = [system(0x7F01, "operator new", "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"),
              Frame(0x401234, "allocate", "/usr/include/c++/12/bits/new_allocator.h", 137, APP_OBJ, inline=True),
              Frame(0x401234, "_M_default_append", "/usr/include/c++/12/bits/vector.tcc", 650, APP_OBJ),
              Frame(0x401300, "resize", "/usr/include/c++/12/bits/stl_vector.h", 1011, APP_OBJ, inline=True),
              user(0x401300, "leak_holder", 44), user(0x401500, "main", 60)]
    assert SystemFilter().user_frame(frames) == frames[4]


def test_empty_system_pattern_treats_every_frame_as_user():
    frames = [system(0x1, "malloc"), user(0x2, "main", 3)]
    assert SystemFilter("").user_frame(frames) == frames[0]


# -- group_by_stack -----------------------------------------------------------------------------------------------
STACK_A = (0x401010, 0x401500)
STACK_B = (0x401020, 0x401500)


def test_group_by_stack_sums_bytes_and_blocks_per_stack():
    groups = group_by_stack([block(0x1000, 10, STACK_A, seq=1), block(0x2000, 20, STACK_A, seq=2)])
    assert len(groups) == 1
    group = groups[0]
    assert (group.kind, group.allocator, group.pcs) == ("unfreed", "malloc", STACK_A)
    assert (group.bytes, group.blocks, group.first_seq, group.addresses) == (30, 2, 1, [0x1000, 0x2000])


def test_group_by_stack_separates_different_stacks_and_allocators():
    blocks = [
        block(0x1000, 10, STACK_A, "malloc", seq=1),
        block(0x2000, 10, STACK_B, "malloc", seq=2),
        block(0x3000, 10, STACK_A, "calloc", seq=3),
        block(0x4000, 10, STACK_A, "malloc", seq=4),
    ]
    groups = group_by_stack(blocks)
    keys = {(g.allocator, g.pcs): (g.bytes, g.blocks) for g in groups}
    assert keys == {("malloc", STACK_A): (20, 2), ("malloc", STACK_B): (10, 1), ("calloc", STACK_A): (10, 1)}


def test_group_by_stack_separates_kinds():
    blocks = [block(0x1000, 10, STACK_A, seq=1), block(0x2000, 10, STACK_A, seq=2)]
    groups = group_by_stack(blocks, kind_of=lambda b: "definite" if b.address == 0x1000 else "reachable")
    assert sorted(g.kind for g in groups) == ["definite", "reachable"]


def test_group_by_stack_sorts_by_bytes_then_blocks_then_first_allocation():
    blocks = [
        block(0x1000, 5, (0x1,), seq=1),                                  # 5 bytes, 1 block
        block(0x2000, 50, (0x2,), seq=2),                                 # 50 bytes, 1 block
        block(0x3000, 25, (0x3,), seq=3), block(0x3100, 25, (0x3,), seq=4),  # 50 bytes, 2 blocks
        block(0x4000, 100, (0x4,), seq=6),                                # 100 bytes, first at #6
        block(0x5000, 100, (0x5,), seq=5),                                # 100 bytes, first at #5
    ]
    groups = group_by_stack(reversed(blocks))
    assert [g.pcs for g in groups] == [(0x5,), (0x4,), (0x3,), (0x2,), (0x1,)]


# -- group_by_line ------------------------------------------------------------------------------------------------
FRAMES = {f.pc: f for f in [
    system(0x7F01, "malloc"),
    system(0x7F02, "calloc"),
    user(0x401111, "make_node", 12),          # app.c:12, called from main
    user(0x401119, "make_node", 12),          # app.c:12 again, other return address (e.g. inlined twice)
    user(0x401222, "make_name", 20),
    user(0x401500, "main", 30),
    user(0x401600, "run", 40),
    Frame(0x401777, "stripped_fn", None, None, APP_OBJ),
]}


def test_group_by_line_merges_different_stacks_with_same_first_user_line():
    blocks = [
        block(0x1000, 10, (0x7F01, 0x401111, 0x401500), "malloc", seq=1),
        block(0x2000, 30, (0x7F02, 0x401119, 0x401600, 0x401500), "calloc", seq=2),
        block(0x3000, 15, (0x7F01, 0x401222, 0x401500), "malloc", seq=3),
    ]
    groups = group_by_line(group_by_stack(blocks), Symbolizer(FRAMES.__getitem__), SystemFilter())
    assert [(g.frame.file, g.frame.line, g.bytes, g.blocks) for g in groups] == [
        ("app.c", 12, 40, 2), ("app.c", 20, 15, 1)]
    assert groups[0].allocators == {"malloc", "calloc"}
    assert groups[0].first_seq == 1
    assert groups[0].frame.function == "make_node"


def test_group_by_line_groups_frames_without_line_info_by_pc():
    blocks = [
        block(0x1000, 10, (0x7F01, 0x401777), seq=1),
        block(0x2000, 10, (0x7F01, 0x401777), seq=2),
        block(0x3000, 10, (0x7F01,), seq=3),   # only system frames: shown at frame 0
    ]
    groups = group_by_line(group_by_stack(blocks), Symbolizer(FRAMES.__getitem__), SystemFilter())
    assert [(g.frame.pc, g.bytes) for g in groups] == [(0x401777, 20), (0x7F01, 10)]


def test_group_by_line_of_block_without_stack_uses_unknown_frame():
    groups = group_by_line(group_by_stack([block(0x1000, 10, ())]), Symbolizer(FRAMES.__getitem__), SystemFilter())
    assert [(g.frame.function, g.bytes) for g in groups] == [("??", 10)]


# -- select -------------------------------------------------------------------------------------------------------
@pytest.fixture
def sized_groups():
    blocks = [block(0x1000 * i, size, (i,), seq=i) for i, size in enumerate([40, 30, 20, 10], start=1)]
    return group_by_stack(blocks)


@pytest.mark.parametrize("top, min_bytes, expected", [
    (None, 0, [40, 30, 20, 10]),
    (2, 0, [40, 30]),
    (None, 20, [40, 30, 20]),      # min_bytes is inclusive
    (1, 25, [40]),
    (3, 35, [40]),                 # min_bytes first, then top
    (0, 0, []),
    (10, 0, [40, 30, 20, 10]),
    (None, 1000, []),
])
def test_select_applies_min_bytes_then_top(sized_groups, top, min_bytes, expected):
    assert [g.bytes for g in select(sized_groups, top=top, min_bytes=min_bytes)] == expected
