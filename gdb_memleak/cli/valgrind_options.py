"""valgrind's option syntax for the batch CLI: `gdb-memleak --tool=memcheck --leak-check=full --log-file=x.%p.log
./prog` works where valgrind is wired in (CTest's MEMORYCHECK_COMMAND, IDEs, CI scripts).

The command line is translated before argparse reads it: each valgrind option becomes today's option (`--num-callers
=12` -> `--depth 11`) or one of the few that exist for it alone (`--gen-suppressions`, `--log-file`, `-q`, `-v`);
the options valgrind has that mean nothing here are dropped and named in one note line; any other option that is
neither gdb-memleak's nor valgrind's is one error. Only the options before the program are read (PROG's own
arguments are never touched). `VALGRIND_OPTIONS` is the table, said once: README's table is written from it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

#: what the valgrind option's value becomes: the options for argparse (`late`: they win over the others, as
#: `--leak-check=summary` hides the loss records whatever `--show-leak-kinds` says)
Handler = Callable[[str], "Mapped"]


class OptionError(ValueError):
    """A valgrind option this tool cannot honour, or an unknown option: one line."""


@dataclass
class Mapped:
    args: list[str] = field(default_factory=list)
    late: list[str] = field(default_factory=list)
    xml: bool = False


def _choice(name: str, table: Mapping[str, Mapped]) -> Handler:
    def handle(value: str) -> Mapped:
        if value not in table:
            raise OptionError(f"--{name}={value}: valgrind's values are {', '.join(table)}")
        return table[value]
    return handle


def _tool(value: str) -> Mapped:
    if value != "memcheck":
        raise OptionError(f"--tool={value}: gdb-memleak is memcheck only (leaks and heap errors)")
    return Mapped()


def _num_callers(value: str) -> Mapped:
    """valgrind counts the allocator's own frame among its callers: its N is our N-1 frames above it."""
    if not value.isdigit() or not 1 <= int(value) <= 500:
        raise OptionError(f"--num-callers={value}: a number from 1 to 500")
    return Mapped(["--depth", str(max(int(value) - 1, 1)), NUM_CALLERS, value])


def _xml(value: str) -> Mapped:
    """`--xml=yes` only says that `--xml-file` is valgrind's XML: ours always is (checked in `translate`)."""
    if value not in ("yes", "no"):
        raise OptionError(f"--xml={value}: yes or no")
    return Mapped(xml=value == "yes")


_NO_RECORDS = Mapped(late=["--show-leak-kinds", "none", "--errors-for-leak-kinds", "none"])

#: the hidden option of gdb-memleak's parser that carries valgrind's --num-callers to the suppression matcher
NUM_CALLERS = "--valgrind-num-callers"

#: valgrind option (without its dashes) -> what it becomes here; valgrind's options gdb-memleak has under the same
#: name and meaning (--show-leak-kinds, --errors-for-leak-kinds, --error-exitcode, --suppressions, --log-file,
#: --xml-file, --leak-check-heuristics, -q, -v) are read by argparse as they are (`--name=VALUE` included)
VALGRIND_OPTIONS: dict[str, Handler] = {
    "tool": _tool,
    "leak-check": _choice("leak-check", {"full": Mapped(), "yes": Mapped(), "summary": _NO_RECORDS,
                                         "no": _NO_RECORDS}),
    "show-reachable": _choice("show-reachable", {"yes": Mapped(["--show-leak-kinds", "all"]),
                                                 "no": Mapped(["--show-leak-kinds", "definite,possible"])}),
    "num-callers": _num_callers,
    "gen-suppressions": _choice("gen-suppressions", {"all": Mapped(["--gen-suppressions"]),
                                                     "yes": Mapped(["--gen-suppressions"]), "no": Mapped()}),
    "xml": _xml,
}

