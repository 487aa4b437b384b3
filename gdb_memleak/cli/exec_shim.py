"""Stands in for GDB's startup shell in the batch CLI, so the program's arguments never pass through a shell.

GDB starts programs as `$SHELL -c "exec PROG ARGS"`. The CLI points SHELL at a copy of this file, which ignores
that string and execs the program with the exact argv from GDB_MEMLEAK_EXEC (argv[0] as the user typed it) and the
environment GDB gave the shim (less GDB_MEMLEAK_EXEC; LC_CTYPE as given, not as this Python set it),
restoring the caller's SHELL and giving the program the real stdout (GDB's own stdout is kept apart so its messages
never mix with the program's). It writes its pid (the program's, after exec) where the CLI reads it, so the CLI
can pass signals on to the program. Last, it gives the program the caller's signal state (cli/caller.py):
each signal ignored or default as the CLI's caller had it, and the caller's mask; the shim's own Python ignored
SIGPIPE and SIGXFSZ, which exec would otherwise pass on. Self-contained: it runs with `python -S` and imports
only the standard library.
"""

from __future__ import annotations

import json
import os
import signal
import sys


def _callers_signal_state(ignored: list[int], blocked: list[int]) -> None:
    """Each signal ignored or default as the CLI's caller had it (a handler cannot cross exec), and its mask."""
    for signum in signal.valid_signals():
        if signum in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(signum, signal.SIG_IGN if signum in ignored else signal.SIG_DFL)
        except (OSError, ValueError):  # one glibc keeps for itself
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _locale_as_given() -> None:
    """LC_CTYPE as GDB gave it to this shim (from the kernel's copy of the environment): this Python sets
    LC_CTYPE=C.UTF-8 at start-up under the C locale (PEP 538), which the program must not inherit. The one variable
    Python changes; cli/caller.py's rule, restated (the shim imports nothing from the package)."""
    with open("/proc/self/environ", "rb") as f:
        given = [entry[9:] for entry in f.read().split(b"\0") if entry.startswith(b"LC_CTYPE=")]
    if given:
        os.environb[b"LC_CTYPE"] = given[0]
    else:
        os.environb.pop(b"LC_CTYPE", None)


spec = json.loads(os.environ.pop("GDB_MEMLEAK_EXEC"))
if spec["shell"] is None:
    os.environ.pop("SHELL", None)
else:
    os.environ["SHELL"] = spec["shell"]
_locale_as_given()
os.dup2(spec["stdout_fd"], 1)
os.close(spec["stdout_fd"])
with open(spec["pid_file"], "w") as f:
    f.write(str(os.getpid()))

_callers_signal_state(spec["signals"]["ignored"], spec["signals"]["blocked"])
try:
    os.execv(spec["executable"], spec["argv"])
except OSError as exc:
    sys.stderr.write(f"gdb-memleak: cannot execute {spec['argv'][0]}: {exc.strerror}\n")
    os._exit(127)
