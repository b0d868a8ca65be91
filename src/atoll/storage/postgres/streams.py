"""The stream writes of PostgresTxn (the protocol's `stream_*` methods), and its base:
the batch's cursors and pipeline, which the stream writes need.

Positions. Several nodes write a region's streams, so the next position cannot be kept
in any node's memory. The region's head row (loghead.py), which every batch locks
before its first statement and holds until its COMMIT, also keeps the last position
taken (`stream_pos`): `begin` reads it with the lock, the batch's appends number from
it (`next_stream_pos`), and `finish` writes the new last position back into the row
with the batch's other head fields, before the COMMIT. So, as for the changelog's
sequences:
- Positions increase in commit order across every stream of the region: a batch
  cannot number before the previous holder of the lock has committed or rolled back.
- A batch that is rolled back (a poisoned job, a victim of the engine, a lost
  connection) leaves the row as it found it; its replay, or the next batch of any
  node, reads the row again under the lock. No position is held in memory across
  batches, so none leaks and none is handed out twice.
- A reader that sees the record at position N sees every committed record below it
  (loghead.py: a commit is visible before its locks are released).
- Positions are never reused: trims, forgotten shards and dropped streams remove rows
  but never lower the head. A head row made anew (a new region, or a row removed by
  hand) starts above every position still recorded (loghead.INIT).
No sequence: a sequence hands out numbers before commit, so its order is not commit
order (loghead.py).

Stream ids. A new stream's sid is one more than the highest ever given: the larger of
the highest sid still stored and the mark in `meta` (SID_KEY) that each creation sets,
read under the write lock, so no two batches give the same one and a dropped stream's
sid is not given again.

Round trips. A lookup (the stream's row, its open shard, the records to trim) is sent
at once and waited for; the writes after it are only queued (txn.py: pipeline mode).
An append costs no round trip.
"""

from __future__ import annotations

from typing import Any

import psycopg

from atoll.checksum import crc32
from atoll.storage.postgres.writebehind import FlushingCursor, WriteBehind

SID_KEY = "stream_sid"  # meta: the highest sid given

_NEXT_SID = ("SELECT GREATEST(COALESCE((SELECT MAX(sid) FROM streams), 0),"
             " COALESCE((SELECT CAST(value AS bigint) FROM meta WHERE key = %s), 0)) + 1")
_SET_MARK = ("INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key)"
             " DO UPDATE SET value = EXCLUDED.value")
_OPEN_SHARD = ("INSERT INTO stream_shards (sid, shard, first_pos, created_ms)"
               " VALUES (%s, %s, %s, %s)")
_APPEND = ("INSERT INTO stream_records (sid, pos, created_ms, kind, origin, record, crc)"
           " VALUES (%s, %s, %s, %s, %s, %s, %s)")
# The open shard and whether a record was appended since it opened.
_OPEN_SHARD_OF = ("SELECT shard, first_pos, created_ms, EXISTS (SELECT 1 FROM stream_records"
                  " WHERE stream_records.sid = stream_shards.sid AND"
                  " stream_records.pos >= stream_shards.first_pos)"
                  " FROM stream_shards WHERE sid = %s AND end_pos IS NULL")
_RAISE_TRIM_POINT = "UPDATE streams SET trimmed_pos = GREATEST(trimmed_pos, %s) WHERE sid = %s"


