"""Frame-pointer walk over a fake stack (a dict address -> 64-bit word) and the prologue check."""

from __future__ import annotations

import pytest

from gdb_memleak.core.unwind import MAX_FRAME_SPAN, FrameKind, has_frame_pointer_prologue, walk_frame_pointers

SP = 0x7FFD_0000_1000          # rsp at allocator entry: [SP] holds FIRST_PC
FIRST_PC = 0x401100            # return address into the allocator's caller
FIRST_FP = SP + 0x30           # the caller's rbp
FRAME_SIZE = 0x40


def build_chain(return_addresses, first_fp=FIRST_FP, step=FRAME_SIZE):
    """Memory for a well-formed rbp chain: frame i holds (saved rbp of frame i+1, return address i)."""
    memory = {SP: FIRST_PC}
    fp = first_fp
    for ret in return_addresses:
        memory[fp] = fp + step
        memory[fp + 8] = ret
        fp += step
    return memory


def classifier(roots=(), no_frame_pointer=(), junk=()):
    def classify(pc):
        if pc in junk:
            return FrameKind.NOT_CODE
        if pc in roots:
            return FrameKind.ROOT
        if pc in no_frame_pointer:
            return FrameKind.NO_FRAME_POINTER
        return FrameKind.FRAME_POINTER
    return classify


def walk(memory, classify, depth=32, fp=FIRST_FP, sp=SP):
    return walk_frame_pointers(FIRST_PC, fp, sp, depth, memory.get, classify)


def test_walk_follows_chain_until_root_frame():
    memory = build_chain([0x401200, 0x401300, 0x401400])
    pcs, complete = walk(memory, classifier(roots={0x401300}))
    assert pcs == [FIRST_PC, 0x401200, 0x401300]
    assert complete is True


def test_walk_stops_immediately_when_caller_is_root():
    pcs, complete = walk(build_chain([0x401200]), classifier(roots={FIRST_PC}))
    assert (pcs, complete) == ([FIRST_PC], True)


def test_walk_stops_incomplete_at_function_without_frame_pointer():
    memory = build_chain([0x401200, 0x401300, 0x401400])
    pcs, complete = walk(memory, classifier(roots={0x401400}, no_frame_pointer={0x401200}))
    assert pcs == [FIRST_PC, 0x401200]
    assert complete is False


@pytest.mark.parametrize("offset", [1, 4, 12])
def test_walk_stops_incomplete_at_misaligned_frame_pointer(offset):
    memory = build_chain([0x401200], first_fp=FIRST_FP + offset)
    pcs, complete = walk(memory, classifier(roots={0x401200}), fp=FIRST_FP + offset)
    assert (pcs, complete) == ([FIRST_PC], False)


def test_walk_stops_incomplete_when_saved_frame_pointer_is_misaligned():
    memory = build_chain([0x401200, 0x401300])
    memory[FIRST_FP] += 4
    pcs, complete = walk(memory, classifier(roots={0x401300}))
    assert (pcs, complete) == ([FIRST_PC, 0x401200], False)


def test_walk_stops_incomplete_when_frame_pointer_is_below_stack_pointer():
    pcs, complete = walk(build_chain([0x401200]), classifier(), fp=SP - 0x10)
    assert (pcs, complete) == ([FIRST_PC], False)


def test_walk_stops_incomplete_when_saved_frame_pointer_descends():
    memory = build_chain([0x401200, 0x401300])
    memory[FIRST_FP] = FIRST_FP - FRAME_SIZE   # points back down the stack: a loop or garbage
    pcs, complete = walk(memory, classifier(roots={0x401300}))
    assert (pcs, complete) == ([FIRST_PC, 0x401200], False)


def test_walk_stops_incomplete_when_saved_frame_pointer_points_into_previous_frame_record():
    memory = build_chain([0x401200, 0x401300])
    memory[FIRST_FP] = FIRST_FP + 8            # above fp but inside the record just read
    pcs, complete = walk(memory, classifier(roots={0x401300}))
    assert (pcs, complete) == ([FIRST_PC, 0x401200], False)


