"""The stream writes of SqliteTxn (the protocol's `stream_*` methods).

Positions: the transaction holds `next_stream_pos`, the position the next record takes,
read once when the storage opens (`first_stream_pos`) and advanced by each append; a
batch that is rolled back puts it back (batches.py), so positions follow commit order.
Positions are never reused: the next one is found above every position still recorded
anywhere (records, trim points, shard bounds) and above the high-water mark that a trim
or drop writes to `meta` before it removes rows, so even a region whose streams were all
dropped continues above the numbers it handed out.

Records are keyed by one integer, `record_id(sid, pos)` = sid * 2**44 + pos (schema.py
says why a rowid table): a stream's records are the ids from record_id(sid, 0) up to
record_id(sid + 1, 0), in position order. Positions stay below 2**44 (5.5 years at
100,000 records a second) and sids below 2**19 (streams enabled in the region's life).
"""

from __future__ import annotations

import sqlite3

from atoll.checksum import crc32
from atoll.invariant import invariant

POSITION_KEY = "stream_pos"  # meta: the highest position taken, kept by trims and drops
POS_BITS = 44
MAX_POS = (1 << POS_BITS) - 1
MAX_SID = (1 << (63 - POS_BITS)) - 1
ROWS_PER_INSERT = 16  # records a flush inserts with one statement (16 x 6 parameters)
_COLUMNS = 6
# _INSERTS[n]: the INSERT of n records (0 unused). One multi-row statement a chunk costs
# ~0.3 us a record less than an executemany of the same rows (measured, 32 rows of 460
# bytes: 1.0-1.1 against 1.3 us a row), and the 16 statements stay prepared in the
# connection's statement cache.
_INSERTS = ("",) + tuple(
    "INSERT INTO stream_records (id, created_ms, kind, origin, record, crc) VALUES "
    + ",".join(("(?,?,?,?,?,?)",) * rows) for rows in range(1, ROWS_PER_INSERT + 1))


def record_id(sid: int, pos: int) -> int:
    """The key of stream `sid`'s record at position `pos` (pos 0: before its first)."""
    return (sid << POS_BITS) + pos


def stream_ids(sid: int) -> tuple[int, int]:
    """The keys of stream `sid`'s records: from the first (inclusive) to the end
    (exclusive)."""
    return sid << POS_BITS, (sid + 1) << POS_BITS


def first_stream_pos(conn: sqlite3.Connection) -> int:
    """The position the next record takes in the database behind `conn`."""
    row = conn.execute(
        "SELECT MAX(COALESCE((SELECT MAX(trimmed_pos) FROM streams), 0),"
        " COALESCE((SELECT MAX(COALESCE(end_pos, first_pos - 1)) FROM stream_shards), 0),"
        " COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key=?), 0))",
        (POSITION_KEY,)).fetchone()
    return max(int(row[0]), _last_recorded_pos(conn)) + 1


def _last_recorded_pos(conn: sqlite3.Connection) -> int:
    """The highest position of any stream's records: each stream's newest record is the
    highest key below the next stream's first, so this walks the streams holding
    records from the last, one index probe each."""
    highest = 0
    at_most = (1 << 63) - 1
    for _ in range(MAX_SID + 1):
        row = conn.execute("SELECT MAX(id) FROM stream_records WHERE id <= ?",
                           (at_most,)).fetchone()
        if row[0] is None:
            break
        sid, pos = divmod(int(row[0]), 1 << POS_BITS)
        highest = max(highest, pos)
        at_most = (sid << POS_BITS) - 1
    return highest


