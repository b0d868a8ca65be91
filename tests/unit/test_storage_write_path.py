"""Stage times of write batches: the pure summary (percentiles, window) and the stamps a
real storage takes on each path (inline durable, writer thread, in memory)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

from atoll.storage import SqliteStorage, WriteTxn
from atoll.storage.writepath import STAGES, BatchTimes, WritePath
from tests.support import in_a_loop

MS = 1_000_000  # ns


def _times(jobs: int, at: int, *, wait: int, run: int, hand: int, commit: int, sync: int,
           answer: int) -> tuple[BatchTimes, int]:
    """A batch queued at `at` whose stages took the given ns; returns it and its end."""
    t = BatchTimes(jobs, at, at + wait)
    t.ran = t.handed = t.started + run
    t.taken = t.handed + hand
    t.commit_from = t.taken
    t.committed = t.commit_from + commit
    t.synced = t.committed + sync
    return t, t.synced + answer


def test_summary_gives_each_stage_and_the_total_in_ms() -> None:
    path = WritePath()
    at = 10_000 * MS
    for n in range(1, 101):  # stage k of batch n takes n * k ms/10
        t, end = _times(n, at, wait=n * MS // 10, run=2 * n * MS // 10, hand=3 * n * MS // 10,
                        commit=4 * n * MS // 10, sync=5 * n * MS // 10, answer=6 * n * MS // 10)
        path.answered(t, end)
    got = path.summary(window_s=1000, at=at + 10**9)
    assert got["batches"] == 100 and got["batches_total"] == 100
    assert got["writes_per_batch"] == {"p50": 50, "p90": 90, "p99": 99}
    stages = got["stages_ms"]
    assert set(stages) == {name for name, _, _ in STAGES}
    assert stages["wait"] == {"p50": 5.0, "p90": 9.0, "p99": 9.9}
    assert stages["run"]["p50"] == 10.0 and stages["to_writer"]["p50"] == 15.0
    assert stages["commit"]["p50"] == 20.0 and stages["fsync"]["p50"] == 25.0
    assert stages["answer"]["p99"] == 59.4
    assert stages["total"]["p50"] == 105.0  # 50 * (1+2+...+6) / 10


def test_summary_counts_only_the_window_and_skips_stages_never_reached() -> None:
    path = WritePath()
    old, old_end = _times(1, 0, wait=MS, run=MS, hand=MS, commit=MS, sync=MS, answer=MS)
    path.answered(old, old_end)
    fresh = BatchTimes(3, 10_000 * MS, 10_000 * MS + 2 * MS)  # in memory: no hand-over, no fsync
    fresh.ran = fresh.started + MS
    fresh.commit_from, fresh.committed = fresh.ran, fresh.ran + MS
    path.answered(fresh, fresh.committed + MS)
    got = path.summary(window_s=2, at=10_001 * MS)
    assert got["batches"] == 1 and got["batches_total"] == 2
    assert set(got["stages_ms"]) == {"wait", "run", "commit", "total"}
    assert got["stages_ms"]["total"]["p50"] == 5.0
    empty = path.summary(window_s=2, at=10**6 * MS)
    assert empty["batches"] == 0 and empty["stages_ms"] == {} and empty["writes_per_batch"] == {}


def _job(n: int) -> Any:
    def job(txn: WriteTxn) -> int:
        return txn.log_change(n, b"change %d" % n)
    return job


@contextlib.contextmanager
def _storage(path: Path, durable: bool) -> Any:
    storage = SqliteStorage(str(path / "write-path.db"), durable=durable)
    storage.start(asyncio.get_running_loop())
    with contextlib.closing(storage):
        yield storage


@in_a_loop
async def test_a_durable_storage_times_every_stage_of_its_batches(tmp_path: Path) -> None:
    with _storage(tmp_path, durable=True) as storage:
        filed: list[BatchTimes] = []
        file = storage.write_path.answered
        storage.write_path.answered = lambda times, at: (filed.append(times), file(times, at))
        before = time.perf_counter_ns()
        await asyncio.gather(*(storage.write(_job(n), inline=True) for n in range(20)))
        await storage.write(_job(20))  # a batch run whole on the writer thread
        got = storage.write_path.summary()
        assert got["batches_total"] == storage.batches_committed >= 2
        assert got["batches"] == got["batches_total"]
        assert sum(t.jobs for t in filed) == 21
        inline, whole = filed[0], filed[-1]
        # inline: run on the loop, then handed over; the other: handed over, run there
        assert inline.run_from == inline.started and inline.handed == inline.ran
        assert whole.handed == whole.started and whole.run_from == whole.taken
        for times in (inline, whole):
            handed = [times.queued, times.started, times.handed, times.taken,
                      times.commit_from, times.committed, times.synced, times.answered]
            ran = [times.started, times.run_from, times.ran, times.commit_from]
            assert before <= times.queued and handed == sorted(handed) and ran == sorted(ran)
        assert set(got["stages_ms"]) == {name for name, _, _ in STAGES}
        assert all(0 <= s["p50"] <= s["p90"] <= s["p99"] for s in got["stages_ms"].values())


@in_a_loop
async def test_an_in_memory_storage_has_no_fsync_stage(tmp_path: Path) -> None:
    with _storage(tmp_path, durable=False) as storage:
        await asyncio.gather(*(storage.write(_job(n), inline=True) for n in range(5)))
        got = storage.write_path.summary()
        assert got["batches_total"] >= 1
        assert "fsync" not in got["stages_ms"] and "to_writer" not in got["stages_ms"]
        assert {"wait", "run", "commit", "total"} <= set(got["stages_ms"])
