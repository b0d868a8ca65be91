"""SqliteStorage: reads on the event-loop thread, writes batched into group commits.

Theory of operation
- Two connections to one WAL database: the reader (used only by the event-loop thread)
  and the writer (used by one batch at a time, see below). WAL lets the reader see the
  last committed state while a batch is open.
- Write jobs are callables `job(txn) -> result`. Queued jobs (up to MAX_BATCH_JOBS) run
  in one transaction that commits once: group commit. A job that raises before writing
  anything (a failed condition, bad input — the usual case) simply fails alone. One that
  raises after writing poisons the batch: it is rolled back whole and replayed without
  that job (jobs are deterministic functions of the database state, so the replay gives
  the others the same outcome). That spares a SAVEPOINT round trip per write.
- Where a batch runs: a job submitted with `inline=True` is short (one request's items).
  A batch of only such jobs runs on the event-loop thread, and its COMMIT on the writer
  thread. Any other batch (replication, backfill, purges, DDL) runs whole on the writer
  thread, so the loop keeps serving meanwhile. One batch is in flight at a time (from
  its start to the end of its COMMIT), whichever thread runs it, so jobs see each
  other's writes in submission order.
  Why inline: a job's statements each release and retake the GIL, and on the writer
  thread each retake waited for the busy event loop. Measured under wrk (PutItem,
  32 connections): SQL of a put took 82 us there against 21 us alone.
- Durability is pipelined. COMMIT runs with synchronous=NORMAL: it writes the WAL and
  returns without an fsync, and the batch goes to the syncer thread. The syncer's
  fdatasync of the WAL makes durable every batch that committed before it started;
  only then are the batches' futures resolved, in commit order. So a write is
  acknowledged only once it is durable, while the next batches run and commit during
  the fsync. With synchronous=FULL, COMMIT held the write lock through its fsync, so the
  fsync was a link in the chain of one batch after another. Measured (wrk, 32
  connections, medians of 4-5 interleaved rounds against FULL): PutItem x1.09-1.19,
  mixed x1.05-1.12 with p99 11-13 -> 8.3-8.5 ms, UpdateItem x0.97-1.05. Committing
  on the event-loop thread instead (no hand-over to the writer thread) measured put
  x0.90 against this.
- Nothing that a crash could undo leaves the node: a committed batch is readable before
  it is durable, so every read on the reader connection notes the commits it may see
  (`_read`), and answers — API responses, replication pulls served, pulls sent — wait
  for `settle()` until those commits are durable. With no write waiting for its fsync
  that costs one comparison. A failed fdatasync cannot be retried (the kernel may have
  dropped the pages): it fails every write not yet answered and every answer waiting
  to settle, and the node refuses writes until restarted.
- A failed COMMIT (disk full, I/O error) fails every job of the batch: nothing of it was
  acknowledged, so nothing acknowledged is lost.
- WAL checkpoints (copying the WAL into the main file, with its own fsyncs) run on a
  separate checkpointer thread every CHECKPOINT_INTERVAL_S, not inside a COMMIT. Under
  steady writes such a checkpoint never catches up with the WAL's end, and SQLite only
  rewinds the WAL (starts writing it from the beginning again) at a write that finds it
  wholly copied. So once the WAL holds REWIND_FRAMES, the checkpointer checkpoints again
  until a pass finds few new frames, then asks for a rewind: the writer thread, between
  two batches, checkpoints the frames written since (with its fsync of the main file),
  and the next batch starts the WAL over. Before, the WAL grew to the backstop size and a
  COMMIT ran the autocheckpoint itself, with an fsync of everything not yet copied:
  COMMIT stalls of 20-30 ms, several a second, that made PutItem's p99.
  That pause stalls every write in flight, so it is PutItem's tail: with no checkpoint
  at all, wrk PutItem's p99 fell from ~33 to ~7 ms. Its length follows the frames left
  for it, and how often it comes follows REWIND_FRAMES. Measured (wrk PutItem, 32
  connections, 20 s, medians of 3 interleaved rounds): rewinds at 8,000 frames with 4
  catch-up passes down to 200 frames, p99 37 ms (in one run: 2.5 pauses a second, p50
  9 and p90 38 ms);
  20 passes down to 50 frames, p99 24 ms; that and rewinds at 16,000/32,000/64,000
  frames, p99 9-14/10/8 ms, at about the same throughput (per-round ratios x0.96-1.24
  against the first).
- Every item row carries a CRC32 of its bytes; a read that finds a mismatch raises
  instead of serving corrupt data.
- Each batch carries a `writepath.BatchTimes`, stamped at each hand-over above (queued,
  started, run, handed to the writer, COMMIT, fdatasync, answered); `write_path` keeps
  the recent ones for /_atoll/status and the bench.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import queue
import sqlite3
import threading
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from atoll.errors import InternalError, ServiceUnavailable
from atoll.invariant import invariant
from atoll.storage.schema import SCHEMA_VERSION, STATEMENTS
from atoll.storage.writepath import BatchTimes, WritePath, now_ns, percentiles_ms

log = logging.getLogger(__name__)

MAX_BATCH_JOBS = 512
CHECKPOINT_INTERVAL_S = 0.05
CACHE_MAX_BYTES = 64 * 1024 * 1024
CACHE_ENTRY_OVERHEAD_BYTES = 250  # dict slot, key tuple and its bytes, value tuple
REWIND_FRAMES = 32_000  # ~128 MB of WAL: a rewind every ~1.5 s under wrk PutItem
REWIND_REST_FRAMES = 50  # what the writer's pause before a rewind aims to copy at most
CATCH_UP_PASSES = 20
REWINDS_KEPT = 64  # the last rewinds whose pauses /_atoll/status summarises
BACKSTOP_CHECKPOINT_PAGES = 96_000  # a COMMIT checkpoints only if rewinds keep failing
MAX_QUEUED_JOBS = 20_000
_STOP = object()
_REWIND = object()
_FAILED = object()

ItemRow = tuple[bytes, int]  # (item json bytes, size)


class CorruptionDetected(InternalError):
    """A stored row does not match its checksum."""


def _connect(path: str, durable: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                           cached_statements=512)
    conn.execute("PRAGMA journal_mode=WAL")
    # NORMAL: a COMMIT only writes the WAL; the syncer thread's fdatasync makes it
    # durable before anyone hears of it (see the module doc; checkpoints still sync the
    # WAL before copying it and the database after). The in-memory mode lives on tmpfs: OFF.
    conn.execute("PRAGMA synchronous=NORMAL" if durable else "PRAGMA synchronous=OFF")
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA cache_size=-65536")
    # Checkpoints run on the checkpointer thread, off the commit path; this is only the
    # backstop that bounds the WAL if that thread falls behind.
    conn.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_CHECKPOINT_PAGES}")
    return conn


_INDEX_INSERT = ("INSERT OR REPLACE INTO index_items (tid, iid, h, pk, sk, base_pk, base_sk,"
                 " item, size, crc) VALUES ")


class WriteTxn:
    """The writer thread's view of the open transaction (never used elsewhere)."""

    def __init__(self, conn: sqlite3.Connection, region: str, next_seq: int) -> None:
        self.conn = conn
        # One cursor for every statement: conn.execute makes (and frees) a cursor a call.
        # A put's lookup, insert and changelog append took 12.5 us that way and 11.7-12.0
        # on one cursor (compiled; medians of 7 loops of 5,000, in memory). A one-row
        # statement is reset by its fetchone; the next execute resets any other.
        self._cur = conn.cursor()
        self.region = region
        self.next_seq = next_seq
        # Tables that may hold tombstones (a superset: never shrunk by purges). A write to
        # a table outside it skips the tombstone lookup, the common case on tables that
        # never saw a delete.
        self.tombstone_tids: set[int] = {
            int(row[0]) for row in self._cur.execute("SELECT DISTINCT tid FROM tombstones")}
        self.writes = 0  # mutating statements in the open transaction
        self.prevs: dict[tuple[int, int, bytes, bytes], tuple[int, str] | None] = {}
        # what this transaction did to live items, for the read cache once it commits
        self.item_changes: list[tuple[tuple[int, int, bytes, bytes], ItemRow | None]] = []
        self.dropped_tids: set[int] = set()
        self._stats: dict[int, list[int]] = {}

    def reset(self) -> None:
        """Forget the per-transaction bookkeeping (after COMMIT or ROLLBACK)."""
        self.writes = 0
        self.prevs.clear()
        self.item_changes = []
        self.dropped_tids = set()

    # --- items -------------------------------------------------------------------------
    def get(self, tid: int, h: int, pk: bytes, sk: bytes) -> tuple[bytes, int, int, str] | None:
        """(item bytes, size, hlc, origin) of the live item, or None."""
        row = self._cur.execute(
            "SELECT item, size, hlc, origin, crc FROM items WHERE tid=? AND h=? AND pk=? AND sk=?",
            (tid, h, pk, sk)).fetchone()
        if row is None:
            return None
        if zlib.crc32(row[0]) != row[4]:
            raise CorruptionDetected("Stored item failed its checksum")
        return row[0], row[1], row[2], row[3]

    def put(self, tid: int, h: int, pk: bytes, sk: bytes, item: bytes, size: int,
            hlc: int, origin: str, old_size: int | None,
            prev: tuple[int, str] | None = None) -> None:
        """Write an item at version (hlc, origin); `prev` is the version it overwrote."""
        # A tombstone left behind by an earlier delete of this key stays: its version is
        # older than the new item's, and replication compares against the newest of both.
        self.writes += 1
        self.prevs[(tid, h, pk, sk)] = prev
        self.item_changes.append(((tid, h, pk, sk), (item, size)))
        self._cur.execute(
            "INSERT OR REPLACE INTO items (tid, h, pk, sk, item, size, hlc, origin, crc,"
            " prev_hlc, prev_origin) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (tid, h, pk, sk, item, size, hlc, origin, zlib.crc32(item),
             *(prev if prev is not None else (None, None))))
        if old_size is None:
            self._count(tid, 1, size)
        else:
            self._count(tid, 0, size - old_size)

    def delete(self, tid: int, h: int, pk: bytes, sk: bytes, hlc: int, origin: str,
               old_size: int, prev: tuple[int, str] | None = None) -> None:
        self.writes += 1
        self.item_changes.append(((tid, h, pk, sk), None))
        self._cur.execute("DELETE FROM items WHERE tid=? AND h=? AND pk=? AND sk=?",
                          (tid, h, pk, sk))
        self._tombstone(tid, h, pk, sk, hlc, origin, prev)
        self._count(tid, -1, -old_size)

    def delete_absent(self, tid: int, h: int, pk: bytes, sk: bytes, hlc: int, origin: str,
                      prev: tuple[int, str] | None = None) -> None:
        """Record a delete of an item that does not exist here (it may exist elsewhere)."""
        self.writes += 1
        self._tombstone(tid, h, pk, sk, hlc, origin, prev)

    def _tombstone(self, tid: int, h: int, pk: bytes, sk: bytes, hlc: int, origin: str,
                   prev: tuple[int, str] | None) -> None:
        self.prevs[(tid, h, pk, sk)] = prev
        self.tombstone_tids.add(tid)  # before the insert: a rolled-back add stays harmless
        self._cur.execute(
            "INSERT OR REPLACE INTO tombstones (tid, h, pk, sk, hlc, origin, prev_hlc,"
            " prev_origin) VALUES (?,?,?,?,?,?,?,?)",
            (tid, h, pk, sk, hlc, origin, *(prev if prev is not None else (None, None))))

    def prev_of(self, tid: int, h: int, pk: bytes, sk: bytes) -> tuple[int, str] | None:
        """The `prev` this transaction just wrote for a key (for its changelog record)."""
        return self.prevs.get((tid, h, pk, sk))

    def versions(self, tid: int, h: int, pk: bytes, sk: bytes
                 ) -> tuple[tuple[bytes, int, int, str, tuple[int, str] | None] | None,
                            tuple[int, str, tuple[int, str] | None] | None]:
        """The live row (item, size, hlc, origin, prev) and the tombstone (hlc, origin,
        prev) of a key, each or both None."""
        row = self._cur.execute(
            "SELECT item, size, hlc, origin, crc, prev_hlc, prev_origin FROM items"
            " WHERE tid=? AND h=? AND pk=? AND sk=?", (tid, h, pk, sk)).fetchone()
        if row is not None and zlib.crc32(row[0]) != row[4]:
            raise CorruptionDetected("Stored item failed its checksum")
        tomb = self._cur.execute(
            "SELECT hlc, origin, prev_hlc, prev_origin FROM tombstones"
            " WHERE tid=? AND h=? AND pk=? AND sk=?", (tid, h, pk, sk)).fetchone(
        ) if tid in self.tombstone_tids else None
        live = None if row is None else (
            row[0], row[1], row[2], row[3], (row[5], row[6]) if row[5] is not None else None)
        dead = None if tomb is None else (
            tomb[0], tomb[1], (tomb[2], tomb[3]) if tomb[2] is not None else None)
        return live, dead

    def _count(self, tid: int, items: int, size: int) -> None:
        stats = self._stats.get(tid)
        if stats is None:
            self._stats[tid] = [items, size]
        else:
            stats[0] += items
            stats[1] += size

    def flush_stats(self) -> None:
        for tid, (items, size) in self._stats.items():
            self._cur.execute(
                "UPDATE tables SET item_count=item_count+?, size_bytes=size_bytes+? WHERE tid=?",
                (items, size, tid))
        self._stats.clear()

    def forget_stats(self) -> None:
        self._stats.clear()

    # --- secondary indexes -------------------------------------------------------------
    def index_put(self, tid: int, iid: int, h: int, pk: bytes, sk: bytes, base_pk: bytes,
                  base_sk: bytes, item: bytes, size: int) -> None:
        self.writes += 1
        self._cur.execute(
            "INSERT OR REPLACE INTO index_items (tid, iid, h, pk, sk, base_pk, base_sk, item,"
            " size, crc) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (tid, iid, h, pk, sk, base_pk, base_sk, item, size, zlib.crc32(item)))

    def index_put_many(self, rows: list[tuple[int, int, int, bytes, bytes, bytes, bytes, bytes,
                                              int]]) -> None:
        """Several index rows (tid, iid, h, pk, sk, base_pk, base_sk, item, size) at once."""
        self.writes += 1
        params: list[Any] = []
        for row in rows:
            params.extend(row)
            params.append(zlib.crc32(row[7]))
        # one statement for all of an item's index rows: one step, one GIL round trip
        self._cur.execute(_INDEX_INSERT + ",".join(("(?,?,?,?,?,?,?,?,?,?)",) * len(rows)),
                          params)

    def index_delete(self, tid: int, iid: int, h: int, pk: bytes, sk: bytes, base_pk: bytes,
                     base_sk: bytes) -> None:
        self.writes += 1
        self._cur.execute(
            "DELETE FROM index_items WHERE tid=? AND iid=? AND h=? AND pk=? AND sk=?"
            " AND base_pk=? AND base_sk=?", (tid, iid, h, pk, sk, base_pk, base_sk))

    def index_drop(self, tid: int, iid: int) -> None:
        self.writes += 1
        self._cur.execute("DELETE FROM index_items WHERE tid=? AND iid=?", (tid, iid))

    def scan_chunk(self, tid: int, after: tuple[int, bytes, bytes] | None, limit: int
                   ) -> list[tuple[int, bytes, bytes, bytes, int]]:
        """Up to `limit` (h, pk, sk, item, size) rows after a key, in scan order (backfill,
        TTL): read inside the write transaction, so they are the current items."""
        if after is None:
            rows = self._cur.execute(
                "SELECT h, pk, sk, item, size FROM items WHERE tid=? ORDER BY h, pk, sk LIMIT ?",
                (tid, limit))
        else:
            rows = self._cur.execute(
                "SELECT h, pk, sk, item, size FROM items WHERE tid=? AND (h, pk, sk) > (?,?,?)"
                " ORDER BY h, pk, sk LIMIT ?", (tid, *after, limit))
        return list(rows)

    # --- transaction tokens ------------------------------------------------------------
    def token_get(self, token: str) -> tuple[bytes, int] | None:
        row = self._cur.execute("SELECT request_hash, created_ms FROM txn_tokens WHERE token=?",
                                (token,)).fetchone()
        return (row[0], int(row[1])) if row is not None else None

    def token_put(self, token: str, request_hash: bytes, created_ms: int) -> None:
        self.writes += 1
        self._cur.execute("INSERT OR REPLACE INTO txn_tokens (token, request_hash, created_ms)"
                          " VALUES (?,?,?)", (token, request_hash, created_ms))

    def tokens_purge(self, older_than_ms: int, limit: int) -> int:
        cursor = self._cur.execute(
            "DELETE FROM txn_tokens WHERE token IN (SELECT token FROM txn_tokens"
            " WHERE created_ms < ? LIMIT ?)", (older_than_ms, limit))
        if cursor.rowcount:
            self.writes += 1
        return int(cursor.rowcount)

    # --- changelog ---------------------------------------------------------------------
    def log_change(self, hlc: int, body: bytes) -> int:
        """Append a local change to the changelog; returns its origin sequence."""
        seq = self.next_seq
        self.writes += 1
        self._cur.execute(
            "INSERT INTO changelog (origin, origin_seq, hlc, body, crc) VALUES (?,?,?,?,?)",
            (self.region, seq, hlc, body, zlib.crc32(body)))
        self.next_seq = seq + 1
        return seq

    # --- replication -------------------------------------------------------------------
    def version(self, tid: int, h: int, pk: bytes, sk: bytes) -> tuple[int, str, bool] | None:
        """(hlc, origin, live) of the newest version of a key — its live item or its
        tombstone — or None if this node never saw the key."""
        row = self._cur.execute(
            "SELECT hlc, origin FROM items WHERE tid=? AND h=? AND pk=? AND sk=?",
            (tid, h, pk, sk)).fetchone()
        tomb = self.tombstone_version(tid, h, pk, sk)
        if row is not None and (tomb is None or (row[0], row[1]) > (tomb[0], tomb[1])):
            return int(row[0]), str(row[1]), True
        if tomb is not None:
            return int(tomb[0]), str(tomb[1]), False
        return None

    def tombstone_version(self, tid: int, h: int, pk: bytes, sk: bytes) -> tuple[int, str] | None:
        if tid not in self.tombstone_tids:
            return None
        row = self._cur.execute(
            "SELECT hlc, origin FROM tombstones WHERE tid=? AND h=? AND pk=? AND sk=?",
            (tid, h, pk, sk)).fetchone()
        return (int(row[0]), str(row[1])) if row is not None else None

    def set_table_state(self, name: str, created: tuple[int, str], version: tuple[int, str],
                        definition: bytes | None) -> None:
        self.writes += 1
        self._cur.execute(
            "INSERT OR REPLACE INTO table_states (name, created_hlc, created_origin, version_hlc,"
            " version_origin, definition) VALUES (?,?,?,?,?,?)",
            (name, created[0], created[1], version[0], version[1], definition))

    def append_remote_changes(self, changes: list[tuple[str, int, int, bytes]]) -> None:
        """Store changes learned from a peer, (origin, origin_seq, hlc, body) each, in the
        changelog (so they can be passed on); one already there is skipped (duplicates
        are harmless). One statement for all: applies append a thousand at a time."""
        if not changes:
            return
        self.writes += 1
        self._cur.executemany(
            "INSERT OR IGNORE INTO changelog (origin, origin_seq, hlc, body, crc) VALUES (?,?,?,?,?)",
            [(origin, seq, hlc, body, zlib.crc32(body)) for origin, seq, hlc, body in changes])

    def cursor(self, origin: str) -> int:
        row = self._cur.execute("SELECT seq FROM cursors WHERE origin=?", (origin,)).fetchone()
        return int(row[0]) if row else 0

    def set_cursor(self, origin: str, seq: int, hlc: int) -> None:
        self.writes += 1
        self._cur.execute("INSERT OR REPLACE INTO cursors (origin, seq, hlc) VALUES (?,?,?)",
                          (origin, seq, hlc))

    def purge_changelog(self, origin: str, through_seq: int, limit: int) -> int:
        """Delete up to `limit` of `origin`'s records with seq <= through_seq (never the
        origin's latest record: this node's own next sequence is derived from it)."""
        self.writes += 1
        cursor = self._cur.execute(
            "DELETE FROM changelog WHERE seq IN (SELECT seq FROM changelog WHERE origin=? AND "
            "origin_seq<=? AND origin_seq < (SELECT MAX(origin_seq) FROM changelog WHERE "
            "origin=?) ORDER BY origin_seq LIMIT ?)", (origin, through_seq, origin, limit))
        return cursor.rowcount

    def purge_tombstones(self, below_hlc: int, limit: int) -> int:
        self.writes += 1
        cursor = self._cur.execute(
            "DELETE FROM tombstones WHERE (tid, h, pk, sk) IN (SELECT tid, h, pk, sk FROM "
            "tombstones WHERE hlc < ? LIMIT ?)", (below_hlc, limit))
        return cursor.rowcount

    def record_conflict(self, detected_ms: int, table_name: str, record: bytes) -> None:
        self.writes += 1
        self._cur.execute(
            "INSERT INTO conflicts (detected_ms, table_name, record) VALUES (?,?,?)",
            (detected_ms, table_name, record))

    # --- catalog -----------------------------------------------------------------------
    def table_row(self, name: str) -> tuple[int, bytes] | None:
        """(tid, definition) of the live table `name` as of this transaction."""
        row = self._cur.execute("SELECT tid, definition FROM tables WHERE name=?",
                                (name,)).fetchone()
        return (int(row[0]), row[1]) if row is not None else None

    def table_state_row(self, name: str) -> tuple[int, str, int, str, bytes | None] | None:
        """(created hlc, created origin, version hlc, version origin, definition) of the
        table name's replicated state as of this transaction."""
        row = self._cur.execute(
            "SELECT created_hlc, created_origin, version_hlc, version_origin, definition"
            " FROM table_states WHERE name=?", (name,)).fetchone()
        return tuple(row) if row is not None else None  # type: ignore[return-value]

    def create_table(self, name: str, definition: bytes) -> int:
        row = self._cur.execute("SELECT COALESCE(MAX(tid), 0) + 1 FROM tables").fetchone()
        tid = int(row[0])
        self.writes += 1
        self._cur.execute("INSERT INTO tables (name, tid, definition) VALUES (?,?,?)",
                          (name, tid, definition))
        return tid

    def update_table(self, name: str, definition: bytes) -> None:
        self.writes += 1
        self._cur.execute("UPDATE tables SET definition=? WHERE name=?", (definition, name))

    def drop_table(self, name: str, tid: int) -> None:
        self.dropped_tids.add(tid)
        self.writes += 1
        self._cur.execute("DELETE FROM tables WHERE name=?", (name,))
        self._cur.execute("DELETE FROM items WHERE tid=?", (tid,))
        self._cur.execute("DELETE FROM tombstones WHERE tid=?", (tid,))
        self._cur.execute("DELETE FROM index_items WHERE tid=?", (tid,))
        self._stats.pop(tid, None)


class _Job:
    __slots__ = ("fn", "future", "inline", "result", "error", "queued")

    def __init__(self, fn: Callable[[WriteTxn], Any], future: asyncio.Future[Any],
                 inline: bool) -> None:
        self.fn = fn
        self.future = future
        self.inline = inline
        self.result: Any = None
        self.error: BaseException | None = None
        self.queued = now_ns()


# What a batch leaves for delivery: its jobs, what its commit did to live items (None if
# it did not commit), the number of the last commit its jobs may have seen, and its
# stage times.
_Ran = tuple[list[_Job], tuple[list[Any], set[int]] | None, int, BatchTimes]


class SqliteStorage:
    """One node's database file. Construct, then `start(loop)` before writing."""

    def __init__(self, path: str, *, durable: bool = True, region: str = "local") -> None:
        self.path = path
        self.durable = durable
        self.region = region
        self._writer = _connect(path, durable)
        self._init_schema()
        self._reader = _connect(path, durable)
        self._reader_cursor = self._reader.cursor()  # for key lookups: see `_read_key`
        # the WAL, fdatasynced by the syncer thread (the schema statements created it)
        self._wal_fd = os.open(path + "-wal", os.O_RDONLY) if durable else -1
        self.fdatasync: Callable[[int], None] = os.fdatasync  # tests wrap it to delay or fail
        # This region's next sequence continues after its last change: in its changelog,
        # or (after a rebuild from a peer's snapshot) recorded as its own cursor.
        row = self._writer.execute(
            "SELECT MAX(COALESCE((SELECT MAX(origin_seq) FROM changelog WHERE origin=?), 0),"
            " COALESCE((SELECT seq FROM cursors WHERE origin=?), 0))", (region, region)).fetchone()
        self._txn = WriteTxn(self._writer, region, int(row[0]) + 1)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._sync_queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._queued = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer_thread: threading.Thread | None = None
        self._syncer: threading.Thread | None = None
        self._closed = False  # writes refused (shutting down, or the writer failed)
        self._shut = False  # close() ran
        self._stop_checkpoints = threading.Event()
        self._checkpointer: threading.Thread | None = None
        self.commit_listeners: list[Callable[[], None]] = []  # loop thread, after each batch
        self._current_batch: list[_Job] = []  # the batch running on the writer thread
        self._pending: list[_Job] = []  # event-loop thread: jobs waiting for a batch
        self._in_flight = False  # a batch runs on the writer thread
        self._start_scheduled = False
        self._rewind_wanted = False  # the checkpointer asked for a rewind of the WAL
        self._seq_before = 0  # the open transaction's first changelog sequence
        # Commits are numbered; the number is taken before COMMIT, so a read that sees a
        # commit finds its number (or a higher one) in `_commits` afterwards.
        self._commits = 0
        self._durable = 0  # every commit up to this number is durable and answered
        self._read_mark = 0  # the highest commit number a read may have seen
        self._settle_waiters: collections.deque[tuple[int, asyncio.Future[None]]] = \
            collections.deque()
        self._sync_error: OSError | None = None  # an fdatasync failed: nothing is durable
        self._cache: dict[tuple[int, int, bytes, bytes], ItemRow] = {}
        self._cache_bytes = 0
        self.batches_committed = 0
        self.jobs_committed = 0
        self.write_path = WritePath()  # stage times of recent batches (loop thread)
        # The WAL, for /_atoll/status: the frames it held at the last checkpoint, and the
        # writer's pauses before the last rewinds (ns).
        self.wal_frames = 0
        self.rewind_pauses: collections.deque[int] = collections.deque(maxlen=REWINDS_KEPT)
        self.rewinds_done = 0

    def _init_schema(self) -> None:
        for statement in STATEMENTS:
            self._writer.execute(statement)
        row = self._writer.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            self._writer.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                                 (str(SCHEMA_VERSION),))
        elif int(row[0]) != SCHEMA_VERSION:
            raise InternalError(f"{self.path}: schema version {row[0]}, expected {SCHEMA_VERSION}")

    # --- lifecycle ---------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        invariant(self._writer_thread is None, "storage started twice")
        self._loop = loop
        self._writer_thread = threading.Thread(target=self._run_writer, name="atoll-writer", daemon=True)
        self._writer_thread.start()
        self._syncer = threading.Thread(target=self._run_syncer, name="atoll-syncer", daemon=True)
        self._syncer.start()
        self._checkpointer = threading.Thread(target=self._run_checkpointer,
                                              name="atoll-checkpointer", daemon=True)
        self._checkpointer.start()

    def _run_checkpointer(self) -> None:
        conn = _connect(self.path, self.durable)
        failing = ""  # the error of the failing streak (logged once, not ten times a second)
        try:
            while not self._stop_checkpoints.wait(CHECKPOINT_INTERVAL_S):
                try:
                    frames = self._checkpoint(conn)
                    if frames >= REWIND_FRAMES and self._catch_up(conn, frames):
                        self._ask(self._want_rewind)
                except sqlite3.Error as exc:  # busy or I/O trouble: the next round retries
                    if str(exc) != failing:
                        log.warning("checkpoints failing (retried every %.1f s): %s",
                                    CHECKPOINT_INTERVAL_S, exc)
                    failing = str(exc)
                    continue
                if failing:
                    log.warning("checkpoints succeed again")
                    failing = ""
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> int:
        """One PASSIVE checkpoint; returns the frames the WAL holds, all of them copied
        into the database (0 if a reader's older snapshot or another checkpoint kept
        some back: no rewind can happen then). Notes the WAL's frames for the status."""
        busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.wal_frames = int(frames)
        return int(frames) if not busy and copied == frames else 0

    def _catch_up(self, conn: sqlite3.Connection, frames: int) -> bool:
        """Checkpoint again until a pass finds at most REWIND_REST_FRAMES new frames, so
        the writer's pause before a rewind copies only those; False if held back. After
        CATCH_UP_PASSES passes it answers True anyway: under heavy writes (~10,000 puts/s)
        passes may not converge, and the pause then copies what is left."""
        for _pass in range(CATCH_UP_PASSES):
            more = self._checkpoint(conn)
            if more == 0:
                return False
            if more - frames <= REWIND_REST_FRAMES:
                return True
            frames = more
        return True

    def _ask(self, callback: Callable[[], None]) -> None:
        """From another thread: run `callback` on the event-loop thread, unless the loop
        has closed (the storage is being shut down then; nothing is left to do)."""
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(callback)
        except RuntimeError:  # the loop is closed
            pass

    def _want_rewind(self) -> None:
        """Event-loop thread: the next turn of the writer thread checkpoints the rest of
        the WAL, so that the batch after it starts the WAL over (see the module doc)."""
        self._rewind_wanted = True
        self._schedule_start()

    def _rewind(self) -> None:
        """Writer thread, between batches: copy what the WAL holds beyond the last
        checkpoint; with nothing left uncopied, the next write rewinds the WAL."""
        began = now_ns()
        try:
            self._checkpoint(self._writer)
        except sqlite3.Error as exc:  # the checkpointer's next round asks again
            log.warning("checkpoint before rewinding the WAL failed: %s", exc)
        self.rewind_pauses.append(now_ns() - began)
        self.rewinds_done += 1

    def wal_summary(self) -> dict[str, Any]:
        """The WAL's frames at the last checkpoint, the rewinds so far, and percentiles
        (ms) of the writer's pause before each of the last REWINDS_KEPT."""
        pauses = sorted(self.rewind_pauses)
        return {
            "frames": self.wal_frames, "rewind_frames": REWIND_FRAMES,
            "rewinds": self.rewinds_done,
            "rewind_pause_ms": percentiles_ms(pauses, with_max=True) if pauses else {},
        }

    def close(self) -> None:
        """Finish every queued write, then close both connections (checkpointing the WAL)."""
        if self._shut:
            return
        self._shut = self._closed = True  # new writes are refused from here on
        if self._writer_thread is not None:
            self._queue.put(_STOP)  # behind the batch in flight, if any
            self._writer_thread.join()
            leftovers, self._pending = self._pending, []
            if leftovers:  # queued but not started: run them here; the syncer answers them
                self._commit(leftovers, self._run_jobs(leftovers), on_loop=True,
                             times=BatchTimes(len(leftovers), leftovers[0].queued))
            self._sync_queue.put(_STOP)  # behind every batch waiting for its fdatasync
            assert self._syncer is not None
            self._syncer.join()
        self._stop_checkpoints.set()
        if self._checkpointer is not None:
            self._checkpointer.join()
        self._reader.close()
        try:
            self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:  # a busy reader elsewhere: the WAL stays, nothing is lost
            log.warning("checkpoint at close failed: %s", exc)
        self._writer.close()
        if self._wal_fd >= 0:
            os.close(self._wal_fd)
            self._wal_fd = -1

    # --- writes ------------------------------------------------------------------------
    def write(self, fn: Callable[[WriteTxn], Any], *, inline: bool = False
              ) -> asyncio.Future[Any]:
        """Queue a write job; the future resolves once its batch is durable.

        `inline`: the job is short (one request's items, well under a millisecond), so a
        batch of only such jobs may run on the event-loop thread (see the module doc).
        Anything that may run longer (replication, backfill, purges, DDL) leaves it False.
        """
        invariant(self._loop is not None, "storage not started")
        if self._closed:
            raise ServiceUnavailable("The server is shutting down")
        if self._queued >= MAX_QUEUED_JOBS:
            raise ServiceUnavailable("Too many writes queued; retry")
        future: asyncio.Future[Any] = self._loop.create_future()  # type: ignore[union-attr]
        self._queued += 1
        self._pending.append(_Job(fn, future, inline))
        self._schedule_start()  # later jobs of this loop iteration join the batch
        return future

    def _schedule_start(self) -> None:
        """Event-loop thread: run `_start_batch` once soon, unless a batch is in flight
        (its end starts the next)."""
        if not self._in_flight and not self._start_scheduled:
            self._start_scheduled = True
            self._loop.call_soon(self._start_batch)  # type: ignore[union-attr]

    def write_sync(self, fn: Callable[[WriteTxn], Any]) -> Any:
        """Run one write job on the calling thread (only before `start`, e.g. recovery)."""
        invariant(self._writer_thread is None, "write_sync after start")
        job = _Job(fn, None, False)  # type: ignore[arg-type]
        running = self._run_jobs([job])
        if running is not None and self._commit_jobs(running) is not None and self.durable:
            self.fdatasync(self._wal_fd)
        self._durable = self._commits  # nothing is answered before start
        if job.error is not None:
            raise job.error
        return job.result

    def _start_batch(self) -> None:
        """Event-loop thread: start the next batch unless one is in flight. A batch of
        inline jobs runs here and goes to the writer thread for its COMMIT; any other
        batch runs there whole (one batch at a time, so jobs see each other's writes in
        submission order). In-memory, an inline batch also commits here (no fsync)."""
        self._start_scheduled = False
        if self._in_flight or self._closed:
            return
        if self._rewind_wanted:
            self._rewind_wanted = False
            self._in_flight = True
            self._queue.put(_REWIND)
            return
        if not self._pending:
            return
        batch = self._pending[:MAX_BATCH_JOBS]
        del self._pending[:MAX_BATCH_JOBS]
        self._current_batch = batch
        times = BatchTimes(len(batch), batch[0].queued)
        if not all(job.inline for job in batch):
            self._in_flight = True
            times.handed = times.started
            self._queue.put((batch, None, times))
            return
        try:
            running = self._run_jobs(batch)
            times.ran = times.handed = now_ns()
            if running is not None and self.durable:
                self._in_flight = True
                self._queue.put((batch, running, times))
                return
            self._commit(batch, running, on_loop=True, times=times)
        except Exception:  # a bug, as on the writer thread
            log.critical("a write batch failed; refusing writes", exc_info=True)
            self._writer_died()
            return
        self._current_batch = []
        if self._pending:  # more than one batch's worth
            self._schedule_start()

    def _commit(self, batch: list[_Job], running: list[_Job] | None, *, on_loop: bool,
                times: BatchTimes) -> None:
        """COMMIT the jobs `_run_jobs` left running, if any (synchronous=NORMAL: no fsync
        here), then hand the batch over for durability: to the syncer, whose fdatasync of
        the WAL makes it durable before any job is answered. Batches reach the syncer in
        commit order."""
        changes = None
        if running is not None:
            times.commit_from = now_ns()
            changes = self._commit_jobs(running)
            times.committed = now_ns()
        ran: _Ran = (batch, changes, self._commits, times)
        if self.durable:
            self._sync_queue.put(ran)
        elif on_loop:  # nothing to fsync (tmpfs): answered next
            self._loop.call_soon(self._synced, [ran])  # type: ignore[union-attr]
        else:
            self._loop.call_soon_threadsafe(self._synced, [ran])  # type: ignore[union-attr]

    def _run_writer(self) -> None:
        try:
            while True:
                message = self._queue.get()
                if message is _STOP:
                    return
                if message is _REWIND:
                    self._rewind()
                else:
                    batch, running, times = message
                    times.taken = now_ns()
                    if running is None:  # not run yet: a batch with long jobs
                        times.run_from = times.taken
                        running = self._run_jobs(batch)
                        times.ran = now_ns()
                    self._commit(batch, running, on_loop=False, times=times)
                assert self._loop is not None
                self._loop.call_soon_threadsafe(self._writer_done)
        except BaseException:
            # A bug, not a fault: no write can be made durable any more.
            log.critical("the storage writer thread died; refusing writes", exc_info=True)
            self._closed = True
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._writer_died)

    def _writer_done(self) -> None:
        """Event-loop thread: the writer thread committed its batch; start the next (its
        COMMIT may overlap this one's fdatasync)."""
        self._in_flight = False
        self._current_batch = []
        self._start_batch()

    def _run_syncer(self) -> None:
        """Make committed batches durable: one fdatasync of the WAL covers every batch
        that committed before it started, however many queued up during the last one."""
        assert self._loop is not None
        while True:
            ran = [self._sync_queue.get()]
            while True:
                try:
                    ran.append(self._sync_queue.get_nowait())
                except queue.Empty:
                    break
            stop = ran[-1] is _STOP
            if stop:
                ran.pop()
            if ran:
                if self._sync_error is None:
                    try:
                        self.fdatasync(self._wal_fd)
                        synced = now_ns()
                        for _batch, _changes, _commit, times in ran:
                            times.synced = synced
                    except OSError as exc:
                        # After a failed fsync the kernel may have dropped the dirty pages:
                        # no later fsync can vouch for them. Nothing is durable any more.
                        log.critical("fdatasync of the WAL failed; refusing writes: %s", exc)
                        self._sync_error = exc
                        self._closed = True
                if self._sync_error is None:
                    self._loop.call_soon_threadsafe(self._synced, ran)
                else:
                    self._loop.call_soon_threadsafe(self._sync_failed, ran)
            if stop:
                return

    def _synced(self, ran: list[_Ran]) -> None:
        """Event-loop thread: these batches are durable; answer them, in commit order."""
        answered = now_ns()
        for batch, changes, _commit, times in ran:
            self._deliver(batch, changes)
            self.write_path.answered(times, answered)
        self._durable = max(self._durable, ran[-1][2])
        waiters = self._settle_waiters
        while waiters and waiters[0][0] <= self._durable:
            waiter = waiters.popleft()[1]
            if not waiter.done():
                waiter.set_result(None)

    def _sync_failed(self, ran: list[_Ran]) -> None:
        """Event-loop thread: durability is lost. Fail these batches, everything queued,
        and every answer waiting to settle (none of it was acknowledged)."""
        failure = self._durability_lost()
        self._closed = True
        pending, self._pending = self._pending, []
        for batch in [ran_batch for ran_batch, *_ in ran] + [pending]:
            for job in batch:
                job.result, job.error = None, failure
            self._deliver(batch, None)
        while self._settle_waiters:
            waiter = self._settle_waiters.popleft()[1]
            if not waiter.done():
                waiter.set_exception(failure)

    def _writer_died(self) -> None:
        """Event-loop thread: refuse new writes and fail the running batch and every
        queued job (none of them was acknowledged) instead of leaving them hanging."""
        self._closed = True
        failed = self._current_batch + self._pending
        self._current_batch, self._pending = [], []
        for job in failed:
            job.error = ServiceUnavailable("The storage writer failed; see the log")
        self._deliver(failed, None)

    def _run_jobs(self, batch: list[_Job]) -> list[_Job] | None:
        """BEGIN and run the jobs, leaving the transaction open; returns the jobs whose
        writes it holds, or None if it failed (each job then holds its error)."""
        running = batch
        for _attempt in range(len(batch) + 1):  # each replay drops at least one job
            poisoned = self._try_jobs(running)
            if poisoned is _FAILED:
                return None
            if poisoned is None:
                return running
            running = [job for job in running if job is not poisoned and job.error is None]
        invariant(False, "batch replay did not converge")
        return None

    def _try_jobs(self, batch: list[_Job]) -> object:
        """Run the jobs in a new transaction; return a job that failed after writing (the
        transaction was rolled back: replay without it), _FAILED, or None."""
        conn = self._writer
        txn = self._txn
        self._seq_before = txn.next_seq
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in batch:
                writes_before = txn.writes
                try:
                    job.result = job.fn(txn)
                except Exception as exc:
                    job.error = exc
                    if txn.writes != writes_before:
                        self._roll_back()
                        return job
            txn.flush_stats()
        except sqlite3.Error as exc:
            self._fail(batch, exc)
            return _FAILED
        return None

    def _commit_jobs(self, batch: list[_Job]) -> tuple[list[Any], set[int]] | None:
        """COMMIT the transaction `_run_jobs` left open; returns what it did to live items
        (for the read cache), or None if the COMMIT failed."""
        txn = self._txn
        self._commits += 1  # before COMMIT: see `_commits`
        try:
            self._writer.execute("COMMIT")
        except sqlite3.Error as exc:
            self._fail(batch, exc)
            return None
        changes = (txn.item_changes, txn.dropped_tids)
        txn.reset()
        self.batches_committed += 1
        self.jobs_committed += len(batch)
        return changes

    def _roll_back(self) -> None:
        if self._writer.in_transaction:
            self._writer.execute("ROLLBACK")
        self._txn.forget_stats()
        self._txn.next_seq = self._seq_before
        self._txn.reset()

    def _fail(self, batch: list[_Job], exc: sqlite3.Error) -> None:
        log.error("commit of %d writes failed: %s", len(batch), exc)
        self._roll_back()
        failure = ServiceUnavailable(f"The write could not be made durable: {exc}")
        for job in batch:
            job.result, job.error = None, failure

    def _deliver(self, batch: list[_Job], changes: tuple[list[Any], set[int]] | None) -> None:
        # The read cache learns what committed before any caller hears of it, so a read
        # that follows an acknowledged write always sees it.
        if changes is not None:
            self._cache_update(*changes)
        self._queued -= len(batch)
        for listener in self.commit_listeners:
            listener()
        for job in batch:
            if job.future.done():  # the caller went away (connection closed)
                continue
            if job.error is not None:
                job.future.set_exception(job.error)
            else:
                job.future.set_result(job.result)

    # --- answers wait for durability (event-loop thread) ---------------------------------
    def settle(self) -> asyncio.Future[None] | None:
        """None if every commit that a read may have seen is durable; else a future that
        resolves once it is (or fails with ServiceUnavailable if it never will be).
        Answers (and requests to peers) that carry what was read wait for it: nothing a
        crash could still undo leaves the node."""
        if self._durable >= self._read_mark:
            return None
        mark = self._read_mark
        waiters = self._settle_waiters
        if waiters and waiters[-1][0] == mark:  # answers of one mark share a future
            return waiters[-1][1]
        waiter: asyncio.Future[None] = self._loop.create_future()  # type: ignore[union-attr]
        if self._sync_error is not None:  # it never will be
            waiter.set_exception(self._durability_lost())
        else:
            waiters.append((mark, waiter))
        return waiter

    def _durability_lost(self) -> ServiceUnavailable:
        """What writes and answers get once an fdatasync failed."""
        return ServiceUnavailable(f"The data could not be made durable: {self._sync_error}")

    async def settled(self) -> None:
        """Wait until `settle()` has nothing to wait for."""
        waiter = self.settle()
        if waiter is not None:
            await waiter

    def _read(self, sql: str, args: Any = ()) -> sqlite3.Cursor:
        """Run a statement on the reader connection, noting the commits it may see (the
        statement's snapshot is taken by its first step, inside execute)."""
        cursor = self._reader.execute(sql, args)
        self._read_mark = self._commits
        return cursor

    def _read_key(self, sql: str, args: Any) -> Any:
        """The row (or None) of a statement that matches at most one, such as a lookup by
        primary key, on a cursor kept for them (WriteTxn says why): fetching the row steps
        the statement to its end, which resets it, so no read stays open. Marks as _read."""
        row = self._reader_cursor.execute(sql, args).fetchone()
        self._read_mark = self._commits
        return row

    # --- reads (event-loop thread) -----------------------------------------------------
    def get_item(self, tid: int, h: int, pk: bytes, sk: bytes) -> ItemRow | None:
        key = (tid, h, pk, sk)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        row = self._read_key(
            "SELECT item, size, crc FROM items WHERE tid=? AND h=? AND pk=? AND sk=?", key)
        if row is None:
            return None
        if zlib.crc32(row[0]) != row[2]:
            raise CorruptionDetected("Stored item failed its checksum")
        found = (row[0], row[1])
        if self._queued == 0:
            # no write is between COMMIT and delivery: the file equals what callers were
            # told, so the row may be cached (else a later cache hit could go backwards)
            self._cache_put(key, found)
        return found

    # --- the read cache (event-loop thread) ---------------------------------------------
    # Items by key, exactly as committed and delivered: filled by reads while no write is
    # in flight; a committed write replaces (or a delete removes) a cached entry before
    # its caller hears back. Bounded by CACHE_MAX_BYTES, per-entry overhead included
    # (dropped whole when full: cheap, and refilled by the next reads).
    def _cache_put(self, key: tuple[int, int, bytes, bytes], row: ItemRow) -> None:
        old = self._cache.get(key)
        if old is not None:
            self._cache_bytes -= len(old[0]) + CACHE_ENTRY_OVERHEAD_BYTES
        self._cache[key] = row
        self._cache_bytes += len(row[0]) + CACHE_ENTRY_OVERHEAD_BYTES
        if self._cache_bytes > CACHE_MAX_BYTES:
            self._cache.clear()
            self._cache_bytes = 0

    def _cache_update(self, changes: list[Any], dropped: set[int]) -> None:
        if dropped:
            for key in [k for k in self._cache if k[0] in dropped]:
                self._cache_bytes -= len(self._cache.pop(key)[0]) + CACHE_ENTRY_OVERHEAD_BYTES
        for key, row in changes:
            old = self._cache.pop(key, None)
            if old is None:
                continue  # not cached: writes do not fill the cache, reads do
            self._cache_bytes -= len(old[0]) + CACHE_ENTRY_OVERHEAD_BYTES
            if row is not None:
                self._cache_put(key, row)

    def query_items(self, tid: int, h: int, pk: bytes, lower: tuple[bytes, bool] | None,
                    upper: tuple[bytes, bool] | None, forward: bool
                    ) -> Iterator[tuple[bytes, bytes, int]]:
        """(sk, item, size) of one partition's items within the sort-key bounds, in order."""
        sql = ["SELECT sk, item, size, crc FROM items WHERE tid=? AND h=? AND pk=?"]
        args: list[Any] = [tid, h, pk]
        _sort_key_bounds(sql, args, lower, upper)
        sql.append("ORDER BY sk" if forward else "ORDER BY sk DESC")
        for sk, item, size, crc in self._read(" ".join(sql), args):
            if zlib.crc32(item) != crc:
                raise CorruptionDetected("Stored item failed its checksum")
            yield sk, item, size

    def scan_items(self, tid: int, after: tuple[int, bytes, bytes] | None, h_end: int | None,
                   h_start: int = 0) -> Iterator[tuple[int, bytes, bytes, bytes, int]]:
        """(h, pk, sk, item, size) in scan order, after a key, with h in [h_start, h_end)."""
        if after is None:
            sql = "SELECT h, pk, sk, item, size, crc FROM items WHERE tid=? AND h >= ?"
            args: list[Any] = [tid, h_start]
        else:
            sql = ("SELECT h, pk, sk, item, size, crc FROM items WHERE tid=? AND (h, pk, sk) > (?,?,?)")
            args = [tid, *after]
        if h_end is not None:
            sql += " AND h < ?"
            args.append(h_end)
        sql += " ORDER BY h, pk, sk"
        for h, pk, sk, item, size, crc in self._read(sql, args):
            if zlib.crc32(item) != crc:
                raise CorruptionDetected("Stored item failed its checksum")
            yield h, pk, sk, item, size

    def last_local_hlc(self) -> int:
        row = self._read(
            "SELECT MAX(hlc) FROM changelog WHERE origin=?", (self.region,)).fetchone()
        return int(row[0] or 0)

    def cursors(self) -> dict[str, int]:
        """Per origin, the highest contiguous sequence applied here (this node's own
        origin included: its last local change)."""
        return {origin: seq for origin, (seq, _hlc) in self.cursor_vector().items()}

    def cursor_vector(self) -> dict[str, tuple[int, int]]:
        """Per origin, (seq, hlc) of the last change applied here."""
        result = {str(o): (int(s), int(h))
                  for o, s, h in self._read("SELECT origin, seq, hlc FROM cursors")}
        row = self._read(
            "SELECT origin_seq, hlc FROM changelog WHERE origin=? ORDER BY origin_seq DESC "
            "LIMIT 1", (self.region,)).fetchone()
        if row is not None and (int(row[0]), int(row[1])) > result.get(self.region, (0, 0)):
            result[self.region] = (int(row[0]), int(row[1]))
        return result

    def snapshot_rows(self, tid: int, after: tuple[int, bytes, bytes] | None, limit: int,
                      tombstones: bool) -> list[tuple[int, bytes, bytes, int, str, bytes | None]]:
        """(h, pk, sk, hlc, origin, item or None) of live items or tombstones, in key order,
        after a key: one page of a snapshot for a region being rebuilt."""
        table = "tombstones" if tombstones else "items"
        column = "NULL" if tombstones else "item"
        sql = f"SELECT h, pk, sk, hlc, origin, {column} FROM {table} WHERE tid=?"  # noqa: S608
        args: list[Any] = [tid]
        if after is not None:
            sql += " AND (h, pk, sk) > (?,?,?)"
            args += list(after)
        sql += " ORDER BY h, pk, sk LIMIT ?"
        args.append(limit)
        return [(int(h), pk, sk, int(hlc), str(o), item)
                for h, pk, sk, hlc, o, item in self._read(sql, args)]

    def log_start(self) -> dict[str, int]:
        """Per origin, the highest seq no longer in the changelog (purged)."""
        # one index seek per origin (a GROUP BY over the changelog would scan all of it,
        # and this runs on every pull)
        result = {}
        for origin in self.cursor_vector():
            row = self._read(
                "SELECT MIN(origin_seq) FROM changelog WHERE origin=?", (origin,)).fetchone()
            if row[0] is not None:
                result[origin] = int(row[0]) - 1
        return result

    def changelog_count(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM changelog").fetchone()[0])

    def changes_since(self, origin: str, after_seq: int, limit: int
                      ) -> list[tuple[int, int, bytes]]:
        """(origin_seq, hlc, body) of `origin`'s changes after `after_seq`, in order."""
        rows = []
        for seq, hlc, body, crc in self._read(
                "SELECT origin_seq, hlc, body, crc FROM changelog WHERE origin=? AND origin_seq>?"
                " ORDER BY origin_seq LIMIT ?", (origin, after_seq, limit)):
            if zlib.crc32(body) != crc:
                raise CorruptionDetected(f"changelog record {origin}/{seq} failed its checksum")
            rows.append((int(seq), int(hlc), body))
        return rows

    def conflicts(self, after_id: int = 0, limit: int = 100) -> list[tuple[int, int, str, bytes]]:
        return [(int(i), int(t), str(n), r) for i, t, n, r in self._read(
            "SELECT id, detected_ms, table_name, record FROM conflicts WHERE id>? ORDER BY id "
            "LIMIT ?", (after_id, limit))]

    def get_items_snapshot(self, keys: list[tuple[int, int, bytes, bytes]]
                           ) -> list[ItemRow | None]:
        """Several items read from one snapshot (TransactGetItems): a read transaction
        pins the database state of its first read for every later one."""
        conn = self._reader
        conn.execute("BEGIN")
        try:
            return [self.get_item(*key) for key in keys]
        finally:
            conn.execute("COMMIT")

    def query_index(self, tid: int, iid: int, h: int, pk: bytes, lower: tuple[bytes, bool] | None,
                    upper: tuple[bytes, bool] | None, forward: bool,
                    start: tuple[bytes, bytes, bytes] | None
                    ) -> Iterator[tuple[bytes, bytes, bytes, bytes, int]]:
        """(sk, base_pk, base_sk, item, size) of one index partition within the bounds, in
        index order, strictly after (before, backwards) `start` = (sk, base_pk, base_sk)."""
        sql = ["SELECT sk, base_pk, base_sk, item, size, crc FROM index_items"
               " WHERE tid=? AND iid=? AND h=? AND pk=?"]
        args: list[Any] = [tid, iid, h, pk]
        _sort_key_bounds(sql, args, lower, upper)
        if start is not None:
            sql.append("AND (sk, base_pk, base_sk) > (?,?,?)" if forward
                       else "AND (sk, base_pk, base_sk) < (?,?,?)")
            args.extend(start)
        sql.append("ORDER BY sk, base_pk, base_sk" if forward
                   else "ORDER BY sk DESC, base_pk DESC, base_sk DESC")
        for sk, base_pk, base_sk, item, size, crc in self._read(" ".join(sql), args):
            if zlib.crc32(item) != crc:
                raise CorruptionDetected("Stored index item failed its checksum")
            yield sk, base_pk, base_sk, item, size

    def scan_index(self, tid: int, iid: int, after: tuple[int, bytes, bytes, bytes, bytes] | None,
                   h_end: int | None, h_start: int = 0
                   ) -> Iterator[tuple[int, bytes, bytes, bytes, bytes, bytes, int]]:
        """(h, pk, sk, base_pk, base_sk, item, size) of an index in scan order."""
        cols = "SELECT h, pk, sk, base_pk, base_sk, item, size, crc FROM index_items"
        if after is None:
            sql = cols + " WHERE tid=? AND iid=? AND h >= ?"
            args: list[Any] = [tid, iid, h_start]
        else:
            sql = cols + " WHERE tid=? AND iid=? AND (h, pk, sk, base_pk, base_sk) > (?,?,?,?,?)"
            args = [tid, iid, *after]
        if h_end is not None:
            sql += " AND h < ?"
            args.append(h_end)
        sql += " ORDER BY h, pk, sk, base_pk, base_sk"
        for h, pk, sk, base_pk, base_sk, item, size, crc in self._read(sql, args):
            if zlib.crc32(item) != crc:
                raise CorruptionDetected("Stored index item failed its checksum")
            yield h, pk, sk, base_pk, base_sk, item, size

    def collection_size(self, tid: int, h: int, pk: bytes) -> int:
        """Bytes of one item collection: the items of a partition key and their rows in
        local secondary indexes (which share the partition key's hash)."""
        row = self._read(
            "SELECT (SELECT COALESCE(SUM(size), 0) FROM items WHERE tid=? AND h=? AND pk=?)"
            " + (SELECT COALESCE(SUM(size), 0) FROM index_items"
            " WHERE tid=? AND h=? AND pk=? AND base_pk=pk)",
            (tid, h, pk, tid, h, pk)).fetchone()
        return int(row[0])

    def index_stats(self, tid: int, iid: int) -> tuple[int, int]:
        """(item count, size in bytes) of one index: counted, as DynamoDB's figures are
        only approximate and this is asked for rarely (DescribeTable)."""
        row = self._read(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM index_items WHERE tid=? AND iid=?",
            (tid, iid)).fetchone()
        return int(row[0]), int(row[1])

    def table_state_row(self, name: str) -> tuple[int, str, int, str, bytes | None] | None:
        return self._read(
            "SELECT created_hlc, created_origin, version_hlc, version_origin, definition"
            " FROM table_states WHERE name=?", (name,)).fetchone()

    def load_table_states(self) -> list[tuple[str, int, str, int, str, bytes | None]]:
        return list(self._read(
            "SELECT name, created_hlc, created_origin, version_hlc, version_origin, definition"
            " FROM table_states"))

    def load_tables(self) -> list[tuple[str, int, bytes]]:
        return list(self._read("SELECT name, tid, definition FROM tables ORDER BY name"))

    def table_stats(self, tid: int) -> tuple[int, int]:
        row = self._read(
            "SELECT item_count, size_bytes FROM tables WHERE tid=?", (tid,)).fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def integrity_check(self) -> str:
        return str(self._read("PRAGMA integrity_check").fetchone()[0])

    def file_size_bytes(self) -> int:
        return os.path.getsize(self.path) if os.path.exists(self.path) else 0


def _sort_key_bounds(sql: list[str], args: list[Any], lower: tuple[bytes, bool] | None,
                     upper: tuple[bytes, bool] | None) -> None:
    """Add a range on `sk` to a query: each bound is (encoded key, inclusive)."""
    if lower is not None:
        sql.append("AND sk >= ?" if lower[1] else "AND sk > ?")
        args.append(lower[0])
    if upper is not None:
        sql.append("AND sk <= ?" if upper[1] else "AND sk < ?")
        args.append(upper[0])
