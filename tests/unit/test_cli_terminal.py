"""Log lines do not tear a progress bar: on a terminal they go through the same rich
Console (atoll.cli.terminal), which prints them above the live display."""

from __future__ import annotations

import io
import logging
import re

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from atoll.cli.terminal import configure_logging

_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_a_log_line_during_a_progress_bar_stays_on_its_own_line() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, color_system=None)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("INFO", console)
        with Progress(TextColumn("drill"), BarColumn(), console=console,
                      auto_refresh=False) as progress:
            task = progress.add_task("x", total=10)
            progress.update(task, completed=3)
            progress.refresh()
            logging.getLogger("atoll.test").warning("replication from eu-west failed")
            progress.update(task, completed=6)
            progress.refresh()
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
    lines = [_ESCAPES.sub("", line) for line in re.split(r"[\r\n]", out.getvalue())]
    logged = [line for line in lines if "replication from eu-west failed" in line]
    assert logged, out.getvalue()
    assert all("━" not in line and "drill" not in line for line in logged)
    assert "WARNING" in logged[0] and "atoll.test" in logged[0]


def test_off_a_terminal_log_lines_are_plain() -> None:
    console = Console(file=io.StringIO(), force_terminal=False)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("WARNING", console)
        assert type(root.handlers[0]) is logging.StreamHandler
        assert root.level == logging.WARNING
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
