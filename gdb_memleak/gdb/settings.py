"""`set/show memleak ...`: the user-visible knobs, as GDB parameters under one prefix."""

from __future__ import annotations

import os
import re

import gdb

from ..argtypes import ENGINES, engine_from_environment
from ..core.heuristics import NAMES, parse_heuristics
from ..core.mappings import parse_mapping_kinds
from ..core.suppressions import DEFAULT_SUPPRESSIONS, SuppressionError, SuppressionList
from ..core.symbols import DEFAULT_SYSTEM_OBJECTS
from ..core.valgrind_stack import DEFAULT_NUM_CALLERS

ON_ERROR_CHOICES = ["stop", "report", "skip"]


class SetPrefix(gdb.Command):
    """Settings of gdb-memleak (see `show memleak`)."""

    def __init__(self) -> None:
        super().__init__("set memleak", gdb.COMMAND_DATA, prefix=True)


class ShowPrefix(gdb.Command):
    """Show the settings of gdb-memleak."""

    def __init__(self) -> None:
        super().__init__("show memleak", gdb.COMMAND_DATA, prefix=True)

    def invoke(self, argument: str, from_tty: bool) -> None:
        for param in register().all:
            gdb.write(f"memleak {param.short}: {param.show_value}\n")


class _Param(gdb.Parameter):
    short = ""

    def accept(self) -> None:
        """Remember the value as the one to return to when a later `set` is rejected."""
        self._last_good = self.value

    def reject(self, message: str) -> None:
        self.value = self._last_good
        raise gdb.GdbError(message)

    def validate(self) -> None:
        """Check a value just set; `reject()` it to restore the previous one. Most settings need no check."""

    def get_set_string(self) -> str:
        self.validate()
        self.accept()
        return ""

    @property
    def show_value(self) -> str:
        value = self.value
        if isinstance(value, bool):
            return "on" if value else "off"
        return str(value)

    def get_show_string(self, svalue: str) -> str:
        return f"{(self.__doc__ or '').splitlines()[0].rstrip('.')} is {svalue}."


class BacktraceDepth(_Param):
    """Number of caller frames recorded per allocation.

    Deeper stacks cost more per allocation when a frame has no frame pointer. Default 16."""

    set_doc = "Set the number of caller frames recorded per allocation."
    show_doc = "Show the number of caller frames recorded per allocation."
    short = "backtrace-depth"
    value: int

    def __init__(self) -> None:
        super().__init__("memleak backtrace-depth", gdb.COMMAND_DATA, gdb.PARAM_ZUINTEGER)
        self.value = 16
        self.accept()

    def validate(self) -> None:
        if self.value < 1:
            self.reject("backtrace-depth must be at least 1")


class OnError(_Param):
    """What a heap error (double or invalid free) does.

    stop: stop the program at the bad free, with the report (interactive default).
    report: print the report and let the call go on (glibc may then abort the program).
    skip: print the report and make the bad call return without running it, as valgrind does (the CLI's default)."""

    set_doc = "Set what a heap error does: stop, report or skip."
    show_doc = "Show what a heap error does."
    short = "on-error"
    value: str

    def __init__(self) -> None:
        super().__init__("memleak on-error", gdb.COMMAND_DATA, gdb.PARAM_ENUM, ON_ERROR_CHOICES)
        self.value = "stop"


class EngineChoice(_Param):
    """Which engine tracks the allocator calls (takes effect at the next `memleak start` before `run`).

    The default is $GDB_MEMLEAK_ENGINE when set, else auto.
    auto: the in-process recorder (agent) for a dynamically linked program GDB starts; the breakpoint
    engine for static binaries, attach, a mid-run `memleak start`, or when the recorder cannot be built or loaded
    (one line on stderr says why).
    agent: the recorder (same fallbacks: nothing else can work there). Allocation-heavy programs at near-native
    speed; at a stop (heap error, break-alloc) the program's frame is selected.
    breakpoint: GDB breakpoints on the allocator functions (two stops per allocation, ~200 us each; any program)."""

    set_doc = "Set which engine tracks allocations: auto, agent or breakpoint."
    show_doc = "Show which engine tracks allocations."
    short = "engine"

    def __init__(self) -> None:
        super().__init__("memleak engine", gdb.COMMAND_DATA, gdb.PARAM_ENUM, list(ENGINES))
        try:
            self.value = engine_from_environment()  # $GDB_MEMLEAK_ENGINE, as for the CLI's --engine
        except ValueError as exc:
            self.value = "auto"
            gdb.write(f"gdb-memleak: {exc}: using auto\n", gdb.STDERR)


