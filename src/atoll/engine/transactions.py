"""TransactWriteItems and TransactGetItems.

Theory of operation
- Everything that can be checked without reading the database is checked first, on the
  event-loop thread: the shape of each action, its expressions, its key, the item sizes,
  no two actions on one item, at most MAX_TRANSACTION_BYTES in all. Those failures are
  a ValidationException for the whole request.
- The whole transaction is then ONE write job, so it is one storage transaction and, since
  the storage has a single writer, it is serializable with every other write: no locks,
  no TransactionConflict. The job reads every item, evaluates every condition and only
  if all hold computes the new items (updates, sizes, index rows), which may still fail
  per action with a ValidationError. Any failure cancels the transaction before anything
  is written, with one CancellationReason per action, in order.
- Then it writes every item and its index rows with one HLC timestamp, records the
  ClientRequestToken, and appends ONE changelog record holding every item change, so
  replication applies the transaction atomically in every region.
- ClientRequestToken: the token and a hash of the request are kept (in the same
  transaction) for IDEMPOTENCY_WINDOW_MS. A retry with the same token and parameters is
  answered as a success without running again; with other parameters it is an
  IdempotentParameterMismatchException. The TTL sweeper purges old tokens.
- TransactGetItems reads every item from one SQLite read snapshot.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from atoll import expressions as ex
from atoll.engine import capacity, causal, outbox
from atoll.engine.context import EngineContext
from atoll.engine.expr import RequestExpressions
from atoll.engine.items import (
    apply_projection,
    check_updated_size,
    delete_row,
    plan_indexes,
    plan_updated_indexes,
    projection_of,
    put_row,
)
from atoll.engine.outbox import ItemOp
from atoll.engine.tabledef import EncodedKey, TableDef
from atoll.errors import (
    IdempotentParameterMismatch,
    InvalidValue,
    KeySchemaMismatch,
    TransactionCanceled,
    ValidationError,
)
from atoll.model.values import check_item, check_item_size
from atoll.replication.change import ItemJson, item_json
from atoll.replication.itemstate import Dot, Stored
from atoll.storage import WriteTxn

MAX_ACTIONS = 100
MAX_TRANSACTION_BYTES = 4 * 1024 * 1024
IDEMPOTENCY_WINDOW_MS = 10 * 60 * 1000
_ACTION_KINDS = ("ConditionCheck", "Put", "Delete", "Update")
_EXPRESSIONS = {
    "ConditionCheck": ("ConditionExpression",),
    "Put": ("ConditionExpression",),
    "Delete": ("ConditionExpression",),
    "Update": ("UpdateExpression", "ConditionExpression"),
}
_REPLAYED = object()
_TOO_LARGE = "Transaction request cannot be larger than 4 MB"


@dataclass
class _Action:
    kind: str
    table: TableDef
    key: EncodedKey
    key_item: dict[str, Any]
    expressions: RequestExpressions
    return_old_on_failure: bool
    item: dict[str, Any] | None = None  # Put
    item_bytes: ItemJson | None = None
    size: int = 0


def _parse_action(ctx: EngineContext, entry: dict[str, Any]) -> _Action:
    kinds = [k for k in _ACTION_KINDS if entry.get(k) is not None]
    if len(kinds) != 1:
        raise ValidationError("TransactItems can only contain one of Check, Put, Update or Delete")
    kind = kinds[0]
    spec = entry[kind]
    table = ctx.catalog.table(spec["TableName"])
    expressions = RequestExpressions(spec, _EXPRESSIONS[kind])
    on_failure = spec.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD"
    if kind == "Put":
        item = spec["Item"]
        size = check_item(item)
        check_item_size(size)
        key = table.encode_item_key(item)
        return _Action(kind, table, key, table.key_of(item), expressions, on_failure,
                       item, item_json(item), size)
    key_item = spec["Key"]
    key = table.encode_key(key_item)
    if kind == "Update":
        update = expressions.get("UpdateExpression")
        touched = ex.update_touches(update, expressions.names, set(table.key_names()))
        if touched is not None:
            raise ValidationError("One or more parameter values were invalid: Cannot update "
                                  f"attribute {touched}. This attribute is part of the key")
        expressions.check_scalar_keys(table, ("UpdateExpression",), table_keys=False)
    return _Action(kind, table, key, key_item, expressions, on_failure)


def _request_hash(request: dict[str, Any]) -> bytes:
    significant = {k: v for k, v in request.items()
                   if k not in ("ClientRequestToken", "ReturnConsumedCapacity",
                                "ReturnItemCollectionMetrics")}
    return hashlib.sha256(orjson.dumps(significant, option=orjson.OPT_SORT_KEYS)).digest()


def _canceled(reasons: list[dict[str, Any]]) -> TransactionCanceled:
    codes = ", ".join(r["Code"] for r in reasons)
    return TransactionCanceled("Transaction cancelled, please refer cancellation reasons for "
                               f"specific reasons [{codes}]", reasons)


async def transact_write_items(ctx: EngineContext, request: dict[str, Any]) -> Any:
    entries = request["TransactItems"]
    if len(entries) > MAX_ACTIONS:
        raise ValidationError("1 validation error detected: Value at 'transactItems' failed to "
                              "satisfy constraint: Member must have length less than or equal "
                              f"to {MAX_ACTIONS}")
    token = request.get("ClientRequestToken")
    request_hash = _request_hash(request) if token else b""
    actions = _parse_actions(ctx, entries)
    mode = capacity.wanted(request)

    def job(txn: WriteTxn) -> Any:
        now_ms = ctx.now_ms()
        if token:
            known = txn.token_get(token)
            if known is not None and now_ms - known[1] < IDEMPOTENCY_WINDOW_MS:
                if known[0] != request_hash:
                    raise IdempotentParameterMismatch(
                        "Request parameters do not match the parameters of an earlier request "
                        "with the same ClientRequestToken")
                return _REPLAYED
        olds = [_check(ctx, txn, action) for action in actions]
        reasons = [reason for _old, reason in olds]
        if any(r["Code"] != "None" for r in reasons):
            raise _canceled(reasons)
        writes = _prepare(ctx, actions, [old for old, _r in olds], reasons)
        if sum(size for _old, _new, _bytes, size, _plan in writes) > MAX_TRANSACTION_BYTES:
            raise ValidationError(_TOO_LARGE)  # updates grew the items: still nothing written
        meter = _write(ctx, txn, actions, writes, capacity.Meter(mode, "write"))
        if token:
            txn.token_put(token, request_hash, now_ms)
        return meter

    meter = await ctx.storage.write(job, inline=True, keys=[
        (action.table.tid, *action.key) for action in actions])
    result: dict[str, Any] = {}
    if meter is _REPLAYED:
        if mode is not None:
            replay = capacity.Meter(mode, "write")
            for action in actions:
                replay.add(action.table, capacity.TRANSACTION_FACTOR * 1.0)
            result["ConsumedCapacity"] = replay.listed()
        return result
    listed = meter.listed()
    if listed is not None:
        result["ConsumedCapacity"] = listed
    if "ReturnItemCollectionMetrics" in request:
        written = [(a.table, a.key_item) for a in actions if a.kind != "ConditionCheck"]
        result = capacity.attach(result, "ItemCollectionMetrics",
                                 capacity.item_collection_metrics_by_table(ctx, request,
                                                                           written))
    return result


def _parse_actions(ctx: EngineContext, entries: list[dict[str, Any]]) -> list[_Action]:
    """Every action, checked before the job: shape, expressions, keys, sizes, no item
    twice, the whole at most MAX_TRANSACTION_BYTES.

    A key of the wrong type cancels the transaction instead of refusing the request: its
    action's reason is a ValidationError with the message a single write would give
    (captured against DynamoDB in the paritysuite conformance suite,
    tests/tier3/error-messages/transactWriteItems.test.ts); every other refusal here is
    the request's."""
    actions: list[_Action] = []
    reasons: list[dict[str, Any]] = [{"Code": "None"} for _entry in entries]
    mismatched = False
    for position, entry in enumerate(entries):
        try:
            actions.append(_parse_action(ctx, entry))
        except KeySchemaMismatch as exc:
            reasons[position] = {"Code": "ValidationError", "Message": exc.message}
            mismatched = True
    if mismatched:
        raise _canceled(reasons)
    seen: set[tuple[int, EncodedKey]] = set()
    for action in actions:
        identity = (action.table.tid, action.key)
        if identity in seen:
            raise ValidationError("Transaction request cannot include multiple operations on "
                                  "one item")
        seen.add(identity)
    if sum(a.size for a in actions) > MAX_TRANSACTION_BYTES:
        raise ValidationError(_TOO_LARGE)
    return actions


