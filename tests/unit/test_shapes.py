"""Request validation against botocore's service model (atoll.api.shapes).

DynamoDB answers a request that breaks its input shape with a ValidationException
"N validation error(s) detected: Value X at 'path' failed to satisfy constraint: ...",
paths in lower camel case, list members as `.N.member`, and a member of the wrong JSON
type with a SerializationException.
"""

from __future__ import annotations

from typing import Any

import pytest

from atoll.api.shapes import MAX_REPORTED_ERRORS, validate_request
from atoll.errors import SerializationError, UnknownOperation, ValidationError

KEY = {"pk": {"S": "a"}}

MESSAGES: list[tuple[str, str, dict[str, Any], str]] = [
    ("missing table name", "GetItem", {"Key": KEY},
     "1 validation error detected: Value null at 'tableName' failed to satisfy constraint: "
     "Member must not be null"),
    ("missing two members", "GetItem", {},
     "2 validation errors detected: Value null at 'tableName' failed to satisfy constraint: "
     "Member must not be null; Value null at 'key' failed to satisfy constraint: "
     "Member must not be null"),
    # TableName also accepts a table ARN (up to 1024 characters) in the current model, so
    # the 3..255 name rules are the engine's to check (see the integration tests).
    ("long table name", "DescribeTable", {"TableName": "t" * 1025},
     "Member must have length less than or equal to"),
    ("enum", "PutItem", {"TableName": "tbl", "Item": KEY, "ReturnValues": "EVERYTHING"},
     "Value 'EVERYTHING' at 'returnValues' failed to satisfy constraint: "
     "Member must satisfy enum value set: [NONE, ALL_OLD, UPDATED_OLD, ALL_NEW, UPDATED_NEW]"),
    ("integer range low", "ListTables", {"Limit": 0},
     "Value '0' at 'limit' failed to satisfy constraint: "
     "Member must have value greater than or equal to 1"),
    ("integer range high", "ListTables", {"Limit": 101},
     "Value '101' at 'limit' failed to satisfy constraint: "
     "Member must have value less than or equal to 100"),
    ("nested list member", "CreateTable", {
        "TableName": "tbl", "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "PRIMARY"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]},
     "Value 'PRIMARY' at 'keySchema.1.member.keyType' failed to satisfy constraint: "
     "Member must satisfy enum value set: [HASH, RANGE]"),
    ("nested required member", "CreateTable", {
        "TableName": "tbl", "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk"}]},
     "Value null at 'attributeDefinitions.1.member.attributeType' failed to satisfy "
     "constraint: Member must not be null"),
    ("map value member", "BatchGetItem", {"RequestItems": {"tbl": {}}},
     "Value null at 'requestItems.tbl.member.keys' failed to satisfy constraint: "
     "Member must not be null"),
    ("list too long", "BatchGetItem", {"RequestItems": {"tbl": {"Keys": [KEY] * 101}}},
     "Member must have length less than or equal to 100"),
    ("scan segments", "Scan", {"TableName": "tbl", "Segment": -1, "TotalSegments": 0},
     "2 validation errors detected"),
]


@pytest.mark.parametrize("operation,request_,message", [m[1:] for m in MESSAGES],
                         ids=[m[0] for m in MESSAGES])
def test_validation_messages(operation: str, request_: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_request(operation, request_)
    assert message in caught.value.message


@pytest.mark.parametrize("operation,request_", [
    ("GetItem", {"TableName": "tbl", "Key": KEY}),
    ("ListTables", {}),
    ("ListTables", {"Limit": 100, "ExclusiveStartTableName": "abc"}),
    ("PutItem", {"TableName": "tbl", "Item": KEY, "ReturnValues": "ALL_OLD",
                 "ConditionExpression": "attribute_not_exists(pk)"}),
    ("Query", {"TableName": "tbl", "KeyConditionExpression": "pk = :p",
               "ExpressionAttributeValues": {":p": {"S": "a"}}, "Limit": 1,
               "ScanIndexForward": False}),
    ("Scan", {"TableName": "tbl", "Segment": 3, "TotalSegments": 4}),
    ("GetItem", {"TableName": "tbl", "Key": KEY, "SomethingNew": 1}),  # unknown: ignored
    ("GetItem", {"TableName": "arn:aws:dynamodb:us-east-1:123456789012:table/tbl", "Key": KEY}),
])
def test_valid_requests_pass(operation: str, request_: dict[str, Any]) -> None:
    validate_request(operation, request_)


@pytest.mark.parametrize("operation,request_", [
    ("DescribeTable", {"TableName": 5}),
    ("ListTables", {"Limit": "3"}),
    ("ListTables", {"Limit": 2.5}),
    ("Query", {"TableName": "tbl", "ScanIndexForward": "false"}),
    ("CreateTable", {"TableName": "tbl", "KeySchema": {"AttributeName": "pk"}}),
    ("BatchGetItem", {"RequestItems": [1]}),
    ("GetItem", {"TableName": "tbl", "Key": KEY, "AttributesToGet": "a"}),
    ("DescribeTable", []),
])
def test_wrong_json_types_are_serialization_errors(operation: str, request_: Any) -> None:
    with pytest.raises(SerializationError):
        validate_request(operation, request_)


def test_integral_float_counts_as_integer() -> None:
    validate_request("ListTables", {"Limit": 3.0})


def test_error_count_is_reported_and_the_list_bounded() -> None:
    request = {"RequestItems": {f"t{i:02d}": {} for i in range(MAX_REPORTED_ERRORS + 5)}}
    with pytest.raises(ValidationError) as caught:
        validate_request("BatchGetItem", request)
    message = caught.value.message
    assert message.startswith(f"{MAX_REPORTED_ERRORS + 5} validation errors detected: ")
    assert message.count("failed to satisfy constraint") == MAX_REPORTED_ERRORS


def test_unknown_operation() -> None:
    with pytest.raises(UnknownOperation):
        validate_request("DropEverything", {})
