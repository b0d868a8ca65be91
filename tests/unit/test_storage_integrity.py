"""IntegrityFaults (atoll.storage.integrity): every checksum failure counted, each
damaged row kept once (bounded), listeners told whether the row is new."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from atoll.storage import CorruptionDetected, SqliteStorage
from atoll.storage.integrity import MAX_ROWS, DamagedRow, IntegrityFaults, Located


def test_detections_are_counted_and_each_row_is_new_once() -> None:
    faults = IntegrityFaults()
    heard: list[tuple[str, bool]] = []
    faults.listeners.append(lambda error, new: heard.append((error.message, new)))
    first = CorruptionDetected("bad", "item", 3, b"p", b"s")
    assert faults.found(first) is first  # handed back to be raised
    faults.found(CorruptionDetected("bad again", "item", 3, b"p", b"s"))
    faults.found(CorruptionDetected("other", "index item", 3, b"p", b"s"))
    assert faults.detections == 3 and faults.damaged == 2
    assert faults.rows[DamagedRow("item", 3, b"p", b"s")] == 2
    assert heard == [("bad", True), ("bad again", False), ("other", True)]


def test_rows_kept_are_bounded_but_all_are_counted() -> None:
    faults = IntegrityFaults()
    for n in range(MAX_ROWS + 10):
        faults.found(CorruptionDetected("bad", "item", 1, str(n).encode(), b""))
    assert len(faults.rows) == MAX_ROWS and faults.damaged == MAX_ROWS + 10


def test_reports_from_several_threads_are_all_counted() -> None:
    faults = IntegrityFaults()

    def report() -> None:
        for _ in range(2_000):
            faults.found(CorruptionDetected("bad", "item", 1, b"p", b"s"))

    threads = [threading.Thread(target=report) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert faults.detections == 8_000 and faults.damaged == 1


def test_sqlite_reads_report_the_damaged_row_with_its_table_and_key(tmp_path: Path) -> None:
    storage = SqliteStorage(str(tmp_path / "db"), durable=False)
    found: list[Located] = []
    storage.integrity.listeners.append(lambda error, new: found.append(error))

    def job(txn):  # type: ignore[no-untyped-def]
        tid = txn.create_table("t", b"{}")
        txn.put(tid, 7, b"pk", b"sk", b'{"a":1}', 7, 1, "local", None)
        return tid

    tid = storage.write_sync(job)
    storage.close()
    with sqlite3.connect(tmp_path / "db") as db:
        db.execute("UPDATE items SET crc=crc+1")
    storage = SqliteStorage(str(tmp_path / "db"), durable=False)
    storage.integrity.listeners.append(lambda error, new: found.append(error))
    try:
        with pytest.raises(CorruptionDetected):
            storage.get_item(tid, 7, b"pk", b"sk")
        with pytest.raises(CorruptionDetected):
            list(storage.scan_items(tid, None, None))
        with pytest.raises(CorruptionDetected):
            storage.write_sync(lambda txn: txn.get(tid, 7, b"pk", b"sk"))
        with pytest.raises(CorruptionDetected):  # reads no keys, yet reports the row's
            storage.scan_page(tid, None, None, 0, 10)
        with pytest.raises(CorruptionDetected):
            storage.scan_page(tid, None, None, 0, 10, sized=False)
        with pytest.raises(CorruptionDetected):  # likewise
            storage.query_page(tid, 7, b"pk", None, None, True, 10)
    finally:
        storage.close()
    assert [(e.kind, e.tid, e.pk, e.sk) for e in found] == [("item", tid, b"pk", b"sk")] * 6
    assert storage.integrity.detections == 6 and storage.integrity.damaged == 1


def test_sqlite_index_pages_report_the_damaged_row_by_its_base_key(tmp_path: Path) -> None:
    storage = SqliteStorage(str(tmp_path / "db"), durable=False)

    def job(txn):  # type: ignore[no-untyped-def]
        tid = txn.create_table("t", b"{}")
        for n in range(5):
            txn.index_put(tid, 1, 9, b"ipk", bytes([n]), b"pk%d" % n, b"", b'{"n":%d}' % n, 7)
        return tid

    tid = storage.write_sync(job)
    storage.close()
    with sqlite3.connect(tmp_path / "db") as db:
        db.execute("UPDATE index_items SET crc=crc+1 WHERE base_pk=?", (b"pk3",))
    storage = SqliteStorage(str(tmp_path / "db"), durable=False)
    found: list[Located] = []
    storage.integrity.listeners.append(lambda error, new: found.append(error))
    try:
        assert list(storage.query_index_page(tid, 1, 9, b"ipk", None, None, True, None, 3)[0]) \
            == [b'{"n":0}', b'{"n":1}', b'{"n":2}']  # the damaged row is not read
        with pytest.raises(CorruptionDetected):
            storage.query_index_page(tid, 1, 9, b"ipk", None, None, True, None, 10)
        with pytest.raises(CorruptionDetected):
            storage.query_index_page(tid, 1, 9, b"ipk", None, None, False, None, 2)
        with pytest.raises(CorruptionDetected):
            storage.scan_index_page(tid, 1, None, None, 0, 100)
        with pytest.raises(CorruptionDetected):  # without the size column too
            storage.scan_index_page(tid, 1, None, None, 0, 100, sized=False)
    finally:
        storage.close()
    assert [(e.kind, e.tid, e.pk, e.sk) for e in found] == [("index item", tid, b"pk3", b"")] * 4
