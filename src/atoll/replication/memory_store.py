"""`MemoryStore`: the in-memory `ReplicaStore` (simulator and tests).

Theory of operation: plain dicts, shaped like the SQLite store's tables so that the two
behave alike in every observable way (a seed replays the same simulation over either):
live items and tombstones are kept apart, a key's version is its live item's, else its
tombstone's (a put leaves the older tombstone in place), each with its causal state. Atomicity comes from an
undo log: every mutation inside `write` records how to undo it, and an exception undoes
them in reverse, so a refused or failed job leaves the store exactly as it was. "Durable"
means the object survives a simulated crash: the simulator throws away a region's shell,
never its store.

Each origin's changelog is a list of (seq, frame) in seq order: records are appended in
seq order (apply and local writes advance cursors by one; a rebuild only moves a cursor
forward, leaving a hole the serving side detects) and purged from the front.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import Any, TypeVar

from atoll.invariant import invariant
from atoll.model.keys import partition_hash
from atoll.replication.change import Change, ItemKey, item_json
from atoll.replication.cursors import ZERO, Cursor
from atoll.replication.merge import Conflict, Stored, TableState, drops_items
from atoll.replication.store import RowKey, SnapshotRow, StoreTxn

R = TypeVar("R")

_MISSING = object()
MAX_CONFLICTS = 100_000  # the conflict log keeps the newest this many


class MemoryStore:
    def __init__(self, region: str, max_conflicts: int = MAX_CONFLICTS,
                 wrap: Callable[[StoreTxn], StoreTxn] | None = None) -> None:
        """`wrap`: a test-only fault around every transaction (atoll.replication.faults)."""
        self._region = region
        self.wrap = wrap
        self.items: dict[ItemKey, Stored] = {}  # live items
        self.tombstones: dict[ItemKey, Stored] = {}  # deletes' versions
        self.tables: dict[str, TableState] = {}
        self._cursors: dict[str, Cursor] = {}
        self._log: dict[str, list[tuple[int, bytes]]] = {}
        self._conflicts: list[Conflict] = []
        self._max_conflicts = max_conflicts
        self._undo: list[Callable[[], Any]] | None = None

    @property
    def region(self) -> str:
        return self._region

    # --- committed state ---------------------------------------------------------------
    def cursors(self) -> dict[str, Cursor]:
        return dict(self._cursors)

    def table_state(self, table: str) -> TableState | None:
        return self.tables.get(table)

    def table_states(self) -> dict[str, TableState]:
        return dict(self.tables)

    def log_start(self) -> dict[str, int]:
        return {origin: log[0][0] - 1 for origin, log in self._log.items() if log and log[0][0] > 1}

    def records_since(self, origin: str, after_seq: int, limit: int) -> list[tuple[int, bytes]]:
        log = self._log.get(origin, [])
        first = bisect.bisect_right(log, after_seq, key=lambda entry: entry[0])
        return log[first:first + limit]

    def snapshot_rows(self, table: str, after: RowKey | None, limit: int,
                      tombstones: bool) -> list[SnapshotRow]:
        state = self.tables.get(table)
        if state is None or not state.live:
            return []
        rows = sorted((partition_hash(pk), pk, sk, stored)
                      for (name, pk, sk), stored in (self.tombstones if tombstones
                                                     else self.items).items() if name == table)
        page = []
        for h, pk, sk, stored in rows:
            if after is not None and (h, pk, sk) <= after:
                continue
            item = None if stored.item is None else item_json(stored.item)
            page.append(SnapshotRow(h, pk, sk, stored.version.hlc, stored.version.origin, item,
                                    stored.prev, stored.state))
            if len(page) >= limit:
                break
        return page

    def contents(self) -> dict[ItemKey, Stored]:
        return {**self.tombstones, **self.items}  # a live item is the newer of the two

    def conflicts(self) -> list[Conflict]:
        return list(self._conflicts)

    def log_size(self) -> int:
        return sum(len(log) for log in self._log.values())

    # --- transactions ------------------------------------------------------------------
    def write(self, job: Callable[[StoreTxn], R]) -> R:
        if self._undo is not None:
            raise RuntimeError("nested store transaction")
        self._undo = []
        try:
            txn: StoreTxn = _MemoryTxn(self)
            return job(txn if self.wrap is None else self.wrap(txn))
        except BaseException:
            for undo in reversed(self._undo):
                undo()
            raise
        finally:
            self._undo = None

    def _set(self, target: dict[Any, Any], key: Any, value: Any) -> None:
        old = target.get(key, _MISSING)
        self._on_undo(lambda: target.__setitem__(key, old) if old is not _MISSING
                      else target.pop(key, None))
        if value is _MISSING:
            target.pop(key, None)
        else:
            target[key] = value

    def _on_undo(self, undo: Callable[[], Any]) -> None:
        assert self._undo is not None, "store mutated outside a transaction"
        self._undo.append(undo)


class _MemoryTxn:
    """`StoreTxn` over a `MemoryStore`, inside its `write`."""

    def __init__(self, store: MemoryStore) -> None:
        self.s = store

    def cursor_seq(self, origin: str) -> int:
        return self.s._cursors.get(origin, ZERO).seq

    def table_state(self, table: str) -> TableState | None:
        return self.s.tables.get(table)

    def stored(self, key: ItemKey) -> Stored | None:
        state = self.s.tables.get(key[0])
        if state is None or not state.live:
            return None
        # a live item is always newer than the key's tombstone: every write of it joined
        # the delete's state (its version may equal the tombstone's, never be older)
        live = self.s.items.get(key)
        return live if live is not None else self.s.tombstones.get(key)

    def set_table_state(self, table: str, state: TableState) -> None:
        if drops_items(self.s.tables.get(table), state):
            for rows in (self.s.items, self.s.tombstones):
                for key in [k for k in rows if k[0] == table]:
                    self.s._set(rows, key, _MISSING)
        self.s._set(self.s.tables, table, state)

    def write_item(self, key: ItemKey, stored: Stored) -> None:
        if stored.item is None:
            self.s._set(self.s.items, key, _MISSING)
            self.s._set(self.s.tombstones, key, stored)
        else:  # an older tombstone stays: the newer of the two is the key's version
            self.s._set(self.s.items, key, stored)

    def record_conflict(self, conflict: Conflict, detected_ms: int) -> None:
        log = self.s._conflicts
        before = list(log) if len(log) >= self.s._max_conflicts else None
        log.append(conflict)
        if before is not None:
            del log[:-self.s._max_conflicts]
        self.s._on_undo(log.pop if before is None else lambda: log.__setitem__(slice(None), before))

    def log_changes(self, records: list[tuple[Change, bytes]]) -> None:
        for change, frame in records:
            log = self.s._log.get(change.origin)
            if log is None:
                log = []
                self.s._set(self.s._log, change.origin, log)
            invariant(not log or log[-1][0] < change.seq, "changelog appended out of order")
            log.append((change.seq, frame))
            self.s._on_undo(log.pop)

    def logged_frame(self, origin: str, seq: int) -> bytes | None:
        log = self.s._log.get(origin, [])
        at = bisect.bisect_left(log, seq, key=lambda entry: entry[0])
        return log[at][1] if at < len(log) and log[at][0] == seq else None

    def set_cursor(self, origin: str, cursor: Cursor) -> None:
        self.s._set(self.s._cursors, origin, cursor)

    def purge_log(self, origin: str, through_seq: int, limit: int) -> int:
        log = self.s._log.get(origin, [])
        count = 0
        while count < min(limit, len(log) - 1) and log[count][0] <= through_seq:
            count += 1  # never the latest record (the SQLite store keeps it too)
        if count:
            removed = log[:count]
            del log[:count]
            self.s._on_undo(lambda: log.__setitem__(slice(0, 0), removed))
        return count

    def purge_tombstones(self, below_hlc: int, limit: int) -> int:
        dead = [key for key, s in self.s.tombstones.items()
                if s.version.hlc < below_hlc and not s.state][:limit]
        for key in dead:
            self.s._set(self.s.tombstones, key, _MISSING)
        return len(dead)
