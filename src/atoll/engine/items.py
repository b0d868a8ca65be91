"""PutItem, GetItem, DeleteItem, UpdateItem.

Each write validates everything it can on the event-loop thread, then submits one job
whose body runs inside the storage's batch transaction: read the current item, check the
condition, write the item, its tombstone bookkeeping and one changelog record.
"""

from __future__ import annotations

from typing import Any

import orjson

from atoll import expressions as ex
from atoll.engine import capacity, causal, indexes, outbox, streams
from atoll.engine.context import EngineContext
from atoll.engine.expr import RequestExpressions
from atoll.engine.tabledef import EncodedKey, TableDef
from atoll.errors import ConditionalCheckFailed, KeyTooLong, ValidationError
from atoll.expressions import legacy
from atoll.model.values import MAX_ITEM_SIZE_BYTES, check_item, check_item_size, check_value
from atoll.replication.change import ItemJson, item_json
from atoll.replication.itemstate import Dot, Stored
from atoll.storage import WriteTxn

_WRITE_EXPRESSIONS = ("ConditionExpression",)
_UPDATE_EXPRESSIONS = ("UpdateExpression", "ConditionExpression")
_READ_EXPRESSIONS = ("ProjectionExpression",)
# Legacy parameters each write accepts, in the order DynamoDB lists them in messages.
_LEGACY_WRITE = ("Expected", "ConditionalOperator")
_LEGACY_UPDATE = ("AttributeUpdates", "Expected", "ConditionalOperator")


def projection_of(request: dict[str, Any], table: TableDef
                  ) -> tuple[RequestExpressions, list[str] | None]:
    """The request's ProjectionExpression context and legacy AttributesToGet, if any."""
    expressions = RequestExpressions(request, _READ_EXPRESSIONS)
    expressions.check_scalar_keys(table, _READ_EXPRESSIONS)
    attributes = request.get("AttributesToGet")
    if attributes is not None and request.get("ProjectionExpression") is not None:
        raise ValidationError(
            "Can not use both expression and non-expression parameters in the same request: "
            "Non-expression parameters: {AttributesToGet} "
            "Expression parameters: {ProjectionExpression}")
    if attributes is not None:
        legacy.check_attributes_to_get(attributes)
    return expressions, attributes


def check_key_values(key: Any) -> None:
    """Check a request's key values as values (a malformed number, a bad set), before the
    table is looked up: DynamoDB refuses a malformed value, a value nested too deep or a
    malformed expression of a request about a table that does not exist with that error,
    not with ResourceNotFoundException (paritysuite conformance suite,
    tests/tier3/validation-ordering/deepRequests.test.ts: "each answer comes before the
    table is looked up"; dynalite's assertType tests, SerializationException for an
    absent table)."""
    if type(key) is dict:
        for value in key.values():
            check_value(value)


def apply_projection(item: dict[str, Any], expressions: RequestExpressions,
                     attributes: list[str] | None) -> dict[str, Any]:
    if attributes is not None:
        return {name: item[name] for name in attributes if name in item}
    return expressions.project(item)


def _old_item(row: tuple[bytes, int, int, str] | None) -> dict[str, Any] | None:
    return orjson.loads(row[0]) if row is not None else None


def _check_return_values(request: dict[str, Any], allowed: tuple[str, ...], op: str) -> str:
    value = request.get("ReturnValues") or "NONE"
    if value not in allowed:
        raise ValidationError(f"ReturnValues can only be {' or '.join(allowed)} for {op}")
    return value


def _condition_failed(request: dict[str, Any], old: dict[str, Any] | None) -> ConditionalCheckFailed:
    wanted = request.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD"
    return ConditionalCheckFailed(item=old if wanted else None)


def put_row(ctx: EngineContext, txn: WriteTxn, table: TableDef, key: EncodedKey,
            item_bytes: ItemJson, size: int, old: tuple[bytes, int, int, str] | None,
            plan: indexes.Plan | None, stored: Stored) -> dict[str, float]:
    """Write an item row with its causal state (`stored`, from engine/causal.py; the
    item is the one that state shows) and its index rows (`plan` from `indexes.plan`,
    computed before anything was written), and its stream record if the table has a
    stream; returns the index write units. `table` is the definition as of this
    transaction."""
    version, prev = stored.version, stored.prev
    txn.put(table.tid, key[0], key[1], key[2], item_bytes, size, version.hlc, version.region,
            old[1] if old is not None else None,
            (prev.hlc, prev.region) if prev is not None else None, stored.data)
    if table.stream_sid:
        streams.capture_local(ctx, txn, table, key, old, (item_bytes, size))
    if plan is None:
        return {}
    return indexes.apply(txn, table, key, old[0] if old is not None else None, plan)