class SystemObjects(_Param):
    """Regular expression for objects whose frames are 'system' code.

    A leak is shown at its first frame outside these objects (libc, libstdc++, the loader by default)."""

    set_doc = "Set the regular expression matching system objects."
    show_doc = "Show the regular expression matching system objects."
    short = "system-objects"
    value: str

    def __init__(self) -> None:
        super().__init__("memleak system-objects", gdb.COMMAND_DATA, gdb.PARAM_STRING)
        self.value = DEFAULT_SYSTEM_OBJECTS
        self.accept()

    def validate(self) -> None:
        try:
            re.compile(self.value or "")
        except re.error as exc:
            self.reject(f"system-objects: invalid regular expression: {exc}")


class ReportAtExit(_Param):
    """Whether the report is printed when the program exits or dies of a signal."""

    set_doc = "Set whether the report is printed when the program ends."
    show_doc = "Show whether the report is printed when the program ends."
    short = "report-at-exit"
    value: bool

    def __init__(self) -> None:
        super().__init__("memleak report-at-exit", gdb.COMMAND_DATA, gdb.PARAM_BOOLEAN)
        self.value = True


class Suppressions(_Param):
    """Suppression files, separated by ':': valgrind's (`{ name / Memcheck:Leak / fun:... }` entries, read as
    valgrind reads them) or LeakSanitizer's (`leak:PATTERN` lines), told apart by their content.

    Loss records whose stack matches an entry are counted as suppressed instead of listed; heap errors matching a
    Memcheck:Free entry are neither printed nor stopped at, and do not count."""

    set_doc = "Set the suppression files (valgrind or LeakSanitizer format), separated by ':'."
    show_doc = "Show the suppression files and the entries in use."
    short = "suppressions"
    value: str

    def __init__(self) -> None:
        super().__init__("memleak suppressions", gdb.COMMAND_DATA, gdb.PARAM_STRING)
        self.value = ""
        self.accept()

    def files(self) -> list[str]:
        return [f for f in (self.value or "").split(":") if f]

    def validate(self) -> None:
        try:
            for path in self.files():
                SuppressionList.load(path)
        except SuppressionError as exc:
            self.reject(f"suppressions: {exc}")

    def get_show_string(self, svalue: str) -> str:
        lines = [f"Suppression files: {svalue or '(none)'}."]
        entries = active_suppressions()
        lines.append(f"{len(entries)} entries in use:")
        lines += [f"  {s}    ({s.where})" for s in entries]
        return "\n".join(lines)


class DefaultSuppressions(_Param):
    """Whether gdb-memleak's built-in suppressions (libc/libstdc++ one-off allocations) are used."""

    set_doc = "Set whether the built-in suppressions are used."
    show_doc = "Show whether the built-in suppressions are used."
    short = "default-suppressions"
    value: bool

    def __init__(self) -> None:
        super().__init__("memleak default-suppressions", gdb.COMMAND_DATA, gdb.PARAM_BOOLEAN)
        self.value = True


class ErrorsForMappings(_Param):
    """Which mappings and shared memory left behind count as errors (the exit status): mappings, sysv, posix.

    A comma-separated list, `all` or `none`. Default sysv,posix: System V segments never marked for removal and
    POSIX shm objects never unlinked outlive the program; regions never unmapped die with it and are only listed
    (as valgrind lists "still reachable" blocks without failing)."""

    set_doc = "Set which mappings and shared memory left behind count as errors (mappings,sysv,posix|all|none)."
    show_doc = "Show which mappings and shared memory left behind count as errors."
    short = "errors-for-mappings"

    def __init__(self) -> None:
        super().__init__("memleak errors-for-mappings", gdb.COMMAND_DATA, gdb.PARAM_STRING)
        self.value = "sysv,posix"
        self.accept()

    def validate(self) -> None:
        try:
            parse_mapping_kinds(str(self.value or ""))
        except ValueError as exc:
            self.reject(f"errors-for-mappings: {exc}")

    def kinds(self) -> frozenset[str]:
        return parse_mapping_kinds(str(self.value or "none"))


