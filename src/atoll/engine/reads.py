"""Query and Scan: range scans over the primary-key index, paged like DynamoDB.

A page stops at `Limit` items *read* (before the filter, as DynamoDB counts) or once
1 MB of item data has been read; either way LastEvaluatedKey is the last item read.
Items travel as their stored JSON bytes and are decoded only when a filter or a
projection needs them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import orjson

from atoll import expressions as ex
from atoll.engine.expr import RequestExpressions
from atoll.engine.items import apply_projection
from atoll.engine.tabledef import TableDef
from atoll.errors import ValidationError
from atoll.model.keys import encode_key_value, partition_hash, prefix_successor

if TYPE_CHECKING:
    from atoll.engine.engine import Engine

MAX_PAGE_BYTES = 1024 * 1024
_HASH_SPACE = 1 << 32
_QUERY_EXPRESSIONS = ("KeyConditionExpression", "FilterExpression", "ProjectionExpression")
_SCAN_EXPRESSIONS = ("FilterExpression", "ProjectionExpression")
_LEGACY_READ = ("KeyConditions", "QueryFilter", "ScanFilter", "ConditionalOperator")

Bound = tuple[bytes, bool]  # (encoded value, inclusive)


def _reject_legacy(request: dict[str, Any]) -> None:
    for param in _LEGACY_READ:
        if request.get(param) is not None:
            raise ValidationError(f"The legacy parameter {param} is not supported yet by Atoll; "
                                  "use the expression parameters instead")


def _check_index(table: TableDef, request: dict[str, Any]) -> None:
    index = request.get("IndexName")
    if index is not None:
        raise ValidationError(
            f"The table does not have the specified index: {index}")


def _select(request: dict[str, Any]) -> str:
    select = request.get("Select")
    has_projection = (request.get("ProjectionExpression") is not None
                      or request.get("AttributesToGet") is not None)
    if select is None:
        return "SPECIFIC_ATTRIBUTES" if has_projection else "ALL_ATTRIBUTES"
    if select == "SPECIFIC_ATTRIBUTES" and not has_projection:
        raise ValidationError("1 validation error detected: SPECIFIC_ATTRIBUTES requires a "
                              "ProjectionExpression or AttributesToGet")
    if select in ("ALL_ATTRIBUTES", "COUNT") and has_projection:
        raise ValidationError(f"Cannot specify the ProjectionExpression when choosing to get {select}")
    if select == "ALL_PROJECTED_ATTRIBUTES" and request.get("IndexName") is None:
        raise ValidationError("ALL_PROJECTED_ATTRIBUTES can be used only when Querying using an "
                              "IndexName")
    return select


def _key_bounds(table: TableDef, key_range: Any) -> tuple[Bound | None, Bound | None]:
    op = key_range.op
    if op is None:
        return None, None
    kind = table.range_type or "S"
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

    def result(self, table: TableDef, more: bool) -> dict[str, Any]:
        result: dict[str, Any] = {}
        if not self.count_only:
            result["Items"] = self.items
        result["Count"] = self.count
        result["ScannedCount"] = self.scanned
        if more and self.last_item is not None:
            result["LastEvaluatedKey"] = table.key_of(orjson.loads(self.last_item))
        return result


def _fill(page: _Page, rows: Iterator[tuple[bytes, int]]) -> bool:
    """Feed rows into the page; True when it stopped early (more items may follow)."""
    for item_bytes, size in rows:
        if not page.add(item_bytes, size):
            if page.limit is not None and page.scanned >= page.limit:
                return True
            # stopped by the 1 MB limit before this item: it is not part of the page
            return True
    return False


async def query(engine: Engine, request: dict[str, Any]) -> dict[str, Any]:
    table = engine.table(request["TableName"])
    _reject_legacy(request)
    _check_index(table, request)
    if request.get("KeyConditionExpression") is None:
        raise ValidationError("Either the KeyConditions or KeyConditionExpression parameter must "
                              "be specified in the request.")
    select = _select(request)
    expressions = RequestExpressions(request, _QUERY_EXPRESSIONS)
    key_range = ex.resolve_key_condition(
        expressions.get("KeyConditionExpression"), expressions.names, expressions.values,
        table.hash_key, table.range_key, table.attribute_types)
    pk = encode_key_value(key_range.hash_value, table.hash_type)
    h = partition_hash(pk)
    lower, upper = _key_bounds(table, key_range)
    forward = request.get("ScanIndexForward", True)
    start = request.get("ExclusiveStartKey")
    if start is not None:
        start_h, start_pk, start_sk = _start_key(table, start)
        if start_pk != pk:
            raise ValidationError("The provided starting key is invalid: The provided key element "
                                  "does not match the query's partition key")
        if table.range_key is not None:
            if forward:
                lower = _tighter_lower(lower, (start_sk, False))
            else:
                upper = _tighter_upper(upper, (start_sk, False))
        else:
            return _Page(request, expressions, select).result(table, False)
    page = _Page(request, expressions, select)
    rows = ((item, size) for _sk, item, size in
            engine.storage.query_items(table.tid, h, pk, lower, upper, forward))
    more = _fill(page, rows)
    return page.result(table, more)


def _start_key(table: TableDef, start: dict[str, Any]) -> tuple[int, bytes, bytes]:
    try:
        return table.encode_key(start)
    except ValidationError as exc:
        raise ValidationError(f"The provided starting key is invalid: {exc.message}") from None


async def scan(engine: Engine, request: dict[str, Any]) -> dict[str, Any]:
    table = engine.table(request["TableName"])
    _reject_legacy(request)
    _check_index(table, request)
    select = _select(request)
    expressions = RequestExpressions(request, _SCAN_EXPRESSIONS)
    h_start, h_end = _segment_range(request)
    start = request.get("ExclusiveStartKey")
    after = _start_key(table, start) if start is not None else None
    if after is not None and not h_start <= after[0] < (h_end or _HASH_SPACE):
        raise ValidationError("The provided starting key is invalid: it does not belong to the "
                              "requested segment")
    page = _Page(request, expressions, select)
    rows = ((item, size) for _h, _pk, _sk, item, size in
            engine.storage.scan_items(table.tid, after, h_end, h_start))
    more = _fill(page, rows)
    return page.result(table, more)


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
