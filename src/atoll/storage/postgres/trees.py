"""Hash trees in PostgreSQL: the write path's upkeep, and verify's access.

Theory of operation (storage/treeprotocol.py says what is kept; storage/trees.py how
every backend computes it)
- `TreeUpkeep` lives in the batch's transaction (PostgresTxn). Before a write it needs
  the key's rows as stored (raw bytes, checksum noted, never refused): the job's own
  read of the key nearly always found them (`PostgresTxn.versions` hands them here), and
  what the batch wrote to a key is remembered, so a put costs no extra round trip; a
  blind write looks the key up. After the write it adds old leaf ^ new leaf to the
  batch's `TreeDeltas`. `flush` (from `PostgresTxn.finish`, before COMMIT) XORs each
  touched bucket in place in one statement: `high # delta_high` on the bucket's two
  signed 64-bit halves. Batches of every node of a region run one at a time under the
  region's write lock (loghead.py), so the XOR in place needs no other lock; a rolled
  back batch forgets its deltas with its rows.
- A leaf hashes the table's name: names are cached by tid while the region's catalog
  version (the head's, read under the lock by every batch) stays the same; a table
  created or dropped in the batch is forgotten at once.
- A table created here starts a complete, empty tree (`tree_progress` = TREE_BUCKETS).
  One that has rows but no tree (created before PostgreSQL regions kept trees) reports
  0 built; the node builds it a chunk at a time (`build`: its buckets' hashes replaced
  by the XOR of their rows, after the batch's deltas are flushed, so no delta logged
  before lands on a hash computed after it). Dropping a table drops its tree.
- `PostgresTreeAccess` is verify's reader: an autocommit connection of its own, used
  by one thread at a time. A bucket snapshot (`bucket_snapshots`) reads hashes and rows
  in one REPEATABLE READ transaction. What it reads is durable (a PostgreSQL commit is
  visible only once flushed), so `settled` waits for nothing. `write_now` hands a job
  to the storage on the loop thread and waits until it committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import psycopg

from atoll.checksum import crc32
from atoll.invariant import invariant
from atoll.storage.postgres.connection import connect
from atoll.storage.postgres.writebehind import FlushingCursor
from atoll.storage.protocol import ScanKey, StoredState, TableStateRow, WriteJob
from atoll.storage.treeprotocol import TREE_BUCKETS, TreeAccess, TreeRow, TreeWriteJob, tree_job
from atoll.storage.trees import (
    BUCKET_SHIFT,
    Dead,
    Live,
    TreeDeltas,
    bucket_h_range,
    group_snapshots,
    join,
    newest,
    row_leaf,
    split,
    state_leaf,
    stored_state,
    write_from_thread,
)

WRITE_TIMEOUT_S = 60.0

_XOR_IN = ("INSERT INTO tree_buckets (tid, bucket, high, low) VALUES {} ON CONFLICT"
           " (tid, bucket) DO UPDATE SET high = tree_buckets.high # EXCLUDED.high,"
           " low = tree_buckets.low # EXCLUDED.low")
_KEY_ROWS = (
    "SELECT 0, hlc, origin, item, crc, size FROM items"
    " WHERE tid = %s AND h = %s AND pk = %s AND sk = %s"
    " UNION ALL SELECT 1, hlc, origin, NULL, NULL, NULL FROM tombstones"
    " WHERE tid = %s AND h = %s AND pk = %s AND sk = %s")
_KEY_STATES = (
    "SELECT 0, state, hlc, origin, prev_hlc, prev_origin FROM items"
    " WHERE tid = %s AND h = %s AND pk = %s AND sk = %s"
    " UNION ALL SELECT 1, state, hlc, origin, prev_hlc, prev_origin FROM tombstones"
    " WHERE tid = %s AND h = %s AND pk = %s AND sk = %s")

Key = tuple[int, int, bytes, bytes]
KeyState = tuple[Live | None, Dead | None]
# A batch's cursor (txn.py) or verify's own.
Statements = psycopg.Cursor[Any] | FlushingCursor


def live_of(hlc: Any, origin: Any, item: Any, crc: Any, size: Any) -> Live:
    raw = bytes(item)
    return int(hlc), str(origin), raw, crc32(raw) == int(crc), int(size)


def key_rows(cur: Statements, key: Key) -> KeyState:
    """A key's live item and tombstone as stored (checksum noted, never refused)."""
    live: Live | None = None
    dead: Dead | None = None
    for kind, hlc, origin, item, crc, size in cur.execute(_KEY_ROWS, (*key, *key)).fetchall():
        if kind == 0:
            live = live_of(hlc, origin, item, crc, size)
        else:
            dead = (int(hlc), str(origin))
    return live, dead


