"""Registers commands, settings and event handlers once per GDB session."""

from __future__ import annotations

from . import commands, heapscan, log, recorder_events, session, settings

_registered = False


def register() -> None:
    global _registered
    if _registered:
        return
    settings.register()
    log.register()
    commands.register()
    session.connect()
    recorder_events.register()
    heapscan.announce_numpy_problem()  # numpy itself is imported on first use: see numpy_guard
    _registered = True