def delete_row(ctx: EngineContext, txn: WriteTxn, table: TableDef, key: EncodedKey,
               old: tuple[bytes, int, int, str] | None, stored: Stored,
               by_ttl: bool = False) -> dict[str, float]:
    """Delete an item row (or record the delete of an absent one) with the tombstone's
    causal state `stored` and its index rows, and leave its stream record (`by_ttl`:
    the TTL sweeper's, which names the service)."""
    version = stored.version
    prev = (stored.prev.hlc, stored.prev.region) if stored.prev is not None else None
    if old is None:
        txn.delete_absent(table.tid, key[0], key[1], key[2], version.hlc, version.region,
                          prev, stored.data)
        return {}
    txn.delete(table.tid, key[0], key[1], key[2], version.hlc, version.region, old[1], prev,
               stored.data)
    if table.stream_sid:
        streams.capture_local(ctx, txn, table, key, old, None, by_ttl)
    return indexes.apply(txn, table, key, old[0], None) if table.indexes else {}


def plan_indexes(table: TableDef, item: dict[str, Any], item_bytes: bytes,
                 size: int) -> indexes.Plan | None:
    return indexes.plan(table, item, item_bytes, size) if table.indexes else None


# What an update that breaks a limit says, in UpdateItem and as a transaction's
# cancellation reason (the ValidationError messages the API Reference lists under
# TransactionCanceledException; dynalite's "update item is too big" test).
_UPDATE_TOO_LARGE = "Item size to update has exceeded the maximum allowed size"
_INDEX_KEY_TOO_LONG = ("The update expression attempted to update the secondary index key "
                       "beyond allowed size limits")


def check_updated_size(size: int) -> None:
    if size > MAX_ITEM_SIZE_BYTES:
        raise ValidationError(_UPDATE_TOO_LARGE)


def plan_updated_indexes(table: TableDef, item: dict[str, Any], item_bytes: bytes,
                         size: int) -> indexes.Plan | None:
    """`plan_indexes` for an item an update made: a secondary index key it made too long
    is refused in the update's own words."""
    try:
        return plan_indexes(table, item, item_bytes, size)
    except KeyTooLong:
        raise ValidationError(_INDEX_KEY_TOO_LONG) from None


def _write_item(ctx: EngineContext, txn: WriteTxn, table: TableDef, key: EncodedKey,
                item: dict[str, Any], item_bytes: ItemJson, size: int,
                old: tuple[bytes, int, int, str] | None,
                planned: tuple[TableDef, indexes.Plan | None] | None,
                state: tuple[int, Stored]) -> dict[str, float]:
    """Write the item (the one `state` = (hlc, stored state) shows) and log its change.
    `planned`: index rows computed before the job against a definition; reused when
    that is still the current one (work done before the job overlaps the batch in
    flight instead of lengthening the next one)."""
    current = ctx.catalog.current(table)
    if planned is not None and planned[0] is current:
        plan = planned[1]
    else:  # may reject: nothing written yet
        plan = plan_indexes(current, item, item_bytes, size)
    hlc, stored = state
    units = put_row(ctx, txn, current, key, item_bytes, size, old, plan, stored)
    outbox.log_item_changes(ctx, txn, hlc, table, [(key, item_bytes, old, stored.data)])
    return units


def _delete_item(ctx: EngineContext, txn: WriteTxn, table: TableDef, key: EncodedKey,
                 old: tuple[bytes, int, int, str] | None) -> dict[str, float]:
    hlc = ctx.clock.tick()
    current = ctx.catalog.current(table)
    stored = causal.delete(txn, current, key, Dot(hlc, ctx.region))
    units = delete_row(ctx, txn, current, key, old, stored)
    outbox.log_item_changes(ctx, txn, hlc, table, [(key, None, old, stored.data)])
    return units


def _write_capacity(request: dict[str, Any], table: TableDef, old_size: int, new_size: int,
                    index_units: dict[str, float]) -> dict[str, Any] | None:
    meter = capacity.Meter(capacity.wanted(request), "write")
    meter.add(table, capacity.write_units(max(old_size, new_size)), index_units)
    return meter.single()


