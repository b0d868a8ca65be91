"""A SQLite file of an older schema version opens, migrates in place in one transaction
and keeps what it held; one of a newer version is refused (storage/sqlite/schema.py).

Version 1 -> 2: items and tombstones gain their causal `state` column (NULL: each row in
the row form its version rebuilds). Version 2 -> 3: stream records keyed by (sid, pos)
in a WITHOUT ROWID table become a rowid table keyed by sid * 2**44 + pos."""

from __future__ import annotations

import asyncio
import sqlite3
import zlib
from pathlib import Path

import pytest

from atoll.errors import InternalError
from atoll.storage import SqliteStorage, WriteTxn
from atoll.storage.sqlite.filecopy import CopyRefused, check_database
from atoll.storage.sqlite.schema import SCHEMA_VERSION

V1_ITEMS = """CREATE TABLE items (tid INTEGER NOT NULL, h INTEGER NOT NULL, pk BLOB NOT NULL,
    sk BLOB NOT NULL, item BLOB NOT NULL, size INTEGER NOT NULL, hlc INTEGER NOT NULL,
    origin TEXT NOT NULL, crc INTEGER NOT NULL, prev_hlc INTEGER, prev_origin TEXT,
    PRIMARY KEY (tid, h, pk, sk)) WITHOUT ROWID"""
V1_TOMBSTONES = """CREATE TABLE tombstones (tid INTEGER NOT NULL, h INTEGER NOT NULL,
    pk BLOB NOT NULL, sk BLOB NOT NULL, hlc INTEGER NOT NULL, origin TEXT NOT NULL,
    prev_hlc INTEGER, prev_origin TEXT, PRIMARY KEY (tid, h, pk, sk)) WITHOUT ROWID"""
V1_STREAMS = """CREATE TABLE streams (sid INTEGER PRIMARY KEY AUTOINCREMENT,
    table_name TEXT NOT NULL, label TEXT NOT NULL, view_type TEXT NOT NULL,
    key_schema BLOB NOT NULL, created_ms INTEGER NOT NULL, disabled_ms INTEGER,
    trimmed_pos INTEGER NOT NULL DEFAULT 0, UNIQUE (table_name, label))"""
V1_SHARDS = """CREATE TABLE stream_shards (sid INTEGER NOT NULL, shard INTEGER NOT NULL,
    first_pos INTEGER NOT NULL, end_pos INTEGER, created_ms INTEGER NOT NULL,
    closed_ms INTEGER, PRIMARY KEY (sid, shard)) WITHOUT ROWID"""
V1_RECORDS = """CREATE TABLE stream_records (sid INTEGER NOT NULL, pos INTEGER NOT NULL,
    created_ms INTEGER NOT NULL, kind INTEGER NOT NULL, origin TEXT NOT NULL,
    record BLOB NOT NULL, crc INTEGER NOT NULL, PRIMARY KEY (sid, pos)) WITHOUT ROWID"""

# Two streams whose records interleave (positions are shared by the region's streams):
# (sid, pos, created ms, kind, origin, record).
V1_ROWS = [(1, 1, 100, 0, "a", b'"Keys":{"k":{"S":"1"}},"SizeBytes":2'),
           (2, 2, 101, 0, "b", b'"Keys":{"k":{"S":"2"}},"SizeBytes":2'),
           (1, 3, 102, 1, "a", b'"Keys":{"k":{"S":"1"}},"SizeBytes":2'),
           (1, 4, 103, 6, "a", b'"Keys":{"k":{"S":"1"}},"SizeBytes":2')]


