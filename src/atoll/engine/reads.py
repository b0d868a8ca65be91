"""Query and Scan: range scans over the primary-key index or a secondary index, paged
like DynamoDB.

With IndexName the rows come from `index_items` in index order (index key, then base
key, since index keys are not unique); LastEvaluatedKey then holds the table's key and
the index's key, as DynamoDB's does. A GSI serves only eventually consistent reads and
only its projected attributes; an LSI whose projection lacks what was asked for fetches
the base item (DynamoDB's "fetch from the table").

A page stops at `Limit` items *read* (before the filter, as DynamoDB counts) or once
1 MB of item data has been read; either way LastEvaluatedKey is the last item read.
Items travel as their stored JSON bytes and are decoded only when a filter or a
projection needs them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from atoll import expressions as ex
from atoll.engine import capacity, startkey
from atoll.engine.context import EngineContext
from atoll.engine.expr import RequestExpressions
from atoll.engine.indexdef import GSI, LSI, IndexDef
from atoll.engine.items import apply_projection
from atoll.engine.tabledef import TableDef
from atoll.errors import ValidationError
from atoll.expressions import legacy
from atoll.model.keys import encode_key_value, partition_hash, prefix_successor

MAX_PAGE_BYTES = 1024 * 1024
_HASH_SPACE = 1 << 32
_QUERY_EXPRESSIONS = ("KeyConditionExpression", "FilterExpression", "ProjectionExpression")
_QUERY_MIXING = _QUERY_EXPRESSIONS[::-1]  # the order DynamoDB's message names them
_SCAN_EXPRESSIONS = ("FilterExpression", "ProjectionExpression")
# Legacy parameters, in the order DynamoDB lists them in messages.
_QUERY_LEGACY = ("AttributesToGet", "QueryFilter", "ConditionalOperator", "KeyConditions")
_SCAN_LEGACY = ("AttributesToGet", "ScanFilter", "ConditionalOperator")

Bound = tuple[bytes, bool]  # (encoded value, inclusive)


def _check_index(table: TableDef, request: dict[str, Any]) -> IndexDef | None:
    name = request.get("IndexName")
    if name is None:
        return None
    index = table.index(name)
    if index.kind == GSI and request.get("ConsistentRead"):
        raise ValidationError("Consistent reads are not supported on global secondary indexes")
    if index.status != "ACTIVE":
        raise ValidationError(f"Cannot read from backfilling global secondary index: {name}")
    return index


def _select(request: dict[str, Any], index: IndexDef | None, operation: str) -> str:
    """The Select of a Query or Scan, checked against its projection and index.

    The messages are DynamoDB's, recorded against it in moto's aws_verified suite
    (tests/test_dynamodb/test_dynamodb_select.py): a Query reports them inside the
    "1 validation error detected: " envelope, a Scan bare."""
    select = request.get("Select")
    prefix = "1 validation error detected: " if operation == "Query" else ""
    projection = ("ProjectionExpression" if request.get("ProjectionExpression") is not None
                  else "AttributesToGet" if request.get("AttributesToGet") is not None else None)
    if select is None:
        if projection is not None:
            return "SPECIFIC_ATTRIBUTES"
        return "ALL_ATTRIBUTES" if index is None else "ALL_PROJECTED_ATTRIBUTES"
    if select == "ALL_PROJECTED_ATTRIBUTES" and request.get("IndexName") is None:
        raise ValidationError(f"{prefix}ALL_PROJECTED_ATTRIBUTES can be used only when Querying "
                              "using an IndexName")
    if select != "SPECIFIC_ATTRIBUTES" and projection is not None:
        wanted = "only the Count" if select == "COUNT" else select
        raise ValidationError(f"{prefix}Cannot specify the {projection} when choosing to get "
                              f"{wanted}")
    if select == "SPECIFIC_ATTRIBUTES" and projection is None:
        raise ValidationError(f"{prefix}Must specify the AttributesToGet or ProjectionExpression "
                              "when choosing to get SPECIFIC_ATTRIBUTES")
    if (select == "ALL_ATTRIBUTES" and index is not None and index.kind == GSI
            and index.projection != "ALL"):
        raise ValidationError(
            "One or more parameter values were invalid: Select type ALL_ATTRIBUTES is not "
            f"supported for global secondary index {index.name} because its projection type "
            "is not ALL")
    return select


def _key_bounds(kind: str, key_range: Any) -> tuple[Bound | None, Bound | None]:
    op = key_range.op
    if op is None:
        return None, None
    values = [encode_key_value(v, kind) for v in key_range.operands]
    if op == "=":
        return (values[0], True), (values[0], True)
    if op == "<":
        return None, (values[0], False)
    if op == "<=":
        return None, (values[0], True)
    if op == ">":
        return (values[0], False), None
    if op == ">=":
        return (values[0], True), None
    if op == "BETWEEN":
        return (values[0], True), (values[1], True)
    if op == "begins_with":
        successor = prefix_successor(values[0])
        return (values[0], True), ((successor, False) if successor is not None else None)
    raise ValidationError(f"Invalid operator used in KeyConditionExpression: {op}")


def _tighter_lower(a: Bound | None, b: Bound) -> Bound:
    if a is None or b[0] > a[0] or (b[0] == a[0] and not b[1]):
        return b
    return a


def _tighter_upper(a: Bound | None, b: Bound) -> Bound:
    if a is None or b[0] < a[0] or (b[0] == a[0] and not b[1]):
        return b
    return a


class _Page:
    """Collects one page of results."""

    def __init__(self, request: dict[str, Any], expressions: RequestExpressions,
                 select: str) -> None:
        self.limit = request.get("Limit")
        self.expressions = expressions
        self.attributes = request.get("AttributesToGet")
        self.filter = expressions.get("FilterExpression")
        self.decode = self.filter is not None or select == "SPECIFIC_ATTRIBUTES"
        self.count_only = select == "COUNT"
        self.select = select
        self.items: list[Any] = []
        self.count = 0
        self.scanned = 0
        self.bytes_read = 0
        self.last_item: bytes | None = None

    def add(self, item_bytes: bytes, size: int) -> bool:
        """Offer one item read from storage; False when the page is full (before it)."""
        if self.scanned and self.bytes_read + size > MAX_PAGE_BYTES:
            return False
        self.scanned += 1
        self.bytes_read += size
        self.last_item = item_bytes
        if self.decode:
            item = orjson.loads(item_bytes)
            if self.filter is not None and not ex.evaluate_condition(
                    self.filter, item, self.expressions.names, self.expressions.values):
                return self.limit is None or self.scanned < self.limit
            self.count += 1
            if not self.count_only:
                self.items.append(apply_projection(item, self.expressions, self.attributes))
        else:
            self.count += 1
            if not self.count_only:
                self.items.append(orjson.Fragment(item_bytes))
        return self.limit is None or self.scanned < self.limit

    def result(self, table: TableDef, more: bool, index: IndexDef | None = None
               ) -> dict[str, Any]:
        result: dict[str, Any] = {}
        if not self.count_only:
            result["Items"] = self.items
        result["Count"] = self.count
        result["ScannedCount"] = self.scanned
        if more and self.last_item is not None:
            last = orjson.loads(self.last_item)
            key = table.key_of(last)
            if index is not None:
                key.update({name: last[name] for name in index.key_names()})
            result["LastEvaluatedKey"] = key
        return result

    def consumed(self, request: dict[str, Any], table: TableDef,
                 index: IndexDef | None) -> dict[str, Any] | None:
        meter = capacity.Meter(capacity.wanted(request), "read")
        units = capacity.read_units(self.bytes_read, bool(request.get("ConsistentRead")))
        if index is None:
            meter.add(table, units)
        else:
            meter.add_index(table, index.name, units)
        return meter.single()


# Generator functions, not generator expressions: compiled by mypyc, a generator expression
# assigned to a name ran its source to the end before the page took its first row (a
# Query with Limit 10 read and checksummed its whole partition, a Scan page its table).
def _last_two(rows: Iterator[tuple[Any, ...]]) -> Iterator[tuple[bytes, int]]:
    """(item, size) of each stored row, lazily."""
    for row in rows:
        yield row[-2], row[-1]


def _last_four(rows: Iterator[tuple[Any, ...]]) -> Iterator[tuple[bytes, bytes, bytes, int]]:
    """(base pk, base sk, item, size) of each index row, lazily."""
    for row in rows:
        yield row[-4], row[-3], row[-2], row[-1]


def _fill(page: _Page, rows: Iterator[tuple[bytes, int]]) -> bool:
    """Feed rows into the page; True when it stopped early (more items may follow)."""
    for item_bytes, size in rows:
        if not page.add(item_bytes, size):
            if page.limit is not None and page.scanned >= page.limit:
                return True
            # stopped by the 1 MB limit before this item: it is not part of the page
            return True
    return False


async def query(ctx: EngineContext, request: dict[str, Any]) -> dict[str, Any]:
    table = ctx.catalog.table(request["TableName"])
    legacy.check_mixing(request, _QUERY_MIXING, _QUERY_LEGACY)
    index = _check_index(table, request)
    if request.get("KeyConditionExpression") is None and request.get("KeyConditions") is None:
        raise ValidationError("Either the KeyConditions or KeyConditionExpression parameter must "
                              "be specified in the request.")
    select = _select(request, index, "Query")
    expressions = RequestExpressions(request, _QUERY_EXPRESSIONS, _QUERY_LEGACY)
    expressions.check_scalar_keys(table, ("ProjectionExpression",))
    _check_filter_keys(request, expressions, index.key_names() if index else table.key_names())
    expressions.check_scalar_keys(table, ("FilterExpression",))
    if index is not None:
        return _query_index(ctx, request, table, index, expressions, select)
    key_range = ex.resolve_key_condition(
        expressions.get("KeyConditionExpression"), expressions.names, expressions.values,
        table.hash_key, table.range_key, table.attribute_types)
    pk = _encode_partition(key_range.hash_value, table.hash_type, table.hash_key)
    h = partition_hash(pk)
    lower, upper = _key_bounds(table.range_type or "S", key_range)
    forward = request.get("ScanIndexForward", True)
    start = request.get("ExclusiveStartKey")
    if start is not None:
        after = startkey.decode(table, None, start, scan=False)
        startkey.check_query(after, pk, key_range.op is not None, lower, upper)
        if table.range_key is None:  # the partition's one item was the last page
            return _Page(request, expressions, select).result(table, False)
        if forward:
            lower = _tighter_lower(lower, (after.sk, False))
        else:
            upper = _tighter_upper(upper, (after.sk, False))
    page = _Page(request, expressions, select)
    rows = _last_two(ctx.storage.query_items(table.tid, h, pk, lower, upper, forward))
    more = _fill(page, rows)
    return _with_capacity(page.result(table, more), page, request, table, None)


def _check_filter_keys(request: dict[str, Any], expressions: RequestExpressions,
                       keys: tuple[str, ...]) -> None:
    """A Query filters what its key condition selected: it may not test those keys."""
    condition = expressions.get("FilterExpression")
    if condition is None:
        return
    heads = ex.path_heads(condition, expressions.names)
    for name in keys:
        if name in heads:
            param = "QueryFilter" if "QueryFilter" in request else "Filter Expression"
            raise ValidationError(f"{param} can only contain non-primary key attributes: "
                                  f"Primary key attribute: {name}")


def _with_capacity(result: dict[str, Any], page: _Page, request: dict[str, Any],
                   table: TableDef, index: IndexDef | None) -> dict[str, Any]:
    if "ReturnConsumedCapacity" in request:
        return capacity.attach(result, "ConsumedCapacity", page.consumed(request, table, index))
    return result


def _index_rows(ctx: EngineContext, table: TableDef, index: IndexDef, page: _Page,
                rows: Iterator[tuple[bytes, bytes, bytes, int]]
                ) -> Iterator[tuple[bytes, int]]:
    """Index rows as (item, size); an LSI lacking asked-for attributes reads the base item."""
    fetch = (index.kind == LSI and index.projection != "ALL"
             and (page.decode or not page.count_only) and page.select != "ALL_PROJECTED_ATTRIBUTES")
    for base_pk, base_sk, item, size in rows:
        if fetch:
            row = ctx.storage.get_item(table.tid, partition_hash(base_pk), base_pk, base_sk)
            if row is None:
                continue
            item, size = row
        yield item, size


def _encode_partition(value: dict[str, Any], kind: str, name: str) -> bytes:
    """The partition key value of a key condition (an empty S/B is not a key, as in an item)."""
    if value.get(kind) == "":
        raise ValidationError(
            "One or more parameter values are not valid. The AttributeValue for a key "
            f"attribute cannot contain an empty {'binary' if kind == 'B' else 'string'} value. "
            f"Key: {name}")
    return encode_key_value(value, kind)


def _query_index(ctx: EngineContext, request: dict[str, Any], table: TableDef, index: IndexDef,
                 expressions: RequestExpressions, select: str) -> dict[str, Any]:
    key_range = ex.resolve_key_condition(
        expressions.get("KeyConditionExpression"), expressions.names, expressions.values,
        index.hash_key, index.range_key, table.attribute_types)
    types = table.attribute_types
    pk = _encode_partition(key_range.hash_value, types[index.hash_key], index.hash_key)
    lower, upper = _key_bounds(types[index.range_key] if index.range_key else "S", key_range)
    forward = request.get("ScanIndexForward", True)
    start = request.get("ExclusiveStartKey")
    after = None
    if start is not None:
        decoded = startkey.decode(table, index, start, scan=False)
        startkey.check_query(decoded, pk, key_range.op is not None, lower, upper)
        after = (decoded.read_sk, decoded.pk, decoded.sk)
    page = _Page(request, expressions, select)
    rows = _last_four(ctx.storage.query_index(
        table.tid, index.iid, partition_hash(pk), pk, lower, upper, forward, after))
    more = _fill(page, _index_rows(ctx, table, index, page, rows))
    return _with_capacity(page.result(table, more, index), page, request, table, index)


async def scan(ctx: EngineContext, request: dict[str, Any]) -> dict[str, Any]:
    table = ctx.catalog.table(request["TableName"])
    legacy.check_mixing(request, _SCAN_EXPRESSIONS[::-1], _SCAN_LEGACY)
    index = _check_index(table, request)
    select = _select(request, index, "Scan")
    expressions = RequestExpressions(request, _SCAN_EXPRESSIONS, _SCAN_LEGACY)
    expressions.check_scalar_keys(table, ("ProjectionExpression", "FilterExpression"))
    h_start, h_end = _segment_range(request)
    start = request.get("ExclusiveStartKey")
    decoded = startkey.decode(table, index, start, scan=True) if start is not None else None
    if decoded is not None and "Segment" in request:
        startkey.check_segment(decoded, h_start, h_end or _HASH_SPACE, request["Segment"],
                               request["TotalSegments"])
    if index is not None:
        after_index = None
        if decoded is not None:
            after_index = (partition_hash(decoded.read_pk), decoded.read_pk, decoded.read_sk,
                           decoded.pk, decoded.sk)
        page = _Page(request, expressions, select)
        index_rows = _last_four(ctx.storage.scan_index(table.tid, index.iid, after_index,
                                                          h_end, h_start))
        more = _fill(page, _index_rows(ctx, table, index, page, index_rows))
        return _with_capacity(page.result(table, more, index), page, request, table, index)
    after = (decoded.h, decoded.pk, decoded.sk) if decoded is not None else None
    page = _Page(request, expressions, select)
    rows = _last_two(ctx.storage.scan_items(table.tid, after, h_end, h_start))
    more = _fill(page, rows)
    return _with_capacity(page.result(table, more), page, request, table, None)


def _segment_range(request: dict[str, Any]) -> tuple[int, int | None]:
    segment = request.get("Segment")
    total = request.get("TotalSegments")
    if segment is None and total is None:
        return 0, None
    if total is None:
        raise ValidationError("The TotalSegments parameter is required but was not present in "
                              "the request when Segment parameter is present")
    if segment is None:
        raise ValidationError("The Segment parameter is required but was not present in the "
                              "request when parameter TotalSegments is present")
    if segment >= total:
        raise ValidationError("The Segment parameter is zero-based and must be less than "
                              f"parameter TotalSegments: Segment: {segment} is not less than "
                              f"TotalSegments: {total}")
    start = segment * _HASH_SPACE // total
    end = (segment + 1) * _HASH_SPACE // total
    return start, (end if end < _HASH_SPACE else None)
