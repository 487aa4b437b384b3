"""HeapScan on a live process: the numpy scan fed prepared arrays (what the recorder's columnar table gives it)
classifies exactly as from a dict and as the pure-Python scan, and matches valgrind's verdicts (the targets'
`expect-summary`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import expectations
from conftest import TARGETS, run_gdb

SCRIPT = Path(__file__).resolve().parent / "heapscan_inputs.py"


# global_held and leak_sites: at _exit, glibc's main_arena holds a pointer into a live block (the next chunk's
# header), which the root filter must blank: the numpy path finds those from the roots, the pure one from every block
@pytest.mark.parametrize("target", ["lost_list", "threads_kinds", "interior_only", "global_held", "leak_sites"])
def test_scan_from_prepared_arrays_equals_the_scan_from_the_dict_and_valgrinds_summary(built_targets: Path,
                                                                                       engine: str, target: str):
    run = run_gdb([f"set memleak engine {engine}", "memleak start", "set breakpoint pending on", "break _exit",
                   "run", f"source {SCRIPT}"], built_targets / target)
    scans = {s["name"]: s for s in (json.loads(line[5:]) for line in run.stdout.splitlines()
                                    if line.startswith("SCAN "))}
    assert "python" in scans, run.stdout + run.stderr
    python = scans.pop("python")
    assert python["type"] == "dict"
    expected = expectations.parse(TARGETS / f"{target}.c").summary or {}
    expected.pop("suppressed", None)  # the scan knows nothing of suppressions
    assert {k: (v["bytes"], v["blocks"]) for k, v in python["summary"].items()} == expected
    if not scans:
        pytest.skip("numpy cannot serve GDB's Python: only the pure scan ran")
    assert scans["numpy"]["type"] == scans["arrays"]["type"] == scans["gathered"]["type"] == "KindArray"
    for name in ("numpy", "arrays", "gathered"):
        assert {**scans[name], "name": "", "type": ""} == {**python, "name": "", "type": ""}, name
