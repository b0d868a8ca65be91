"""Table and changelog snapshots on PostgreSQL: one REPEATABLE READ transaction each.

A snapshot opens a connection of its own and a read-only REPEATABLE READ transaction on
it; PostgreSQL takes the transaction's snapshot at its first statement, and every later
statement sees the database as it was then, however many batches commit meanwhile (on
any node of the region). Writers never wait for it. What it costs: the rows it may still
see are not vacuumed while it is open. The connection is used by one thread at a time
(the backup writer pages it from a worker thread). Between pages the session is idle in
its transaction, so its idle timeout is raised to SNAPSHOT_IDLE_MS (a node that dies
closes the connection at once). What the snapshots read, and the CRC32 checks, live in
atoll.storage.sqlsnapshots, shared with SQLite.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg

from atoll.errors import ServiceUnavailable
from atoll.storage.postgres.connection import STATEMENT_TIMEOUT_MS, connect
from atoll.storage.postgres.txn import decode_markers
from atoll.storage.sqlsnapshots import SqlChangesSnapshot, SqlTableSnapshot, pin_table

SNAPSHOT_IDLE_MS = 600_000

T = TypeVar("T")


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


class PostgresReader:
    """A snapshot's connection inside its REPEATABLE READ transaction
    (sqlsnapshots.SqlReader): `?` placeholders become psycopg's `%s`."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self._conn = conn

    def query(self, sql: str, args: Sequence[Any]) -> list[Any]:
        return self._conn.execute(sql.replace("?", "%s"), args).fetchall()

    def release(self) -> None:
        _close(self._conn)


def _pinned(dsn: str, name: str, pin: Callable[[PostgresReader], T]) -> T:
    """`pin` run on a new snapshot connection; the connection is closed if `pin` fails
    (on success the snapshot `pin` returns owns it)."""
    conn = _open(dsn, name)
    try:
        return pin(PostgresReader(conn))
    except BaseException:
        _close(conn)
        raise


def open_table_snapshot(dsn: str, region: str, name: str) -> SqlTableSnapshot | None:
    """Pin the table `name` (None if it is not live): every read below is one snapshot."""
    return _pinned(dsn, f"atoll-{region}-snapshot",
                   lambda reader: pin_table(reader, region, name))


def open_changes_snapshot(dsn: str, region: str) -> SqlChangesSnapshot:
    return _pinned(dsn, f"atoll-{region}-changes",
                   lambda reader: SqlChangesSnapshot(reader, region, decode_markers))
