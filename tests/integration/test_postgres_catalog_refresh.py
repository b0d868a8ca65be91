"""A node's catalog refresh (node/shared_region.py) never undoes its own DDL in flight.

When another node changes a definition, a node reloads its request view from storage.
If that reload reads storage while this node's CreateTable or DeleteTable has run its
job but has not returned, storage and the request view disagree about that one table;
the refresh must leave it to the DDL, or the new table vanishes (requests answer
"Table not found" right after CreateTable) or the dropped one comes back.

Deterministic: the refresh reads rows taken before the DDL committed (a PostgresStorage
whose `load_tables` answers them), and runs while the event loop is held after the DDL's
job ran on the writer thread, so the DDL cannot have returned yet.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from atoll.engine import Engine
from atoll.engine.tables import create_table, delete_table
from atoll.node.shared_region import SharedRegion
from atoll.storage.postgres import PostgresStorage
from tests.pg import pg_dsn, pg_server  # noqa: F401  (fixtures)
from tests.support import in_a_loop

TABLE = "refreshed"
CREATE = {"TableName": TABLE, "BillingMode": "PAY_PER_REQUEST",
          "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
          "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}]}
JOB_RAN_TIMEOUT_S = 10.0


class StaleReads(PostgresStorage):
    """Answers `load_tables` with the rows in `stale` while it is set."""

    stale: list[tuple[str, int, bytes]] | None = None

    def load_tables(self) -> list[tuple[str, int, bytes]]:
        return self.stale if self.stale is not None else super().load_tables()


class NodeParts:
    """What SharedRegion reads of a node."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.replicator: Any = None
        self.background: Any = None


def hold_loop_until(done: Any) -> None:
    """Block the event loop (so no coroutine resumes) until the writer thread did `done`."""
    deadline = time.monotonic() + JOB_RAN_TIMEOUT_S
    while not done() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert done(), "the DDL's job did not run"


async def run_with_stale_refresh(dsn: str, drop: bool) -> Engine:
    storage = StaleReads(dsn, region="local", node="n1")
    engine = Engine(storage)
    region = SharedRegion(NodeParts(engine), storage)
    storage.start(asyncio.get_running_loop())
    try:
        if drop:
            await create_table(engine.context, dict(CREATE))
            tid = engine.catalog.table(TABLE).tid
        storage.stale = storage.load_tables()  # as storage was before the DDL committed
        if drop:
            ddl = asyncio.create_task(delete_table(engine.context, {"TableName": TABLE}))
            await asyncio.sleep(0)  # the delete queues its job
            hold_loop_until(lambda: not engine.catalog.is_live(tid))
        else:
            ddl = asyncio.create_task(create_table(engine.context, dict(CREATE)))
            await asyncio.sleep(0)  # the create reserves the name and queues its job
            hold_loop_until(lambda: TABLE in engine.catalog.names())
        region._refresh_requests()
        await ddl
        storage.stale = None
        await region.stop()
    finally:
        storage.close()
    return engine


@in_a_loop
async def test_a_refresh_during_create_table_does_not_drop_the_new_table(
        pg_dsn: str) -> None:  # noqa: F811
    engine = await run_with_stale_refresh(pg_dsn, drop=False)
    assert engine.catalog.table(TABLE).tid > 0
    assert engine.catalog.names() == [TABLE]


@in_a_loop
async def test_a_refresh_during_delete_table_does_not_resurrect_the_table(
        pg_dsn: str) -> None:  # noqa: F811
    engine = await run_with_stale_refresh(pg_dsn, drop=True)
    assert engine.catalog.get(TABLE) is None
    assert engine.catalog.names() == []


@in_a_loop
async def test_a_refresh_that_skipped_a_name_in_flight_catches_up_after_the_ddl(
        pg_dsn: str) -> None:  # noqa: F811
    """A DDL that fails publishes nothing: another node's change to its name, which the
    refresh skipped meanwhile, still reaches the request view (the refresh runs again)."""
    storage = StaleReads(pg_dsn, region="local", node="n1")
    engine = Engine(storage)
    region = SharedRegion(NodeParts(engine), storage)
    storage.start(asyncio.get_running_loop())
    try:
        await create_table(engine.context, dict(CREATE))
        storage.stale = []  # another node dropped the table
        engine.catalog.begin_ddl(TABLE)
        region._refresh_requests()
        assert engine.catalog.get(TABLE) is not None  # left to the DDL in flight
        engine.catalog.end_ddl(TABLE)  # the DDL failed: it publishes nothing
        deadline = time.monotonic() + JOB_RAN_TIMEOUT_S
        while engine.catalog.get(TABLE) is not None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert engine.catalog.get(TABLE) is None
        await region.stop()
    finally:
        storage.close()