#: valgrind's options that change nothing here (accepted with any value, named in one note line): other tools'
#: instrumentation, the gdbserver, how valgrind's own CPU runs, and settings whose effect is already ours
#: (`--trace-children=yes` and `--child-silent-after-fork`: every process is tracked and each reported apart;
#: `--leak-resolution`: loss records are told apart by their whole stack, valgrind's `high`)
IGNORED = frozenset({
    "track-origins", "vgdb", "vgdb-error", "vgdb-stop-at", "read-var-info", "read-inline-info", "malloc-fill",
    "free-fill", "keep-stacktraces", "freelist-vol", "freelist-big-blocks", "track-fds", "time-stamp", "fair-sched",
    "smc-check", "leak-resolution", "trace-children", "trace-children-skip", "child-silent-after-fork",
    "run-libc-freeres", "run-cxx-freeres", "demangle", "max-stackframe", "main-stacksize", "max-threads",
    "undef-value-errors", "partial-loads-ok", "expensive-definedness-checks", "show-mismatched-frees",
    "show-below-main", "fullpath-after", "error-limit", "show-error-list", "alignment", "redzone-size",
    "sim-hints", "soname-synonyms", "ignore-ranges", "ignore-range-below-sp", "show-emwarns",
    "workaround-gcc296-bugs", "extra-debuginfo-path", "allow-mismatched-debuginfo", "merge-recursive-frames",
    "num-transtab-sectors", "avg-transtab-entry-size", "valgrind-stacksize", "aspace-minaddr", "xtree-memory",
    "xtree-leak", "stats", "keep-debuginfo", "error-markers",
    "show-realloc-size-zero", "realloc-zero-bytes-frees", "unw-stack-scan-thresh", "unw-stack-scan-frames",
    "log-fd", "input-fd", "exit-on-first-error", "enable-debuginfod",
})


@dataclass
class Translation:
    args: list[str]                               # the command line argparse reads
    ignored: list[str] = field(default_factory=list)  # valgrind options given that mean nothing here, as typed

    def note(self) -> str | None:
        """The one line naming the ignored options, or None."""
        return (f"gdb-memleak: note: valgrind options that change nothing here, ignored: {' '.join(self.ignored)}"
                if self.ignored else None)


def translate(argv: Sequence[str], own: Mapping[str, bool]) -> Translation:
    """`argv` with valgrind's options made ours. `own` is every option string of gdb-memleak's parser -> whether it
    takes a value (so `--json FILE`'s FILE is not taken for the program). The first word that is not an option (or
    `--`) is the program: it and what follows are kept as they are. OptionError, one line, for an option that is
    neither ours nor valgrind's, or a valgrind value this tool cannot honour."""
    args: list[str] = []
    late: list[str] = []
    ignored: list[str] = []
    xml = False
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--" or not word.startswith("-") or word == "-":
            break
        name, eq, value = word.partition("=")
        key = name[2:] if name.startswith("--") else ""
        if key in VALGRIND_OPTIONS and eq:
            mapped = VALGRIND_OPTIONS[key](value)
            args += mapped.args
            late += mapped.late
            xml = xml or mapped.xml
        elif name in own:
            args.append(word)
            if own[name] and not eq and i + 1 < len(argv):  # `--json FILE`
                args.append(argv[i + 1])
                i += 1
        elif key in IGNORED:
            ignored.append(word)
        else:
            raise OptionError(f"unknown option {word} (neither gdb-memleak's, see --help, nor one of valgrind's it "
                              "accepts)")
        i += 1
    if xml and "--xml-file" not in {a.partition("=")[0] for a in args}:
        raise OptionError("--xml=yes has been specified, but there is no XML output destination: give "
                          "--xml-file=FILE (valgrind's --xml-fd and --xml-socket are not supported)")
    return Translation(args + late + list(argv[i:]), ignored)


_VARIABLE = re.compile(r"%q\{([^}]*)\}")


def expand_log_name(path: str, environment: Mapping[str, str] | None = None) -> str:
    """valgrind's `%q{VAR}` in a --log-file/--xml-file name: the variable's value (an unset one: OptionError, as
    valgrind refuses it); `%%` is `%`. `%p` is left for the driver, which knows each process's pid."""
    env = os.environ if environment is None else environment

    def value(match: re.Match[str]) -> str:
        if match[1] not in env:
            raise OptionError(f"{path}: %q{{{match[1]}}}: environment variable {match[1]} is not set")
        return env[match[1]]

    return _VARIABLE.sub(value, path).replace("%%", "%")
