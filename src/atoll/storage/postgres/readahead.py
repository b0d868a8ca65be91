"""ReadAhead: a batch's lookups fetched at once, in the round trip that takes its lock.

Why. A put, a delete or an update looks its key up before it writes (the live item and
the tombstone: PostgresTxn.versions). On PostgreSQL each lookup is a round trip, and
the batch waits on each one holding the region's write lock (loghead.py): with 32
writes a batch, 32 round trips in a row that no other node's batch can overlap.

How. A job names the keys it will look up (Storage.write's `keys`, a hint). A batch's
`begin` queues one statement that fetches the rows of all its jobs' keys right behind
the statement that locks the region's head, in the same pipeline: both go in one round
trip, and the server runs the lookup only once the lock is granted, so it sees
everything committed before the batch (READ COMMITTED: a statement's snapshot is taken
when it starts), as the jobs' own lookups would have.

What keeps it exact. A key's rows are used once, by the first lookup of the key, and
dropped as soon as the batch writes the key (`forget`, from every write of an item or a
tombstone; `clear` from the bulk writes that may touch any key). A lookup after either
goes to the database, which sees the batch's own queued writes. So a lookup answered
from here returns what the database would have answered at that moment. A replayed
batch (storage.py) begins again and reads ahead again.

Bounds: at most MAX_KEYS keys a batch (beyond them jobs look their keys up themselves).
The statement is plain SQL (a VALUES list joined to the tables' primary keys), which
Postgres-compatible distributed engines also run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from atoll.invariant import invariant

MAX_KEYS = 1024

Key = tuple[int, int, bytes, bytes]
# A row as PostgresTxn.versions reads it: (kind, item, size, hlc, origin, crc, prev_hlc,
# prev_origin, state), kind 0 for the live item, 1 for the tombstone; state is the row's
# causal state (NULL: the row form), which the write's item_state asks for next.
Row = tuple[Any, ...]

_KEY_VALUES = "(CAST(%s AS bigint), CAST(%s AS bigint), CAST(%s AS bytea), CAST(%s AS bytea))"
_QUERY = (
    "WITH k (tid, h, pk, sk) AS (VALUES {}) "
    "SELECT 0, k.tid, k.h, k.pk, k.sk, i.item, i.size, i.hlc, i.origin, i.crc, i.prev_hlc,"
    " i.prev_origin, i.state FROM k JOIN items i"
    " ON i.tid = k.tid AND i.h = k.h AND i.pk = k.pk AND i.sk = k.sk"
    " UNION ALL SELECT 1, k.tid, k.h, k.pk, k.sk, NULL, NULL, t.hlc, t.origin, NULL,"
    " t.prev_hlc, t.prev_origin, t.state FROM k JOIN tombstones t"
    " ON t.tid = k.tid AND t.h = k.h AND t.pk = k.pk AND t.sk = k.sk")


class ReadAhead:
    """The rows of the keys a batch's jobs will look up (see the module doc)."""

    def __init__(self) -> None:
        self._rows: dict[Key, list[Row]] = {}
        self._asked: list[Key] = []
        self.sent = 0  # keys read ahead since start (status figures)
        self.used = 0  # lookups answered from here

    def send(self, cur: Any, keys: Sequence[Key]) -> bool:
        """Queue the lookup of `keys` on `cur` (in pipeline mode: not waited for);
        whether anything was sent."""
        self._rows.clear()
        unique = list(dict.fromkeys(keys))[:MAX_KEYS]
        self._asked = unique
        if not unique:
            return False
        params = [value for key in unique for value in key]
        cur.execute(_QUERY.format(",".join([_KEY_VALUES] * len(unique))), params)
        return True

    def receive(self, cur: Any) -> None:
        """The answer to `send` (waits for it): every asked key gets its rows, maybe none."""
        rows: dict[Key, list[Row]] = {key: [] for key in self._asked}
        for kind, tid, h, pk, sk, *rest in cur.fetchall():
            key = (int(tid), int(h), bytes(pk), bytes(sk))
            # a key that came back unlike it was asked would leave the asked one "absent"
            invariant(key in rows, "a key read ahead came back changed")
            rows[key].append((kind, *rest))
        self._rows = rows
        self.sent += len(self._asked)
        self._asked = []

    def take(self, key: Key) -> list[Row] | None:
        """The key's rows as read ahead (once), or None: look it up."""
        rows = self._rows.pop(key, None)
        if rows is not None:
            self.used += 1
        return rows

    def forget(self, key: Key) -> None:
        """The batch wrote the key: what was read ahead of it is stale."""
        self._rows.pop(key, None)

    def clear(self) -> None:
        self._rows.clear()
        self._asked = []
