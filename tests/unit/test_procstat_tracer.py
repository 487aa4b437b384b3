"""core/procstat.py's tracer and let_go: how a detached process (alive, not traced by us) differs from a dead one."""

from __future__ import annotations

import subprocess
import sys
import time

from gdb_memleak.core.procstat import let_go, tracer


def test_a_running_untraced_process_is_let_go_and_a_reaped_one_is_not():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert tracer(child.pid) == 0
        assert let_go(child.pid)
    finally:
        child.kill()
        child.wait()
    assert tracer(child.pid) is None
    assert not let_go(child.pid)


def test_a_zombie_is_not_let_go():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    for _ in range(200):  # until it has exited (a zombie: not reaped yet)
        with open(f"/proc/{child.pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.05)
    assert not let_go(child.pid)
    child.wait()
