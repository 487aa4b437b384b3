"""The suite's own rules: a test that runs valgrind is marked `valgrind` (so `--quick` and `-m "not valgrind"`
leave every valgrind run out)."""

from __future__ import annotations

import pytest

import valgrind


class _Unmarked:
    nodeid = "tests/x.py::test_y"

    def get_closest_marker(self, name: str) -> None:
        return None


def test_valgrind_run_refuses_a_test_not_marked_valgrind():
    this_test = valgrind.CURRENT_TEST[0]
    valgrind.CURRENT_TEST[0] = _Unmarked()
    try:
        with pytest.raises(AssertionError, match=r"tests/x.py::test_y runs valgrind: mark it @pytest.mark.valgrind"):
            valgrind.run(["--version"])
    finally:
        valgrind.CURRENT_TEST[0] = this_test


@pytest.mark.valgrind
@pytest.mark.skipif(not valgrind.available(), reason="valgrind not installed")
def test_valgrind_run_serves_a_marked_test():
    assert valgrind.run(["--version"]).stdout.startswith("valgrind-")
