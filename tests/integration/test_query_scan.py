"""Query and Scan against a live server.

References (DynamoDB Developer Guide): "Key condition expressions for Query" (=, <, <=, >,
>=, BETWEEN, begins_with on the sort key); "Query results are always sorted by the sort key
value. If the data type of the sort key is Number, the results are returned in numeric
order; otherwise, the results are returned in order of UTF-8 bytes"; ScanIndexForward=false
reverses it; "Paginating table query results" (a page holds at most 1 MB; continue with
LastEvaluatedKey as ExclusiveStartKey until it is absent); Select=COUNT; "Parallel scan"
(Segment/TotalSegments: each segment is a disjoint part of the table).
"""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.wire import expect_error, put_all
from tests.support import NodeDatabase, create_table

PK = {"S": "part"}

N_KEYS = ["-10", "-1.5", "0", "2", "10", "100", "1E+3", "-1E-5", "0.001"]
S_KEYS = ["a", "ab", "abc", "b", "ba", "B", "Z", "é", "z", "~", "\U0001f600", "\uffff", "ab\x00"]
B_KEYS = [b"\x00", b"\x01", b"\x01\x02", b"\x01\xff", b"\x7f", b"\x80", b"\xff", b"\xff\xff",
          b"\xff\x00"]


def _sk_value(kind: str, raw: Any) -> dict[str, Any]:
    return {kind: raw}


def _order_key(kind: str, raw: Any) -> Any:
    if kind == "N":
        return Decimal(raw)
    if kind == "S":
        return raw.encode("utf-8")  # "in order of UTF-8 bytes"
    return raw


@pytest.fixture(scope="module")
def sorted_tables(ddb: Any) -> dict[str, str]:
    """One table per sort-key type, one partition holding every key above plus a second
    partition that a Query must never see."""
    tables = {}
    for kind, keys in (("N", N_KEYS), ("S", S_KEYS), ("B", B_KEYS)):
        name = create_table(ddb, f"qs_sorted_{kind}", range_key=("sk", kind))
        items = [{"pk": PK, "sk": _sk_value(kind, k), "i": {"N": str(i)}} for i, k in enumerate(keys)]
        items += [{"pk": {"S": "other"}, "sk": _sk_value(kind, k)} for k in keys[:3]]
        put_all(ddb, name, items)
        tables[kind] = name
    return tables


