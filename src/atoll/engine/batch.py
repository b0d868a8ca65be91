"""BatchGetItem and BatchWriteItem.

BatchWriteItem's requests run as one write job (one transaction, one changelog record
per table), so the whole batch is durable together; nothing is left unprocessed.
"""

from __future__ import annotations

from typing import Any, cast

import orjson

from atoll.engine import capacity, causal, outbox
from atoll.engine.context import EngineContext
from atoll.engine.items import (
    apply_projection,
    check_key_values,
    delete_row,
    plan_indexes,
    projection_of,
    put_row,
)
from atoll.engine.outbox import ItemOp
from atoll.engine.tabledef import EncodedKey, TableDef
from atoll.errors import ValidationError
from atoll.model.values import check_item, check_item_size
from atoll.replication.change import ItemJson, item_json
from atoll.replication.itemstate import Dot
from atoll.storage import WriteTxn

MAX_BATCH_GET_KEYS = 100
MAX_BATCH_WRITE_REQUESTS = 25
MAX_BATCH_GET_RESPONSE_BYTES = 16 * 1024 * 1024


async def batch_get_item(ctx: EngineContext, request: dict[str, Any]) -> dict[str, Any]:
    return batch_get_item_now(ctx, request)


def batch_get_item_now(ctx: EngineContext, request: dict[str, Any]) -> dict[str, Any]:
    """BatchGetItem's answer: it never waits (engine.NOW_HANDLERS)."""
    request_items: dict[str, Any] = request["RequestItems"]
    total = sum(len(spec.get("Keys") or ()) for spec in request_items.values())
    if total > MAX_BATCH_GET_KEYS:
        raise ValidationError("Too many items requested for the BatchGetItem call")
    plans = []
    for name, spec in request_items.items():
        table = ctx.catalog.table(name)
        expressions, attributes = projection_of(spec, table)
        keys = spec["Keys"]
        encoded = [table.encode_key(k) for k in keys]
        if len(set(encoded)) != len(encoded):
            raise ValidationError("Provided list of item keys contains duplicates")
        plans.append((name, table, spec, keys, encoded, expressions, attributes))
    responses: dict[str, Any] = {}
    unprocessed: dict[str, Any] = {}
    meter = capacity.Meter(capacity.wanted(request), "read")
    metering = meter.mode is not None
    get_item = ctx.storage.get_item
    size = 0
    for name, table, spec, keys, encoded, expressions, attributes in plans:
        project = bool(expressions.parsed) or attributes is not None
        consistent = bool(spec.get("ConsistentRead"))
        found: list[Any] = []  # projected items, decoded
        raw: list[bytes] = []  # or the stored items, answered as they are
        for index, key in enumerate(encoded):
            if size > MAX_BATCH_GET_RESPONSE_BYTES:
                rest = unprocessed.setdefault(name, {k: v for k, v in spec.items() if k != "Keys"})
                rest.setdefault("Keys", []).append(keys[index])
                continue
            row = get_item(table.tid, key[0], key[1], key[2])
            if metering:
                meter.add(table, capacity.read_units(row[1] if row else 0, consistent))
            if row is None:
                continue
            size += row[1]
            if project:
                found.append(apply_projection(orjson.loads(row[0]), expressions, attributes))
            else:
                raw.append(row[0])
        # the stored items (each checksummed when read) joined once into the table's list
        responses[name] = found if project else orjson.Fragment(b"[" + b",".join(raw) + b"]")
    result: dict[str, Any] = {"Responses": responses, "UnprocessedKeys": unprocessed}
    return capacity.attach(result, "ConsumedCapacity", meter.listed())