def _write(ctx: EngineContext, txn: WriteTxn, actions: list[_Action],
           writes: list[tuple[Any, Any, ItemJson | None, int, Any]],
           meter: capacity.Meter) -> capacity.Meter:
    """(In the job, every condition held) write every item and its index rows with one
    timestamp and log them as ONE change; returns the meter, doubled for transactions."""
    hlc = ctx.clock.tick()
    groups: dict[str, tuple[TableDef, list[ItemOp]]] = {}
    for action, (old, new_item, new_bytes, size, plan) in zip(actions, writes):
        current = ctx.catalog.current(action.table)
        units: dict[str, float] = {}
        change: ItemOp
        if action.kind == "ConditionCheck" or (action.kind == "Update" and new_bytes is None):
            # (an Update with new_bytes None only took attributes away from an absent item)
            meter.add(action.table, capacity.write_units(old[1] if old else 0))
            continue
        if new_bytes is not None:
            stored, shown = _new_state(ctx, txn, current, action, old, new_item, hlc)
            if shown is not new_item:  # top-level sets in canonical order
                new_bytes = item_json(shown)
                plan = plan_updated_indexes(current, shown, new_bytes, size)
            units = put_row(ctx, txn, current, action.key, new_bytes, size, old, plan, stored)
            change = (action.key, new_bytes, old, stored.data)
        else:
            stored = causal.delete(txn, current, action.key, Dot(hlc, ctx.region))
            units = delete_row(ctx, txn, current, action.key, old, stored)
            change = (action.key, None, old, stored.data)
        meter.add(action.table, capacity.write_units(max(size, old[1] if old else 0)), units)
        groups.setdefault(action.table.name, (action.table, []))[1].append(change)
    if groups:
        outbox.log_multi_table_changes(ctx, txn, hlc, list(groups.values()))
    meter.scale(capacity.TRANSACTION_FACTOR)
    return meter