class LeakCheckHeuristics(_Param):
    """Which of valgrind's leak-check heuristics apply: stdstring, length64, newarray, multipleinheritance.

    A comma-separated list, `all` (default, as valgrind's --leak-check-heuristics) or `none`. A block reached only
    through an interior pointer a heuristic accepts (the characters of an old-ABI std::string, a length-prefixed
    block past its length, a new[] array past its count, an object through a base other than its first) is still
    reachable, and the LEAK SUMMARY says how much was reached so ("of which reachable via heuristic"). Applies
    from the next scan."""

    set_doc = "Set which leak-check heuristics apply (stdstring,length64,newarray,multipleinheritance|all|none)."
    show_doc = "Show which leak-check heuristics apply."
    short = "leak-check-heuristics"

    def __init__(self) -> None:
        super().__init__("memleak leak-check-heuristics", gdb.COMMAND_DATA, gdb.PARAM_STRING)
        self.value = "all"
        self.accept()

    def validate(self) -> None:
        try:
            parse_heuristics(str(self.value or ""))
        except ValueError as exc:
            self.reject(f"leak-check-heuristics: {exc} (give all, none, or some of {', '.join(NAMES)})")

    def enabled(self) -> frozenset[str]:
        return parse_heuristics(str(self.value or "none"))

    def get_show_string(self, svalue: str) -> str:
        return f"The leak-check heuristics applied are {svalue}."


def enabled_heuristics() -> frozenset[str]:
    """The leak-check heuristics the next scan applies (`set memleak leak-check-heuristics`)."""
    return register().leak_check_heuristics.enabled()


def mapping_error_kinds() -> frozenset[str]:
    """The mapping kinds that count as errors now (`set memleak errors-for-mappings`)."""
    return register().errors_for_mappings.kinds()


_active: tuple[tuple, SuppressionList] | None = None


#: valgrind's --num-callers for the suppression entries (the batch CLI's --num-callers=N; valgrind's default)
num_callers = DEFAULT_NUM_CALLERS


def active_suppressions() -> SuppressionList:
    """The built-in list (unless switched off) followed by every file of `set memleak suppressions`. Every report
    reads it when it renders; files are parsed again only when a setting or a file's mtime changed."""
    global _active
    params = register()
    files = params.suppressions.files()
    key = (bool(params.default_suppressions.value), tuple((path, _mtime(path)) for path in files), num_callers)
    if _active is not None and _active[0] == key:
        return _active[1]
    result = SuppressionList(num_callers=num_callers)
    if params.default_suppressions.value:
        result.extend(SuppressionList.parse(DEFAULT_SUPPRESSIONS, "<default>"))
    for path in files:
        result.extend(SuppressionList.load(path))
    _active = (key, result)
    return result


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return -1.0


class Settings:
    """The parameters, created together once: GDB needs the `set/show memleak` prefixes before the first one."""

    def __init__(self) -> None:
        SetPrefix()
        ShowPrefix()
        self.depth = BacktraceDepth()
        self.on_error = OnError()
        self.system_objects = SystemObjects()
        self.report_at_exit = ReportAtExit()
        self.suppressions = Suppressions()
        self.default_suppressions = DefaultSuppressions()
        self.errors_for_mappings = ErrorsForMappings()
        self.engine = EngineChoice()
        self.leak_check_heuristics = LeakCheckHeuristics()
        self.all: list[_Param] = [self.depth, self.on_error, self.system_objects, self.report_at_exit,
                                  self.suppressions, self.default_suppressions, self.errors_for_mappings,
                                  self.engine, self.leak_check_heuristics]


_settings: Settings | None = None


def register() -> Settings:
    """Create the prefixes and parameters in this GDB (the first call only) and return them."""
    global _settings
    if _settings is None:
        _settings = Settings()
    return _settings


# The parameters as module attributes (`settings.depth.value`): looked up in the registered Settings by
# __getattr__ below, which registers them on first use.
depth: BacktraceDepth
on_error: OnError
system_objects: SystemObjects
report_at_exit: ReportAtExit
suppressions: Suppressions
default_suppressions: DefaultSuppressions
errors_for_mappings: ErrorsForMappings
engine: EngineChoice
leak_check_heuristics: LeakCheckHeuristics
_PARAMETERS = ("depth", "on_error", "system_objects", "report_at_exit", "suppressions", "default_suppressions",
               "errors_for_mappings", "engine", "leak_check_heuristics")


def __getattr__(name: str) -> _Param:
    if name in _PARAMETERS:
        param: _Param = getattr(register(), name)
        return param
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
