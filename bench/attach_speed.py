#!/usr/bin/env python3
"""An allocation-heavy loop's speed attached with the recorder, against the recorder started by the CLI, native,
attached with the breakpoint engine, and after detaching.

c_targets/attach/alloc_rate.c prints "<CLOCK_MONOTONIC seconds> <iterations so far>" every 50 ms; this script
reads the rate over windows on the same clock (time.monotonic): native (the program alone), the CLI-started recorder
(`gdb-memleak -- alloc_rate`), attached (`gdb-memleak --pid P --duration D`, the middle of the window) and after the
detach (the same process, on its own again). Targets (issue 18): attached >= 0.8x the CLI recorder; after detach
>= 0.95x native. Each measurement is the median of --repeat rounds, run interleaved so machine noise hits all alike.

Usage: python bench/attach_speed.py [--repeat R] [--duration D] [--no-breakpoint]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "c_targets" / "attach" / "alloc_rate.c"
CLI = [sys.executable, "-m", "gdb_memleak.cli.main", "--error-exitcode", "0", "--no-default-suppressions"]


class RateLog:
    """The program's "<time> <count>" lines, read as they come (a thread), and the rate over a window."""

    def __init__(self, stream) -> None:
        self.points: list[tuple[float, int]] = []
        self.reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.reader.start()

    def _read(self, stream) -> None:
        for line in stream:
            fields = line.split()
            if len(fields) == 2:
                self.points.append((float(fields[0]), int(fields[1])))

    def rate(self, start: float, end: float) -> float:
        inside = [p for p in self.points if start <= p[0] <= end]
        if len(inside) < 2:
            raise RuntimeError(f"no rate points between {start:.2f} and {end:.2f} (have {len(self.points)})")
        (t0, n0), (t1, n1) = inside[0], inside[-1]
        return (n1 - n0) / (t1 - t0)


def start_program(binary: Path, seconds: float,
                  under: list[str] | None = None) -> tuple[subprocess.Popen, int, RateLog]:
    proc = subprocess.Popen([*(under or []), str(binary), str(seconds)], stdout=subprocess.PIPE, text=True,
                            stderr=subprocess.DEVNULL, cwd=ROOT)
    assert proc.stdout is not None
    ready = proc.stdout.readline()
    if not ready.startswith("ready "):
        raise RuntimeError(f"the program did not start: {ready!r}")
    return proc, int(ready.split()[1]), RateLog(proc.stdout)


def native(binary: Path) -> float:
    proc, _, log = start_program(binary, 2.0)
    proc.wait()
    log.reader.join()
    return log.rate(log.points[0][0] + 0.5, log.points[-1][0])


def cli_recorder(binary: Path) -> float:
    proc, _, log = start_program(binary, 4.0, under=[*CLI, "--"])
    proc.wait()
    log.reader.join()
    return log.rate(log.points[0][0] + 1.0, log.points[-1][0] - 0.2)


class TraceWatch:
    """Polls /proc/PID every 5 ms: when the process runs traced (GDB attached, not stopped) and whether the
    recorder is mapped, so the attached window is measured where it really was (not GDB's start-up, the attach
    itself or the report, during which the process is stopped)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.samples, self.done = pid, [], threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        while not self.done.is_set():
            try:
                status = Path(f"/proc/{self.pid}/status").read_text()
                maps = Path(f"/proc/{self.pid}/maps").read_text()
            except OSError:
                return
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            traced = fields.get("TracerPid", "0").strip() != "0"
            running = fields.get("State", "").strip()[:1] in ("R", "S")
            self.samples.append((time.monotonic(), traced and running, "gdb-memleak" in maps))
            time.sleep(0.005)

    def window(self, recorder: bool) -> tuple[float, float]:
        """The span of samples traced and running (and, for the recorder, with it mapped), inner margins off."""
        inside = [t for t, traced, mapped in self.samples if traced and (mapped or not recorder)]
        if not inside:
            raise RuntimeError("the process was never seen running attached")
        return inside[0] + 0.3, inside[-1] - 0.1


def attached(binary: Path, engine: str, duration: float) -> tuple[float, float]:
    """(rate attached, rate after the detach)."""
    proc, pid, log = start_program(binary, duration + 5.0)
    time.sleep(1.0)
    watch = TraceWatch(pid)
    run = subprocess.run([*CLI, "--engine", engine, "--pid", str(pid), "--duration", str(duration)],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    ended = time.monotonic()
    watch.done.set()
    if run.returncode != 0:
        raise RuntimeError(f"gdb-memleak --pid failed: {run.stderr}")
    proc.wait()
    log.reader.join()
    start, end = watch.window(recorder=engine != "breakpoint")
    return log.rate(start, end), log.rate(ended + 0.5, log.points[-1][0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="rounds; medians are printed")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds attached (default 3)")
    parser.add_argument("--no-breakpoint", action="store_true", help="leave out the breakpoint engine")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        binary = Path(tmp) / "alloc_rate"
        subprocess.run(["gcc", "-O2", "-g", "-o", str(binary), str(SOURCE)], check=True)
        rows: dict[str, list[float]] = {}
        for _ in range(opts.repeat):
            rows.setdefault("native", []).append(native(binary))
            rows.setdefault("CLI recorder", []).append(cli_recorder(binary))
            during, after = attached(binary, "auto", opts.duration)
            rows.setdefault("attached, recorder", []).append(during)
            rows.setdefault("after detach", []).append(after)
            if not opts.no_breakpoint:
                during, _ = attached(binary, "breakpoint", opts.duration)
                rows.setdefault("attached, breakpoint engine", []).append(during)
    rate = {name: statistics.median(values) for name, values in rows.items()}
    print(f"{'allocation loop':<30} {'iterations/s':>16}")
    for name, value in rate.items():
        print(f"{name:<30} {value:>16,.0f}")
    print(f"attached / CLI recorder = {rate['attached, recorder'] / rate['CLI recorder']:.2f}   (target >= 0.8)")
    print(f"after detach / native   = {rate['after detach'] / rate['native']:.2f}   (target >= 0.95)")
    if "attached, breakpoint engine" in rate:
        print(f"attached recorder / attached breakpoint engine = "
              f"{rate['attached, recorder'] / rate['attached, breakpoint engine']:,.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
