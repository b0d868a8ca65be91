"""The engine's background work under the engine's own clock, driven as the node drives it.

- TTL: the sweeper's "now" is the engine's clock, not the machine's. Under a clock set
  far in the future, an item expiring just before that future is deleted, and one that
  expired a minute ago by the machine's clock is not (more than five years before the
  engine's now: DynamoDB ignores it). CreationDateTime and a billing-mode change are
  dated by the same clock.
- Backfill: an engine without a node leaves a new GSI CREATING; the node's background
  work, started over the same context, resumes it and turns it ACTIVE with every item.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson

from atoll.engine import Engine, ttl
from atoll.engine.engine import HANDLERS
from atoll.node.background import BackgroundWork
from atoll.storage import SqliteStorage

FAKE_NOW_MS = 4_000_000_000_000  # the year 2096
BACKFILL_BOUND_S = 10.0


@asynccontextmanager
async def _engine(path: Path, now_ms: list[int]) -> AsyncIterator[Engine]:
    storage = SqliteStorage(str(path / "t.db"), durable=False)
    engine = Engine(storage, now_ms=lambda: now_ms[0])
    storage.start(asyncio.get_running_loop())
    try:
        yield engine
    finally:
        storage.close()


async def _call(engine: Engine, operation: str, **request: Any) -> Any:
    result = await HANDLERS[operation](engine.context, request)
    # as the API answers it: raw item fragments and all
    return orjson.loads(result if type(result) is bytes else orjson.dumps(result))


async def _create(engine: Engine, name: str) -> dict[str, Any]:
    return await _call(engine, "CreateTable", TableName=name, BillingMode="PAY_PER_REQUEST",
                       KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                       AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])


async def _keys(engine: Engine, table: str) -> set[str]:
    scanned = await _call(engine, "Scan", TableName=table)
    return {item["pk"]["S"] for item in scanned["Items"]}


async def _ttl_scenario(path: Path) -> None:
    now_ms = [FAKE_NOW_MS]
    fake_now_s = FAKE_NOW_MS // 1000
    async with _engine(path, now_ms) as engine:
        created = await _create(engine, "expiring")
        assert created["TableDescription"]["CreationDateTime"] == fake_now_s
        await _call(engine, "UpdateTimeToLive", TableName="expiring",
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": "exp"})
        for key, expires_s in (("due", fake_now_s - 60), ("next", fake_now_s + 60),
                               ("machine_past", int(time.time()) - 60)):
            await _call(engine, "PutItem", TableName="expiring",
                        Item={"pk": {"S": key}, "exp": {"N": str(expires_s)}})
        cursors: dict[int, Any] = {}
        assert await ttl.sweep_once(engine.context, cursors) == 1
        assert await _keys(engine, "expiring") == {"next", "machine_past"}
        now_ms[0] += 120_000  # two minutes later by the engine's clock
        assert await ttl.sweep_once(engine.context, cursors) == 1
        assert await _keys(engine, "expiring") == {"machine_past"}

        await _call(engine, "UpdateTable", TableName="expiring", BillingMode="PROVISIONED",
                    ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1})
        await _call(engine, "UpdateTable", TableName="expiring", BillingMode="PAY_PER_REQUEST")
        described = (await _call(engine, "DescribeTable", TableName="expiring"))["Table"]
        assert described["BillingModeSummary"]["LastUpdateToPayPerRequestDateTime"] == \
            fake_now_s + 120


def test_ttl_sweep_and_table_timestamps_follow_the_engine_clock(tmp_path: Path) -> None:
    asyncio.run(_ttl_scenario(tmp_path))


async def _index_status(engine: Engine, table: str) -> str:
    described = (await _call(engine, "DescribeTable", TableName=table))["Table"]
    return str(described["GlobalSecondaryIndexes"][0]["IndexStatus"])


async def _backfill_scenario(path: Path) -> None:
    async with _engine(path, [FAKE_NOW_MS]) as engine:
        await _create(engine, "grouped")
        for n in range(600):  # three chunks of the backfill
            await _call(engine, "PutItem", TableName="grouped",
                        Item={"pk": {"S": f"k{n}"}, "g": {"S": f"g{n % 2}"}})
        await _call(engine, "UpdateTable", TableName="grouped", AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "g", "AttributeType": "S"}], GlobalSecondaryIndexUpdates=[
            {"Create": {"IndexName": "by_g", "Projection": {"ProjectionType": "KEYS_ONLY"},
                        "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}]}}])
        await asyncio.sleep(0.2)
        assert await _index_status(engine, "grouped") == "CREATING"  # no node: not started

        background = BackgroundWork()
        background.start(engine.context)
        try:
            assert "backfill grouped.by_g" in background.running()
            deadline = time.monotonic() + BACKFILL_BOUND_S
            while await _index_status(engine, "grouped") != "ACTIVE":
                assert time.monotonic() < deadline, "the backfill did not finish"
                await asyncio.sleep(0.05)
            queried = await _call(engine, "Query", TableName="grouped", IndexName="by_g",
                                  KeyConditionExpression="g = :g",
                                  ExpressionAttributeValues={":g": {"S": "g1"}})
            assert queried["Count"] == 300
        finally:
            await background.stop()
        assert background.running() == []


def test_the_node_resumes_a_backfill_the_engine_left_creating(tmp_path: Path) -> None:
    asyncio.run(_backfill_scenario(tmp_path))