def bucket_rows(cur: Statements, tid: int, low_h: int, high_h: int,
                after: ScanKey | None, limit: int | None) -> list[TreeRow]:
    """The tree rows with h in [low_h, high_h] in key order, after `after`, at most
    `limit` (None: all): live items and tombstones merged key by key."""
    where = "tid = %s AND h BETWEEN %s AND %s"
    args: list[Any] = [tid, low_h, high_h]
    if after is not None:
        where += " AND (h, pk, sk) > (%s, %s, %s)"
        args += list(after)
    tail = " ORDER BY h, pk, sk" + ("" if limit is None else f" LIMIT {int(limit)}")
    live = {(int(h), bytes(pk), bytes(sk)): live_of(hlc, o, item, crc, size)
            for h, pk, sk, hlc, o, item, crc, size in cur.execute(
                "SELECT h, pk, sk, hlc, origin, item, crc, size FROM items WHERE "  # noqa: S608
                + where + tail, args).fetchall()}
    dead = {(int(h), bytes(pk), bytes(sk)): (int(hlc), str(o)) for h, pk, sk, hlc, o in
            cur.execute("SELECT h, pk, sk, hlc, origin FROM tombstones WHERE "  # noqa: S608
                        + where + tail, args).fetchall()}
    rows = []
    for key in sorted(live.keys() | dead.keys()):
        row = newest(key[0], key[1], key[2], live.get(key), dead.get(key))
        if row is not None:
            rows.append(row)
    return rows if limit is None else rows[:limit]


