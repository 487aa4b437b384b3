"""LeakSanitizer-format suppressions: parsing, matching function/file/object, errors, generated lines, defaults."""

from __future__ import annotations

import re

import pytest

from gdb_memleak.core.model import Frame
from gdb_memleak.core.suppressions import (
    DEFAULT_SOURCE,
    DEFAULT_SUPPRESSIONS,
    FrameSuppression,
    Suppression,
    SuppressionError,
    SuppressionList,
    generate,
)
from gdb_memleak.core.symbols import SystemFilter

APP = "/home/user/app"
LIBC = "/lib/x86_64-linux-gnu/libc.so.6"
LIBSTDCXX = "/lib/x86_64-linux-gnu/libstdc++.so.6"
LDSO = "/lib64/ld-linux-x86-64.so.2"

MAKE_LEAK = Frame(0x401020, "make_leak", "/home/user/src/app.c", 20, APP)
MAIN = Frame(0x401500, "main", "/home/user/src/app.c", 50, APP)
STRDUP = Frame(0x7FFFF7E739AA, "__GI___strdup", "./string/./string/strdup.c", 44, LIBC)


def matches(pattern, frame):
    return Suppression(pattern).matches(frame)


# -- parsing ------------------------------------------------------------------------------------------------------
def test_parse_reads_leak_lines_and_skips_comments_and_blank_lines():
    text = "# comment\n\nleak:make_leak\n   # indented comment\n\t\nleak:libfoo.so  \n"
    parsed = SuppressionList.parse(text, "supp.txt")
    assert [(s.pattern, s.source, s.line) for s in parsed] == [("make_leak", "supp.txt", 3),
                                                              ("libfoo.so", "supp.txt", 6)]
    assert len(parsed) == 2


def test_parse_strips_whitespace_around_the_pattern_but_keeps_inner_spaces():
    parsed = SuppressionList.parse("  leak:  operator new(unsigned long)  \r\n", "s")
    assert [s.pattern for s in parsed] == ["operator new(unsigned long)"]


def test_parse_of_empty_text_is_an_empty_list():
    assert len(SuppressionList.parse("", "s")) == 0
    assert SuppressionList().match([MAIN]) is None


@pytest.mark.parametrize("line, problem", [
    ("race:foo", "unsupported suppression type 'race' (only 'leak:' and 'frames:' are supported)"),
    ("frames: fun:a ; bogus", "expected 'frames: M ; M ...'"),
    ("frames: ...", "expected 'frames: M ; M ...'"),
    ("frames: fun:a fun:b", "expected 'frames: M ; M ...'"),
    ("Leak:foo", "unsupported suppression type 'Leak'"),
    ("leak:", "empty pattern after 'leak:'"),
    ("leak:   ", "empty pattern after 'leak:'"),
    ("make_leak", "expected 'leak:PATTERN', got 'make_leak'"),
    ("{ valgrind-style", "expected 'leak:PATTERN'"),
    (":foo", "expected 'leak:PATTERN'"),
])
def test_malformed_line_error_names_file_line_and_problem(line, problem):
    text = f"# header\nleak:ok\n{line}\nleak:never_reached\n"
    with pytest.raises(SuppressionError) as info:
        SuppressionList.parse(text, "/etc/my.supp")
    message = str(info.value)
    assert message.startswith("/etc/my.supp:3: ")
    assert problem in message


def test_suppression_error_is_a_value_error():
    assert issubclass(SuppressionError, ValueError)


def test_load_reads_a_file_and_records_its_path(tmp_path):
    path = tmp_path / "app.supp"
    path.write_text("leak:make_leak\n")
    loaded = SuppressionList.load(str(path))
    assert [(s.pattern, s.source, s.line) for s in loaded] == [("make_leak", str(path), 1)]
    assert loaded.match([MAKE_LEAK, MAIN]).where == f"{path}:1"


def test_load_of_missing_file_says_path_cannot_be_read(tmp_path):
    missing = tmp_path / "nope.supp"
    expected = rf"^{re.escape(str(missing))}: cannot read: No such file or directory$"
    with pytest.raises(SuppressionError, match=expected):
        SuppressionList.load(str(missing))


