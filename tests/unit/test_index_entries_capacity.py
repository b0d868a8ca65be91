"""Pure pieces of issue 4: which index row an item gets (sparse, projections, bad keys),
and DynamoDB's capacity-unit arithmetic."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from atoll.engine import capacity, indexes
from atoll.engine.tabledef import parse_create_table
from atoll.errors import ValidationError
from atoll.model.values import check_item


def _table() -> Any:
    return parse_create_table({
        "TableName": "orders", "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": n, "AttributeType": t}
                                 for n, t in (("pk", "S"), ("c", "S"), ("when", "N"))],
        "GlobalSecondaryIndexes": [
            {"IndexName": "all", "Projection": {"ProjectionType": "ALL"},
             "KeySchema": [{"AttributeName": "c", "KeyType": "HASH"},
                           {"AttributeName": "when", "KeyType": "RANGE"}]},
            {"IndexName": "keys", "Projection": {"ProjectionType": "KEYS_ONLY"},
             "KeySchema": [{"AttributeName": "c", "KeyType": "HASH"}]},
            {"IndexName": "incl", "Projection": {"ProjectionType": "INCLUDE",
                                                 "NonKeyAttributes": ["x"]},
             "KeySchema": [{"AttributeName": "when", "KeyType": "HASH"}]},
        ]}, now_s=1_800_000_000.0)


def _plan(item: dict[str, Any]) -> dict[str, dict[str, Any]]:
    size = check_item(item)
    return {entry[0].name: orjson.loads(entry[4])
            for entry in indexes.plan(_table(), item, orjson.dumps(item), size)}


def test_projections() -> None:
    item = {"pk": {"S": "1"}, "c": {"S": "ann"}, "when": {"N": "5"}, "x": {"S": "X"},
            "y": {"S": "Y"}}
    rows = _plan(item)
    assert rows["all"] == item
    assert rows["keys"] == {"pk": {"S": "1"}, "c": {"S": "ann"}}
    assert rows["incl"] == {"pk": {"S": "1"}, "when": {"N": "5"}, "x": {"S": "X"}}


@pytest.mark.parametrize("item,present", [
    ({"pk": {"S": "1"}}, set()),
    ({"pk": {"S": "1"}, "c": {"S": "ann"}}, {"keys"}),  # "all" also needs its range key
    ({"pk": {"S": "1"}, "when": {"N": "1"}}, {"incl"}),
])
def test_sparse(item: dict[str, Any], present: set[str]) -> None:
    assert set(_plan(item)) == present


@pytest.mark.parametrize("item,message", [
    ({"pk": {"S": "1"}, "c": {"N": "1"}}, "Type mismatch for Index Key c Expected: S Actual: N"),
    ({"pk": {"S": "1"}, "when": {"S": "x"}}, "Type mismatch for Index Key when"),
    ({"pk": {"S": "1"}, "c": {"S": ""}}, "cannot contain an empty string value"),
])
def test_bad_index_keys_are_rejected(item: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _plan(item)


@pytest.mark.parametrize("size,consistent,units", [
    (0, False, 0.5), (1, True, 1.0), (4096, False, 0.5), (4097, False, 1.0),
    (8192, True, 2.0), (8193, True, 3.0),
])
def test_read_units(size: int, consistent: bool, units: float) -> None:
    assert capacity.read_units(size, consistent) == units


@pytest.mark.parametrize("size,units", [(0, 1.0), (1024, 1.0), (1025, 2.0), (400 * 1024, 400.0)])
def test_write_units(size: int, units: float) -> None:
    assert capacity.write_units(size) == units


def test_meter_splits_by_index_kind_and_doubles_for_transactions() -> None:
    table = _table()
    meter = capacity.Meter("INDEXES", "write")
    meter.add(table, 2.0, {"all": 1.0, "keys": 1.0})
    meter.scale(capacity.TRANSACTION_FACTOR)
    (consumed,) = meter.listed() or []
    assert consumed["CapacityUnits"] == 8.0
    assert consumed["Table"]["CapacityUnits"] == 4.0
    assert consumed["GlobalSecondaryIndexes"]["all"]["CapacityUnits"] == 2.0
    assert capacity.Meter(None, "read").single() is None


def test_attach_to_raw_json() -> None:
    assert capacity.attach(b"{}", "X", 1) == b'{"X":1}'
    assert capacity.attach(b'{"A":2}', "X", 1) == b'{"A":2,"X":1}'
    assert capacity.attach(b"{}", "X", None) == b"{}"


def test_projected_size_matches_dynamodb_item_size() -> None:
    from atoll.engine.indexes import _projected_size
    from atoll.model.values import item_size

    projected = {"pk": {"S": "ü-key"}, "naïve": {"N": "-12.50"}, "bin": {"B": "AAEC"},
                 "m": {"M": {"x": {"BOOL": True}}}, "ßs": {"SS": ["a", "bc"]}}
    assert _projected_size(projected) == item_size(projected)
