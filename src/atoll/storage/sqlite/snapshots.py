"""SqliteTableSnapshot: one table pinned in a read transaction of its own connection.

A snapshot opens a fourth connection to the database file and a read transaction on it
(BEGIN, then a first read, which is when SQLite takes the snapshot). In WAL mode that
transaction keeps seeing the database as it was, however long it stays open and however
many batches commit meanwhile; writers never wait for it. What it costs: a checkpoint
cannot copy WAL frames past the snapshot's start, so the WAL grows while it is open (the
checkpointer's rewinds resume after `close`). The connection is created on the event-loop
thread and then used by one thread at a time (`check_same_thread` is off, as for every
connection here). Item rows are checked against their CRC32 as they are read.
"""

from __future__ import annotations

import sqlite3
import zlib
from typing import Any

from atoll.storage.protocol import CorruptionDetected, ScanKey, SnapshotRow, TableStateRow
from atoll.storage.sqlite.connection import connect
from atoll.storage.sqlite.txn import decode_markers


class SqliteTableSnapshot:
    def __init__(self, conn: sqlite3.Connection, tid: int, definition: bytes,
                 state: TableStateRow | None, cursors: dict[str, tuple[int, int]],
                 item_count: int, size_bytes: int) -> None:
        self._conn: sqlite3.Connection | None = conn
        self.tid = tid
        self.definition = definition
        self.state = state
        self.cursors = cursors
        self.item_count = item_count
        self.size_bytes = size_bytes

    def rows(self, after: ScanKey | None, limit: int, tombstones: bool) -> list[SnapshotRow]:
        conn = self._conn
        if conn is None:
            raise ValueError("snapshot closed")
        if tombstones:
            sql = "SELECT h, pk, sk, hlc, origin, NULL, NULL FROM tombstones WHERE tid=?"
        else:
            sql = "SELECT h, pk, sk, hlc, origin, item, crc FROM items WHERE tid=?"
        args: list[Any] = [self.tid]
        if after is not None:
            sql += " AND (h, pk, sk) > (?,?,?)"
            args += list(after)
        sql += " ORDER BY h, pk, sk LIMIT ?"
        args.append(limit)
        result: list[SnapshotRow] = []
        for h, pk, sk, hlc, origin, item, crc in conn.execute(sql, args):
            if item is not None and zlib.crc32(item) != crc:
                raise CorruptionDetected("Stored item failed its checksum")
            result.append((int(h), pk, sk, int(hlc), str(origin), item))
        return result

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.execute("COMMIT")
            finally:
                conn.close()


def open_table_snapshot(path: str, durable: bool, region: str, name: str
                        ) -> SqliteTableSnapshot | None:
    """Pin the table `name` (None if it is not live): every read below is one snapshot."""
    conn = connect(path, durable)
    try:
        conn.execute("BEGIN")
        row = conn.execute("SELECT tid, definition, item_count, size_bytes FROM tables "
                           "WHERE name=?", (name,)).fetchone()  # the snapshot starts here
        if row is None:
            conn.execute("COMMIT")
            conn.close()
            return None
        state = conn.execute(
            "SELECT created_hlc, created_origin, version_hlc, version_origin, definition"
            " FROM table_states WHERE name=?", (name,)).fetchone()
        pinned: TableStateRow | None = None
        if state is not None:
            pinned = (int(state[0]), str(state[1]), int(state[2]), str(state[3]), state[4])
        return SqliteTableSnapshot(conn, int(row[0]), row[1], pinned,
                                   _cursor_vector(conn, region), int(row[2]), int(row[3]))
    except BaseException:
        conn.close()
        raise


def _cursor_vector(conn: sqlite3.Connection, region: str) -> dict[str, tuple[int, int]]:
    """As `SqliteReads.cursor_vector`: this region's entry is its latest changelog record
    when that is ahead of its cursor."""
    vector = {str(o): (int(s), int(h))
              for o, s, h in conn.execute("SELECT origin, seq, hlc FROM cursors")}
    row = conn.execute("SELECT origin_seq, hlc FROM changelog WHERE origin=? "
                       "ORDER BY origin_seq DESC LIMIT 1", (region,)).fetchone()
    if row is not None and (int(row[0]), int(row[1])) > vector.get(region, (0, 0)):
        vector[region] = (int(row[0]), int(row[1]))
    return vector


class SqliteChangesSnapshot:
    """The changelog and the kept logs in one read transaction of their own connection."""

    def __init__(self, conn: sqlite3.Connection, region: str) -> None:
        self._conn: sqlite3.Connection | None = conn
        conn.execute("BEGIN")
        self.kept_tables = {str(name): tuple(decode_markers(markers)) for name, markers in
                            conn.execute("SELECT name, markers FROM kept_tables")}
        self.cursors = _cursor_vector(conn, region)

    def _rows(self, sql: str, args: tuple[Any, ...], what: str) -> list[tuple[int, int, bytes]]:
        conn = self._conn
        if conn is None:
            raise ValueError("snapshot closed")
        rows = []
        for seq, hlc, body, crc in conn.execute(sql, args):
            if zlib.crc32(body) != crc:
                raise CorruptionDetected(f"{what} record {seq} failed its checksum")
            rows.append((int(seq), int(hlc), body))
        return rows

    def changes(self, origin: str, after_seq: int, limit: int) -> list[tuple[int, int, bytes]]:
        return self._rows("SELECT origin_seq, hlc, body, crc FROM changelog WHERE origin=? AND "
                          "origin_seq>? ORDER BY origin_seq LIMIT ?", (origin, after_seq, limit),
                          f"changelog {origin}")

    def kept(self, table: str, origin: str, after_seq: int, limit: int
             ) -> list[tuple[int, int, bytes]]:
        return self._rows("SELECT origin_seq, hlc, body, crc FROM kept_changes WHERE "
                          "table_name=? AND origin=? AND origin_seq>? ORDER BY origin_seq "
                          "LIMIT ?", (table, origin, after_seq, limit), f"kept {origin}")

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.execute("COMMIT")
            finally:
                conn.close()


def open_changes_snapshot(path: str, durable: bool, region: str) -> SqliteChangesSnapshot:
    conn = connect(path, durable)
    try:
        return SqliteChangesSnapshot(conn, region)
    except BaseException:
        conn.close()
        raise
