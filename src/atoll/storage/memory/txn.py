"""MemoryTxn: the write transaction of the memory storage, with an undo log per job.

Writes change MemoryData in place; each change first notes how to undo it (the rows
container, the key, the row it replaced). A job that raises is undone back to the mark
taken before it ran (`savepoint`, `roll_back`), so it leaves nothing behind while the jobs
before it in the batch keep their effects: the all-or-nothing the Storage contract asks
of a job, without replaying the others. The log is dropped when the batch ends.
Hash trees are kept the same way: each write that changes a key's tree row XORs its
bucket in place (an undoable set), unless the storage keeps no trees.
"""

from __future__ import annotations

from typing import Any

from atoll.invariant import invariant
from atoll.storage.memory.data import ItemRecord, MemoryData, Tombstone
from atoll.storage.memory.rows import SortedRows
from atoll.storage.protocol import IndexRow, RowVersion, ScanKey, StoredState, TableStateRow
from atoll.storage.treeprotocol import TREE_BUCKETS, TreeRow
from atoll.storage.trees import BUCKET_SHIFT, newest, row_leaf

# undo log length, next_seq, conflicts, applied, highest stream position and stream id,
# repairs
Savepoint = tuple[int, int, int, int, int, int, int]


def tree_row_of(data: MemoryData, tid: int, key: ScanKey) -> TreeRow | None:
    """A key's tree row in `data` (memory rows cannot rot: always intact)."""
    rows = data.items.get(tid)
    tombstones = data.tombstones.get(tid)
    live = rows.get(key) if rows is not None else None
    dead = tombstones.get(key) if tombstones is not None else None
    return newest(key[0], key[1], key[2],
                  None if live is None else (live[2], live[3], live[0], True, live[1]),
                  None if dead is None else (dead[0], dead[1]))


def item_state_of(data: MemoryData, tid: int, key: ScanKey) -> StoredState | None:
    """A key's (state, version, prev): its live item's, else its tombstone's."""
    rows = data.items.get(tid)
    row = rows.get(key) if rows is not None else None
    if row is not None:
        return row[5], (row[2], row[3]), row[4]
    tombstones = data.tombstones.get(tid)
    tomb = tombstones.get(key) if tombstones is not None else None
    return (tomb[3], (tomb[0], tomb[1]), tomb[2]) if tomb is not None else None


