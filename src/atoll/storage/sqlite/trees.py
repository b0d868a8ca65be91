"""Hash trees in SQLite: the write path's upkeep, and verify's access on its own connection.

Theory of operation (storage/treeprotocol.py, says what is kept)
- `TreeUpkeep` runs inside the batch's transaction, for SqliteTxn: before a write it
  takes the key's rows as stored (raw bytes, checksum noted, never refused; SqliteTxn
  reuses what the job's own read of the key just found), and after it adds old leaf ^
  new leaf to the batch's `TreeDeltas`. A rolled-back batch forgets its deltas with its
  rows.
- Deltas are logged, then folded. `flush` appends the batch's deltas to `tree_deltas`
  as one row (one statement, one page appended at the end of a table) instead of
  XORing each touched bucket of `tree_buckets` in place: bucket writes land on random
  pages of a 65,536-row table per tree, and rewriting those pages (and their WAL
  frames) in every batch is what made the write path pay for the trees. Once FOLD_AT
  deltas are logged the storage runs a fold job of its own behind the queued writes
  (`fold`: about FOLD_LIMIT deltas merged per bucket, written once each in bucket
  order, their log rows deleted). A bucket's hash is its `tree_buckets` row XOR the
  deltas of it still logged; `SqliteTreeAccess.bucket_hashes` reads both in one
  snapshot. The cost left on the write path is printed by bench/trees.py.
- Building a table's tree (`build`) folds the whole log first, and a scrub's
  correction (`correct`) is a delta like any other, so an absolute hash written by a
  build is never XORed with a delta logged before it.
- `SqliteTreeAccess` is verify's reader: a connection of its own, used by one thread at
  a time (verify serves off the event loop). Each read notes the highest commit it may
  have seen; `settled` makes the answers built from them wait until that commit is
  durable, as every answer that leaves the node does. `write_now` hands a job to the
  storage on the loop thread and waits for it to be durable. A storage that was never
  started (the simulator's: every job runs through `write_sync`) gets an access without
  a loop: `write_now` runs the job at once on the calling thread.
"""

from __future__ import annotations

import asyncio
import sqlite3
import struct
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from atoll.checksum import crc32
from atoll.invariant import invariant
from atoll.storage.protocol import ScanKey, StoredState, TableStateRow, WriteJob
from atoll.storage.sqlite.connection import connect
from atoll.storage.sqlite.durability import WriteState
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

WRITE_TIMEOUT_S = 120.0

DELTA_BYTES = 24  # a logged delta: tid u32, bucket u32, hash 16 bytes
FOLD_AT = 4096  # deltas logged before the storage folds them into tree_buckets
FOLD_LIMIT = 2048  # deltas one fold job takes (about 15 ms of the writer)
_DELTA = struct.Struct(">II16s")

_XOR_IN = ("INSERT INTO tree_buckets (tid, bucket, high, low) VALUES (?,?,?,?)"
           " ON CONFLICT (tid, bucket) DO UPDATE SET"
           " high = (high | excluded.high) & ~(high & excluded.high),"
           " low = (low | excluded.low) & ~(low & excluded.low)")
_LIVE_ROW = ("SELECT hlc, origin, item, crc, size FROM items WHERE tid=? AND h=? AND pk=?"
             " AND sk=?")
_DEAD_ROW = "SELECT hlc, origin FROM tombstones WHERE tid=? AND h=? AND pk=? AND sk=?"
_STATE_OF = ("SELECT state, hlc, origin, prev_hlc, prev_origin FROM {} WHERE tid=? AND h=?"
             " AND pk=? AND sk=?")
_LIVE_STATE, _DEAD_STATE = _STATE_OF.format("items"), _STATE_OF.format("tombstones")


def pack(deltas: list[tuple[int, int, int]]) -> bytes:
    return b"".join(_DELTA.pack(tid, bucket, delta.to_bytes(16, "big"))
                    for tid, bucket, delta in deltas)


