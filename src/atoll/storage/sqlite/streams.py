"""The stream writes of SqliteTxn (the protocol's `stream_*` methods).

Positions: the transaction holds `next_stream_pos`, the position the next record takes,
read once when the storage opens (`first_stream_pos`) and advanced by each append; a
batch that is rolled back puts it back (batches.py), so positions follow commit order.
Positions are never reused: the next one is found above every position still recorded
anywhere (records, trim points, shard bounds) and above the high-water mark that a trim
or drop writes to `meta` before it removes rows, so even a region whose streams were all
dropped continues above the numbers it handed out.
"""

from __future__ import annotations

import sqlite3
import zlib

POSITION_KEY = "stream_pos"  # meta: the highest position taken, kept by trims and drops


def first_stream_pos(conn: sqlite3.Connection) -> int:
    """The position the next record takes in the database behind `conn`."""
    row = conn.execute(
        "SELECT MAX(COALESCE((SELECT MAX(pos) FROM stream_records), 0),"
        " COALESCE((SELECT MAX(trimmed_pos) FROM streams), 0),"
        " COALESCE((SELECT MAX(COALESCE(end_pos, first_pos - 1)) FROM stream_shards), 0),"
        " COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key=?), 0))",
        (POSITION_KEY,)).fetchone()
    return int(row[0]) + 1


class SqliteStreamWrites:
    """Base of SqliteTxn: the cursor, the count of mutating statements and the stream
    writes, which need only those."""

    def __init__(self, cursor: sqlite3.Cursor, next_stream_pos: int) -> None:
        self._cur = cursor
        self.writes = 0  # mutating statements in the open transaction
        self.next_stream_pos = next_stream_pos

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
        self.writes += 1
        self._cur.execute("INSERT INTO stream_records (sid, pos, created_ms, kind, origin,"
                          " record, crc) VALUES (?,?,?,?,?,?,?)",
                          (sid, pos, created_ms, kind, origin, record, zlib.crc32(record)))
        self.next_stream_pos = pos + 1
        return pos

    def stream_roll(self, sid: int, now_ms: int, opened_before_ms: int) -> bool:
        cur = self._cur
        shard = cur.execute("SELECT shard, first_pos, created_ms FROM stream_shards"
                            " WHERE sid=? AND end_pos IS NULL", (sid,)).fetchone()
        if shard is None or int(shard[2]) >= opened_before_ms:
            return False
        if cur.execute("SELECT 1 FROM stream_records WHERE sid=? AND pos>=? LIMIT 1",
                       (sid, shard[1])).fetchone() is None:
            return False
        self.writes += 1
        cur.execute("UPDATE stream_shards SET end_pos=?, closed_ms=? WHERE sid=? AND shard=?",
                    (self.next_stream_pos - 1, now_ms, sid, shard[0]))
        self._open_shard(sid, int(shard[0]) + 1, max(now_ms, int(shard[2]) + 1))
        return True

    def stream_trim(self, sid: int, created_before_ms: int, limit: int) -> int:
        cur = self._cur
        row = cur.execute("SELECT trimmed_pos FROM streams WHERE sid=?", (sid,)).fetchone()
        if row is None or limit <= 0:
            return 0
        last = 0
        count = 0
        for pos, created_ms in cur.execute(
                "SELECT pos, created_ms FROM stream_records WHERE sid=? AND pos>? ORDER BY pos"
                " LIMIT ?", (sid, row[0], limit)).fetchall():
            if created_ms >= created_before_ms:
                break
            last, count = int(pos), count + 1
        if count:
            self._keep_position_mark()
            cur.execute("DELETE FROM stream_records WHERE sid=? AND pos<=?", (sid, last))
            cur.execute("UPDATE streams SET trimmed_pos=MAX(trimmed_pos, ?) WHERE sid=?",
                        (last, sid))
        return count

    def stream_forget_shards(self, sid: int, closed_before_ms: int) -> int:
        cur = self._cur
        row = cur.execute("SELECT COUNT(*), MAX(end_pos) FROM stream_shards WHERE sid=? AND"
                          " end_pos IS NOT NULL AND closed_ms<?",
                          (sid, closed_before_ms)).fetchone()
        count = int(row[0])
        if count:
            self._keep_position_mark()
            cur.execute("DELETE FROM stream_shards WHERE sid=? AND end_pos IS NOT NULL AND"
                        " closed_ms<?", (sid, closed_before_ms))
            cur.execute("DELETE FROM stream_records WHERE sid=? AND pos<=?", (sid, row[1]))
            cur.execute("UPDATE streams SET trimmed_pos=MAX(trimmed_pos, ?) WHERE sid=?",
                        (row[1], sid))
        return count

    def stream_drop(self, sid: int, disabled_before_ms: int) -> bool:
        cur = self._cur
        row = cur.execute("SELECT disabled_ms FROM streams WHERE sid=?", (sid,)).fetchone()
        if row is None or row[0] is None or int(row[0]) >= disabled_before_ms:
            return False
        self._keep_position_mark()
        cur.execute("DELETE FROM stream_records WHERE sid=?", (sid,))
        cur.execute("DELETE FROM stream_shards WHERE sid=?", (sid,))
        cur.execute("DELETE FROM streams WHERE sid=?", (sid,))
        return True

    def _keep_position_mark(self) -> None:
        """Before rows holding positions go: remember the highest position taken."""
        self.writes += 1
        self._cur.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                          (POSITION_KEY, str(self.next_stream_pos - 1)))
