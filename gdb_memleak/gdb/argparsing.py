"""argparse for GDB commands: errors become one-line `gdb.GdbError`s, `--help` prints usage without exiting GDB."""

from __future__ import annotations

import argparse
from typing import NoReturn

import gdb


class _HelpShown(Exception):
    pass


class CommandParser(argparse.ArgumentParser):
    def __init__(self, prog: str, description: str) -> None:
        super().__init__(prog=prog, description=description, add_help=True)

    def error(self, message: str) -> NoReturn:
        raise gdb.GdbError(f"{self.prog}: {message} (see `help {self.prog}`)")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            raise gdb.GdbError(message.strip())
        raise _HelpShown()

    def print_help(self, file=None) -> None:  # noqa: ARG002 - always through GDB
        gdb.write(self.format_help())

    def parse(self, argument: str) -> argparse.Namespace | None:
        """Parse a command line; None when it was `--help` (usage already printed)."""
        try:
            return self.parse_args(gdb.string_to_argv(argument))
        except _HelpShown:
            return None