def _v1_file(path: Path, version: int = 1, streams: bool = True) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(version),))
    conn.execute(V1_ITEMS)
    conn.execute(V1_TOMBSTONES)
    conn.execute("INSERT INTO items VALUES (1, 7, X'6b', X'', X'7b7d', 2, 50, 'a', 2745614147,"
                 " 40, 'b')")
    conn.execute("INSERT INTO tombstones VALUES (1, 8, X'64', X'', 60, 'b', NULL, NULL)")
    if streams:
        conn.execute(V1_STREAMS)
        conn.execute(V1_SHARDS)
        conn.execute(V1_RECORDS)
        for sid, table in ((1, "t"), (2, "u")):
            conn.execute("INSERT INTO streams (sid, table_name, label, view_type, key_schema,"
                         " created_ms) VALUES (?, ?, 'l', 'KEYS_ONLY', '[]', 0)", (sid, table))
            conn.execute("INSERT INTO stream_shards VALUES (?, 1, 1, NULL, 0, NULL)", (sid,))
        conn.executemany("INSERT INTO stream_records VALUES (?,?,?,?,?,?,?)",
                         [(*row, zlib.crc32(row[5])) for row in V1_ROWS])
    conn.commit()
    conn.close()


def _open_and_append(path: Path, sid: int) -> int:
    """Open the file (migrating it), append one record to stream `sid`: its position."""
    storage = SqliteStorage(str(path), durable=True, region="a")

    async def run() -> int:
        storage.start(asyncio.get_running_loop())
        try:
            return int(await storage.write(
                lambda txn: txn.stream_append(sid, 200, 0, "a", b'"Keys":{},"SizeBytes":0')))
        finally:
            storage.close()

    return asyncio.run(run())


def test_a_version_1_file_keeps_its_stream_records_and_positions(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _v1_file(path)
    check_database(str(path))  # a backup of the old version may be restored
    appended = _open_and_append(path, 2)
    assert appended == 5  # above every position the old file recorded
    storage = SqliteStorage(str(path), durable=True, region="a")
    try:
        assert storage.stream_records(1, 0, 10) == [
            (pos, created, kind, origin, record)
            for sid, pos, created, kind, origin, record in V1_ROWS if sid == 1]
        assert storage.stream_records(1, 4, 10) == [(4, 103, 6, "a", V1_ROWS[3][5])]
        assert [row[0] for row in storage.stream_records(2, 0, 10)] == [2, 5]
        assert storage.stream_last_pos(1) == 4 and storage.stream_last_pos(2) == 5
    finally:
        storage.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == (
        str(SCHEMA_VERSION),)
    assert [row[1] for row in conn.execute("PRAGMA table_info(stream_records)")][0] == "id"
    assert conn.execute("SELECT name FROM sqlite_master WHERE name='stream_records_1'"
                        ).fetchone() is None
    conn.close()


def test_a_version_1_file_from_before_streams_gains_the_stream_tables(
        tmp_path: Path) -> None:
    path = tmp_path / "older.db"
    _v1_file(path, streams=False)

    def open_stream(txn: WriteTxn) -> int:
        return txn.stream_open("t", "l", "KEYS_ONLY", b"[]", 0)

    storage = SqliteStorage(str(path), durable=True, region="a")

    async def run() -> int:
        storage.start(asyncio.get_running_loop())
        try:
            return int(await storage.write(open_stream))
        finally:
            storage.close()

    sid = asyncio.run(run())
    assert _open_and_append(path, sid) == 1


def test_a_version_1_file_gains_state_columns_and_its_rows_read_as_row_form(
        tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _v1_file(path)
    storage = SqliteStorage(str(path), durable=True, region="a")

    def read(txn: WriteTxn) -> object:
        return txn.item_state(1, 7, b"k", b""), txn.item_state(1, 8, b"d", b"")

    async def run() -> object:
        storage.start(asyncio.get_running_loop())
        try:
            return await storage.write(read)
        finally:
            storage.close()

    assert asyncio.run(run()) == ((b"", (50, "a"), (40, "b")), (b"", (60, "b"), None))
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == (
        str(SCHEMA_VERSION),)
    assert "state" in [row[1] for row in conn.execute("PRAGMA table_info(tombstones)")]
    conn.close()


def test_a_file_of_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    _v1_file(path, version=SCHEMA_VERSION + 1)
    with pytest.raises(InternalError, match="schema version"):
        SqliteStorage(str(path), durable=True, region="a")
    with pytest.raises(CopyRefused, match="schema version"):
        check_database(str(path))
