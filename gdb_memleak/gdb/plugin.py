"""Registers commands, settings and event handlers once per GDB session."""

from __future__ import annotations

import signal

from . import agent_engine, commands, heapscan, log, session, settings

_registered = False


def register() -> None:
    global _registered
    if _registered:
        return
    settings.register()
    log.register()
    commands.register()
    session.connect()
    agent_engine.register()
    heapscan.announce_numpy_problem()
    if heapscan.numpy_problem() is None:
        import_numpy_with_signals_blocked()
    _registered = True


def import_numpy_with_signals_blocked() -> None:
    """numpy's BLAS starts worker threads when it is imported. A thread of GDB's process that can take SIGCHLD
    steals the wake-ups GDB waits for, and GDB then hangs waiting for the program (seen with a shell's vfork child).
    GDB 13 has no `gdb.block_signals`: import numpy once, here, with every signal blocked; its threads inherit the
    mask. Later imports (the scan, the recorder's reader) find it loaded."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        import numpy  # noqa: F401
    except ImportError:
        log.log.debug("numpy not importable: pure-Python scan", exc_info=True)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
