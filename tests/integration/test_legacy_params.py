"""Legacy parameters through boto3: Expected, AttributeUpdates, KeyConditions, QueryFilter,
ScanFilter, ConditionalOperator and AttributesToGet.

Each ComparisonOperator is a row (the condition, whether it holds on a fixed item); each
validation rule is a row (the request, DynamoDB's exact message). A failed legacy
condition raises ConditionalCheckFailedException and changes nothing; mixing legacy and
expression parameters is rejected.

References: DynamoDB Developer Guide, "Legacy conditional parameters" (ComparisonOperator
reference: NULL/NOT_NULL test existence; CONTAINS on strings, binaries, sets and lists;
EQ/NE on every type; IN, BETWEEN and the ordering operators on scalars only) and API
Reference (ExpectedAttributeValue, AttributeValueUpdate: ADD starts numbers at 0, DELETE
without a value removes the attribute). Messages as DynamoDB returns them, recorded by
dynalite's test suite and ScyllaDB Alternator's tests (which run against DynamoDB), e.g.
NOT_CONTAINS is false on a missing attribute while NE is true.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tests.integration.wire import expect_error
from tests.support import create_table

VE = "ValidationException"
CCF = "ConditionalCheckFailedException"
INVALID = "One or more parameter values were invalid: "
MIXED = "Can not use both expression and non-expression parameters in the same request: "

HASH = "legacy_hash"  # pk S
RANGE = "legacy_range"  # pk S, sk N
_keys = itertools.count()


def S(x: str) -> dict[str, Any]:
    return {"S": x}


def N(x: int | str) -> dict[str, Any]:
    return {"N": str(x)}


ITEM = {"n": N(5), "s": S("hello"), "b": {"B": b"hi there"}, "ss": {"SS": ["a", "b"]},
        "ns": {"NS": ["1", "2"]}, "l": {"L": [N(1), S("x")]}, "m": {"M": {"k": S("v")}},
        "t": {"BOOL": True}, "z": {"NULL": True}}


def op(operator: str, *values: Any) -> dict[str, Any]:
    return {"ComparisonOperator": operator, "AttributeValueList": list(values)}


@pytest.fixture(scope="module")
def tables(ddb: Any) -> None:
    create_table(ddb, HASH)
    create_table(ddb, RANGE, range_key=("sk", "N"))
    with_items = [{"pk": S("q"), "sk": N(i), "v": N(i % 3), "tag": S("even" if i % 2 == 0 else "odd")}
                  for i in range(10)]
    for item in with_items:
        ddb.put_item(TableName=RANGE, Item=item)


def fresh(ddb: Any, **attributes: Any) -> dict[str, Any]:
    """A new item in HASH with `attributes` (ITEM's by default); returns its key."""
    key = {"pk": S(f"k{next(_keys)}")}
    ddb.put_item(TableName=HASH, Item={**key, **(attributes or ITEM)})
    return key


def stored(ddb: Any, key: dict[str, Any]) -> Any:
    return ddb.get_item(TableName=HASH, Key=key, ConsistentRead=True).get("Item")


def expect_exact(call: Any, code: str, message: str, **params: Any) -> None:
    error = expect_error(call, code, **params)["Error"]
    assert error["Message"] == message, error


# ---- Expected: every ComparisonOperator, and the Value/Exists forms ---------------------

EXPECTED_CASES: list[tuple[str, dict[str, Any], bool]] = [
    ("EQ number", {"n": op("EQ", N(5))}, True),
    ("EQ number other", {"n": op("EQ", N(6))}, False),
    ("EQ equal decimal", {"n": op("EQ", N("5.00"))}, True),
    ("EQ other type", {"n": op("EQ", S("5"))}, False),
    ("EQ set any order", {"ss": op("EQ", {"SS": ["b", "a"]})}, True),
    ("EQ list", {"l": op("EQ", {"L": [N(1), S("x")]})}, True),
    ("EQ map", {"m": op("EQ", {"M": {"k": S("v")}})}, True),
    ("EQ bool", {"t": op("EQ", {"BOOL": True})}, True),
    ("EQ missing", {"nope": op("EQ", N(5))}, False),
    ("NE", {"n": op("NE", N(6))}, True),
    ("NE same", {"n": op("NE", N(5))}, False),
    ("NE other type", {"n": op("NE", S("5"))}, True),
    ("NE missing", {"nope": op("NE", N(1))}, True),
    ("LT", {"n": op("LT", N(6))}, True),
    ("LT equal", {"n": op("LT", N(5))}, False),
    ("LE", {"n": op("LE", N(5))}, True),
    ("GT", {"n": op("GT", N(4))}, True),
    ("GT string", {"s": op("GT", S("hell"))}, True),
    ("GE", {"n": op("GE", N(6))}, False),
    ("LT binary", {"b": op("LT", {"B": b"hj"})}, True),
    ("LT other type", {"n": op("LT", S("9"))}, False),
    ("LT missing", {"nope": op("LT", N(9))}, False),
    ("NULL missing", {"nope": op("NULL")}, True),
    ("NULL present", {"n": op("NULL")}, False),
    ("NULL on a NULL value", {"z": op("NULL")}, False),
    ("NOT_NULL", {"n": op("NOT_NULL")}, True),
    ("NOT_NULL missing", {"nope": op("NOT_NULL")}, False),
    ("CONTAINS substring", {"s": op("CONTAINS", S("ell"))}, True),
    ("CONTAINS no substring", {"s": op("CONTAINS", S("xyz"))}, False),
    ("CONTAINS string set", {"ss": op("CONTAINS", S("a"))}, True),
    ("CONTAINS number set", {"ns": op("CONTAINS", N("2.0"))}, True),
    ("CONTAINS list element", {"l": op("CONTAINS", N(1))}, True),
    ("CONTAINS list no element", {"l": op("CONTAINS", S("y"))}, False),
    ("CONTAINS binary", {"b": op("CONTAINS", {"B": b"here"})}, True),
    ("CONTAINS number in string", {"s": op("CONTAINS", N(1))}, False),
    ("CONTAINS missing", {"nope": op("CONTAINS", S("a"))}, False),
    ("NOT_CONTAINS", {"s": op("NOT_CONTAINS", S("xyz"))}, True),
    ("NOT_CONTAINS present", {"ss": op("NOT_CONTAINS", S("a"))}, False),
    ("NOT_CONTAINS list", {"l": op("NOT_CONTAINS", N(2))}, True),
    ("NOT_CONTAINS other type", {"n": op("NOT_CONTAINS", S("5"))}, True),
    ("NOT_CONTAINS missing is false", {"nope": op("NOT_CONTAINS", S("a"))}, False),
    ("BEGINS_WITH", {"s": op("BEGINS_WITH", S("hel"))}, True),
    ("BEGINS_WITH not prefix", {"s": op("BEGINS_WITH", S("lo"))}, False),
    ("BEGINS_WITH binary", {"b": op("BEGINS_WITH", {"B": b"hi"})}, True),
    ("BEGINS_WITH on a number", {"n": op("BEGINS_WITH", S("5"))}, False),
    ("IN", {"n": op("IN", N(1), N(5), N(9))}, True),
    ("IN none", {"n": op("IN", N(1), N(2))}, False),
    ("IN on a set is not membership", {"ss": op("IN", S("a"), S("b"))}, False),
    ("BETWEEN", {"n": op("BETWEEN", N(1), N(5))}, True),
    ("BETWEEN outside", {"n": op("BETWEEN", N(6), N(9))}, False),
    ("BETWEEN strings", {"s": op("BETWEEN", S("a"), S("z"))}, True),
    ("BETWEEN missing", {"nope": op("BETWEEN", N(1), N(9))}, False),
    ("Value", {"n": {"Value": N(5)}}, True),
    ("Value differs", {"n": {"Value": N(6)}}, False),
    ("Value on missing", {"nope": {"Value": N(5)}}, False),
    ("Exists true with Value", {"n": {"Exists": True, "Value": N(5)}}, True),
    ("Exists false on missing", {"nope": {"Exists": False}}, True),
    ("Exists false on present", {"n": {"Exists": False}}, False),
    ("ComparisonOperator with Value", {"n": {"ComparisonOperator": "GT", "Value": N(1)}}, True),
    ("empty Expected", {}, True),
    ("AND of all true", {"n": op("EQ", N(5)), "s": op("BEGINS_WITH", S("h")),
                         "nope": {"Exists": False}}, True),
    ("AND with one false", {"n": op("EQ", N(5)), "s": op("EQ", S("nope"))}, False),
]


@pytest.mark.parametrize("expected, holds", [c[1:] for c in EXPECTED_CASES],
                         ids=[c[0] for c in EXPECTED_CASES])
def test_expected_on_update_item(ddb: Any, tables: None, expected: dict[str, Any],
                                 holds: bool) -> None:
    key = fresh(ddb)
    request = {"TableName": HASH, "Key": key, "Expected": expected,
               "AttributeUpdates": {"marker": {"Value": N(1)}}}
    if holds:
        ddb.update_item(**request)
        assert stored(ddb, key)["marker"] == N(1)
    else:
        expect_error(ddb.update_item, CCF, "The conditional request failed", **request)
        assert "marker" not in stored(ddb, key)


@pytest.mark.parametrize("operator, holds", [("AND", False), ("OR", True)])
def test_conditional_operator(ddb: Any, tables: None, operator: str, holds: bool) -> None:
    key = fresh(ddb)
    request: dict[str, Any] = {"TableName": HASH, "Key": key, "ConditionalOperator": operator,
               "Expected": {"n": op("EQ", N(99)), "s": {"Value": S("hello")}},
               "AttributeUpdates": {"marker": {"Value": N(1)}}}
    if holds:
        ddb.update_item(**request)
        assert stored(ddb, key)["marker"] == N(1)
    else:
        expect_error(ddb.update_item, CCF, **request)
        assert "marker" not in stored(ddb, key)


def test_or_of_all_false_fails(ddb: Any, tables: None) -> None:
    key = fresh(ddb)
    expect_error(ddb.update_item, CCF, TableName=HASH, Key=key, ConditionalOperator="OR",
                 Expected={"n": op("EQ", N(99)), "nope": op("NOT_NULL")},
                 AttributeUpdates={"marker": {"Value": N(1)}})


def test_failed_expected_changes_nothing_for_put_update_delete(ddb: Any, tables: None) -> None:
    key = fresh(ddb)
    before = stored(ddb, key)
    failing = {"n": {"Value": N(6)}}
    expect_error(ddb.put_item, CCF, TableName=HASH, Item={**key, "x": N(1)}, Expected=failing)
    expect_error(ddb.update_item, CCF, TableName=HASH, Key=key, Expected=failing,
                 AttributeUpdates={"n": {"Action": "ADD", "Value": N(1)}})
    expect_error(ddb.delete_item, CCF, TableName=HASH, Key=key, Expected=failing)
    assert stored(ddb, key) == before


def test_failed_expected_returns_old_item_when_asked(ddb: Any, tables: None) -> None:
    key = fresh(ddb, v=N(1))
    response = expect_error(ddb.delete_item, CCF, TableName=HASH, Key=key,
                            Expected={"v": {"Exists": False}},
                            ReturnValuesOnConditionCheckFailure="ALL_OLD")
    assert response["Item"] == {**key, "v": N(1)}


def test_put_only_if_absent_and_delete_if_value(ddb: Any, tables: None) -> None:
    key = {"pk": S(f"k{next(_keys)}")}
    ddb.put_item(TableName=HASH, Item={**key, "v": N(1)}, Expected={"pk": {"Exists": False}})
    expect_error(ddb.put_item, CCF, TableName=HASH, Item={**key, "v": N(2)},
                 Expected={"pk": {"Exists": False}})
    ddb.put_item(TableName=HASH, Item={**key, "v": N(3)}, Expected={"v": {"Value": N(1)}})
    expect_error(ddb.delete_item, CCF, TableName=HASH, Key=key, Expected={"v": {"Value": N(1)}})
    ddb.delete_item(TableName=HASH, Key=key, Expected={"v": op("EQ", N(3))})
    assert stored(ddb, key) is None


def test_expected_on_an_absent_item(ddb: Any, tables: None) -> None:
    key = {"pk": S(f"k{next(_keys)}")}
    expect_error(ddb.update_item, CCF, TableName=HASH, Key=key, Expected={"a": {"Value": S("x")}})
    ddb.update_item(TableName=HASH, Key=key, Expected={"a": op("NULL")},
                    AttributeUpdates={"a": {"Value": S("x")}})
    assert stored(ddb, key) == {**key, "a": S("x")}


# ---- AttributeUpdates ---------------------------------------------------------------

UPDATE_CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("PUT", {"n": {"Action": "PUT", "Value": N(9)}}, {"n": N(9)}),
    ("PUT is the default action", {"new": {"Value": S("v")}}, {"new": S("v")}),
    ("PUT replaces any type", {"s": {"Value": {"L": [N(1)]}}}, {"s": {"L": [N(1)]}}),
    ("ADD to a number", {"n": {"Action": "ADD", "Value": N("-1.5")}}, {"n": N("3.5")}),
    ("ADD to a missing number starts at 0", {"c": {"Action": "ADD", "Value": N(3)}},
     {"c": N(3)}),
    ("ADD to a string set", {"ss": {"Action": "ADD", "Value": {"SS": ["c", "a"]}}},
     {"ss": {"SS": ["a", "b", "c"]}}),
    ("ADD a new number set", {"ns2": {"Action": "ADD", "Value": {"NS": ["7"]}}},
     {"ns2": {"NS": ["7"]}}),
    ("ADD to a list appends", {"l": {"Action": "ADD", "Value": {"L": [N(1)]}}},
     {"l": {"L": [N(1), S("x"), N(1)]}}),
    ("ADD a new list", {"l2": {"Action": "ADD", "Value": {"L": [S("y")]}}},
     {"l2": {"L": [S("y")]}}),
    ("DELETE without value removes", {"s": {"Action": "DELETE"}}, {"s": None}),
    ("DELETE of a missing attribute", {"nope": {"Action": "DELETE"}}, {}),
    ("DELETE set members", {"ss": {"Action": "DELETE", "Value": {"SS": ["a", "zz"]}}},
     {"ss": {"SS": ["b"]}}),
    ("DELETE every member removes", {"ns": {"Action": "DELETE", "Value": {"NS": ["1", "2.0"]}}},
     {"ns": None}),
    ("DELETE from a missing set", {"nope": {"Action": "DELETE", "Value": {"SS": ["a"]}}}, {}),
    ("several at once", {"n": {"Action": "ADD", "Value": N(1)}, "s": {"Action": "DELETE"},
                         "x": {"Value": {"BOOL": False}}},
     {"n": N(6), "s": None, "x": {"BOOL": False}}),
]


