"""What both engines do alike, written once: where a breakpoint hit goes, how a stop() callback fails, what a fork
and a stop do to the breakpoints, the `_exit`/`execve` hooks, and which malloc serves the process.

- `ForkFamily`: the engines of one forked family by inferior number. GDB gives a breakpoint set before a fork a
  location in the child too, so one breakpoint serves the whole family and each hit goes to the engine of the
  inferior that hit it (session.confine_locations keeps the locations to the family).
- `RoutedBreakpoint`: an internal, silent breakpoint whose stop() routes the hit and guards the handler: a stop()
  must never raise into GDB. An error is counted on the engine (`memleak status`), logged with its traceback under
  `set debug memleak on`, and said once through the session's output (the CLI's stream in a batch run).
- `ExitHooks`: the breakpoints at `_exit` (the scan while the memory is intact) and `execve` (the image before it
  goes), shared by the family like every breakpoint set before a fork.
- `CoreEngine`: the `Engine` both engines derive from: fork and stop bookkeeping around those.
- `serving_malloc`, `is_glibc_malloc`, `maps_without`: which allocator the process really calls.
"""

from __future__ import annotations

import os
from abc import abstractmethod
from typing import Any, Callable

import gdb

from ..core.agent_format import is_dynamic
from ..core.allocators import EXIT_HOOKS, Role, by_name
from ..core.procmaps import Mapping
from ..core.table import AllocationTable
from .engine import Clock, Engine, EngineEvents
from .log import log
from .resolve import Definition, locate

# A handler gets the engine of the inferior that hit the breakpoint; typed Any so that an engine's own method
# (`BreakpointEngine.on_return`) can be given as it is.
Handler = Callable[[Any], bool]


class ForkFamily:
    """The engines sharing breakpoints: a process and the forked children GDB keeps, by inferior number."""

    def __init__(self, first: CoreEngine) -> None:
        self.engines: dict[int, CoreEngine] = {first.inferior.num: first}

    def add(self, engine: CoreEngine) -> None:
        self.engines[engine.inferior.num] = engine

    def leave(self, engine: CoreEngine) -> bool:
        """Take `engine` out; True when none is left (the family's shared breakpoints are then its to delete)."""
        self.engines.pop(engine.inferior.num, None)
        return not self.engines

    @property
    def inferiors(self) -> frozenset[int]:
        return frozenset(self.engines)


class RoutedBreakpoint(gdb.Breakpoint):
    """A breakpoint of an engine: its hits go to `handler` with the engine of the inferior that hit it."""

    def __init__(self, family: ForkFamily, address: int, handler: Handler) -> None:
        super().__init__(f"*0x{address:x}", type=gdb.BP_BREAKPOINT, internal=True)
        self.silent = True
        self.family = family  # session.confine_locations reads it (set after the breakpoint_created event)
        self.handler = handler

    def stop(self) -> bool:
        engine = self.family.engines.get(gdb.selected_inferior().num)
        if engine is None:
            return False
        engine.stops += 1
        try:
            return self.handler(engine)
        except Exception as exc:  # noqa: BLE001 - stop() is a boundary: the program goes on
            engine.internal_error(exc, self.handler)
            return False


def _at_exit(engine: CoreEngine) -> bool:
    return engine.events.exiting()


def _at_exec(engine: CoreEngine) -> bool:
    engine.events.exec_called()
    return False


class ExitHooks:
    """`_exit` and `execve` (EXIT_HOOKS), hooked alike by every engine."""

    def __init__(self, family: ForkFamily) -> None:
        self.family = family
        self.placed: dict[str, RoutedBreakpoint] = {}

    @property
    def complete(self) -> bool:
        return all(s.name in self.placed for s in EXIT_HOOKS)

    def place(self, maps: list[Mapping]) -> None:
        """Hook those the objects in `maps` define and are not hooked yet."""
        wanted = [s for s in EXIT_HOOKS if s.name not in self.placed]
        for definition in locate(wanted, maps) if wanted else []:
            handler = _at_exit if definition.spec.role is Role.EXIT else _at_exec
            self.placed[definition.spec.name] = RoutedBreakpoint(self.family, definition.address, handler)

    def remove(self, last: bool) -> int:
        """How many there are; deleted when the last engine of the family stops (others still use them)."""
        count = len(self.placed)
        if last:
            for bp in self.placed.values():
                if bp.is_valid():
                    bp.delete()
            self.placed.clear()
        return count


