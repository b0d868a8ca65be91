"""The storage's batch runner on a real database file: where batches run (inline jobs on
the event-loop thread, any other batch on the writer thread), that batches never overlap
and run in submission order, replay after a poisoned job, close() finishing queued
jobs, and a bug in the batch path failing writes instead of hanging them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atoll.errors import ServiceUnavailable
from atoll.storage import SqliteStorage, WriteTxn
from tests.support import in_a_loop


@contextlib.contextmanager
def _started(path: Path) -> Iterator[SqliteStorage]:
    """The test's storage, started on the running loop; closed afterwards."""
    storage = SqliteStorage(str(path / "batches.db"), durable=True)
    storage.start(asyncio.get_running_loop())
    with contextlib.closing(storage):
        yield storage


def _reopened(path: Path) -> contextlib.closing[SqliteStorage]:
    """The same database file opened again, as after a restart."""
    return contextlib.closing(SqliteStorage(str(path / "batches.db")))


def _logging_job(n: int, seen: list[tuple[int, str]]) -> Any:
    def job(txn: WriteTxn) -> int:
        seen.append((n, threading.current_thread().name))
        return txn.log_change(n, b"change %d" % n)
    return job



@in_a_loop
async def test_inline_batches_run_on_the_loop_thread_and_others_on_the_writer(
        tmp_path: Path) -> None:
    loop_thread = threading.current_thread().name
    seen: list[tuple[int, str]] = []
    with _started(tmp_path) as storage:
        inline = [storage.write(_logging_job(n, seen), inline=True) for n in range(5)]
        await asyncio.gather(*inline)
        assert [thread for _, thread in seen] == [loop_thread] * 5
        seen.clear()
        await storage.write(_logging_job(5, seen))
        assert seen == [(5, "atoll-writer")]
        seen.clear()
        # one job that may run long sends its whole batch to the writer thread
        mixed = [storage.write(_logging_job(n, seen), inline=n != 7) for n in range(6, 9)]
        await asyncio.gather(*mixed)
        assert seen == [(6, "atoll-writer"), (7, "atoll-writer"), (8, "atoll-writer")]
        assert storage.changelog_count() == 9


@in_a_loop
async def test_batches_never_overlap_and_jobs_run_in_submission_order(tmp_path: Path) -> None:
    rng = random.Random(7)
    running = threading.Lock()
    order: list[int] = []
    overlaps = []

    def job_for(n: int) -> Any:
        def job(txn: WriteTxn) -> int:
            if not running.acquire(blocking=False):
                overlaps.append(n)
                running.acquire()
            try:
                order.append(n)
                return txn.log_change(n, b"x" * rng.randrange(1, 2000))
            finally:
                running.release()
        return job

    with _started(tmp_path) as storage:
        futures = []
        n = 0
        for _round in range(60):
            for _ in range(rng.randrange(1, 12)):
                futures.append(storage.write(job_for(n), inline=rng.random() < 0.7))
                n += 1
            await asyncio.sleep(rng.choice([0, 0, 0.0005]))
        sequences = await asyncio.wait_for(asyncio.gather(*futures), 30)
        assert overlaps == []
        assert order == list(range(n))
        assert sorted(sequences) == list(range(1, n + 1))  # one changelog record each
        assert storage.changelog_count() == n
        assert storage.batches_committed > 1


@in_a_loop
async def test_an_inline_job_that_fails_after_writing_is_dropped_and_the_rest_commit(
        tmp_path: Path) -> None:
    def poisoned(txn: WriteTxn) -> None:
        txn.log_change(1, b"written, then the job fails")
        raise ValueError("failed after writing")

    seen: list[tuple[int, str]] = []
    with _started(tmp_path) as storage:
        first = storage.write(_logging_job(10, seen), inline=True)
        bad = storage.write(poisoned, inline=True)
        last = storage.write(_logging_job(11, seen), inline=True)
        results = await asyncio.gather(first, bad, last, return_exceptions=True)
        assert isinstance(results[1], ValueError)
        assert results[0] == 1 and results[2] == 2  # the replay reused the sequence
        assert storage.changelog_count() == 2
    with _reopened(tmp_path) as reopened:
        assert reopened.changes_since("local", 0, 10)[0][0] == 1
        assert reopened.changelog_count() == 2


@in_a_loop
async def test_close_commits_jobs_still_queued(tmp_path: Path) -> None:
    seen: list[tuple[int, str]] = []
    with _started(tmp_path) as storage:
        futures = [storage.write(_logging_job(n, seen), inline=n % 2 == 0) for n in range(20)]
        storage.close()  # before any batch started
        assert await asyncio.wait_for(asyncio.gather(*futures), 5) == list(range(1, 21))
        with pytest.raises(ServiceUnavailable):
            storage.write(_logging_job(99, seen))
    with _reopened(tmp_path) as reopened:
        assert reopened.changelog_count() == 20


@in_a_loop
async def test_a_bug_in_the_batch_path_fails_writes_instead_of_hanging(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    seen: list[tuple[int, str]] = []
    with _started(tmp_path) as storage:
        # a bug: table statistics that are not a pair, found when the batch flushes them
        storage._runner.txn._stats[1] = None  # type: ignore[assignment]
        with caplog.at_level(logging.CRITICAL):
            with pytest.raises(ServiceUnavailable, match="storage writer failed"):
                await asyncio.wait_for(storage.write(_logging_job(1, seen), inline=True), 5)
        assert "refusing writes" in caplog.text
        with pytest.raises(ServiceUnavailable):
            storage.write(_logging_job(2, seen), inline=True)


@in_a_loop
async def test_a_storage_fault_before_commit_fails_that_batch_only(tmp_path: Path) -> None:
    seen: list[tuple[int, str]] = []
    with _started(tmp_path) as storage:
        # SQLite fails the statement that flushes the table statistics, after the jobs ran
        storage._writer.execute("ALTER TABLE tables RENAME TO tables_away")
        storage._runner.txn._stats[1] = [1, 10]
        failed = [storage.write(_logging_job(n, seen), inline=True) for n in range(3)]
        results = await asyncio.wait_for(asyncio.gather(*failed, return_exceptions=True), 5)
        assert all(isinstance(r, ServiceUnavailable) and "durable" in str(r) for r in results)
        assert storage.changelog_count() == 0
        storage._writer.execute("ALTER TABLE tables_away RENAME TO tables")
        # nothing of the failed batch remains: the next one starts from sequence 1
        assert await asyncio.wait_for(storage.write(_logging_job(3, seen), inline=True), 5) == 1
        assert storage.changelog_count() == 1