def _query(ddb: Any, table: str, condition: str, values: dict[str, Any],
           **extra: Any) -> list[dict[str, Any]]:
    """All pages of a Query; the items in the order returned."""
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {
        "TableName": table, "KeyConditionExpression": "pk = :pk" + (f" AND {condition}" if condition else ""),
        "ExpressionAttributeValues": {":pk": PK, **values}, **extra}
    for _ in range(10_000):
        page = ddb.query(**params)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            return items
        params["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    raise AssertionError("Query paging did not end")


def _decode_sk(kind: str, item: dict[str, Any]) -> Any:
    value = item["sk"][kind]
    return Decimal(value) if kind == "N" else value


@pytest.mark.parametrize("kind,keys", [("N", N_KEYS), ("S", S_KEYS), ("B", B_KEYS)])
@pytest.mark.parametrize("forward", [True, False])
def test_query_returns_sort_key_order(ddb: Any, sorted_tables: dict[str, str], kind: str,
                                      keys: list[Any], forward: bool) -> None:
    got = [_decode_sk(kind, item) for item in
           _query(ddb, sorted_tables[kind], "", {}, ScanIndexForward=forward)]
    expected = sorted(keys, key=lambda k: _order_key(kind, k), reverse=not forward)
    if kind == "N":
        expected = [Decimal(k) for k in expected]
    assert got == expected


def test_number_sort_order_is_numeric_not_textual(ddb: Any, sorted_tables: dict[str, str]) -> None:
    got = [item["sk"]["N"] for item in _query(ddb, sorted_tables["N"], "", {})]
    # Canonical text, numerically ordered (textual order would put "-1.5" before "-10").
    assert got == ["-10", "-1.5", "-0.00001", "0", "0.001", "2", "10", "100", "1000"]


def _conditions(kind: str, keys: list[Any]) -> list[tuple[str, dict[str, Any], Any]]:
    """(condition, values, predicate over the order key) for every operator."""
    ordered = sorted(keys, key=lambda k: _order_key(kind, k))
    low, mid, high = ordered[1], ordered[len(ordered) // 2], ordered[-2]
    lo, mi, hi = (_order_key(kind, k) for k in (low, mid, high))
    v = lambda k: _sk_value(kind, k)  # noqa: E731
    cases = [
        ("sk = :a", {":a": v(mid)}, lambda x: x == mi),
        ("sk < :a", {":a": v(mid)}, lambda x: x < mi),
        ("sk <= :a", {":a": v(mid)}, lambda x: x <= mi),
        ("sk > :a", {":a": v(mid)}, lambda x: x > mi),
        ("sk >= :a", {":a": v(mid)}, lambda x: x >= mi),
        ("sk BETWEEN :a AND :b", {":a": v(low), ":b": v(high)}, lambda x: lo <= x <= hi),
        ("sk BETWEEN :a AND :b", {":a": v(mid), ":b": v(mid)}, lambda x: x == mi),
        ("#s > :a", {":a": v(mid)}, lambda x: x > mi),
    ]
    if kind == "S":
        for prefix in ("a", "ab", "z", "\U0001f600", "é", "nothing"):
            p = prefix.encode()
            cases.append(("begins_with(sk, :a)", {":a": v(prefix)},
                          lambda x, p=p: x.startswith(p)))
    if kind == "B":
        for prefix in (b"\x01", b"\xff", b"\xff\xff", b"\x00"):
            cases.append(("begins_with(sk, :a)", {":a": v(prefix)},
                          lambda x, p=prefix: x.startswith(p)))
    return cases


KEY_CONDITION_CASES = [(kind, keys, *case) for kind, keys in
                       (("N", N_KEYS), ("S", S_KEYS), ("B", B_KEYS))
                       for case in _conditions(kind, keys)]


@pytest.mark.parametrize("kind,keys,condition,values,predicate", KEY_CONDITION_CASES,
                         ids=[f"{c[0]}:{c[2]}:{list(c[3].values())}" for c in KEY_CONDITION_CASES])
@pytest.mark.parametrize("forward", [True, False])
def test_key_conditions(ddb: Any, sorted_tables: dict[str, str], kind: str, keys: list[Any],
                        condition: str, values: dict[str, Any], predicate: Any,
                        forward: bool) -> None:
    extra: dict[str, Any] = {"ScanIndexForward": forward}
    if "#s" in condition:
        extra["ExpressionAttributeNames"] = {"#s": "sk"}
    got = [_decode_sk(kind, item) for item in
           _query(ddb, sorted_tables[kind], condition, values, **extra)]
    expected = sorted((k for k in keys if predicate(_order_key(kind, k))),
                      key=lambda k: _order_key(kind, k), reverse=not forward)
    if kind == "N":
        expected = [Decimal(k) for k in expected]
    assert got == expected


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 100])
@pytest.mark.parametrize("forward", [True, False])
def test_query_limit_paging_visits_every_item_once(ddb: Any, sorted_tables: dict[str, str],
                                                   limit: int, forward: bool) -> None:
    table = sorted_tables["N"]
    pages = 0
    params: dict[str, Any] = {"TableName": table, "KeyConditionExpression": "pk = :pk",
                              "ExpressionAttributeValues": {":pk": PK}, "Limit": limit,
                              "ScanIndexForward": forward}
    seen: list[Decimal] = []
    while True:
        page = ddb.query(**params)
        pages += 1
        assert len(page["Items"]) <= limit
        assert page["Count"] == len(page["Items"]) == page["ScannedCount"]
        seen += [Decimal(item["sk"]["N"]) for item in page["Items"]]
        if "LastEvaluatedKey" not in page:
            break
        last = page["LastEvaluatedKey"]
        assert set(last) == {"pk", "sk"}
        assert last == {"pk": PK, "sk": page["Items"][-1]["sk"]}
        params["ExclusiveStartKey"] = last
    assert seen == sorted((Decimal(k) for k in N_KEYS), reverse=not forward)
    assert pages >= -(-len(N_KEYS) // limit)


def test_query_with_limit_and_key_condition_pages(ddb: Any, sorted_tables: dict[str, str]) -> None:
    got = [_decode_sk("N", i) for i in _query(ddb, sorted_tables["N"], "sk BETWEEN :a AND :b",
                                              {":a": {"N": "-2"}, ":b": {"N": "10"}}, Limit=2)]
    assert got == [Decimal(x) for x in ("-1.5", "-0.00001", "0", "0.001", "2", "10")]


def test_query_select_count(ddb: Any, sorted_tables: dict[str, str]) -> None:
    page = ddb.query(TableName=sorted_tables["N"], KeyConditionExpression="pk = :pk AND sk > :z",
                     ExpressionAttributeValues={":pk": PK, ":z": {"N": "0"}}, Select="COUNT")
    assert "Items" not in page
    assert page["Count"] == page["ScannedCount"] == 5


def test_query_of_unknown_partition_is_empty(ddb: Any, sorted_tables: dict[str, str]) -> None:
    page = ddb.query(TableName=sorted_tables["S"], KeyConditionExpression="pk = :pk",
                     ExpressionAttributeValues={":pk": {"S": "nobody"}})
    assert page["Items"] == [] and page["Count"] == 0
    assert "LastEvaluatedKey" not in page


def test_query_on_hash_only_table(ddb: Any, hash_table: str) -> None:
    put_all(ddb, hash_table, [{"pk": {"S": f"p{i}"}, "v": {"N": str(i)}} for i in range(3)])
    page = ddb.query(TableName=hash_table, KeyConditionExpression="pk = :pk",
                     ExpressionAttributeValues={":pk": {"S": "p1"}})
    assert page["Items"] == [{"pk": {"S": "p1"}, "v": {"N": "1"}}]


def test_query_projection_and_filter(ddb: Any, sorted_tables: dict[str, str]) -> None:
    page = ddb.query(TableName=sorted_tables["N"], KeyConditionExpression="pk = :pk",
                     FilterExpression="i < :three", ProjectionExpression="sk",
                     ExpressionAttributeValues={":pk": PK, ":three": {"N": "3"}})
    # A filter applies after the read: ScannedCount counts every item read.
    assert page["ScannedCount"] == len(N_KEYS)
    assert page["Count"] == 3
    assert all(set(item) == {"sk"} for item in page["Items"])


@pytest.mark.parametrize("condition,values,fragment", [
    ("sk = :a", {":a": {"N": "1"}}, "missed key schema element"),  # no partition key
    ("pk = :pk AND sk = :a", {":pk": PK, ":a": {"S": "1"}}, ""),  # wrong sort-key type
    ("pk = :pk AND begins_with(sk, :a)", {":pk": PK, ":a": {"N": "1"}}, ""),  # not on N
    ("pk < :pk", {":pk": PK}, ""),  # only equality on the partition key
    ("pk = :pk AND other = :a", {":pk": PK, ":a": {"N": "1"}}, ""),  # not a key attribute
    ("pk = :pk OR sk = :a", {":pk": PK, ":a": {"N": "1"}}, ""),
    ("pk = :pk AND sk BETWEEN :b AND :a", {":pk": PK, ":a": {"N": "1"}, ":b": {"N": "2"}},
     "BETWEEN"),
])
def test_invalid_key_conditions(ddb: Any, sorted_tables: dict[str, str], condition: str,
                                values: dict[str, Any], fragment: str) -> None:
    expect_error(ddb.query, "ValidationException", fragment, TableName=sorted_tables["N"],
                 KeyConditionExpression=condition, ExpressionAttributeValues=values)


# --- the 1 MB page limit ------------------------------------------------------------------

BIG_ITEM_BYTES = 100_000
BIG_ITEMS = 25
MB = 1024 * 1024


@pytest.fixture(scope="module")
def big_table(ddb: Any) -> str:
    """25 items of ~100 KB in one partition: ~2.4 MB, more than two 1 MB pages."""
    name = create_table(ddb, "qs_big_items", range_key=("sk", "N"))
    payload = "x" * BIG_ITEM_BYTES
    for start in range(0, BIG_ITEMS, 5):  # five per batch: ~500 KB bodies
        ddb.batch_write_item(RequestItems={name: [
            {"PutRequest": {"Item": {"pk": PK, "sk": {"N": str(i)}, "d": {"S": payload}}}}
            for i in range(start, start + 5)]})
    return name


def _item_bytes(item: dict[str, Any]) -> int:
    return len("pk") + len(item["pk"]["S"]) + len("sk") + 2 + len("d") + len(item["d"]["S"])


def _check_big_pages(pages: list[dict[str, Any]]) -> list[int]:
    seen: list[int] = []
    for number, page in enumerate(pages):
        size = sum(_item_bytes(item) for item in page["Items"])
        # A page stops once 1 MB has been read (allow the one item that crosses it).
        assert size <= MB + BIG_ITEM_BYTES + 100, (number, size)
        assert len(page["Items"]) < BIG_ITEMS
        if number < len(pages) - 1:
            assert "LastEvaluatedKey" in page
            assert len(page["Items"]) >= 1
        seen += [int(item["sk"]["N"]) for item in page["Items"]]
    return seen


def test_query_pages_at_one_megabyte(ddb: Any, big_table: str) -> None:
    pages = []
    params: dict[str, Any] = {"TableName": big_table, "KeyConditionExpression": "pk = :pk",
                              "ExpressionAttributeValues": {":pk": PK}}
    for _ in range(BIG_ITEMS + 1):
        page = ddb.query(**params)
        pages.append(page)
        if "LastEvaluatedKey" not in page:
            break
        params["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    assert len(pages) >= 3
    assert _check_big_pages(pages) == list(range(BIG_ITEMS))


def test_query_count_pages_at_one_megabyte(ddb: Any, big_table: str) -> None:
    # Select=COUNT still reads at most 1 MB per page.
    page = ddb.query(TableName=big_table, KeyConditionExpression="pk = :pk",
                     ExpressionAttributeValues={":pk": PK}, Select="COUNT")
    assert 0 < page["Count"] < BIG_ITEMS
    assert "LastEvaluatedKey" in page


def test_scan_pages_at_one_megabyte(ddb: Any, big_table: str) -> None:
    pages = []
    params: dict[str, Any] = {"TableName": big_table}
    for _ in range(BIG_ITEMS + 1):
        page = ddb.scan(**params)
        pages.append(page)
        if "LastEvaluatedKey" not in page:
            break
        params["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    assert len(pages) >= 3
    assert sorted(_check_big_pages(pages)) == list(range(BIG_ITEMS))


def test_scan_pages_of_a_limit_stop_at_one_megabyte(ddb: Any, big_table: str) -> None:
    # A page of Limit <= 100 is read at once (storage/pages.py), then cut at 1 MB alike.
    pages = []
    params: dict[str, Any] = {"TableName": big_table, "Limit": 20}
    for _ in range(BIG_ITEMS + 1):
        page = ddb.scan(**params)
        pages.append(page)
        if "LastEvaluatedKey" not in page:
            break
        params["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    assert len(pages) >= 3
    assert sorted(_check_big_pages(pages)) == list(range(BIG_ITEMS))


def test_a_page_whose_json_passes_one_megabyte_but_whose_sizes_do_not_is_whole(
        ddb: Any) -> None:
    # 9 binary values of 110,000 bytes: ~990 KB of item sizes (one page), ~1.3 MB of
    # stored JSON (base64): the page is cut by the sizes, not by the JSON's length.
    name = "qs_wide_binaries"
    ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": t}
                              for n, t in (("pk", "S"), ("sk", "N"), ("g", "S"))],
        GlobalSecondaryIndexes=[{"IndexName": "by_g", "Projection": {"ProjectionType": "ALL"},
                                 "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"},
                                               {"AttributeName": "sk", "KeyType": "RANGE"}]}])
    for i in range(9):
        ddb.put_item(TableName=name, Item={"pk": PK, "sk": {"N": str(i)}, "g": {"S": "g"},
                                           "b": {"B": bytes([i]) * 110_000}})
    requests = [("scan", {"TableName": name}), ("scan", {"TableName": name, "IndexName": "by_g"}),
                ("query", {"TableName": name, "IndexName": "by_g",
                           "KeyConditionExpression": "g = :g",
                           "ExpressionAttributeValues": {":g": {"S": "g"}}})]
    for operation, request in requests:
        whole = getattr(ddb, operation)(**request, Limit=9)
        assert whole["Count"] == 9 and "LastEvaluatedKey" in whole, request
        rest = getattr(ddb, operation)(**request, Limit=100)
        assert rest["Count"] == 9 and "LastEvaluatedKey" not in rest, request


