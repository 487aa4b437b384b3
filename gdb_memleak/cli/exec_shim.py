"""Stands in for GDB's startup shell in the batch CLI, so the program's arguments never pass through a shell.

GDB starts programs as `$SHELL -c "exec PROG ARGS"`. The CLI points SHELL at a copy of this file, which ignores
that string and execs the program with the exact argv from GDB_MEMLEAK_EXEC (argv[0] as the user typed it),
restoring the caller's SHELL and giving the program the real stdout (GDB's own stdout is kept apart so its messages
never mix with the program's). It writes its pid (the program's, after exec) where the CLI reads it, so the CLI
can pass signals on to the program. Self-contained: it runs with `python -S` and imports only the standard library.
"""

from __future__ import annotations

import json
import os
import sys

spec = json.loads(os.environ.pop("GDB_MEMLEAK_EXEC"))
if spec["shell"] is None:
    os.environ.pop("SHELL", None)
else:
    os.environ["SHELL"] = spec["shell"]
os.dup2(spec["stdout_fd"], 1)
os.close(spec["stdout_fd"])
with open(spec["pid_file"], "w") as f:
    f.write(str(os.getpid()))
try:
    os.execv(spec["executable"], spec["argv"])
except OSError as exc:
    sys.stderr.write(f"gdb-memleak: cannot execute {spec['argv'][0]}: {exc.strerror}\n")
    os._exit(127)
