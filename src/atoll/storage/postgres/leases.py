"""Leases: which node of a region runs each background job, until when.

Several nodes share one PostgreSQL region; each background job (TTL sweeps, index
backfills, purges, pulling and applying peers' changes) must run on one of them at a
time, and move to another within seconds when that node dies. A lease is a row of
`leases` (name, holder, expires_ms). A node takes or renews it with one upsert that only
succeeds while the row is free, expired or already its own; the statement's RETURNING
says whether it did. Expiry uses the database's clock (clock_timestamp()), the one clock
every node shares, so nodes' clocks may disagree.

A holder renews every RENEW_INTERVAL_S and treats the lease as lost once SAFETY of its
TTL has passed since its last successful renewal (measured on its own monotonic clock,
which runs no faster than the database's by more than a few percent), so it stops before
another node can take the expired row. A node that closes cleanly releases its leases.
Jobs need no stronger exclusion than this: each writes through the region's write lock
and is idempotent, so a brief overlap (a paused holder) costs only duplicate work.
"""

from __future__ import annotations

from typing import Any

TTL_MS = 5_000
RENEW_INTERVAL_S = 1.0
SAFETY = 0.6  # the holder stops after 60% of the TTL without a renewal

_NOW_MS = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS bigint)"
TAKE = (
    "INSERT INTO leases (name, holder, expires_ms) VALUES (%s, %s, " + _NOW_MS + " + %s)"
    " ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder,"
    " expires_ms = EXCLUDED.expires_ms"
    " WHERE leases.holder = EXCLUDED.holder OR leases.expires_ms < " + _NOW_MS +
    " RETURNING holder")
RELEASE = "DELETE FROM leases WHERE holder = %s"
HOLDERS = "SELECT name, holder, expires_ms - " + _NOW_MS + " FROM leases ORDER BY name"


def take(conn: Any, name: str, holder: str, ttl_ms: int = TTL_MS) -> bool:
    """Take or renew the lease `name` for `holder` (autocommit connection)."""
    return conn.execute(TAKE, (name, holder, ttl_ms)).fetchone() is not None


def release_all(conn: Any, holder: str) -> None:
    conn.execute(RELEASE, (holder,))


def holders(conn: Any) -> list[tuple[str, str, int]]:
    """(name, holder, ms until it expires) of every lease, for status pages."""
    return [(str(n), str(h), int(ms)) for n, h, ms in conn.execute(HOLDERS).fetchall()]
