"""Connections to PostgreSQL, the schema set-up, and what each driver error means.

Every connection is psycopg 3's synchronous `Connection` (bench/pg_drivers.py and
docs/postgresql.md say why not asyncpg): the storage calls it from the event-loop
thread (reads) and the writer thread (batches), never from a coroutine.

Timeouts bound every wait on the database, so a stuck or unreachable server turns into
503 answers instead of a hung node: connecting (CONNECT_TIMEOUT_S), a read statement
(STATEMENT_TIMEOUT_MS; writes have none: dropping a large table is one long DELETE),
waiting for a row lock another node holds (LOCK_TIMEOUT_MS),
and a session left idle inside a transaction (IDLE_IN_TRANSACTION_MS: a node that
stops in the middle of a batch releases the region's write lock after that long; one
that dies releases it at once, as its connection closes). TCP keepalives find a peer
that vanished without closing the connection.

Errors fall in three kinds (`classify`):
- UNAVAILABLE: the server or the connection is gone (psycopg.OperationalError, an
  admin shutdown, a server starting up or in recovery). The batch fails with
  ServiceUnavailable (503, retryable); the connection is dropped and made again for the
  next batch or read.
- RETRY: the engine chose this transaction as a victim (serialization failure,
  deadlock, lock timeout): the whole batch is replayed, a bounded number of times.
- JOB: anything else (a constraint or limit): the statement of one job failed; the
  batch is replayed to find which (storage.py). A statement that psycopg refuses to
  send because an earlier one of the same pipeline failed (PipelineAborted, which
  psycopg files as an OperationalError without a SQLSTATE) is that same failure seen
  late, not a lost server.

Nodes of one region may start at the same moment on a fresh database: `init_schema`
runs in one transaction that a racing node's CREATE or ALTER can make fail (a unique
violation in the system catalogs, a deadlock); it is run again, at most
SCHEMA_ATTEMPTS times, and each run finds more of the schema in place.
"""

from __future__ import annotations

import random
import time

import psycopg
from psycopg import errors as pgerrors

from atoll.errors import InternalError
from atoll.storage.postgres.loghead import init_head
from atoll.storage.postgres.schema import (
    COLUMNS_ADDED,
    MIGRATES_FROM,
    SCHEMA_VERSION,
    STATEMENTS,
)

CONNECT_TIMEOUT_S = 2
STATEMENT_TIMEOUT_MS = 30_000
LOCK_TIMEOUT_MS = 15_000
IDLE_IN_TRANSACTION_MS = 10_000
# psycopg prepares a statement on the server once it ran this many times on a connection.
PREPARE_THRESHOLD = 2
SCHEMA_ATTEMPTS = 8
SCHEMA_PAUSE_S = 0.02  # doubled after each failed attempt, with jitter

UNAVAILABLE = "unavailable"
RETRY = "retry"
JOB = "job"

# SQLSTATE classes/codes: 08 connection exception, 57P admin shutdown / crash shutdown /
# cannot connect now, 53 insufficient resources (too many connections, disk full).
_UNAVAILABLE_PREFIXES = ("08", "57P", "53")
_RETRY_CODES = ("40001", "40P01", "55P03")  # serialization, deadlock, lock not available


def connect(dsn: str, *, autocommit: bool, name: str) -> psycopg.Connection:
    """A connection with the session settings above; `name` shows in pg_stat_activity.
    Autocommit connections read; the other one writes (no statement timeout)."""
    conn = psycopg.connect(
        dsn, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT_S,
        prepare_threshold=PREPARE_THRESHOLD, application_name=name,
        keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=3)
    conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS if autocommit else 0}")
    conn.execute(f"SET lock_timeout = {LOCK_TIMEOUT_MS}")
    conn.execute(f"SET idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_MS}")
    if not autocommit:
        conn.commit()
    return conn


def classify(exc: BaseException) -> str:
    """UNAVAILABLE, RETRY or JOB (see the module doc)."""
    code = getattr(exc, "sqlstate", None) or ""
    if isinstance(exc, pgerrors.PipelineAborted):
        return JOB
    if code in _RETRY_CODES:
        return RETRY
    if code.startswith(_UNAVAILABLE_PREFIXES):
        return UNAVAILABLE
    if isinstance(exc, pgerrors.QueryCanceled):  # statement_timeout: the server is stuck
        return UNAVAILABLE
    if not code and isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
        return UNAVAILABLE  # the connection broke (no SQLSTATE: it never got an answer)
    return JOB


def init_schema(conn: psycopg.Connection, region: str) -> None:
    """Create the tables if need be, add any of COLUMNS_ADDED a table lacks, check the
    schema version, and create this region's changelog head: in one transaction, run
    again (bounded) when a node doing the same at the same moment made it fail."""
    for attempt in range(SCHEMA_ATTEMPTS):
        try:
            with conn.transaction():
                _create_schema(conn, region)
            break
        except psycopg.Error as exc:
            raced = isinstance(exc, pgerrors.UniqueViolation) or classify(exc) == RETRY
            if not raced or attempt == SCHEMA_ATTEMPTS - 1:
                raise
            time.sleep(SCHEMA_PAUSE_S * 2 ** attempt * random.uniform(0.5, 1.5))  # noqa: S311
    if not conn.autocommit:
        conn.commit()


def _create_schema(conn: psycopg.Connection, region: str) -> None:
    for statement in STATEMENTS:
        conn.execute(statement)
    _add_columns(conn)
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', %s)"
                     " ON CONFLICT (key) DO NOTHING", (str(SCHEMA_VERSION),))
    elif int(row[0]) in MIGRATES_FROM:
        conn.execute("UPDATE meta SET value = %s WHERE key = 'schema_version'",
                     (str(SCHEMA_VERSION),))
    elif int(row[0]) != SCHEMA_VERSION:
        raise InternalError(f"PostgreSQL schema version {row[0]}, expected {SCHEMA_VERSION}")
    init_head(conn.cursor(), region)


def _add_columns(conn: psycopg.Connection) -> None:
    """ALTER TABLE only for a column that is missing: the statement locks the whole
    table, which would stall the region's writers (the head row) if run every time."""
    for table, column, kind in COLUMNS_ADDED:
        found = conn.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()"
            " AND table_name = %s AND column_name = %s", (table, column)).fetchone()
        if found is None:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {kind}")
