"""IntegrityFaults: the checksum failures a storage found since it started.

Theory of operation: a read that finds a row whose checksum does not match raises
CorruptionDetected (never serves the row) and first reports it here, with what it is
(an item, an index row, a changelog or stream record) and where (table id and key, when
it is a row of a table). Reports come from the event-loop thread (reads) and the writer
thread (reads inside a write job): counting is a few attribute updates under a lock. The
distinct rows are kept, at most MAX_ROWS of them, so that status can say which; each
listener (the node logs with the table's name) hears of every report, with whether its
row is new, so it can log a row once rather than on every request that touches it.

A damaged row stays damaged until it is repaired from a peer, so the count never goes
down while the node runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

MAX_ROWS = 1000


class Located(Protocol):
    """What a checksum failure says (storage.protocol.CorruptionDetected has it)."""

    message: str
    kind: str
    tid: int | None
    pk: bytes | None
    sk: bytes | None


E = TypeVar("E", bound=Located)
Listener = Callable[[Located, bool], None]


@dataclass(frozen=True, slots=True)
class DamagedRow:
    kind: str  # "item", "index item", "changelog record", "stream record"
    tid: int | None
    pk: bytes | None
    sk: bytes | None


class IntegrityFaults:
    def __init__(self) -> None:
        self.detections = 0  # every failed check, the same row's included
        self.rows: dict[DamagedRow, int] = {}  # distinct rows -> detections of each
        self.rows_dropped = 0  # distinct rows beyond MAX_ROWS (counted, not kept)
        self.listeners: list[Listener] = []
        self._lock = threading.Lock()

    def found(self, error: E) -> E:
        """Count `error` and tell the listeners; returns it for the caller to raise."""
        row = DamagedRow(error.kind, error.tid, error.pk, error.sk)
        with self._lock:
            self.detections += 1
            new = row not in self.rows
            if not new:
                self.rows[row] += 1
            elif len(self.rows) < MAX_ROWS:
                self.rows[row] = 1
            else:
                self.rows_dropped += 1
        for listener in self.listeners:
            listener(error, new)
        return error

    @property
    def damaged(self) -> int:
        return len(self.rows) + self.rows_dropped
