"""Impossible numbers are refused everywhere a number enters, and change nothing.

DynamoDB ("Data types"): numbers have up to 38 significant digits, positive range
1E-130 to 9.9999999999999999999999999999999999999E+125, negative the mirror; "Exceeding
this results in an exception". `1e999999999` and its relatives (exponents beyond what a
decimal context holds), Infinity and NaN get a ValidationException with DynamoDB's
message through every entry point: item values, keys, expression attribute values,
the legacy parameters (Expected, AttributeUpdates, KeyConditions, QueryFilter,
ScanFilter), batches and transactions. Arithmetic results that do not fit (SET +/-,
ADD, AttributeUpdates ADD) are refused with DynamoDB's messages for results — "Number
overflow" also for a result needing more than 38 digits (DynamoDB answers 1E+50 + 1 so,
as ScyllaDB's test_update_expression_plus_imprecise records) — and inside a transaction
as a ValidationError cancellation reason (TransactWriteItems, "Cancellation reasons").
After each refusal the table holds exactly what it held before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.wire import expect_error, snapshot
from tests.support import create_table

TABLE = "number_limits"  # pk S, sk N
KEY = {"pk": {"S": "p"}, "sk": {"N": "1"}}
MAX = "9.9999999999999999999999999999999999999E+125"
SMALLEST_PLUS = "1.0000000000000000000000000000000000001E-130"
ITEM = {**KEY, "n": {"N": "5"}, "big": {"N": MAX}, "tiny": {"N": SMALLEST_PLUS},
        "ns": {"NS": ["1", "2"]}, "s": {"S": "x"}}

OVERFLOW = "Number overflow. Attempting to store a number with magnitude larger than supported range"
UNDERFLOW = ("Number underflow. Attempting to store a number with magnitude smaller than "
             "supported range")
NOT_A_NUMBER = "The parameter cannot be converted to a numeric value"

IMPOSSIBLE = [  # (number text, the message DynamoDB refuses it with)
    ("1e999999999", OVERFLOW),
    ("-1e999999999", OVERFLOW),
    ("1E+" + "9" * 30, OVERFLOW),
    ("1e-999999999", UNDERFLOW),
    ("-1e-999999999", UNDERFLOW),
    ("Infinity", NOT_A_NUMBER),
    ("NaN", NOT_A_NUMBER),
]


def _n(text: str) -> dict[str, str]:
    return {"N": text}


def _values(text: str) -> dict[str, Any]:
    return {":v": _n(text)}


# (entry point, method name, request for a number text)
ENTRY_POINTS: list[tuple[str, str, Callable[[str], dict[str, Any]]]] = [
    ("PutItem attribute", "put_item", lambda t: {"Item": {**KEY, "x": _n(t)}}),
    ("PutItem nested in a map and list", "put_item",
     lambda t: {"Item": {**KEY, "m": {"M": {"l": {"L": [_n("1"), _n(t)]}}}}}),
    ("PutItem number set member", "put_item", lambda t: {"Item": {**KEY, "x": {"NS": ["1", t]}}}),
    ("PutItem sort key", "put_item", lambda t: {"Item": {"pk": {"S": "p"}, "sk": _n(t)}}),
    ("GetItem key", "get_item", lambda t: {"Key": {"pk": {"S": "p"}, "sk": _n(t)}}),
    ("DeleteItem key", "delete_item", lambda t: {"Key": {"pk": {"S": "p"}, "sk": _n(t)}}),
    ("UpdateItem key", "update_item", lambda t: {
        "Key": {"pk": {"S": "p"}, "sk": _n(t)}, "UpdateExpression": "SET s = :s",
        "ExpressionAttributeValues": {":s": {"S": "y"}}}),
    ("UpdateItem SET value", "update_item", lambda t: {
        "Key": KEY, "UpdateExpression": "SET x = :v", "ExpressionAttributeValues": _values(t)}),
    ("UpdateItem SET arithmetic operand", "update_item", lambda t: {
        "Key": KEY, "UpdateExpression": "SET n = n + :v", "ExpressionAttributeValues": _values(t)}),
    ("UpdateItem ADD number", "update_item", lambda t: {
        "Key": KEY, "UpdateExpression": "ADD n :v", "ExpressionAttributeValues": _values(t)}),
    ("UpdateItem ADD number set", "update_item", lambda t: {
        "Key": KEY, "UpdateExpression": "ADD ns :v",
        "ExpressionAttributeValues": {":v": {"NS": [t]}}}),
    ("UpdateItem ConditionExpression", "update_item", lambda t: {
        "Key": KEY, "UpdateExpression": "SET s = :s", "ConditionExpression": "n < :v",
        "ExpressionAttributeValues": {":s": {"S": "y"}, ":v": _n(t)}}),
    ("UpdateItem AttributeUpdates ADD", "update_item", lambda t: {
        "Key": KEY, "AttributeUpdates": {"n": {"Action": "ADD", "Value": _n(t)}}}),
    ("UpdateItem AttributeUpdates PUT", "update_item", lambda t: {
        "Key": KEY, "AttributeUpdates": {"x": {"Action": "PUT", "Value": _n(t)}}}),
    ("UpdateItem Expected", "update_item", lambda t: {
        "Key": KEY, "AttributeUpdates": {"s": {"Action": "PUT", "Value": {"S": "y"}}},
        "Expected": {"n": {"ComparisonOperator": "LT", "AttributeValueList": [_n(t)]}}}),
    ("PutItem Expected Value", "put_item", lambda t: {
        "Item": {**KEY, "s": {"S": "y"}}, "Expected": {"n": {"Value": _n(t)}}}),
    ("DeleteItem ConditionExpression", "delete_item", lambda t: {
        "Key": KEY, "ConditionExpression": "n = :v", "ExpressionAttributeValues": _values(t)}),
    ("Query KeyConditionExpression", "query", lambda t: {
        "KeyConditionExpression": "pk = :p AND sk < :v",
        "ExpressionAttributeValues": {":p": {"S": "p"}, ":v": _n(t)}}),
    ("Query KeyConditions", "query", lambda t: {"KeyConditions": {
        "pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "p"}]},
        "sk": {"ComparisonOperator": "BETWEEN", "AttributeValueList": [_n("0"), _n(t)]}}}),
    ("Query FilterExpression", "query", lambda t: {
        "KeyConditionExpression": "pk = :p", "FilterExpression": "n < :v",
        "ExpressionAttributeValues": {":p": {"S": "p"}, ":v": _n(t)}}),
    ("Query QueryFilter", "query", lambda t: {
        "KeyConditions": {"pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "p"}]}},
        "QueryFilter": {"n": {"ComparisonOperator": "GT", "AttributeValueList": [_n(t)]}}}),
    ("Scan FilterExpression", "scan", lambda t: {
        "FilterExpression": "n < :v", "ExpressionAttributeValues": _values(t)}),
    ("Scan ScanFilter", "scan", lambda t: {
        "ScanFilter": {"n": {"ComparisonOperator": "IN", "AttributeValueList": [_n("1"), _n(t)]}}}),
]

# Batches and transactions name their table inside the request.
MULTI_ENTRY_POINTS: list[tuple[str, str, Callable[[str], dict[str, Any]]]] = [
    ("BatchWriteItem PutRequest", "batch_write_item", lambda t: {"RequestItems": {TABLE: [
        {"PutRequest": {"Item": {"pk": {"S": "q"}, "sk": _n("1")}}},
        {"PutRequest": {"Item": {"pk": {"S": "q"}, "sk": _n("2"), "x": _n(t)}}}]}}),
    ("BatchWriteItem DeleteRequest key", "batch_write_item", lambda t: {"RequestItems": {TABLE: [
        {"DeleteRequest": {"Key": {"pk": {"S": "p"}, "sk": _n(t)}}}]}}),
    ("BatchGetItem key", "batch_get_item", lambda t: {"RequestItems": {TABLE: {
        "Keys": [KEY, {"pk": {"S": "p"}, "sk": _n(t)}]}}}),
    ("TransactWriteItems Put", "transact_write_items", lambda t: {"TransactItems": [
        {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "q"}, "sk": _n("1")}}},
        {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "q"}, "sk": _n("2"), "x": _n(t)}}}]}),
    ("TransactWriteItems Update value", "transact_write_items", lambda t: {"TransactItems": [
        {"Update": {"TableName": TABLE, "Key": KEY, "UpdateExpression": "SET x = :v",
                    "ExpressionAttributeValues": _values(t)}}]}),
    ("TransactWriteItems ConditionCheck", "transact_write_items", lambda t: {"TransactItems": [
        {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "q"}, "sk": _n("1")}}},
        {"ConditionCheck": {"TableName": TABLE, "Key": KEY, "ConditionExpression": "n < :v",
                            "ExpressionAttributeValues": _values(t)}}]}),
    ("TransactWriteItems Delete key", "transact_write_items", lambda t: {"TransactItems": [
        {"Delete": {"TableName": TABLE, "Key": {"pk": {"S": "p"}, "sk": _n(t)}}}]}),
    ("TransactGetItems key", "transact_get_items", lambda t: {"TransactItems": [
        {"Get": {"TableName": TABLE, "Key": {"pk": {"S": "p"}, "sk": _n(t)}}}]}),
]


@pytest.fixture(scope="module")
def table(ddb: Any) -> list[dict[str, Any]]:
    create_table(ddb, TABLE, range_key=("sk", "N"))
    ddb.put_item(TableName=TABLE, Item=ITEM)
    return snapshot(ddb, TABLE)


@pytest.mark.parametrize("text,message", IMPOSSIBLE, ids=[i[0][:24] for i in IMPOSSIBLE])
@pytest.mark.parametrize("entry,method,request_for", ENTRY_POINTS + MULTI_ENTRY_POINTS,
                         ids=[e[0] for e in ENTRY_POINTS + MULTI_ENTRY_POINTS])
def test_an_impossible_number_is_refused_and_changes_nothing(
        raw_ddb: Any, table: list[dict[str, Any]], entry: str, method: str,
        request_for: Callable[[str], dict[str, Any]], text: str, message: str) -> None:
    params = request_for(text)
    if "RequestItems" not in params and "TransactItems" not in params:
        params = {"TableName": TABLE, **params}
    response = expect_error(getattr(raw_ddb, method), "ValidationException", **params)
    # expression values carry DynamoDB's envelope: "ExpressionAttributeValues contains
    # invalid value: <message> for key :v"
    assert message in response["Error"]["Message"], (entry, text, response["Error"])
    assert snapshot(raw_ddb, TABLE) == table


ARITHMETIC = [  # (update, values, message): results that do not fit
    ("SET big = big + :v", {":v": _n("1E+125")}, OVERFLOW),
    ("SET big = :v - big", {":v": _n("-" + MAX)}, OVERFLOW),
    ("ADD big :v", {":v": _n(MAX)}, OVERFLOW),
    ("SET n = n + :v", {":v": _n("1E+50")}, OVERFLOW),  # 1E+50 + 5: 51 digits
    ("SET x = :a + :b", {":a": _n("1"), ":b": _n("1E-130")}, OVERFLOW),
    ("ADD n :v", {":v": _n("0." + "0" * 37 + "1")}, OVERFLOW),  # 5.000...01: 39 digits
    ("SET tiny = tiny - :v", {":v": _n("1E-130")}, UNDERFLOW),  # 1E-167
]


@pytest.mark.parametrize("update,values,message", ARITHMETIC, ids=[a[0] for a in ARITHMETIC])
def test_an_arithmetic_result_that_does_not_fit_is_refused(
        ddb: Any, table: list[dict[str, Any]], update: str, values: dict[str, Any],
        message: str) -> None:
    expect_error(ddb.update_item, "ValidationException", message, TableName=TABLE, Key=KEY,
                 UpdateExpression=update, ExpressionAttributeValues=values)
    assert snapshot(ddb, TABLE) == table


def test_a_legacy_add_that_does_not_fit_is_refused(ddb: Any, table: list[dict[str, Any]]) -> None:
    expect_error(ddb.update_item, "ValidationException", OVERFLOW, TableName=TABLE, Key=KEY,
                 AttributeUpdates={"big": {"Action": "ADD", "Value": _n("1E+125")}})
    assert snapshot(ddb, TABLE) == table


def test_a_transaction_whose_arithmetic_does_not_fit_is_cancelled(
        ddb: Any, table: list[dict[str, Any]]) -> None:
    response = expect_error(ddb.transact_write_items, "TransactionCanceledException", TransactItems=[
        {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "q"}, "sk": _n("1")}}},
        {"Update": {"TableName": TABLE, "Key": KEY, "UpdateExpression": "ADD big :v",
                    "ExpressionAttributeValues": {":v": _n("1E+125")}}}])
    reasons = response["CancellationReasons"]
    assert [r["Code"] for r in reasons] == ["None", "ValidationError"], reasons
    assert reasons[1]["Message"] == OVERFLOW
    assert snapshot(ddb, TABLE) == table


def test_numbers_at_the_limits_are_stored_and_computed_exactly(
        ddb: Any, table: list[dict[str, Any]]) -> None:
    key = {"pk": {"S": "limits"}, "sk": _n("1")}
    try:
        ddb.put_item(TableName=TABLE, Item={**key, "a": _n("-" + MAX), "b": _n("1E-130"),
                                            "z": _n("0.0e126")})
        ddb.update_item(TableName=TABLE, Key=key, UpdateExpression="SET a = a + :v ADD b :w",
                        ExpressionAttributeValues={":v": _n("1E+125"), ":w": _n("-2E-130")})
        item = ddb.get_item(TableName=TABLE, Key=key, ConsistentRead=True)["Item"]
        assert item["a"] == _n("-" + "8" + "9" * 37 + "0" * 88)
        assert item["b"] == _n("-0." + "0" * 129 + "1")
        assert item["z"] == _n("0")
    finally:
        ddb.delete_item(TableName=TABLE, Key=key)