def test_load_of_directory_or_binary_file_is_a_suppression_error(tmp_path):
    with pytest.raises(SuppressionError, match=r": cannot read: "):
        SuppressionList.load(str(tmp_path))
    binary = tmp_path / "bin.supp"
    binary.write_bytes(b"leak:\xff\xfe\n")
    with pytest.raises(SuppressionError, match=r"bin.supp: cannot read: not UTF-8"):
        SuppressionList.load(str(binary))


def test_malformed_line_in_loaded_file_names_the_file(tmp_path):
    path = tmp_path / "bad.supp"
    path.write_text("leak:a\n\nrace:b\n")
    with pytest.raises(SuppressionError, match=rf"^{re.escape(str(path))}:3: unsupported suppression type 'race'"):
        SuppressionList.load(str(path))


def test_extend_appends_and_first_match_wins():
    first = SuppressionList.parse("leak:make_", "a.supp")
    first.extend(SuppressionList.parse("leak:make_leak", "b.supp"))
    first.extend([Suppression("main")])
    assert [s.source for s in first] == ["a.supp", "b.supp", DEFAULT_SOURCE]
    assert first.match([MAKE_LEAK]).source == "a.supp"
    assert first.match([MAIN]).pattern == "main"


# -- matching -----------------------------------------------------------------------------------------------------
def test_unanchored_pattern_matches_a_substring_of_the_function():
    assert matches("strdup", STRDUP)
    assert matches("make", MAKE_LEAK)
    assert not matches("free", MAKE_LEAK)


def test_pattern_matches_file_name_and_object_name():
    assert matches("strdup.c", STRDUP)          # file
    assert matches("src/app.c", MAKE_LEAK)      # file, any part of the path
    assert matches("libc.so.6", STRDUP)         # object
    assert matches("/home/user/app", MAIN)      # object, full path
    assert not matches("libstdc++", STRDUP)


def test_caret_anchors_at_start_and_dollar_at_end():
    assert matches("^make_leak", MAKE_LEAK)
    assert not matches("^leak", MAKE_LEAK)
    assert matches("leak$", MAKE_LEAK)
    assert not matches("make$", MAKE_LEAK)
    assert matches("^make_leak$", MAKE_LEAK)
    assert not matches("^make_lea$", MAKE_LEAK)
    assert matches("^/lib/x86_64", STRDUP)      # anchors apply to the object too
    assert matches("libc.so.6$", STRDUP)


def test_star_matches_any_run_including_none():
    assert matches("make*leak", MAKE_LEAK)
    assert matches("m*_*k", MAKE_LEAK)
    assert matches("^make_*$", MAKE_LEAK)
    assert matches("^make_leak*$", MAKE_LEAK)
    assert matches("*", MAKE_LEAK)
    assert not matches("^leak*make", MAKE_LEAK)


def test_regex_metacharacters_are_literal():
    frame = Frame(1, "std::vector<int>::push_back(int const&)", None, None, "/usr/lib/libx.so")
    assert matches("vector<int>::push_back(", frame)
    assert not matches("vector.int", frame)
    assert matches("libx.so", frame)
    assert not matches("lib.\\.so", frame)


def test_caret_and_dollar_are_literal_except_at_the_ends():
    frame = Frame(1, "a^b$c", None, None, "??")
    assert matches("a^b$c", frame)
    assert matches("^a^b$c$", frame)
    assert not matches("a^b$", frame)


def test_later_occurrence_satisfies_end_anchor():
    """LSan's first-occurrence matching would miss this; a regular expression does not."""
    assert matches("a*b$", Frame(1, "abxb"))


def test_missing_file_and_empty_strings_never_match():
    frame = Frame(0x10, "", None, None, "")
    assert not matches("*", frame)
    assert not matches("^", frame)


def test_stack_is_suppressed_when_any_frame_matches():
    suppressions = SuppressionList.parse("leak:main\n", "s")
    assert suppressions.match([STRDUP, MAKE_LEAK, MAIN]) == Suppression("main", "s", 1)
    assert suppressions.match([STRDUP, MAKE_LEAK]) is None
    assert suppressions.match([]) is None


def test_suppression_str_is_its_line():
    assert str(Suppression("^foo$", "f", 2)) == "leak:^foo$"
    assert Suppression("x", "f", 2).where == "f:2"


# -- generate -----------------------------------------------------------------------------------------------------
def round_trips(frames, **kwargs):
    line = generate(frames, **kwargs)
    return SuppressionList.parse(line, "generated").match(frames) is not None


