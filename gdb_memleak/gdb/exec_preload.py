"""Every image GDB follows gets the recorder, however it was started: its environment is completed on its initial
stack at its first instruction, before the dynamic loader reads it (core/initial_stack.py says how and why).

The recorder's exec hooks give the preload back to the programs the program execs through the PLT; glibc's
`system()`, `popen()` and `posix_spawn()` exec through an internal call, and `execveat`, `fexecve` or a raw system
call bypass them too. GDB stops each new image (the first `run`, every exec of a followed process) before any of
its instructions ran; the first new-objfile event of that stop is where the environment is checked.

Each check's outcome is kept by pid (`started_with`), so the engine's fallback line says what really happened:
that the loader ignored a preload the image had, or that the image never had it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import gdb

from ..core import initial_stack
from ..core.procstat import stat_fields
from .log import log

STARTSTACK_FIELD = 25  # /proc/PID/stat field 28 (the stack pointer the kernel gave the image), after the name
ENV_END_FIELD = 48     # field 51: the end of the environment strings


@dataclass(frozen=True)
class RecorderEnvironment:
    """What an image needs to load the recorder: its path and the settings entries (NAME=value)."""

    library: str
    settings: tuple[str, ...]
    settings_prefix: str


# pid -> None: the image started with the recorder in its environment (given or added here); else why not
_started: dict[int, str | None] = {}


def started_with(pid: int) -> str | None:
    """Why the recorder was not in the environment of `pid`'s current image when it started; None when it was (or
    the image was never seen at its first instruction: GDB's own `run` puts it in)."""
    return _started.get(pid)


def _select(inferior: gdb.Inferior) -> gdb.InferiorThread | None:
    """Make `inferior`'s thread the selected one (GDB selects the exec'ing thread already); returns the thread to
    select back afterwards, if another was selected."""
    before = gdb.selected_thread()
    if gdb.selected_inferior() == inferior and before is not None:
        return None
    threads = inferior.threads()
    if len(threads) != 1:  # an image at its first instruction has one thread
        raise gdb.error("not a single-threaded new image")
    threads[0].switch()
    return before


def _at_first_instruction(pid: int) -> tuple[int, int] | None:
    """(stack pointer, end of the environment strings) when the selected thread of `pid` has not run yet."""
    fields = stat_fields(pid)
    if fields is None or len(fields) <= ENV_END_FIELD:
        return None
    startstack, env_end = int(fields[STARTSTACK_FIELD]), int(fields[ENV_END_FIELD])
    sp = int(gdb.parse_and_eval("$sp")) & 0xFFFFFFFFFFFFFFFF
    if sp != startstack or not sp < env_end or env_end - sp > 4 << 20:
        return None
    return sp, env_end


def _interpreter_entry(inferior: gdb.Inferior, base: int) -> int:
    """The dynamic loader's entry point (it is mapped at AT_BASE; e_entry is at offset 24 of its ELF header)."""
    return base + int.from_bytes(inferior.read_memory(base + 24, 8).tobytes(), "little")


def ensure(inferior: gdb.Inferior, recorder: Callable[[], RecorderEnvironment | None]) -> None:
    """If `inferior` stands at the first instruction of a dynamically linked image whose environment lacks the
    recorder (`recorder()`, None when it is not in use), add it and its settings."""
    if not inferior.pid:
        return
    try:
        before = _select(inferior)
    except gdb.error:
        return
    try:
        _complete(inferior, recorder)
    finally:
        if before is not None and before.is_valid():
            before.switch()


def _complete(inferior: gdb.Inferior, recorder: Callable[[], RecorderEnvironment | None]) -> None:
    pid = inferior.pid
    try:
        where = _at_first_instruction(pid)
        if where is None:
            return
        sp, env_end = where
        stack = initial_stack.parse(inferior.read_memory(sp, env_end - sp).tobytes(), sp)
        base = stack.aux(initial_stack.AT_BASE)
        pc = int(gdb.parse_and_eval("$pc")) & 0xFFFFFFFFFFFFFFFF
        if not base or pc != _interpreter_entry(inferior, base):
            return  # statically linked (no loader to read LD_PRELOAD), or not the image's first instruction
        wanted = recorder()
        if wanted is None:
            return
        environment = stack.environment()
        if initial_stack.has_library(environment, wanted.library.rsplit("/", 1)[-1]):
            _started[pid] = None
            return
        if stack.aux(initial_stack.AT_SECURE):
            _started[pid] = "it runs in secure-execution mode (the dynamic loader ignores LD_PRELOAD there)"
            return
        new_sp, image = initial_stack.with_preload(stack, wanted.library, wanted.settings, wanted.settings_prefix)
        inferior.write_memory(new_sp, image)
        gdb.parse_and_eval(f"$sp = {new_sp}")
        _started[pid] = None
        log.debug("process %d: recorder added to the environment of its new image (sp 0x%x -> 0x%x)", pid, sp,
                  new_sp)
    except (gdb.error, gdb.MemoryError, initial_stack.StackError, ValueError) as exc:
        _started[pid] = f"its environment could not be completed ({exc})"
        log.debug("process %d: environment not completed", pid, exc_info=True)


def connect(recorder: Callable[[], RecorderEnvironment | None], in_use: Callable[[], bool]) -> None:
    """Check every new image (at the new-objfile events of its first stop) while the recorder is in use; `in_use()`
    is the cheap test made first, so GDB sessions not using it never switch threads or read /proc here."""

    def on_new_objfile(event: gdb.NewObjFileEvent) -> None:
        if not in_use():
            return
        progspace = event.new_objfile.progspace
        inferior = next((i for i in gdb.inferiors() if i.progspace == progspace), None)
        if inferior is not None:
            ensure(inferior, recorder)

    gdb.events.new_objfile.connect(on_new_objfile)