def test_walk_stops_incomplete_when_saved_frame_pointer_is_too_far_above():
    floor = FIRST_FP + 16
    memory = build_chain([0x401200])
    too_far = floor + MAX_FRAME_SPAN + 8
    memory[FIRST_FP] = too_far
    memory.update({too_far: too_far + 0x40, too_far + 8: 0x401300})
    pcs, complete = walk(memory, classifier(roots={0x401300}))
    assert (pcs, complete) == ([FIRST_PC, 0x401200], False)


def test_walk_accepts_frame_exactly_max_span_above():
    floor = FIRST_FP + 16
    memory = build_chain([0x401200])
    far = floor + MAX_FRAME_SPAN
    memory[FIRST_FP] = far
    memory.update({far: far + 0x40, far + 8: 0x401300})
    pcs, complete = walk(memory, classifier(roots={0x401300}))
    assert (pcs, complete) == ([FIRST_PC, 0x401200, 0x401300], True)


@pytest.mark.parametrize("depth", [1, 2, 5])
def test_walk_respects_depth_limit(depth):
    memory = build_chain([0x401200 + 0x100 * i for i in range(20)])
    pcs, complete = walk(memory, classifier(), depth=depth)
    assert len(pcs) == depth
    assert pcs[0] == FIRST_PC
    assert complete is True   # cut by the limit, not by a broken chain: no fallback needed


@pytest.mark.parametrize("unreadable", ["saved_fp", "return_address"])
def test_walk_stops_incomplete_at_unreadable_word(unreadable):
    memory = build_chain([0x401200, 0x401300])
    del memory[FIRST_FP + FRAME_SIZE + (0 if unreadable == "saved_fp" else 8)]
    pcs, complete = walk(memory, classifier(roots={0x401300}))
    assert (pcs, complete) == ([FIRST_PC, 0x401200], False)


def test_walk_stops_incomplete_at_null_return_address():
    memory = build_chain([0x401200, 0])
    pcs, complete = walk(memory, classifier())
    assert (pcs, complete) == ([FIRST_PC, 0x401200], False)


@pytest.mark.parametrize("junk", [0x1, 0x7FFD_0000_2F00], ids=["argc", "stack-address"])
def test_walk_never_keeps_a_saved_return_address_that_is_not_code(junk):
    """Past the outermost real frame the words are argc, argv pointers and 0: no frames, and GDB decides."""
    memory = build_chain([0x401200, junk, 0x401400])
    pcs, complete = walk(memory, classifier(junk={junk}))
    assert (pcs, complete) == ([FIRST_PC, 0x401200], False)


def test_walk_reads_only_the_frame_records():
    memory = build_chain([0x401200, 0x401300])
    reads = []

    def read_word(address):
        reads.append(address)
        return memory.get(address)

    walk_frame_pointers(FIRST_PC, FIRST_FP, SP, 32, read_word, classifier(roots={0x401300}))
    assert reads == [FIRST_FP, FIRST_FP + 8, FIRST_FP + FRAME_SIZE, FIRST_FP + FRAME_SIZE + 8]


@pytest.mark.parametrize("code, expected", [
    ("554889e54883ec10", True),           # push %rbp; mov %rsp,%rbp; sub $0x10,%rsp
    ("f30f1efa554889e5c3", True),          # endbr64; push %rbp; mov %rsp,%rbp
    ("4883ec08", False),                   # sub $8,%rsp (-fomit-frame-pointer)
    ("f30f1efa4883ec08", False),           # endbr64; sub $8,%rsp
    ("55", False),                         # truncated read
    ("5548", False),
    ("", False),
    ("90554889e5", False),                 # nop first: not at function entry
])
def test_has_frame_pointer_prologue_with_and_without_endbr64(code, expected):
    assert has_frame_pointer_prologue(bytes.fromhex(code)) is expected