def test_generate_names_the_first_user_frame_anchored():
    frames = [STRDUP, MAKE_LEAK, MAIN]
    assert generate(frames) == "leak:^make_leak$"
    assert round_trips(frames)


def test_generated_line_does_not_suppress_functions_that_only_contain_the_name():
    line = generate([MAKE_LEAK, MAIN])
    other = Frame(0x401090, "make_leak_helper", "/home/user/src/app.c", 90, APP)
    assert SuppressionList.parse(line, "g").match([other]) is None


def test_generate_skips_frames_known_only_by_address():
    unresolved = Frame(0x1, "0x1", None, None, "??")
    from_gdb = Frame(0x7FFFFFFFEAB5, "<function called from gdb>", None, None, "[stack]")
    frames = [STRDUP, unresolved, from_gdb, MAIN]
    assert generate(frames) == "leak:^main$"
    assert round_trips(frames)


def test_generate_for_minimal_symbol_matches_any_offset_in_that_function():
    frame = Frame(0x401234, "make_leak+0x1a", None, None, APP)
    assert generate([frame]) == "leak:^make_leak+0x"
    assert round_trips([frame])
    assert SuppressionList.parse(generate([frame]), "g").match([Frame(0x401240, "make_leak+0x26", None, None, APP)])


def test_generate_keeps_object_offset_names_whole():
    """`libfoo.so+0x1234` is the object's name, not a symbol: stripping the offset would hide the whole library."""
    frame = Frame(0x7FFFF7CA57BA, "libstdc++.so.6+0xa57ba", None, None, LIBSTDCXX)
    assert generate([frame]) == "leak:^libstdc++.so.6+0xa57ba$"
    assert round_trips([frame])


def test_generate_for_all_system_stack_uses_innermost_non_allocator_function():
    new = Frame(0x7FFFF7CAE0B0, "operator new(unsigned long)", None, None, LIBSTDCXX)
    inner = Frame(0x7FFFF7E4A8CC, "__GI__IO_file_doallocate", "./libio/./libio/filedoalloc.c", 101, LIBC)
    frames = [new, inner, STRDUP]
    assert generate(frames) == "leak:^__GI__IO_file_doallocate$"
    assert round_trips(frames)


def test_generate_honours_the_system_filter_given():
    frames = [STRDUP, MAKE_LEAK]
    assert generate(frames, system=SystemFilter("")) == "leak:^__GI___strdup$"
    assert generate(frames, system=SystemFilter(r"^/home/")) == "leak:^__GI___strdup$"


@pytest.mark.parametrize("name", [
    "operator*(Matrix const&, Matrix const&)",
    "f(char*, int**)",
    "^weird",
    "weird$",
    "(anonymous namespace)::pool::pool()",
    "std::map<int, std::string>::operator[](int const&)",
])
def test_generated_line_round_trips_for_names_with_special_characters(name):
    frame = Frame(0x401000, name, "/home/user/src/x.cc", 1, APP)
    line = generate([frame])
    assert line == f"leak:^{name}$"
    assert round_trips([frame])


def test_generate_without_any_name_uses_the_object():
    frames = [Frame(0x7FFFF7000010, "0x7ffff7000010", None, None, "/opt/lib/libblob.so")]
    assert generate(frames) == "leak:^/opt/lib/libblob.so$"
    assert round_trips(frames)


def test_generate_for_nothing_known_is_an_error():
    with pytest.raises(ValueError):
        generate([Frame(0x10, "0x10")])


# -- defaults -----------------------------------------------------------------------------------------------------
def test_default_suppressions_parse_with_default_source():
    defaults = SuppressionList.default()
    assert len(defaults) >= 1
    assert all(s.source == DEFAULT_SOURCE and s.line > 0 for s in defaults)
    assert len(SuppressionList.parse(DEFAULT_SUPPRESSIONS, DEFAULT_SOURCE)) == len(defaults)


def test_every_default_suppression_has_a_comment_above_it():
    lines = DEFAULT_SUPPRESSIONS.splitlines()
    for s in SuppressionList.default():
        above = next(line for line in reversed(lines[:s.line - 1]) if not line.startswith("frames:"))
        assert above.startswith("#"), f"no justification above {s}"


