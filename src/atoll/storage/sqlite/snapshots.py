"""Table and changelog snapshots on SQLite: each pinned in a read transaction of its own
connection.

A snapshot opens a fourth connection to the database file and a read transaction on it
(BEGIN, then a first read, which is when SQLite takes the snapshot). In WAL mode that
transaction keeps seeing the database as it was, however long it stays open and however
many batches commit meanwhile; writers never wait for it. What it costs: a checkpoint
cannot copy WAL frames past the snapshot's start, so the WAL grows while it is open (the
checkpointer's rewinds resume after `close`). The connection is created on the event-loop
thread and then used by one thread at a time (`check_same_thread` is off, as for every
connection here). What the snapshots read, and the CRC32 checks, live in
atoll.storage.sqlsnapshots, shared with PostgreSQL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from atoll.storage.sqlite.connection import connect
from atoll.storage.sqlite.txn import decode_markers
from atoll.storage.sqlsnapshots import SqlChangesSnapshot, SqlTableSnapshot, pin_table

T = TypeVar("T")


class SqliteReader:
    """A snapshot's connection inside its read transaction (sqlsnapshots.SqlReader)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def query(self, sql: str, args: Sequence[Any]) -> list[Any]:
        return self._conn.execute(sql, args).fetchall()

    def release(self) -> None:
        try:
            self._conn.execute("COMMIT")
        finally:
            self._conn.close()


def _pinned(path: str, durable: bool, pin: Callable[[SqliteReader], T]) -> T:
    """`pin` run on a new connection inside its read transaction; the connection is
    closed if `pin` fails (on success the snapshot `pin` returns owns it)."""
    conn = connect(path, durable)
    try:
        conn.execute("BEGIN")
        return pin(SqliteReader(conn))
    except BaseException:
        conn.close()
        raise


def open_table_snapshot(path: str, durable: bool, region: str, name: str
                        ) -> SqlTableSnapshot | None:
    """Pin the table `name` (None if it is not live): every read below is one snapshot."""
    return _pinned(path, durable, lambda reader: pin_table(reader, region, name))


def open_changes_snapshot(path: str, durable: bool, region: str) -> SqlChangesSnapshot:
    return _pinned(path, durable,
                   lambda reader: SqlChangesSnapshot(reader, region, decode_markers))