def unpack(blob: bytes) -> list[tuple[int, int, int]]:
    return [(tid, bucket, int.from_bytes(delta, "big"))
            for tid, bucket, delta in _DELTA.iter_unpack(blob)]


def _live(row: Any) -> Live | None:
    if row is None:
        return None
    return int(row[0]), str(row[1]), row[2], crc32(row[2]) == row[3], int(row[4])


def _dead(row: Any) -> Dead | None:
    return None if row is None else (int(row[0]), str(row[1]))


def key_rows(cur: sqlite3.Cursor, tid: int, h: int, pk: bytes, sk: bytes, tombstones: bool
             ) -> tuple[Live | None, Dead | None]:
    """A key's live item and tombstone as stored (the tombstone looked up only if asked)."""
    key = (tid, h, pk, sk)
    live = _live(cur.execute(_LIVE_ROW, key).fetchone())
    dead = _dead(cur.execute(_DEAD_ROW, key).fetchone()) if tombstones else None
    return live, dead


def bucket_rows(cur: sqlite3.Cursor, tid: int, low_h: int, high_h: int,
                after: ScanKey | None, limit: int | None) -> list[TreeRow]:
    """The tree rows with h in [low_h, high_h] in key order, after `after`, at most
    `limit` (None: all): live items and tombstones merged key by key."""
    where = "tid=? AND h BETWEEN ? AND ?"
    args: list[Any] = [tid, low_h, high_h]
    if after is not None:
        where += " AND (h, pk, sk) > (?,?,?)"
        args += list(after)
    tail = " ORDER BY h, pk, sk" + ("" if limit is None else f" LIMIT {int(limit)}")
    live = {(int(h), pk, sk): (int(hlc), str(o), item, crc32(item) == crc, int(size))
            for h, pk, sk, hlc, o, item, crc, size in cur.execute(
                "SELECT h, pk, sk, hlc, origin, item, crc, size FROM items WHERE " + where
                + tail, args)}
    dead = {(int(h), pk, sk): (int(hlc), str(o)) for h, pk, sk, hlc, o in cur.execute(
        "SELECT h, pk, sk, hlc, origin FROM tombstones WHERE " + where + tail, args)}
    rows = []
    for key in sorted(live.keys() | dead.keys()):
        row = newest(key[0], key[1], key[2], live.get(key), dead.get(key))
        if row is not None:
            rows.append(row)
    return rows if limit is None else rows[:limit]


