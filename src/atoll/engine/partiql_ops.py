"""ExecuteStatement, BatchExecuteStatement and ExecuteTransaction: PartiQL run as the
DynamoDB requests it translates into.

Theory of operation: the pure package `atoll.partiql` parses a statement and translates
it, given the table's key schema, into GetItem/Query/Scan/PutItem/UpdateItem/DeleteItem
requests or TransactGetItems/TransactWriteItems actions. This shell runs them through
those operations' own handlers and nothing else, so every statement is validated,
executed, written (one storage transaction and one changelog record per request) and
replicated exactly as the request it stands for; an ExecuteTransaction of writes is one
TransactWriteItems, so it is atomic, one changelog record, and idempotent under its
ClientRequestToken.

A statement's table schema (key and index keys) is read from the catalog's request view,
the definitions the translated requests are then validated against.

What DynamoDB answers (developer guide, "PartiQL ... statements for DynamoDB", API
reference ExecuteStatement / BatchExecuteStatement / ExecuteTransaction):
- SELECT: `Items` (and `NextToken` + `LastEvaluatedKey` when a page stops early); writes:
  `Items: []`, or the RETURNING item. A page stops where a read stops (Limit items read,
  or the engine's 1 MB page); a SELECT of several reads also starts none once its page
  holds PAGE_BYTES.
- INSERT of an existing key: DuplicateItemException (in a transaction, the cancellation
  reason DuplicateItem); UPDATE of a missing item or a false WHERE condition:
  ConditionalCheckFailedException.
- BatchExecuteStatement: HTTP 200 with one response per statement, failures as
  `Error {Code, Message}`; reads and writes cannot be mixed; each statement runs on its
  own (a batch is not atomic).
- ExecuteTransaction: all reads (TransactGetItems) or all writes (TransactWriteItems,
  EXISTS as a ConditionCheck); a statement's validation failure names its position.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from atoll import partiql
from atoll.engine import items, reads, transactions
from atoll.engine.context import EngineContext
from atoll.errors import (
    AtollError,
    ConditionalCheckFailed,
    DuplicateItem,
    ItemCollectionSizeLimitExceeded,
    ResourceNotFound,
    TransactionCanceled,
    TransactionConflict,
    ValidationError,
)
from atoll.partiql import paging

# A SELECT of several reads (one per partition key value) starts no further read once its
# page holds this much; each read is itself bounded by the engine's 1 MB page.
PAGE_BYTES = 1024 * 1024
DUPLICATE = "Duplicate primary key exists in table"
MIXED_BATCH = "Read and write requests together in the same batch is not supported."
MIXED_TRANSACTION = ("ExecuteTransaction API does not support both read and write operations "
                     "in the same request.")
EXISTS_OUTSIDE = "EXISTS can only be used in ExecuteTransaction write requests."
_TRANSACT_KINDS = {"PutItem": "Put", "UpdateItem": "Update", "DeleteItem": "Delete",
                   "ConditionCheck": "ConditionCheck"}
# Per-statement error codes of BatchExecuteStatement (BatchStatementErrorCodeEnum).
_BATCH_CODES: tuple[tuple[type[AtollError], str], ...] = (
    (ConditionalCheckFailed, "ConditionalCheckFailed"),
    (DuplicateItem, "DuplicateItem"),
    (ResourceNotFound, "ResourceNotFound"),
    (TransactionConflict, "TransactionConflict"),
    (ItemCollectionSizeLimitExceeded, "ItemCollectionSizeLimitExceeded"),
    (ValidationError, "ValidationError"),
)
_BATCH_ERRORS = tuple(cls for cls, _code in _BATCH_CODES)

# The operations statements translate into, by name (a plan names its operation).
_HANDLERS: dict[str, Callable[[EngineContext, dict[str, Any]], Awaitable[Any]]] = {
    "GetItem": items.get_item, "PutItem": items.put_item,
    "UpdateItem": items.update_item, "DeleteItem": items.delete_item,
    "Query": reads.query, "Scan": reads.scan,
    "TransactGetItems": transactions.transact_get_items,
    "TransactWriteItems": transactions.transact_write_items,
}

async def _handle(ctx: EngineContext, operation: str, request: dict[str, Any]) -> Any:
    return await _HANDLERS[operation](ctx, request)


async def _schema(ctx: EngineContext, table: str, index: str | None = None
                  ) -> partiql.TableSchema:
    """What the translator needs of `table`, from the catalog's request view (the same
    definition the translated requests are validated against)."""
    definition = ctx.catalog.table(table)
    indexes = {i.name: partiql.IndexSchema(i.name, i.kind, i.hash_key, i.range_key,
                                           i.projection) for i in definition.indexes}
    return partiql.TableSchema(definition.name, definition.hash_key, definition.range_key,
                               dict(definition.attribute_types), indexes)


def _plain(result: Any) -> dict[str, Any]:
    """A handler's answer as a dict (the fast paths answer raw JSON bytes)."""
    if type(result) is bytes:
        decoded: dict[str, Any] = orjson.loads(result)
        return decoded
    answer: dict[str, Any] = result
    return answer


