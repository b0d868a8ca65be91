"""Time to live: UpdateTimeToLive, DescribeTimeToLive and the background sweeper.

Theory of operation
- The TTL attribute name is part of the table definition (persisted, replicated as DDL).
- An item expires when its TTL attribute is a Number of epoch seconds not after now (and
  not more than MAX_AGE_S in the past: DynamoDB ignores such values). Until the sweeper
  deletes it, an expired item is still returned by every read, as in DynamoDB.
- The sweeper is one asyncio task per node (the node starts and stops it). Every
  `settings.ttl_interval_s` it walks each TTL-enabled table from a per-table cursor,
  reading at most SCAN_ROWS_PER_ROUND rows in chunks of SCAN_CHUNK_ROWS (the event
  loop serves requests between chunks), and deletes
  the expired items it found in write jobs of DELETE_BATCH_ITEMS. Each job re-reads the
  item and deletes it only if it is still expired (it may have been updated meanwhile),
  maintaining indexes and logging an ordinary changelog delete, so the delete replicates
  like any other. The same round purges expired transaction tokens.
- "Now" is the engine's clock (`ctx.now_ms`), read once per table walk, so a fake or
  skewed clock decides expiry exactly as it dates writes.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from atoll.engine import ddl, outbox, transactions
from atoll.engine.context import EngineContext
from atoll.engine.items import delete_row
from atoll.engine.outbox import ItemOp
from atoll.engine.tabledef import EncodedKey, TableDef
from atoll.errors import ValidationError
from atoll.storage import WriteTxn

log = logging.getLogger(__name__)

SCAN_ROWS_PER_ROUND = 20_000
SCAN_CHUNK_ROWS = 1000
DELETE_BATCH_ITEMS = 200
MAX_AGE_S = 5 * 365 * 24 * 3600
TOKEN_PURGE_BATCH = 1000


async def update_time_to_live(ctx: EngineContext, request: dict[str, Any]) -> dict[str, Any]:
    spec = request["TimeToLiveSpecification"]
    enabled = bool(spec["Enabled"])
    attribute = spec["AttributeName"]
    async with ctx.catalog.ddl_lock:
        table = ctx.catalog.table(request["TableName"])
        current = table.ttl_attribute
        if enabled and current is not None:
            raise ValidationError("TimeToLive is already enabled")
        if not enabled:
            if current is None:
                raise ValidationError("TimeToLive is already disabled")
            if current != attribute:
                raise ValidationError("TimeToLive is active on a different AttributeName: "
                                      f"current AttributeName is {current}")
        updated = table.copy()
        updated.ttl_attribute = attribute if enabled else None
        await ddl.replace_definition(ctx, table, updated)
    return {"TimeToLiveSpecification": {"Enabled": enabled, "AttributeName": attribute}}


async def describe_time_to_live(ctx: EngineContext, request: dict[str, Any]) -> dict[str, Any]:
    table = ctx.catalog.table(request["TableName"])
    if table.ttl_attribute is None:
        return {"TimeToLiveDescription": {"TimeToLiveStatus": "DISABLED"}}
    return {"TimeToLiveDescription": {"TimeToLiveStatus": "ENABLED",
                                      "AttributeName": table.ttl_attribute}}


def expired(item: dict[str, Any], attribute: str, now_s: float) -> bool:
    value = item.get(attribute)
    if type(value) is not dict or "N" not in value:
        return False
    try:
        expires = Decimal(value["N"])
    except (InvalidOperation, TypeError):
        return False
    return now_s - MAX_AGE_S <= expires <= Decimal(repr(now_s))


async def sweeper(ctx: EngineContext) -> None:
    """Sweep every `ttl_interval_s` until cancelled."""
    cursors: dict[int, tuple[int, bytes, bytes] | None] = {}
    while True:
        await asyncio.sleep(ctx.settings.ttl_interval_s)
        try:
            await sweep_once(ctx, cursors)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bad round must not stop the sweeper; the next one retries
            log.exception("TTL sweep failed")


async def sweep_once(ctx: EngineContext,
                     cursors: dict[int, tuple[int, bytes, bytes] | None]) -> int:
    """One round over every TTL-enabled table; returns the number of items deleted."""
    deleted = 0
    for table in ctx.catalog.tables():
        if table.ttl_attribute is None or not table.tid:
            continue
        deleted += await _sweep_table(ctx, table, cursors)
    await transactions.purge_expired_tokens(ctx, TOKEN_PURGE_BATCH)
    return deleted


async def _sweep_table(ctx: EngineContext, table: TableDef,
                       cursors: dict[int, tuple[int, bytes, bytes] | None]) -> int:
    attribute = table.ttl_attribute
    assert attribute is not None
    marker = orjson.dumps(attribute) + b":"  # how the attribute's name appears in item JSON
    after = cursors.get(table.tid)
    due: list[EncodedKey] = []
    read = 0
    deleted = 0
    now_s = ctx.now_ms() / 1000
    while read < SCAN_ROWS_PER_ROUND:
        rows = ctx.storage.scan_items(table.tid, after, None)
        chunk = list(itertools.islice(rows, SCAN_CHUNK_ROWS))
        getattr(rows, "close", lambda: None)()  # finalize the cursor before awaiting
        read += len(chunk)
        for h, pk, sk, item_bytes, _size in chunk:
            if marker not in item_bytes:
                continue  # cannot hold the attribute: skip decoding it
            if expired(orjson.loads(item_bytes), attribute, now_s):
                due.append((h, pk, sk))
        while len(due) >= DELETE_BATCH_ITEMS:
            deleted += await _delete_expired(ctx, table, due[:DELETE_BATCH_ITEMS], now_s)
            del due[:DELETE_BATCH_ITEMS]
        if len(chunk) < SCAN_CHUNK_ROWS:
            after = None  # reached the end: the next round starts over
            break
        last = chunk[-1]
        after = (last[0], last[1], last[2])
        await asyncio.sleep(0)  # let requests in between chunks
    cursors[table.tid] = after
    if due:
        deleted += await _delete_expired(ctx, table, due, now_s)
    return deleted


async def _delete_expired(ctx: EngineContext, table: TableDef, keys: list[EncodedKey],
                          now_s: float) -> int:
    attribute = table.ttl_attribute
    assert attribute is not None

    def job(txn: WriteTxn) -> int:
        if not ctx.catalog.is_live(table.tid):
            return 0
        current = ctx.catalog.current(table)
        hlc = ctx.clock.tick()
        logged: list[ItemOp] = []
        for key in keys:
            old = txn.get(table.tid, *key)
            if old is None:
                continue
            item = orjson.loads(old[0])
            if not expired(item, attribute, now_s):
                continue
            delete_row(ctx, txn, current, key, old, hlc, by_ttl=True)
            logged.append((key, None, old))
        if logged:
            outbox.log_item_changes(ctx, txn, hlc, current, logged)
        return len(logged)

    return int(await ctx.storage.write(job))
