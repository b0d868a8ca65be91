"""`Api.answer` (what the HTTP server calls) gives `handle`'s answer: at once, as a value,
for a read that needs no wait (auth off, GetItem/Query/Scan/BatchGetItem, nothing undurable
read), as a coroutine for everything else — and the same status and body either way, errors
included, with the same counters.

A read of a write not yet durable is answered only once it is: see
tests/unit/test_storage_durability.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson

from atoll.api.dispatch import Api
from atoll.engine import Engine
from atoll.storage import SqliteStorage
from tests.support import in_a_loop, started

TABLE = "items"
T = "DynamoDB_20120810."


def _body(**fields: Any) -> bytes:
    return orjson.dumps(fields)


SETUP = [
    ("CreateTable", _body(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                          KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                     {"AttributeName": "sk", "KeyType": "RANGE"}],
                          AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                                {"AttributeName": "sk", "AttributeType": "S"}])),
    *[("PutItem", _body(TableName=TABLE, Item={"pk": {"S": f"p{i % 3}"}, "sk": {"S": f"s{i}"},
                                               "v": {"N": str(i)}}))
      for i in range(12)],
]

READS: list[tuple[str, bytes]] = [
    ("GetItem", _body(TableName=TABLE, Key={"pk": {"S": "p1"}, "sk": {"S": "s4"}})),
    ("GetItem", _body(TableName=TABLE, Key={"pk": {"S": "p1"}, "sk": {"S": "none"}},
                      ConsistentRead=True, ReturnConsumedCapacity="TOTAL")),
    ("GetItem", _body(TableName=TABLE, Key={"pk": {"S": "p1"}, "sk": {"S": "s4"}},
                      ProjectionExpression="v")),
    ("GetItem", _body(TableName=TABLE, Key={"pk": {"S": "p1"}})),  # ValidationException
    ("GetItem", _body(TableName="missing", Key={"pk": {"S": "p1"}, "sk": {"S": "s"}})),
    ("GetItem", b"[1]"),  # SerializationException
    ("GetItem", b""),
    ("Query", _body(TableName=TABLE, KeyConditionExpression="pk = :p",
                    ExpressionAttributeValues={":p": {"S": "p2"}}, Limit=2)),
    ("Query", _body(TableName=TABLE, KeyConditionExpression="pk = :p AND sk > :s",
                    ExpressionAttributeValues={":p": {"S": "p0"}, ":s": {"S": "s3"}},
                    ScanIndexForward=False)),
    ("Query", _body(TableName=TABLE, KeyConditionExpression="pk = :p")),  # undefined :p
    ("Scan", _body(TableName=TABLE)),
    ("Scan", _body(TableName=TABLE, Limit=5,
                   ExclusiveStartKey={"pk": {"S": "p0"}, "sk": {"S": "s3"}})),
    ("Scan", _body(TableName=TABLE, Limit=0)),  # ValidationException
    ("BatchGetItem", _body(RequestItems={TABLE: {"Keys": [
        {"pk": {"S": "p0"}, "sk": {"S": "s0"}}, {"pk": {"S": "p2"}, "sk": {"S": "s5"}},
        {"pk": {"S": "p2"}, "sk": {"S": "nope"}}]}})),
    ("BatchGetItem", _body(RequestItems={TABLE: {"Keys": [
        {"pk": {"S": "p0"}, "sk": {"S": "s0"}}, {"pk": {"S": "p0"}, "sk": {"S": "s0"}}]}})),
]
NOT_AT_ONCE: list[tuple[str | None, bytes]] = [
    (T + "PutItem", _body(TableName=TABLE, Item={"pk": {"S": "x"}, "sk": {"S": "y"}})),
    (T + "DescribeTable", _body(TableName=TABLE)),
    (T + "TransactGetItems", _body(TransactItems=[
        {"Get": {"TableName": TABLE, "Key": {"pk": {"S": "p0"}, "sk": {"S": "s0"}}}}])),
    (T + "NoSuchOperation", b"{}"),
    (None, b"{}"),
]


async def _api(path: Path) -> tuple[Api, SqliteStorage]:
    path.mkdir(parents=True, exist_ok=True)
    storage = SqliteStorage(str(path / "a.db"), durable=False)
    api = Api(Engine(storage))
    return api, storage


@in_a_loop
async def test_a_read_is_answered_at_once_with_handles_answer(tmp_path: Path) -> None:
    api, storage = await _api(tmp_path)
    async with started(storage):
        for operation, body in SETUP:
            assert (await api.handle(T + operation, body))[0] == 200
        statuses = set()
        for operation, body in READS:
            at_once = api.answer(T + operation, body)
            assert isinstance(at_once, tuple), (operation, body)
            assert at_once == await api.handle(T + operation, body), (operation, body)
            statuses.add(at_once[0])
        assert statuses == {200, 400}  # errors answered at once too
        # both entries counted every request, by operation and outcome
        for operation in ("GetItem", "Query", "Scan", "BatchGetItem"):
            counted = api.stats.of(operation)
            sent = sum(1 for op, _ in READS if op == operation)
            assert sum(counted.buckets) == 2 * sent
            assert counted.successes + sum(counted.errors.values()) == 2 * sent
            assert counted.successes % 2 == 0 and all(n % 2 == 0 for n in counted.errors.values())


@in_a_loop
async def test_anything_else_is_a_coroutine_with_handles_answer(tmp_path: Path) -> None:
    api, storage = await _api(tmp_path)
    async with started(storage):
        for operation, body in SETUP:
            assert (await api.handle(T + operation, body))[0] == 200
        for target, body in NOT_AT_ONCE:  # (each answered alike when sent twice)
            later = api.answer(target, body)
            assert asyncio.iscoroutine(later), target
            assert await later == await api.handle(target, body), target
