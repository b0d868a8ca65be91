"""MemoryTableSnapshot: a copy of one table's rows, taken in one turn of the event loop.

Writes change the memory storage's rows in place, so a snapshot copies what it will
serve when it is opened — the table's items and tombstones as sorted (key, row) lists —
and pages through the copies afterwards from any thread (nothing shared is touched).
Opening costs one pass over the table; the rows themselves are immutable tuples and
bytes, shared, not duplicated.
"""

from __future__ import annotations

import bisect
from typing import Any

from atoll.storage.memory.data import ItemRecord, Tombstone
from atoll.storage.protocol import ScanKey, SnapshotRow, TableStateRow


class MemoryTableSnapshot:
    def __init__(self, tid: int, definition: bytes, state: TableStateRow | None,
                 cursors: dict[str, tuple[int, int]], item_count: int, size_bytes: int,
                 items: list[tuple[ScanKey, ItemRecord]],
                 tombstones: list[tuple[ScanKey, Tombstone]]) -> None:
        self.tid = tid
        self.definition = definition
        self.state = state
        self.cursors = cursors
        self.item_count = item_count
        self.size_bytes = size_bytes
        self._items: list[tuple[ScanKey, ItemRecord]] | None = items
        self._tombstones = tombstones
        self._item_keys = [key for key, _row in items]
        self._tombstone_keys = [key for key, _row in tombstones]

    def rows(self, after: ScanKey | None, limit: int, tombstones: bool) -> list[SnapshotRow]:
        if self._items is None:
            raise ValueError("snapshot closed")
        keys: list[Any] = self._tombstone_keys if tombstones else self._item_keys
        begin = bisect.bisect_right(keys, after) if after is not None else 0
        end = begin + max(limit, 0)
        if tombstones:
            return [(k[0], k[1], k[2], t[0], t[1], None) for k, t in self._tombstones[begin:end]]
        return [(k[0], k[1], k[2], r[2], r[3], r[0]) for k, r in self._items[begin:end]]

    def close(self) -> None:
        self._items = None
        self._tombstones = []


class MemoryChangesSnapshot:
    """Copies of the changelog and the kept logs (sorted (seq, (hlc, body)) lists per
    origin, and per table and origin), taken in one turn of the event loop."""

    def __init__(self, cursors: dict[str, tuple[int, int]],
                 kept_tables: dict[str, tuple[bytes, ...]],
                 changelog: dict[str, list[tuple[int, tuple[int, bytes]]]],
                 kept: dict[tuple[str, str], list[tuple[int, tuple[int, bytes]]]]) -> None:
        self.cursors = cursors
        self.kept_tables = kept_tables
        self._changelog: dict[str, list[tuple[int, tuple[int, bytes]]]] | None = changelog
        self._kept = kept

    @staticmethod
    def _page(rows: list[tuple[int, tuple[int, bytes]]], after_seq: int, limit: int
              ) -> list[tuple[int, int, bytes]]:
        begin = bisect.bisect_right(rows, after_seq, key=lambda row: row[0])
        return [(seq, hlc, body) for seq, (hlc, body) in rows[begin:begin + max(limit, 0)]]

    def changes(self, origin: str, after_seq: int, limit: int) -> list[tuple[int, int, bytes]]:
        if self._changelog is None:
            raise ValueError("snapshot closed")
        return self._page(self._changelog.get(origin, []), after_seq, limit)

    def kept(self, table: str, origin: str, after_seq: int, limit: int
             ) -> list[tuple[int, int, bytes]]:
        if self._changelog is None:
            raise ValueError("snapshot closed")
        return self._page(self._kept.get((table, origin), []), after_seq, limit)

    def close(self) -> None:
        self._changelog = None
        self._kept = {}
