"""The `Storage` contract for streams (the `stream_*` methods), against every backend of
tests/conformance/test_storage.py (BACKENDS: a backend added there is checked here too).

What must hold: positions increase in commit order across streams, are never reused
(after a rolled-back job, after trims, after a stream was dropped, after a restart);
shards are ranges of positions with one open at a time; trimming removes a prefix and
raises the trim point; dropping and forgetting are conditional on the times given.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from atoll.storage import WriteTxn
from tests.conformance.test_storage import BACKENDS, Backend, Failed
from tests.support import in_a_loop, started, write

HOUR_MS = 3600 * 1000


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Backend:
    return BACKENDS[request.param]


def open_stream(name: str, label: str = "2026-01-01T00:00:00.000", now_ms: int = 1000
                ) -> Callable[[WriteTxn], int]:
    return lambda txn: txn.stream_open(name, label, "KEYS_ONLY", b'[{"k": 1}]', now_ms)


def append(sid: int, *created_ms: int) -> Callable[[WriteTxn], list[int]]:
    return lambda txn: [txn.stream_append(sid, ms, 0, "r1", b'{"n": %d}' % ms)
                        for ms in created_ms]


@in_a_loop
async def test_a_new_stream_has_one_open_shard_from_the_next_position(
        backend: Backend, tmp_path: Path) -> None:
    async with started(backend.open(tmp_path, "r1")) as storage:
        first = await write(storage, open_stream("t1"))
        positions = await write(storage, append(first, 10, 11))
        second = await write(storage, open_stream("t2", now_ms=2000))
        assert second != first
        assert storage.streams() == [
            (first, "t1", "2026-01-01T00:00:00.000", "KEYS_ONLY", b'[{"k": 1}]', 1000, None, 0),
            (second, "t2", "2026-01-01T00:00:00.000", "KEYS_ONLY", b'[{"k": 1}]', 2000, None, 0)]
        assert storage.stream_shards(first) == [(1, positions[0], None, 1000, None)]
        assert storage.stream_shards(second) == [(1, positions[1] + 1, None, 2000, None)]
        assert storage.stream_shards(999) == []


@in_a_loop
async def test_positions_increase_across_streams_in_commit_order(
        backend: Backend, tmp_path: Path) -> None:
    async with started(backend.open(tmp_path, "r1")) as storage:
        a = await write(storage, open_stream("a"))
        b = await write(storage, open_stream("b"))
        taken = []
        for sid in (a, b, a, a, b):
            taken += await write(storage, append(sid, 5))
        assert taken == sorted(taken) and len(set(taken)) == len(taken)
        assert [r[0] for r in storage.stream_records(a, 0, 100)] == [taken[0], taken[2], taken[3]]
        assert [r[0] for r in storage.stream_records(b, 0, 100)] == [taken[1], taken[4]]
        assert storage.stream_records(a, taken[2], 1) == [(taken[2], 5, 0, "r1", b'{"n": 5}')]
        assert storage.stream_last_pos(a) == taken[3]
        assert storage.stream_last_pos(12345) == 0


@in_a_loop
async def test_records_of_one_batch_in_every_number_read_back_whole_and_in_order(
        backend: Backend, tmp_path: Path) -> None:
    """Counts around the SQLite flush's rows per statement (16): each record once, with
    its own time, kind, origin and bytes, in position order."""
    async with started(backend.open(tmp_path, "r1")) as storage:
        sid = await write(storage, open_stream("t"))
        counts = (1, 15, 16, 17, 33, 40)
        taken: list[int] = []
        for count in counts:
            taken += await write(storage, lambda txn, count=count: [
                txn.stream_append(sid, 100 + n, n % 3, f"r{n % 2}", b"x" * n + b"%d" % n)
                for n in range(count)])
        rows = storage.stream_records(sid, 0, 1000)
        assert [row[0] for row in rows] == taken == sorted(taken)
        expected = [(100 + n, n % 3, f"r{n % 2}", b"x" * n + b"%d" % n)
                    for count in counts for n in range(count)]
        assert [row[1:] for row in rows] == expected


@in_a_loop
async def test_a_rolled_back_job_leaves_no_record_and_positions_stay_increasing(
        backend: Backend, tmp_path: Path) -> None:
    async with started(backend.open(tmp_path, "r1")) as storage:
        sid = await write(storage, open_stream("t"))
        before = await write(storage, append(sid, 1))

        def fails(txn: WriteTxn) -> None:
            txn.stream_append(sid, 2, 0, "r1", b"{}")
            raise Failed()

        with pytest.raises(Failed):
            await write(storage, fails)
        after = await write(storage, append(sid, 3))
        assert after[0] > before[0]
        assert [r[0] for r in storage.stream_records(sid, 0, 10)] == before + after


@in_a_loop
async def test_closing_ends_the_open_shard_and_reopening_adds_its_child(
        backend: Backend, tmp_path: Path) -> None:
    async with started(backend.open(tmp_path, "r1")) as storage:
        sid = await write(storage, open_stream("t"))
        taken = await write(storage, append(sid, 1, 2))
        await write(storage, lambda txn: txn.stream_close(sid, 5000))
        assert storage.streams()[0][6] == 5000
        assert storage.stream_shards(sid) == [(1, taken[0], taken[1], 1000, 5000)]
        again = await write(storage, open_stream("t", now_ms=900))
        assert again == sid and storage.streams()[0][6] is None
        # the child opens at the next position, at least 1 ms after its parent
        assert storage.stream_shards(sid)[1] == (2, taken[1] + 1, None, 1001, None)
        # opening an enabled stream again adds nothing
        await write(storage, open_stream("t", now_ms=7000))
        assert len(storage.stream_shards(sid)) == 2


@in_a_loop
async def test_a_shard_rolls_only_when_old_enough_and_holding_a_record(
        backend: Backend, tmp_path: Path) -> None:
    async with started(backend.open(tmp_path, "r1")) as storage:
        sid = await write(storage, open_stream("t", now_ms=1000))

        def roll(now_ms: int, before_ms: int) -> Callable[[WriteTxn], bool]:
            return lambda txn: txn.stream_roll(sid, now_ms, before_ms)

        assert not await write(storage, roll(9000, 5000))  # old enough, but empty
        taken = await write(storage, append(sid, 2000))
        assert not await write(storage, roll(1500, 1000))  # not old enough
        assert await write(storage, roll(9000, 5000))
        assert storage.stream_shards(sid) == [(1, taken[0], taken[0], 1000, 9000),
                                              (2, taken[0] + 1, None, 9000, None)]
        assert not await write(storage, roll(20000, 15000))  # the child is empty


@in_a_loop
async def test_trimming_removes_the_oldest_records_and_raises_the_trim_point(
        backend: Backend, tmp_path: Path) -> None:
    async with started(backend.open(tmp_path, "r1")) as storage:
        sid = await write(storage, open_stream("t"))
        taken = await write(storage, append(sid, 10, 20, 30, 15, 40))
        # a prefix only: the record at 15 waits behind the one at 30
        assert await write(storage, lambda txn: txn.stream_trim(sid, 25, 100)) == 2
        assert storage.streams()[0][7] == taken[1]
        assert [r[0] for r in storage.stream_records(sid, 0, 10)] == taken[2:]
        assert await write(storage, lambda txn: txn.stream_trim(sid, 35, 1)) == 1
        assert await write(storage, lambda txn: txn.stream_trim(sid, 35, 10)) == 1
        assert storage.streams()[0][7] == taken[3]
        assert [r[0] for r in storage.stream_records(sid, 0, 10)] == taken[4:]
        assert await write(storage, lambda txn: txn.stream_trim(sid, 1000, 10)) == 1
        assert storage.stream_records(sid, 0, 10) == []
        assert storage.stream_last_pos(sid) == taken[4]  # the trim point, once empty


@in_a_loop
async def test_closed_shards_are_forgotten_with_their_records(backend: Backend,
                                                               tmp_path: Path) -> None:
    async with started(backend.open(tmp_path, "r1")) as storage:
        sid = await write(storage, open_stream("t", now_ms=0))
        first = await write(storage, append(sid, 1))
        await write(storage, lambda txn: txn.stream_roll(sid, HOUR_MS, HOUR_MS))
        second = await write(storage, append(sid, HOUR_MS + 1))
        assert await write(storage, lambda txn: txn.stream_forget_shards(sid, HOUR_MS)) == 0
        assert await write(storage, lambda txn: txn.stream_forget_shards(sid, HOUR_MS + 1)) == 1
        assert [s[0] for s in storage.stream_shards(sid)] == [2]
        assert storage.streams()[0][7] == first[0]
        assert [r[0] for r in storage.stream_records(sid, 0, 10)] == second


@in_a_loop
async def test_a_stream_is_dropped_only_once_disabled_long_enough(
        backend: Backend, tmp_path: Path) -> None:
    async with started(backend.open(tmp_path, "r1")) as storage:
        sid = await write(storage, open_stream("t"))
        await write(storage, append(sid, 1))

        def drop(before_ms: int) -> Callable[[WriteTxn], bool]:
            return lambda txn: txn.stream_drop(sid, before_ms)

        assert not await write(storage, drop(10**12))  # enabled
        await write(storage, lambda txn: txn.stream_close(sid, 5000))
        assert not await write(storage, drop(5000))
        assert await write(storage, drop(5001))
        assert storage.streams() == [] and storage.stream_shards(sid) == []
        assert storage.stream_records(sid, 0, 10) == []
        again = await write(storage, open_stream("t"))
        assert again != sid  # ids are never reused


async def _positions_after(storage: Any, steps: Callable[[Any], Any]) -> tuple[int, int]:
    sid = await write(storage, open_stream("t"))
    taken = await write(storage, append(sid, 1, 2))
    await steps(sid)
    return sid, taken[-1]


@in_a_loop
async def test_positions_are_never_reused_after_trims_drops_and_restarts(
        backend: Backend, tmp_path: Path) -> None:
    storage = backend.open(tmp_path, "r1")
    async with started(storage):
        async def everything_gone(sid: int) -> None:
            await write(storage, lambda txn: txn.stream_trim(sid, 10, 10))
            await write(storage, lambda txn: txn.stream_close(sid, 5))
            await write(storage, lambda txn: txn.stream_drop(sid, 6))

        _sid, highest = await _positions_after(storage, everything_gone)
        assert storage.streams() == []
    reopened = backend.reopen(storage, tmp_path, "r1")
    async with started(reopened):
        sid = await write(reopened, open_stream("u"))
        taken = await write(reopened, append(sid, 1))
        assert taken[0] > highest
        assert reopened.stream_shards(sid)[0][1] == taken[0]


@in_a_loop
async def test_a_batch_keeps_the_records_of_its_jobs_that_succeed(
        backend: Backend, tmp_path: Path) -> None:
    """Jobs queued together share a batch; one that fails after appending is rolled back
    alone and the others' records stay, in submission order."""
    async with started(backend.open(tmp_path, "r1")) as storage:
        sid = await write(storage, open_stream("t"))

        def fails(txn: WriteTxn) -> None:
            txn.stream_append(sid, 2, 0, "r1", b"{}")
            raise Failed()

        futures = [storage.write(append(sid, 1, 1)), storage.write(fails),
                   storage.write(append(sid, 3))]
        first, failed, last = await asyncio.gather(*futures, return_exceptions=True)
        assert isinstance(failed, Failed)
        assert isinstance(first, list) and isinstance(last, list)
        assert first + last == sorted(first + last)
        assert [(r[0], r[1]) for r in storage.stream_records(sid, 0, 10)] == [
            (first[0], 1), (first[1], 1), (last[0], 3)]


@in_a_loop
async def test_a_transaction_sees_the_records_it_appended(
        backend: Backend, tmp_path: Path) -> None:
    """Rolling and trimming in the transaction that appended see its records."""
    async with started(backend.open(tmp_path, "r1")) as storage:
        sid = await write(storage, open_stream("t", now_ms=1000))

        def append_then_roll(txn: WriteTxn) -> bool:
            txn.stream_append(sid, 2000, 0, "r1", b"{}")
            return txn.stream_roll(sid, 9000, 5000)

        assert await write(storage, append_then_roll)

        def append_then_trim(txn: WriteTxn) -> int:
            txn.stream_append(sid, 9500, 0, "r1", b"{}")
            return txn.stream_trim(sid, 10_000, 10)

        assert await write(storage, append_then_trim) == 2
        assert storage.stream_records(sid, 0, 10) == []