class SqliteStreamWrites:
    """Base of SqliteTxn: the cursor, the count of mutating statements and the stream
    writes, which need only those."""

    def __init__(self, cursor: sqlite3.Cursor, next_stream_pos: int) -> None:
        self._cur = cursor
        self.writes = 0  # mutating statements in the open transaction
        self.next_stream_pos = next_stream_pos
        # Records appended in the open transaction and not yet inserted, as the flat
        # parameters of their rows (_COLUMNS each): inserted at the end of the batch
        # (flush_stream_records) by a few multi-row statements instead of a statement
        # each; bounded by the batch's writes. Whatever reads or removes records flushes
        # first. Each record is bound as a bytearray: sqlite3 binds int, float, str and
        # bytearray as they are, but sends bytes through its adapter lookup, which fails
        # at some cost (~0.5 us a row, measured); the copy costs ~0.1 us.
        self._appended: list[int | str | bytearray] = []

    def stream_open(self, table_name: str, label: str, view_type: str, key_schema: bytes,
                    now_ms: int) -> int:
        cur = self._cur
        self.writes += 1
        row = cur.execute("SELECT sid FROM streams WHERE table_name=? AND label=?",
                          (table_name, label)).fetchone()
        if row is None:
            cur.execute("INSERT INTO streams (table_name, label, view_type, key_schema,"
                        " created_ms) VALUES (?,?,?,?,?)",
                        (table_name, label, view_type, key_schema, now_ms))
            sid = int(cur.lastrowid or 0)
            self._open_shard(sid, 1, now_ms)
            return sid
        sid = int(row[0])
        cur.execute("UPDATE streams SET disabled_ms=NULL WHERE sid=?", (sid,))
        last = cur.execute("SELECT shard, end_pos, created_ms FROM stream_shards WHERE sid=?"
                           " ORDER BY shard DESC LIMIT 1", (sid,)).fetchone()
        if last is None:
            self._open_shard(sid, 1, now_ms)
        elif last[1] is not None:
            self._open_shard(sid, int(last[0]) + 1, max(now_ms, int(last[2]) + 1))
        return sid

    def _open_shard(self, sid: int, number: int, created_ms: int) -> None:
        self._cur.execute("INSERT INTO stream_shards (sid, shard, first_pos, created_ms)"
                          " VALUES (?,?,?,?)", (sid, number, self.next_stream_pos, created_ms))

    def stream_close(self, sid: int, now_ms: int) -> None:
        self.writes += 1
        self._cur.execute("UPDATE streams SET disabled_ms=? WHERE sid=?", (now_ms, sid))
        self._cur.execute("UPDATE stream_shards SET end_pos=?, closed_ms=? WHERE sid=? AND"
                          " end_pos IS NULL", (self.next_stream_pos - 1, now_ms, sid))

    def stream_append(self, sid: int, created_ms: int, kind: int, origin: str,
                      record: bytes) -> int:
        pos = self.next_stream_pos
        invariant(pos <= MAX_POS and 0 < sid <= MAX_SID, "stream position or sid out of range")
        self.writes += 1
        self._appended += ((sid << POS_BITS) + pos, created_ms, kind, origin,
                           bytearray(record), crc32(record))
        self.next_stream_pos = pos + 1
        return pos

    def flush_stream_records(self) -> None:
        """Insert the records appended since the last flush (before COMMIT, and before
        any statement that reads or removes records)."""
        appended = self._appended
        if appended:
            rows = len(appended) // _COLUMNS
            for first in range(0, rows, ROWS_PER_INSERT):
                count = min(ROWS_PER_INSERT, rows - first)
                self._cur.execute(_INSERTS[count],
                                  appended[first * _COLUMNS:(first + count) * _COLUMNS])
            appended.clear()

    def forget_stream_records(self) -> None:
        """Drop the records appended since the last flush (the transaction rolled back)."""
        self._appended.clear()

    def stream_roll(self, sid: int, now_ms: int, opened_before_ms: int) -> bool:
        cur = self._cur
        self.flush_stream_records()
        shard = cur.execute("SELECT shard, first_pos, created_ms FROM stream_shards"
                            " WHERE sid=? AND end_pos IS NULL", (sid,)).fetchone()
        if shard is None or int(shard[2]) >= opened_before_ms:
            return False
        if cur.execute("SELECT 1 FROM stream_records WHERE id>=? AND id<? LIMIT 1",
                       (record_id(sid, int(shard[1])), stream_ids(sid)[1])).fetchone() is None:
            return False
        self.writes += 1
        cur.execute("UPDATE stream_shards SET end_pos=?, closed_ms=? WHERE sid=? AND shard=?",
                    (self.next_stream_pos - 1, now_ms, sid, shard[0]))
        self._open_shard(sid, int(shard[0]) + 1, max(now_ms, int(shard[2]) + 1))
        return True

    def stream_trim(self, sid: int, created_before_ms: int, limit: int) -> int:
        cur = self._cur
        self.flush_stream_records()
        row = cur.execute("SELECT trimmed_pos FROM streams WHERE sid=?", (sid,)).fetchone()
        if row is None or limit <= 0:
            return 0
        last = 0
        count = 0
        first, end = stream_ids(sid)
        for key, created_ms in cur.execute(
                "SELECT id, created_ms FROM stream_records WHERE id>? AND id<? ORDER BY id"
                " LIMIT ?", (record_id(sid, int(row[0])), end, limit)).fetchall():
            if created_ms >= created_before_ms:
                break
            last, count = int(key) - first, count + 1
        if count:
            self._keep_position_mark()
            cur.execute("DELETE FROM stream_records WHERE id>=? AND id<=?",
                        (first, record_id(sid, last)))
            cur.execute("UPDATE streams SET trimmed_pos=MAX(trimmed_pos, ?) WHERE sid=?",
                        (last, sid))
        return count

    def stream_forget_shards(self, sid: int, closed_before_ms: int) -> int:
        cur = self._cur
        self.flush_stream_records()
        row = cur.execute("SELECT COUNT(*), MAX(end_pos) FROM stream_shards WHERE sid=? AND"
                          " end_pos IS NOT NULL AND closed_ms<?",
                          (sid, closed_before_ms)).fetchone()
        count = int(row[0])
        if count:
            self._keep_position_mark()
            cur.execute("DELETE FROM stream_shards WHERE sid=? AND end_pos IS NOT NULL AND"
                        " closed_ms<?", (sid, closed_before_ms))
            cur.execute("DELETE FROM stream_records WHERE id>=? AND id<=?",
                        (stream_ids(sid)[0], record_id(sid, int(row[1]))))
            cur.execute("UPDATE streams SET trimmed_pos=MAX(trimmed_pos, ?) WHERE sid=?",
                        (row[1], sid))
        return count

    def stream_drop(self, sid: int, disabled_before_ms: int) -> bool:
        cur = self._cur
        self.flush_stream_records()
        row = cur.execute("SELECT disabled_ms FROM streams WHERE sid=?", (sid,)).fetchone()
        if row is None or row[0] is None or int(row[0]) >= disabled_before_ms:
            return False
        self._keep_position_mark()
        cur.execute("DELETE FROM stream_records WHERE id>=? AND id<?", stream_ids(sid))
        cur.execute("DELETE FROM stream_shards WHERE sid=?", (sid,))
        cur.execute("DELETE FROM streams WHERE sid=?", (sid,))
        return True

    def _keep_position_mark(self) -> None:
        """Before rows holding positions go: remember the highest position taken."""
        self.writes += 1
        self._cur.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                          (POSITION_KEY, str(self.next_stream_pos - 1)))
