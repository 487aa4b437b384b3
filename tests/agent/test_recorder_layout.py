"""The recorder's region layout, C side against the reader's (issue 17 item 4): a small C program compiled against
gdb_memleak/agent/layout.h prints the offset and size of every field the reader knows, and the allocator names
table generated from hooked.def; both are compared with core/agent_format.py's struct formats and field names. A
field moved, resized or renamed on either side fails here (no parsing of C text)."""

from __future__ import annotations

import re
import struct
import subprocess
from dataclasses import dataclass

import pytest

from gdb_memleak.agent import build
from gdb_memleak.core import agent_format as fmt

# C struct -> (the reader's format, its field names in order; pad bytes `x` are not fields)
SHARED = {
    "ml_header": (fmt.HEADER, fmt.HEADER_FIELDS),
    "ml_record": (fmt.SLOT, tuple(name for name, _ in fmt.SLOT_DTYPE_FIELDS if not name.startswith("pad"))),
    "ml_shard": (fmt.SHARD, fmt.SHARD_FIELDS),
    "ml_error": (fmt.ERROR, fmt.ERROR_FIELDS),
    "ml_point": (fmt.POINT, fmt.POINT_FIELDS),
    "ml_anchor": (fmt.ANCHOR, fmt.ANCHOR_FIELDS),
}
# the reader takes the header's timeline lock (a 4-byte atomic_int) and the pad after it as one 8-byte word
WIDER_IN_READER = {"timeline_lock": "pad_timeline"}
# layout.h's OFF_* (the anchor's `stopped`), in the order of agent_format.STOPPED_REASONS' numbers
STOP_REASONS = ("OFF_REGION", "OFF_KEY", "OFF_CHECK", "OFF_FORK_COPY", "OFF_ATFORK", "OFF_DETACHED", "OFF_REDIRECT",
                "OFF_INFLIGHT")
NUMPY_SIZES = {"<u8": 8, "<u4": 4, "<u2": 2, "u1": 1}


@dataclass
class CSide:
    """What the compiler made of layout.h and allocators.h."""

    fields: dict[tuple[str, str], tuple[int, int]]  # (struct, field) -> (offset, size); (struct, "") -> sizeof
    constants: dict[str, int]
    names: bytes  # ML_NAMES, as the region carries it


def _offsets(layout: struct.Struct) -> list[tuple[int, int]]:
    """(offset, size) of each field of a little-endian, unaligned format: pad bytes skipped, repeat counts expanded."""
    fields, at = [], 0
    for count, code in re.findall(r"(\d*)([a-zA-Z?])", layout.format.lstrip("<=")):
        n, size = int(count or 1), struct.calcsize("<" + code)
        if code == "x":
            at += n
            continue
        for _ in range(n):
            fields.append((at, size))
            at += size
    assert at == layout.size
    return fields


def _program() -> str:
    """A C program printing `struct field offset size` lines, the constants and the names table (hex)."""
    fields = [(name, field) for name, (_, names) in SHARED.items() for field in names]
    fields += [("ml_header", pad) for pad in WIDER_IN_READER.values()]
    fields += [("ml_record", name) for name, _ in fmt.SLOT_DTYPE_FIELDS if name.startswith("pad")]
    body = [f'    printf("{name} - %zu 0\\n", sizeof(struct {name}));' for name in SHARED]
    body += [f"    FIELD({name}, {field});" for name, field in fields]
    return "\n".join([
        "#include <stddef.h>", "#include <stdio.h>", '#include "layout.h"', '#include "allocators.h"',
        '#define FIELD(s, f) printf(#s " " #f " %zu %zu\\n", offsetof(struct s, f), sizeof(((struct s *)0)->f))',
        "int main(void) {", *body,
        '    printf("= magic %llu 0\\n", (unsigned long long)ML_MAGIC);',
        '    printf("= version %llu 0\\n", (unsigned long long)ML_VERSION);',
        '    printf("= allocators %d 0\\n", (int)A_COUNT);',
        *(f'    printf("= {reason} %d 0\\n", (int){reason});' for reason in ("OFF_NONE", *STOP_REASONS)),
        "    for (size_t i = 0; i < sizeof ML_NAMES; i++) printf(\"%02x\", (unsigned char)ML_NAMES[i]);",
        '    printf("\\n");',
        "    return 0;",
        "}", ""])