def _sorted_sets(item: dict[str, Any]) -> dict[str, Any]:
    return {k: ({t: sorted(v[t])} if next(iter(v)) in ("SS", "NS", "BS") else v)
            for k, v in item.items() for t in [next(iter(v))]}


@pytest.mark.parametrize("updates, changes", [c[1:] for c in UPDATE_CASES],
                         ids=[c[0] for c in UPDATE_CASES])
def test_attribute_updates(ddb: Any, tables: None, updates: dict[str, Any],
                           changes: dict[str, Any]) -> None:
    key = fresh(ddb)
    ddb.update_item(TableName=HASH, Key=key, AttributeUpdates=updates)
    wanted = {**key, **ITEM, **changes}
    wanted = {k: value for k, value in wanted.items() if value is not None}
    assert _sorted_sets(stored(ddb, key)) == _sorted_sets(wanted)


def test_attribute_updates_create_the_item(ddb: Any, tables: None) -> None:
    key = {"pk": S(f"k{next(_keys)}")}
    ddb.update_item(TableName=HASH, Key=key, AttributeUpdates={
        "gone": {"Action": "DELETE"}, "gone2": {"Action": "DELETE", "Value": {"SS": ["a"]}},
        "count": {"Action": "ADD", "Value": N(5)}, "tags": {"Action": "ADD", "Value": {"SS": ["a"]}},
        "name": {"Value": S("x")}})
    assert stored(ddb, key) == {**key, "count": N(5), "tags": {"SS": ["a"]}, "name": S("x")}


