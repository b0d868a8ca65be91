"""Table and changelog snapshots on PostgreSQL: one REPEATABLE READ transaction each.

A snapshot opens a connection of its own and a read-only REPEATABLE READ transaction on
it; PostgreSQL takes the transaction's snapshot at its first statement, and every later
statement sees the database as it was then, however many batches commit meanwhile (on
any node of the region). Writers never wait for it. What it costs: the rows it may still
see are not vacuumed while it is open. The connection is used by one thread at a time
(the backup writer pages it from a worker thread). Between pages the session is idle in
its transaction, so its idle timeout is raised to SNAPSHOT_IDLE_MS (a node that dies
closes the connection at once). Item rows and records are checked against their CRC32.
"""

from __future__ import annotations

import zlib
from typing import Any

import psycopg

from atoll.errors import ServiceUnavailable
from atoll.storage.postgres.connection import STATEMENT_TIMEOUT_MS, connect
from atoll.storage.postgres.txn import decode_markers
from atoll.storage.protocol import CorruptionDetected, ScanKey, SnapshotRow, TableStateRow

SNAPSHOT_IDLE_MS = 600_000


def _open(dsn: str, name: str) -> psycopg.Connection:
    try:
        conn = connect(dsn, autocommit=False, name=name)
    except psycopg.OperationalError as exc:
        raise ServiceUnavailable(
            "The database is unavailable: " + str(exc).strip().split("\n", 1)[0]) from None
    conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
    conn.execute(f"SET idle_in_transaction_session_timeout = {SNAPSHOT_IDLE_MS}")
    conn.commit()
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    return conn


def _close(conn: psycopg.Connection | None) -> None:
    if conn is not None:
        try:
            conn.rollback()
        except psycopg.Error:
            pass
        finally:
            conn.close()


def _cursor_vector(conn: psycopg.Connection, region: str) -> dict[str, tuple[int, int]]:
    """As `PostgresReads.cursor_vector`, inside the snapshot's transaction."""
    vector = {str(o): (int(s), int(h)) for o, s, h in
              conn.execute("SELECT origin, seq, hlc FROM cursors").fetchall()}
    row = conn.execute("SELECT origin_seq, hlc FROM changelog WHERE origin = %s ORDER BY"
                       " origin_seq DESC LIMIT 1", (region,)).fetchone()
    if row is not None and (int(row[0]), int(row[1])) > vector.get(region, (0, 0)):
        vector[region] = (int(row[0]), int(row[1]))
    return vector


class PostgresTableSnapshot:
    def __init__(self, conn: psycopg.Connection, tid: int, definition: bytes,
                 state: TableStateRow | None, cursors: dict[str, tuple[int, int]],
                 item_count: int, size_bytes: int) -> None:
        self._conn: psycopg.Connection | None = conn
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
            sql = ("SELECT h, pk, sk, hlc, origin, NULL::bytea, NULL::bigint FROM tombstones"
                   " WHERE tid = %s")
        else:
            sql = "SELECT h, pk, sk, hlc, origin, item, crc FROM items WHERE tid = %s"
        args: list[Any] = [self.tid]
        if after is not None:
            sql += " AND (h, pk, sk) > (%s, %s, %s)"
            args += list(after)
        sql += " ORDER BY h, pk, sk LIMIT %s"
        args.append(limit)
        result: list[SnapshotRow] = []
        for h, pk, sk, hlc, origin, item, crc in conn.execute(sql, args).fetchall():
            if item is not None and zlib.crc32(item) != crc:
                raise CorruptionDetected("Stored item failed its checksum")
            result.append((int(h), bytes(pk), bytes(sk), int(hlc), str(origin),
                           bytes(item) if item is not None else None))
        return result

    def close(self) -> None:
        conn, self._conn = self._conn, None
        _close(conn)


def open_table_snapshot(dsn: str, region: str, name: str) -> PostgresTableSnapshot | None:
    """Pin the table `name` (None if it is not live): every read below is one snapshot."""
    conn = _open(dsn, f"atoll-{region}-snapshot")
    try:
        row = conn.execute("SELECT tid, definition, item_count, size_bytes FROM tables"
                           " WHERE name = %s", (name,)).fetchone()  # the snapshot starts here
        if row is None:
            _close(conn)
            return None
        state = conn.execute(
            "SELECT created_hlc, created_origin, version_hlc, version_origin, definition"
            " FROM table_states WHERE name = %s", (name,)).fetchone()
        pinned: TableStateRow | None = None
        if state is not None:
            pinned = (int(state[0]), str(state[1]), int(state[2]), str(state[3]),
                      bytes(state[4]) if state[4] is not None else None)
        return PostgresTableSnapshot(conn, int(row[0]), bytes(row[1]), pinned,
                                     _cursor_vector(conn, region), int(row[2]), int(row[3]))
    except BaseException:
        _close(conn)
        raise


class PostgresChangesSnapshot:
    """The changelog and the kept logs in one REPEATABLE READ transaction."""

    def __init__(self, conn: psycopg.Connection, region: str) -> None:
        self._conn: psycopg.Connection | None = conn
        self.kept_tables = {str(name): tuple(decode_markers(bytes(markers))) for name, markers
                            in conn.execute("SELECT name, markers FROM kept_tables").fetchall()}
        self.cursors = _cursor_vector(conn, region)

    def _rows(self, sql: str, args: tuple[Any, ...], what: str) -> list[tuple[int, int, bytes]]:
        conn = self._conn
        if conn is None:
            raise ValueError("snapshot closed")
        rows = []
        for seq, hlc, body, crc in conn.execute(sql, args).fetchall():
            if zlib.crc32(body) != crc:
                raise CorruptionDetected(f"{what} record {seq} failed its checksum")
            rows.append((int(seq), int(hlc), bytes(body)))
        return rows

    def changes(self, origin: str, after_seq: int, limit: int) -> list[tuple[int, int, bytes]]:
        return self._rows("SELECT origin_seq, hlc, body, crc FROM changelog WHERE origin = %s"
                          " AND origin_seq > %s ORDER BY origin_seq LIMIT %s",
                          (origin, after_seq, limit), f"changelog {origin}")

    def kept(self, table: str, origin: str, after_seq: int, limit: int
             ) -> list[tuple[int, int, bytes]]:
        return self._rows("SELECT origin_seq, hlc, body, crc FROM kept_changes WHERE"
                          " table_name = %s AND origin = %s AND origin_seq > %s ORDER BY"
                          " origin_seq LIMIT %s", (table, origin, after_seq, limit),
                          f"kept {origin}")

    def close(self) -> None:
        conn, self._conn = self._conn, None
        _close(conn)


def open_changes_snapshot(dsn: str, region: str) -> PostgresChangesSnapshot:
    conn = _open(dsn, f"atoll-{region}-changes")
    try:
        return PostgresChangesSnapshot(conn, region)
    except BaseException:
        _close(conn)
        raise
