"""PostgresReads: every read, on the event-loop thread, over one autocommit connection.

Theory of operation
- Reads are synchronous calls from the event-loop thread (the Storage protocol), so
  only one is ever in flight: one connection serves them all. Autocommit: each
  statement reads the latest committed state (its own snapshot) and holds no
  transaction open between requests.
- What a read sees is durable: PostgreSQL makes a commit visible only after its WAL
  record is flushed (synchronous_commit on), so `settle()` never waits.
- Reads that return an iterator fetch in pages (keyset pagination: the next page starts
  strictly after the last key seen), PAGE_FIRST rows first and up to PAGE_MAX, so a
  Query that stops after a few items reads a few rows, and a long Scan never holds a
  result set or a snapshot open. Pages are separate statements: a long iteration may
  see commits of other nodes between pages (each row as committed at some moment).
  `get_items_snapshot` reads all its keys in one statement, hence one snapshot.
- When the server cannot be reached, a read raises ServiceUnavailable (503, retryable)
  at once: the broken connection is dropped and made again by a later read, at most
  once per RECONNECT_INTERVAL_S, so a node whose database is down answers quickly
  instead of blocking the event loop on connection attempts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg

from atoll.checksum import crc32
from atoll.errors import ServiceUnavailable
from atoll.invariant import invariant
from atoll.storage.pages import PageColumns, page_columns
from atoll.storage.postgres.connection import UNAVAILABLE, classify, connect
from atoll.storage.postgres.snapshots import open_changes_snapshot, open_table_snapshot
from atoll.storage.protocol import (
    CorruptionDetected,
    ItemRow,
    ReplicaRow,
    ShardRow,
    StreamRecordRow,
    StreamRow,
    TableStateRow,
)
from atoll.storage.sqlsnapshots import SqlChangesSnapshot, SqlTableSnapshot

log = logging.getLogger(__name__)

PAGE_FIRST = 64
PAGE_MAX = 1024
RECONNECT_INTERVAL_S = 0.25
MAX_SNAPSHOT_KEYS = 1000


class PostgresReads:
    """The reads of PostgresStorage (which adds the write path)."""

    def __init__(self, dsn: str, region: str, name: str) -> None:
        self.dsn = dsn
        self.region = region
        self._name = name
        self._reader: psycopg.Connection | None = None
        self._reader_failed_at = 0.0
        self._reader = self._connect_reader()

    # --- the connection ------------------------------------------------------------------
    def _connect_reader(self) -> psycopg.Connection:
        try:
            return connect(self.dsn, autocommit=True, name=f"{self._name}-reads")
        except psycopg.Error as exc:
            raise ServiceUnavailable(f"The database is unavailable: {_first_line(exc)}") from None

    def _conn(self) -> psycopg.Connection:
        conn = self._reader
        if conn is not None and not conn.closed:
            return conn
        now = time.monotonic()
        if now - self._reader_failed_at < RECONNECT_INTERVAL_S:
            raise ServiceUnavailable("The database is unavailable; retry")
        self._reader_failed_at = now
        self._reader = self._connect_reader()
        return self._reader

    def _fetch(self, fetch: Callable[[psycopg.Cursor[Any]], Any], sql: str, args: Any) -> Any:
        """Run one statement and `fetch` its rows; a lost server is ServiceUnavailable."""
        try:
            return fetch(self._conn().execute(sql, args))
        except psycopg.Error as exc:
            if classify(exc) != UNAVAILABLE:
                raise
            self._drop_reader()
            raise ServiceUnavailable(f"The database is unavailable: {_first_line(exc)}") from None

    def _one(self, sql: str, args: Any = ()) -> Any:
        return self._fetch(lambda cur: cur.fetchone(), sql, args)

    def _all(self, sql: str, args: Any = ()) -> list[Any]:
        return self._fetch(lambda cur: cur.fetchall(), sql, args)  # type: ignore[no-any-return]

    def _drop_reader(self) -> None:
        conn, self._reader = self._reader, None
        self._reader_failed_at = time.monotonic()
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass

    def close_reads(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    # --- items ---------------------------------------------------------------------------
    def get_item(self, tid: int, h: int, pk: bytes, sk: bytes) -> ItemRow | None:
        row = self._one("SELECT item, size, crc FROM items WHERE tid = %s AND h = %s"
                        " AND pk = %s AND sk = %s", (tid, h, pk, sk))
        if row is None:
            return None
        if crc32(row[0]) != row[2]:
            raise CorruptionDetected("Stored item failed its checksum")
        return row[0], int(row[1])

    def get_items_snapshot(self, keys: list[tuple[int, int, bytes, bytes]]
                           ) -> list[ItemRow | None]:
        """Every key in one statement: one snapshot for all."""
        if not keys:
            return []
        invariant(len(keys) <= MAX_SNAPSHOT_KEYS, "too many keys for one snapshot read")
        found: dict[tuple[int, int, bytes, bytes], ItemRow] = {}
        values = ",".join(["(%s, %s, %s, %s)"] * len(keys))
        rows = self._all(
            "SELECT tid, h, pk, sk, item, size, crc FROM items WHERE (tid, h, pk, sk) IN"
            f" ({values})", [part for key in keys for part in key])
        for tid, h, pk, sk, item, size, crc in rows:
            if crc32(item) != crc:
                raise CorruptionDetected("Stored item failed its checksum")
            found[(int(tid), int(h), bytes(pk), bytes(sk))] = (item, int(size))
        return [found.get(key) for key in keys]

    def _pages(self, sql: str, args: list[Any], after_sql: str, order: str,
               key_of: Callable[[Any], tuple[Any, ...]], most: int | None = None
               ) -> Iterator[Any]:
        """Rows of `sql` in `order`, a page at a time; each next page adds `after_sql`
        (a row comparison taking the last row's key) to start after the last row. With
        `most`, at most that many rows in all."""
        limit = PAGE_FIRST if most is None else min(PAGE_FIRST, most)
        rows = self._all(f"{sql} {order} LIMIT %s", [*args, limit])
        left = most
        while True:
            yield from rows
            if left is not None:
                left -= len(rows)
            if len(rows) < limit or left == 0:
                return
            limit = min(limit * 4, PAGE_MAX, PAGE_MAX if left is None else left)
            rows = self._all(f"{sql} {after_sql} {order} LIMIT %s",
                             [*args, *key_of(rows[-1]), limit])

    def query_items(self, tid: int, h: int, pk: bytes, lower: tuple[bytes, bool] | None,
                    upper: tuple[bytes, bool] | None, forward: bool, limit: int | None = None
                    ) -> Iterator[tuple[bytes, bytes, int]]:
        sql = ["SELECT sk, item, size, crc FROM items WHERE tid = %s AND h = %s AND pk = %s"]
        args: list[Any] = [tid, h, pk]
        _sort_key_bounds(sql, args, lower, upper)
        for sk, item, size, crc in self._pages(
                " ".join(sql), args, "AND sk > %s" if forward else "AND sk < %s",
                "ORDER BY sk" if forward else "ORDER BY sk DESC", lambda row: (row[0],), limit):
            if crc32(item) != crc:
                raise CorruptionDetected("Stored item failed its checksum")
            yield sk, item, int(size)

    def query_page(self, tid: int, h: int, pk: bytes, lower: tuple[bytes, bool] | None,
                   upper: tuple[bytes, bool] | None, forward: bool, limit: int) -> list[ItemRow]:
        return [(row[1], row[2])
                for row in self.query_items(tid, h, pk, lower, upper, forward, limit)]

    def scan_items(self, tid: int, after: tuple[int, bytes, bytes] | None, h_end: int | None,
                   h_start: int = 0, limit: int | None = None
                   ) -> Iterator[tuple[int, bytes, bytes, bytes, int]]:
        sql = "SELECT h, pk, sk, item, size, crc FROM items WHERE tid = %s"
        args: list[Any] = [tid]
        if after is None:
            sql += " AND h >= %s"
            args.append(h_start)
        else:
            sql += " AND (h, pk, sk) > (%s, %s, %s)"
            args.extend(after)
        if h_end is not None:
            sql += " AND h < %s"
            args.append(h_end)
        for h, pk, sk, item, size, crc in self._pages(
                sql, args, "AND (h, pk, sk) > (%s, %s, %s)", "ORDER BY h, pk, sk",
                lambda row: (row[0], row[1], row[2]), limit):
            if crc32(item) != crc:
                raise CorruptionDetected("Stored item failed its checksum")
            yield int(h), pk, sk, item, int(size)

    def scan_page(self, tid: int, after: tuple[int, bytes, bytes] | None, h_end: int | None, h_start: int,
                  limit: int, sized: bool = True) -> PageColumns:
        return page_columns((row[3], row[4])
                            for row in self.scan_items(tid, after, h_end, h_start, limit))

    def collection_size(self, tid: int, h: int, pk: bytes) -> int:
        row = self._one(
            "SELECT (SELECT COALESCE(SUM(size), 0) FROM items WHERE tid = %s AND h = %s"
            " AND pk = %s) + (SELECT COALESCE(SUM(size), 0) FROM index_items WHERE tid = %s"
            " AND h = %s AND pk = %s AND base_pk = pk)", (tid, h, pk, tid, h, pk))
        return int(row[0])

    # --- secondary indexes ---------------------------------------------------------------
    def query_index(self, tid: int, iid: int, h: int, pk: bytes, lower: tuple[bytes, bool] | None,
                    upper: tuple[bytes, bool] | None, forward: bool,
                    start: tuple[bytes, bytes, bytes] | None, limit: int | None = None
                    ) -> Iterator[tuple[bytes, bytes, bytes, bytes, int]]:
        sql = ["SELECT sk, base_pk, base_sk, item, size, crc FROM index_items"
               " WHERE tid = %s AND iid = %s AND h = %s AND pk = %s"]
        args: list[Any] = [tid, iid, h, pk]
        _sort_key_bounds(sql, args, lower, upper)
        after = ("AND (sk, base_pk, base_sk) > (%s, %s, %s)" if forward
                 else "AND (sk, base_pk, base_sk) < (%s, %s, %s)")
        if start is not None:
            sql.append(after)
            args.extend(start)
        order = ("ORDER BY sk, base_pk, base_sk" if forward
                 else "ORDER BY sk DESC, base_pk DESC, base_sk DESC")
        for sk, base_pk, base_sk, item, size, crc in self._pages(
                " ".join(sql), args, after, order, lambda row: (row[0], row[1], row[2]),
                limit):
            if crc32(item) != crc:
                raise CorruptionDetected("Stored index item failed its checksum")
            yield sk, base_pk, base_sk, item, int(size)

    def scan_index(self, tid: int, iid: int, after: tuple[int, bytes, bytes, bytes, bytes] | None,
                   h_end: int | None, h_start: int = 0, limit: int | None = None
                   ) -> Iterator[tuple[int, bytes, bytes, bytes, bytes, bytes, int]]:
        sql = ("SELECT h, pk, sk, base_pk, base_sk, item, size, crc FROM index_items"
               " WHERE tid = %s AND iid = %s")
        args: list[Any] = [tid, iid]
        if after is None:
            sql += " AND h >= %s"
            args.append(h_start)
        else:
            sql += " AND (h, pk, sk, base_pk, base_sk) > (%s, %s, %s, %s, %s)"
            args.extend(after)
        if h_end is not None:
            sql += " AND h < %s"
            args.append(h_end)
        for h, pk, sk, base_pk, base_sk, item, size, crc in self._pages(
                sql, args, "AND (h, pk, sk, base_pk, base_sk) > (%s, %s, %s, %s, %s)",
                "ORDER BY h, pk, sk, base_pk, base_sk", lambda row: tuple(row[:5]), limit):
            if crc32(item) != crc:
                raise CorruptionDetected("Stored index item failed its checksum")
            yield int(h), pk, sk, base_pk, base_sk, item, int(size)

    def query_index_page(self, tid: int, iid: int, h: int, pk: bytes,
                         lower: tuple[bytes, bool] | None, upper: tuple[bytes, bool] | None,
                         forward: bool, start: tuple[bytes, bytes, bytes] | None, limit: int,
                         sized: bool = True) -> PageColumns:
        return page_columns((row[3], row[4]) for row in self.query_index(
            tid, iid, h, pk, lower, upper, forward, start, limit))

    def scan_index_page(self, tid: int, iid: int,
                        after: tuple[int, bytes, bytes, bytes, bytes] | None,
                        h_end: int | None, h_start: int, limit: int, sized: bool = True
                        ) -> PageColumns:
        return page_columns((row[5], row[6]) for row in self.scan_index(
            tid, iid, after, h_end, h_start, limit))

    def index_stats(self, tid: int, iid: int) -> tuple[int, int]:
        row = self._one("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM index_items"
                        " WHERE tid = %s AND iid = %s", (tid, iid))
        return int(row[0]), int(row[1])

    # --- catalog -------------------------------------------------------------------------
    def load_tables(self) -> list[tuple[str, int, bytes]]:
        return [(str(n), int(t), d) for n, t, d in self._all(
            "SELECT name, tid, definition FROM tables ORDER BY name")]

    def table_stats(self, tid: int) -> tuple[int, int]:
        row = self._one("SELECT item_count, size_bytes FROM tables WHERE tid = %s", (tid,))
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def table_state_row(self, name: str) -> TableStateRow | None:
        row = self._one(
            "SELECT created_hlc, created_origin, version_hlc, version_origin, definition"
            " FROM table_states WHERE name = %s", (name,))
        if row is None:
            return None
        return int(row[0]), str(row[1]), int(row[2]), str(row[3]), row[4]

    def load_table_states(self) -> list[tuple[str, int, str, int, str, bytes | None]]:
        return [(str(n), int(ch), str(co), int(vh), str(vo), d) for n, ch, co, vh, vo, d in
                self._all("SELECT name, created_hlc, created_origin, version_hlc,"
                          " version_origin, definition FROM table_states")]

    # --- changelog and cursors -----------------------------------------------------------
    def last_local_hlc(self) -> int:
        row = self._one("SELECT MAX(hlc) FROM changelog WHERE origin = %s", (self.region,))
        return int(row[0] or 0)

    def cursor_vector(self) -> dict[str, tuple[int, int]]:
        result = {str(o): (int(s), int(h))
                  for o, s, h in self._all("SELECT origin, seq, hlc FROM cursors")}
        row = self._one(
            "SELECT origin_seq, hlc FROM changelog WHERE origin = %s ORDER BY origin_seq DESC"
            " LIMIT 1", (self.region,))
        if row is not None and (int(row[0]), int(row[1])) > result.get(self.region, (0, 0)):
            result[self.region] = (int(row[0]), int(row[1]))
        return result

    def purge_points(self) -> dict[str, tuple[int, int]]:
        return {str(o): (int(s), int(h))
                for o, s, h in self._all("SELECT origin, seq, hlc FROM purge_points")}

    def repairs(self, after_id: int = 0, limit: int = 100) -> list[tuple[int, int, str, bytes]]:
        return [(int(i), int(t), str(n), bytes(r)) for i, t, n, r in self._all(
            "SELECT id, repaired_ms, table_name, record FROM repairs WHERE id > %s ORDER BY id"
            " LIMIT %s", (after_id, limit))]

    def cursors(self) -> dict[str, int]:
        return {origin: seq for origin, (seq, _hlc) in self.cursor_vector().items()}

    def log_start(self) -> dict[str, int]:
        result = {}
        for origin in self.cursor_vector():  # one index seek per origin
            row = self._one("SELECT MIN(origin_seq) FROM changelog WHERE origin = %s",
                            (origin,))
            if row[0] is not None:
                result[origin] = int(row[0]) - 1
        return result

    def changelog_count(self) -> int:
        return int(self._one("SELECT COUNT(*) FROM changelog")[0])

    def changes_since(self, origin: str, after_seq: int, limit: int
                      ) -> list[tuple[int, int, bytes]]:
        rows = []
        for seq, hlc, body, crc in self._all(
                "SELECT origin_seq, hlc, body, crc FROM changelog WHERE origin = %s AND"
                " origin_seq > %s ORDER BY origin_seq LIMIT %s", (origin, after_seq, limit)):
            if crc32(body) != crc:
                raise CorruptionDetected(f"changelog record {origin}/{seq} failed its checksum")
            rows.append((int(seq), int(hlc), body))
        return rows

    def snapshot_table(self, name: str) -> SqlTableSnapshot | None:
        """One table pinned as committed now, on a connection of its own (snapshots.py)."""
        return open_table_snapshot(self.dsn, self.region, name)

    def snapshot_changes(self) -> SqlChangesSnapshot:
        """The changelog and kept logs pinned as committed now (snapshots.py)."""
        return open_changes_snapshot(self.dsn, self.region)

    def snapshot_rows(self, tid: int, after: tuple[int, bytes, bytes] | None, limit: int,
                      tombstones: bool) -> list[ReplicaRow]:
        table = "tombstones" if tombstones else "items"
        column = "NULL::bytea" if tombstones else "item"
        sql = (f"SELECT h, pk, sk, hlc, origin, {column}, prev_hlc, prev_origin, state"  # noqa: S608
               f" FROM {table} WHERE tid = %s")
        args: list[Any] = [tid]
        if after is not None:
            sql += " AND (h, pk, sk) > (%s, %s, %s)"
            args += list(after)
        sql += " ORDER BY h, pk, sk LIMIT %s"
        args.append(limit)
        return [(int(h), pk, sk, int(hlc), str(o), None if item is None else bytes(item),
                 None if ph is None else (int(ph), str(po)),
                 b"" if state is None else bytes(state))
                for h, pk, sk, hlc, o, item, ph, po, state in self._all(sql, args)]

    def conflicts(self, after_id: int = 0, limit: int = 100) -> list[tuple[int, int, str, bytes]]:
        return [(int(i), int(t), str(n), r) for i, t, n, r in self._all(
            "SELECT id, detected_ms, table_name, record FROM conflicts WHERE id > %s"
            " ORDER BY id LIMIT %s", (after_id, limit))]

    # --- streams -------------------------------------------------------------------------
    def streams(self) -> list[StreamRow]:
        return [(int(sid), str(name), str(label), str(view), key_schema, int(created),
                 None if disabled is None else int(disabled), int(trimmed))
                for sid, name, label, view, key_schema, created, disabled, trimmed in self._all(
                    "SELECT sid, table_name, label, view_type, key_schema, created_ms,"
                    " disabled_ms, trimmed_pos FROM streams ORDER BY sid")]

    def stream_shards(self, sid: int) -> list[ShardRow]:
        return [(int(shard), int(first), None if end is None else int(end), int(created),
                 None if closed is None else int(closed))
                for shard, first, end, created, closed in self._all(
                    "SELECT shard, first_pos, end_pos, created_ms, closed_ms FROM stream_shards"
                    " WHERE sid = %s ORDER BY shard", (sid,))]

    def stream_records(self, sid: int, from_pos: int, limit: int) -> list[StreamRecordRow]:
        rows: list[StreamRecordRow] = []
        for pos, created, kind, origin, record, crc in self._all(
                "SELECT pos, created_ms, kind, origin, record, crc FROM stream_records"
                " WHERE sid = %s AND pos >= %s ORDER BY pos LIMIT %s", (sid, from_pos, limit)):
            if crc32(record) != crc:
                raise CorruptionDetected(f"stream record {sid}/{pos} failed its checksum")
            rows.append((int(pos), int(created), int(kind), str(origin), record))
        return rows

    def stream_last_pos(self, sid: int) -> int:
        row = self._one(
            "SELECT COALESCE((SELECT MAX(pos) FROM stream_records WHERE sid = %s),"
            " (SELECT trimmed_pos FROM streams WHERE sid = %s), 0)", (sid, sid))
        return int(row[0])


def _sort_key_bounds(sql: list[str], args: list[Any], lower: tuple[bytes, bool] | None,
                     upper: tuple[bytes, bool] | None) -> None:
    """Add a range on `sk` to a query: each bound is (encoded key, inclusive)."""
    if lower is not None:
        sql.append("AND sk >= %s" if lower[1] else "AND sk > %s")
        args.append(lower[0])
    if upper is not None:
        sql.append("AND sk <= %s" if upper[1] else "AND sk < %s")
        args.append(upper[0])


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().split("\n", 1)[0]
