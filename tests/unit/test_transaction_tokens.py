"""ClientRequestToken idempotency over time, with the engine's clock as an argument: a
retry within 10 minutes is answered without running again; after that the token is
forgotten and the same request runs again."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from atoll.engine import Engine
from atoll.engine.engine import HANDLERS
from atoll.engine.transactions import IDEMPOTENCY_WINDOW_MS
from atoll.errors import IdempotentParameterMismatch
from atoll.storage import SqliteStorage

START_MS = 1_800_000_000_000


def _increment(token: str, table: str = "tokens") -> dict[str, Any]:
    return {"ClientRequestToken": token, "TransactItems": [{"Update": {
        "TableName": table, "Key": {"pk": {"S": "counter"}}, "UpdateExpression": "ADD n :one",
        "ExpressionAttributeValues": {":one": {"N": "1"}}}}]}


async def _scenario(path: Path) -> list[str]:
    now = [START_MS]
    storage = SqliteStorage(str(path / "t.db"), durable=False)
    engine = Engine(storage, now_ms=lambda: now[0])
    storage.start(asyncio.get_running_loop())
    counts = []
    try:
        await HANDLERS["CreateTable"](engine.context, {
            "TableName": "tokens", "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]})

        async def count() -> str:
            got = await HANDLERS["GetItem"](engine.context, {"TableName": "tokens",
                                                     "Key": {"pk": {"S": "counter"}}})
            return got.decode() if isinstance(got, bytes) else orjson.dumps(got).decode()

        await HANDLERS["TransactWriteItems"](engine.context, _increment("t1"))
        now[0] += IDEMPOTENCY_WINDOW_MS - 1
        await HANDLERS["TransactWriteItems"](engine.context, _increment("t1"))  # replayed
        counts.append(await count())
        with pytest.raises(IdempotentParameterMismatch):
            bad = _increment("t1")
            bad["TransactItems"][0]["Update"]["ExpressionAttributeValues"][":one"] = {"N": "2"}
            await HANDLERS["TransactWriteItems"](engine.context, bad)
        now[0] += 2
        await HANDLERS["TransactWriteItems"](engine.context, _increment("t1"))  # window over: runs
        counts.append(await count())
    finally:
        storage.close()
    return counts


def test_tokens_expire_after_the_idempotency_window(tmp_path: Path) -> None:
    counts = asyncio.run(_scenario(tmp_path))
    assert '"n":{"N":"1"}' in counts[0]
    assert '"n":{"N":"2"}' in counts[1]