class TreeUpkeep:
    """The tree side of PostgresTxn (see the module doc)."""

    def __init__(self, read: FlushingCursor, write: FlushingCursor) -> None:
        self._read = read
        self._write = write
        self.deltas = TreeDeltas()
        self.rows: dict[Key, KeyState] = {}  # keys this batch read or wrote, as stored now
        self._names: dict[int, str | None] = {}
        self._catalog = -1

    def begin(self, catalog: int) -> None:
        self.forget()
        if catalog != self._catalog:
            self._names.clear()
            self._catalog = catalog

    def forget(self) -> None:
        self.deltas.clear()
        self.rows.clear()

    def before(self, key: Key) -> KeyState:
        found = self.rows.get(key)
        return found if found is not None else key_rows(self._read, key)

    def change(self, key: Key, old: KeyState, new: KeyState) -> None:
        """The key's rows went from `old` to `new`: its leaf change into its bucket."""
        self.rows[key] = new
        if old == new:
            return
        tid, h, pk, sk = key
        name = self.name(tid)
        if name is not None:  # a write into a dropped table keeps no tree
            self.deltas.add(tid, h, state_leaf(name, pk, sk, old[0], old[1])
                            ^ state_leaf(name, pk, sk, new[0], new[1]))

    def name(self, tid: int) -> str | None:
        if tid not in self._names:
            row = self._read.execute("SELECT name FROM tables WHERE tid = %s", (tid,)).fetchone()
            self._names[tid] = None if row is None else str(row[0])
        return self._names[tid]

    def purged(self, rows: Iterable[Any]) -> None:
        """Tombstones just deleted, each with its key's live item (or NULLs): out of the
        tree where they were their key's tree row."""
        self.rows.clear()
        for tid, h, pk, sk, hlc, origin, l_hlc, l_origin, item, crc, size in rows:
            key = (int(tid), int(h), bytes(pk), bytes(sk))
            live = None if item is None else live_of(l_hlc, l_origin, item, crc, size)
            self.change(key, (live, (int(hlc), str(origin))), (live, None))
        self.rows.clear()

    def flush(self) -> None:
        """XOR the batch's deltas into their buckets: one statement."""
        taken = self.deltas.take()
        if taken:
            params = [value for tid, bucket, delta in taken
                      for value in (tid, bucket, *split(delta))]
            self._write.execute(_XOR_IN.format(",".join(["(%s,%s,%s,%s)"] * len(taken))),
                                params)

    def created(self, tid: int) -> None:
        self._names.pop(tid, None)
        self.deltas.drop_table(tid)
        self._write.execute(
            "INSERT INTO tree_progress (tid, built) VALUES (%s, %s) ON CONFLICT (tid)"
            " DO UPDATE SET built = EXCLUDED.built", (tid, TREE_BUCKETS))

    def dropped(self, tid: int) -> None:
        self._names.pop(tid, None)
        self.deltas.drop_table(tid)
        for key in [key for key in self.rows if key[0] == tid]:
            del self.rows[key]
        self._write.execute("DELETE FROM tree_buckets WHERE tid = %s", (tid,))
        self._write.execute("DELETE FROM tree_progress WHERE tid = %s", (tid,))

    def build(self, tid: int, buckets: int) -> int:
        """Build the next `buckets` buckets of the table's tree (see the protocol)."""
        invariant(buckets > 0, "a build step covers at least one bucket")
        row = self._read.execute("SELECT built FROM tree_progress WHERE tid = %s",
                                 (tid,)).fetchone()
        built = 0 if row is None else int(row[0])
        name = self.name(tid)
        if built >= TREE_BUCKETS or name is None:
            return built if name is not None else 0
        self.flush()  # no delta of this batch may land on the hashes written below
        last = min(built + buckets, TREE_BUCKETS)
        hashes = [0] * (last - built)
        for tree_row in bucket_rows(self._read, tid, built << BUCKET_SHIFT,
                                    (last << BUCKET_SHIFT) - 1, None, None):
            hashes[(tree_row.h >> BUCKET_SHIFT) - built] ^= row_leaf(name, tree_row)
        self._write.execute("DELETE FROM tree_buckets WHERE tid = %s AND bucket >= %s AND"
                            " bucket < %s", (tid, built, last))
        values = [(tid, built + i, *split(value)) for i, value in enumerate(hashes) if value]
        if values:
            self._write.executemany(
                "INSERT INTO tree_buckets (tid, bucket, high, low) VALUES (%s,%s,%s,%s)",
                values)
        self._write.execute("INSERT INTO tree_progress (tid, built) VALUES (%s, %s)"
                            " ON CONFLICT (tid) DO UPDATE SET built = EXCLUDED.built",
                            (tid, last))
        return last

    def correct(self, tid: int, bucket: int, delta: int) -> None:
        row = self._read.execute("SELECT built FROM tree_progress WHERE tid = %s",
                                 (tid,)).fetchone()
        if row is None or bucket >= int(row[0]) or not delta:
            return
        self.deltas.add_bucket(tid, bucket, delta)