async def put_item(ctx: EngineContext, request: dict[str, Any]) -> Any:
    # The request's own values and expressions are checked before the table is looked up,
    # as DynamoDB does (see `check_key_values`).
    return_values = _check_return_values(request, ("NONE", "ALL_OLD"), "PutItem")
    item = request["Item"]
    size = check_item(item)
    expressions = RequestExpressions(request, _WRITE_EXPRESSIONS, _LEGACY_WRITE)
    table = ctx.catalog.table(request["TableName"])
    check_item_size(size)
    key = table.encode_item_key(item)
    item_bytes = item_json(item)
    planned = (table, plan_indexes(table, item, item_bytes, size))  # bad index keys: here

    def job(txn: WriteTxn) -> tuple[tuple[bytes, int, int, str] | None, dict[str, float]]:
        old = _checked_old_row(ctx, txn, table, key, request, expressions)
        hlc = ctx.clock.tick()
        stored, shown = causal.put(txn, ctx.catalog.current(table), key, item,
                                   Dot(hlc, ctx.region))
        if shown is item:
            units = _write_item(ctx, txn, table, key, item, item_bytes, size, old, planned,
                                (hlc, stored))
        else:  # top-level sets in canonical order: the bytes and index rows of that item
            units = _write_item(ctx, txn, table, key, shown, item_json(shown), size, old,
                                None, (hlc, stored))
        return old, units

    old, units = await ctx.storage.write(job, inline=True, keys=((table.tid, *key),))
    return _whole_item_result(ctx, request, table, return_values, old, size, units, item)


async def get_item(ctx: EngineContext, request: dict[str, Any]) -> Any:
    return get_item_now(ctx, request)


def get_item_now(ctx: EngineContext, request: dict[str, Any]) -> Any:
    """GetItem's answer: it never waits (engine.NOW_HANDLERS)."""
    table = ctx.catalog.table(request["TableName"])
    key = table.encode_key(request["Key"])
    expressions: RequestExpressions | None
    attributes: list[str] | None
    if "ProjectionExpression" in request or "AttributesToGet" in request:
        expressions, attributes = projection_of(request, table)
    else:
        expressions = attributes = None  # the hot path: no expressions at all
        if "ExpressionAttributeNames" in request:
            RequestExpressions(request, _READ_EXPRESSIONS)  # raises the right error
    row = ctx.storage.get_item(table.tid, *key)
    result: Any
    if row is None:
        result = b"{}"
    elif expressions is None:
        result = b'{"Item":' + row[0] + b"}"
    else:
        result = {"Item": apply_projection(orjson.loads(row[0]), expressions, attributes)}
    if "ReturnConsumedCapacity" in request:
        meter = capacity.Meter(capacity.wanted(request), "read")
        meter.add(table, capacity.read_units(row[1] if row else 0,
                                             bool(request.get("ConsistentRead"))))
        result = capacity.attach(result, "ConsumedCapacity", meter.single())
    return result


async def delete_item(ctx: EngineContext, request: dict[str, Any]) -> Any:
    return_values = _check_return_values(request, ("NONE", "ALL_OLD"), "DeleteItem")
    key_item = request["Key"]
    check_key_values(key_item)
    expressions = RequestExpressions(request, _WRITE_EXPRESSIONS, _LEGACY_WRITE)
    table = ctx.catalog.table(request["TableName"])
    key = table.encode_key(key_item)

    def job(txn: WriteTxn) -> tuple[tuple[bytes, int, int, str] | None, dict[str, float]]:
        old = _checked_old_row(ctx, txn, table, key, request, expressions)
        units = _delete_item(ctx, txn, table, key, old)
        return old, units

    old, units = await ctx.storage.write(job, inline=True, keys=((table.tid, *key),))
    return _whole_item_result(ctx, request, table, return_values, old, 0, units, key_item)


def _checked_old_row(ctx: EngineContext, txn: WriteTxn, table: TableDef, key: EncodedKey,
                     request: dict[str, Any], expressions: RequestExpressions
                     ) -> tuple[bytes, int, int, str] | None:
    """(In a write job) the live row a PutItem/DeleteItem replaces, once its
    ConditionExpression (if any) held for it."""
    ctx.catalog.ensure_live(table)
    old = txn.get(table.tid, *key)
    if "ConditionExpression" in expressions.parsed:
        old_item = _old_item(old)
        if not expressions.condition_holds("ConditionExpression", old_item):
            raise _condition_failed(request, old_item)
    return old


