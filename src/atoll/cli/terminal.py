"""The terminal the CLI writes to: one rich Console on stderr for progress displays and
log lines alike.

A rich progress bar redraws itself in place; a log line written to stderr behind its
back (logging's own StreamHandler) would tear it. So on a terminal, log records go
through the same Console (rich's RichHandler), which prints them above a live display.
Elsewhere (a pipe, a CI log) there is no live display and log lines stay plain text.
"""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_stderr: Console | None = None


def stderr_console() -> Console:
    global _stderr
    if _stderr is None:
        _stderr = Console(stderr=True)
    return _stderr


def configure_logging(level: str, console: Console | None = None) -> None:
    console = console or stderr_console()
    handler: logging.Handler
    if console.is_terminal:
        handler = RichHandler(console=console, show_path=False, markup=False,
                              log_time_format="%H:%M:%S")
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(PLAIN_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
