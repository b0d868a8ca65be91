"""Item operations against a live server: PutItem, GetItem, DeleteItem, UpdateItem.

References (DynamoDB Developer Guide and API Reference): "Supported data types"
(S, N, B, BOOL, NULL, M, L, SS, NS, BS; numbers are sent as strings, leading and trailing
zeroes trimmed), PutItem/UpdateItem/DeleteItem `ReturnValues`, "Projection expressions",
"Condition expressions", "Update expressions" (SET, REMOVE, ADD, DELETE on top-level and
nested document paths), `ReturnValuesOnConditionCheckFailure` ("ALL_OLD" returns the item
in the ConditionalCheckFailedException).
"""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import Binary

from tests.integration.wire import expect_error, snapshot
from tests.support import node_json

KEY = {"pk": {"S": "item"}}

EVERY_TYPE: dict[str, Any] = {
    "pk": {"S": "item"},
    "s": {"S": "héllo wörld 😀"},
    "empty_s": {"S": ""},
    "n": {"N": "-12.5"},
    "b": {"B": b"\x00\x01\xfe\xff"},
    "empty_b": {"B": b""},
    "t": {"BOOL": True},
    "f": {"BOOL": False},
    "null": {"NULL": True},
    "m": {"M": {"child": {"S": "x"}, "deeper": {"M": {"n": {"N": "1"}}}, "empty": {"M": {}}}},
    "l": {"L": [{"S": "a"}, {"N": "2"}, {"L": []}, {"M": {"k": {"BOOL": False}}}]},
    "ss": {"SS": ["b", "a", "c"]},
    "ns": {"NS": ["3", "1", "2.5"]},
    "bs": {"BS": [b"\x01", b"\x02"]},
}