def test_default_suppressions_never_match_any_frame_like_lsan_lines():
    """A `leak:` default matches any frame, so it hides user code running under the runtime (constructors)."""
    assert all(isinstance(s, FrameSuppression) for s in SuppressionList.default())


# Stacks as gdb-memleak recorded them on Debian 12 (glibc 2.36 with libc6-dbg, g++ 12), innermost first.
CXX_EMERGENCY_POOL = [  # 72,704 bytes, from `int main() { std::cout << ...; }`
    Frame(0x7FFFF7CA57BA, "libstdc++.so.6+0xa57ba", None, None, LIBSTDCXX),
    Frame(0x7FFFF7FCEA1E, "call_init", "./elf/./elf/dl-init.c", 74, LDSO),
    Frame(0x7FFFF7FCEB04, "_dl_init", "./elf/./elf/dl-init.c", 121, LDSO),
    Frame(0x7FFFF7FE4BA0, "_dl_start_user+0x28", None, None, LDSO),
]
STDOUT_BUFFER = [  # 4,096 bytes, from `puts("hi")`
    Frame(0x7FFFF7E4A8CC, "__GI__IO_file_doallocate", "./libio/./libio/filedoalloc.c", 101, LIBC),
    Frame(0x7FFFF7E580A0, "__GI__IO_doallocbuf", "./libio/./libio/libioP.h", 947, LIBC),
    Frame(0x7FFFF7E57478, "_IO_new_file_overflow", "./libio/./libio/fileops.c", 744, LIBC),
    Frame(0x7FFFF7E5663E, "_IO_new_file_xsputn", "./libio/./libio/libioP.h", 947, LIBC),
    Frame(0x7FFFF7E2765B, "__GI__IO_puts", "./libio/./libio/ioputs.c", 40, LIBC),
    Frame(0x555555555170, "main", "/tmp/c.c", 3, "/tmp/c"),
]
STDOUT_BUFFER_NO_LIBC_DEBUG_INFO = [  # the same without libc6-dbg: GDB's minimal symbols
    Frame(0x7FFFF7E4A8CC, "_IO_file_doallocate+0x8c", None, None, LIBC),
    Frame(0x555555555170, "main", "/tmp/c.c", 3, "/tmp/c"),
]


@pytest.mark.parametrize("stack", [CXX_EMERGENCY_POOL, STDOUT_BUFFER, STDOUT_BUFFER_NO_LIBC_DEBUG_INFO],
                         ids=["cxx-emergency-pool", "stdout-buffer", "stdout-buffer-minimal-symbols"])
def test_default_suppressions_hide_runtime_one_off_blocks(stack):
    assert SuppressionList.default().match(stack) is not None


def test_default_suppressions_keep_the_users_leaks():
    defaults = SuppressionList.default()
    assert defaults.match([MAKE_LEAK, MAIN]) is None
    assert defaults.match([STRDUP, MAKE_LEAK, MAIN]) is None
    fopen = [Frame(0x7FFFF7E4B000, "__fopen_internal", "./libio/./libio/iofopen.c", 75, LIBC), MAIN]
    assert defaults.match(fopen) is None  # a FILE never fclose()d is the user's leak


# -- frames: lines ---------------------------------------------------------------------------------------------------
def test_frames_line_parses_matchers_and_prints_back():
    [s] = SuppressionList.parse("frames: ... ; fun:operator new(unsigned long) obj:*/libstdc++* ; obj:/x.so\n", "f")
    assert str(s) == "frames: ... ; fun:operator new(unsigned long) obj:*/libstdc++* ; obj:/x.so"
    assert (s.source, s.line, s.where) == ("f", 1, "f:1")
    assert SuppressionList.parse(str(s), "f")._items[0].frames == s.frames


def test_frames_line_is_anchored_at_the_frame_that_called_the_allocator():
    s = FrameSuppression.parse("fun:make_leak")
    assert s.matches_stack([MAKE_LEAK, MAIN])
    assert not s.matches_stack([STRDUP, MAKE_LEAK, MAIN])  # make_leak is not the allocating frame here
    assert FrameSuppression.parse("... ; fun:make_leak").matches_stack([STRDUP, MAKE_LEAK, MAIN])
    assert FrameSuppression.parse("fun:*strdup ; fun:make_leak ; fun:main").matches_stack([STRDUP, MAKE_LEAK, MAIN])
    assert not FrameSuppression.parse("fun:*strdup ; fun:main").matches_stack([STRDUP, MAKE_LEAK, MAIN])