def _decoded(items: list[Any]) -> list[dict[str, Any]]:
    """Items that may still be raw JSON fragments, as dicts."""
    decoded: list[dict[str, Any]] = orjson.loads(orjson.dumps(items))
    return decoded


def _index_of(statement: partiql.Statement) -> str | None:
    return statement.source.index if isinstance(statement, partiql.Select) else None


# --- ExecuteStatement ----------------------------------------------------------------------

async def execute_statement(ctx: EngineContext, request: dict[str, Any]) -> Any:
    text: str = request["Statement"]
    parameters = request.get("Parameters")
    digest = paging.digest(text, parameters)
    statement = partiql.parse(text, parameters)
    if isinstance(statement, partiql.Exists):
        raise ValidationError(EXISTS_OUTSIDE)
    schema = await _schema(ctx, partiql.table_of(statement), _index_of(statement))
    if isinstance(statement, partiql.Select):
        plan = partiql.translate_select(statement, schema, text,
                                        consistent_read=bool(request.get("ConsistentRead")))
        return await _run_select(ctx, plan, request, digest)
    write = partiql.translate_write(statement, schema, text)
    result = await _run_write(ctx, write, request,
                              request.get("ReturnValuesOnConditionCheckFailure"))
    answer: dict[str, Any] = {"Items": [result["Attributes"]] if result.get("Attributes") else []}
    if "ConsumedCapacity" in result:
        answer["ConsumedCapacity"] = result["ConsumedCapacity"]
    return answer


async def _run_select(ctx: EngineContext, plan: partiql.SelectPlan, request: dict[str, Any],
                      digest: str) -> dict[str, Any]:
    """Run a SELECT's reads in order until one stops early or Limit items were read."""
    first = 0
    start_key: dict[str, Any] | None = None
    token = request.get("NextToken")
    if token is not None:
        first, start_key = paging.decode(token, digest)
        if first >= len(plan.reads):
            raise ValidationError(paging.INVALID)
    remaining: int | None = request.get("Limit")
    items: list[Any] = []
    page_bytes = 0
    consumed: list[dict[str, Any]] = []
    answer: dict[str, Any] = {}
    for position in range(first, len(plan.reads)):
        operation, base = plan.reads[position]
        read = _read_request(base, request, operation, remaining,
                             start_key if position == first else None)
        result = _plain(await _handle(ctx, operation, read))
        if "ConsumedCapacity" in result:
            consumed.append(result["ConsumedCapacity"])
        if operation == "GetItem":
            found: list[Any] = [result["Item"]] if "Item" in result else []
            scanned = 1
        else:
            found = result["Items"]
            scanned = result["ScannedCount"]
        finished = _finish(plan, found)
        items.extend(finished)
        last_key = result.get("LastEvaluatedKey")
        if last_key is not None:
            answer["NextToken"] = paging.encode(digest, position, last_key)
            answer["LastEvaluatedKey"] = last_key
            break
        if remaining is not None:
            remaining -= scanned
        if position + 1 < len(plan.reads):
            if finished:
                page_bytes += len(orjson.dumps(finished))
            if (remaining is not None and remaining <= 0) or page_bytes >= PAGE_BYTES:
                answer["NextToken"] = paging.encode(digest, position + 1, None)
                break
    answer["Items"] = items
    if consumed:
        answer["ConsumedCapacity"] = _merged_capacity(consumed)
    return answer


def _read_request(base: dict[str, Any], request: dict[str, Any], operation: str,
                  limit: int | None, start_key: dict[str, Any] | None) -> dict[str, Any]:
    read = dict(base)
    if request.get("ConsistentRead"):
        read["ConsistentRead"] = True
    if "ReturnConsumedCapacity" in request:
        read["ReturnConsumedCapacity"] = request["ReturnConsumedCapacity"]
    if operation != "GetItem":
        if limit is not None:
            read["Limit"] = limit
        if start_key is not None:
            read["ExclusiveStartKey"] = start_key
    return read


def _finish(plan: partiql.SelectPlan, found: list[Any]) -> list[Any]:
    """Apply the residual condition and the projection to the items a read returned."""
    if not found or (plan.residual is None and plan.projection is None):
        return found
    residual = plan.residual
    out: list[Any] = []
    for item in _decoded(found):
        if residual is not None and not partiql.keeps(residual.condition, residual.names,
                                                      residual.values, item):
            continue
        out.append(partiql.reshape(item, plan.projection))
    return out


