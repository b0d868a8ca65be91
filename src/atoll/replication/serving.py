"""The serving side of a Pull: which records to send, and when the puller is behind.

Theory of operation: `answer_pull` is a pure function of the Pull and the server's
committed changelog (read through `ReplicaStore`). For each origin asked for (`origins`,
or every region), it sends the records after max(the puller's cursor, its `ahead`), at
most `max_batch_changes` in all, each origin's in seq order — and only the run that
continues where the puller is: a hole in the server's log (records purged, or a cursor
adopted from a snapshot) cannot be crossed by the log.

`log_start` in the answer names the origins this log cannot bring the puller up to date
on; the puller must then be rebuilt from a snapshot (`atoll.replication.rebuild`):
- the server purged records the puller does not have (its cursor is below the log's
  start), or the records the puller needs next sit behind a hole in the log, or the
  server holds none after them although its cursor is further (a cursor adopted from a
  snapshot);
- the puller lost its own data: it claims none of its own changes while the server
  holds some. Only an empty claim counts: a non-empty one may just be older than the
  changes of the puller that the server pulled meanwhile (two pull loops race).
`held` is the server's cursors as read when the Pull ARRIVED, before any long-poll wait.
A region never needs its own changes back, so its own origin is never "behind" by log.

The shell decides only about waiting: an empty answer to a Pull with `wait_ms` is held
(`hold_ms`) until the next local commit or the wait ends, then answered again.
"""

from __future__ import annotations

from collections.abc import Sequence

from atoll.replication.config import ReplicationConfig
from atoll.replication.cursors import Cursors, cursor_of
from atoll.replication.protocol import Batch, Pull
from atoll.replication.store import ReplicaStore


def answer_pull(pull: Pull, puller: str, regions: Sequence[str], store: ReplicaStore,
                held: Cursors, config: ReplicationConfig) -> Batch:
    """The Batch answering `puller`'s `pull` from `store`'s committed changelog."""
    limit = min(pull.max_changes, config.max_batch_changes)
    records: list[bytes] = []
    behind: dict[str, int] = {}
    for origin in pull.origins or regions:
        if len(records) >= limit:
            break
        after = max(cursor_of(pull.cursors, origin).seq, pull.ahead.get(origin, 0))
        rows = store.records_since(origin, after, limit - len(records))
        if origin != puller and (rows[0][0] != after + 1 if rows
                                 else cursor_of(held, origin).seq > after):
            # a hole (purged, or a cursor adopted from a snapshot): the log cannot bring
            # the puller across it
            behind[origin] = rows[0][0] - 1 if rows else cursor_of(held, origin).seq
            continue
        for expected, (seq, frame) in enumerate(rows, after + 1):
            if seq != expected:
                break  # the next Pull starts at the hole
            records.append(frame)
    for origin, start in store.log_start().items():
        if origin != puller and cursor_of(pull.cursors, origin).seq < start:
            behind[origin] = max(start, behind.get(origin, 0))
    held_of_puller = cursor_of(held, puller).seq
    if held_of_puller > 0 and cursor_of(pull.cursors, puller).seq == 0:
        behind[puller] = held_of_puller
    return Batch(pull.request_id, tuple(records), has_more=len(records) >= limit,
                 log_start=dict(sorted(behind.items())))


def hold_ms(pull: Pull, batch: Batch, config: ReplicationConfig) -> int:
    """How long the shell may hold `pull` for new records before answering `batch`
    again: only an answer with nothing in it is held, and never beyond the maximum."""
    if batch.records or batch.log_start:
        return 0
    return min(pull.wait_ms, config.max_pull_wait_ms)
