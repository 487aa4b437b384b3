"""Runs inside GDB (`gdb -batch -x driver.py --args PROG ...`) for the batch CLI; configured by GDB_MEMLEAK_CLI.

Quits GDB with the CLI's exit status: the program's own, or `error_exitcode` when something was found.
"""

import json
import os
import signal

import gdb

QUIET = ["set pagination off", "set confirm off", "set width 0",
         "set print inferior-events off", "set suppress-cli-notifications on", "set print thread-events off", "set debuginfod enabled off",
         "handle all nostop noprint pass",
         "unset environment GDB_MEMLEAK_CLI", "unset environment GDB_MEMLEAK_PYTHONPATH"]


WRITERS: dict = {}


def _quiet(command: str) -> None:
    try:
        gdb.execute(command, to_string=True)
    except gdb.error:
        pass


def _run(config: dict) -> int:
    gdb.execute(f"source {config['loader']}")
    global WRITERS
    try:
        from gdb_memleak.core.kinds import parse_kinds
        from gdb_memleak.core.report_folded import write_folded
        from gdb_memleak.core.report_json import write_json
        from gdb_memleak.core.report_mtrace import write_mtrace
        from gdb_memleak.core.report_sarif import write_sarif
        from gdb_memleak.gdb import settings
        from gdb_memleak.gdb.session import FATAL_SIGNALS, SESSION
    except ImportError:
        return 2  # the loader already said what is missing
    WRITERS = {"json": write_json, "sarif": write_sarif, "folded": write_folded, "mtrace": write_mtrace}
    for command in QUIET:
        _quiet(command)
    SESSION.stream = open(os.dup(2), "w", buffering=1)
    SESSION.argv = list(config["argv"])
    settings.depth.value = int(config["depth"])
    settings.on_error.value = config["on_error"]
    settings.default_suppressions.value = config["default_suppressions"]
    settings.suppressions.value = ":".join(config["suppressions"])
    SESSION.shown_kinds = parse_kinds(config["shown_kinds"])
    SESSION.error_kinds = parse_kinds(config["error_kinds"])
    SESSION.start()
    gdb.execute(f"catch signal {' '.join(sorted(FATAL_SIGNALS))}", to_string=True)
    gdb.breakpoints()[-1].silent = True  # a silent catchpoint: the program's stdout gets no GDB chatter
    try:
        gdb.execute("run", to_string=True)
        while gdb.selected_inferior().pid:
            tracking = SESSION.current()
            signo = int(gdb.parse_and_eval("$_siginfo.si_signo"))
            if tracking is not None and signal.Signals(signo).name in FATAL_SIGNALS:
                SESSION.fatal_signal(tracking, signal.Signals(signo).name)
                gdb.execute("kill", to_string=True)
            else:
                gdb.execute("continue", to_string=True)
    except gdb.error as exc:
        SESSION.stream.write(f"gdb-memleak: error: {exc}\n")
        return 2
    reports = SESSION.finished_reports()
    for key, writer in WRITERS.items():
        if config.get(key):
            with open(config[key], "w") as f:
                writer(reports, f)
    if not reports:
        return 2
    result = reports[-1].result
    status = result.exit_code if result.exit_code is not None else 128 + int(getattr(signal, result.signal, 9))
    found = any(r.findings(SESSION.error_kinds) for r in reports)
    return config["error_exitcode"] if found and config["error_exitcode"] else status


def main() -> None:
    try:
        status = _run(json.loads(os.environ["GDB_MEMLEAK_CLI"]))
    except Exception as exc:  # noqa: BLE001 - report, never leave GDB at a prompt
        os.write(2, f"gdb-memleak: internal error: {exc!r}\n".encode())
        status = 2
    gdb.execute(f"quit {status}")


main()
