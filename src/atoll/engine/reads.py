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
projection needs them; a page of undecoded items is answered as JSON bytes joined from
them (the storage checked each row's CRC32 as it read it). LastEvaluatedKey comes from
the last row's key columns when they are strings, else from its item. A page of at most
SCAN_PAGE_ROWS that fetches no base items (a table's or an index's Scan page, an index's
Query page) is read at once without key columns, its items and sizes as two columns
(storage/pages.py), and taken whole when it is within 1 MB (without the size column when
the sizes count for nothing else: `_take_page`); LastEvaluatedKey is then read from its
last item.

A table Query page of at most SCAN_PAGE_ROWS reads no key columns either
(`Storage.query_page`). A table Query of a shape accepted before (engine/queryplan.py)
skips the checks that depend on its shape alone and joins the full path at its key range
(`_query_table`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
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
from atoll.storage.protocol import SCAN_PAGE_ROWS

MAX_PAGE_BYTES = 1024 * 1024
_HASH_SPACE = 1 << 32
_QUERY_EXPRESSIONS = ("KeyConditionExpression", "FilterExpression", "ProjectionExpression")
_QUERY_MIXING = _QUERY_EXPRESSIONS[::-1]  # the order DynamoDB's message names them
_SCAN_EXPRESSIONS = ("FilterExpression", "ProjectionExpression")
# Legacy parameters, in the order DynamoDB lists them in messages.
_QUERY_LEGACY = ("AttributesToGet", "QueryFilter", "ConditionalOperator", "KeyConditions")
_SCAN_LEGACY = ("AttributesToGet", "ScanFilter", "ConditionalOperator")

Bound = tuple[bytes, bool]  # (encoded value, inclusive)
_NO_EXPRESSIONS = RequestExpressions({}, ())  # a planned Query's: no filter, no projection


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
        self.items: list[Any] = []  # decoded pages: the items answered
        self.raw: list[bytes] = []  # the others: the stored items answered, as they are
        self.count = 0
        self.scanned = 0
        self.bytes_read = 0
        self.last_row: tuple[Any, ...] | None = None  # the last row read, (..., item, size)

    def add(self, row: tuple[Any, ...]) -> bool:
        """Offer one row read from storage, (..., item, size), to a page that filters or
        projects (its item is decoded); False when the page is full (before it)."""
        size: int = row[-1]
        if self.scanned and self.bytes_read + size > MAX_PAGE_BYTES:
            return False
        self.scanned += 1
        self.bytes_read += size
        self.last_row = row
        item = orjson.loads(row[-2])
        if self.filter is not None and not ex.evaluate_condition(
                self.filter, item, self.expressions.names, self.expressions.values):
            return self.limit is None or self.scanned < self.limit
        self.count += 1
        if not self.count_only:
            self.items.append(apply_projection(item, self.expressions, self.attributes))
        return self.limit is None or self.scanned < self.limit

    def take(self, rows: Iterable[tuple[Any, ...]]) -> bool:
        """`add` of every row, for a page that neither filters nor projects (the hot path of
        Query and Scan): each item is kept as the bytes it was stored as, for `result` to
        join into the answer, in one loop with no call per row. The storage verified each
        row's checksum as it read it, before handing it on."""
        limit = self.limit if self.limit is not None else -1
        keep = not self.count_only
        raw = self.raw
        scanned = self.scanned
        bytes_read = self.bytes_read
        more = False
        last: tuple[Any, ...] | None = None
        for row in rows:
            size: int = row[-1]
            if scanned and bytes_read + size > MAX_PAGE_BYTES:
                more = True  # this item is not part of the page
                break
            scanned += 1
            bytes_read += size
            last = row
            if keep:
                raw.append(row[-2])
            if scanned == limit:
                more = True
                break
        if last is not None:
            self.last_row = last
        self.count += scanned - self.scanned
        self.scanned = scanned
        self.bytes_read = bytes_read
        return more

    def take_page(self, items: Sequence[bytes], sizes: Sequence[int]) -> bool:
        """`_fill` of a page read at once (at most Limit rows, as two columns: see
        storage/pages.py). A page that neither filters nor projects and is within 1 MB
        takes them all with no step per row; any other goes row by row."""
        total = sum(sizes)
        if self.decode or self.scanned or total > MAX_PAGE_BYTES:
            return _fill(self, zip(items, sizes))
        n = len(items)
        if n:
            self.last_row = (items[-1], sizes[-1])
            self.scanned = self.count = n
            self.bytes_read = total
            if not self.count_only:
                self.raw = list(items)
        return n == self.limit

    def last(self, more: bool) -> tuple[Any, ...] | None:
        """The row LastEvaluatedKey is made from (None: the page is the last one)."""
        return self.last_row if more else None

    def result(self, table: TableDef, more: bool, index: IndexDef | None = None,
               last_key: dict[str, Any] | None = None) -> Any:
        """The page's answer: a dict of the decoded items if it filtered or projected,
        else JSON bytes joined from the stored items (as GetItem answers). `last_key`:
        LastEvaluatedKey if the caller made it from the last row's key columns; else,
        when more may follow, it is taken from the last item."""
        if last_key is None and more and self.last_row is not None:
            last = orjson.loads(self.last_row[-2])
            last_key = table.key_of(last)
            if index is not None:
                last_key.update({name: last[name] for name in index.key_names()})
        if not self.decode:
            # the items' bytes are copied once, by the final join
            if self.count_only:
                parts = [b'{"Count":']
            else:
                parts = [b'{"Items":[']
                parts += _commas(self.raw)
                parts.append(b'],"Count":')
            parts += [str(self.count).encode(), b',"ScannedCount":', str(self.scanned).encode()]
            if last_key is not None:
                parts += [b',"LastEvaluatedKey":', orjson.dumps(last_key)]
            parts.append(b"}")
            return b"".join(parts)
        result: dict[str, Any] = {}
        if not self.count_only:
            result["Items"] = self.items
        result["Count"] = self.count
        result["ScannedCount"] = self.scanned
        if last_key is not None:
            result["LastEvaluatedKey"] = last_key
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


def _commas(items: list[bytes]) -> list[bytes]:
    """The items with a comma between each two, for one join with the rest of an answer."""
    if len(items) < 2:
        return items
    out = [b","] * (2 * len(items) - 1)
    out[::2] = items
    return out


def _fill(page: _Page, rows: Iterable[tuple[Any, ...]]) -> bool:
    """Feed stored rows, whose last two fields are (item, size), into the page; True when
    it stopped early (at Limit, or before an item past 1 MB: more items may follow)."""
    if not page.decode:
        return page.take(rows)
    for row in rows:
        if not page.add(row):
            return True
    return False


def _take_page(page: _Page, request: dict[str, Any],
               read: Callable[[bool], tuple[Sequence[bytes], Sequence[int]]]) -> bool:
    """Fill the page from one page read, `read(sized)` (storage/pages.py). Its sizes are
    read only where they count: for a page that filters or projects (row by row), or whose
    capacity is asked for; else the items' lengths bound the page, and one whose lengths
    pass 1 MB is read again with its sizes."""
    sized = page.decode or "ReturnConsumedCapacity" in request
    items, sizes = read(sized)
    if not sized and sum(sizes) > MAX_PAGE_BYTES:
        items, sizes = read(True)
    return page.take_page(items, sizes)


def _string_key(table: TableDef, index: IndexDef | None, pk: bytes, sk: bytes,
                read_pk: bytes = b"", read_sk: bytes = b"") -> dict[str, Any] | None:
    """LastEvaluatedKey from a row's key columns: the table's (`pk`, `sk`) and the index's
    (`read_pk`, `read_sk`), without decoding the item. Only for string keys, whose stored
    encoding is their UTF-8 text; None if a key is a number or binary (the item is then
    decoded, so the key reads exactly as the item stored it)."""
    types = table.attribute_types
    if types[table.hash_key] != "S":
        return None
    key: dict[str, Any] = {table.hash_key: {"S": pk.decode()}}
    if table.range_key is not None:
        if types[table.range_key] != "S":
            return None
        key[table.range_key] = {"S": sk.decode()}
    if index is not None:
        if types[index.hash_key] != "S":
            return None
        key[index.hash_key] = {"S": read_pk.decode()}
        if index.range_key is not None:
            if types[index.range_key] != "S":
                return None
            key[index.range_key] = {"S": read_sk.decode()}
    return key


async def query(ctx: EngineContext, request: dict[str, Any]) -> Any:
    return query_now(ctx, request)


def query_now(ctx: EngineContext, request: dict[str, Any]) -> Any:
    """Query's answer: it never waits (engine.NOW_HANDLERS)."""
    table = ctx.catalog.table(request["TableName"])
    planned = ctx.query_plans.resolve(table, request)
    if planned is not None:  # a shape accepted before: its values checked (queryplan.py)
        return _query_table(ctx, request, table, planned, _NO_EXPRESSIONS, "ALL_ATTRIBUTES")
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
    kc = expressions.get("KeyConditionExpression")
    key_range = ex.resolve_key_condition(
        kc, expressions.names, expressions.values, table.hash_key, table.range_key,
        table.attribute_types, validated="KeyConditionExpression" in expressions.validated)
    if "KeyConditionExpression" in expressions.validated:  # (not legacy KeyConditions)
        ctx.query_plans.remember(table, request, kc, expressions.names, expressions.values)
    return _query_table(ctx, request, table, key_range, expressions, select)


def _query_table(ctx: EngineContext, request: dict[str, Any], table: TableDef,
                 key_range: ex.KeyRange, expressions: RequestExpressions, select: str) -> Any:
    """A table Query's page, from its checked key range on."""
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
    limit = page.limit
    if limit is not None and limit <= SCAN_PAGE_ROWS:
        # Rows without their sort keys; LastEvaluatedKey is read from the last item.
        more = _fill(page, ctx.storage.query_page(table.tid, h, pk, lower, upper, forward,
                                                  limit))
        return _with_capacity(page.result(table, more), page, request, table, None)
    more = _fill(page, ctx.storage.query_items(table.tid, h, pk, lower, upper, forward, limit))
    last = page.last(more)  # (sk, item, size)
    key = _string_key(table, None, pk, last[0]) if last is not None else None
    return _with_capacity(page.result(table, more, None, key), page, request, table, None)


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


def _with_capacity(result: Any, page: _Page, request: dict[str, Any],
                   table: TableDef, index: IndexDef | None) -> Any:
    if "ReturnConsumedCapacity" in request:
        return capacity.attach(result, "ConsumedCapacity", page.consumed(request, table, index))
    return result


def _fetches_base(index: IndexDef, page: _Page) -> bool:
    """Does a page of this index read each base item (an LSI lacking asked-for attributes)?"""
    return (index.kind == LSI and index.projection != "ALL"
            and (page.decode or not page.count_only)
            and page.select != "ALL_PROJECTED_ATTRIBUTES")


def _base_items(ctx: EngineContext, table: TableDef, rows: Iterator[tuple[Any, ...]]
                ) -> Iterator[tuple[Any, ...]]:
    """The base items, as (item, size), of index rows whose last four fields are (base pk,
    base sk, item, size). A base item gone since is skipped, so the storage is given no
    limit for such a page (a generator function: see _fill's callers)."""
    for row in rows:
        base_pk: bytes = row[-4]
        base_sk: bytes = row[-3]
        found = ctx.storage.get_item(table.tid, partition_hash(base_pk), base_pk, base_sk)
        if found is not None:
            yield found


def _encode_partition(value: dict[str, Any], kind: str, name: str) -> bytes:
    """The partition key value of a key condition (an empty S/B is not a key, as in an item)."""
    if value.get(kind) == "":
        raise ValidationError(
            "One or more parameter values are not valid. The AttributeValue for a key "
            f"attribute cannot contain an empty {'binary' if kind == 'B' else 'string'} value. "
            f"Key: {name}")
    return encode_key_value(value, kind)


def _query_index(ctx: EngineContext, request: dict[str, Any], table: TableDef, index: IndexDef,
                 expressions: RequestExpressions, select: str) -> Any:
    key_range = ex.resolve_key_condition(
        expressions.get("KeyConditionExpression"), expressions.names, expressions.values,
        index.hash_key, index.range_key, table.attribute_types,
        validated="KeyConditionExpression" in expressions.validated)
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
    fetch = _fetches_base(index, page)
    if not fetch and page.limit is not None and page.limit <= SCAN_PAGE_ROWS:
        # Rows without their keys; LastEvaluatedKey is read from the last item.
        limit = page.limit
        more = _take_page(page, request, lambda sized: ctx.storage.query_index_page(
            table.tid, index.iid, partition_hash(pk), pk, lower, upper, forward, after, limit,
            sized))
        return _with_capacity(page.result(table, more, index), page, request, table, index)
    rows = ctx.storage.query_index(table.tid, index.iid, partition_hash(pk), pk, lower, upper,
                                   forward, after, None if fetch else page.limit)
    more = _fill(page, _base_items(ctx, table, rows) if fetch else rows)
    last = None if fetch else page.last(more)  # (sk, base_pk, base_sk, item, size)
    key = _string_key(table, index, last[1], last[2], pk, last[0]) if last is not None else None
    return _with_capacity(page.result(table, more, index, key), page, request, table, index)


async def scan(ctx: EngineContext, request: dict[str, Any]) -> Any:
    return scan_now(ctx, request)


def scan_now(ctx: EngineContext, request: dict[str, Any]) -> Any:
    """Scan's answer: it never waits (engine.NOW_HANDLERS)."""
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
        fetch = _fetches_base(index, page)
        if not fetch and page.limit is not None and page.limit <= SCAN_PAGE_ROWS:
            limit = page.limit
            more = _take_page(page, request, lambda sized: ctx.storage.scan_index_page(
                table.tid, index.iid, after_index, h_end, h_start, limit, sized))
            return _with_capacity(page.result(table, more, index), page, request, table,
                                  index)
        index_rows = ctx.storage.scan_index(table.tid, index.iid, after_index, h_end, h_start,
                                            None if fetch else page.limit)
        more = _fill(page, _base_items(ctx, table, index_rows) if fetch else index_rows)
        last = None if fetch else page.last(more)  # (h, pk, sk, base_pk, base_sk, item, size)
        key = (_string_key(table, index, last[3], last[4], last[1], last[2])
               if last is not None else None)
        return _with_capacity(page.result(table, more, index, key), page, request, table,
                              index)
    after = (decoded.h, decoded.pk, decoded.sk) if decoded is not None else None
    page = _Page(request, expressions, select)
    limit = page.limit
    if limit is not None and limit <= SCAN_PAGE_ROWS:
        # Rows without their keys; LastEvaluatedKey is read from the last item.
        page_limit = limit
        more = _take_page(page, request, lambda sized: ctx.storage.scan_page(
            table.tid, after, h_end, h_start, page_limit, sized))
        return _with_capacity(page.result(table, more), page, request, table, None)
    more = _fill(page, ctx.storage.scan_items(table.tid, after, h_end, h_start, limit))
    last = page.last(more)  # (h, pk, sk, item, size)
    key = _string_key(table, None, last[1], last[2]) if last is not None else None
    return _with_capacity(page.result(table, more, None, key), page, request, table, None)


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