def _new_state(ctx: EngineContext, txn: WriteTxn, current: TableDef, action: _Action,
               old: tuple[bytes, int, int, str] | None, new_item: dict[str, Any], hlc: int
               ) -> tuple[Stored, dict[str, Any]]:
    """A Put's or an Update's new causal state and visible item (engine/causal.py)."""
    dot = Dot(hlc, ctx.region)
    if action.kind == "Put":
        return causal.put(txn, current, action.key, new_item, dot)
    expressions = action.expressions
    return causal.update(txn, current, action.key,
                         orjson.loads(old[0]) if old is not None else None, new_item,
                         expressions.get("UpdateExpression"), expressions.names,
                         expressions.values, dot)


def _check(ctx: EngineContext, txn: WriteTxn, action: _Action
           ) -> tuple[tuple[bytes, int, int, str] | None, dict[str, Any]]:
    """Read the action's item and evaluate its condition: (old row, cancellation reason)."""
    ctx.catalog.ensure_live(action.table)
    old = txn.get(action.table.tid, *action.key)
    if "ConditionExpression" not in action.expressions.parsed:
        return old, {"Code": "None"}
    old_item = orjson.loads(old[0]) if old is not None else None
    if action.expressions.condition_holds("ConditionExpression", old_item):
        return old, {"Code": "None"}
    reason: dict[str, Any] = {"Code": "ConditionalCheckFailed",
                              "Message": "The conditional request failed"}
    if action.return_old_on_failure and old_item is not None:
        reason["Item"] = old_item
    return old, reason


