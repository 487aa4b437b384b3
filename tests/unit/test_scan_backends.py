"""Every unit test that runs the reachability scan runs it on both implementations, pure Python and numpy
(tests/scan_backends.py), so that a change breaking one of them fails a test even when the other still passes."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

UNIT = Path(__file__).resolve().parent
ROOT = UNIT.parent.parent
ENTRIES = {"scan", "scan_python", "referrers"}  # what gdb_memleak.core.scan offers that runs a scan
# modules about one implementation's own types; they compare with the other where both apply
ONE_BACKEND = {"test_reachability_arrays.py": "the numpy scan's array input (Blocks) and output (KindArray)"}


def scanning_tests(path: Path) -> set[str]:
    """The test functions of a module that run a scan: they call an entry, or a function, class or method of the
    module (or a name imported from a test module) that does, however deep."""
    tree = ast.parse(path.read_text())
    imports_entry = any(isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gdb_memleak.core.scan")
                        and {alias.name for alias in node.names} & ENTRIES for node in ast.walk(tree))
    if not imports_entry:
        return set()
    bodies: dict[str, list[ast.AST]] = defaultdict(list)  # module-level functions and classes, methods by name
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            bodies[node.name].append(node)
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef):
                        bodies[item.name].append(item)

    def called(node: ast.AST) -> set[str]:
        names = set()
        for call in ast.walk(node):
            if isinstance(call, ast.Call):
                func = call.func
                names.add(func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute)
                          else "")
        return names

    calls = {name: set().union(*map(called, nodes)) for name, nodes in bodies.items()}
    scanning = set(ENTRIES)
    while True:
        more = {name for name, names in calls.items() if names & scanning} - scanning
        if not more:
            break
        scanning |= more
    return {name for name in scanning if name.startswith("test_") and name in bodies}


def collected(paths: list[Path]) -> dict[tuple[str, str], set[str]]:
    """(module file name, test function) -> the parameter ids pytest collects for it."""
    run = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:xdist", "-p",
                          "no:cacheprovider", *map(str, paths)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    ids: dict[tuple[str, str], set[str]] = defaultdict(set)
    for line in run.stdout.splitlines():
        if "::" not in line:
            continue
        file, test = line.split("::", 1)
        name, _, params = test.partition("[")
        ids[Path(file).name, name].add(params.rstrip("]"))
    return ids


def test_every_scan_test_runs_on_the_pure_and_the_numpy_scan():
    tests = {path: scanning_tests(path) for path in sorted(UNIT.glob("test_*.py")) if path.name not in ONE_BACKEND}
    tests = {path: names for path, names in tests.items() if names}
    # the modules known to scan are found (the search itself works)
    assert {"test_reachability.py", "test_heuristics.py", "test_verdict_reports.py"} <= {p.name for p in tests}
    ids = collected(list(tests))
    single = []
    for path, names in tests.items():
        for name in sorted(names):
            backends = {part for params in ids[path.name, name] for part in params.split("-")}
            if not {"python", "numpy"} <= backends:
                single.append(f"{path.name}::{name} {sorted(ids[path.name, name])}")
    assert not single, "scan tests not run on both implementations (take the `backend` fixture of " \
                       "tests/scan_backends.py):\n" + "\n".join(single)