async def _run_write(ctx: EngineContext, plan: partiql.WritePlan, request: dict[str, Any],
                     on_failure: Any) -> dict[str, Any]:
    """Run one INSERT/UPDATE/DELETE; an INSERT's failed condition is a duplicate key."""
    write = dict(plan.request)
    if "ReturnConsumedCapacity" in request:
        write["ReturnConsumedCapacity"] = request["ReturnConsumedCapacity"]
    if on_failure is not None and plan.kind != "INSERT":
        write["ReturnValuesOnConditionCheckFailure"] = on_failure
    try:
        return _plain(await _handle(ctx, plan.operation, write))
    except ConditionalCheckFailed:
        if plan.kind == "INSERT":
            raise DuplicateItem(DUPLICATE) from None
        raise


def _merged_capacity(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One ConsumedCapacity for several reads of one table: units summed, member by member."""
    merged: dict[str, Any] = {}
    for part in parts:
        _add_units(merged, part)
    return merged


def _add_units(into: dict[str, Any], part: dict[str, Any]) -> None:
    for name, value in part.items():
        if isinstance(value, dict):
            inner = into.get(name)
            if not isinstance(inner, dict):
                inner = into[name] = {}
            _add_units(inner, value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            into[name] = into.get(name, 0.0) + value
        else:
            into[name] = value


def _capacity_by_table(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    tables: dict[str, list[dict[str, Any]]] = {}
    for part in parts:
        tables.setdefault(str(part.get("TableName")), []).append(part)
    return [_merged_capacity(group) for group in tables.values()]


# --- BatchExecuteStatement -----------------------------------------------------------------

async def batch_execute_statement(ctx: EngineContext, request: dict[str, Any]) -> Any:
    entries: list[dict[str, Any]] = request["Statements"]
    parsed: list[partiql.Statement | AtollError] = []
    reads = writes = 0
    for entry in entries:
        try:
            statement = partiql.parse(entry["Statement"], entry.get("Parameters"))
            if isinstance(statement, partiql.Exists):
                raise ValidationError(EXISTS_OUTSIDE)
        except ValidationError as error:
            parsed.append(error)
            continue
        parsed.append(statement)
        if partiql.is_read(statement):
            reads += 1
        else:
            writes += 1
    if reads and writes:
        raise ValidationError(MIXED_BATCH)
    responses: list[dict[str, Any]] = []
    consumed: list[dict[str, Any]] = []
    for entry, outcome in zip(entries, parsed):
        if isinstance(outcome, AtollError):
            responses.append({"Error": _batch_error(outcome)})
            continue
        responses.append(await _batch_one(ctx, entry, outcome, request, consumed))
    answer: dict[str, Any] = {"Responses": responses}
    if "ReturnConsumedCapacity" in request and request["ReturnConsumedCapacity"] != "NONE":
        answer["ConsumedCapacity"] = _capacity_by_table(consumed)
    return answer


async def _batch_one(ctx: EngineContext, entry: dict[str, Any], statement: partiql.Statement,
                     request: dict[str, Any], consumed: list[dict[str, Any]]) -> dict[str, Any]:
    """One statement of a batch: its response, or its error (with the table once it ran)."""
    text: str = entry["Statement"]
    table = partiql.table_of(statement)
    try:
        schema = await _schema(ctx, table, _index_of(statement))
        if isinstance(statement, partiql.Select):
            plan = partiql.translate_select(statement, schema, text, partiql.BATCH)
            operation, base = plan.reads[0]
        else:
            write = partiql.translate_write(statement, schema, text)
    except AtollError as error:
        if not isinstance(error, _BATCH_ERRORS):
            raise
        return {"Error": _batch_error(error)}
    try:
        if isinstance(statement, partiql.Select):
            read = _read_request(base, {**request, "ConsistentRead": entry.get("ConsistentRead")},
                                 operation, None, None)
            result = _plain(await _handle(ctx, operation, read))
            found = _finish(plan, [result["Item"]] if "Item" in result else [])
            response: dict[str, Any] = {"TableName": table}
            if found:
                response["Item"] = found[0]
        else:
            result = await _run_write(ctx, write, request, None)
            response = {"TableName": table}
            if result.get("Attributes"):
                response["Item"] = result["Attributes"]
    except AtollError as error:
        if not isinstance(error, _BATCH_ERRORS):
            raise
        return {"Error": _batch_error(error), "TableName": table}
    if "ConsumedCapacity" in result:
        consumed.append(result["ConsumedCapacity"])
    return response


def _batch_error(error: AtollError) -> dict[str, Any]:
    code = next(code for cls, code in _BATCH_CODES if isinstance(error, cls))
    return {"Code": code, "Message": error.message}


# --- ExecuteTransaction --------------------------------------------------------------------

async def execute_transaction(ctx: EngineContext, request: dict[str, Any]) -> Any:
    entries: list[dict[str, Any]] = request["TransactStatements"]
    statements: list[partiql.Statement] = []
    for position, entry in enumerate(entries):
        try:
            statement = partiql.parse(entry["Statement"], entry.get("Parameters"))
            if isinstance(statement, (partiql.Update, partiql.Delete)) and statement.returning:
                raise ValidationError("RETURNING clause is not supported in ExecuteTransaction.")
        except ValidationError as error:
            raise _in_statement(position, error) from None
        statements.append(statement)
    reads = sum(1 for s in statements if partiql.is_read(s))
    if reads and reads != len(statements):
        raise ValidationError(MIXED_TRANSACTION)
    if reads:
        return await _transact_reads(ctx, entries, statements, request)
    return await _transact_writes(ctx, entries, statements, request)


def _in_statement(position: int, error: ValidationError) -> ValidationError:
    """A statement's validation failure, prefixed with its position as DynamoDB does."""
    return ValidationError(f"Validation failed in TransactStatements[{position}]: "
                           f"{error.message}")


async def _transact_reads(ctx: EngineContext, entries: list[dict[str, Any]],
                          statements: list[partiql.Statement], request: dict[str, Any]) -> Any:
    plans: list[partiql.SelectPlan] = []
    for position, (entry, statement) in enumerate(zip(entries, statements)):
        assert isinstance(statement, partiql.Select)
        schema = await _schema(ctx, statement.source.table)
        try:
            plans.append(partiql.translate_select(statement, schema, entry["Statement"],
                                                  partiql.TRANSACTION))
        except ValidationError as error:
            raise _in_statement(position, error) from None
    transact: dict[str, Any] = {"TransactItems": [{"Get": plan.reads[0][1]} for plan in plans]}
    if "ReturnConsumedCapacity" in request:
        transact["ReturnConsumedCapacity"] = request["ReturnConsumedCapacity"]
    result = _plain(await _handle(ctx, "TransactGetItems", transact))
    responses: list[dict[str, Any]] = []
    for plan, got in zip(plans, result["Responses"]):
        found = _finish(plan, [got["Item"]] if "Item" in got else [])
        responses.append({"Item": found[0]} if found else {})
    answer: dict[str, Any] = {"Responses": responses}
    if "ConsumedCapacity" in result:
        answer["ConsumedCapacity"] = result["ConsumedCapacity"]
    return answer


async def _transact_writes(ctx: EngineContext, entries: list[dict[str, Any]],
                           statements: list[partiql.Statement], request: dict[str, Any]) -> Any:
    plans: list[partiql.WritePlan] = []
    for position, (entry, statement) in enumerate(zip(entries, statements)):
        schema = await _schema(ctx, partiql.table_of(statement))
        try:
            plans.append(partiql.translate_write(statement, schema, entry["Statement"]))
        except ValidationError as error:
            raise _in_statement(position, error) from None
    actions: list[dict[str, Any]] = []
    for entry, plan in zip(entries, plans):
        action = dict(plan.request)
        on_failure = entry.get("ReturnValuesOnConditionCheckFailure")
        if on_failure is not None and plan.kind != "INSERT":
            action["ReturnValuesOnConditionCheckFailure"] = on_failure
        actions.append({_TRANSACT_KINDS[plan.operation]: action})
    transact: dict[str, Any] = {"TransactItems": actions}
    for member in ("ClientRequestToken", "ReturnConsumedCapacity"):
        if member in request:
            transact[member] = request[member]
    try:
        result = _plain(await _handle(ctx, "TransactWriteItems", transact))
    except TransactionCanceled as canceled:
        raise _duplicates_named(canceled, plans) from None
    answer: dict[str, Any] = {}
    if "ConsumedCapacity" in result:
        answer["ConsumedCapacity"] = result["ConsumedCapacity"]
    return answer


def _duplicates_named(canceled: TransactionCanceled, plans: list[partiql.WritePlan]
                      ) -> TransactionCanceled:
    """An INSERT whose condition failed found its key taken: reason DuplicateItem."""
    reasons: list[dict[str, Any]] = []
    for plan, reason in zip(plans, canceled.reasons):
        if plan.kind == "INSERT" and reason.get("Code") == "ConditionalCheckFailed":
            reason = {"Code": "DuplicateItem", "Message": DUPLICATE}
        reasons.append(reason)
    codes = ", ".join(str(r["Code"]) for r in reasons)
    return TransactionCanceled("Transaction cancelled, please refer cancellation reasons for "
                               f"specific reasons [{codes}]", reasons)
