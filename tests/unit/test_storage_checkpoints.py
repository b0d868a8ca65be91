"""WAL checkpoints under steady writes, on a real database file: the checkpointer asks the
writer thread for a rewind between batches, so the WAL starts over again and again
without any COMMIT running a checkpoint itself, and every acknowledged write is there
after a reopen."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from atoll.storage import SqliteStorage, WriteTxn
from atoll.storage.sqlite import checkpoints, connection
from tests.support import assert_database_intact, in_a_loop

WRITES = 3000
IN_FLIGHT = 16
BODY = b"x" * 1000
REWIND_FRAMES = 64
PAGE = 4096
WAL_FRAME = PAGE + 24
WAL_HEADER = 32


def _log_job(n: int) -> Any:
    def job(txn: WriteTxn) -> int:
        return txn.log_change(n, BODY + b"%d" % n)
    return job


def _wal_salt(path: str) -> bytes:
    """The WAL header's salts: SQLite changes them each time it starts the WAL over."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, 8, 16)
    finally:
        os.close(fd)


@in_a_loop
async def test_steady_writes_rewind_the_wal_and_lose_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkpoints, "REWIND_FRAMES", REWIND_FRAMES)
    monkeypatch.setattr(checkpoints, "CHECKPOINT_INTERVAL_S", 0.005)
    # a COMMIT never checkpoints: only rewinds can bound the WAL here
    monkeypatch.setattr(connection, "BACKSTOP_CHECKPOINT_PAGES", 1_000_000)
    path = str(tmp_path / "checkpoints.db")
    storage = SqliteStorage(path, durable=True)
    storage.start(asyncio.get_running_loop())
    salts: set[bytes] = set()
    largest_wal = 0
    try:
        in_flight: set[asyncio.Future[Any]] = set()
        for n in range(WRITES):
            in_flight.add(storage.write(_log_job(n), inline=True))
            if len(in_flight) >= IN_FLIGHT:  # the writer never runs out of work
                done, in_flight = await asyncio.wait(in_flight,
                                                     return_when=asyncio.FIRST_COMPLETED)
                for future in done:
                    future.result()
                salts.add(_wal_salt(path + "-wal"))
                largest_wal = max(largest_wal, os.path.getsize(path + "-wal"))
        for future in await asyncio.gather(*in_flight, return_exceptions=True):
            assert not isinstance(future, BaseException), future
        wal = storage.wal_summary()
    finally:
        storage.close()

    # ~1,000 WAL frames of changes went through a WAL that started over several times
    # and never held much more than the rewind threshold.
    assert len(salts) >= 3, f"the WAL started over {len(salts) - 1} times"
    assert largest_wal <= WAL_HEADER + 8 * REWIND_FRAMES * WAL_FRAME, largest_wal
    # the status counts the writer's pauses before them (SQLite also starts the WAL over
    # by itself when a checkpoint happens to catch up between two batches)
    assert wal["rewind_frames"] == REWIND_FRAMES
    assert 1 <= wal["rewinds"] <= WRITES, wal
    pauses = wal["rewind_pause_ms"]
    assert 0 < pauses["p50"] <= pauses["p90"] <= pauses["p99"] <= pauses["max"], pauses
    check = sqlite3.connect(path)
    try:
        assert check.execute("SELECT COUNT(*) FROM changelog").fetchone()[0] == WRITES
    finally:
        check.close()
    assert_database_intact(Path(path))
