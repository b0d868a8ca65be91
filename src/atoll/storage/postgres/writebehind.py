"""WriteBehind: a batch's item rows and changelog records, sent as one statement each.

Why. A put writes its item row and its changelog record. As statements of their own, a
batch of N puts is 2N statements: each costs the node a psycopg call (parameters
adapted, the statement queued) and the server a statement (bind, execute, its own
WAL records), all while the batch holds the region's write lock. As one multi-row
INSERT per table, the per-write cost on both sides is a row, not a statement.

How. `PostgresTxn.put` (txn.py) and `log_change` hand their rows here instead of
executing them. The rows are sent, as one multi-row INSERT per table (at most MAX_ROWS
rows a statement), before any other statement of the transaction: every cursor the
transaction uses is a `FlushingCursor`, whose `execute` flushes first, and the batch's
`finish` and `sync` flush too. So the server receives the statements in an order with
the same outcome as one at a time, since a buffered row is only ever moved past other
buffered rows:
- item rows of one key: each upsert sets every column, so only the last one counts,
  and only the last one is kept (an INSERT ... ON CONFLICT DO UPDATE may not meet one
  key twice anyway);
- changelog records never share a key, and their order within a batch is their
  numbers, not the order of the rows.
Every read of the transaction (a job's lookup, a condition, a scan) therefore sees every
write made before it. A failing row surfaces at the next flush; storage.py's careful
replay syncs after each job, which flushes, so the failure is pinned on its job. A
rolled-back batch forgets its rows with the rest of its state (`clear`). Keys too large
to be sure of fitting the b-tree are not buffered (txn.py writes them alone, checked).
"""

from __future__ import annotations

from typing import Any

import psycopg

MAX_ROWS = 400  # rows a statement: 400 x 12 parameters, far below the protocol's 65,535

Key = tuple[int, int, bytes, bytes]

_ITEMS = (
    "INSERT INTO items (tid, h, pk, sk, item, size, hlc, origin, crc, prev_hlc, prev_origin,"
    " state) VALUES {} ON CONFLICT (tid, h, pk, sk) DO UPDATE SET"
    " item = EXCLUDED.item, size = EXCLUDED.size, hlc = EXCLUDED.hlc,"
    " origin = EXCLUDED.origin, crc = EXCLUDED.crc, prev_hlc = EXCLUDED.prev_hlc,"
    " prev_origin = EXCLUDED.prev_origin, state = EXCLUDED.state")
_ITEM_VALUES = "(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
_CHANGES = "INSERT INTO changelog (origin, origin_seq, hlc, body, crc) VALUES {}"
_CHANGE_VALUES = "(%s,%s,%s,%s,%s)"


class WriteBehind:
    """The rows a batch has not sent yet (see the module doc)."""

    def __init__(self, cur: psycopg.Cursor[Any]) -> None:
        self._cur = cur
        self._items: dict[Key, tuple[Any, ...]] = {}
        self._changes: list[tuple[Any, ...]] = []

    def item(self, key: Key, row: tuple[Any, ...]) -> None:
        """Upsert the item row `row` (the columns of _ITEMS, in order) of `key`."""
        self._items[key] = row

    def change(self, row: tuple[Any, ...]) -> None:
        """Append the changelog record `row` (the columns of _CHANGES, in order)."""
        self._changes.append(row)

    def flush(self) -> None:
        """Queue the buffered rows on the connection (pipeline mode: not waited for)."""
        if self._items:
            rows = list(self._items.values())
            self._items.clear()
            self._send(_ITEMS, _ITEM_VALUES, rows)
        if self._changes:
            rows, self._changes = self._changes, []
            self._send(_CHANGES, _CHANGE_VALUES, rows)

    def _send(self, sql: str, values: str, rows: list[tuple[Any, ...]]) -> None:
        for start in range(0, len(rows), MAX_ROWS):
            chunk = rows[start:start + MAX_ROWS]
            self._cur.execute(sql.format(",".join([values] * len(chunk))),
                              [value for row in chunk for value in row])

    def clear(self) -> None:
        self._items.clear()
        self._changes.clear()


class FlushingCursor:
    """A cursor of the batch's transaction: the buffered rows go before its statements."""

    __slots__ = ("_cur", "_behind")

    def __init__(self, cur: psycopg.Cursor[Any], behind: WriteBehind) -> None:
        self._cur = cur
        self._behind = behind

    def execute(self, query: str, params: Any = None) -> psycopg.Cursor[Any]:
        self._behind.flush()
        return self._cur.execute(query, params)

    def executemany(self, query: str, params_seq: Any) -> None:
        self._behind.flush()
        self._cur.executemany(query, params_seq)