class PostgresStreamWrites:
    """Base of PostgresTxn: the writer connection's cursors, its pipeline, the count of
    mutating statements, the next stream position and the stream writes."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self._pipeline: psycopg.Pipeline | None = None
        # item rows and changelog records not sent yet (writebehind.py): every cursor
        # below sends them before a statement of its own
        self.behind = WriteBehind(conn.cursor())
        self._read = FlushingCursor(conn.cursor(), self.behind)  # answers fetched
        self._write = FlushingCursor(conn.cursor(), self.behind)  # only queued
        self.writes = 0  # mutating statements in the open transaction
        self.next_stream_pos = 1  # set by `begin` from the region's head

    def sync(self) -> None:
        """Send everything queued and wait for its answers (raising a queued failure)."""
        self.behind.flush()
        if self._pipeline is not None:
            self._pipeline.sync()

    def _one(self, sql: str, args: Any) -> Any:
        return self._read.execute(sql, args).fetchone()

    def _counted(self, sql: str, args: Any) -> int:
        """Run a statement now and return how many rows it changed."""
        cur = self.conn.cursor()
        self.behind.flush()
        cur.execute(sql, args)
        self.sync()
        return max(0, cur.rowcount)

    # --- streams -------------------------------------------------------------------------
    def stream_open(self, table_name: str, label: str, view_type: str, key_schema: bytes,
                    now_ms: int) -> int:
        self.writes += 1
        row = self._one("SELECT sid FROM streams WHERE table_name = %s AND label = %s",
                        (table_name, label))
        if row is None:
            sid = int(self._one(_NEXT_SID, (SID_KEY,))[0])
            self._write.execute(
                "INSERT INTO streams (sid, table_name, label, view_type, key_schema,"
                " created_ms) VALUES (%s, %s, %s, %s, %s, %s)",
                (sid, table_name, label, view_type, key_schema, now_ms))
            self._write.execute(_SET_MARK, (SID_KEY, str(sid)))
            self._open_shard(sid, 1, now_ms)
            return sid
        sid = int(row[0])
        self._write.execute("UPDATE streams SET disabled_ms = NULL WHERE sid = %s", (sid,))
        last = self._one("SELECT shard, end_pos, created_ms FROM stream_shards WHERE sid = %s"
                         " ORDER BY shard DESC LIMIT 1", (sid,))
        if last is None:
            self._open_shard(sid, 1, now_ms)
        elif last[1] is not None:
            self._open_shard(sid, int(last[0]) + 1, max(now_ms, int(last[2]) + 1))
        return sid

    def _open_shard(self, sid: int, number: int, created_ms: int) -> None:
        self._write.execute(_OPEN_SHARD, (sid, number, self.next_stream_pos, created_ms))

    def stream_close(self, sid: int, now_ms: int) -> None:
        self.writes += 1
        self._write.execute("UPDATE streams SET disabled_ms = %s WHERE sid = %s", (now_ms, sid))
        self._write.execute("UPDATE stream_shards SET end_pos = %s, closed_ms = %s"
                            " WHERE sid = %s AND end_pos IS NULL",
                            (self.next_stream_pos - 1, now_ms, sid))

    def stream_append(self, sid: int, created_ms: int, kind: int, origin: str,
                      record: bytes) -> int:
        pos = self.next_stream_pos
        self.writes += 1
        self._write.execute(_APPEND, (sid, pos, created_ms, kind, origin, record,
                                      crc32(record)))
        self.next_stream_pos = pos + 1
        return pos

    def stream_roll(self, sid: int, now_ms: int, opened_before_ms: int) -> bool:
        shard = self._one(_OPEN_SHARD_OF, (sid,))
        if shard is None or int(shard[2]) >= opened_before_ms or not shard[3]:
            return False
        self.writes += 1
        self._write.execute("UPDATE stream_shards SET end_pos = %s, closed_ms = %s"
                            " WHERE sid = %s AND shard = %s",
                            (self.next_stream_pos - 1, now_ms, sid, shard[0]))
        self._open_shard(sid, int(shard[0]) + 1, max(now_ms, int(shard[2]) + 1))
        return True

    def stream_trim(self, sid: int, created_before_ms: int, limit: int) -> int:
        if limit <= 0:
            return 0
        last = 0
        count = 0
        for pos, created_ms in self._read.execute(
                "SELECT pos, created_ms FROM stream_records WHERE sid = %s AND pos >"
                " (SELECT trimmed_pos FROM streams WHERE sid = %s) ORDER BY pos LIMIT %s",
                (sid, sid, limit)).fetchall():
            if created_ms >= created_before_ms:
                break
            last, count = int(pos), count + 1
        if count:
            self.writes += 1
            self._write.execute("DELETE FROM stream_records WHERE sid = %s AND pos <= %s",
                                (sid, last))
            self._write.execute(_RAISE_TRIM_POINT, (last, sid))
        return count

    def stream_forget_shards(self, sid: int, closed_before_ms: int) -> int:
        row = self._one("SELECT COUNT(*), MAX(end_pos) FROM stream_shards WHERE sid = %s"
                        " AND end_pos IS NOT NULL AND closed_ms < %s", (sid, closed_before_ms))
        count = int(row[0])
        if count:
            self.writes += 1
            self._write.execute("DELETE FROM stream_shards WHERE sid = %s AND end_pos IS NOT"
                                " NULL AND closed_ms < %s", (sid, closed_before_ms))
            self._write.execute("DELETE FROM stream_records WHERE sid = %s AND pos <= %s",
                                (sid, row[1]))
            self._write.execute(_RAISE_TRIM_POINT, (row[1], sid))
        return count

    def stream_drop(self, sid: int, disabled_before_ms: int) -> bool:
        row = self._one("SELECT disabled_ms FROM streams WHERE sid = %s", (sid,))
        if row is None or row[0] is None or int(row[0]) >= disabled_before_ms:
            return False
        self.writes += 1
        self._write.execute("DELETE FROM stream_records WHERE sid = %s", (sid,))
        self._write.execute("DELETE FROM stream_shards WHERE sid = %s", (sid,))
        self._write.execute("DELETE FROM streams WHERE sid = %s", (sid,))
        return True