@pytest.mark.parametrize("return_values, attributes", [
    ("UPDATED_NEW", {"n": N(6), "new": S("v")}),
    ("UPDATED_OLD", {"n": N(5)}),
    ("ALL_NEW", {**ITEM, "n": N(6), "new": S("v")}),
    ("ALL_OLD", ITEM),
])
def test_attribute_updates_return_values(ddb: Any, tables: None, return_values: str,
                                         attributes: dict[str, Any]) -> None:
    key = fresh(ddb)
    answer = ddb.update_item(TableName=HASH, Key=key, ReturnValues=return_values,
                             AttributeUpdates={"n": {"Action": "ADD", "Value": N(1)},
                                               "new": {"Value": S("v")},
                                               "nope": {"Action": "DELETE"}})
    got = answer["Attributes"]
    if return_values.startswith("ALL"):
        attributes = {**key, **attributes}
    assert _sorted_sets(got) == _sorted_sets(attributes)


def test_attribute_updates_with_expected_together(ddb: Any, tables: None) -> None:
    key = fresh(ddb)
    ddb.update_item(TableName=HASH, Key=key, Expected={"n": op("LT", N(10))},
                    AttributeUpdates={"n": {"Action": "ADD", "Value": N(10)}})
    expect_error(ddb.update_item, CCF, TableName=HASH, Key=key, Expected={"n": op("LT", N(10))},
                 AttributeUpdates={"n": {"Action": "ADD", "Value": N(10)}})
    assert stored(ddb, key)["n"] == N(15)


