"""Pipelined durability on a real database file, with the syncer's fdatasync held back or
failed on purpose: a write is answered only after an fdatasync that covers it, one
fdatasync covers every batch committed before it, an answer that read an undurable
commit (through the real API) waits for it, and a failed fdatasync fails what was not
answered and refuses further writes."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from atoll.api.dispatch import Api
from atoll.engine import Engine
from atoll.errors import ServiceUnavailable
from atoll.storage import SqliteStorage, WriteTxn
from tests.support import in_a_loop

TIMEOUT_S = 10


class HeldSync:
    """Wraps the real fdatasync: each call waits until released, and is counted."""

    def __init__(self, real: Callable[[int], None]) -> None:
        self.real = real
        self.released = threading.Event()
        self.calls = 0
        self.entered = threading.Semaphore(0)

    def __call__(self, fd: int) -> None:
        self.calls += 1
        self.entered.release()
        if not self.released.wait(TIMEOUT_S):
            raise AssertionError("the test never released the fdatasync")
        self.real(fd)

    async def wait_entered(self) -> None:
        """Until an fdatasync call is waiting to be released."""
        loop = asyncio.get_running_loop()
        got = await loop.run_in_executor(None, self.entered.acquire, True, TIMEOUT_S)
        assert got, "no fdatasync started"


@contextlib.asynccontextmanager
async def _storage(path: Path) -> AsyncIterator[SqliteStorage]:
    storage = SqliteStorage(str(path / "durability.db"), durable=True)
    storage.start(asyncio.get_running_loop())
    try:
        yield storage
    finally:
        storage.close()


def _log_job(n: int) -> Any:
    def job(txn: WriteTxn) -> int:
        return txn.log_change(n, b"change %d" % n)
    return job


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(TIMEOUT_S * 100):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


@in_a_loop
async def test_a_write_is_answered_only_after_an_fdatasync_that_covers_it(
        tmp_path: Path) -> None:
    async with _storage(tmp_path) as storage:
        held = HeldSync(storage.durability.fdatasync)
        storage.durability.fdatasync = held
        first = storage.write(_log_job(1), inline=True)
        await held.wait_entered()  # committed, and its fdatasync is under way
        assert storage.batches_committed == 1
        # more batches commit while that fdatasync runs; none of them is answered
        later = []
        for n in range(2, 5):
            later.append(storage.write(_log_job(n), inline=True))
            await _until(lambda n=n: storage.batches_committed == n)
        await asyncio.sleep(0.05)
        assert not first.done() and not any(f.done() for f in later)
        # committed means readable: an answer built from this read must wait
        assert [seq for seq, _hlc, _body in storage.changes_since("local", 0, 10)] == [1, 2, 3, 4]
        waiter = storage.settle()
        assert waiter is not None and not waiter.done()
        held.released.set()
        assert await asyncio.wait_for(asyncio.gather(first, *later), TIMEOUT_S) == [1, 2, 3, 4]
        await asyncio.wait_for(waiter, TIMEOUT_S)
        # the second fdatasync covered the three batches that queued behind the first
        assert held.calls == 2
        assert storage.settle() is None


def _request(op: str, **fields: Any) -> tuple[str, bytes]:
    return f"DynamoDB_20120810.{op}", orjson.dumps(fields)


@in_a_loop
async def test_an_answer_that_read_an_undurable_write_waits_until_it_is_durable(
        tmp_path: Path) -> None:
    async with _storage(tmp_path) as storage:
        api = Api(Engine(storage))
        status, _ = await api.handle(*_request(
            "CreateTable", TableName="items", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}]))
        assert status == 200
        held = HeldSync(storage.durability.fdatasync)
        storage.durability.fdatasync = held
        put = asyncio.ensure_future(api.handle(*_request(
            "PutItem", TableName="items", Item={"pk": {"S": "k"}, "v": {"S": "new"}})))
        await held.wait_entered()
        get = asyncio.ensure_future(api.handle(*_request(
            "GetItem", TableName="items", Key={"pk": {"S": "k"}})))
        await asyncio.sleep(0.1)
        # the GetItem has read the committed item, but a crash now could still undo it
        assert not put.done() and not get.done()
        held.released.set()
        assert (await asyncio.wait_for(put, TIMEOUT_S))[0] == 200
        status, body = await asyncio.wait_for(get, TIMEOUT_S)
        assert status == 200
        assert orjson.loads(body) == {"Item": {"pk": {"S": "k"}, "v": {"S": "new"}}}
        # nothing undurable left: a read is answered without waiting
        status, body = await api.handle(*_request("GetItem", TableName="items",
                                                  Key={"pk": {"S": "other"}}))
        assert (status, orjson.loads(body)) == (200, {})
        assert storage.settle() is None


@in_a_loop
async def test_a_failed_fdatasync_fails_unanswered_writes_and_refuses_new_ones(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with _storage(tmp_path) as storage:
        assert await asyncio.wait_for(storage.write(_log_job(1), inline=True), TIMEOUT_S) == 1

        def failing(fd: int) -> None:
            raise OSError(errno.EIO, "Input/output error")

        storage.durability.fdatasync = failing
        with caplog.at_level(logging.CRITICAL):
            with pytest.raises(ServiceUnavailable, match="could not be made durable"):
                await asyncio.wait_for(storage.write(_log_job(2), inline=True), TIMEOUT_S)
        assert "fdatasync of the WAL failed" in caplog.text
        # the commit is readable, but may not survive a crash: no answer may carry it
        assert len(storage.changes_since("local", 0, 10)) == 2
        waiter = storage.settle()
        assert waiter is not None
        with pytest.raises(ServiceUnavailable, match="could not be made durable"):
            await asyncio.wait_for(waiter, TIMEOUT_S)
        with pytest.raises(ServiceUnavailable):
            storage.write(_log_job(3), inline=True)


@in_a_loop
async def test_an_answer_that_stops_waiting_leaves_the_others_waiting_for_the_same_commits(
        tmp_path: Path) -> None:
    # A verify session that ended cancels its local request while that request waits to
    # settle; a pull loop waiting for the same commits must still get its turn (it was
    # ended by the same CancelledError, silently, when both awaited one shared future).
    async with _storage(tmp_path) as storage:
        held = HeldSync(storage.durability.fdatasync)
        storage.durability.fdatasync = held
        write = storage.write(_log_job(1), inline=True)
        await held.wait_entered()
        assert len(storage.changes_since("local", 0, 10)) == 1  # read: not durable yet
        leaving = asyncio.ensure_future(storage.settled())
        staying = [asyncio.ensure_future(storage.settled()) for _ in range(2)]
        direct = storage.settle()  # as the API awaits it
        assert direct is not None
        await asyncio.sleep(0.05)
        assert not any(task.done() for task in [leaving, *staying]) and not direct.done()
        leaving.cancel()
        await asyncio.sleep(0.05)
        assert leaving.cancelled()
        assert not any(task.done() for task in staying) and not direct.done()
        held.released.set()
        assert await asyncio.wait_for(write, TIMEOUT_S) == 1
        await asyncio.wait_for(asyncio.gather(*staying, direct), TIMEOUT_S)
        assert storage.settle() is None


@in_a_loop
async def test_a_read_of_an_undurable_write_is_not_answered_at_once(tmp_path: Path) -> None:
    """`Api.answer` (the HTTP server's entry) gives a read's answer as a value only when
    nothing it read can still be undone; else a coroutine that answers once it cannot."""
    async with _storage(tmp_path) as storage:
        api = Api(Engine(storage))
        status, _ = await api.handle(*_request(
            "CreateTable", TableName="items", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}]))
        assert status == 200
        held = HeldSync(storage.durability.fdatasync)
        storage.durability.fdatasync = held
        put = asyncio.ensure_future(api.handle(*_request(
            "PutItem", TableName="items", Item={"pk": {"S": "k"}, "v": {"S": "new"}})))
        await held.wait_entered()
        later = api.answer(*_request("GetItem", TableName="items", Key={"pk": {"S": "k"}}))
        assert asyncio.iscoroutine(later)
        get = asyncio.ensure_future(later)
        await asyncio.sleep(0.1)
        assert not put.done() and not get.done()
        held.released.set()
        assert (await asyncio.wait_for(put, TIMEOUT_S))[0] == 200
        status, body = await asyncio.wait_for(get, TIMEOUT_S)
        assert (status, orjson.loads(body)) == (200, {"Item": {"pk": {"S": "k"}, "v": {"S": "new"}}})
        # nothing undurable left: answered at once
        now = api.answer(*_request("GetItem", TableName="items", Key={"pk": {"S": "k"}}))
        assert now == (200, body)
