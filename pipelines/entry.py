"""The ``parallax`` command: imports the CLI inside main, so that a Ctrl-C while Ray,
PyAV and the rest load exits 130 with one line, as it does once the command runs."""

from __future__ import annotations

import sys

EXIT_INTERRUPTED = 130


def main() -> int:
    try:
        from pipelines.cli import command_line
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return command_line()