class TreeUpkeep:
    """The tree side of SqliteTxn (the writer thread's transaction)."""

    def __init__(self, cur: sqlite3.Cursor) -> None:
        self._cur = cur
        self.deltas = TreeDeltas()
        self._names: dict[int, str | None] = {}  # tid -> table name, for this batch
        # delta records in the log, not folded yet (approximate between batches)
        self.pending = int(cur.execute(
            "SELECT COALESCE(SUM(length(deltas)), 0) FROM tree_deltas").fetchone()[0]
        ) // DELTA_BYTES

    def name(self, tid: int) -> str | None:
        if tid not in self._names:
            row = self._cur.execute("SELECT name FROM tables WHERE tid=?", (tid,)).fetchone()
            self._names[tid] = None if row is None else str(row[0])
        return self._names[tid]

    def change(self, tid: int, old: TreeRow | None, new: TreeRow | None) -> None:
        if old == new:
            return
        name = self.name(tid)
        if name is not None:  # a write into a dropped table keeps no tree
            row = old if old is not None else new
            assert row is not None
            self.deltas.add(tid, row.h, row_leaf(name, old) ^ row_leaf(name, new))

    def change_states(self, tid: int, h: int, pk: bytes, sk: bytes, old_live: Live | None,
                      old_dead: Dead | None, new_live: Live | None, new_dead: Dead | None
                      ) -> None:
        """`change` from the key's rows before and after (no tree rows built)."""
        if old_live == new_live and old_dead == new_dead:
            return
        name = self.name(tid)
        if name is not None:  # a write into a dropped table keeps no tree
            self.deltas.add(tid, h, state_leaf(name, pk, sk, old_live, old_dead)
                            ^ state_leaf(name, pk, sk, new_live, new_dead))

    def flush(self) -> None:
        """Append the transaction's deltas to the log: one row, one statement."""
        if self.deltas:
            taken = self.deltas.take()
            self._cur.execute("INSERT INTO tree_deltas (deltas) VALUES (?)", (pack(taken),))
            self.pending += len(taken)

    def fold(self, limit: int) -> int:
        """XOR the oldest logged deltas (about `limit`) into tree_buckets, in bucket order
        (each page of the tree written once), and drop them from the log; returns how
        many were folded."""
        invariant(limit > 0, "a fold covers at least one delta")
        self.flush()
        folded, last = 0, None
        merged = TreeDeltas()
        for seq, blob in self._cur.execute(  # a record holds one delta at least
                "SELECT seq, deltas FROM tree_deltas ORDER BY seq LIMIT ?", (limit,)).fetchall():
            if folded >= limit:
                break
            for tid, bucket, delta in unpack(blob):
                merged.add_bucket(tid, bucket, delta)
                folded += 1
            last = seq
        if last is None:
            self.pending = 0
            return 0
        self._cur.executemany(_XOR_IN, [(tid, bucket, *split(delta))
                                        for tid, bucket, delta in merged.take()])
        self._cur.execute("DELETE FROM tree_deltas WHERE seq <= ?", (last,))
        self.pending = max(0, self.pending - folded)
        return folded

    def fold_all(self) -> None:
        while self.fold(FOLD_LIMIT):
            pass

    def forget(self) -> None:
        self.deltas.clear()
        self._names.clear()

    def created(self, tid: int) -> None:
        self._names.pop(tid, None)
        self.deltas.drop_table(tid)
        self._cur.execute("INSERT OR REPLACE INTO tree_progress (tid, built) VALUES (?,?)",
                          (tid, TREE_BUCKETS))

    def dropped(self, tid: int) -> None:
        """Before the table's tree rows go: its deltas go too (a reused tid must find
        nothing of the old tree)."""
        self._names.pop(tid, None)
        self.deltas.drop_table(tid)
        self.fold_all()

    def purged(self, tombstones: Iterable[tuple[int, int, bytes, bytes, int, str]]) -> None:
        """Tombstones (tid, h, pk, sk, hlc, origin) just deleted: out of the tree where
        they were their key's tree row."""
        for tid, h, pk, sk, hlc, origin in tombstones:
            live, _ = key_rows(self._cur, tid, h, pk, sk, False)
            self.change(tid, newest(h, pk, sk, live, (hlc, origin)), newest(h, pk, sk, live, None))

    def build(self, tid: int, buckets: int) -> int:
        """Build the next `buckets` buckets of the table's tree (see the protocol)."""
        invariant(buckets > 0, "a build step covers at least one bucket")
        row = self._cur.execute("SELECT built FROM tree_progress WHERE tid=?", (tid,)).fetchone()
        built = 0 if row is None else int(row[0])
        name = self.name(tid)
        if built >= TREE_BUCKETS or name is None:
            return built if name is not None else 0
        self.fold_all()  # no logged delta may land on the hashes written below
        last = min(built + buckets, TREE_BUCKETS)
        hashes = [0] * (last - built)
        for tree_row in bucket_rows(self._cur, tid, built << BUCKET_SHIFT,
                                    (last << BUCKET_SHIFT) - 1, None, None):
            hashes[(tree_row.h >> BUCKET_SHIFT) - built] ^= row_leaf(name, tree_row)
        self._cur.execute("DELETE FROM tree_buckets WHERE tid=? AND bucket>=? AND bucket<?",
                          (tid, built, last))
        self._cur.executemany(
            "INSERT INTO tree_buckets (tid, bucket, high, low) VALUES (?,?,?,?)",
            [(tid, built + i, *split(value)) for i, value in enumerate(hashes) if value])
        self._cur.execute("INSERT OR REPLACE INTO tree_progress (tid, built) VALUES (?,?)",
                          (tid, last))
        return last

    def correct(self, tid: int, bucket: int, delta: int) -> None:
        row = self._cur.execute("SELECT built FROM tree_progress WHERE tid=?", (tid,)).fetchone()
        if row is None or bucket >= int(row[0]) or not delta:
            return
        self.deltas.add_bucket(tid, bucket, delta)


