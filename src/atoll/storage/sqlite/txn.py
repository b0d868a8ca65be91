"""SqliteTxn: the writer connection's open transaction, as the jobs of a batch see it.

Every statement runs on one cursor of the writer connection, on whichever thread runs the
batch (one batch at a time, see batches.py). Besides the rows, the transaction keeps what
the batch needs afterwards: how many mutating statements ran (a job that raises after
writing poisons its batch), the `prev` versions it wrote, what it did to live items (for
the read cache, once committed) and the table statistics to add at the end of the batch.
Every item and index row, and every changelog record, carries a CRC32 of its bytes; a read
that finds a mismatch raises CorruptionDetected instead of serving corrupt data.
Each write that changes a key's tree row keeps the table's hash tree (trees.py), unless
the storage was opened with `trees=False`.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from atoll.checksum import crc32
from atoll.invariant import invariant
from atoll.storage.integrity import IntegrityFaults
from atoll.storage.protocol import CorruptionDetected, ItemRow, StoredState
from atoll.storage.sqlite.streams import SqliteStreamWrites, first_stream_pos
from atoll.storage.sqlite.trees import TreeUpkeep, clear_trees, key_rows
from atoll.storage.treeprotocol import TreeRow
from atoll.storage.trees import newest

_INDEX_INSERT = ("INSERT OR REPLACE INTO index_items (tid, iid, h, pk, sk, base_pk, base_sk,"
                 " item, size, crc) VALUES ")


class SqliteTxn(SqliteStreamWrites):
    """The writer thread's view of the open transaction (never used elsewhere)."""

    def __init__(self, conn: sqlite3.Connection, region: str, next_seq: int,
                 integrity: IntegrityFaults | None = None, trees: bool = True) -> None:
        # One cursor for every statement: conn.execute makes (and frees) a cursor a call.
        # A put's lookup, insert and changelog append took 12.5 us that way and 11.7-12.0
        # on one cursor (compiled; medians of 7 loops of 5,000, in memory). A one-row
        # statement is reset by its fetchone; the next execute resets any other.
        super().__init__(conn.cursor(), first_stream_pos(conn))
        self.conn = conn
        self.region = region
        self.integrity = integrity or IntegrityFaults()  # checksum failures are reported there
        self.next_seq = next_seq
        # Tables that may hold tombstones (a superset: never shrunk by purges). A write to
        # a table outside it skips the tombstone lookup, the common case on tables that
        # never saw a delete.
        self.tombstone_tids: set[int] = {
            int(row[0]) for row in self._cur.execute("SELECT DISTINCT tid FROM tombstones")}
        self.prevs: dict[tuple[int, int, bytes, bytes], tuple[int, str] | None] = {}
        # the causal state of live items this transaction read or wrote: a write job
        # reads a key's item (`get`) and then its state (`item_state`), one SELECT
        self.states: dict[tuple[int, int, bytes, bytes], StoredState] = {}
        # what this transaction did to live items, for the read cache once it commits
        self.item_changes: list[tuple[tuple[int, int, bytes, bytes], ItemRow | None]] = []
        self.dropped_tids: set[int] = set()
        self._stats: dict[int, list[int]] = {}
        if not trees:
            clear_trees(self._cur)  # writes from here on keep none: none may claim to
        self.tree: TreeUpkeep | None = TreeUpkeep(self._cur) if trees else None
        # The rows the last read found, if no write came since (the tree's old row: a
        # write nearly always follows its own read of the key, so it need not read twice)
        self._seen_key: tuple[int, int, bytes, bytes] | None = None
        self._seen_writes = -1
        self._seen_live: tuple[int, str, bytes, bool, int] | None = None
        self._seen_dead: tuple[int, str] | None = None
        self._seen_dead_known = False

    def reset(self) -> None:
        """Forget the per-transaction bookkeeping (after COMMIT or ROLLBACK)."""
        self.writes = 0
        self.forget_stream_records()
        self.prevs.clear()
        self.states.clear()
        self.item_changes = []
        self.dropped_tids = set()
        self._seen_key = None  # what a read found holds only inside its transaction
        if self.tree is not None:
            self.tree.forget()

    def _tree_before(self, tid: int, h: int, pk: bytes, sk: bytes
                     ) -> tuple[tuple[int, str, bytes, bool, int] | None, tuple[int, str] | None]:
        """The key's rows as stored, for the tree (nothing without trees): from what the
        job's own read just found, when no write came between."""
        if self.tree is None:
            return None, None
        tombstones = tid in self.tombstone_tids
        if self._seen_key == (tid, h, pk, sk) and self._seen_writes == self.writes:
            if not tombstones:
                return self._seen_live, None
            if self._seen_dead_known:
                return self._seen_live, self._seen_dead
            return self._seen_live, key_rows(self._cur, tid, h, pk, sk, True)[1]
        return key_rows(self._cur, tid, h, pk, sk, tombstones)

    def _saw(self, key: tuple[int, int, bytes, bytes], live: Any, intact: bool) -> None:
        """Remember a read of the key's live row (item, size, hlc, origin, crc, ...);
        `intact`: whether its bytes pass the checksum (the caller just checked)."""
        self._seen_key, self._seen_writes = key, self.writes
        self._seen_live = None if live is None else (
            int(live[2]), str(live[3]), live[0], intact, int(live[1]))
        self._seen_dead, self._seen_dead_known = None, False

    # --- items -------------------------------------------------------------------------
    def get(self, tid: int, h: int, pk: bytes, sk: bytes) -> tuple[bytes, int, int, str] | None:
        """(item bytes, size, hlc, origin) of the live item, or None."""
        row = self._cur.execute(
            "SELECT item, size, hlc, origin, crc, state, prev_hlc, prev_origin FROM items"
            " WHERE tid=? AND h=? AND pk=? AND sk=?", (tid, h, pk, sk)).fetchone()
        intact = row is None or crc32(row[0]) == row[4]
        if self.tree is not None:
            self._saw((tid, h, pk, sk), row, intact)
        if row is None:
            return None
        if not intact:
            raise self.integrity.found(CorruptionDetected(
                "Stored item failed its checksum", "item", tid, pk, sk))
        self.states[(tid, h, pk, sk)] = (row[5] or b"", (row[2], row[3]),
                                         (row[6], row[7]) if row[6] is not None else None)
        return row[0], row[1], row[2], row[3]

    def put(self, tid: int, h: int, pk: bytes, sk: bytes, item: bytes, size: int,
            hlc: int, origin: str, old_size: int | None,
            prev: tuple[int, str] | None = None, state: bytes = b"") -> None:
        """Write an item at version (hlc, origin); `prev` is the version it overwrote,
        `state` the item's stored causal state (b"": the row form, stored as NULL)."""
        # A tombstone left behind by an earlier delete of this key stays: its version is
        # older than the new item's, and replication compares against the newest of both.
        live, dead = self._tree_before(tid, h, pk, sk)
        self.writes += 1
        self.prevs[(tid, h, pk, sk)] = prev
        self.states[(tid, h, pk, sk)] = (state, (hlc, origin), prev)
        self.item_changes.append(((tid, h, pk, sk), (item, size)))
        self._cur.execute(
            "INSERT OR REPLACE INTO items (tid, h, pk, sk, item, size, hlc, origin, crc,"
            " prev_hlc, prev_origin, state) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (tid, h, pk, sk, item, size, hlc, origin, crc32(item),
             *(prev if prev is not None else (None, None)), state or None))
        if old_size is None:
            self._count(tid, 1, size)
        else:
            self._count(tid, 0, size - old_size)
        if self.tree is not None:
            self.tree.change_states(tid, h, pk, sk, live, dead, (hlc, origin, item, True, size),
                                    dead)

    def delete(self, tid: int, h: int, pk: bytes, sk: bytes, hlc: int, origin: str,
               old_size: int, prev: tuple[int, str] | None = None,
               state: bytes = b"") -> None:
        live, dead = self._tree_before(tid, h, pk, sk)
        self.writes += 1
        self.item_changes.append(((tid, h, pk, sk), None))
        self._cur.execute("DELETE FROM items WHERE tid=? AND h=? AND pk=? AND sk=?",
                          (tid, h, pk, sk))
        self._tombstone(tid, h, pk, sk, hlc, origin, prev, state)
        self._count(tid, -1, -old_size)
        if self.tree is not None:
            self.tree.change_states(tid, h, pk, sk, live, dead, None, (hlc, origin))

    def delete_absent(self, tid: int, h: int, pk: bytes, sk: bytes, hlc: int, origin: str,
                      prev: tuple[int, str] | None = None, state: bytes = b"") -> None:
        """Record a delete of an item that does not exist here (it may exist elsewhere)."""
        live, dead = self._tree_before(tid, h, pk, sk)
        self.writes += 1
        self._tombstone(tid, h, pk, sk, hlc, origin, prev, state)
        if self.tree is not None:
            self.tree.change_states(tid, h, pk, sk, live, dead, live, (hlc, origin))

    def _tombstone(self, tid: int, h: int, pk: bytes, sk: bytes, hlc: int, origin: str,
                   prev: tuple[int, str] | None, state: bytes) -> None:
        self.prevs[(tid, h, pk, sk)] = prev
        self.states.pop((tid, h, pk, sk), None)  # the key has no live item now
        self.tombstone_tids.add(tid)  # before the insert: a rolled-back add stays harmless
        self._cur.execute(
            "INSERT OR REPLACE INTO tombstones (tid, h, pk, sk, hlc, origin, prev_hlc,"
            " prev_origin, state) VALUES (?,?,?,?,?,?,?,?,?)",
            (tid, h, pk, sk, hlc, origin, *(prev if prev is not None else (None, None)),
             state or None))

    def prev_of(self, tid: int, h: int, pk: bytes, sk: bytes) -> tuple[int, str] | None:
        """The `prev` this transaction just wrote for a key (for its changelog record)."""
        return self.prevs.get((tid, h, pk, sk))

    def item_state(self, tid: int, h: int, pk: bytes, sk: bytes
                   ) -> tuple[bytes, tuple[int, str], tuple[int, str] | None] | None:
        """(state, version, prev) of the key's newest version: its live item's, else its
        tombstone's; None if it has neither."""
        known = self.states.get((tid, h, pk, sk))
        if known is not None:
            return known
        row = self._cur.execute(
            "SELECT state, hlc, origin, prev_hlc, prev_origin FROM items"
            " WHERE tid=? AND h=? AND pk=? AND sk=?", (tid, h, pk, sk)).fetchone()
        if row is None and tid in self.tombstone_tids:
            row = self._cur.execute(
                "SELECT state, hlc, origin, prev_hlc, prev_origin FROM tombstones"
                " WHERE tid=? AND h=? AND pk=? AND sk=?", (tid, h, pk, sk)).fetchone()
        if row is None:
            return None
        return (row[0] or b"", (row[1], row[2]),
                (row[3], row[4]) if row[3] is not None else None)

    def versions(self, tid: int, h: int, pk: bytes, sk: bytes
                 ) -> tuple[tuple[bytes, int, int, str, tuple[int, str] | None] | None,
                            tuple[int, str, tuple[int, str] | None] | None]:
        """The live row (item, size, hlc, origin, prev) and the tombstone (hlc, origin,
        prev) of a key, each or both None."""
        row = self._cur.execute(
            "SELECT item, size, hlc, origin, crc, prev_hlc, prev_origin FROM items"
            " WHERE tid=? AND h=? AND pk=? AND sk=?", (tid, h, pk, sk)).fetchone()
        if row is not None and crc32(row[0]) != row[4]:
            raise self.integrity.found(CorruptionDetected(
                "Stored item failed its checksum", "item", tid, pk, sk))
        tomb = self._cur.execute(
            "SELECT hlc, origin, prev_hlc, prev_origin FROM tombstones"
            " WHERE tid=? AND h=? AND pk=? AND sk=?", (tid, h, pk, sk)).fetchone(
        ) if tid in self.tombstone_tids else None
        if self.tree is not None:
            self._saw((tid, h, pk, sk), row, True)  # a failing row raised above
            self._seen_dead = None if tomb is None else (int(tomb[0]), str(tomb[1]))
            self._seen_dead_known = True
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
            (tid, iid, h, pk, sk, base_pk, base_sk, item, size, crc32(item)))

    def index_put_many(self, rows: list[tuple[int, int, int, bytes, bytes, bytes, bytes, bytes,
                                              int]]) -> None:
        """Several index rows (tid, iid, h, pk, sk, base_pk, base_sk, item, size) at once."""
        self.writes += 1
        params: list[Any] = []
        for row in rows:
            params.extend(row)
            params.append(crc32(row[7]))
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
            (self.region, seq, hlc, body, crc32(body)))
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
        found = (int(row[0]), str(row[1])) if row is not None else None
        if self._seen_key == (tid, h, pk, sk) and self._seen_writes == self.writes:
            self._seen_dead, self._seen_dead_known = found, True
        return found

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
            [(origin, seq, hlc, body, crc32(body)) for origin, seq, hlc, body in changes])

    def cursor(self, origin: str) -> int:
        row = self._cur.execute("SELECT seq FROM cursors WHERE origin=?", (origin,)).fetchone()
        return int(row[0]) if row else 0

    def logged_frame(self, origin: str, seq: int) -> bytes | None:
        row = self._cur.execute("SELECT body, crc FROM changelog WHERE origin=? AND origin_seq=?",
                                (origin, seq)).fetchone()
        if row is None:
            return None
        if crc32(row[0]) != row[1]:
            raise self.integrity.found(CorruptionDetected(
                f"changelog record {origin}/{seq} failed its checksum", "changelog record"))
        return bytes(row[0])

    def set_cursor(self, origin: str, seq: int, hlc: int) -> None:
        self.writes += 1
        self._cur.execute("INSERT OR REPLACE INTO cursors (origin, seq, hlc) VALUES (?,?,?)",
                          (origin, seq, hlc))

    def purge_changelog(self, origin: str, through_seq: int, limit: int) -> int:
        """Delete up to `limit` of `origin`'s records with seq <= through_seq (never the
        origin's latest record: this node's own next sequence is derived from it); those
        of tables with kept changes move to their kept logs first (matched in SQL, so the
        records are never read into Python), and the origin's purge point moves to the newest
        of them."""
        self.writes += 1
        doomed = ("SELECT seq FROM changelog WHERE origin=? AND origin_seq<=? AND origin_seq < "
                  "(SELECT MAX(origin_seq) FROM changelog WHERE origin=?) "
                  "ORDER BY origin_seq LIMIT ?")
        args = (origin, through_seq, origin, limit)
        for name, markers in self._cur.execute("SELECT name, markers FROM kept_tables"
                                               ).fetchall():
            found = decode_markers(markers)
            self._cur.execute(
                "INSERT OR IGNORE INTO kept_changes (table_name, origin, origin_seq, hlc, body,"
                " crc) SELECT ?, origin, origin_seq, hlc, body, crc FROM changelog WHERE seq IN"
                f" ({doomed}) AND ({' OR '.join(['instr(body, ?) > 0'] * len(found))})",
                (name, *args, *found))
        purged = self._cur.execute(f"DELETE FROM changelog WHERE seq IN ({doomed})"
                                   " RETURNING origin_seq, hlc", args).fetchall()
        if purged:
            seq, hlc = max((int(s), int(h)) for s, h in purged)
            self._cur.execute(
                "INSERT INTO purge_points (origin, seq, hlc) VALUES (?,?,?) ON CONFLICT (origin)"
                " DO UPDATE SET seq=excluded.seq, hlc=excluded.hlc WHERE excluded.seq > seq",
                (origin, seq, hlc))
        return len(purged)

    def keep_changes(self, table: str, markers: tuple[bytes, ...]) -> None:
        invariant(bool(markers) and all(markers), "a kept table needs non-empty markers")
        self.writes += 1
        self._cur.execute("INSERT OR REPLACE INTO kept_tables (name, markers) VALUES (?,?)",
                          (table, orjson.dumps([m.hex() for m in markers])))

    def release_changes(self, table: str) -> None:
        self.writes += 1
        self._cur.execute("DELETE FROM kept_tables WHERE name=?", (table,))
        self._cur.execute("DELETE FROM kept_changes WHERE table_name=?", (table,))

    def purge_kept_changes(self, table: str, origin: str, through_seq: int, limit: int) -> int:
        self.writes += 1
        cursor = self._cur.execute(
            "DELETE FROM kept_changes WHERE (table_name, origin, origin_seq) IN (SELECT "
            "table_name, origin, origin_seq FROM kept_changes WHERE table_name=? AND origin=? "
            "AND origin_seq<=? ORDER BY origin_seq LIMIT ?)", (table, origin, through_seq, limit))
        return cursor.rowcount

    def purge_tombstones(self, below_hlc: int, limit: int) -> int:
        self.writes += 1
        purged = self._cur.execute(
            "DELETE FROM tombstones WHERE (tid, h, pk, sk) IN (SELECT tid, h, pk, sk FROM "
            "tombstones WHERE hlc < ? AND state IS NULL LIMIT ?)"
            " RETURNING tid, h, pk, sk, hlc, origin",
            (below_hlc, limit)).fetchall()
        if self.tree is not None:
            self.tree.purged((int(t), int(h), pk, sk, int(hlc), str(o))
                             for t, h, pk, sk, hlc, o in purged)
        return len(purged)

    def record_conflict(self, detected_ms: int, table_name: str, record: bytes) -> None:
        self.writes += 1
        self._cur.execute(
            "INSERT INTO conflicts (detected_ms, table_name, record) VALUES (?,?,?)",
            (detected_ms, table_name, record))

    # --- hash trees --------------------------------------------------------------------
    def tree_row(self, tid: int, h: int, pk: bytes, sk: bytes) -> TreeRow | None:
        live, dead = key_rows(self._cur, tid, h, pk, sk, True)
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

    def flush_trees(self) -> None:
        """Log the batch's bucket deltas (at the end of the batch, before COMMIT)."""
        if self.tree is not None:
            self.tree.flush()

    def tree_fold(self, limit: int) -> int:
        """Fold about `limit` logged deltas into the trees (trees.py); returns how many."""
        if self.tree is None:
            return 0
        self.writes += 1
        return self.tree.fold(limit)

    @property
    def tree_pending(self) -> int:
        return 0 if self.tree is None else self.tree.pending

    def record_repair(self, repaired_ms: int, table_name: str, record: bytes) -> None:
        self.writes += 1
        self._cur.execute(
            "INSERT INTO repairs (repaired_ms, table_name, record) VALUES (?,?,?)",
            (repaired_ms, table_name, record))

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
        if self.tree is not None:
            self.tree.created(tid)
        return tid

    def update_table(self, name: str, definition: bytes) -> None:
        self.writes += 1
        self._cur.execute("UPDATE tables SET definition=? WHERE name=?", (definition, name))

    def drop_table(self, name: str, tid: int) -> None:
        self.dropped_tids.add(tid)
        self.states.clear()
        self.writes += 1
        self._cur.execute("DELETE FROM tables WHERE name=?", (name,))
        self._cur.execute("DELETE FROM items WHERE tid=?", (tid,))
        self._cur.execute("DELETE FROM tombstones WHERE tid=?", (tid,))
        self._cur.execute("DELETE FROM index_items WHERE tid=?", (tid,))
        self._stats.pop(tid, None)
        # the tree goes with the rows (a reused tid must find nothing of it)
        if self.tree is not None:
            self.tree.dropped(tid)
        self._cur.execute("DELETE FROM tree_buckets WHERE tid=?", (tid,))
        self._cur.execute("DELETE FROM tree_progress WHERE tid=?", (tid,))


def decode_markers(stored: bytes) -> list[bytes]:
    """A kept table's markers as `keep_changes` stored them (a JSON list of hex)."""
    return [bytes.fromhex(m) for m in orjson.loads(stored)]