class PostgresTreeAccess:
    """Verify's access to one PostgreSQL storage (see the module doc)."""

    threaded = True

    def __init__(self, dsn: str, region: str, name: str,
                 submit: Callable[[WriteJob], Awaitable[Any]]) -> None:
        self._dsn = dsn
        self._name = f"{name}-verify"
        self._conn = connect(dsn, autocommit=True, name=self._name)
        self._region = region
        self._submit = submit  # Storage.write, called on the loop thread
        self._loop = asyncio.get_running_loop()

    @property
    def _cur(self) -> psycopg.Cursor[Any]:
        """A cursor of the access's connection, made again if the server dropped it (the
        request that found it broken failed; the next one reconnects)."""
        if self._conn.closed or self._conn.broken:
            self._conn = connect(self._dsn, autocommit=True, name=self._name)
        return self._conn.cursor()

    async def settled(self) -> None:
        return None  # what a read here sees is durable already

    def cursor_vector(self) -> dict[str, tuple[int, int]]:
        cur = self._cur
        result = {str(o): (int(s), int(h)) for o, s, h in cur.execute(
            "SELECT origin, seq, hlc FROM cursors").fetchall()}
        row = cur.execute(
            "SELECT origin_seq, hlc FROM changelog WHERE origin = %s ORDER BY origin_seq DESC"
            " LIMIT 1", (self._region,)).fetchone()
        if row is not None and (int(row[0]), int(row[1])) > result.get(self._region, (0, 0)):
            result[self._region] = (int(row[0]), int(row[1]))
        return result

    def purge_points(self) -> dict[str, tuple[int, int]]:
        return {str(o): (int(s), int(h)) for o, s, h in self._cur.execute(
            "SELECT origin, seq, hlc FROM purge_points").fetchall()}

    def table_state_row(self, name: str) -> TableStateRow | None:
        row = self._cur.execute(
            "SELECT created_hlc, created_origin, version_hlc, version_origin, definition"
            " FROM table_states WHERE name = %s", (name,)).fetchone()
        return None if row is None else (int(row[0]), str(row[1]), int(row[2]), str(row[3]),
                                         row[4])

    def table_tid(self, name: str) -> int | None:
        row = self._cur.execute("SELECT tid FROM tables WHERE name = %s", (name,)).fetchone()
        return None if row is None else int(row[0])

    def tree_built(self, tid: int) -> int:
        row = self._cur.execute("SELECT built FROM tree_progress WHERE tid = %s",
                                (tid,)).fetchone()
        return 0 if row is None else int(row[0])

    def key_count(self, tid: int) -> int:
        cur = self._cur
        row = cur.execute("SELECT item_count FROM tables WHERE tid = %s", (tid,)).fetchone()
        dead = cur.execute("SELECT COUNT(*) FROM tombstones WHERE tid = %s",
                                 (tid,)).fetchone()
        return (0 if row is None else int(row[0])) + (0 if dead is None else int(dead[0]))

    def bucket_hashes(self, tid: int, first: int, count: int) -> list[int]:
        return self._bucket_hashes(self._cur, tid, first, count)

    @staticmethod
    def _bucket_hashes(cur: psycopg.Cursor[Any], tid: int, first: int, count: int
                       ) -> list[int]:
        hashes = [0] * count
        for bucket, high, low in cur.execute(
                "SELECT bucket, high, low FROM tree_buckets WHERE tid = %s AND bucket >= %s"
                " AND bucket < %s", (tid, first, first + count)).fetchall():
            hashes[int(bucket) - first] = join(int(high), int(low))
        return hashes

    def bucket_rows(self, tid: int, bucket: int, after: ScanKey | None, limit: int
                    ) -> list[TreeRow]:
        low_h, high_h = bucket_h_range(bucket)
        return bucket_rows(self._cur, tid, low_h, high_h, after, limit)

    def bucket_snapshots(self, tid: int, first: int, count: int
                         ) -> dict[int, tuple[int, list[TreeRow]]]:
        cur = self._cur
        cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")  # one snapshot
        try:
            hashes = self._bucket_hashes(cur, tid, first, count)
            rows = bucket_rows(cur, tid, bucket_h_range(first)[0],
                               bucket_h_range(first + count - 1)[1], None, None)
        finally:
            cur.execute("COMMIT")
        return group_snapshots(first, hashes, rows)

    def tree_rows(self, tid: int, keys: list[ScanKey]) -> list[TreeRow | None]:
        found = []
        cur = self._cur
        for h, pk, sk in keys:
            live, dead = key_rows(cur, (tid, h, pk, sk))
            found.append(newest(h, pk, sk, live, dead))
        return found

    def item_states(self, tid: int, keys: list[ScanKey]) -> list[StoredState | None]:
        found: list[StoredState | None] = []
        cur = self._cur
        for h, pk, sk in keys:
            rows = {int(kind): stored_state(*rest) for kind, *rest in cur.execute(
                _KEY_STATES, (tid, h, pk, sk, tid, h, pk, sk)).fetchall()}
            found.append(rows.get(0) or rows.get(1))
        return found

    def write_now(self, fn: TreeWriteJob) -> Any:
        return write_from_thread(self._loop, self._write(fn), WRITE_TIMEOUT_S)

    async def _write(self, fn: TreeWriteJob) -> Any:
        return await self._submit(tree_job(fn))

    def close(self) -> None:
        self._conn.close()


if TYPE_CHECKING:
    def _implements(access: PostgresTreeAccess) -> TreeAccess:
        return access