UPDATE_ERRORS: list[tuple[str, dict[str, Any], str]] = [
    ("no value", {"a": {"Action": "PUT"}},
     INVALID + "Only DELETE action is allowed when no attribute value is specified"),
    ("ADD without value", {"a": {"Action": "ADD"}},
     INVALID + "Only DELETE action is allowed when no attribute value is specified"),
    ("DELETE a string", {"s": {"Action": "DELETE", "Value": S("h")}},
     INVALID + "DELETE action with value is not supported for the type S"),
    ("DELETE a list", {"l": {"Action": "DELETE", "Value": {"L": [N(1)]}}},
     INVALID + "DELETE action with value is not supported for the type L"),
    ("ADD a string", {"s": {"Action": "ADD", "Value": S("x")}},
     INVALID + "ADD action is not supported for the type S"),
    ("ADD a map", {"m": {"Action": "ADD", "Value": {"M": {}}}},
     INVALID + "ADD action is not supported for the type M"),
    ("ADD a number to a string", {"s": {"Action": "ADD", "Value": N(1)}},
     "Type mismatch for attribute to update"),
    ("ADD a number set to a string set", {"ss": {"Action": "ADD", "Value": {"NS": ["1"]}}},
     "Type mismatch for attribute to update"),
    ("ADD a list to a number", {"n": {"Action": "ADD", "Value": {"L": []}}},
     "Type mismatch for attribute to update"),
    ("DELETE a number set from a string set", {"ss": {"Action": "DELETE", "Value": {"NS": ["1"]}}},
     "Type mismatch for attribute to update"),
    ("DELETE a set from a number", {"n": {"Action": "DELETE", "Value": {"NS": ["5"]}}},
     "Type mismatch for attribute to update"),
    ("the key", {"pk": {"Value": S("other")}},
     INVALID + "Cannot update attribute pk. This attribute is part of the key"),
    # UpdateItem words a refused value in DynamoDB's current layer, inside the envelope
    # (paritysuite conformance suite, error-messages/valueLayers.test.ts)
    ("a bad value", {"a": {"Value": {"SS": ["x", "x"]}}},
     "1 validation error detected: " + INVALID + 'Input collection ["x", "x"] contains duplicates.'),
]


@pytest.mark.parametrize("updates, message", [c[1:] for c in UPDATE_ERRORS],
                         ids=[c[0] for c in UPDATE_ERRORS])
def test_attribute_updates_errors_change_nothing(ddb: Any, tables: None, updates: dict[str, Any],
                                                 message: str) -> None:
    key = fresh(ddb)
    before = stored(ddb, key)
    expect_exact(ddb.update_item, VE, message, TableName=HASH, Key=key, AttributeUpdates=updates)
    assert stored(ddb, key) == before


# ---- validation of conditions -----------------------------------------------------------

CONDITION_ERRORS: list[tuple[str, dict[str, Any], str]] = [
    ("Exists true without Value", {"a": {"Exists": True}},
     INVALID + "Value must be provided when Exists is true for Attribute: a"),
    ("neither Value nor Exists", {"a": {}},
     INVALID + "Value must be provided when Exists is null for Attribute: a"),
    ("Exists false with Value", {"a": {"Exists": False, "Value": N(1)}},
     INVALID + "Value cannot be used when Exists is false for Attribute: a"),
    ("Value and AttributeValueList", {"a": {"Value": N(1), **op("EQ", N(1))}},
     INVALID + "Value and AttributeValueList cannot be used together for Attribute: a"),
    ("Exists and ComparisonOperator", {"a": {"Exists": False, **op("EQ", N(1))}},
     INVALID + "Exists and ComparisonOperator cannot be used together for Attribute: a"),
    ("operator without operands", {"a": {"ComparisonOperator": "EQ"}},
     INVALID + "Value or AttributeValueList must be used with ComparisonOperator: EQ for "
     "Attribute: a"),
    ("AttributeValueList without operator", {"a": {"AttributeValueList": [N(1)]}},
     INVALID + "AttributeValueList can only be used with a ComparisonOperator for Attribute: a"),
    ("EQ with two", {"a": op("EQ", N(1), N(2))},
     INVALID + "Invalid number of argument(s) for the EQ ComparisonOperator"),
    ("NE with none", {"a": op("NE")},
     INVALID + "Invalid number of argument(s) for the NE ComparisonOperator"),
    ("NULL with one", {"a": op("NULL", N(1))},
     INVALID + "Invalid number of argument(s) for the NULL ComparisonOperator"),
    ("NOT_NULL with one", {"a": op("NOT_NULL", N(1))},
     INVALID + "Invalid number of argument(s) for the NOT_NULL ComparisonOperator"),
    ("IN with none", {"a": op("IN")},
     INVALID + "Invalid number of argument(s) for the IN ComparisonOperator"),
    ("BETWEEN with one", {"a": op("BETWEEN", N(1))},
     INVALID + "Invalid number of argument(s) for the BETWEEN ComparisonOperator"),
    ("BETWEEN with three", {"a": op("BETWEEN", N(1), N(2), N(3))},
     INVALID + "Invalid number of argument(s) for the BETWEEN ComparisonOperator"),
    ("CONTAINS with none", {"a": op("CONTAINS")},
     INVALID + "Invalid number of argument(s) for the CONTAINS ComparisonOperator"),
    ("LT on a list", {"a": op("LT", {"L": [N(1)]})},
     INVALID + "ComparisonOperator LT is not valid for L AttributeValue type"),
    ("GE on a bool", {"a": op("GE", {"BOOL": True})},
     INVALID + "ComparisonOperator GE is not valid for BOOL AttributeValue type"),
    ("BEGINS_WITH a number", {"a": op("BEGINS_WITH", N(1))},
     INVALID + "ComparisonOperator BEGINS_WITH is not valid for N AttributeValue type"),
    ("CONTAINS a list", {"a": op("CONTAINS", {"L": [N(1)]})},
     INVALID + "ComparisonOperator CONTAINS is not valid for L AttributeValue type"),
    ("NOT_CONTAINS a set", {"a": op("NOT_CONTAINS", {"SS": ["x"]})},
     INVALID + "ComparisonOperator NOT_CONTAINS is not valid for SS AttributeValue type"),
    ("IN of lists", {"a": op("IN", {"L": [N(1)]}, {"L": [N(2)]})},
     INVALID + "ComparisonOperator IN is not valid for L AttributeValue type"),
    ("IN of two types", {"a": op("IN", N(3), S("dog"))},
     INVALID + "AttributeValues inside AttributeValueList must be of same type"),
    ("BETWEEN of two types", {"a": op("BETWEEN", N(3), S("dog"))},
     INVALID + "AttributeValues inside AttributeValueList must be of same type"),
    ("BETWEEN of sets", {"a": op("BETWEEN", {"NS": ["1"]}, {"NS": ["2"]})},
     INVALID + "ComparisonOperator BETWEEN is not valid for NS AttributeValue type"),
    ("BETWEEN reversed", {"a": op("BETWEEN", N(4), N(3))},
     "The BETWEEN condition was provided a range where the lower bound is greater than the "
     "upper bound"),
    ("bad operand value", {"a": op("EQ", N("x"))},  # enveloped, as the row above says
     "1 validation error detected: The parameter cannot be converted to a numeric value: x"),
]