class CoreEngine(Engine):
    """An engine whose breakpoints are routed, guarded and shared by a fork family (both engines)."""

    def __init__(self, inferior: gdb.Inferior, table: AllocationTable, events: EngineEvents, clock: Clock) -> None:
        super().__init__(inferior, table, events, clock)
        self.family = ForkFamily(self)
        self.exit_hooks = ExitHooks(self.family)
        self.stops = 0             # breakpoint hits routed to this engine
        self.internal_errors = 0   # of which raised (counted, said once)

    # -- fork and stop ------------------------------------------------------------------------------------------
    def fork(self, child: gdb.Inferior, table: AllocationTable, events: EngineEvents) -> Engine:
        """The child's engine (`forked`) joins this family: the breakpoints set before the fork serve it too."""
        engine = self.forked(child, table, events)
        engine.join(self.family, self.exit_hooks)
        return engine

    @abstractmethod
    def forked(self, child: gdb.Inferior, table: AllocationTable, events: EngineEvents) -> CoreEngine:
        """A new engine for a forked child on this engine's clock, sharing what this one set before the fork."""

    def join(self, family: ForkFamily, exit_hooks: ExitHooks) -> None:
        """Route through `family` from now on (subclasses also hand it to what places breakpoints for them)."""
        family.add(self)
        self.family, self.exit_hooks = family, exit_hooks

    def stop(self) -> int:
        """Leave the family; the last to leave deletes the shared breakpoints. Returns how many this engine used."""
        last = self.family.leave(self)
        removed = self.exit_hooks.remove(last) + self.remove_hooks(last)
        family = ForkFamily(self)  # on its own again: a later `memleak start` hooks it alone
        self.join(family, ExitHooks(family))
        return removed

    @abstractmethod
    def remove_hooks(self, last: bool) -> int:
        """Delete this engine's own breakpoints, and the family's shared ones when `last`; returns how many it
        used (its own and the shared ones)."""

    # -- failures -----------------------------------------------------------------------------------------------
    def internal_error(self, exc: Exception, handler: object) -> None:
        """A stop() handler raised: count it, log it, say the first one."""
        self.internal_errors += 1
        where = getattr(handler, "__name__", repr(handler))
        log.debug("internal error in breakpoint handler %s", where, exc_info=True)
        if self.internal_errors == 1:
            self.events.say(f"internal error in the {self.name} engine's breakpoint handler {where}: {exc!r} "
                            "(`set debug memleak on` shows the traceback; `memleak status` counts them)")

    def status(self) -> list[str]:
        lines = self.describe()
        if self.internal_errors:
            lines.append(f"internal errors: {self.internal_errors:,}")
        return lines

    def describe(self) -> list[str]:
        """The engine's own lines for `memleak status`: what is hooked, what it cost."""
        return []


# -- which allocator serves the process ----------------------------------------------------------------------------

def maps_without(maps: list[Mapping], path: str | None) -> list[Mapping]:
    """The mappings minus one object's (the recorder's): lookups then find what it forwards to (libc's)."""
    return [m for m in maps if not path or m.path != path]


def serving_malloc(maps: list[Mapping]) -> Definition | None:
    """The malloc the process really calls: the first object in load order that defines it."""
    found = locate([by_name()["malloc"]], maps)
    return found[0] if found else None


def is_glibc_malloc(malloc: Definition | None, program: str | None) -> bool:
    """Whether malloc is glibc's (libc.so, or linked into a static executable) rather than a replacement (a
    dynamic executable's own malloc, a preloaded jemalloc): the scan then skips glibc's own chunk links."""
    if malloc is None:
        return True
    if malloc.object == program:
        return not is_dynamic(malloc.object)
    return os.path.basename(malloc.object).startswith("libc.so")
