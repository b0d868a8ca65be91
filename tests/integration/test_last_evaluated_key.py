"""LastEvaluatedKey of Query and Scan pages: the key of the last item read.

DynamoDB Developer Guide, "Paginating table query results": "LastEvaluatedKey ... the
primary key of the last item" read; on an index it holds the table's key attributes and
the index's. A page stops at Limit, so with Limit 1 every page but the last carries the
key of its one item, and passing it back as ExclusiveStartKey visits each item once.

Atoll answers a string key from the row's stored key columns and a number or binary key,
or any key of a table page of at most 100 items (read without its key columns), from the
stored item; both must read exactly as the item does (non-ASCII text, numbers in
canonical form, binary), on the table and on a global secondary index.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.wire import put_all

TEXTS = ["a", "é", "\U0001f600", "Z z", "ab\x00", "\uffff"]


@pytest.fixture(scope="module")
def keyed_tables(ddb: Any) -> dict[str, str]:
    """Per key type: a table keyed (pk S, sk of that type) with a GSI (g S, gs of that
    type), every item in one partition and one index partition."""
    tables = {}
    for kind in ("S", "N", "B"):
        name = f"lek_{kind}"
        ddb.create_table(
            TableName=name, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": kind},
                                  {"AttributeName": "g", "AttributeType": "S"},
                                  {"AttributeName": "gs", "AttributeType": kind}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                       {"AttributeName": "sk", "KeyType": "RANGE"}],
            GlobalSecondaryIndexes=[{
                "IndexName": "by_g", "Projection": {"ProjectionType": "ALL"},
                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"},
                              {"AttributeName": "gs", "KeyType": "RANGE"}]}])
        put_all(ddb, name, [{"pk": {"S": f"p-{text}"}, "sk": _value(kind, i),
                             "g": {"S": "group-é"}, "gs": _value(kind, 100 - i),
                             "v": {"N": str(i)}}
                            for i, text in enumerate(TEXTS)])
        tables[kind] = name
    return tables


def _value(kind: str, i: int) -> dict[str, Any]:
    if kind == "S":
        return {"S": f"s-{TEXTS[i % len(TEXTS)]}-{i}"}
    if kind == "N":
        return {"N": f"{i}.50"}  # stored in canonical form: "1.5"
    return {"B": bytes([i, 0xFF, 0])}


def _pages(ddb: Any, operation: str, params: dict[str, Any],
           key_names: set[str]) -> list[dict[str, Any]]:
    """Every page with Limit 1, checking each LastEvaluatedKey against the page's item."""
    items: list[dict[str, Any]] = []
    for _ in range(len(TEXTS) + 2):
        page = getattr(ddb, operation)(**params, Limit=1)
        items += page["Items"]
        last = page.get("LastEvaluatedKey")
        if last is None:
            return items
        assert page["Items"], page
        assert last == {name: page["Items"][-1][name] for name in key_names}
        params = {**params, "ExclusiveStartKey": last}
    raise AssertionError("paging did not end")


@pytest.mark.parametrize("kind", ["S", "N", "B"])
def test_scan_pages_carry_the_last_items_key(ddb: Any, keyed_tables: dict[str, str],
                                             kind: str) -> None:
    items = _pages(ddb, "scan", {"TableName": keyed_tables[kind]}, {"pk", "sk"})
    assert sorted(int(i["v"]["N"]) for i in items) == list(range(len(TEXTS)))


@pytest.mark.parametrize("kind", ["S", "N", "B"])
def test_query_pages_carry_the_last_items_key(ddb: Any, keyed_tables: dict[str, str],
                                              kind: str) -> None:
    for i, text in enumerate(TEXTS):
        items = _pages(ddb, "query", {
            "TableName": keyed_tables[kind], "KeyConditionExpression": "pk = :p",
            "ExpressionAttributeValues": {":p": {"S": f"p-{text}"}}}, {"pk", "sk"})
        assert [int(item["v"]["N"]) for item in items] == [i]


@pytest.mark.parametrize("kind", ["S", "N", "B"])
@pytest.mark.parametrize("forward", [True, False])
def test_index_query_pages_carry_table_and_index_keys(ddb: Any, keyed_tables: dict[str, str],
                                                      kind: str, forward: bool) -> None:
    items = _pages(ddb, "query", {
        "TableName": keyed_tables[kind], "IndexName": "by_g",
        "KeyConditionExpression": "g = :g", "ScanIndexForward": forward,
        "ExpressionAttributeValues": {":g": {"S": "group-é"}}}, {"pk", "sk", "g", "gs"})
    order = [int(i["v"]["N"]) for i in items]
    assert sorted(order) == list(range(len(TEXTS)))


@pytest.mark.parametrize("kind", ["S", "N", "B"])
def test_index_scan_pages_carry_table_and_index_keys(ddb: Any, keyed_tables: dict[str, str],
                                                     kind: str) -> None:
    items = _pages(ddb, "scan", {"TableName": keyed_tables[kind], "IndexName": "by_g"},
                   {"pk", "sk", "g", "gs"})
    assert sorted(int(i["v"]["N"]) for i in items) == list(range(len(TEXTS)))


def test_filtered_pages_carry_the_last_key_read(ddb: Any, keyed_tables: dict[str, str]) -> None:
    """With a filter the last item read may not be answered: its key is still the one."""
    page = ddb.scan(TableName=keyed_tables["S"], Limit=2, FilterExpression="v = :none",
                    ExpressionAttributeValues={":none": {"N": "-1"}})
    assert page["Items"] == [] and page["ScannedCount"] == 2
    last = page["LastEvaluatedKey"]
    assert set(last) == {"pk", "sk"}
    read = ddb.scan(TableName=keyed_tables["S"], Limit=2)["Items"]
    assert last == {"pk": read[-1]["pk"], "sk": read[-1]["sk"]}
