"""Rebuilding a region from a peer's snapshot: the sequence, as a state machine.

Theory of operation: a region whose peers no longer hold the changes it lacks (purged
after every region acknowledged them, purged by the bounded maximum, or the region lost
its disk) cannot catch up from the log; a Batch says so (`log_start`). It then copies a
peer's state instead:
  1. the head: the peer's cursor vector V0 (read first) and its table states, merged
     here by version (`MergeSnapshotTables`);
  2. per live table, pages of live items, then pages of tombstones, each page merged by
     version (`MergeSnapshotRows`; a local version a row replaces is logged as a
     conflict's loser), at most `max_snapshot_pages` pages per part;
  3. the cursors: each origin continues after V0 (`AdoptCursors`), this region's own
     included, so it never reuses a seq its peers already hold. The ordinary log tail
     follows from there.
Rows written after V0 may already be in the pages: harmless, they merge by version, and
the log tail brings them again as duplicates or as versions that lose.

The shell sends `request()`, gives the answer to `on_answer`, commits the jobs it returns
IN ORDER before sending the next request, and after the last one commits `finish()`.
A malformed answer raises BadMessage; the shell gives up and the puller retries later.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from atoll.clock.hlc import HybridClock
from atoll.invariant import invariant
from atoll.replication.apply import AdoptCursors, MergeSnapshotRows, MergeSnapshotTables
from atoll.replication.config import ReplicationConfig
from atoll.replication.errors import BadMessage
from atoll.replication.snapshot import (
    SnapshotHead,
    SnapshotRequest,
    decode_head,
    decode_page,
    encode_request,
)
from atoll.replication.store import RowKey

Job = MergeSnapshotTables | MergeSnapshotRows


class Rebuild:
    def __init__(self, peer: str, behind: Mapping[str, int], region: str, clock: HybridClock,
                 wall_ms: Callable[[], int], config: ReplicationConfig) -> None:
        self.peer = peer
        self.wall_ms = wall_ms
        self.behind = dict(behind)
        self.region = region
        self.clock = clock
        self.config = config
        self.head: SnapshotHead | None = None
        self.parts: list[tuple[str, bool]] = []  # (table, tombstones) still to copy
        self.after: RowKey | None = None
        self.pages = 0  # of the current part
        self.rows = 0  # copied in all

    def request(self) -> bytes | None:
        """The next request to send; None when every part is copied (then `finish`)."""
        if self.head is None:
            return encode_request(SnapshotRequest(None))
        if not self.parts:
            return None
        table, tombstones = self.parts[0]
        return encode_request(SnapshotRequest(table, tombstones, self.after,
                                              self.config.snapshot_page_rows))

    def on_answer(self, data: bytes) -> list[Job]:
        """The writes the answer to the last request makes, to commit in order."""
        if self.head is None:
            self.head = decode_head(data)
            for name, state in sorted(self.head.tables):
                if state.live:
                    self.parts += [(name, False), (name, True)]
            return [MergeSnapshotTables(self.head.tables)]
        invariant(bool(self.parts), "an answer after the last part")
        table, _tombstones = self.parts[0]
        page = decode_page(data)
        self.rows += len(page.rows)
        jobs: list[Job] = [MergeSnapshotRows(table, page.rows, self.wall_ms)] if page.rows else []
        if page.more and page.last is not None:
            self.after = page.last
            self.pages += 1
            if self.pages >= self.config.max_snapshot_pages:
                raise BadMessage(f"snapshot of {table} exceeds "
                                 f"{self.config.max_snapshot_pages} pages")
        else:
            self.parts.pop(0)
            self.after, self.pages = None, 0
        return jobs

    def finish(self) -> AdoptCursors:
        """The last write: continue from the snapshot's cursors."""
        invariant(self.head is not None and not self.parts, "a rebuild finished early")
        assert self.head is not None
        return AdoptCursors(self.region, tuple(sorted(self.head.cursors.items())), self.clock)
