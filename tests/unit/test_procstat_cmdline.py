"""core/procstat.cmdline: a process's argv as its exec gave it (empty and non-UTF-8 arguments kept)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from gdb_memleak.core.procstat import cmdline


def test_cmdline_keeps_empty_and_undecodable_arguments():
    raw = os.fsdecode(b"caf\xe9")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "", "a b", raw])
    try:
        for _ in range(100):  # until the exec has happened (before it, the child's argv is ours)
            argv = cmdline(child.pid)
            if argv and argv[0] == sys.executable:
                break
            time.sleep(0.01)
        assert argv == [sys.executable, "-c", "import time; time.sleep(30)", "", "a b", raw]
    finally:
        child.kill()
        child.wait()


def test_cmdline_of_a_process_that_is_gone_is_none():
    child = subprocess.Popen(["true"])
    child.wait()
    assert cmdline(child.pid) is None
