"""The changelog's order on PostgreSQL: a head row per origin, locked until commit.

What must hold. Replication follows each origin's changes by (origin, origin_seq): a
reader remembers the last origin_seq it took and asks for the records above it
(`changes_since`). So once a reader can see record N it must already be able to see
every record below N, and it must never see a gap that a later commit fills. The
sequences of this region's own changes must be dense (1, 2, 3...) and their commit
order must be their number order, although any number of Atoll nodes write the same
region's changelog at once.

The choice. Each origin that writes here has one row in `log_heads` holding the last
sequence it took. A write batch begins by locking its region's row (`SELECT seq ...
FOR UPDATE`), numbers its changes from seq + 1, sets the row to its last sequence and
commits; the lock is held until the COMMIT (or ROLLBACK) ends. So:
- Numbers are dense and never reused once committed: the next holder reads the row
  as the previous one left it, committed (its changes and the new head) or rolled back
  (its changes and its head both undone, so the next one reuses those numbers).
- Commit order equals number order: a batch holding numbers N.. cannot commit before
  the holder of the numbers below N, which it waited for.
- No reader skips. In PostgreSQL a transaction becomes visible to new snapshots
  (ProcArrayEndTransaction) after its commit record is flushed and before it releases
  its locks, so when the next holder can even start numbering, every lower number is
  durable and visible. A snapshot that shows record N therefore shows every record
  below it, and one statement `WHERE origin = $1 AND origin_seq > $2 ORDER BY
  origin_seq` returns a gap-free run starting right after the reader's cursor. On
  serializable engines (CockroachDB, YugabyteDB in serializable mode) the same holds
  from serializability: the next holder read the head the previous one wrote, so it is
  ordered after it, and a reader that sees its record is ordered after both.
- A node that loses its connection during COMMIT does not know whether it committed;
  nothing is cached across batches: the next batch reads the head again under the lock.
- Peers' records (other origins, appended by replication) are written by batches that
  hold this region's head lock too, each batch appending an origin's next contiguous
  run: they also become visible in number order.
- Stream positions (streams.py) are numbered the same way: the head row also keeps the
  last position taken by any stream of the region.

What was rejected, and why.
- A sequence (nextval, SERIAL, IDENTITY): numbers are handed out before commit, so a
  later number can commit first and a reader that took it skips the earlier one forever
  (the ExtendDB flaw; test_postgres_changelog shows it happen). Distributed engines
  also cache sequence ranges per node, so numbers are not even in start order.
- A transaction-id fence (`pg_current_xact_id()` and `pg_snapshot_xmin()` as the
  reader's horizon): correct on PostgreSQL, but those functions and the xid8 type are
  PostgreSQL internals that CockroachDB and YugabyteDB do not provide, and the records
  still need dense per-origin numbers for the replication protocol's cursors.
- Logical decoding: needs a replication slot, the replication privilege and
  wal_level=logical, which managed and distributed engines expose differently or not
  at all, and a slot that nobody reads holds back the server's WAL.
- Advisory locks: not available on CockroachDB, and a lock that is not part of the
  data is lost silently with its session.

The cost. Every write batch of the region takes this one row lock first (storage.py
makes it the region's write lock: it also keeps conditional writes correct between
nodes), so the region's write batches run one at a time, each holding the lock from
its first statement to its COMMIT. Group commit amortizes it: while one node holds
the lock, the others' queues grow into bigger batches.
"""

from __future__ import annotations

from typing import Any

# One statement each; `cur` is a psycopg cursor inside the batch's transaction.
LOCK = ("SELECT seq, hlc, remote_hlc, catalog, stream_pos FROM log_heads WHERE origin = %s"
        " FOR UPDATE")
ADVANCE = ("UPDATE log_heads SET seq = %s, hlc = GREATEST(hlc, %s),"
           " remote_hlc = GREATEST(remote_hlc, %s), catalog = catalog + %s,"
           " stream_pos = GREATEST(stream_pos, %s) WHERE origin = %s")
# The head starts after anything this origin already has here: its own records (a
# database written before the head row existed) or its cursor (a region rebuilt from a
# peer's snapshot adopts its own cursor); its stream position after every position still
# recorded (streams.py). Inserted once; a racing node's row wins.
INIT = (
    "INSERT INTO log_heads (origin, seq, stream_pos) SELECT %s, GREATEST("
    " COALESCE((SELECT MAX(origin_seq) FROM changelog WHERE origin = %s), 0),"
    " COALESCE((SELECT seq FROM cursors WHERE origin = %s), 0)), GREATEST("
    " COALESCE((SELECT MAX(pos) FROM stream_records), 0),"
    " COALESCE((SELECT MAX(trimmed_pos) FROM streams), 0),"
    " COALESCE((SELECT MAX(COALESCE(end_pos, first_pos - 1)) FROM stream_shards), 0))"
    " ON CONFLICT (origin) DO NOTHING"
)


def init_head(cur: Any, origin: str) -> None:
    """Create the origin's head row if it has none (idempotent, safe to race)."""
    cur.execute(INIT, (origin, origin, origin))


class Head:
    """The region's head as a batch found it under the lock: its last sequence, the
    highest hlc of its own changes and of peers' changes applied here, the catalog
    version (bumped by every batch that changed a table definition) and the last stream
    position taken (by any stream of the region: streams.py)."""

    __slots__ = ("seq", "hlc", "remote_hlc", "catalog", "stream_pos")

    def __init__(self, seq: int, hlc: int = 0, remote_hlc: int = 0, catalog: int = 0,
                 stream_pos: int = 0) -> None:
        self.seq = seq
        self.hlc = hlc
        self.remote_hlc = remote_hlc
        self.catalog = catalog
        self.stream_pos = stream_pos


def lock_head(cur: Any, origin: str) -> Head:
    """Lock the origin's head row until this transaction ends; what it holds."""
    row = cur.execute(LOCK, (origin,)).fetchone()
    if row is None:  # a database whose head row was removed by hand: recreate, retry
        init_head(cur, origin)
        row = cur.execute(LOCK, (origin,)).fetchone()
    return head_of(row)


def head_of(row: Any) -> Head:
    """The Head of a row LOCK returned."""
    return Head(int(row[0]), int(row[1]), int(row[2]), int(row[3]), int(row[4]))


def advance_head(cur: Any, origin: str, seq: int, hlc: int = 0, remote_hlc: int = 0,
                 catalog_changed: bool = False, stream_pos: int = 0) -> None:
    """Record `seq` as the origin's last sequence (under the lock `lock_head` took), and
    raise its hlcs, catalog version and last stream position."""
    cur.execute(ADVANCE, (seq, hlc, remote_hlc, 1 if catalog_changed else 0, stream_pos,
                          origin))