@pytest.mark.parametrize("expected, message", [c[1:] for c in CONDITION_ERRORS],
                         ids=[c[0] for c in CONDITION_ERRORS])
def test_expected_validation(ddb: Any, tables: None, expected: dict[str, Any],
                             message: str) -> None:
    key = fresh(ddb)
    before = stored(ddb, key)
    expect_exact(ddb.update_item, VE, message, TableName=HASH, Key=key, Expected=expected,
                 AttributeUpdates={"marker": {"Value": N(1)}})
    expect_exact(ddb.put_item, VE, message, TableName=HASH, Item=key, Expected=expected)
    assert stored(ddb, key) == before


# The rows that are plain {ComparisonOperator, AttributeValueList} conditions apply to
# filters too; a Query or Scan words a refused value without the single-item writes'
# "1 validation error detected: " envelope (paritysuite, valueLayers.test.ts).
FILTER_ERRORS = [(c[0], c[1], c[2].removeprefix("1 validation error detected: "))
                 for c in CONDITION_ERRORS
                 if all(set(spec) == {"ComparisonOperator", "AttributeValueList"}
                        for spec in c[1].values())]


@pytest.mark.parametrize("conditions, message", [c[1:] for c in FILTER_ERRORS],
                         ids=[c[0] for c in FILTER_ERRORS])
def test_filter_validation(ddb: Any, tables: None, conditions: dict[str, Any],
                           message: str) -> None:
    expect_exact(ddb.scan, VE, message, TableName=HASH, ScanFilter=conditions)
    expect_exact(ddb.query, VE, message, TableName=HASH, QueryFilter=conditions,
                 KeyConditions={"pk": op("EQ", S("x"))})


def test_unknown_operators_fail_the_enum_check(ddb: Any, tables: None) -> None:
    expect_error(ddb.scan, VE, "comparisonOperator", TableName=HASH,
                 ScanFilter={"a": op("eq", N(1))})
    expect_error(ddb.update_item, VE, "conditionalOperator", TableName=HASH, Key={"pk": S("x")},
                 Expected={"a": op("NULL"), "b": op("NULL")}, ConditionalOperator="or")


@pytest.mark.parametrize("call, params, message", [
    ("update_item", {"Key": {"pk": S("x")}, "ConditionalOperator": "OR",
                     "AttributeUpdates": {"a": {"Value": N(1)}}},
     "ConditionalOperator cannot be used without Filter or Expected"),
    ("update_item", {"Key": {"pk": S("x")}, "ConditionalOperator": "OR", "Expected": {}},
     "ConditionalOperator can only be used when Filter or Expected has two or more elements"),
    ("put_item", {"Item": {"pk": S("x")}, "ConditionalOperator": "AND",
                  "Expected": {"a": op("NULL")}},
     "ConditionalOperator can only be used when Filter or Expected has two or more elements"),
    ("scan", {"ConditionalOperator": "AND", "ScanFilter": {"a": op("NULL")}},
     "ConditionalOperator can only be used when Filter or Expected has two or more elements"),
    ("scan", {"ConditionalOperator": "AND"},
     "ConditionalOperator cannot be used without Filter or Expected"),
])
def test_conditional_operator_needs_two_conditions(ddb: Any, tables: None, call: str,
                                                   params: dict[str, Any], message: str) -> None:
    expect_exact(getattr(ddb, call), VE, message, TableName=HASH, **params)


# ---- mixing legacy and expression parameters ---------------------------------------------