def _prepare(ctx: EngineContext, actions: list[_Action],
             olds: list[tuple[bytes, int, int, str] | None], reasons: list[dict[str, Any]]
             ) -> list[tuple[Any, Any, ItemJson | None, int, Any]]:
    """Each action's (old row, new item, new bytes, size, index plan), computed before
    anything is written; a ValidationError of one action cancels the transaction."""
    prepared: list[tuple[Any, Any, ItemJson | None, int, Any]] = []
    failed = False
    for position, (action, old) in enumerate(zip(actions, olds)):
        try:
            prepared.append(_prepare_one(ctx, action, old))
        except ValidationError as exc:
            message = exc.reason if isinstance(exc, InvalidValue) else exc.message
            reasons[position] = {"Code": "ValidationError", "Message": message}
            prepared.append((old, None, None, 0, None))
            failed = True
    if failed:
        raise _canceled(reasons)
    return prepared


def _prepare_one(ctx: EngineContext, action: _Action, old: tuple[bytes, int, int, str] | None
                 ) -> tuple[Any, Any, ItemJson | None, int, Any]:
    current = ctx.catalog.current(action.table)
    if action.kind in ("ConditionCheck", "Delete"):
        return old, None, None, 0, None
    if action.kind == "Put":
        assert action.item is not None and action.item_bytes is not None
        plan = plan_indexes(current, action.item, action.item_bytes, action.size)
        return old, action.item, action.item_bytes, action.size, plan
    old_item = orjson.loads(old[0]) if old is not None else None
    update = action.expressions.get("UpdateExpression")
    if old_item is None and ex.update_only_removes(update):
        return old, None, None, 0, None  # nothing to take away: the item stays absent
    base = old_item if old_item is not None else dict(action.key_item)
    names, values = action.expressions.names, action.expressions.values
    new_item, _paths = ex.apply_update(update, base, names, values,
                                       item_exists=old_item is not None)
    size = check_item(new_item)
    check_updated_size(size)
    new_bytes = item_json(new_item)
    return old, new_item, new_bytes, size, plan_updated_indexes(current, new_item, new_bytes, size)


async def transact_get_items(ctx: EngineContext, request: dict[str, Any]) -> Any:
    entries = request["TransactItems"]
    plans = []
    seen: set[tuple[int, EncodedKey]] = set()
    for entry in entries:
        spec = entry.get("Get")
        if spec is None:
            raise ValidationError("TransactItems can only contain Get actions")
        table = ctx.catalog.table(spec["TableName"])
        key = table.encode_key(spec["Key"])
        if (table.tid, key) in seen:
            raise ValidationError("Transaction request cannot include multiple operations on "
                                  "one item")
        seen.add((table.tid, key))
        expressions, attributes = projection_of(spec, table)
        plans.append((table, key, expressions, attributes))
    rows = ctx.storage.get_items_snapshot([(t.tid, *k) for t, k, _e, _a in plans])
    meter = capacity.Meter(capacity.wanted(request), "read")
    metering = meter.mode is not None
    # The answer is JSON bytes: each stored item (checksummed when read) as it is, unless
    # its Get projects.
    responses: list[bytes] = []
    for (table, _key, expressions, attributes), row in zip(plans, rows):
        if metering:
            meter.add(table, capacity.TRANSACTION_FACTOR *
                      capacity.read_units(row[1] if row else 0, consistent=True))
        if row is None:
            responses.append(b"{}")
        elif expressions.parsed or attributes is not None:
            responses.append(orjson.dumps({"Item": apply_projection(
                orjson.loads(row[0]), expressions, attributes)}))
        else:
            responses.append(b'{"Item":' + row[0] + b"}")
    result = b'{"Responses":[' + b",".join(responses) + b"]}"
    return capacity.attach(result, "ConsumedCapacity", meter.listed())


async def purge_expired_tokens(ctx: EngineContext, limit: int) -> int:
    """Forget up to `limit` ClientRequestTokens older than the idempotency window."""
    cutoff = ctx.now_ms() - IDEMPOTENCY_WINDOW_MS
    return int(await ctx.storage.write(lambda txn: txn.tokens_purge(cutoff, limit)))
