"""A version-1 SQLite file (no item states) opens, migrates in place, keeps its rows
(each one in the row form its version rebuilds) and is refused by nothing newer."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from atoll.errors import InternalError
from atoll.storage import SqliteStorage, WriteTxn
from atoll.storage.sqlite.schema import SCHEMA_VERSION

V1_ITEMS = """CREATE TABLE items (tid INTEGER NOT NULL, h INTEGER NOT NULL, pk BLOB NOT NULL,
    sk BLOB NOT NULL, item BLOB NOT NULL, size INTEGER NOT NULL, hlc INTEGER NOT NULL,
    origin TEXT NOT NULL, crc INTEGER NOT NULL, prev_hlc INTEGER, prev_origin TEXT,
    PRIMARY KEY (tid, h, pk, sk)) WITHOUT ROWID"""
V1_TOMBSTONES = """CREATE TABLE tombstones (tid INTEGER NOT NULL, h INTEGER NOT NULL,
    pk BLOB NOT NULL, sk BLOB NOT NULL, hlc INTEGER NOT NULL, origin TEXT NOT NULL,
    prev_hlc INTEGER, prev_origin TEXT, PRIMARY KEY (tid, h, pk, sk)) WITHOUT ROWID"""


def _v1_file(path: Path, version: int = 1) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(version),))
    conn.execute(V1_ITEMS)
    conn.execute(V1_TOMBSTONES)
    conn.execute("INSERT INTO items VALUES (1, 7, X'6b', X'', X'7b7d', 2, 50, 'a', 2745614147,"
                 " 40, 'b')")
    conn.execute("INSERT INTO tombstones VALUES (1, 8, X'64', X'', 60, 'b', NULL, NULL)")
    conn.commit()
    conn.close()


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