MIXING: list[tuple[str, dict[str, Any], str]] = [
    ("put_item", {"Item": {"pk": S("m")}, "Expected": {"a": op("NULL")},
                  "ConditionExpression": "attribute_not_exists(a)"},
     "Non-expression parameters: {Expected} Expression parameters: {ConditionExpression}"),
    ("delete_item", {"Key": {"pk": S("m")}, "Expected": {"a": op("NULL")},
                     "ConditionExpression": "attribute_not_exists(a)"},
     "Non-expression parameters: {Expected} Expression parameters: {ConditionExpression}"),
    ("update_item", {"Key": {"pk": S("m")}, "AttributeUpdates": {"a": {"Value": N(1)}},
                     "UpdateExpression": "REMOVE b"},
     "Non-expression parameters: {AttributeUpdates} Expression parameters: {UpdateExpression}"),
    ("update_item", {"Key": {"pk": S("m")}, "AttributeUpdates": {"a": {"Value": N(1)}},
                     "ConditionExpression": "attribute_exists(a)"},
     "Non-expression parameters: {AttributeUpdates} Expression parameters: "
     "{ConditionExpression}"),
    ("update_item", {"Key": {"pk": S("m")}, "AttributeUpdates": {}, "Expected": {},
                     "UpdateExpression": "", "ConditionExpression": ""},
     "Non-expression parameters: {AttributeUpdates, Expected} Expression parameters: "
     "{UpdateExpression, ConditionExpression}"),
    ("update_item", {"Key": {"pk": S("m")}, "Expected": {"a": op("NULL"), "b": op("NULL")},
                     "ConditionalOperator": "OR", "UpdateExpression": "REMOVE b"},
     "Non-expression parameters: {Expected, ConditionalOperator} Expression parameters: "
     "{UpdateExpression}"),
    ("query", {"KeyConditions": {"pk": op("EQ", S("m"))}, "KeyConditionExpression": "pk = :p",
               "ExpressionAttributeValues": {":p": S("m")}},
     "Non-expression parameters: {KeyConditions} Expression parameters: "
     "{KeyConditionExpression}"),
    ("query", {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": S("m")},
               "QueryFilter": {"a": op("NULL")}},
     "Non-expression parameters: {QueryFilter} Expression parameters: {KeyConditionExpression}"),
    ("query", {"KeyConditions": {"pk": op("EQ", S("m"))}, "ProjectionExpression": "a",
               "QueryFilter": {"a": op("NULL")}},
     "Non-expression parameters: {QueryFilter} Expression parameters: {ProjectionExpression}"),
    ("query", {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": S("m")},
               "FilterExpression": "attribute_exists(a)", "AttributesToGet": ["a"]},
     "Non-expression parameters: {AttributesToGet} Expression parameters: "
     "{FilterExpression, KeyConditionExpression}"),
    ("scan", {"ScanFilter": {"a": op("NULL")}, "FilterExpression": "attribute_exists(a)"},
     "Non-expression parameters: {ScanFilter} Expression parameters: {FilterExpression}"),
    ("scan", {"ScanFilter": {"a": op("NULL"), "b": op("NULL")}, "ConditionalOperator": "OR",
              "ProjectionExpression": "a"},
     "Non-expression parameters: {ScanFilter, ConditionalOperator} Expression parameters: "
     "{ProjectionExpression}"),
    ("scan", {"AttributesToGet": ["a"], "ProjectionExpression": "a"},
     "Non-expression parameters: {AttributesToGet} Expression parameters: "
     "{ProjectionExpression}"),
    ("get_item", {"Key": {"pk": S("m")}, "AttributesToGet": ["a"], "ProjectionExpression": "a"},
     "Non-expression parameters: {AttributesToGet} Expression parameters: "
     "{ProjectionExpression}"),
]


@pytest.mark.parametrize("call, params, message", MIXING,
                         ids=[f"{c[0]}:{c[2].split('{')[1].split('}')[0]}" for c in MIXING])
def test_mixing_legacy_and_expressions_is_rejected(ddb: Any, tables: None, call: str,
                                                   params: dict[str, Any], message: str) -> None:
    before = ddb.scan(TableName=HASH, ConsistentRead=True)["Items"]
    expect_exact(getattr(ddb, call), VE, MIXED + message, TableName=HASH, **params)
    assert ddb.scan(TableName=HASH, ConsistentRead=True)["Items"] == before


def test_expression_attribute_maps_need_expressions(ddb: Any, tables: None) -> None:
    expect_exact(ddb.put_item, VE,
                 "ExpressionAttributeNames can only be specified when using expressions",
                 TableName=HASH, Item={"pk": S("m")}, Expected={"a": op("NULL")},
                 ExpressionAttributeNames={"#a": "a"})
    expect_exact(ddb.put_item, VE, "ExpressionAttributeValues can only be specified when using "
                 "expressions: ConditionExpression is null", TableName=HASH,
                 Item={"pk": S("m")}, Expected={"a": op("NULL")},
                 ExpressionAttributeValues={":a": N(1)})
    expect_exact(ddb.update_item, VE, "ExpressionAttributeValues can only be specified when "
                 "using expressions: UpdateExpression and ConditionExpression are null",
                 TableName=HASH, Key={"pk": S("m")}, AttributeUpdates={"a": {"Value": N(1)}},
                 ExpressionAttributeValues={":a": N(1)})


# ---- Query: KeyConditions and QueryFilter; Scan: ScanFilter -----------------------------

def _sks(items: list[dict[str, Any]]) -> list[int]:
    return [int(item["sk"]["N"]) for item in items]


