"""The report files the batch CLI can be asked for (`--FORMAT FILE`): format -> its option's help. A format is named
by its option (`xml-file`: valgrind's own `--xml-file`).

Named here without importing the writers: `core.reports` imports every writer and the whole report model (~20 ms,
a third of the CLI's own start), and the CLI process itself writes no report (the driver, inside GDB, does, through
`core.reports.WRITERS`). tests/unit/test_cli_formats.py keeps this table equal to WRITERS.
"""

from __future__ import annotations

OUTPUT_FORMATS: dict[str, str] = {
    "json": "write the JSON report to FILE",
    "sarif": "write a SARIF 2.1.0 report to FILE",
    "folded": "write folded stacks of leaked bytes (flame graphs) to FILE",
    "mtrace": "write the live blocks to FILE as a glibc mtrace log",
    "html": "write a self-contained HTML report (flame graph, timeline, leak table) to FILE",
    "xml-file": "write valgrind's XML (protocol 4, memcheck's --xml=yes) to FILE; %p in FILE: one file per process, "
                "named by its pid (without %p: the process started only)",
    "log-file": "write the report in valgrind's text layout (memcheck's --log-file: ==PID== lines) to FILE; %p in "
                "FILE: one file per process, named by its pid",
}