def test_boto3_paginator_walks_the_big_table(ddb: Any, big_table: str) -> None:
    paginator = ddb.get_paginator("query")
    keys = [int(item["sk"]["N"])
            for page in paginator.paginate(TableName=big_table, KeyConditionExpression="pk = :pk",
                                           ExpressionAttributeValues={":pk": PK})
            for item in page["Items"]]
    assert keys == list(range(BIG_ITEMS))


# --- Scan ---------------------------------------------------------------------------------

SCAN_ITEMS = 60


@pytest.fixture(scope="module")
def scan_table(ddb: Any) -> str:
    name = create_table(ddb, "qs_scan", range_key=("sk", "N"))
    put_all(ddb, name, [{"pk": {"S": f"p{i % 17}"}, "sk": {"N": str(i)}, "v": {"N": str(i % 5)}}
                        for i in range(SCAN_ITEMS)])
    return name


def _scan_all(ddb: Any, **params: Any) -> tuple[list[int], int]:
    seen: list[int] = []
    pages = 0
    for _ in range(10_000):
        page = ddb.scan(**params)
        pages += 1
        if "Limit" in params:
            assert page["ScannedCount"] <= params["Limit"]
        seen += [int(item["sk"]["N"]) for item in page.get("Items", [])]
        if "LastEvaluatedKey" not in page:
            return seen, pages
        params["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    raise AssertionError("Scan paging did not end")


def test_scan_returns_every_item(ddb: Any, scan_table: str) -> None:
    seen, _ = _scan_all(ddb, TableName=scan_table)
    assert sorted(seen) == list(range(SCAN_ITEMS))


@pytest.mark.parametrize("limit", [1, 7, 60, 61])
def test_scan_limit_paging_visits_every_item_once(ddb: Any, scan_table: str, limit: int) -> None:
    seen, pages = _scan_all(ddb, TableName=scan_table, Limit=limit)
    assert sorted(seen) == list(range(SCAN_ITEMS))
    assert pages >= -(-SCAN_ITEMS // limit)


def test_scan_order_is_stable_between_pages(ddb: Any, scan_table: str) -> None:
    whole, _ = _scan_all(ddb, TableName=scan_table)
    paged, _ = _scan_all(ddb, TableName=scan_table, Limit=9)
    assert paged == whole


@pytest.mark.parametrize("total", [1, 2, 4, 7])
def test_parallel_scan_segments_partition_the_table(ddb: Any, scan_table: str, total: int) -> None:
    segments = [_scan_all(ddb, TableName=scan_table, Segment=s, TotalSegments=total)[0]
                for s in range(total)]
    union = [key for segment in segments for key in segment]
    assert sorted(union) == list(range(SCAN_ITEMS)), "segments are disjoint and cover the table"
    if total == 4:
        assert sum(1 for s in segments if s) >= 2, "items spread over segments"


def test_parallel_scan_segment_with_limit_pages(ddb: Any, scan_table: str) -> None:
    whole = []
    for segment in range(4):
        unpaged, _ = _scan_all(ddb, TableName=scan_table, Segment=segment, TotalSegments=4)
        paged, _ = _scan_all(ddb, TableName=scan_table, Segment=segment, TotalSegments=4, Limit=3)
        assert paged == unpaged
        whole += paged
    assert sorted(whole) == list(range(SCAN_ITEMS))


def test_scan_select_count_and_filter(ddb: Any, scan_table: str) -> None:
    page = ddb.scan(TableName=scan_table, Select="COUNT")
    assert "Items" not in page and page["Count"] == SCAN_ITEMS
    filtered = ddb.scan(TableName=scan_table, FilterExpression="v = :zero",
                        ExpressionAttributeValues={":zero": {"N": "0"}})
    assert filtered["Count"] == SCAN_ITEMS // 5
    assert filtered["ScannedCount"] == SCAN_ITEMS


@pytest.mark.parametrize("params,fragment", [
    ({"Segment": 4, "TotalSegments": 4}, "Segment"),
    ({"Segment": 0}, "TotalSegments"),
    ({"TotalSegments": 2}, "Segment"),
    ({"Segment": 0, "TotalSegments": 0}, "totalSegments"),
    ({"Segment": -1, "TotalSegments": 2}, "segment"),
    ({"Segment": 0, "TotalSegments": 1000001}, "totalSegments"),
    ({"Limit": 0}, "limit"),
])
def test_scan_rejects_bad_segments(raw_ddb: Any, scan_table: str, params: dict[str, Any],
                                   fragment: str) -> None:
    expect_error(raw_ddb.scan, "ValidationException", fragment, TableName=scan_table, **params)


def test_binary_keys_round_trip_through_last_evaluated_key(ddb: Any,
                                                           sorted_tables: dict[str, str]) -> None:
    got = [item["sk"]["B"] for item in _query(ddb, sorted_tables["B"], "", {}, Limit=1)]
    assert got == sorted(B_KEYS)
    # and as raw base64 over the wire, the same bytes
    assert base64.b64encode(got[0]) == base64.b64encode(b"\x00")


def test_38_digit_number_keys_stay_distinct_and_ordered(ddb: Any, range_table: str) -> None:
    # 38 significant digits are kept exactly: keys differing only in the 38th digit are
    # different items (not one item overwritten) and sort numerically.
    keys = ["0.1", "0.10000000000000000000000000000000000001",
            "0.10000000000000000000000000000000000002", "-0.10000000000000000000000000000000000001",
            "12345678901234567890123456789012345678", "12345678901234567890123456789012345677"]
    put_all(ddb, range_table, [{"pk": PK, "sk": {"N": k}} for k in keys])
    got = [item["sk"]["N"] for item in _query(ddb, range_table, "", {})]
    assert got == sorted(keys, key=Decimal)
    got_reversed = [item["sk"]["N"] for item in _query(ddb, range_table, "", {},
                                                        ScanIndexForward=False, Limit=2)]
    assert got_reversed == sorted(keys, key=Decimal, reverse=True)


def test_a_page_reads_only_the_rows_it_returns(server: Any, ddb: Any, range_table: str) -> None:
    """The last stored row fails its checksum: a Query or Scan page of 5 items never reads
    it, while a Query that reaches it refuses to return it."""
    put_all(ddb, range_table, [{"pk": {"S": "lazy"}, "sk": {"N": str(n)}} for n in range(40)])
    db = NodeDatabase(server)
    (tid,) = db.one("SELECT tid FROM tables WHERE name=?", (range_table,))
    corrupt = ("UPDATE items SET crc=(crc+1)%4294967296 WHERE tid=? "
               "AND sk=(SELECT sk FROM items WHERE tid=? ORDER BY sk DESC LIMIT 1)")
    db.run(corrupt, (tid, tid))
    try:
        key = {":p": {"S": "lazy"}}
        page = ddb.query(TableName=range_table, KeyConditionExpression="pk = :p",
                         ExpressionAttributeValues=key, Limit=5)
        assert [i["sk"]["N"] for i in page["Items"]] == ["0", "1", "2", "3", "4"]
        assert len(ddb.scan(TableName=range_table, Limit=5)["Items"]) == 5
        with pytest.raises(ClientError) as failed:
            ddb.query(TableName=range_table, KeyConditionExpression="pk = :p",
                      ExpressionAttributeValues=key)
        assert failed.value.response["Error"]["Code"] == "InternalServerError"
    finally:
        db.run(corrupt.replace("crc+1", "crc+4294967295"), (tid, tid))
        db.close()
