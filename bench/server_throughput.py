#!/usr/bin/env python3
"""Requests per second the thread-pool server of c_targets/server/ answers: native, under gdb-memleak (the recorder,
the recorder with live reports, the breakpoint engine) and under valgrind, as ratios to native.

Each configuration starts `bin/server SOCKET` (under the tool), waits for "listening", runs `bin/server_load -c
CLIENTS SOCKET SECONDS 0` (every client sends its next request as soon as the last is answered), reads the requests
answered from the driver's closing line, and ends the server with QUIT. The mix is the driver's (a LOGIN, which
leaks, in ten; half GETs of a 64-entry cache; ECHO, STATS): about 8 allocations and as many frees per request.
Each figure is the median of --repeat rounds, run interleaved so machine noise hits all alike.

Usage: python bench/server_throughput.py [--seconds S] [--clients C] [--repeat R] [--every SECONDS]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "c_targets" / "bin"
CLI = [sys.executable, "-m", "gdb_memleak.cli.main", "--error-exitcode", "0"]
VALGRIND = ["valgrind", "--leak-check=full", "--run-libc-freeres=no", "--run-cxx-freeres=no"]


def configurations(every: float) -> dict[str, list[str]]:
    """What runs the server in each configuration (an empty prefix: natively)."""
    return {"native": [], "recorder": [*CLI, "--engine", "agent"],
            f"recorder, live report every {every:g} s": [*CLI, "--engine", "agent", "--report-every", str(every)],
            "breakpoint engine": [*CLI, "--engine", "breakpoint"], "valgrind": VALGRIND}


def served(prefix: list[str], seconds: float, clients: int) -> float:
    """Requests answered per second by the server run under `prefix`."""
    with tempfile.TemporaryDirectory(prefix="server-bench-") as directory:
        sock = Path(directory) / "socket"
        server = subprocess.Popen([*prefix, str(BIN / "server"), str(sock)], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
        assert server.stdout is not None
        ready = server.stdout.readline()
        if not ready.startswith("listening "):
            server.kill()
            raise RuntimeError(f"the server did not start under {prefix}: {ready!r}")
        load = subprocess.run([str(BIN / "server_load"), "-c", str(clients), "-q", str(sock), str(seconds), "0"],
                              capture_output=True, text=True)
        server.wait(timeout=600)
    m = re.match(r"requests \d+ ok (\d+) failed (\d+)", load.stdout)
    if not m or m.group(2) != "0":
        raise RuntimeError(f"the driver failed under {prefix}: {load.stdout!r} {load.stderr!r}")
    return int(m.group(1)) / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="load per measurement (default 3)")
    parser.add_argument("--clients", type=int, default=4, help="driver threads (default 4)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the median is shown (default 3)")
    parser.add_argument("--every", type=float, default=1.0, help="live report interval (default 1 s)")
    args = parser.parse_args()
    subprocess.run(["make", "-s", "-C", str(ROOT / "c_targets")], check=True)
    runs = configurations(args.every)
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeat):
        for name, prefix in runs.items():
            rates[name].append(served(prefix, args.seconds, args.clients))
    native = statistics.median(rates["native"])
    print(f"{'configuration':<36} {'requests/s':>11} {'x native':>9}")
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"{name:<36} {rate:>11,.0f} {rate / native:>9.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