@pytest.mark.parametrize("sort_condition, sks", [
    (None, list(range(10))),
    (op("EQ", N(3)), [3]),
    (op("LT", N(3)), [0, 1, 2]),
    (op("LE", N(3)), [0, 1, 2, 3]),
    (op("GT", N(7)), [8, 9]),
    (op("GE", N(7)), [7, 8, 9]),
    (op("BETWEEN", N(2), N(4)), [2, 3, 4]),
])
def test_key_conditions(ddb: Any, tables: None, sort_condition: Any, sks: list[int]) -> None:
    conditions = {"pk": op("EQ", S("q"))}
    if sort_condition is not None:
        conditions["sk"] = sort_condition
    items = ddb.query(TableName=RANGE, KeyConditions=conditions)["Items"]
    assert _sks(items) == sks
    backwards = ddb.query(TableName=RANGE, KeyConditions=conditions, ScanIndexForward=False)
    assert _sks(backwards["Items"]) == sks[::-1]


def test_key_conditions_page_with_exclusive_start_key(ddb: Any, tables: None) -> None:
    conditions = {"pk": op("EQ", S("q")), "sk": op("GE", N(2))}
    seen: list[int] = []
    params: dict[str, Any] = {"TableName": RANGE, "KeyConditions": conditions, "Limit": 3}
    while True:
        page = ddb.query(**params)
        seen += _sks(page["Items"])
        if "LastEvaluatedKey" not in page:
            break
        params["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    assert seen == list(range(2, 10))


def test_begins_with_key_condition_on_a_string_sort_key(ddb: Any, table_name: str) -> None:
    create_table(ddb, table_name, range_key=("sk", "S"))
    for sk in ("apple", "apricot", "banana"):
        ddb.put_item(TableName=table_name, Item={"pk": S("p"), "sk": S(sk)})
    items = ddb.query(TableName=table_name, KeyConditions={
        "pk": op("EQ", S("p")), "sk": op("BEGINS_WITH", S("ap"))})["Items"]
    assert [item["sk"]["S"] for item in items] == ["apple", "apricot"]


def test_key_conditions_on_a_global_secondary_index(ddb: Any, table_name: str) -> None:
    ddb.create_table(
        TableName=table_name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": t}
                              for n, t in (("pk", "S"), ("g", "S"), ("r", "N"))],
        GlobalSecondaryIndexes=[{
            "IndexName": "by_g", "Projection": {"ProjectionType": "ALL"},
            "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"},
                          {"AttributeName": "r", "KeyType": "RANGE"}]}])
    for i in range(6):
        ddb.put_item(TableName=table_name, Item={"pk": S(f"p{i}"), "g": S("x" if i < 4 else "y"),
                                                 "r": N(i), "odd": {"BOOL": i % 2 == 1}})
    answer = ddb.query(TableName=table_name, IndexName="by_g",
                       KeyConditions={"g": op("EQ", S("x")), "r": op("GE", N(1))},
                       QueryFilter={"odd": op("EQ", {"BOOL": True})}, ScanIndexForward=False)
    assert [item["pk"]["S"] for item in answer["Items"]] == ["p3", "p1"]
    expect_exact(ddb.query, VE, "QueryFilter can only contain non-primary key attributes: "
                 "Primary key attribute: r", TableName=table_name, IndexName="by_g",
                 KeyConditions={"g": op("EQ", S("x"))}, QueryFilter={"r": op("NOT_NULL")})
    expect_exact(ddb.query, VE, "Query condition missed key schema element: g",
                 TableName=table_name, IndexName="by_g", KeyConditions={"pk": op("EQ", S("p1"))})


@pytest.mark.parametrize("conditions, message", [
    ({"sk": op("EQ", N(1))}, "Query condition missed key schema element: pk"),
    ({"pk": op("GT", S("q"))}, "Query key condition not supported"),
    ({"pk": op("BEGINS_WITH", S("q"))}, "Query key condition not supported"),
    ({"pk": op("BETWEEN", S("a"), S("z"))}, "Query key condition not supported"),
    ({"pk": op("EQ", S("q")), "sk": op("NE", N(1))},
     "Attempted conditional constraint is not an indexable operation"),
    ({"pk": op("EQ", S("q")), "sk": op("NOT_NULL")},
     "Attempted conditional constraint is not an indexable operation"),
    ({"pk": op("IN", S("q"))}, "Attempted conditional constraint is not an indexable operation"),
    ({"pk": op("EQ", S("q")), "sk": op("BEGINS_WITH", N(1))},
     INVALID + "ComparisonOperator BEGINS_WITH is not valid for N AttributeValue type"),
    ({"pk": op("EQ", N(1))}, INVALID + "Condition parameter type does not match schema type"),
    ({"pk": op("EQ", S("q")), "sk": op("LT", S("1"))},
     INVALID + "Condition parameter type does not match schema type"),
    ({"pk": op("EQ", S("q")), "other": op("EQ", N(1))},
     "Query condition missed key schema element: sk"),
    ({"pk": op("EQ", S("q")), "sk": op("GT", N(1)), "x": op("EQ", N(1))},
     "Conditions can be of length 1 or 2 only"),
    ({}, "Conditions can be of length 1 or 2 only"),
    ({"pk": op("EQ")}, INVALID + "Invalid number of argument(s) for the EQ ComparisonOperator"),
])
def test_key_condition_errors(ddb: Any, tables: None, conditions: dict[str, Any],
                              message: str) -> None:
    expect_exact(ddb.query, VE, message, TableName=RANGE, KeyConditions=conditions)


def test_query_needs_a_key_condition(ddb: Any, tables: None) -> None:
    expect_exact(ddb.query, VE, "Either the KeyConditions or KeyConditionExpression parameter "
                 "must be specified in the request.", TableName=RANGE,
                 QueryFilter={"v": op("NULL")})