def test_frames_globs_match_whole_names_and_every_field_of_a_matcher():
    assert not FrameSuppression.parse("fun:make").matches_stack([MAKE_LEAK])  # whole name, not a substring
    assert FrameSuppression.parse("fun:make_le?k obj:*/app").matches_stack([MAKE_LEAK])
    assert not FrameSuppression.parse("fun:make_leak obj:*/libc.so.6").matches_stack([MAKE_LEAK])
    assert not FrameSuppression.parse("fun:a").matches_stack([])


# Stacks recorded on Debian 12 (glibc 2.36 + libc6-dbg): a user library's constructor, a thread's DTV.
LIBCTOR = "/home/user/lib/libctor_leak.so"
USER_CONSTRUCTOR = [  # 500 bytes, valgrind: definitely lost
    Frame(0x7FFFF7FB9139, "ctor_leak_init", "/home/user/src/ctor_leak.c", 21, LIBCTOR),
    Frame(0x7FFFF7FCEA1E, "call_init", "./elf/./elf/dl-init.c", 74, LDSO),
    Frame(0x7FFFF7FCEB04, "_dl_init", "./elf/./elf/dl-init.c", 121, LDSO),
    Frame(0x7FFFF7FE4BA0, "_dl_start_user+0x28", None, None, LDSO),
]
USER_CONSTRUCTOR_VIA_LIBSTDCXX = [  # a user constructor calling a libstdc++ function that allocates
    Frame(0x7FFFF7D4C0DE, "std::__cxx11::basic_string<char>::_M_create(unsigned long&, unsigned long)+0x2e", None,
          None, LIBSTDCXX),
    USER_CONSTRUCTOR[0], *USER_CONSTRUCTOR[1:],
]
THREAD_DTV = [  # 272 bytes per thread, possibly lost under valgrind --run-libc-freeres=no
    Frame(0x7FFFF7FDC4F2, "calloc", "./elf/../include/rtld-malloc.h", 44, LDSO),
    Frame(0x7FFFF7FDC4F2, "__GI__dl_allocate_tls", "./elf/../elf/dl-tls.c", 670, LDSO),
    Frame(0x7FFFF7E5E2C5, "allocate_stack", "./nptl/./nptl/allocatestack.c", 423, LIBC),
    Frame(0x401600, "main", "/home/user/src/app.c", 32, APP),
]
THREAD_DTV_NO_LIBC_DEBUG_INFO = [
    Frame(0x7FFFF7FDC4F2, "_dl_allocate_tls+0x42", None, None, LDSO),
    Frame(0x7FFFF7E5E2C5, "pthread_create@@GLIBC_2.34+0x8c5", None, None, LIBC),
    Frame(0x401600, "main", "/home/user/src/app.c", 32, APP),
]
THREAD_WORKER_LEAK = [
    Frame(0x401700, "worker", "/home/user/src/app.c", 12, APP),
    Frame(0x7FFFF7E5DFD4, "start_thread", "./nptl/./nptl/pthread_create.c", 442, LIBC),
    Frame(0x7FFFF7EDD66C, "clone3", None, None, LIBC),
]
STATIC = "/home/user/app_static"
STATIC_STARTUP = [
    Frame(0x4A1B2D, "_dl_find_object_init+0x3d", None, None, STATIC),
    Frame(0x4A0AB0, "_dl_non_dynamic_init+0x7e0", None, None, STATIC),
    Frame(0x4A0005, "__libc_init_first+0x25", None, None, STATIC),
]


@pytest.mark.parametrize("stack", [USER_CONSTRUCTOR, USER_CONSTRUCTOR_VIA_LIBSTDCXX, THREAD_WORKER_LEAK],
                         ids=["user-library-constructor", "user-constructor-via-libstdc++", "thread-worker"])
def test_default_suppressions_never_hide_a_user_frames_leak(stack):
    assert SuppressionList.default().match(stack) is None


@pytest.mark.parametrize("stack", [THREAD_DTV, THREAD_DTV_NO_LIBC_DEBUG_INFO, STATIC_STARTUP],
                         ids=["thread-dtv", "thread-dtv-minimal-symbols", "static-startup"])
def test_default_suppressions_hide_the_runtimes_own_blocks(stack):
    assert SuppressionList.default().match(stack) is not None