@pytest.fixture(scope="module")
def c_side(tmp_path_factory: pytest.TempPathFactory) -> CSide:
    cc = build.compiler()
    assert cc is not None, "no C compiler: the recorder cannot be built here either"
    work = tmp_path_factory.mktemp("layout")
    source, binary = work / "print_layout.c", work / "print_layout"
    source.write_text(_program())
    built = subprocess.run([*cc, "-std=gnu11", "-I", str(build.SOURCE.parent), "-o", str(binary), str(source)],
                           capture_output=True, text=True, check=False)
    assert built.returncode == 0, f"a field the reader names is missing from layout.h:\n{built.stderr}"
    *rows, names = subprocess.run([str(binary)], capture_output=True, text=True, check=True).stdout.splitlines()
    side = CSide({}, {}, bytes.fromhex(names))
    for row in rows:
        kind, name, first, second = row.split()
        if kind == "=":
            side.constants[name] = int(first)
        else:
            side.fields[kind, "" if name == "-" else name] = (int(first), int(second))
    return side


@pytest.mark.parametrize("name", SHARED)
def test_every_field_the_reader_knows_is_where_the_recorder_puts_it(c_side: CSide, name: str) -> None:
    layout, fields = SHARED[name]
    for field, (offset, size) in zip(fields, _offsets(layout), strict=True):
        c_offset, c_size = c_side.fields[name, field]
        if field in WIDER_IN_READER and name == "ml_header":
            pad_offset, pad_size = c_side.fields[name, WIDER_IN_READER[field]]
            assert pad_offset == c_offset + c_size, field
            c_size += pad_size
        assert (c_offset, c_size) == (offset, size), f"struct {name}.{field}: C (offset, size) vs the reader's"
    if name == "ml_header":  # the recorder's header may end in spare words the reader does not read
        assert c_side.fields[name, ""][0] >= layout.size
    else:
        assert c_side.fields[name, ""][0] == layout.size, f"sizeof(struct {name})"


def test_records_read_by_numpy_match_the_recorder_field_by_field(c_side: CSide) -> None:
    offset = 0
    for field, dtype in fmt.SLOT_DTYPE_FIELDS:
        assert c_side.fields["ml_record", field] == (offset, NUMPY_SIZES[dtype]), field
        offset += NUMPY_SIZES[dtype]
    assert offset == fmt.SLOT.size


def test_offsets_gdb_writes_to_are_the_recorder_fields(c_side: CSide) -> None:
    """GDB writes these words into the running program: a wrong offset would corrupt the recorder."""
    assert fmt.BREAK_SEQ_OFFSET == c_side.fields["ml_header", "break_seq"][0]
    assert fmt.SKIP_BAD_FREES_OFFSET == c_side.fields["ml_header", "skip_bad_frees"][0]
    assert fmt.ERROR_SKIP_OFFSET == c_side.fields["ml_error", "skip"][0]
    assert fmt.ERROR_SEQ_INDEX == fmt.ERROR_FIELDS.index("seq")


def test_constants_and_the_allocator_names_agree(c_side: CSide) -> None:
    assert (c_side.constants["magic"], c_side.constants["version"]) == (fmt.MAGIC, fmt.VERSION)
    table = fmt.parse_names(c_side.names)
    assert len(table) == c_side.constants["allocators"]
    labels = [label for label, _ in table]
    assert len(set(labels)) == len(labels) and labels[:4] == ["malloc", "calloc", "realloc", "free"]
    assert {family for _, family in table} == set(fmt.FAMILIES.values())


def test_the_library_exports_what_gdb_looks_up(tmp_path_factory: pytest.TempPathFactory) -> None:
    library = build.ensure_built(root=tmp_path_factory.mktemp("cache"))
    symbols = subprocess.run(["nm", "-D", "--defined-only", str(library)], capture_output=True, text=True,
                             check=True).stdout.split()
    assert {fmt.ANCHOR_SYMBOL, fmt.ERROR_FUNCTION, fmt.BREAK_ALLOC_FUNCTION} <= set(symbols)


def test_stop_reasons_gdb_names_are_the_recorder_ones(c_side: CSide) -> None:
    """The anchor's `stopped` number is said to the user by agent_format.STOPPED_REASONS: the same numbers."""
    assert c_side.constants["OFF_NONE"] == 0
    assert [c_side.constants[reason] for reason in STOP_REASONS] == sorted(fmt.STOPPED_REASONS)