def _whole_item_result(ctx: EngineContext, request: dict[str, Any], table: TableDef,
                       return_values: str, old: tuple[bytes, int, int, str] | None,
                       new_size: int, units: dict[str, float], key_item: dict[str, Any]) -> Any:
    """The answer to a PutItem/DeleteItem: ALL_OLD, consumed capacity, collection metrics."""
    result = b"{}"
    if return_values == "ALL_OLD" and old is not None:
        result = b'{"Attributes":' + old[0] + b"}"
    if "ReturnConsumedCapacity" in request:
        consumed = _write_capacity(request, table, old[1] if old else 0, new_size, units)
        result = capacity.attach(result, "ConsumedCapacity", consumed)
    if "ReturnItemCollectionMetrics" in request:
        result = capacity.attach(result, "ItemCollectionMetrics",
                                 capacity.item_collection_metrics(ctx, request, table, key_item))
    return result


_UPDATE_RETURN_VALUES = ("NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW", "UPDATED_NEW")


async def update_item(ctx: EngineContext, request: dict[str, Any]) -> Any:
    return_values = _check_return_values(request, _UPDATE_RETURN_VALUES, "UpdateItem")
    key_item = request["Key"]
    check_key_values(key_item)
    expressions = RequestExpressions(request, _UPDATE_EXPRESSIONS, _LEGACY_UPDATE)
    table = ctx.catalog.table(request["TableName"])
    key = table.encode_key(key_item)
    update = expressions.get("UpdateExpression")
    if update is not None:
        touched = ex.update_touches(update, expressions.names, set(table.key_names()))
        if touched is not None:
            raise ValidationError("One or more parameter values were invalid: Cannot update "
                                  f"attribute {touched}. This attribute is part of the key")
        expressions.check_scalar_keys(table, ("UpdateExpression",), table_keys=False)
    has_condition = "ConditionExpression" in expressions.parsed
    # Taking attributes away from an item that does not exist leaves it absent (DynamoDB
    # creates no item from an update that only has REMOVE/DELETE actions).
    only_removes = update is not None and ex.update_only_removes(update)

    def job(txn: WriteTxn) -> tuple[dict[str, Any] | None, dict[str, Any] | None, list[Any], Any]:
        ctx.catalog.ensure_live(table)
        old = txn.get(table.tid, *key)
        old_item = _old_item(old)
        if has_condition and not expressions.condition_holds("ConditionExpression", old_item):
            raise _condition_failed(request, old_item)
        if old_item is None and only_removes:
            return None, None, [], (0, 0, {})
        base = old_item if old_item is not None else dict(key_item)
        paths: list[Any] = []
        new_item = base
        if update is not None:
            new_item, paths = ex.apply_update(update, base, expressions.names, expressions.values,
                                              item_exists=old_item is not None,
                                              resolved=expressions.update_paths())
        size = check_item(new_item)
        check_updated_size(size)
        current = ctx.catalog.current(table)
        hlc = ctx.clock.tick()
        stored, new_item = causal.update(txn, current, key, old_item, new_item, update,
                                         expressions.names, expressions.values,
                                         Dot(hlc, ctx.region), expressions.update_paths())
        new_bytes = item_json(new_item)
        planned = (current, plan_updated_indexes(current, new_item, new_bytes, size))
        units = _write_item(ctx, txn, table, key, new_item, new_bytes, size, old, planned,
                            (hlc, stored))
        return old_item, new_item, paths, (old[1] if old else 0, size, units)

    old_item, new_item, paths, sizes = await ctx.storage.write(
        job, inline=True, keys=((table.tid, *key),))
    result = _update_result(return_values, old_item, new_item, paths)
    if "ReturnConsumedCapacity" in request:
        result = capacity.attach(result, "ConsumedCapacity",
                                 _write_capacity(request, table, *sizes))
    if "ReturnItemCollectionMetrics" in request:
        result = capacity.attach(result, "ItemCollectionMetrics",
                                 capacity.item_collection_metrics(ctx, request, table, key_item))
    return result


def _update_result(return_values: str, old_item: dict[str, Any] | None,
                   new_item: dict[str, Any] | None, paths: list[Any]) -> dict[str, Any]:
    """The Attributes an UpdateItem answers with; none when the item is (still) absent."""
    if return_values == "ALL_NEW":
        return {"Attributes": new_item} if new_item is not None else {}
    if return_values == "ALL_OLD":
        return {"Attributes": old_item} if old_item else {}
    if return_values == "UPDATED_NEW":
        attributes = ex.project_paths(new_item, paths)
        return {"Attributes": attributes} if attributes else {}
    if return_values == "UPDATED_OLD":
        attributes = ex.project_paths(old_item, paths) if old_item else {}
        return {"Attributes": attributes} if attributes else {}
    return {}
