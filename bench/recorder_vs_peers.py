#!/usr/bin/env python3
"""The fast engine against its peers, measured side by side in one run: wall time and ratio to the native run.

Columns: native; the recorder alone (LD_PRELOAD, no GDB: the in-process cost); gdb-memleak with the recorder engine
(when the CLI offers `--engine agent`); gdb-memleak's breakpoint engine (run at a smaller N and scaled linearly,
marked `~`); heaptrack; valgrind memcheck (--run-libc-freeres=no --run-cxx-freeres=no).
Workloads: (a) N malloc/free pairs in one thread (c_targets/churn), (b) T threads x N/T pairs (bench/c/threads_churn),
(d) a real program: `jq` over a generated multi-MB JSON file (jq from the system; skipped when not installed).

Usage: python bench/recorder_vs_peers.py [--pairs 1000000] [--threads 8] [--repeat 3] [--breakpoint-pairs 2000]
                                         [--jq-records 40000] [--workloads abd]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import programs  # noqa: E402
from gdb_memleak.agent import build  # noqa: E402

CLI = [sys.executable, "-m", "gdb_memleak.cli.main", "--error-exitcode", "0"]


def timed(argv: list[str], env: dict[str, str] | None = None, cwd: str | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the run and every process it started): on a shared, loaded machine the wall
    time is mostly waiting for a core, the CPU time is what the tool costs."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=cwd)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({proc.returncode}): {proc.stderr.decode()[-500:]}")
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def json_document(path: str, records: int) -> str:
    """A JSON array of `records` nested objects (~130 bytes of JSON each: strings, numbers, lists, objects), made
    once per size with a fixed seed so every run parses the same bytes."""
    if not os.path.exists(path):
        rng = random.Random(records)
        words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]
        doc = [{"id": i, "name": f"{rng.choice(words)}-{i}", "score": round(rng.random() * 100, 3),
                "tags": rng.sample(words, 3), "owner": {"login": rng.choice(words), "uid": rng.randrange(1 << 20)},
                "active": rng.random() < 0.5} for i in range(records)]
        with open(path, "w") as f:
            json.dump(doc, f)
    return path


JQ_FILTER = "[.[] | select(.active) | {name, score, tag: .tags[0]}] | sort_by(.score) | length"


def cli_has_engine_option() -> bool:
    out = subprocess.run([*CLI, "--help"], capture_output=True, text=True, cwd=ROOT).stdout
    return "--engine" in out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1_000_000, help="malloc/free pairs per workload (default 1M)")
    parser.add_argument("--threads", type=int, default=8, help="threads in workload (b) (default 8)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per fast measurement; the median is used")
    parser.add_argument("--breakpoint-pairs", type=int, default=2000,
                        help="pairs run under the breakpoint engine, scaled to --pairs (default 2000)")
    parser.add_argument("--jq-records", type=int, default=40_000,
                        help="objects in workload (d)'s JSON file (default 40,000: about 5 MB)")
    parser.add_argument("--jq-breakpoint-records", type=int, default=400,
                        help="objects in the file run under the breakpoint engine, scaled (default 400)")
    parser.add_argument("--workloads", default="abd", help="which workloads to run (default abd)")
    opts = parser.parse_args()
    subprocess.run(["make", "-s", "-C", str(ROOT / "c_targets")], check=True)
    library = build.ensure_built()
    with_engine = cli_has_engine_option()
    with tempfile.TemporaryDirectory(prefix="bench-recorder-") as tmp:
        threads_bin = str(programs.build("threads_churn", tmp, "-O2", "-fno-omit-frame-pointer", "-pthread"))
        per_thread = opts.pairs // opts.threads
        Workload = tuple  # (argv for a size, full size, breakpoint engine's size)
        workloads: dict[str, Workload] = {}
        if "a" in opts.workloads:
            workloads[f"(a) {opts.pairs:,} pairs"] = (
                lambda n: [str(ROOT / "c_targets" / "bin" / "churn"), str(n)], opts.pairs, opts.breakpoint_pairs)
        if "b" in opts.workloads:
            workloads[f"(b) {opts.threads} threads x {per_thread:,}"] = (
                lambda n: [threads_bin, str(opts.threads), str(max(1, n // opts.threads))], opts.pairs,
                opts.breakpoint_pairs)
        jq = shutil.which("jq")
        if "d" in opts.workloads and jq:
            big = json_document(os.path.join(tmp, f"doc-{opts.jq_records}.json"), opts.jq_records)
            megabytes = os.path.getsize(big) / 1e6
            workloads[f"(d) jq, {megabytes:.1f} MB JSON"] = (
                lambda n: [jq, JQ_FILTER, json_document(os.path.join(tmp, f"doc-{n}.json"), n)], opts.jq_records,
                opts.jq_breakpoint_records)
        elif "d" in opts.workloads:
            print("(d) skipped: jq is not installed (scripts/dev installs it)")
        preload = dict(os.environ, LD_PRELOAD=str(library))
        rows = []
        for label, (argv_for, full, small_size) in workloads.items():
            argv = argv_for(full)
            runs: dict[str, list[tuple[float, float]]] = {"native": [], "recorder": [], "agent": [], "heaptrack": [],
                                             "valgrind": []}
            for _ in range(opts.repeat):  # interleaved, so machine noise hits every column alike
                runs["native"].append(timed(argv))
                runs["recorder"].append(timed(argv, env=preload))
                if with_engine:
                    runs["agent"].append(timed([*CLI, "--engine", "agent", "--", *argv], cwd=str(ROOT)))
                if shutil.which("heaptrack"):
                    runs["heaptrack"].append(timed(["heaptrack", "-o", os.path.join(tmp, "ht"), *argv]))
            if shutil.which("valgrind"):
                runs["valgrind"].append(timed(["valgrind", "-q", "--run-libc-freeres=no", "--run-cxx-freeres=no",
                                               *argv]))
            small = argv_for(small_size)
            bp_cli = [*CLI, *(["--engine", "breakpoint"] if with_engine else []), "--", *small]
            scale = full / small_size
            bp_wall, bp_cpu = timed(bp_cli, cwd=str(ROOT))
            medians = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
                       for k, v in runs.items() if v}
            rows.append((label, medians, (bp_wall * scale, bp_cpu * scale)))
    columns = ["native", "recorder", "agent", "heaptrack", "valgrind", "breakpoint"]
    names = {"native": "native", "recorder": "recorder (preload)", "agent": "gdb-memleak agent",
             "heaptrack": "heaptrack", "valgrind": "valgrind", "breakpoint": "breakpoint engine~"}
    for index, what in ((0, "wall seconds"), (1, "CPU seconds")):
        print(f"\n{what} (x = ratio to native)")
        print(f"{'workload':<24}" + "".join(f"{names[c]:>22}" for c in columns))
        for label, medians, breakpoint in rows:
            medians = {**medians, "breakpoint": breakpoint}
            native = max(medians["native"][index], 1e-3)
            cells = [f"{medians[c][index]:9.3f} {medians[c][index] / native:8.1f}x" if c in medians else "n/a"
                     for c in columns]
            print(f"{label:<24}" + "".join(f"{cell:>22}" for cell in cells))
            if "heaptrack" in medians:
                ht = medians["heaptrack"][index]
                print(f"{'':<24}recorder / heaptrack = {medians['recorder'][index] / ht:.2f}"
                      + (f", gdb-memleak agent / heaptrack = {medians['agent'][index] / ht:.2f}"
                         if "agent" in medians else "")
                      + f", recorder / valgrind = {medians['recorder'][index] / medians['valgrind'][index]:.2f}"
                      if "valgrind" in medians else "")
    print(f"\n~ breakpoint engine measured at {opts.breakpoint_pairs:,} pairs ({opts.jq_breakpoint_records:,} "
          "JSON objects for jq) and scaled linearly; "
          "load average now: " + " ".join(f"{x:.1f}" for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
