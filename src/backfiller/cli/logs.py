"""The core's log records on the command line: a warning (a lineage side channel that failed,
for one) is one line on stderr, ``warning: ...``; with ``--debug`` the debug records and their
tracebacks are shown too. Nothing goes to stdout, where a command's output is."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape

__all__ = ["log_lines"]

#: the loggers whose records are shown: the core's, and the OpenLineage client's it drives
LOGGERS = ("backfiller", "openlineage")


class _Lines(logging.Handler):
    def __init__(self, console: Console, level: int) -> None:
        super().__init__(level)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            label = "warning" if record.levelno >= logging.WARNING else "debug"
            color = "yellow" if label == "warning" else "dim"
            self.console.print(f"[{color}]{label}:[/] {escape(record.getMessage())}")
            if record.exc_info and self.level <= logging.DEBUG:
                self.console.print(
                    escape("".join(traceback.format_exception(*record.exc_info)).rstrip())
                )
        except Exception:  # pragma: no cover - as logging.Handler does
            self.handleError(record)


@contextmanager
def log_lines(console: Console, *, debug: bool = False) -> Iterator[None]:
    """Show the records of :data:`LOGGERS` on ``console`` (stderr) while the command runs."""
    level = logging.DEBUG if debug else logging.WARNING
    handler = _Lines(console, level)
    loggers = [logging.getLogger(name) for name in LOGGERS]
    before = [log.level for log in loggers]
    for log in loggers:
        log.addHandler(handler)
        if debug:
            log.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        for log, old in zip(loggers, before, strict=True):
            log.removeHandler(handler)
            log.setLevel(old)
