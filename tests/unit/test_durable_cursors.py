"""What a Pull acknowledges (node/replicator.py `DurableCursors`): the newest cursors
whose read is known durable, without waiting for the read in hand; the region's own
cursor as committed."""

from __future__ import annotations

import asyncio

from atoll.errors import ServiceUnavailable
from atoll.node.replicator import DurableCursors
from atoll.replication.cursors import Cursor
from tests.support import in_a_loop


def _vector(a: int, own: int) -> dict[str, Cursor]:
    return {"a": Cursor(a, a * 10), "b": Cursor(own, own * 10)}


@in_a_loop
async def test_a_read_still_settling_is_acknowledged_only_once_durable() -> None:
    durable = DurableCursors("b")
    loop = asyncio.get_running_loop()
    first: asyncio.Future[None] = loop.create_future()
    assert durable.offer(_vector(1, 1), first) is None  # nothing known durable: wait
    first.set_result(None)
    await asyncio.sleep(0)  # the settle future's callback
    assert durable.offer(_vector(2, 3), loop.create_future()) == _vector(1, 3)
    assert durable.offer(_vector(4, 5), None) == _vector(4, 5)  # durable as read


@in_a_loop
async def test_an_older_read_settling_late_does_not_replace_a_newer_one() -> None:
    durable = DurableCursors("b")
    loop = asyncio.get_running_loop()
    older: asyncio.Future[None] = loop.create_future()
    durable.offer(_vector(1, 1), older)
    durable.offer(_vector(2, 2), None)
    older.set_result(None)
    await asyncio.sleep(0)
    assert durable.cursors == _vector(2, 2)


@in_a_loop
async def test_a_read_that_never_becomes_durable_is_never_acknowledged() -> None:
    durable = DurableCursors("b")
    loop = asyncio.get_running_loop()
    durable.offer(_vector(1, 1), None)
    lost: asyncio.Future[None] = loop.create_future()
    cancelled: asyncio.Future[None] = loop.create_future()
    durable.offer(_vector(2, 2), lost)
    durable.offer(_vector(3, 3), cancelled)
    lost.set_exception(ServiceUnavailable("The data could not be made durable"))
    cancelled.cancel()
    await asyncio.sleep(0)
    assert durable.cursors == _vector(1, 1)


def test_the_own_cursor_is_the_committed_one_even_before_any_write_was_durable() -> None:
    durable = DurableCursors("b")
    durable.offer({"a": Cursor(1, 10)}, None)  # no write of its own yet
    loop = asyncio.new_event_loop()
    try:
        acked = durable.offer({"a": Cursor(2, 20), "b": Cursor(1, 15)}, loop.create_future())
    finally:
        loop.close()
    # a peer pulled b/1 once it was durable here: an own cursor of 0 would say
    # "lost its own data" to it
    assert acked == {"a": Cursor(1, 10), "b": Cursor(1, 15)}