class MemoryTxn:
    def __init__(self, data: MemoryData, region: str, trees: bool = True) -> None:
        self.data = data
        self.region = region
        self.trees = trees
        self.next_seq = data.next_local_seq(region)
        self._undo: list[tuple[SortedRows[Any, Any], Any, Any]] = []
        # the `prev` each key's last write of this batch recorded, as a 1-tuple (prev may
        # be None): what prev_of answers
        self._prevs: SortedRows[tuple[int, int, bytes, bytes], tuple[RowVersion | None]] = \
            SortedRows()

    # --- undo ----------------------------------------------------------------------------
    def _set(self, rows: SortedRows[Any, Any], key: Any, value: Any) -> None:
        self._undo.append((rows, key, rows.set(key, value)))

    def _pop(self, rows: SortedRows[Any, Any], key: Any) -> None:
        old = rows.pop(key)
        if old is not None:
            self._undo.append((rows, key, old))

    def savepoint(self) -> Savepoint:
        data = self.data
        return (len(self._undo), self.next_seq, len(data.conflicts), data.applied,
                data.stream_pos, data.stream_sid, len(data.repairs))

    def roll_back(self, savepoint: Savepoint) -> None:
        """Undo every change made since `savepoint`, newest first."""
        data = self.data
        mark, self.next_seq, conflicts, data.applied, data.stream_pos, data.stream_sid, \
            repairs = savepoint
        del self.data.conflicts[conflicts:]
        del self.data.repairs[repairs:]
        undo = self._undo
        while len(undo) > mark:
            rows, key, old = undo.pop()
            rows.restore(key, old)

    def end_batch(self) -> None:
        """The batch is over: its changes stay, and so the undo log goes."""
        self._undo.clear()
        self._prevs = SortedRows()

    def _rows(self, tid: int) -> SortedRows[ScanKey, ItemRecord]:
        rows = self.data.items.get(tid)
        if rows is None:
            rows = SortedRows()
            self._set(self.data.items, tid, rows)
        return rows

    def _tombstones(self, tid: int) -> SortedRows[ScanKey, Tombstone]:
        rows = self.data.tombstones.get(tid)
        if rows is None:
            rows = SortedRows()
            self._set(self.data.tombstones, tid, rows)
        return rows

    # --- items ---------------------------------------------------------------------------
    def get(self, tid: int, h: int, pk: bytes, sk: bytes) -> tuple[bytes, int, int, str] | None:
        rows = self.data.items.get(tid)
        row = rows.get((h, pk, sk)) if rows is not None else None
        return None if row is None else (row[0], row[1], row[2], row[3])

    def put(self, tid: int, h: int, pk: bytes, sk: bytes, item: bytes, size: int,
            hlc: int, origin: str, old_size: int | None,
            prev: RowVersion | None = None, state: bytes = b"") -> None:
        old = self._tree_before(tid, (h, pk, sk))
        self._set(self._prevs, (tid, h, pk, sk), (prev,))
        self._set(self._rows(tid), (h, pk, sk), (item, size, hlc, origin, prev, state))
        if old_size is None:
            self._count(tid, 1, size)
        else:
            self._count(tid, 0, size - old_size)
        self._tree_after(tid, (h, pk, sk), old)

    def delete(self, tid: int, h: int, pk: bytes, sk: bytes, hlc: int, origin: str,
               old_size: int, prev: RowVersion | None = None, state: bytes = b"") -> None:
        old = self._tree_before(tid, (h, pk, sk))
        rows = self.data.items.get(tid)
        if rows is not None:
            self._pop(rows, (h, pk, sk))
        self._tombstone(tid, h, pk, sk, hlc, origin, prev, state)
        self._count(tid, -1, -old_size)
        self._tree_after(tid, (h, pk, sk), old)

    def delete_absent(self, tid: int, h: int, pk: bytes, sk: bytes, hlc: int, origin: str,
                      prev: RowVersion | None = None, state: bytes = b"") -> None:
        old = self._tree_before(tid, (h, pk, sk))
        self._tombstone(tid, h, pk, sk, hlc, origin, prev, state)
        self._tree_after(tid, (h, pk, sk), old)

    def _tombstone(self, tid: int, h: int, pk: bytes, sk: bytes, hlc: int, origin: str,
                   prev: RowVersion | None, state: bytes) -> None:
        self._set(self._prevs, (tid, h, pk, sk), (prev,))
        self._set(self._tombstones(tid), (h, pk, sk), (hlc, origin, prev, state))

    def item_state(self, tid: int, h: int, pk: bytes, sk: bytes) -> StoredState | None:
        return item_state_of(self.data, tid, (h, pk, sk))

    # --- hash trees --------------------------------------------------------------------
    def _tree_before(self, tid: int, key: ScanKey) -> TreeRow | None:
        return tree_row_of(self.data, tid, key) if self.trees else None

    def _tree_after(self, tid: int, key: ScanKey, old: TreeRow | None) -> None:
        """XOR the key's leaf change into its bucket (old: its tree row before)."""
        name = self.data.names.get(tid)
        if not self.trees or name is None:
            return
        delta = row_leaf(name, old) ^ row_leaf(name, tree_row_of(self.data, tid, key))
        if delta:
            self._xor(tid, key[0] >> BUCKET_SHIFT, delta)

    def _xor(self, tid: int, bucket: int, delta: int) -> None:
        trees = self.data.trees
        value = (trees.get((tid, bucket)) or 0) ^ delta
        if value:
            self._set(trees, (tid, bucket), value)
        else:
            self._pop(trees, (tid, bucket))

    def tree_row(self, tid: int, h: int, pk: bytes, sk: bytes) -> TreeRow | None:
        return tree_row_of(self.data, tid, (h, pk, sk))

    def tree_build(self, tid: int, buckets: int) -> int:
        invariant(buckets > 0, "a build step covers at least one bucket")
        data = self.data
        name = data.names.get(tid)
        if not self.trees or name is None:
            return 0
        built = data.tree_built.get(tid) or 0
        last = min(built + buckets, TREE_BUCKETS)
        if built >= TREE_BUCKETS:
            return built
        hashes = [0] * (last - built)
        low: tuple[Any, bool] = ((built << BUCKET_SHIFT,), True)
        high: tuple[Any, bool] = ((last << BUCKET_SHIFT,), False)
        keys: set[ScanKey] = set()
        for rows in (data.items.get(tid), data.tombstones.get(tid)):
            if rows is not None:
                keys.update(key for key, _row in rows.walk(low, high))
        for key in keys:
            hashes[(key[0] >> BUCKET_SHIFT) - built] ^= row_leaf(name, tree_row_of(data, tid, key))
        for bucket in range(built, last):
            self._pop(data.trees, (tid, bucket))
            if hashes[bucket - built]:
                self._set(data.trees, (tid, bucket), hashes[bucket - built])
        self._set(data.tree_built, tid, last)
        return last

    def tree_correct(self, tid: int, bucket: int, delta: int) -> None:
        if self.trees and delta and bucket < (self.data.tree_built.get(tid) or 0):
            self._xor(tid, bucket, delta)

    def record_repair(self, repaired_ms: int, table_name: str, record: bytes) -> None:
        repairs = self.data.repairs
        repairs.append((repairs[-1][0] + 1 if repairs else 1, repaired_ms, table_name, record))

    def prev_of(self, tid: int, h: int, pk: bytes, sk: bytes) -> RowVersion | None:
        written = self._prevs.get((tid, h, pk, sk))
        return written[0] if written is not None else None

    def versions(self, tid: int, h: int, pk: bytes, sk: bytes
                 ) -> tuple[tuple[bytes, int, int, str, RowVersion | None] | None,
                            tuple[int, str, RowVersion | None] | None]:
        rows = self.data.items.get(tid)
        tombstones = self.data.tombstones.get(tid)
        row = rows.get((h, pk, sk)) if rows is not None else None
        tomb = tombstones.get((h, pk, sk)) if tombstones is not None else None
        return (row[:5] if row is not None else None, tomb[:3] if tomb is not None else None)

    def tombstone_version(self, tid: int, h: int, pk: bytes, sk: bytes) -> RowVersion | None:
        tombstones = self.data.tombstones.get(tid)
        tomb = tombstones.get((h, pk, sk)) if tombstones is not None else None
        return (tomb[0], tomb[1]) if tomb is not None else None

    def scan_chunk(self, tid: int, after: ScanKey | None, limit: int
                   ) -> list[tuple[int, bytes, bytes, bytes, int]]:
        rows = self.data.items.get(tid)
        if rows is None:
            return []
        low = (after, False) if after is not None else None
        return [(key[0], key[1], key[2], row[0], row[1]) for key, row in rows.first(limit, low)]

    def _count(self, tid: int, items: int, size: int) -> None:
        """Move a live table's statistics (a dropped table's writes count nowhere)."""
        name = self.data.names.get(tid)
        record = self.data.tables.get(name) if name is not None else None
        if record is not None:
            self._set(self.data.tables, name,
                      (record[0], record[1], record[2] + items, record[3] + size))

    # --- secondary indexes ---------------------------------------------------------------
    def index_put(self, tid: int, iid: int, h: int, pk: bytes, sk: bytes, base_pk: bytes,
                  base_sk: bytes, item: bytes, size: int) -> None:
        indexes = self.data.indexes
        rows = indexes.get((tid, iid))
        if rows is None:
            rows = SortedRows()
            self._set(indexes, (tid, iid), rows)
        self._set(rows, (h, pk, sk, base_pk, base_sk), (item, size))

    def index_put_many(self, rows: list[IndexRow]) -> None:
        for row in rows:
            self.index_put(*row)

    def index_delete(self, tid: int, iid: int, h: int, pk: bytes, sk: bytes, base_pk: bytes,
                     base_sk: bytes) -> None:
        rows = self.data.indexes.get((tid, iid))
        if rows is not None:
            self._pop(rows, (h, pk, sk, base_pk, base_sk))

    def index_drop(self, tid: int, iid: int) -> None:
        self._pop(self.data.indexes, (tid, iid))

    # --- TransactWriteItems tokens -------------------------------------------------------
    def token_get(self, token: str) -> tuple[bytes, int] | None:
        return self.data.tokens.get(token)

    def token_put(self, token: str, request_hash: bytes, created_ms: int) -> None:
        self._set(self.data.tokens, token, (request_hash, created_ms))

    def tokens_purge(self, older_than_ms: int, limit: int) -> int:
        """The oldest first."""
        tokens = self.data.tokens
        old = sorted((created_ms, token) for token, (_hash, created_ms) in tokens.rows.items()
                     if created_ms < older_than_ms)[:max(limit, 0)]
        for _created_ms, token in old:
            self._pop(tokens, token)
        return len(old)

    # --- changelog, cursors, conflicts ---------------------------------------------------
    def log_change(self, hlc: int, body: bytes) -> int:
        seq = self.next_seq
        self._append(self.region, seq, hlc, body)
        self.next_seq = seq + 1
        return seq

    def _append(self, origin: str, seq: int, hlc: int, body: bytes) -> None:
        data = self.data
        log = data.changelog.get(origin)
        if log is None:
            log = SortedRows()
            self._set(data.changelog, origin, log)
        invariant(log.get(seq) is None, "changelog record logged twice")
        data.applied += 1
        self._set(log, seq, (hlc, body, data.applied))

    def append_remote_changes(self, changes: list[tuple[str, int, int, bytes]]) -> None:
        changelog = self.data.changelog
        for origin, seq, hlc, body in changes:
            log = changelog.get(origin)
            if log is None or log.get(seq) is None:
                self._append(origin, seq, hlc, body)

    def cursor(self, origin: str) -> int:
        cursor = self.data.cursors.get(origin)
        return cursor[0] if cursor is not None else 0

    def logged_frame(self, origin: str, seq: int) -> bytes | None:
        log = self.data.changelog.get(origin)
        record = log.get(seq) if log is not None else None
        return record[1] if record is not None else None

    def set_cursor(self, origin: str, seq: int, hlc: int) -> None:
        self._set(self.data.cursors, origin, (seq, hlc))

    def purge_changelog(self, origin: str, through_seq: int, limit: int) -> int:
        log = self.data.changelog.get(origin)
        if log is None or limit <= 0:
            return 0
        latest = log.keys[-1]
        doomed = log.first(limit, None, (min(through_seq, latest - 1), True))
        kept = list(self.data.kept_tables.walk(None, None))
        for seq, (hlc, body, _applied) in doomed:
            for table, markers in kept:
                if any(marker in body for marker in markers):
                    self._set(self._kept_log(table), (origin, seq), (hlc, body))
            self._pop(log, seq)
        if doomed:
            newest_seq, newest = doomed[-1]
            point = self.data.purge_points.get(origin)
            if point is None or newest_seq > point[0]:
                self._set(self.data.purge_points, origin, (newest_seq, newest[0]))
        return len(doomed)

    def _kept_log(self, table: str) -> SortedRows[tuple[str, int], tuple[int, bytes]]:
        rows = self.data.kept.get(table)
        if rows is None:
            rows = SortedRows()
            self._set(self.data.kept, table, rows)
        return rows

    def keep_changes(self, table: str, markers: tuple[bytes, ...]) -> None:
        invariant(bool(markers) and all(markers), "a kept table needs non-empty markers")
        self._set(self.data.kept_tables, table, tuple(markers))

    def release_changes(self, table: str) -> None:
        self._pop(self.data.kept_tables, table)
        self._pop(self.data.kept, table)

    def purge_kept_changes(self, table: str, origin: str, through_seq: int, limit: int) -> int:
        rows = self.data.kept.get(table)
        if rows is None or limit <= 0:
            return 0
        doomed = rows.first(limit, ((origin,), True), ((origin, through_seq), True))
        for key, _record in doomed:
            self._pop(rows, key)
        return len(doomed)

    def purge_tombstones(self, below_hlc: int, limit: int) -> int:
        """Table by table, each in key order."""
        doomed: list[tuple[int, SortedRows[ScanKey, Tombstone], ScanKey]] = []
        for tid, tombstones in self.data.tombstones.walk(None, None):
            for key, tomb in tombstones.walk(None, None):
                if len(doomed) >= limit:
                    break
                if tomb[0] < below_hlc and not tomb[3]:
                    doomed.append((tid, tombstones, key))
        for tid, tombstones, key in doomed:
            old = self._tree_before(tid, key)
            self._pop(tombstones, key)
            self._tree_after(tid, key, old)
        return len(doomed)

    def record_conflict(self, detected_ms: int, table_name: str, record: bytes) -> None:
        conflicts = self.data.conflicts
        conflicts.append((conflicts[-1][0] + 1 if conflicts else 1, detected_ms, table_name,
                          record))

    # --- streams -------------------------------------------------------------------------
    def stream_open(self, table_name: str, label: str, view_type: str, key_schema: bytes,
                    now_ms: int) -> int:
        data = self.data
        sid = data.stream_ids.get((table_name, label))
        if sid is None:
            data.stream_sid += 1
            sid = data.stream_sid
            self._set(data.stream_ids, (table_name, label), sid)
            self._set(data.streams, sid,
                      (table_name, label, view_type, key_schema, now_ms, None, 0))
            self._open_shard(sid, 1, now_ms)
            return sid
        entry = data.streams.rows[sid]
        self._set(data.streams, sid, (*entry[:5], None, entry[6]))
        last = self._last_shard(sid)
        if last is None:
            self._open_shard(sid, 1, now_ms)
        elif last[1][1] is not None:
            self._open_shard(sid, last[0] + 1, max(now_ms, last[1][2] + 1))
        return sid

    def _last_shard(self, sid: int) -> tuple[int, tuple[int, int | None, int, int | None]] | None:
        shards = self.data.stream_shards.walk(((sid,), True), ((sid + 1,), False), True)
        for key, shard in shards:
            return key[1], shard
        return None

    def _open_shard(self, sid: int, number: int, created_ms: int) -> None:
        self._set(self.data.stream_shards, (sid, number),
                  (self.data.stream_pos + 1, None, created_ms, None))

    def _close_shard(self, sid: int, number: int, now_ms: int) -> None:
        shards = self.data.stream_shards
        first, _end, created, _closed = shards.rows[(sid, number)]
        self._set(shards, (sid, number), (first, self.data.stream_pos, created, now_ms))

    def stream_close(self, sid: int, now_ms: int) -> None:
        data = self.data
        entry = data.streams.get(sid)
        if entry is None:
            return
        self._set(data.streams, sid, (*entry[:5], now_ms, entry[6]))
        last = self._last_shard(sid)
        if last is not None and last[1][1] is None:
            self._close_shard(sid, last[0], now_ms)

    def stream_append(self, sid: int, created_ms: int, kind: int, origin: str,
                      record: bytes) -> int:
        data = self.data
        data.stream_pos += 1
        self._set(data.stream_records, (sid, data.stream_pos), (created_ms, kind, origin, record))
        return data.stream_pos

    def stream_roll(self, sid: int, now_ms: int, opened_before_ms: int) -> bool:
        last = self._last_shard(sid)
        if last is None or last[1][1] is not None or last[1][2] >= opened_before_ms:
            return False
        number, (first, _end, created, _closed) = last
        if not self.data.stream_records.first(1, ((sid, first), True), ((sid + 1,), False)):
            return False
        self._close_shard(sid, number, now_ms)
        self._open_shard(sid, number + 1, max(now_ms, created + 1))
        return True

    def stream_trim(self, sid: int, created_before_ms: int, limit: int) -> int:
        data = self.data
        entry = data.streams.get(sid)
        if entry is None or limit <= 0:
            return 0
        doomed = []
        for key, record in data.stream_records.first(limit, ((sid, entry[6]), False),
                                                     ((sid + 1,), False)):
            if record[0] >= created_before_ms:
                break
            doomed.append(key)
        self._forget_through(sid, doomed[-1][1] if doomed else 0)
        return len(doomed)

    def _forget_through(self, sid: int, pos: int) -> None:
        """Remove the stream's records at or below `pos`; its trim point rises to it."""
        data = self.data
        entry = data.streams.rows[sid]
        if pos <= entry[6]:
            return
        for key in [k for k, _r in data.stream_records.walk(((sid,), True), ((sid, pos), True))]:
            self._pop(data.stream_records, key)
        self._set(data.streams, sid, (*entry[:6], pos))

    def stream_forget_shards(self, sid: int, closed_before_ms: int) -> int:
        shards = self.data.stream_shards
        doomed = [(key, shard) for key, shard in shards.walk(((sid,), True), ((sid + 1,), False))
                  if shard[1] is not None and shard[3] is not None and shard[3] < closed_before_ms]
        for key, _shard in doomed:
            self._pop(shards, key)
        if doomed:
            self._forget_through(sid, max(shard[1] or 0 for _key, shard in doomed))
        return len(doomed)

    def stream_drop(self, sid: int, disabled_before_ms: int) -> bool:
        data = self.data
        entry = data.streams.get(sid)
        if entry is None or entry[5] is None or entry[5] >= disabled_before_ms:
            return False
        for rows in (data.stream_records, data.stream_shards):
            for key in [k for k, _v in rows.walk(((sid,), True), ((sid + 1,), False))]:
                self._pop(rows, key)
        self._pop(data.stream_ids, (entry[0], entry[1]))
        self._pop(data.streams, sid)
        return True

    # --- catalog -------------------------------------------------------------------------
    def table_row(self, name: str) -> tuple[int, bytes] | None:
        record = self.data.tables.get(name)
        return (record[0], record[1]) if record is not None else None

    def table_state_row(self, name: str) -> TableStateRow | None:
        return self.data.table_states.get(name)

    def set_table_state(self, name: str, created: RowVersion, version: RowVersion,
                        definition: bytes | None) -> None:
        self._set(self.data.table_states, name,
                  (created[0], created[1], version[0], version[1], definition))

    def create_table(self, name: str, definition: bytes) -> int:
        data = self.data
        invariant(data.tables.get(name) is None, f"table {name} exists")
        tid = data.names.keys[-1] + 1 if len(data.names) else 1
        self._set(data.tables, name, (tid, definition, 0, 0))
        self._set(data.names, tid, name)
        if self.trees:
            self._set(data.tree_built, tid, TREE_BUCKETS)
        return tid

    def update_table(self, name: str, definition: bytes) -> None:
        record = self.data.tables.get(name)
        if record is not None:
            self._set(self.data.tables, name, (record[0], definition, record[2], record[3]))

    def drop_table(self, name: str, tid: int) -> None:
        data = self.data
        self._pop(data.tables, name)
        self._pop(data.names, tid)
        self._pop(data.items, tid)
        self._pop(data.tombstones, tid)
        for key in [key for key in data.indexes.keys if key[0] == tid]:
            self._pop(data.indexes, key)
        for key in [key for key, _hash in data.trees.walk(((tid,), True), ((tid + 1,), False))]:
            self._pop(data.trees, key)
        self._pop(data.tree_built, tid)