async def batch_write_item(ctx: EngineContext, request: dict[str, Any]) -> dict[str, Any]:
    request_items: dict[str, Any] = request["RequestItems"]
    total = sum(len(v) for v in request_items.values())
    if total > MAX_BATCH_WRITE_REQUESTS:
        raise ValidationError("1 validation error detected: Value at 'requestItems' failed to "
                              "satisfy constraint: Map value must satisfy constraint: [Member must "
                              "have length less than or equal to 25, Member must have length "
                              "greater than or equal to 1]")
    # every write's values first, before any table is looked up (see items.check_key_values)
    checked = [(name, [_checked_write(w) for w in writes]) for name, writes in request_items.items()]
    plans: list[tuple[TableDef, list[tuple[EncodedKey, dict[str, Any], ItemJson | None, int]]]] = []
    for name, writes in checked:
        table = ctx.catalog.table(name)
        ops = [_plan_write(table, w, size) for w, size in writes]
        if len({op[0] for op in ops}) != len(ops):
            raise ValidationError("Provided list of item keys contains duplicates")
        plans.append((table, ops))

    def plan_table(table: TableDef, ops: list[tuple[EncodedKey, dict[str, Any], ItemJson | None, int]]
                   ) -> list[Any]:
        return [plan_indexes(table, item, item_bytes, size) if item_bytes is not None else None
                for _key, item, item_bytes, size in ops]

    # index rows planned (bad index keys rejected) before the job, outside the batch
    planned = [plan_table(table, ops) for table, ops in plans]

    def job(txn: WriteTxn) -> capacity.Meter:
        meter = capacity.Meter(capacity.wanted(request), "write")  # fresh if replayed
        # every index row is planned before any write; again if a definition changed
        index_plans = []
        for (table, ops), table_plans in zip(plans, planned):
            ctx.catalog.ensure_live(table)
            current = ctx.catalog.current(table)
            index_plans.append(table_plans if current is table else plan_table(current, ops))
        for (table, ops), table_plans in zip(plans, index_plans):
            current = ctx.catalog.current(table)
            hlc = ctx.clock.tick()
            logged: list[ItemOp] = []
            dot = Dot(hlc, ctx.region)
            for (key, item, item_bytes, size), plan in zip(ops, table_plans):
                old = txn.get(table.tid, *key)
                if item_bytes is not None:
                    stored, shown = causal.put(txn, current, key, item, dot)
                    if shown is not item:  # top-level sets in canonical order
                        item_bytes = item_json(shown)
                        plan = plan_indexes(current, shown, item_bytes, size)
                    units = put_row(ctx, txn, current, key, item_bytes, size, old, plan, stored)
                    logged.append((key, item_bytes, old, stored.data))
                else:
                    stored = causal.delete(txn, current, key, dot)
                    units = delete_row(ctx, txn, current, key, old, stored)
                    logged.append((key, None, old, stored.data))
                meter.add(table, capacity.write_units(max(size, old[1] if old else 0)), units)
            outbox.log_item_changes(ctx, txn, hlc, table, logged)
        return meter

    meter = await ctx.storage.write(job, inline=True, keys=[
        (table.tid, *op[0]) for table, ops in plans for op in ops])
    result: dict[str, Any] = {"UnprocessedItems": {}}
    if "ReturnItemCollectionMetrics" in request:
        written = [(table, item) for table, ops in plans for _key, item, _bytes, _size in ops]
        result = capacity.attach(result, "ItemCollectionMetrics",
                                 capacity.item_collection_metrics_by_table(ctx, request,
                                                                           written))
    return capacity.attach(result, "ConsumedCapacity", meter.listed())


def _checked_write(write: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """A WriteRequest checked as values: (the request, its item's size or 0)."""
    put = write.get("PutRequest")
    delete = write.get("DeleteRequest")
    if (put is None) == (delete is None):
        raise ValidationError("Supplied AttributeValue has more than one datatypes set, must "
                              "contain exactly one of the supported datatypes"
                              if put is not None else
                              "1 validation error detected: WriteRequest must contain exactly one "
                              "of PutRequest or DeleteRequest")
    if put is not None:
        return write, check_item(put["Item"])
    check_key_values(cast(dict[str, Any], delete)["Key"])
    return write, 0


def _plan_write(table: TableDef, write: dict[str, Any], size: int
                ) -> tuple[EncodedKey, dict[str, Any], ItemJson | None, int]:
    """A checked WriteRequest against its table: its key and the item to write."""
    put = write.get("PutRequest")
    if put is not None:
        item = put["Item"]
        check_item_size(size)
        return table.encode_item_key(item), item, item_json(item), size
    key = write["DeleteRequest"]["Key"]
    return table.encode_key(key), key, None, 0
