"""Connections to one WAL database file, and its schema on first open.

Three connections share the file: the reader (event-loop thread only, see reads.py), the
writer (one batch at a time, see batches.py) and the checkpointer's (checkpoints.py). WAL
lets the reader see the last committed state while a batch is open.
"""

from __future__ import annotations

import sqlite3

from atoll.errors import InternalError
from atoll.storage.sqlite.schema import MIGRATIONS, SCHEMA_VERSION, STATEMENTS

BACKSTOP_CHECKPOINT_PAGES = 96_000  # a COMMIT checkpoints only if rewinds keep failing


def connect(path: str, durable: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                           cached_statements=512)
    conn.execute("PRAGMA journal_mode=WAL")
    # NORMAL: a COMMIT only writes the WAL; the syncer thread's fdatasync makes it
    # durable before anyone hears of it (see durability.py; checkpoints still sync the
    # WAL before copying it and the database after). The in-memory mode lives on tmpfs: OFF.
    conn.execute("PRAGMA synchronous=NORMAL" if durable else "PRAGMA synchronous=OFF")
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA cache_size=-65536")
    # Checkpoints run on the checkpointer thread, off the commit path; this is only the
    # backstop that bounds the WAL if that thread falls behind.
    conn.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_CHECKPOINT_PAGES}")
    return conn


def init_schema(conn: sqlite3.Connection, path: str) -> None:
    """Create what is missing; migrate a file of an older schema version (in one
    transaction, schema.MIGRATIONS); refuse one of a newer version."""
    conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    version = SCHEMA_VERSION if row is None else int(row[0])
    if not migratable(version):
        raise InternalError(f"{path}: schema version {version}, expected {SCHEMA_VERSION}")
    conn.execute("BEGIN IMMEDIATE")
    try:
        for step in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[step]:
                conn.execute(statement)
        for statement in STATEMENTS:
            conn.execute(statement)
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                     (str(SCHEMA_VERSION),))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def migratable(version: int) -> bool:
    """Whether a file of schema `version` opens here: this version, or an older one that
    MIGRATIONS take to it."""
    return version <= SCHEMA_VERSION and all(
        step in MIGRATIONS for step in range(version, SCHEMA_VERSION))


def next_local_seq(conn: sqlite3.Connection, region: str) -> int:
    """This region's next sequence: after its last change in the changelog, or (after a
    rebuild from a peer's snapshot) after the one recorded as its own cursor."""
    row = conn.execute(
        "SELECT MAX(COALESCE((SELECT MAX(origin_seq) FROM changelog WHERE origin=?), 0),"
        " COALESCE((SELECT seq FROM cursors WHERE origin=?), 0))", (region, region)).fetchone()
    return int(row[0]) + 1