@pytest.mark.parametrize("query_filter, operator, sks", [
    ({"v": op("EQ", N(0))}, None, [0, 3, 6, 9]),
    ({"v": op("EQ", N(0)), "tag": op("EQ", S("even"))}, None, [0, 6]),
    ({"v": op("EQ", N(0)), "tag": op("EQ", S("even"))}, "AND", [0, 6]),
    ({"v": op("EQ", N(0)), "tag": op("EQ", S("even"))}, "OR", [0, 2, 3, 4, 6, 8, 9]),
    ({"v": op("IN", N(1), N(2)), "tag": op("BEGINS_WITH", S("o"))}, "AND", [1, 5, 7]),
    ({"missing": op("NULL")}, None, list(range(10))),
    ({"missing": op("NOT_CONTAINS", S("x"))}, None, []),
    ({}, None, list(range(10))),
])
def test_query_filter(ddb: Any, tables: None, query_filter: dict[str, Any],
                      operator: str | None, sks: list[int]) -> None:
    params: dict[str, Any] = {"TableName": RANGE, "QueryFilter": query_filter,
                              "KeyConditions": {"pk": op("EQ", S("q"))}}
    if operator:
        params["ConditionalOperator"] = operator
    answer = ddb.query(**params)
    assert _sks(answer["Items"]) == sks
    assert answer["Count"] == len(sks) and answer["ScannedCount"] == 10


def test_query_filter_cannot_use_key_attributes(ddb: Any, tables: None) -> None:
    for name in ("pk", "sk"):
        expect_exact(ddb.query, VE, "QueryFilter can only contain non-primary key attributes: "
                     f"Primary key attribute: {name}", TableName=RANGE,
                     KeyConditions={"pk": op("EQ", S("q"))}, QueryFilter={name: op("NOT_NULL")})
    # the same rule for a FilterExpression, whichever way the key is named
    for condition in ("sk > :one", "v = :one OR size(#k) > :one", "NOT (#k IN (:one))"):
        expect_exact(ddb.query, VE, "Filter Expression can only contain non-primary key "
                     "attributes: Primary key attribute: sk", TableName=RANGE,
                     KeyConditionExpression="pk = :q", FilterExpression=condition,
                     ExpressionAttributeValues={":q": S("q"), ":one": N(1)},
                     **({"ExpressionAttributeNames": {"#k": "sk"}} if "#k" in condition else {}))
    # a Scan filters whatever it likes
    assert ddb.scan(TableName=RANGE, FilterExpression="sk > :one",
                    ExpressionAttributeValues={":one": N(8)})["Count"] == 1


def test_key_conditions_go_with_filter_and_projection_expressions(ddb: Any, tables: None) -> None:
    answer = ddb.query(TableName=RANGE, KeyConditions={"pk": op("EQ", S("q"))},
                       FilterExpression="#t = :t", ProjectionExpression="sk",
                       ExpressionAttributeNames={"#t": "tag"},
                       ExpressionAttributeValues={":t": S("odd")})
    assert answer["Items"] == [{"sk": N(i)} for i in (1, 3, 5, 7, 9)]


def test_query_filter_with_attributes_to_get(ddb: Any, tables: None) -> None:
    # the filter reads an attribute that AttributesToGet leaves out of the answer
    answer = ddb.query(TableName=RANGE, KeyConditions={"pk": op("EQ", S("q"))},
                       QueryFilter={"tag": op("EQ", S("even"))}, AttributesToGet=["v"],
                       Select="SPECIFIC_ATTRIBUTES", Limit=5)
    assert answer["Items"] == [{"v": N(0)}, {"v": N(2)}, {"v": N(1)}]
    assert answer["ScannedCount"] == 5 and "LastEvaluatedKey" in answer


@pytest.mark.parametrize("scan_filter, operator, sks", [
    ({"v": op("GE", N(2))}, None, [2, 5, 8]),
    ({"sk": op("BETWEEN", N(3), N(5)), "v": op("NE", N(1))}, "AND", [3, 5]),
    ({"sk": op("LT", N(1)), "sk2": op("NULL")}, "OR", list(range(10))),
    ({"tag": op("CONTAINS", S("dd"))}, None, [1, 3, 5, 7, 9]),
])
def test_scan_filter(ddb: Any, tables: None, scan_filter: dict[str, Any], operator: str | None,
                     sks: list[int]) -> None:
    params: dict[str, Any] = {"TableName": RANGE, "ScanFilter": scan_filter}
    if operator:
        params["ConditionalOperator"] = operator
    answer = ddb.scan(**params)
    assert sorted(_sks(answer["Items"])) == sks
    count = ddb.scan(Select="COUNT", **params)
    assert count["Count"] == len(sks) and "Items" not in count


# ---- AttributesToGet ----------------------------------------------------------------

def test_attributes_to_get_everywhere(ddb: Any, tables: None) -> None:
    key = fresh(ddb)
    wanted = {"n": N(5), "s": S("hello")}
    attributes = ["n", "s", "nope"]
    assert ddb.get_item(TableName=HASH, Key=key, AttributesToGet=attributes)["Item"] == wanted
    batch = ddb.batch_get_item(RequestItems={HASH: {"Keys": [key],
                                                    "AttributesToGet": attributes}})
    assert batch["Responses"][HASH] == [wanted]
    scanned = ddb.scan(TableName=HASH, AttributesToGet=attributes,
                       ScanFilter={"pk": op("EQ", key["pk"])})
    assert scanned["Items"] == [wanted]
    queried = ddb.query(TableName=HASH, AttributesToGet=attributes,
                        KeyConditions={"pk": op("EQ", key["pk"])})
    assert queried["Items"] == [wanted]


@pytest.mark.parametrize("call, params", [
    ("get_item", {"Key": {"pk": S("x")}}),
    ("scan", {}),
    ("query", {"KeyConditions": {"pk": op("EQ", S("x"))}}),
])
def test_attributes_to_get_duplicates(ddb: Any, tables: None, call: str,
                                      params: dict[str, Any]) -> None:
    expect_exact(getattr(ddb, call), VE, INVALID + "Duplicate value in attribute name: a",
                 TableName=HASH, AttributesToGet=["a", "b", "a"], **params)
