"""PostgresTxn: a batch's open transaction on the writer connection, as its jobs see it.

Theory of operation
- The connection is in pipeline mode for the whole batch: a statement whose answer the
  job needs (a lookup) is sent with everything queued before it and waited for; one
  whose answer nobody reads (an upsert, a tombstone) is only queued and goes with the
  next lookup or the COMMIT. The price: a failing queued statement raises later, in
  whichever job syncs next. So storage.py replays a batch that failed that way one job
  at a time, syncing after each, to find the job it belongs to (rare: nothing in the
  schema can refuse a well-formed row but a key too large for the b-tree, handled
  below).
- Item rows and changelog records are not even queued one statement each:
  writebehind.py holds them and sends a batch's as one multi-row statement per table,
  before any other statement of the transaction (so every read sees them).
- The batch begins by locking this region's changelog head (loghead.py): the region's
  write lock. The lookups its jobs announced go in the same round trip (readahead.py),
  so a put usually costs no round trip of its own. Every batch of every node of the
  region takes the lock first, so batches run one at a time across the nodes, each
  seeing everything committed before it (READ COMMITTED: every statement reads the
  latest committed state, and no other writer is active). Conditional writes and
  transactions are therefore checked and applied atomically with respect to every
  node, as on SQLite; locking the head before any item row also means two batches
  never wait for each other in opposite orders.
- A key of more than KEY_BYTES_LIMIT bytes may not fit PostgreSQL's b-tree (2,704 bytes
  an entry after compression): its row is written inside a SAVEPOINT and synced at once,
  so a refusal is this job's ValidationError and the transaction goes on.
- Every item and index row, and every changelog record, carries a CRC32 of its bytes; a
  read that finds a mismatch raises CorruptionDetected.
- There is no item cache (other nodes write the same rows), so unlike SQLite's the
  transaction does not keep what it did to live items.
- The stream writes live in the base class (streams.py), with how stream positions
  follow commit order across the region's nodes: the head row keeps the last one.
- Each write that changes a key's tree row keeps the table's hash tree (trees.py), in
  the same transaction, unless the storage keeps no trees. Purging changelog records
  notes each origin's newest purged record (`purge_points`), which verify's verdicts
  rely on; repairs are logged in `repairs`, numbered under the write lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import psycopg

from atoll.checksum import crc32
from atoll.errors import ValidationError
from atoll.invariant import invariant
from atoll.storage.postgres import loghead
from atoll.storage.postgres.connection import JOB, classify
from atoll.storage.postgres.readahead import ReadAhead
from atoll.storage.postgres.schema import KEY_BYTES_LIMIT
from atoll.storage.postgres.streams import PostgresStreamWrites
from atoll.storage.postgres.trees import KeyState, TreeUpkeep, key_rows, live_of
from atoll.storage.protocol import CorruptionDetected, IndexRow, RowVersion, StoredState
from atoll.storage.treeprotocol import TreeRow
from atoll.storage.trees import newest

_ITEM_UPSERT = (
    "INSERT INTO items (tid, h, pk, sk, item, size, hlc, origin, crc, prev_hlc, prev_origin,"
    " state) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (tid, h, pk, sk)"
    " DO UPDATE SET item = EXCLUDED.item, size = EXCLUDED.size, hlc = EXCLUDED.hlc,"
    " origin = EXCLUDED.origin, crc = EXCLUDED.crc, prev_hlc = EXCLUDED.prev_hlc,"
    " prev_origin = EXCLUDED.prev_origin, state = EXCLUDED.state")
_TOMBSTONE_UPSERT = (
    "INSERT INTO tombstones (tid, h, pk, sk, hlc, origin, prev_hlc, prev_origin, state)"
    " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (tid, h, pk, sk) DO UPDATE SET"
    " hlc = EXCLUDED.hlc, origin = EXCLUDED.origin, prev_hlc = EXCLUDED.prev_hlc,"
    " prev_origin = EXCLUDED.prev_origin, state = EXCLUDED.state")
_INDEX_UPSERT = (
    "INSERT INTO index_items (tid, iid, h, pk, sk, base_pk, base_sk, item, size, crc)"
    " VALUES {} ON CONFLICT (tid, iid, h, pk, sk, base_pk, base_sk) DO UPDATE SET"
    " item = EXCLUDED.item, size = EXCLUDED.size, crc = EXCLUDED.crc")
_INDEX_VALUES = "(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
# The live row and the tombstone of a key, each with its causal state, in one round trip:
# kind 0 is the item, 1 the tombstone.
_VERSIONS = (
    "SELECT 0, item, size, hlc, origin, crc, prev_hlc, prev_origin, state FROM items"
    " WHERE tid = %s AND h = %s AND pk = %s AND sk = %s"
    " UNION ALL SELECT 1, NULL, NULL, hlc, origin, NULL, prev_hlc, prev_origin, state"
    " FROM tombstones WHERE tid = %s AND h = %s AND pk = %s AND sk = %s")
# The causal state of a key's live row (kind 0) and of its tombstone (kind 1).
_STATES = (
    "SELECT 0, state, hlc, origin, prev_hlc, prev_origin FROM items"
    " WHERE tid = %s AND h = %s AND pk = %s AND sk = %s"
    " UNION ALL SELECT 1, state, hlc, origin, prev_hlc, prev_origin FROM tombstones"
    " WHERE tid = %s AND h = %s AND pk = %s AND sk = %s")
_KEY = " WHERE tid = %s AND h = %s AND pk = %s AND sk = %s"

Key = tuple[int, int, bytes, bytes]


class PostgresTxn(PostgresStreamWrites):
    """The writer connection's open transaction (used only by the thread running the
    batch); `begin` before the jobs, `finish` after them, then storage.py commits."""

    def __init__(self, conn: psycopg.Connection, region: str, trees: bool = True) -> None:
        super().__init__(conn)
        self.region = region
        self.tree: TreeUpkeep | None = TreeUpkeep(self._read, self._write) if trees else None
        self.head = loghead.Head(0)  # the region's head as the batch found it
        self.next_seq = 1
        self._logged_hlc = 0  # the highest hlc of this batch's own changes
        self._remote_hlc = 0  # ... and of the peers' changes it appended
        self._catalog_changed = False
        self.sync_each_job = False  # storage.py's replay that finds a failing job
        self.prevs: dict[Key, RowVersion | None] = {}
        # Tombstone versions of keys this transaction read or wrote: a put reads the live
        # row and then the tombstone; both come in one round trip (`get`), the second
        # from here. No other writer changes tombstones while the batch holds the lock.
        self._tombs: dict[Key, RowVersion | None] = {}
        # The causal state of keys a lookup (`versions`) read or a put or delete wrote
        # (not a delete_absent: a live row, if any, would still be the newest): a write
        # reads the key and then its state (`item_state`), one round trip, or none when
        # the key was read ahead.
        self._states: dict[Key, StoredState | None] = {}
        self._stats: dict[int, list[int]] = {}
        self.ahead = ReadAhead()
        self._ahead_cur = conn.cursor()

    # --- the batch's frame (storage.py) ---------------------------------------------------
    def begin(self, pipeline: psycopg.Pipeline, keys: Sequence[Key] = ()) -> loghead.Head:
        """Lock the region's head (the write lock) and number from it; read `keys`
        ahead in the same round trip (readahead.py)."""
        self._pipeline = pipeline
        locked = self._read.execute(loghead.LOCK, (self.region,))
        sent = self.ahead.send(self._ahead_cur, keys)
        row = locked.fetchone()
        if sent:
            self.ahead.receive(self._ahead_cur)
        if row is None:  # no head row (removed by hand): what was read ahead preceded it
            self.ahead.clear()
            self.head = loghead.lock_head(self._read, self.region)
        else:
            self.head = loghead.head_of(row)
        self.next_seq = self.head.seq + 1
        self.next_stream_pos = self.head.stream_pos + 1
        self.writes = 0
        self._logged_hlc = self._remote_hlc = 0
        self._catalog_changed = False
        self.prevs.clear()
        self._tombs.clear()
        self._states.clear()
        self._stats.clear()
        if self.tree is not None:
            self.tree.begin(self.head.catalog)
        return self.head

    def finish(self) -> None:
        """Queue the batch's statistics and the head's advance (before COMMIT)."""
        for tid, (items, size) in self._stats.items():
            self._write.execute(
                "UPDATE tables SET item_count = item_count + %s, size_bytes = size_bytes + %s"
                " WHERE tid = %s", (items, size, tid))
        self._stats.clear()
        if self.tree is not None:
            self.tree.flush()
        head = self.head
        if (self.next_seq - 1 != head.seq or self._logged_hlc > head.hlc
                or self._remote_hlc > head.remote_hlc or self._catalog_changed
                or self.next_stream_pos - 1 != head.stream_pos):
            loghead.advance_head(self._write, self.region, self.next_seq - 1,
                                 self._logged_hlc, self._remote_hlc, self._catalog_changed,
                                 self.next_stream_pos - 1)
        self.behind.flush()

    def load_tables(self) -> list[tuple[str, int, bytes]]:
        """(name, tid, definition) of every live table, as of this transaction."""
        return [(str(n), int(t), d) for n, t, d in self._read.execute(
            "SELECT name, tid, definition FROM tables ORDER BY name").fetchall()]

    def _keyed(self, sql: str, args: tuple[Any, ...], key_bytes: int) -> None:
        """Queue a write; one whose key may not fit the b-tree runs alone under a
        SAVEPOINT, so that its refusal is this job's error (see the module doc)."""
        if key_bytes <= KEY_BYTES_LIMIT:
            self._write.execute(sql, args)
            return
        self._write.execute("SAVEPOINT big_key")
        try:
            self._write.execute(sql, args)
            self.sync()
        except psycopg.Error as exc:
            if classify(exc) != JOB:
                raise
            self._write.execute("ROLLBACK TO SAVEPOINT big_key")
            self.sync()
            raise ValidationError(
                "One or more parameter values were invalid: the key is too large for this "
                f"region's PostgreSQL storage ({key_bytes} bytes of key)") from None
        self._write.execute("RELEASE SAVEPOINT big_key")

    # --- items ---------------------------------------------------------------------------
    def get(self, tid: int, h: int, pk: bytes, sk: bytes) -> tuple[bytes, int, int, str] | None:
        live, _dead = self.versions(tid, h, pk, sk)
        return None if live is None else live[:4]  # type: ignore[return-value]

    def put(self, tid: int, h: int, pk: bytes, sk: bytes, item: bytes, size: int,
            hlc: int, origin: str, old_size: int | None,
            prev: RowVersion | None = None, state: bytes = b"") -> None:
        key = (tid, h, pk, sk)
        old = self._tree_before(key)
        self.writes += 1
        self.prevs[key] = prev
        self.ahead.forget(key)
        self._states.pop(key, None)
        row = (tid, h, pk, sk, item, size, hlc, origin, crc32(item),
               *(prev if prev is not None else (None, None)), state or None)
        if len(pk) + len(sk) <= KEY_BYTES_LIMIT:
            self.behind.item(key, row)  # sent with the batch's others (writebehind.py)
        else:
            self._keyed(_ITEM_UPSERT, row, len(pk) + len(sk))
        self._states[key] = (state, (hlc, origin), prev)  # the live row's: the key's newest
        if old_size is None:
            self._count(tid, 1, size)
        else:
            self._count(tid, 0, size - old_size)
        if self.tree is not None:
            self.tree.change(key, old, ((hlc, origin, item, True, size), old[1]))

    def delete(self, tid: int, h: int, pk: bytes, sk: bytes, hlc: int, origin: str,
               old_size: int, prev: RowVersion | None = None, state: bytes = b"") -> None:
        old = self._tree_before((tid, h, pk, sk))
        self.writes += 1
        self.ahead.forget((tid, h, pk, sk))
        self._write.execute("DELETE FROM items" + _KEY, (tid, h, pk, sk))
        self._tombstone(tid, h, pk, sk, hlc, origin, prev, state)
        self._states[(tid, h, pk, sk)] = (state, (hlc, origin), prev)  # no live row now
        self._count(tid, -1, -old_size)
        if self.tree is not None:
            self.tree.change((tid, h, pk, sk), old, (None, (hlc, origin)))

    def delete_absent(self, tid: int, h: int, pk: bytes, sk: bytes, hlc: int, origin: str,
                      prev: RowVersion | None = None, state: bytes = b"") -> None:
        old = self._tree_before((tid, h, pk, sk))
        self.writes += 1
        self._tombstone(tid, h, pk, sk, hlc, origin, prev, state)
        if self.tree is not None:
            self.tree.change((tid, h, pk, sk), old, (old[0], (hlc, origin)))

    def _tree_before(self, key: Key) -> KeyState:
        """The key's rows as stored, for the tree (nothing without trees)."""
        return (None, None) if self.tree is None else self.tree.before(key)

    def item_state(self, tid: int, h: int, pk: bytes, sk: bytes) -> StoredState | None:
        key = (tid, h, pk, sk)
        if key in self._states:
            return self._states[key]
        found: dict[int, StoredState] = {}
        for kind, state, hlc, origin, prev_hlc, prev_origin in self._read.execute(
                _STATES, (tid, h, pk, sk, tid, h, pk, sk)).fetchall():
            prev = (int(prev_hlc), prev_origin) if prev_hlc is not None else None
            found[kind] = (bytes(state) if state is not None else b"", (int(hlc), origin), prev)
        return found.get(0) or found.get(1)

    def _tombstone(self, tid: int, h: int, pk: bytes, sk: bytes, hlc: int, origin: str,
                   prev: RowVersion | None, state: bytes) -> None:
        self.prevs[(tid, h, pk, sk)] = prev
        self._tombs[(tid, h, pk, sk)] = (hlc, origin)
        self.ahead.forget((tid, h, pk, sk))
        self._states.pop((tid, h, pk, sk), None)
        self._keyed(_TOMBSTONE_UPSERT, (tid, h, pk, sk, hlc, origin,
                                        *(prev if prev is not None else (None, None)),
                                        state or None),
                    len(pk) + len(sk))

    def prev_of(self, tid: int, h: int, pk: bytes, sk: bytes) -> RowVersion | None:
        return self.prevs.get((tid, h, pk, sk))

    def versions(self, tid: int, h: int, pk: bytes, sk: bytes
                 ) -> tuple[tuple[bytes, int, int, str, RowVersion | None] | None,
                            tuple[int, str, RowVersion | None] | None]:
        live: tuple[bytes, int, int, str, RowVersion | None] | None = None
        dead: tuple[int, str, RowVersion | None] | None = None
        rows = self.ahead.take((tid, h, pk, sk))
        if rows is None:
            rows = self._read.execute(_VERSIONS, (tid, h, pk, sk, tid, h, pk, sk)).fetchall()
        if self.tree is not None:  # the rows as stored, for the write that follows
            self.tree.rows[(tid, h, pk, sk)] = (
                next((live_of(r[3], r[4], r[1], r[5], r[2]) for r in rows if r[0] == 0), None),
                next(((int(r[3]), str(r[4])) for r in rows if r[0] == 1), None))
        corrupt = False
        states: dict[int, StoredState] = {}
        for kind, item, size, hlc, origin, crc, prev_hlc, prev_origin, state in rows:
            prev = (int(prev_hlc), prev_origin) if prev_hlc is not None else None
            if kind == 0:
                corrupt = crc32(item) != crc
                live = (item, int(size), int(hlc), origin, prev)
            else:
                dead = (int(hlc), origin, prev)
            states[kind] = (bytes(state) if state is not None else b"", (int(hlc), origin), prev)
        self._tombs[(tid, h, pk, sk)] = None if dead is None else (dead[0], dead[1])
        self._states[(tid, h, pk, sk)] = states.get(0) or states.get(1)
        if corrupt:
            raise CorruptionDetected("Stored item failed its checksum")
        return live, dead

    def tombstone_version(self, tid: int, h: int, pk: bytes, sk: bytes) -> RowVersion | None:
        key = (tid, h, pk, sk)
        if key in self._tombs:
            return self._tombs[key]
        row = self._one("SELECT hlc, origin FROM tombstones" + _KEY, key)
        found = (int(row[0]), str(row[1])) if row is not None else None
        self._tombs[key] = found
        return found

    def scan_chunk(self, tid: int, after: tuple[int, bytes, bytes] | None, limit: int
                   ) -> list[tuple[int, bytes, bytes, bytes, int]]:
        if after is None:
            rows = self._read.execute(
                "SELECT h, pk, sk, item, size FROM items WHERE tid = %s ORDER BY h, pk, sk"
                " LIMIT %s", (tid, limit)).fetchall()
        else:
            rows = self._read.execute(
                "SELECT h, pk, sk, item, size FROM items WHERE tid = %s AND (h, pk, sk) >"
                " (%s, %s, %s) ORDER BY h, pk, sk LIMIT %s", (tid, *after, limit)).fetchall()
        return [(int(h), pk, sk, item, int(size)) for h, pk, sk, item, size in rows]

    def _count(self, tid: int, items: int, size: int) -> None:
        stats = self._stats.get(tid)
        if stats is None:
            self._stats[tid] = [items, size]
        else:
            stats[0] += items
            stats[1] += size

    def forget(self) -> None:
        """Drop the batch's bookkeeping (after a rollback)."""
        self.writes = 0
        self._catalog_changed = False
        self.prevs.clear()
        self._tombs.clear()
        self._states.clear()
        self._stats.clear()
        self.ahead.clear()
        self.behind.clear()
        if self.tree is not None:
            self.tree.forget()
        self._pipeline = None

    # --- secondary indexes ---------------------------------------------------------------
    def index_put(self, tid: int, iid: int, h: int, pk: bytes, sk: bytes, base_pk: bytes,
                  base_sk: bytes, item: bytes, size: int) -> None:
        self.index_put_many([(tid, iid, h, pk, sk, base_pk, base_sk, item, size)])

    def index_put_many(self, rows: list[IndexRow]) -> None:
        self.writes += 1
        unique: dict[tuple[Any, ...], IndexRow] = {row[:7]: row for row in rows}  # last wins
        params: list[Any] = []
        key_bytes = 0
        for row in unique.values():
            params.extend(row)
            params.append(crc32(row[7]))
            key_bytes = max(key_bytes, len(row[3]) + len(row[4]) + len(row[5]) + len(row[6]))
        # one statement for all of an item's index rows (ON CONFLICT cannot meet one key
        # twice in a statement: hence the dict above)
        self._keyed(_INDEX_UPSERT.format(",".join([_INDEX_VALUES] * len(unique))),
                    tuple(params), key_bytes)

    def index_delete(self, tid: int, iid: int, h: int, pk: bytes, sk: bytes, base_pk: bytes,
                     base_sk: bytes) -> None:
        self.writes += 1
        self._write.execute(
            "DELETE FROM index_items WHERE tid = %s AND iid = %s AND h = %s AND pk = %s"
            " AND sk = %s AND base_pk = %s AND base_sk = %s",
            (tid, iid, h, pk, sk, base_pk, base_sk))

    def index_drop(self, tid: int, iid: int) -> None:
        self.writes += 1
        self._write.execute("DELETE FROM index_items WHERE tid = %s AND iid = %s", (tid, iid))

    # --- transaction tokens --------------------------------------------------------------
    def token_get(self, token: str) -> tuple[bytes, int] | None:
        row = self._one("SELECT request_hash, created_ms FROM txn_tokens WHERE token = %s",
                        (token,))
        return (row[0], int(row[1])) if row is not None else None

    def token_put(self, token: str, request_hash: bytes, created_ms: int) -> None:
        self.writes += 1
        self._write.execute(
            "INSERT INTO txn_tokens (token, request_hash, created_ms) VALUES (%s, %s, %s)"
            " ON CONFLICT (token) DO UPDATE SET request_hash = EXCLUDED.request_hash,"
            " created_ms = EXCLUDED.created_ms", (token, request_hash, created_ms))

    def tokens_purge(self, older_than_ms: int, limit: int) -> int:
        removed = self._counted(
            "DELETE FROM txn_tokens WHERE token IN (SELECT token FROM txn_tokens"
            " WHERE created_ms < %s LIMIT %s)", (older_than_ms, limit))
        if removed:
            self.writes += 1
        return removed

    # --- changelog, cursors, conflicts ---------------------------------------------------
    def log_change(self, hlc: int, body: bytes) -> int:
        seq = self.next_seq
        self.writes += 1
        self.behind.change((self.region, seq, hlc, body, crc32(body)))
        self.next_seq = seq + 1
        self._logged_hlc = max(self._logged_hlc, hlc)
        return seq

    def append_remote_changes(self, changes: list[tuple[str, int, int, bytes]]) -> None:
        if not changes:
            return
        self.writes += 1
        self._remote_hlc = max(self._remote_hlc, max(change[2] for change in changes))
        self._write.executemany(
            "INSERT INTO changelog (origin, origin_seq, hlc, body, crc) VALUES (%s,%s,%s,%s,%s)"
            " ON CONFLICT (origin, origin_seq) DO NOTHING",
            [(origin, seq, hlc, body, crc32(body)) for origin, seq, hlc, body in changes])

    def cursor(self, origin: str) -> int:
        row = self._one("SELECT seq FROM cursors WHERE origin = %s", (origin,))
        return int(row[0]) if row else 0

    def logged_frame(self, origin: str, seq: int) -> bytes | None:
        row = self._one("SELECT body, crc FROM changelog WHERE origin = %s AND origin_seq = %s",
                        (origin, seq))
        if row is None:
            return None
        if crc32(row[0]) != row[1]:
            raise CorruptionDetected(f"changelog record {origin}/{seq} failed its checksum",
                                     "changelog record")
        return bytes(row[0])

    def set_cursor(self, origin: str, seq: int, hlc: int) -> None:
        self.writes += 1
        self._write.execute(
            "INSERT INTO cursors (origin, seq, hlc) VALUES (%s, %s, %s) ON CONFLICT (origin)"
            " DO UPDATE SET seq = EXCLUDED.seq, hlc = EXCLUDED.hlc", (origin, seq, hlc))

    def purge_changelog(self, origin: str, through_seq: int, limit: int) -> int:
        """Delete up to `limit` of `origin`'s records with seq <= through_seq (never the
        origin's latest); those of tables with kept changes are copied to their kept logs
        first, matched by their markers in SQL (the records never leave the server)."""
        self.writes += 1
        doomed = ("SELECT origin_seq FROM changelog WHERE origin = %s AND origin_seq <= %s"
                  " AND origin_seq < (SELECT MAX(origin_seq) FROM changelog WHERE origin = %s)"
                  " ORDER BY origin_seq LIMIT %s")
        args = (origin, through_seq, origin, limit)
        for name, markers in self._read.execute("SELECT name, markers FROM kept_tables"
                                                 ).fetchall():
            found = decode_markers(markers)
            matches = " OR ".join(["position(%s in body) > 0"] * len(found))
            self._write.execute(
                "INSERT INTO kept_changes (table_name, origin, origin_seq, hlc, body, crc)"
                " SELECT %s, origin, origin_seq, hlc, body, crc FROM changelog WHERE origin ="
                f" %s AND origin_seq IN ({doomed}) AND ({matches})"  # noqa: S608
                " ON CONFLICT (table_name, origin, origin_seq) DO NOTHING",
                (name, origin, *args, *found))
        purged = self._read.execute(
            f"DELETE FROM changelog WHERE origin = %s AND origin_seq IN ({doomed})"  # noqa: S608
            " RETURNING origin_seq, hlc", (origin, *args)).fetchall()
        if purged:
            seq, hlc = max((int(s), int(h)) for s, h in purged)
            self._write.execute(
                "INSERT INTO purge_points (origin, seq, hlc) VALUES (%s, %s, %s) ON CONFLICT"
                " (origin) DO UPDATE SET seq = EXCLUDED.seq, hlc = EXCLUDED.hlc"
                " WHERE EXCLUDED.seq > purge_points.seq", (origin, seq, hlc))
        return len(purged)

    def keep_changes(self, table: str, markers: tuple[bytes, ...]) -> None:
        invariant(bool(markers) and all(markers), "a kept table needs non-empty markers")
        self.writes += 1
        self._write.execute(
            "INSERT INTO kept_tables (name, markers) VALUES (%s, %s) ON CONFLICT (name)"
            " DO UPDATE SET markers = EXCLUDED.markers", (table, encode_markers(markers)))

    def release_changes(self, table: str) -> None:
        self.writes += 1
        self._write.execute("DELETE FROM kept_tables WHERE name = %s", (table,))
        self._write.execute("DELETE FROM kept_changes WHERE table_name = %s", (table,))

    def purge_kept_changes(self, table: str, origin: str, through_seq: int, limit: int) -> int:
        self.writes += 1
        return self._counted(
            "DELETE FROM kept_changes WHERE table_name = %s AND origin = %s AND origin_seq IN"
            " (SELECT origin_seq FROM kept_changes WHERE table_name = %s AND origin = %s AND"
            " origin_seq <= %s ORDER BY origin_seq LIMIT %s)",
            (table, origin, table, origin, through_seq, limit))

    def purge_tombstones(self, below_hlc: int, limit: int) -> int:
        self.writes += 1
        self._tombs.clear()
        self._states.clear()
        self.ahead.clear()
        doomed = ("DELETE FROM tombstones WHERE (tid, h, pk, sk) IN (SELECT tid, h, pk, sk FROM"
                  " tombstones WHERE hlc < %s AND state IS NULL LIMIT %s)")
        if self.tree is None:
            return self._counted(doomed, (below_hlc, limit))
        purged = self._read.execute(
            f"WITH gone AS ({doomed} RETURNING tid, h, pk, sk, hlc, origin)"  # noqa: S608
            " SELECT g.tid, g.h, g.pk, g.sk, g.hlc, g.origin, i.hlc, i.origin, i.item, i.crc,"
            " i.size FROM gone g LEFT JOIN items i ON i.tid = g.tid AND i.h = g.h AND"
            " i.pk = g.pk AND i.sk = g.sk", (below_hlc, limit)).fetchall()
        self.tree.purged(purged)
        return len(purged)

    # --- hash trees (treeprotocol.TreeWriteTxn) ---------------------------------------------
    def tree_row(self, tid: int, h: int, pk: bytes, sk: bytes) -> TreeRow | None:
        live, dead = key_rows(self._read, (tid, h, pk, sk))
        return newest(h, pk, sk, live, dead)

    def tree_build(self, tid: int, buckets: int) -> int:
        if self.tree is None:
            return 0
        self.writes += 1
        return self.tree.build(tid, buckets)

    def tree_correct(self, tid: int, bucket: int, delta: int) -> None:
        if self.tree is not None:
            self.writes += 1
            self.tree.correct(tid, bucket, delta)

    def record_repair(self, repaired_ms: int, table_name: str, record: bytes) -> None:
        # numbered under the region's write lock, as conflicts are
        self.writes += 1
        self._write.execute(
            "INSERT INTO repairs (id, repaired_ms, table_name, record)"
            " SELECT COALESCE(MAX(id), 0) + 1, %s, %s, %s FROM repairs",
            (repaired_ms, table_name, record))

    def record_conflict(self, detected_ms: int, table_name: str, record: bytes) -> None:
        # numbered under the region's write lock: no other writer can take the same id
        self.writes += 1
        self._write.execute(
            "INSERT INTO conflicts (id, detected_ms, table_name, record)"
            " SELECT COALESCE(MAX(id), 0) + 1, %s, %s, %s FROM conflicts",
            (detected_ms, table_name, record))

    # --- catalog -------------------------------------------------------------------------
    def table_row(self, name: str) -> tuple[int, bytes] | None:
        row = self._one("SELECT tid, definition FROM tables WHERE name = %s", (name,))
        return (int(row[0]), row[1]) if row is not None else None

    def table_state_row(self, name: str) -> tuple[int, str, int, str, bytes | None] | None:
        row = self._one(
            "SELECT created_hlc, created_origin, version_hlc, version_origin, definition"
            " FROM table_states WHERE name = %s", (name,))
        if row is None:
            return None
        return int(row[0]), row[1], int(row[2]), row[3], row[4]

    def set_table_state(self, name: str, created: RowVersion, version: RowVersion,
                        definition: bytes | None) -> None:
        self.writes += 1
        self._write.execute(
            "INSERT INTO table_states (name, created_hlc, created_origin, version_hlc,"
            " version_origin, definition) VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT (name) DO"
            " UPDATE SET created_hlc = EXCLUDED.created_hlc, created_origin ="
            " EXCLUDED.created_origin, version_hlc = EXCLUDED.version_hlc, version_origin ="
            " EXCLUDED.version_origin, definition = EXCLUDED.definition",
            (name, created[0], created[1], version[0], version[1], definition))

    def create_table(self, name: str, definition: bytes) -> int:
        row = self._one("SELECT COALESCE(MAX(tid), 0) + 1 FROM tables", ())
        tid = int(row[0])
        self.writes += 1
        self._catalog_changed = True
        self._write.execute("INSERT INTO tables (name, tid, definition) VALUES (%s, %s, %s)",
                            (name, tid, definition))
        if self.tree is not None:
            self.tree.created(tid)
        return tid

    def update_table(self, name: str, definition: bytes) -> None:
        self.writes += 1
        self._catalog_changed = True
        self._write.execute("UPDATE tables SET definition = %s WHERE name = %s",
                            (definition, name))

    def drop_table(self, name: str, tid: int) -> None:
        self.writes += 1
        self._catalog_changed = True
        self._tombs.clear()
        self._states.clear()
        self.ahead.clear()
        self._write.execute("DELETE FROM tables WHERE name = %s", (name,))
        self._write.execute("DELETE FROM items WHERE tid = %s", (tid,))
        self._write.execute("DELETE FROM tombstones WHERE tid = %s", (tid,))
        self._write.execute("DELETE FROM index_items WHERE tid = %s", (tid,))
        self._stats.pop(tid, None)
        if self.tree is not None:
            self.tree.dropped(tid)


def encode_markers(markers: tuple[bytes, ...]) -> bytes:
    """A kept table's markers as stored (a JSON list of hex, as on SQLite)."""
    return orjson.dumps([m.hex() for m in markers])


def decode_markers(stored: bytes) -> list[bytes]:
    return [bytes.fromhex(m) for m in orjson.loads(stored)]