def clear_trees(cur: sqlite3.Cursor) -> None:
    """Every tree forgotten (a storage opened with trees=False: its writes will not keep
    them, so none may claim to be complete afterwards)."""
    for table in ("tree_buckets", "tree_progress", "tree_deltas"):
        cur.execute(f"DELETE FROM {table}")  # noqa: S608


def pending_deltas(cur: sqlite3.Cursor, tid: int, first: int, count: int) -> dict[int, int]:
    """bucket -> XOR of the logged deltas not folded yet, for buckets first..first+count-1."""
    found: dict[int, int] = {}
    for (blob,) in cur.execute("SELECT deltas FROM tree_deltas"):
        for delta_tid, bucket, delta in unpack(blob):
            if delta_tid == tid and first <= bucket < first + count:
                found[bucket] = found.get(bucket, 0) ^ delta
    return found


class SqliteTreeAccess:
    """Verify's access to one SQLite storage (see the module doc)."""

    threaded = True

    def __init__(self, path: str, durable: bool, state: WriteState, region: str,
                 submit: Callable[[WriteJob], Awaitable[Any]],
                 settle: Callable[[], Awaitable[None]],
                 write_sync: Callable[[WriteJob], Any] | None = None) -> None:
        """`write_sync`: the storage's synchronous write, for a storage never started
        (then no event loop is needed, and `write_now` calls it directly)."""
        self._conn = connect(path, durable)
        self._cur = self._conn.cursor()
        self._state = state
        self._region = region
        self._submit = submit  # Storage.write, called on the loop thread
        self._settle = settle  # Storage.settled
        self._write_sync = write_sync
        self._loop = None if write_sync is not None else asyncio.get_running_loop()
        self._seen = 0  # the highest commit a read here may have seen

    def _read(self, sql: str, args: Any = ()) -> sqlite3.Cursor:
        cursor = self._cur.execute(sql, args)
        self._seen = max(self._seen, self._state.taken)  # after the statement's first step
        return cursor

    async def settled(self) -> None:
        """On the loop thread: wait until every commit read here is durable."""
        state = self._state
        state.read = max(state.read, self._seen)
        await self._settle()

    def cursor_vector(self) -> dict[str, tuple[int, int]]:
        result = {str(o): (int(s), int(h))
                  for o, s, h in self._read("SELECT origin, seq, hlc FROM cursors")}
        row = self._read("SELECT origin_seq, hlc FROM changelog WHERE origin=? ORDER BY "
                         "origin_seq DESC LIMIT 1", (self._region,)).fetchone()
        if row is not None and (int(row[0]), int(row[1])) > result.get(self._region, (0, 0)):
            result[self._region] = (int(row[0]), int(row[1]))
        return result

    def purge_points(self) -> dict[str, tuple[int, int]]:
        return {str(o): (int(s), int(h))
                for o, s, h in self._read("SELECT origin, seq, hlc FROM purge_points")}

    def table_state_row(self, name: str) -> TableStateRow | None:
        row = self._read("SELECT created_hlc, created_origin, version_hlc, version_origin,"
                         " definition FROM table_states WHERE name=?", (name,)).fetchone()
        return None if row is None else (int(row[0]), str(row[1]), int(row[2]), str(row[3]),
                                         row[4])

    def table_tid(self, name: str) -> int | None:
        row = self._read("SELECT tid FROM tables WHERE name=?", (name,)).fetchone()
        return None if row is None else int(row[0])

    def tree_built(self, tid: int) -> int:
        row = self._read("SELECT built FROM tree_progress WHERE tid=?", (tid,)).fetchone()
        return 0 if row is None else int(row[0])

    def key_count(self, tid: int) -> int:
        row = self._read("SELECT item_count FROM tables WHERE tid=?", (tid,)).fetchone()
        dead = self._read("SELECT COUNT(*) FROM tombstones WHERE tid=?", (tid,)).fetchone()
        return (0 if row is None else int(row[0])) + int(dead[0])

    def bucket_hashes(self, tid: int, first: int, count: int) -> list[int]:
        in_transaction = self._conn.in_transaction
        if not in_transaction:
            self._cur.execute("BEGIN")  # the folded hashes and the log from one snapshot
        try:
            hashes = [0] * count
            for bucket, high, low in self._read(
                    "SELECT bucket, high, low FROM tree_buckets WHERE tid=? AND bucket>=? AND "
                    "bucket<?", (tid, first, first + count)).fetchall():
                hashes[int(bucket) - first] = join(int(high), int(low))
            for bucket, delta in pending_deltas(self._cur, tid, first, count).items():
                hashes[bucket - first] ^= delta
        finally:
            if not in_transaction:
                self._cur.execute("COMMIT")
        return hashes

    def bucket_rows(self, tid: int, bucket: int, after: ScanKey | None, limit: int
                    ) -> list[TreeRow]:
        low_h, high_h = bucket_h_range(bucket)
        rows = bucket_rows(self._cur, tid, low_h, high_h, after, limit)
        self._seen = max(self._seen, self._state.taken)
        return rows

    def bucket_snapshots(self, tid: int, first: int, count: int
                         ) -> dict[int, tuple[int, list[TreeRow]]]:
        self._cur.execute("BEGIN")  # one read transaction: one snapshot
        try:
            hashes = self.bucket_hashes(tid, first, count)
            rows = bucket_rows(self._cur, tid, bucket_h_range(first)[0],
                               bucket_h_range(first + count - 1)[1], None, None)
        finally:
            self._cur.execute("COMMIT")
        return group_snapshots(first, hashes, rows)

    def tree_rows(self, tid: int, keys: list[ScanKey]) -> list[TreeRow | None]:
        found = []
        for h, pk, sk in keys:
            live = _live(self._read(_LIVE_ROW, (tid, h, pk, sk)).fetchone())
            dead = _dead(self._read(_DEAD_ROW, (tid, h, pk, sk)).fetchone())
            found.append(newest(h, pk, sk, live, dead))
        return found

    def item_states(self, tid: int, keys: list[ScanKey]) -> list[StoredState | None]:
        found = []
        for h, pk, sk in keys:
            row = self._read(_LIVE_STATE, (tid, h, pk, sk)).fetchone()
            if row is None:
                row = self._read(_DEAD_STATE, (tid, h, pk, sk)).fetchone()
            found.append(None if row is None else stored_state(*row))
        return found

    def write_now(self, fn: TreeWriteJob) -> Any:
        if self._loop is None:
            invariant(self._write_sync is not None, "an access has a loop or a sync write")
            assert self._write_sync is not None
            return self._write_sync(tree_job(fn))
        return write_from_thread(self._loop, self._write(fn), WRITE_TIMEOUT_S)

    async def _write(self, fn: TreeWriteJob) -> Any:
        return await self._submit(tree_job(fn))

    def close(self) -> None:
        self._conn.close()


if TYPE_CHECKING:
    def _implements(access: SqliteTreeAccess) -> TreeAccess:
        return access