def _sorted_sets(item: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB sets are unordered: compare them sorted."""
    out = {}
    for name, value in item.items():
        ((kind, inner),) = value.items()
        out[name] = {kind: sorted(inner)} if kind in ("SS", "NS", "BS") else value
    return out


def test_put_get_round_trips_every_type(ddb: Any, hash_table: str) -> None:
    ddb.put_item(TableName=hash_table, Item=EVERY_TYPE)
    got = ddb.get_item(TableName=hash_table, Key=KEY)["Item"]
    assert _sorted_sets(got) == _sorted_sets(EVERY_TYPE)


def test_get_missing_item_has_no_item_member(ddb: Any, hash_table: str) -> None:
    answer = ddb.get_item(TableName=hash_table, Key={"pk": {"S": "absent"}})
    assert "Item" not in answer


def test_put_replaces_the_whole_item(ddb: Any, hash_table: str) -> None:
    ddb.put_item(TableName=hash_table, Item={**KEY, "a": {"S": "1"}, "b": {"S": "2"}})
    ddb.put_item(TableName=hash_table, Item={**KEY, "c": {"S": "3"}})
    assert ddb.get_item(TableName=hash_table, Key=KEY)["Item"] == {**KEY, "c": {"S": "3"}}


# "Numbers are variable length. Leading and trailing zeroes are trimmed."
NUMBER_FORMS = [
    ("1.50", "1.5"), ("1e2", "100"), ("1E2", "100"), ("-0", "0"), ("0.0", "0"),
    ("007", "7"), ("-007.100", "-7.1"), ("1.0E-3", "0.001"), ("12345678901234567890", "12345678901234567890"),
    ("1.5e1", "15"), ("-1e-2", "-0.01"), (".5", "0.5"), ("5.", "5"), ("100", "100"),
    ("0.00000000000000000000000000000000000001", "0.00000000000000000000000000000000000001"),
    ("12345678901234567890123456789012345678", "12345678901234567890123456789012345678"),
    ("1234567890123456789012345678901234567.8", "1234567890123456789012345678901234567.8"),
]


@pytest.mark.parametrize("sent,stored", NUMBER_FORMS, ids=[f[0] for f in NUMBER_FORMS])
def test_numbers_are_normalised(ddb: Any, hash_table: str, sent: str, stored: str) -> None:
    ddb.put_item(TableName=hash_table, Item={**KEY, "n": {"N": sent}, "ns": {"NS": [sent]},
                                              "deep": {"M": {"l": {"L": [{"N": sent}]}}}})
    item = ddb.get_item(TableName=hash_table, Key=KEY)["Item"]
    assert item["n"] == {"N": stored}
    assert item["ns"] == {"NS": [stored]}
    assert item["deep"]["M"]["l"]["L"][0] == {"N": stored}


@pytest.mark.parametrize("text", ["1E-130", "-1E-130", "9.9999999999999999999999999999999999999E+125",
                                  "-9.9999999999999999999999999999999999999E+125"])
def test_numbers_at_the_documented_range_limits_are_kept_exactly(
        ddb: Any, hash_table: str, text: str) -> None:
    # Positive range 1E-130 to 9.9999999999999999999999999999999999999E+125 (and negatives).
    ddb.put_item(TableName=hash_table, Item={**KEY, "n": {"N": text}})
    stored = ddb.get_item(TableName=hash_table, Key=KEY)["Item"]["n"]["N"]
    assert Decimal(stored) == Decimal(text)


def test_number_keys_are_normalised_so_equal_numbers_are_one_key(ddb: Any, table_name: str) -> None:
    from tests.support import create_table
    create_table(ddb, table_name, hash_key=("id", "N"))
    ddb.put_item(TableName=table_name, Item={"id": {"N": "1.0"}, "v": {"S": "first"}})
    ddb.put_item(TableName=table_name, Item={"id": {"N": "1"}, "v": {"S": "second"}})
    got = ddb.get_item(TableName=table_name, Key={"id": {"N": "1.000"}})["Item"]
    assert got == {"id": {"N": "1"}, "v": {"S": "second"}}
    assert ddb.scan(TableName=table_name)["Count"] == 1


# --- ReturnValues -------------------------------------------------------------------------

def test_put_return_values(ddb: Any, hash_table: str) -> None:
    first = ddb.put_item(TableName=hash_table, Item={**KEY, "v": {"N": "1"}}, ReturnValues="ALL_OLD")
    assert "Attributes" not in first  # nothing was replaced
    second = ddb.put_item(TableName=hash_table, Item={**KEY, "v": {"N": "2"}}, ReturnValues="ALL_OLD")
    assert second["Attributes"] == {**KEY, "v": {"N": "1"}}
    none = ddb.put_item(TableName=hash_table, Item={**KEY, "v": {"N": "3"}}, ReturnValues="NONE")
    assert "Attributes" not in none


@pytest.mark.parametrize("value", ["UPDATED_OLD", "ALL_NEW", "UPDATED_NEW"])
def test_put_and_delete_accept_only_none_and_all_old(ddb: Any, hash_table: str, value: str) -> None:
    # PutItem/DeleteItem: "The ReturnValues parameter ... NONE | ALL_OLD".
    expect_error(ddb.put_item, "ValidationException", "ReturnValues",
                 TableName=hash_table, Item=KEY, ReturnValues=value)
    expect_error(ddb.delete_item, "ValidationException", "ReturnValues",
                 TableName=hash_table, Key=KEY, ReturnValues=value)
    assert snapshot(ddb, hash_table) == []


def test_delete_return_values(ddb: Any, hash_table: str) -> None:
    ddb.put_item(TableName=hash_table, Item={**KEY, "v": {"S": "gone"}})
    answer = ddb.delete_item(TableName=hash_table, Key=KEY, ReturnValues="ALL_OLD")
    assert answer["Attributes"] == {**KEY, "v": {"S": "gone"}}
    again = ddb.delete_item(TableName=hash_table, Key=KEY, ReturnValues="ALL_OLD")
    assert "Attributes" not in again  # deleting an absent item is not an error
    assert "Item" not in ddb.get_item(TableName=hash_table, Key=KEY)


OLD_ITEM = {**KEY, "a": {"N": "1"}, "b": {"S": "keep"}, "m": {"M": {"x": {"N": "1"}, "y": {"N": "2"}}}}

UPDATE_RETURNS = [
    ("NONE", None),
    ("ALL_OLD", OLD_ITEM),
    ("ALL_NEW", {**KEY, "a": {"N": "2"}, "b": {"S": "keep"}, "c": {"S": "new"},
                 "m": {"M": {"x": {"N": "5"}, "y": {"N": "2"}}}}),
    # UPDATED_*: only the attributes (document paths) the update touched.
    ("UPDATED_OLD", {"a": {"N": "1"}, "m": {"M": {"x": {"N": "1"}}}}),
    ("UPDATED_NEW", {"a": {"N": "2"}, "c": {"S": "new"}, "m": {"M": {"x": {"N": "5"}}}}),
]


@pytest.mark.parametrize("value,expected", UPDATE_RETURNS, ids=[u[0] for u in UPDATE_RETURNS])
def test_update_return_values(ddb: Any, hash_table: str, value: str,
                              expected: dict[str, Any] | None) -> None:
    ddb.put_item(TableName=hash_table, Item=OLD_ITEM)
    answer = ddb.update_item(
        TableName=hash_table, Key=KEY, UpdateExpression="SET a = a + :one, c = :c, m.x = :five",
        ExpressionAttributeValues={":one": {"N": "1"}, ":c": {"S": "new"}, ":five": {"N": "5"}},
        ReturnValues=value)
    if expected is None:
        assert "Attributes" not in answer
    else:
        assert answer["Attributes"] == expected


def test_update_of_absent_item_creates_it_and_updated_old_is_empty(ddb: Any, hash_table: str) -> None:
    answer = ddb.update_item(TableName=hash_table, Key=KEY, UpdateExpression="SET v = :v",
                             ExpressionAttributeValues={":v": {"S": "x"}},
                             ReturnValues="UPDATED_OLD")
    assert "Attributes" not in answer
    assert ddb.get_item(TableName=hash_table, Key=KEY)["Item"] == {**KEY, "v": {"S": "x"}}


def test_update_without_expression_creates_key_only_item(ddb: Any, hash_table: str) -> None:
    answer = ddb.update_item(TableName=hash_table, Key=KEY, ReturnValues="ALL_NEW")
    assert answer["Attributes"] == KEY
    assert ddb.get_item(TableName=hash_table, Key=KEY)["Item"] == KEY


# --- ProjectionExpression -----------------------------------------------------------------

DOC = {**KEY, "title": {"S": "n"}, "year": {"N": "1999"},
       "info": {"M": {"rating": {"N": "5"}, "tags": {"L": [{"S": "t0"}, {"S": "t1"}, {"S": "t2"}]},
                      "plot": {"S": "long"}}},
       "arr": {"L": [{"M": {"a": {"N": "1"}, "b": {"N": "2"}}}, {"S": "second"}]}}

PROJECTIONS = [
    ("title", {}, {"title": {"S": "n"}}),
    ("title, #y", {"#y": "year"}, {"title": {"S": "n"}, "year": {"N": "1999"}}),
    ("#y", {"#y": "year"}, {"year": {"N": "1999"}}),  # YEAR is a reserved word
    ("info.rating", {}, {"info": {"M": {"rating": {"N": "5"}}}}),
    ("info.tags[1]", {}, {"info": {"M": {"tags": {"L": [{"S": "t1"}]}}}}),
    ("info.tags[0], info.tags[2]", {}, {"info": {"M": {"tags": {"L": [{"S": "t0"}, {"S": "t2"}]}}}}),
    ("arr[0].b", {}, {"arr": {"L": [{"M": {"b": {"N": "2"}}}]}}),
    ("absent", {}, {}),
    ("info.absent, title", {}, {"title": {"S": "n"}}),
    ("#i.#r", {"#i": "info", "#r": "rating"}, {"info": {"M": {"rating": {"N": "5"}}}}),
]


@pytest.mark.parametrize("expression,names,expected", PROJECTIONS,
                         ids=[p[0] for p in PROJECTIONS])
def test_projection_expression(ddb: Any, hash_table: str, expression: str,
                               names: dict[str, str], expected: dict[str, Any]) -> None:
    ddb.put_item(TableName=hash_table, Item=DOC)
    params: dict[str, Any] = {"TableName": hash_table, "Key": KEY,
                              "ProjectionExpression": expression}
    if names:
        params["ExpressionAttributeNames"] = names
    answer = ddb.get_item(**params)
    assert answer.get("Item", {}) == expected


# --- ConditionExpression ------------------------------------------------------------------

CONDITIONS = [
    # (condition, values, holds against {pk, n=5, s="abc"})
    ("attribute_exists(pk)", {}, True),
    ("attribute_not_exists(pk)", {}, False),
    ("attribute_exists(nope)", {}, False),
    ("attribute_not_exists(nope)", {}, True),
    ("n = :v", {":v": {"N": "5"}}, True),
    ("n = :v", {":v": {"N": "5.0"}}, True),
    ("n <> :v", {":v": {"N": "5"}}, False),
    ("n < :v", {":v": {"N": "6"}}, True),
    ("n <= :v", {":v": {"N": "4"}}, False),
    ("n > :v", {":v": {"N": "-1"}}, True),
    ("n >= :v", {":v": {"N": "5"}}, True),
    ("s = :v", {":v": {"S": "abc"}}, True),
    ("s < :v", {":v": {"S": "abd"}}, True),
    ("n = :v", {":v": {"S": "5"}}, False),  # different types are never equal
    ("n BETWEEN :a AND :b", {":a": {"N": "1"}, ":b": {"N": "5"}}, True),
    ("begins_with(s, :p)", {":p": {"S": "ab"}}, True),
    ("attribute_exists(n) AND n > :v", {":v": {"N": "10"}}, False),
    ("attribute_exists(nope) OR n > :v", {":v": {"N": "1"}}, True),
    ("NOT n = :v", {":v": {"N": "5"}}, False),
]

CONDITION_ITEM = {**KEY, "n": {"N": "5"}, "s": {"S": "abc"}}


@pytest.mark.parametrize("condition,values,holds", CONDITIONS,
                         ids=[f"{c[0]}|{list(c[1].values())}" for c in CONDITIONS])
@pytest.mark.parametrize("operation", ["put", "update", "delete"])
def test_condition_expression(ddb: Any, hash_table: str, operation: str, condition: str,
                              values: dict[str, Any], holds: bool) -> None:
    ddb.put_item(TableName=hash_table, Item=CONDITION_ITEM)
    params: dict[str, Any] = {"TableName": hash_table, "ConditionExpression": condition}
    if values:
        params["ExpressionAttributeValues"] = dict(values)
    if operation == "put":
        call, params["Item"] = ddb.put_item, {**KEY, "written": {"BOOL": True}}
    elif operation == "update":
        call, params["Key"] = ddb.update_item, KEY
        params["UpdateExpression"] = "SET written = :w"
        params.setdefault("ExpressionAttributeValues", {})[":w"] = {"BOOL": True}
    else:
        call, params["Key"] = ddb.delete_item, KEY
    if holds:
        call(**params)
        item = ddb.get_item(TableName=hash_table, Key=KEY).get("Item")
        assert item is None if operation == "delete" else item["written"] == {"BOOL": True}
    else:
        response = expect_error(call, "ConditionalCheckFailedException",
                                "The conditional request failed", **params)
        assert "Item" not in response  # only with ReturnValuesOnConditionCheckFailure
        assert ddb.get_item(TableName=hash_table, Key=KEY)["Item"] == CONDITION_ITEM


def test_condition_on_absent_item(ddb: Any, hash_table: str) -> None:
    # The canonical "create only if new" idiom.
    ddb.put_item(TableName=hash_table, Item={**KEY, "v": {"N": "1"}},
                 ConditionExpression="attribute_not_exists(pk)")
    expect_error(ddb.put_item, "ConditionalCheckFailedException", "",
                 TableName=hash_table, Item={**KEY, "v": {"N": "2"}},
                 ConditionExpression="attribute_not_exists(pk)")
    assert ddb.get_item(TableName=hash_table, Key=KEY)["Item"]["v"] == {"N": "1"}
    # A comparison against a missing item is false, so an update does not create one.
    other = {"pk": {"S": "other"}}
    expect_error(ddb.update_item, "ConditionalCheckFailedException", "",
                 TableName=hash_table, Key=other, UpdateExpression="SET v = :v",
                 ConditionExpression="v = :v", ExpressionAttributeValues={":v": {"N": "1"}})
    assert "Item" not in ddb.get_item(TableName=hash_table, Key=other)


@pytest.mark.parametrize("operation", ["put", "update", "delete"])
def test_return_values_on_condition_check_failure_gives_the_item(
        ddb: Any, hash_table: str, operation: str) -> None:
    ddb.put_item(TableName=hash_table, Item=CONDITION_ITEM)
    params: dict[str, Any] = {"TableName": hash_table,
                              "ConditionExpression": "attribute_not_exists(pk)",
                              "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
    if operation == "put":
        call, params["Item"] = ddb.put_item, KEY
    elif operation == "update":
        call, params["Key"], params["UpdateExpression"] = ddb.update_item, KEY, "REMOVE n"
    else:
        call, params["Key"] = ddb.delete_item, KEY
    response = expect_error(call, "ConditionalCheckFailedException", "", **params)
    assert response["Item"] == CONDITION_ITEM


def test_return_values_on_condition_check_failure_absent_item_has_no_item(
        ddb: Any, hash_table: str) -> None:
    response = expect_error(ddb.delete_item, "ConditionalCheckFailedException", "",
                            TableName=hash_table, Key=KEY,
                            ConditionExpression="attribute_exists(pk)",
                            ReturnValuesOnConditionCheckFailure="ALL_OLD")
    assert "Item" not in response


# --- UpdateExpression ---------------------------------------------------------------------

BASE = {
    **KEY,
    "n": {"N": "10"},
    "s": {"S": "text"},
    "l": {"L": [{"S": "a"}, {"S": "b"}, {"S": "c"}]},
    "ss": {"SS": ["x", "y"]},
    "ns": {"NS": ["1", "2"]},
    "bs": {"BS": [b"\x01", b"\x02"]},
    "m": {"M": {"child": {"M": {"cnt": {"N": "1"}, "tags": {"SS": ["p", "q"]},
                                "gone": {"S": "bye"}}},
                "arr": {"L": [{"N": "0"}, {"M": {"deep": {"S": "d"}}}]}}},
}

UPDATES = [
    # (expression, names, values, {attribute: expected value or None for absent})
    ("SET s = :v", {}, {":v": {"S": "new"}}, {"s": {"S": "new"}}),
    ("SET fresh = :v", {}, {":v": {"L": []}}, {"fresh": {"L": []}}),
    ("SET n = n + :d", {}, {":d": {"N": "0.5"}}, {"n": {"N": "10.5"}}),
    ("SET n = n - :d", {}, {":d": {"N": "11"}}, {"n": {"N": "-1"}}),
    ("SET n = :a + :b", {}, {":a": {"N": "1"}, ":b": {"N": "2"}}, {"n": {"N": "3"}}),
    ("SET s2 = s", {}, {}, {"s2": {"S": "text"}}),
    ("SET x = if_not_exists(x, :d)", {}, {":d": {"N": "7"}}, {"x": {"N": "7"}}),
    ("SET n = if_not_exists(n, :d)", {}, {":d": {"N": "7"}}, {"n": {"N": "10"}}),
    ("SET l = list_append(l, :t)", {}, {":t": {"L": [{"S": "d"}]}},
     {"l": {"L": [{"S": "a"}, {"S": "b"}, {"S": "c"}, {"S": "d"}]}}),
    ("SET l = list_append(:h, l)", {}, {":h": {"L": [{"S": "z"}]}},
     {"l": {"L": [{"S": "z"}, {"S": "a"}, {"S": "b"}, {"S": "c"}]}}),
    ("SET l[1] = :v", {}, {":v": {"S": "B"}}, {"l": {"L": [{"S": "a"}, {"S": "B"}, {"S": "c"}]}}),
    ("SET l[10] = :v", {}, {":v": {"S": "end"}},  # past the end: appended
     {"l": {"L": [{"S": "a"}, {"S": "b"}, {"S": "c"}, {"S": "end"}]}}),
    ("SET m.child.cnt = m.child.cnt + :d", {}, {":d": {"N": "1"}},
     {"m.child.cnt": {"N": "2"}}),
    ("SET m.child.added = :v", {}, {":v": {"BOOL": True}}, {"m.child.added": {"BOOL": True}}),
    ("SET m.#l[1].deep = :v", {"#l": "arr"}, {":v": {"S": "D"}},
     {"m.arr[1].deep": {"S": "D"}}),
    ("SET #a = :a, #b = :b", {"#a": "first", "#b": "second"},
     {":a": {"N": "1"}, ":b": {"N": "2"}}, {"first": {"N": "1"}, "second": {"N": "2"}}),
    ("REMOVE s", {}, {}, {"s": None}),
    ("REMOVE s, n", {}, {}, {"s": None, "n": None}),
    ("REMOVE nothing_here", {}, {}, {"s": {"S": "text"}}),
    ("REMOVE l[0]", {}, {}, {"l": {"L": [{"S": "b"}, {"S": "c"}]}}),
    ("REMOVE l[0], l[2]", {}, {}, {"l": {"L": [{"S": "b"}]}}),
    ("REMOVE m.child.gone", {}, {}, {"m.child.gone": None, "m.child.cnt": {"N": "1"}}),
    ("REMOVE m.arr[0]", {}, {}, {"m.arr": {"L": [{"M": {"deep": {"S": "d"}}}]}}),
    ("ADD n :d", {}, {":d": {"N": "-3"}}, {"n": {"N": "7"}}),
    ("ADD tally :d", {}, {":d": {"N": "1"}}, {"tally": {"N": "1"}}),
    ("ADD ss :v", {}, {":v": {"SS": ["y", "z"]}}, {"ss": {"SS": ["x", "y", "z"]}}),
    ("ADD ns :v", {}, {":v": {"NS": ["3"]}}, {"ns": {"NS": ["1", "2", "3"]}}),
    ("ADD bs :v", {}, {":v": {"BS": [b"\x03"]}}, {"bs": {"BS": [b"\x01", b"\x02", b"\x03"]}}),
    ("ADD newset :v", {}, {":v": {"SS": ["a"]}}, {"newset": {"SS": ["a"]}}),
    ("ADD m.child.cnt :d", {}, {":d": {"N": "4"}}, {"m.child.cnt": {"N": "5"}}),
    ("DELETE ss :v", {}, {":v": {"SS": ["x", "absent"]}}, {"ss": {"SS": ["y"]}}),
    ("DELETE ss :v", {}, {":v": {"SS": ["x", "y"]}}, {"ss": None}),  # an empty set is removed
    ("DELETE ns :v", {}, {":v": {"NS": ["2.0"]}}, {"ns": {"NS": ["1"]}}),
    ("DELETE m.child.tags :v", {}, {":v": {"SS": ["p"]}}, {"m.child.tags": {"SS": ["q"]}}),
    ("SET s = :v REMOVE n ADD tally :one DELETE ss :x", {},
     {":v": {"S": "all"}, ":one": {"N": "1"}, ":x": {"SS": ["x"]}},
     {"s": {"S": "all"}, "n": None, "tally": {"N": "1"}, "ss": {"SS": ["y"]}}),
]


def _at(item: dict[str, Any], path: str) -> Any:
    """Follow a.b[1].c through DynamoDB JSON; None when absent."""
    value: Any = {"M": item}
    for part in path.replace("]", "").replace("[", ".[").split("."):
        if part.startswith("["):
            elements = value.get("L") if value else None
            index = int(part[1:])
            value = elements[index] if elements is not None and index < len(elements) else None
        else:
            value = (value.get("M") or {}).get(part) if value else None
    return value


@pytest.mark.parametrize("expression,names,values,expected", UPDATES,
                         ids=[f"{u[0]}|{i}" for i, u in enumerate(UPDATES)])
def test_update_expression(ddb: Any, hash_table: str, expression: str, names: dict[str, str],
                           values: dict[str, Any], expected: dict[str, Any]) -> None:
    ddb.put_item(TableName=hash_table, Item=BASE)
    params: dict[str, Any] = {"TableName": hash_table, "Key": KEY,
                              "UpdateExpression": expression, "ReturnValues": "ALL_NEW"}
    if names:
        params["ExpressionAttributeNames"] = names
    if values:
        params["ExpressionAttributeValues"] = values
    returned = ddb.update_item(**params)["Attributes"]
    stored = ddb.get_item(TableName=hash_table, Key=KEY)["Item"]
    assert returned == stored
    for path, want in expected.items():
        got = _at(stored, path)
        if want is not None and set(want) <= {"SS", "NS", "BS"}:
            got = _sorted_sets({"v": got})["v"] if got else got
            want = _sorted_sets({"v": want})["v"]
        assert got == want, (path, stored)


UPDATE_ERRORS = [
    # (expression, values, fragment) — each rejected, the item left as it was.
    ("SET pk = :v", {":v": {"S": "x"}}, "part of the key"),
    ("REMOVE pk", {}, "part of the key"),
    ("SET s = s + :v", {":v": {"N": "1"}}, "incorrect data type"),
    ("ADD s :v", {":v": {"N": "1"}}, "incorrect data type"),
    ("DELETE n :v", {":v": {"NS": ["1"]}}, "incorrect data type"),
    ("SET absent.child = :v", {":v": {"N": "1"}}, "document path"),
    ("SET a = :v, a = :v", {":v": {"N": "1"}}, "overlap"),
    ("SET m.child = :v REMOVE m.child.cnt", {":v": {"N": "1"}}, "overlap"),
    ("SET n = :v + :v", {":v": {"N": "9E+125"}}, "overflow"),
    # a result needing more than 38 digits: DynamoDB says "Number overflow" (see
    # test_number_limits.py)
    ("SET n = n + :v", {":v": {"N": "9.9999999999999999999999999999999999999E+125"}},
     "Number overflow"),
]


@pytest.mark.parametrize("expression,values,fragment", UPDATE_ERRORS,
                         ids=[e[0] for e in UPDATE_ERRORS])
def test_update_expression_errors_change_nothing(ddb: Any, hash_table: str, expression: str,
                                                 values: dict[str, Any], fragment: str) -> None:
    ddb.put_item(TableName=hash_table, Item=BASE)
    before = snapshot(ddb, hash_table)
    params: dict[str, Any] = {"TableName": hash_table, "Key": KEY, "UpdateExpression": expression}
    if values:
        params["ExpressionAttributeValues"] = values
    response = expect_error(ddb.update_item, "ValidationException", "", **params)
    assert fragment.lower() in response["Error"]["Message"].lower(), response["Error"]
    assert snapshot(ddb, hash_table) == before


# --- Any SDK unchanged: the boto3 resource API and PynamoDB -------------------------------

def test_resource_api_round_trips_python_types(dynamodb: Any, hash_table: str) -> None:
    table = dynamodb.Table(hash_table)
    item = {
        "pk": "py", "int": 42, "dec": Decimal("3.14159"), "neg": Decimal("-0.5"), "big": 10 ** 30,
        "text": "ünïcode", "flag": True, "nothing": None, "blob": Binary(b"\x00\xff"),
        "tags": {"a", "b"}, "nums": {1, 2, 3}, "doc": {"nested": [1, "two", {"three": 3}]},
    }
    table.put_item(Item=item)
    got = table.get_item(Key={"pk": "py"})["Item"]
    assert got["int"] == Decimal(42) and isinstance(got["int"], Decimal)
    assert got["dec"] == Decimal("3.14159")
    assert got["neg"] == Decimal("-0.5")
    assert got["big"] == Decimal(10 ** 30)
    assert got["text"] == "ünïcode"
    assert got["flag"] is True and got["nothing"] is None
    assert got["blob"] == Binary(b"\x00\xff")
    assert got["tags"] == {"a", "b"} and got["nums"] == {1, 2, 3}
    assert got["doc"] == {"nested": [1, "two", {"three": 3}]}

    updated = table.update_item(Key={"pk": "py"}, UpdateExpression="ADD #i :one SET doc.x = :x",
                                ExpressionAttributeNames={"#i": "int"},
                                ExpressionAttributeValues={":one": 1, ":x": Decimal("1.50")},
                                ReturnValues="UPDATED_NEW")["Attributes"]
    assert updated == {"int": Decimal(43), "doc": {"x": Decimal("1.5")}}
    table.delete_item(Key={"pk": "py"})
    assert "Item" not in table.get_item(Key={"pk": "py"})


def test_resource_api_condition_builder(dynamodb: Any, hash_table: str) -> None:
    from boto3.dynamodb.conditions import Attr
    table = dynamodb.Table(hash_table)
    table.put_item(Item={"pk": "c", "v": 1})
    table.put_item(Item={"pk": "c", "v": 2}, ConditionExpression=Attr("v").eq(1))
    with pytest.raises(table.meta.client.exceptions.ConditionalCheckFailedException):
        table.put_item(Item={"pk": "c", "v": 3}, ConditionExpression=Attr("v").eq(1))
    assert table.get_item(Key={"pk": "c"})["Item"]["v"] == 2


def test_pynamodb_model_round_trip(server: Any, table_name: str) -> None:
    from pynamodb.attributes import (
        ListAttribute,
        MapAttribute,
        NumberAttribute,
        NumberSetAttribute,
        UnicodeAttribute,
    )
    from pynamodb.models import Model

    key_id, secret = server.credentials  # a key the server made (auth required)

    class Thing(Model):
        class Meta:
            host = server.url
            region = "us-east-1"
            aws_access_key_id = key_id
            aws_secret_access_key = secret

        owner = UnicodeAttribute(hash_key=True)
        seq = NumberAttribute(range_key=True)
        title = UnicodeAttribute(null=True)
        scores = NumberSetAttribute(null=True)
        extra = MapAttribute(null=True)
        history = ListAttribute(null=True)

    Thing.Meta.table_name = table_name
    Thing.create_table(billing_mode="PAY_PER_REQUEST", wait=True)
    assert Thing.exists()
    for seq in range(5):
        Thing(owner="ann", seq=seq, title=f"t{seq}", scores={seq, seq + 1},
              extra={"k": "v"}, history=["a", seq]).save()
    got = Thing.get("ann", 3)
    assert got.title == "t3" and got.scores == {3, 4}
    assert got.extra.as_dict() == {"k": "v"} and got.history == ["a", 3]

    got.update(actions=[Thing.title.set("renamed"), Thing.scores.add({9})])
    again = Thing.get("ann", 3)
    assert again.title == "renamed" and again.scores == {3, 4, 9}

    assert [t.seq for t in Thing.query("ann", Thing.seq >= 2)] == [2, 3, 4]
    assert [t.seq for t in Thing.query("ann", scan_index_forward=False, limit=2)] == [4, 3]
    assert Thing.count("ann") == 5

    from pynamodb.exceptions import PutError
    with pytest.raises(PutError):
        Thing(owner="ann", seq=0).save(condition=Thing.owner.does_not_exist())
    again.delete()
    assert Thing.count("ann") == 4
    Thing.delete_table()
    assert not Thing.exists()


def test_concurrent_updates_of_one_item_are_never_computed_on_a_stale_item(
        ddb: Any, table_name: str, server: Any) -> None:
    """UpdateItem is computed ahead against the committed item and re-computed when
    another write changed it meanwhile: racing counters and compare-and-swaps stay exact."""
    import threading

    from tests.support import client, create_table

    create_table(ddb, table_name)
    key = {"pk": {"S": "hot"}}
    ddb.put_item(TableName=table_name, Item={**key, "n": {"N": "0"}, "v": {"N": "0"}})
    swaps: list[int] = []

    def worker() -> None:
        mine = client(server.url)
        for _ in range(40):
            mine.update_item(TableName=table_name, Key=key, UpdateExpression="ADD n :one",
                             ExpressionAttributeValues={":one": {"N": "1"}})
            seen = int(mine.get_item(TableName=table_name, Key=key,
                                     ConsistentRead=True)["Item"]["v"]["N"])
            try:  # compare-and-swap v: seen -> seen + 1
                mine.update_item(TableName=table_name, Key=key, UpdateExpression="SET v = :new",
                                 ConditionExpression="v = :seen",
                                 ExpressionAttributeValues={":new": {"N": str(seen + 1)},
                                                            ":seen": {"N": str(seen)}})
                swaps.append(seen)
            except mine.exceptions.ConditionalCheckFailedException:
                pass

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    item = ddb.get_item(TableName=table_name, Key=key, ConsistentRead=True)["Item"]
    assert item["n"] == {"N": "240"}
    assert sorted(swaps) == list(range(len(swaps)))  # every swap moved v by exactly one
    assert item["v"] == {"N": str(len(swaps))}


def _status_around(server: Any, section: str, request: Any) -> tuple[Any, Any]:
    """`section` of /_atoll/status before and after five requests, one at a time."""
    before = node_json(server.url, "/_atoll/status")[section]
    for n in range(5):
        request(n)
    return before, node_json(server.url, "/_atoll/status")[section]


def test_status_shows_where_recent_writes_spent_their_time(server: Any, ddb: Any,
                                                            hash_table: str) -> None:
    before, path = _status_around(server, "write_path", lambda n: ddb.put_item(
        TableName=hash_table, Item={"pk": {"S": f"timed-{n}"}}))
    assert path["batches_total"] >= before["batches_total"] + 5  # one request at a time: a batch each
    assert path["batches"] >= 5 and path["window_s"] == 2.0
    stages = path["stages_ms"]
    assert {"wait", "run", "to_writer", "commit", "fsync", "answer", "total"} <= set(stages)
    assert 0 < stages["total"]["p50"] <= stages["total"]["p99"]
    assert stages["fsync"]["p50"] <= stages["total"]["p99"]
    if server.storage == "postgresql":  # no WAL of its own: PostgreSQL's COMMIT is durable
        assert "wal" not in path
        return
    # the WAL beside them: its frames and the writer's pauses before rewinds
    wal = path["wal"]
    assert set(wal) == {"frames", "rewind_frames", "rewinds", "rewind_pause_ms"}
    assert wal["rewinds"] >= before["wal"]["rewinds"]
    assert set(wal["rewind_pause_ms"]) == (
        {"p50", "p90", "p99", "max"} if wal["rewinds"] else set())


def test_status_tells_whether_the_request_path_is_compiled(server: Any) -> None:
    # `make setup` compiles it with mypyc unless ATOLL_PURE_PYTHON=1 (setup.py)
    wanted = os.environ.get("ATOLL_PURE_PYTHON") != "1"
    assert node_json(server.url, "/_atoll/status")["compiled"] is wanted


def test_status_shows_how_long_the_server_took_over_recent_requests(server: Any, ddb: Any,
                                                                    hash_table: str) -> None:
    before, timed = _status_around(server, "requests_ms", lambda n: ddb.get_item(
        TableName=hash_table, Key={"pk": {"S": f"absent-{n}"}}))
    assert timed["requests_total"] >= before["requests_total"] + 6  # the five reads and the status call
    assert timed["requests"] >= 5 and timed["window_s"] == 2.0
    assert 0 < timed["p50"] <= timed["p90"] <= timed["p99"] <= timed["max"]
