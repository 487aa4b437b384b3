"""The CLI names its report formats without importing the writers: that table must be the writers' own, and the
CLI's start must not import them (nor the report model)."""

from __future__ import annotations

import subprocess
import sys

from gdb_memleak.cli.formats import OUTPUT_FORMATS
from gdb_memleak.core.reports import WRITERS


def test_cli_formats_are_the_writers_formats_in_order_with_their_help():
    assert list(OUTPUT_FORMATS.items()) == [(name, writer.help) for name, writer in WRITERS.items()]


def test_cli_start_imports_no_writer_and_no_report_model():
    probe = ("import sys, gdb_memleak.cli.main as m; m.build_parser(); "
             "print(sorted(n for n in sys.modules if n.startswith(('gdb_memleak.core.report', "
             "'gdb_memleak.core.suppressions'))))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
