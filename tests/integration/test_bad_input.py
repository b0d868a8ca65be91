"""Bad input: every malformed request gets the error an SDK expects, and changes nothing.

The foundation issue's list — unknown table, wrong key schema/types, missing key, empty
string key, item over 400 KB, number out of range or over 38 digits, duplicate/unused
ExpressionAttributeNames/Values, unknown operation, body that is not JSON, oversized body —
each as a row: the operation, the request, the error type DynamoDB answers with and a
distinctive part of its message. After each row the tables hold exactly what they held
before, and the server never answers 500.

References (DynamoDB API Reference, "Common Errors" and each operation's "Errors";
Developer Guide "Service, account, and table quotas": item size 400 KB, HTTP request
16 MB; "Data types": numbers 38 digits, 1E-130..9.99..E+125; "Expression attribute
names/values").
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from tests.integration.wire import (
    TARGET_PREFIX,
    error_name,
    expect_error,
    raw_post,
    raw_send_oversized,
    snapshot,
)
from tests.support import create_table

MAIN = "bad_input_main"  # pk S, sk N
BIN = "bad_input_bin"  # pk B
KEY = {"pk": {"S": "p"}, "sk": {"N": "1"}}
ITEM = {**KEY, "v": {"S": "original"}, "n": {"N": "5"}, "ss": {"SS": ["a"]}}
MAX_ITEM_BYTES = 400 * 1024
NOT_FOUND = "Requested resource not found"


@pytest.fixture(scope="module")
def tables(ddb: Any) -> dict[str, Any]:
    create_table(ddb, MAIN, range_key=("sk", "N"))
    create_table(ddb, BIN, hash_key=("pk", "B"))
    ddb.put_item(TableName=MAIN, Item=ITEM)
    ddb.put_item(TableName=MAIN, Item={"pk": {"S": "p"}, "sk": {"N": "2"}})
    ddb.put_item(TableName=BIN, Item={"pk": {"B": b"\x01"}})
    return {name: snapshot(ddb, name) for name in (MAIN, BIN)}


@pytest.fixture
def unchanged(ddb: Any, tables: dict[str, Any]) -> Any:
    """Asserts, after the test, that no table changed and no table appeared."""
    names_before = ddb.list_tables()["TableNames"]
    yield
    for name, items in tables.items():
        assert snapshot(ddb, name) == items, f"{name} changed"
    assert ddb.list_tables()["TableNames"] == names_before


def _deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"S": "leaf"}
    for _ in range(levels):
        value = {"M": {"a": value}}
    return value


def _number_item(number: str) -> dict[str, Any]:
    return {**KEY, "n": {"N": number}}


# (id, operation, request, error type, message fragment)
CASES: list[tuple[str, str, dict[str, Any], str, str]] = [
    # --- unknown table ---
    ("get unknown table", "get_item", {"TableName": "no_such_table", "Key": KEY},
     "ResourceNotFoundException", NOT_FOUND),
    ("put unknown table", "put_item", {"TableName": "no_such_table", "Item": ITEM},
     "ResourceNotFoundException", NOT_FOUND),
    ("update unknown table", "update_item", {"TableName": "no_such_table", "Key": KEY,
                                             "UpdateExpression": "REMOVE v"},
     "ResourceNotFoundException", NOT_FOUND),
    ("delete unknown table", "delete_item", {"TableName": "no_such_table", "Key": KEY},
     "ResourceNotFoundException", NOT_FOUND),
    ("query unknown table", "query", {"TableName": "no_such_table",
                                      "KeyConditionExpression": "pk = :p",
                                      "ExpressionAttributeValues": {":p": {"S": "p"}}},
     "ResourceNotFoundException", NOT_FOUND),
    ("scan unknown table", "scan", {"TableName": "no_such_table"},
     "ResourceNotFoundException", NOT_FOUND),
    ("describe unknown table", "describe_table", {"TableName": "no_such_table"},
     "ResourceNotFoundException", "no_such_table"),
    ("delete_table unknown table", "delete_table", {"TableName": "no_such_table"},
     "ResourceNotFoundException", "no_such_table"),
    # --- wrong key schema / types ---
    ("get key missing sort key", "get_item", {"TableName": MAIN, "Key": {"pk": {"S": "p"}}},
     "ValidationException", "The provided key element does not match the schema"),
    ("get key wrong type", "get_item", {"TableName": MAIN,
                                        "Key": {"pk": {"S": "p"}, "sk": {"S": "1"}}},
     "ValidationException", "The provided key element does not match the schema"),
    ("get key extra attribute", "get_item", {"TableName": MAIN, "Key": {**KEY, "v": {"S": "x"}}},
     "ValidationException", "The provided key element does not match the schema"),
    ("get key wrong name", "get_item", {"TableName": MAIN,
                                        "Key": {"pk": {"S": "p"}, "other": {"N": "1"}}},
     "ValidationException", "The provided key element does not match the schema"),
    ("delete key wrong type", "delete_item", {"TableName": MAIN,
                                              "Key": {"pk": {"N": "1"}, "sk": {"N": "1"}}},
     "ValidationException", "The provided key element does not match the schema"),
    ("update key missing sort key", "update_item", {"TableName": MAIN, "Key": {"pk": {"S": "p"}},
                                                    "UpdateExpression": "REMOVE v"},
     "ValidationException", "The provided key element does not match the schema"),
    ("put key wrong type", "put_item", {"TableName": MAIN,
                                        "Item": {"pk": {"S": "p"}, "sk": {"S": "1"}}},
     "ValidationException", "Type mismatch for key sk expected: N actual: S"),
    ("put key as a map", "put_item", {"TableName": MAIN,
                                      "Item": {"pk": {"M": {}}, "sk": {"N": "1"}}},
     "ValidationException", "Type mismatch for key pk"),
    ("query sort key wrong type", "query", {
        "TableName": MAIN, "KeyConditionExpression": "pk = :p AND sk = :s",
        "ExpressionAttributeValues": {":p": {"S": "p"}, ":s": {"S": "1"}}},
     "ValidationException", ""),
    ("query bad start key", "query", {
        "TableName": MAIN, "KeyConditionExpression": "pk = :p",
        "ExpressionAttributeValues": {":p": {"S": "p"}}, "ExclusiveStartKey": {"pk": {"S": "p"}}},
     "ValidationException", "The provided starting key is invalid"),
    ("scan bad start key", "scan", {"TableName": MAIN, "ExclusiveStartKey": {"x": {"S": "p"}}},
     "ValidationException", "The provided starting key is invalid"),
    # --- missing key ---
    ("put missing sort key", "put_item", {"TableName": MAIN, "Item": {"pk": {"S": "q"}}},
     "ValidationException", "Missing the key sk in the item"),
    ("put missing partition key", "put_item", {"TableName": MAIN, "Item": {"sk": {"N": "9"}}},
     "ValidationException", "Missing the key pk in the item"),
    ("get without Key", "get_item", {"TableName": MAIN},
     "ValidationException", "Value null at 'key' failed to satisfy constraint: Member must not be null"),
    ("put without Item", "put_item", {"TableName": MAIN},
     "ValidationException", "Value null at 'item'"),
    ("get empty Key", "get_item", {"TableName": MAIN, "Key": {}},
     "ValidationException", "The provided key element does not match the schema"),
    # --- empty string / binary key ---
    ("put empty string key", "put_item", {"TableName": MAIN,
                                          "Item": {"pk": {"S": ""}, "sk": {"N": "1"}}},
     "ValidationException", "cannot contain an empty string value. Key: pk"),
    ("get empty string key", "get_item", {"TableName": MAIN,
                                          "Key": {"pk": {"S": ""}, "sk": {"N": "1"}}},
     "ValidationException", "empty string value"),
    ("delete empty string key", "delete_item", {"TableName": MAIN,
                                                "Key": {"pk": {"S": ""}, "sk": {"N": "1"}}},
     "ValidationException", "empty string value"),
    ("put empty binary key", "put_item", {"TableName": BIN, "Item": {"pk": {"B": b""}}},
     "ValidationException", "Key: pk"),
    ("query empty string key", "query", {
        "TableName": MAIN, "KeyConditionExpression": "pk = :p",
        "ExpressionAttributeValues": {":p": {"S": ""}}},
     "ValidationException", "cannot contain an empty string value. Key: pk"),
    ("query empty binary key", "query", {
        "TableName": BIN, "KeyConditionExpression": "pk = :p",
        "ExpressionAttributeValues": {":p": {"B": b""}}},
     # worded for the binary type, as GetItem/PutItem/UpdateItem word an empty binary key
     # (paritysuite conformance suite, error-messages/updateItem.test.ts, putItem.test.ts)
     "ValidationException", "cannot contain an empty binary value. Key: pk"),
    # --- item over 400 KB ---
    ("put item over 400 KB", "put_item", {
        "TableName": MAIN, "Item": {**KEY, "d": {"S": "x" * (MAX_ITEM_BYTES + 1)}}},
     "ValidationException", "Item size has exceeded the maximum allowed size"),
    ("put item over 400 KB in nested lists", "put_item", {
        "TableName": MAIN, "Item": {**KEY, "l": {"L": [{"S": "x" * 1024}] * 400}}},
     "ValidationException", "Item size has exceeded the maximum allowed size"),
    ("update grows item over 400 KB", "update_item", {
        "TableName": MAIN, "Key": KEY, "UpdateExpression": "SET a = :d, b = :d",
        "ExpressionAttributeValues": {":d": {"S": "x" * (MAX_ITEM_BYTES // 2)}}},
     "ValidationException", "Item size"),
    # --- numbers ---
    ("number overflow", "put_item", {"TableName": MAIN, "Item": _number_item("1E+126")},
     "ValidationException", "Number overflow"),
    ("negative number overflow", "put_item", {"TableName": MAIN, "Item": _number_item("-1E+126")},
     "ValidationException", "Number overflow"),
    ("number underflow", "put_item", {"TableName": MAIN, "Item": _number_item("1E-131")},
     "ValidationException", "Number underflow"),
    ("39 significant digits", "put_item", {
        "TableName": MAIN, "Item": _number_item("123456789012345678901234567890123456789")},
     "ValidationException", "Attempting to store more than 38 significant digits in a Number"),
    ("39 digits with a point", "put_item", {
        "TableName": MAIN, "Item": _number_item("1.23456789012345678901234567890123456789")},
     "ValidationException", "38 significant digits"),
    ("number overflow nested", "put_item", {
        "TableName": MAIN, "Item": {**KEY, "m": {"M": {"l": {"L": [{"N": "1E+200"}]}}}}},
     "ValidationException", "Number overflow"),
    ("number overflow in a set", "put_item", {
        "TableName": MAIN, "Item": {**KEY, "ns": {"NS": ["1", "1E+126"]}}},
     "ValidationException", "Number overflow"),
    ("number overflow in a key", "get_item", {
        "TableName": MAIN, "Key": {"pk": {"S": "p"}, "sk": {"N": "1E+126"}}},
     "ValidationException", "Number overflow"),
    ("number overflow in a value", "update_item", {
        "TableName": MAIN, "Key": KEY, "UpdateExpression": "SET n = :n",
        "ExpressionAttributeValues": {":n": {"N": "1E+126"}}}, "ValidationException", "overflow"),
    ("key that is not a number", "get_item", {
        "TableName": MAIN, "Key": {"pk": {"S": "p"}, "sk": {"N": "abc"}}},
     "ValidationException", "The parameter cannot be converted to a numeric value: abc"),
    ("key with 39 digits", "delete_item", {
        "TableName": MAIN, "Key": {"pk": {"S": "p"}, "sk": {"N": "1" * 39}}},
     "ValidationException", "38 significant digits"),
    ("start key that is not a number", "scan", {
        "TableName": MAIN, "ExclusiveStartKey": {"pk": {"S": "p"}, "sk": {"N": "x"}}},
     "ValidationException", "The provided starting key is invalid"),
    ("not a number", "put_item", {"TableName": MAIN, "Item": _number_item("abc")},
     "ValidationException", "The parameter cannot be converted to a numeric value"),
    ("empty number", "put_item", {"TableName": MAIN, "Item": _number_item("")},
     "ValidationException", "numeric value"),
    ("NaN", "put_item", {"TableName": MAIN, "Item": _number_item("NaN")},
     "ValidationException", "numeric value"),
    ("Infinity", "put_item", {"TableName": MAIN, "Item": _number_item("Infinity")},
     "ValidationException", "numeric value"),
    ("dangling exponent", "put_item", {"TableName": MAIN, "Item": _number_item("1e")},
     "ValidationException", "numeric value"),
    ("update result overflows", "update_item", {
        "TableName": MAIN, "Key": KEY, "UpdateExpression": "ADD n :n",
        "ExpressionAttributeValues": {":n": {"N": "9.9E+125"}}}, "ValidationException", ""),
    # --- expression attribute names / values ---
    ("unused name", "get_item", {
        "TableName": MAIN, "Key": KEY, "ProjectionExpression": "v",
        "ExpressionAttributeNames": {"#unused": "x"}},
     "ValidationException",
     "Value provided in ExpressionAttributeNames unused in expressions: keys: {#unused}"),
    ("unused value", "update_item", {
        "TableName": MAIN, "Key": KEY, "UpdateExpression": "SET v = :a",
        "ExpressionAttributeValues": {":a": {"S": "x"}, ":unused": {"S": "y"}}},
     "ValidationException",
     "Value provided in ExpressionAttributeValues unused in expressions: keys: {:unused}"),
    ("undefined name", "update_item", {
        "TableName": MAIN, "Key": KEY, "UpdateExpression": "REMOVE #missing"},
     "ValidationException",
     "An expression attribute name used in the document path is not defined; attribute name: #missing"),
    ("undefined value", "put_item", {
        "TableName": MAIN, "Item": ITEM, "ConditionExpression": "v = :missing"},
     "ValidationException",
     "An expression attribute value used in expression is not defined; attribute value: :missing"),
    ("names without expressions", "get_item", {
        "TableName": MAIN, "Key": KEY, "ExpressionAttributeNames": {"#v": "v"}},
     "ValidationException", "ExpressionAttributeNames can only be specified when using expressions"),
    ("values without expressions", "put_item", {
        "TableName": MAIN, "Item": ITEM, "ExpressionAttributeValues": {":v": {"S": "v"}}},
     "ValidationException", "ExpressionAttributeValues can only be specified when using expressions"),
    ("empty values map", "update_item", {
        "TableName": MAIN, "Key": KEY, "UpdateExpression": "REMOVE v",
        "ExpressionAttributeValues": {}}, "ValidationException", "ExpressionAttributeValues must not be empty"),
    ("invalid value", "update_item", {
        "TableName": MAIN, "Key": KEY, "UpdateExpression": "SET v = :v",
        "ExpressionAttributeValues": {":v": {"S": "x", "N": "1"}}},
     "ValidationException", "1 validation error detected: Supplied AttributeValue has more than "
     "one datatypes set"),
    ("reserved word", "update_item", {
        "TableName": MAIN, "Key": KEY, "UpdateExpression": "REMOVE name"},
     "ValidationException", "reserved keyword: name"),
    ("syntax error", "put_item", {
        "TableName": MAIN, "Item": ITEM, "ConditionExpression": "v = = v"},
     "ValidationException", "Invalid ConditionExpression: Syntax error"),
    ("empty expression", "update_item", {
        "TableName": MAIN, "Key": KEY, "UpdateExpression": ""},
     "ValidationException", "UpdateExpression"),
    # --- attribute values ---
    ("duplicate string set members", "put_item", {
        "TableName": MAIN, "Item": {**KEY, "ss": {"SS": ["a", "a"]}}},
     "ValidationException", 'Input collection ["a", "a"] contains duplicates'),
    ("duplicate numbers after normalisation", "put_item", {
        "TableName": MAIN, "Item": {**KEY, "ns": {"NS": ["1", "1.0"]}}},
     "ValidationException", "contains duplicates"),
    ("duplicate binary set members", "put_item", {
        "TableName": MAIN, "Item": {**KEY, "bs": {"BS": [b"x", b"x"]}}},
     "ValidationException", "contains duplicates"),
    ("empty string set", "put_item", {"TableName": MAIN, "Item": {**KEY, "ss": {"SS": []}}},
     "ValidationException", "may not be empty"),
    ("empty number set in a map", "put_item", {
        "TableName": MAIN, "Item": {**KEY, "m": {"M": {"ns": {"NS": []}}}}},
     "ValidationException", "may not be empty"),
    ("value with two types", "put_item", {"TableName": MAIN,
                                          "Item": {**KEY, "v": {"S": "x", "N": "1"}}},
     "ValidationException", "more than one datatypes"),
    ("value with no type", "put_item", {"TableName": MAIN, "Item": {**KEY, "v": {}}},
     "ValidationException", "Supplied AttributeValue is empty"),
    ("NULL false", "put_item", {"TableName": MAIN, "Item": {**KEY, "v": {"NULL": False}}},
     "ValidationException", "Null attribute value types must have the value of true"),
    ("nested 33 levels", "put_item", {"TableName": MAIN, "Item": {**KEY, "d": _deep(33)}},
     "ValidationException", "Nesting Levels have exceeded supported limits"),
    ("empty attribute name", "put_item", {"TableName": MAIN, "Item": {**KEY, "": {"S": "x"}}},
     "ValidationException", ""),
    # --- request shape ---
    ("missing table name", "get_item", {"Key": KEY},
     "ValidationException", "Value null at 'tableName'"),
    ("short table name", "get_item", {"TableName": "ab", "Key": KEY},
     "ValidationException", "Member must have length greater than or equal to 3"),
    ("bad ReturnValues", "put_item", {"TableName": MAIN, "Item": ITEM, "ReturnValues": "SOME"},
     "ValidationException", "Member must satisfy enum value set"),
    ("query Limit 0", "query", {
        "TableName": MAIN, "KeyConditionExpression": "pk = :p", "Limit": 0,
        "ExpressionAttributeValues": {":p": {"S": "p"}}},
     "ValidationException", "Member must have value greater than or equal to 1"),
    ("query without key condition", "query", {"TableName": MAIN},
     "ValidationException", "KeyConditionExpression"),
    ("count with projection", "scan", {"TableName": MAIN, "Select": "COUNT",
                                       "ProjectionExpression": "v"},
     "ValidationException", "ProjectionExpression"),
    ("conditional put fails", "put_item", {
        "TableName": MAIN, "Item": {**ITEM, "v": {"S": "changed"}},
        "ConditionExpression": "attribute_not_exists(pk)"},
     "ConditionalCheckFailedException", "The conditional request failed"),
    ("create existing table", "create_table", {
        "TableName": MAIN, "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST"}, "ResourceInUseException", MAIN),
]


@pytest.mark.parametrize("operation,request_,code,fragment", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
@pytest.mark.usefixtures("unchanged")
def test_bad_request(raw_ddb: Any, operation: str, request_: dict[str, Any], code: str,
                     fragment: str) -> None:
    expect_error(getattr(raw_ddb, operation), code, fragment, **request_)


def test_item_of_exactly_400_kb_is_accepted(ddb: Any, hash_table: str) -> None:
    # Size = name bytes + value bytes: "pk"+"k" + "d"+payload.
    payload = "x" * (MAX_ITEM_BYTES - len("pk") - len("k") - len("d"))
    ddb.put_item(TableName=hash_table, Item={"pk": {"S": "k"}, "d": {"S": payload}})
    expect_error(ddb.put_item, "ValidationException", "Item size",
                 TableName=hash_table, Item={"pk": {"S": "k"}, "d": {"S": payload + "y"}})
    stored = ddb.get_item(TableName=hash_table, Key={"pk": {"S": "k"}})["Item"]
    assert stored["d"]["S"] == payload


def test_nesting_32_levels_is_accepted(ddb: Any, hash_table: str) -> None:
    # "DynamoDB supports nested attributes up to 32 levels deep", the attribute itself
    # being the first: 31 maps around the leaf (paritysuite, nestingDepth.test.ts).
    item = {"pk": {"S": "deep"}, "d": _deep(31)}
    ddb.put_item(TableName=hash_table, Item=item)
    assert ddb.get_item(TableName=hash_table, Key={"pk": {"S": "deep"}})["Item"] == item


# --- below the SDK: raw HTTP ----------------------------------------------------------------

RAW_CASES: list[tuple[str, bytes, str | None, int, str, str]] = [
    # (id, body, target, status, __type, message fragment)
    ("unknown operation", b"{}", TARGET_PREFIX + "DropEverything", 400,
     "UnknownOperationException", ""),
    ("no target header", b"{}", None, 400, "UnknownOperationException", ""),
    ("foreign target prefix", b"{}", "DynamoDB_20111205.ListTables", 400,
     "UnknownOperationException", ""),
    ("target case matters", b"{}", TARGET_PREFIX + "listtables", 400,
     "UnknownOperationException", ""),
    ("not json", b"this is not json", TARGET_PREFIX + "ListTables", 400,
     "SerializationException", ""),
    ("truncated json", b'{"TableName": "' + MAIN.encode() + b'", "Key": {',
     TARGET_PREFIX + "GetItem", 400, "SerializationException", ""),
    ("json array", b"[1, 2]", TARGET_PREFIX + "ListTables", 400, "SerializationException", ""),
    ("json string", b'"ListTables"', TARGET_PREFIX + "ListTables", 400,
     "SerializationException", ""),
    ("invalid utf-8", b'{"TableName": "\xff\xfe"}', TARGET_PREFIX + "DescribeTable", 400,
     "SerializationException", ""),
    ("empty body", b"", TARGET_PREFIX + "DescribeTable", 400, "SerializationException", ""),
    ("member of the wrong type", b'{"TableName": 5}', TARGET_PREFIX + "DescribeTable", 400,
     "SerializationException", ""),
    ("item that is a list", json.dumps({"TableName": MAIN, "Item": [1]}).encode(),
     TARGET_PREFIX + "PutItem", 400, "SerializationException", ""),
    ("value that is a string", json.dumps({"TableName": MAIN, "Item": {**KEY, "v": "x"}}).encode(),
     TARGET_PREFIX + "PutItem", 400, "SerializationException", ""),
    ("number given as a JSON number", json.dumps({"TableName": MAIN,
                                                  "Item": {**KEY, "v": {"N": 5}}}).encode(),
     TARGET_PREFIX + "PutItem", 400, "SerializationException", ""),
    ("binary that is not base64", json.dumps({"TableName": MAIN,
                                              "Item": {**KEY, "v": {"B": "not base64!"}}}).encode(),
     TARGET_PREFIX + "PutItem", 400, "SerializationException", ""),
    ("unknown value type", json.dumps({"TableName": MAIN,
                                       "Item": {**KEY, "v": {"X": "1"}}}).encode(),
     TARGET_PREFIX + "PutItem", 400, "", ""),
    ("key string given as a JSON number", json.dumps({
        "TableName": MAIN, "Key": {"pk": {"S": 5}, "sk": {"N": "1"}}}).encode(),
     TARGET_PREFIX + "GetItem", 400, "SerializationException", ""),
    ("key binary that is not base64", json.dumps({
        "TableName": BIN, "Key": {"pk": {"B": "%%%"}}}).encode(),
     TARGET_PREFIX + "DeleteItem", 400, "SerializationException", ""),
    ("limit that is not an integer", b'{"Limit": 2.5}', TARGET_PREFIX + "ListTables", 400,
     "SerializationException", ""),
    # null members of lists and maps (found by a request fuzzer: these were 500s)
    ("null transaction item", b'{"TransactItems": [null]}', TARGET_PREFIX + "TransactGetItems",
     400, "ValidationException",
     "Value null at 'transactItems.1.member' failed to satisfy constraint: Member must not be null"),
    ("null tag", json.dumps({"ResourceArn": "arn:aws:dynamodb:us-east-1:000000000000:table/" + MAIN,
                             "Tags": [{"Key": "a", "Value": "b"}, None]}).encode(),
     TARGET_PREFIX + "TagResource", 400, "ValidationException", "Value null at 'tags.2.member'"),
    ("null write requests of a table", json.dumps({"RequestItems": {MAIN: None}}).encode(),
     TARGET_PREFIX + "BatchWriteItem", 400, "ValidationException",
     f"Value null at 'requestItems.{MAIN}.member'"),
]


@pytest.mark.parametrize("body,target,status,type_name,fragment", [c[1:] for c in RAW_CASES],
                         ids=[c[0] for c in RAW_CASES])
@pytest.mark.usefixtures("unchanged")
def test_bad_raw_request(server: Any, body: bytes, target: str | None, status: int,
                         type_name: str, fragment: str) -> None:
    got_status, answer = raw_post(server.url, body, target=target)
    assert got_status == status, answer
    if type_name:
        assert error_name(answer) == type_name, answer
    else:
        assert error_name(answer) in ("ValidationException", "SerializationException"), answer
    assert fragment in answer.get("message", ""), answer
    assert answer.get("message"), "a clear message"


def test_duplicate_json_keys_in_expression_names_do_not_break_the_server(
        server: Any, ddb: Any, tables: dict[str, Any]) -> None:
    # JSON with a repeated key: the last one wins (as in common JSON parsers), or the
    # request is refused; either way no 500 and nothing written.
    body = (b'{"TableName": "' + MAIN.encode() + b'", "Key": {"pk": {"S": "p"}, "sk": {"N": "1"}},'
            b' "ProjectionExpression": "#a", "ExpressionAttributeNames": {"#a": "zz", "#a": "v"}}')
    status, answer = raw_post(server.url, body, target=TARGET_PREFIX + "GetItem")
    assert status in (200, 400), answer
    if status == 200:
        assert answer == {"Item": {"v": {"S": "original"}}}
    assert snapshot(ddb, MAIN) == tables[MAIN]


@pytest.mark.usefixtures("unchanged")
def test_oversized_body_is_refused(server: Any) -> None:
    # "The maximum HTTP request size is 16 MB" — one byte more is refused.
    status, answer = raw_send_oversized(server.url, 16 * 1024 * 1024 + 1)
    assert status == 413, answer
    assert error_name(answer) == "RequestEntityTooLargeException", answer
    assert "16777216" in answer.get("message", ""), answer


def test_body_just_under_the_limit_is_parsed(server: Any) -> None:
    # A 16 MB body of JSON whitespace around {} is a valid (if odd) request.
    body = b"{}" + b" " * (16 * 1024 * 1024 - 2)
    status, answer = raw_post(server.url, body, target=TARGET_PREFIX + "ListTables")
    assert status == 200, answer
    assert "TableNames" in answer


def test_server_is_healthy_after_bad_input_and_never_answered_500(server: Any, ddb: Any,
                                                                 tables: dict[str, Any]) -> None:
    with urllib.request.urlopen(server.url + "/health", timeout=5) as response:
        assert response.status == 200
    ddb.put_item(TableName=MAIN, Item={"pk": {"S": "after"}, "sk": {"N": "1"}})
    assert ddb.get_item(TableName=MAIN, Key={"pk": {"S": "after"}, "sk": {"N": "1"}})["Item"]
    ddb.delete_item(TableName=MAIN, Key={"pk": {"S": "after"}, "sk": {"N": "1"}})
    assert snapshot(ddb, MAIN) == tables[MAIN]
    log = server.log()
    assert "internal error" not in log and "Traceback" not in log, log[-4000:]


@pytest.mark.parametrize("target,body", [
    ("ListTables", {"Limit": None, "ExclusiveStartTableName": None}),
    ("DescribeTable", {"TableName": MAIN, "ReturnConsumedCapacity": None}),
    ("Scan", {"TableName": MAIN, "Limit": None, "Segment": None, "TotalSegments": None}),
])
def test_json_null_members_are_treated_as_absent(server: Any, target: str,
                                                 body: dict[str, Any]) -> None:
    # SDKs never send null, but a hand-written client may: it means "not given".
    status, answer = raw_post(server.url, json.dumps(body).encode(), target=TARGET_PREFIX + target)
    assert status == 200, answer
