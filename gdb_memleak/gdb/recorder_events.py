"""The GDB events the recorder engine needs, connected once per GDB session (`register`), and the recorder engines
of live processes they reach: a setting typed at the prompt is written into each running recorder's memory, a stop
inside the recorder selects the program's frame (stop_frame.py), and every image GDB follows gets the recorder in its
environment (exec_preload.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import gdb

from . import exec_preload, preload, stop_frame

if TYPE_CHECKING:
    from .agent_engine import AgentEngine

ENGINES: set[AgentEngine] = set()  # recorder engines that found the recorder; an engine leaves it at its stop()


def write_settings(*_event: object) -> None:
    """Before each prompt: `memleak break-alloc N` typed there reaches the recorder before the program runs on."""
    for engine in list(ENGINES):
        if engine.inferior.is_valid() and engine.inferior.pid:
            engine.write_settings()


def break_alloc_changed(number: int | None) -> None:
    """`memleak break-alloc N|off`: the next run's recorder reads N from its environment; a running one gets it
    written into its memory now (a batch GDB shows no prompt before `continue`)."""
    preload.break_alloc_changed(number)
    write_settings()


def register() -> None:
    gdb.events.before_prompt.connect(write_settings)
    gdb.events.stop.connect(stop_frame.on_stop)
    exec_preload.connect(preload.recorder_environment, preload.in_use)
