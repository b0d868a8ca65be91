"""What a client sees on the wire, as DynamoDB answers it: DeleteTable's description,
tags, malformed bodies and attribute values, nesting depth, the health check and heads
too long for the HTTP front end.

Every test names its source: the DynamoDB API Reference or Developer Guide page, or,
where those do not give the exact wording, a conformance suite recorded against real
DynamoDB (ScyllaDB's alternator tests, dynalite's tests, the paritysuite DynamoDB
conformance suite), with the file.
"""

from __future__ import annotations

import http.client
import itertools
import json
import socket
import urllib.request
from typing import Any

import pytest

from tests.integration.wire import TARGET_PREFIX, error_name, expect_error, raw_post
from tests.support import sign

_names = itertools.count()
ONE = "1 validation error detected: "
NOT_NUMERIC = "The parameter cannot be converted to a numeric value"
OVERFLOW = "Number overflow. Attempting to store a number with magnitude larger than supported range"
UNDERFLOW = ("Number underflow. Attempting to store a number with magnitude smaller than "
             "supported range")
NEST = ("Nesting Levels have exceeded supported limits: Attributes in the item have nested "
        "levels beyond supported limit")


def S(text: str) -> dict[str, Any]:
    return {"S": text}


def N(text: str | int) -> dict[str, Any]:
    return {"N": str(text)}


def _deep(wraps: int) -> dict[str, Any]:
    value: dict[str, Any] = S("leaf")
    for _ in range(wraps):
        value = {"M": {"n": value}}
    return value


def _message(call: Any, **params: Any) -> str:
    return str(expect_error(call, "ValidationException", **params)["Error"]["Message"])


# ---- DeleteTable ------------------------------------------------------------------------

def test_delete_table_describes_the_table_without_its_schema(ddb: Any) -> None:
    """DeleteTable answers with a TableDescription (DeleteTable API Reference) that,
    unlike DescribeTable's, leaves out KeySchema, AttributeDefinitions,
    CreationDateTime and the indexes, and is DELETING (alternator's
    test_delete_table_description and test_delete_table_description_with_si, which pass
    against DynamoDB; scylladb/scylladb#14132)."""
    name = f"documented_delete_{next(_names)}"
    ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "x")],
        GlobalSecondaryIndexes=[{"IndexName": "by_x", "Projection": {"ProjectionType": "ALL"},
                                 "KeySchema": [{"AttributeName": "x", "KeyType": "HASH"}]}],
        LocalSecondaryIndexes=[{"IndexName": "by_pk_x", "Projection": {"ProjectionType": "ALL"},
                                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                              {"AttributeName": "x", "KeyType": "RANGE"}]}])
    ddb.put_item(TableName=name, Item={"pk": S("a"), "sk": S("b"), "x": S("c")})
    described = ddb.describe_table(TableName=name)["Table"]
    deleted = ddb.delete_table(TableName=name)["TableDescription"]
    for member in ("KeySchema", "AttributeDefinitions", "CreationDateTime",
                   "GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        assert member in described and member not in deleted, member
    assert deleted["TableName"] == name and deleted["TableStatus"] == "DELETING"
    assert deleted["TableArn"] == described["TableArn"]
    assert deleted["TableId"] == described["TableId"]
    assert deleted["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert deleted["ProvisionedThroughput"]["NumberOfDecreasesToday"] == 0
    assert deleted["ItemCount"] == 1 and deleted["TableSizeBytes"] > 0


# ---- tags -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tagged(ddb: Any) -> str:
    name = f"documented_tags_{next(_names)}"
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    return str(ddb.describe_table(TableName=name)["Table"]["TableArn"])


def test_tag_characters_follow_the_tagging_restrictions(ddb: Any, tagged: str) -> None:
    """"The allowed characters are letters, white space, and numbers, plus the following
    special characters: + - = . _ : /" and lengths count Unicode characters (Developer
    Guide, "Tagging restrictions in DynamoDB"); anything else in a key or a value is a
    ValidationException (alternator's test_tag_forbidden_chars, test_tag_resource_unicode,
    run against DynamoDB)."""
    allowed = [{"Key": "env", "Value": "a-b_c.d:e/f=g+h i"},
               {"Key": "законные буквы", "Value": "ѮѮ 7"},
               {"Key": "\u05d0" * 128, "Value": "\u05d0" * 256},
               {"Key": "empty", "Value": ""}]
    ddb.tag_resource(ResourceArn=tagged, Tags=allowed)
    listed = ddb.list_tags_of_resource(ResourceArn=tagged)["Tags"]
    assert sorted(map(str, listed)) == sorted(map(str, allowed))
    for text in ("hi!", "d%g", '"hello"', "a@b", "tab\u0000"):
        for tag, member in (({"Key": text, "Value": "v"}, "key"),
                            ({"Key": "k", "Value": text}, "value")):
            message = _message(ddb.tag_resource, ResourceArn=tagged, Tags=[tag])
            assert f"at 'tags.1.member.{member}' failed to satisfy constraint" in message
    expect_error(ddb.tag_resource, "ValidationException", "Member must have length less than "
                 "or equal to 128", ResourceArn=tagged, Tags=[{"Key": "x" * 129, "Value": "v"}])


def test_empty_tag_lists_and_missing_arns(ddb: Any, raw_ddb: Any, tagged: str) -> None:
    """An empty Tags or TagKeys list is refused in DynamoDB's words, once the ARN is a
    table's; a body without a ResourceArn is "Invalid TableArn" (dynalite's
    validations/tagResource.js and untagResource.js, tests recorded against DynamoDB;
    alternator's test_tag_resource_incorrect)."""
    expect_error(raw_ddb.tag_resource, "ValidationException",
                 "Atleast one Tag needs to be provided as Input.", ResourceArn=tagged, Tags=[])
    expect_error(raw_ddb.untag_resource, "ValidationException",
                 "Atleast one Tag Key needs to be provided as Input.", ResourceArn=tagged,
                 TagKeys=[])
    for target in ("TagResource", "UntagResource"):
        status, answer = raw_post(_url(ddb), b"{}", target=TARGET_PREFIX + target)
        assert (status, error_name(answer), answer.get("message")) == (
            400, "ValidationException", "Invalid TableArn"), answer


def test_tag_and_untag_answer_with_an_empty_body(ddb: Any, tagged: str) -> None:
    """TagResource and UntagResource answer a success with an empty HTTP body, not "{}"
    (alternator's test_tags_return_empty_body, which passes against DynamoDB)."""
    url = _url(ddb)
    body = json.dumps({"ResourceArn": tagged, "Tags": [{"Key": "k", "Value": "v"}]}).encode()
    assert _post_raw_body(url, "TagResource", body) == (200, b"")
    body = json.dumps({"ResourceArn": tagged, "TagKeys": ["k"]}).encode()
    assert _post_raw_body(url, "UntagResource", body) == (200, b"")


def _url(ddb: Any) -> str:
    return str(ddb.meta.endpoint_url)


def _post_raw_body(url: str, target: str, body: bytes) -> tuple[int, bytes]:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    headers = sign(url + "/", "POST", body, {"Content-Type": "application/x-amz-json-1.0",
                                            "X-Amz-Target": TARGET_PREFIX + target})
    try:
        connection.request("POST", "/", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


# ---- malformed bodies -------------------------------------------------------------------

@pytest.mark.parametrize("target", ["PutItem", "UpdateItem", "BatchWriteItem"])
@pytest.mark.parametrize("body", [
    b'{"TableName": "t", "Item": {', b"}}}", b"habababa", b"7", b'"a": "b"', b"{,}",
    b'{"TableName": "t", "Item": {"pk": {"S": "x"}},}', b"{" * 10000 + b"}" * 9999,
])
def test_a_body_that_is_not_a_json_object_is_a_serialization_exception(
        server: Any, target: str, body: bytes) -> None:
    """A body that is not a JSON object is a SerializationException (HTTP 400), never a
    dropped connection or a 500 ("Error handling with DynamoDB", SerializationException;
    alternator's test_incorrect_json, run against DynamoDB)."""
    status, answer = raw_post(server.url, body, target=TARGET_PREFIX + target)
    assert (status, error_name(answer)) == (400, "SerializationException"), answer


@pytest.mark.parametrize("value", [{"S": 5}, {"N": 5}, {"BOOL": "true"}, {"SS": "a"},
                                   {"B": "not base64!"}, "plain"])
def test_a_value_of_the_wrong_json_type_is_a_serialization_exception(
        server: Any, value: Any) -> None:
    """An attribute value whose JSON type is wrong ({"N": 5}, a string for a set) cannot
    be read into the AttributeValue shape: SerializationException (alternator's
    test_number_in_json; dynalite's assertType tests), in PutItem, UpdateItem and
    BatchWriteItem alike."""
    item = {"pk": S("x"), "v": value}
    for target, request in (
            ("PutItem", {"TableName": "absent_table", "Item": item}),
            ("UpdateItem", {"TableName": "absent_table", "Key": {"pk": S("x")},
                            "UpdateExpression": "SET v = :v",
                            "ExpressionAttributeValues": {":v": value}}),
            ("BatchWriteItem", {"RequestItems": {"absent_table": [{"PutRequest": {"Item": item}}]}})):
        status, answer = raw_post(server.url, json.dumps(request).encode(),
                                  target=TARGET_PREFIX + target)
        assert (status, error_name(answer)) == (400, "SerializationException"), (target, answer)


# ---- malformed attribute values: worded per operation -----------------------------------

@pytest.fixture(scope="module")
def values_table(ddb: Any) -> str:
    name = f"documented_values_{next(_names)}"
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    ddb.put_item(TableName=name, Item={"pk": S("there")})
    return name


# (number text, the current layer's message, the older layer's)
NUMBERS = [
    ("abc", f"{NOT_NUMERIC}: abc", f"{NOT_NUMERIC}: abc"),
    ("", f"{NOT_NUMERIC}: ", NOT_NUMERIC),
    ("1e126", OVERFLOW, OVERFLOW),
    ("1e-131", UNDERFLOW, UNDERFLOW),
    ("1" * 39, "Attempting to store more than 38 significant digits in a Number",
     "Attempting to store more than 38 significant digits in a Number"),
]


@pytest.mark.parametrize("text, current, older", NUMBERS, ids=[n[0] or "empty" for n in NUMBERS])
def test_a_malformed_number_is_worded_as_each_operation_words_it(
        ddb: Any, values_table: str, text: str, current: str, older: str) -> None:
    """DynamoDB words a refused value in one of two validation layers, by operation
    (paritysuite conformance suite, captured in four regions:
    tests/tier3/error-messages/valueLayers.test.ts): PutItem, UpdateItem and DeleteItem
    inside the "1 validation error detected: " envelope, wherever the value sits (item,
    key, expression value, AttributeUpdates) and with no wrapper; GetItem, BatchGetItem
    and Query bare; BatchWriteItem, TransactWriteItems and Scan in the older wording,
    an expression value inside "ExpressionAttributeValues contains invalid value: ...
    for key :v"."""
    t, bad = values_table, N(text)
    one = ONE + current
    assert _message(ddb.put_item, TableName=t, Item={"pk": S("n"), "n": bad}) == one
    assert _message(ddb.put_item, TableName=t, Item={"pk": S("n"), "n": {"NS": ["1", text]}}) == one
    assert _message(ddb.put_item, TableName=t, Item={"pk": S("n"), "m": {"M": {"x": {"L": [bad]}}}}) \
        == one
    assert _message(ddb.update_item, TableName=t, Key={"pk": S("n")}, UpdateExpression="SET n = :v",
                    ExpressionAttributeValues={":v": bad}) == one
    assert _message(ddb.update_item, TableName=t, Key={"pk": S("n")},
                    AttributeUpdates={"n": {"Action": "PUT", "Value": bad}}) == one
    assert _message(ddb.update_item, TableName=t, Key={"pk": bad}, UpdateExpression="SET n = :o",
                    ExpressionAttributeValues={":o": N(1)}) == one
    assert _message(ddb.delete_item, TableName=t, Key={"pk": bad}) == one
    assert _message(ddb.get_item, TableName=t, Key={"pk": bad}) == current
    assert _message(ddb.batch_get_item, RequestItems={t: {"Keys": [{"pk": bad}]}}) == current
    assert _message(ddb.query, TableName=t, KeyConditionExpression="pk = :p",
                    FilterExpression="n = :v",
                    ExpressionAttributeValues={":p": S("n"), ":v": bad}) == current
    assert _message(ddb.batch_write_item,
                    RequestItems={t: [{"PutRequest": {"Item": {"pk": S("n"), "n": bad}}}]}) == older
    assert _message(ddb.transact_write_items, TransactItems=[
        {"Put": {"TableName": t, "Item": {"pk": S("n"), "n": bad}}}]) == older
    assert _message(ddb.transact_write_items, TransactItems=[
        {"Update": {"TableName": t, "Key": {"pk": S("n")}, "UpdateExpression": "SET n = :v",
                    "ExpressionAttributeValues": {":v": bad}}}]) == \
        f"ExpressionAttributeValues contains invalid value: {older} for key :v"
    assert _message(ddb.scan, TableName=t, FilterExpression="n = :v",
                    ExpressionAttributeValues={":v": bad}) == \
        f"ExpressionAttributeValues contains invalid value: {older} for key :v"
    assert "Item" not in ddb.get_item(TableName=t, Key={"pk": S("n")})


# (the set sent, the current layer's message, the older layer's)
DUPLICATES = [
    ({"SS": ["b", "a", "b"]},
     'One or more parameter values were invalid: Input collection ["a", "b", "b"] contains '
     "duplicates.",
     "One or more parameter values were invalid: Input collection [b, a, b] contains duplicates."),
    ({"BS": [b"\xff", b"\x00", b"\x00"]},
     'One or more parameter values were invalid: Input collection ["AA==","/w==","AA=="]of type '
     "BS contains duplicates.",
     "One or more parameter values were invalid: Input collection [/w==, AA==, AA==]of type BS "
     "contains duplicates."),
    ({"NS": ["2", "1", "2"]},
     "One or more parameter values were invalid: Input collection contains duplicates.",
     "Input collection contains duplicates"),
]


@pytest.mark.parametrize("value, current, older", DUPLICATES, ids=["SS", "BS", "NS"])
def test_a_set_with_a_repeated_member_is_worded_as_each_operation_words_it(
        ddb: Any, values_table: str, value: dict[str, Any], current: str, older: str) -> None:
    """The current layer quotes the members and lists them in byte order up to the first
    repeat, then the repeat, then the rest as sent; the older one lists them as sent;
    neither names a number set's members (paritysuite, valueLayers.test.ts, "Duplicate
    set members")."""
    t = values_table
    assert _message(ddb.put_item, TableName=t, Item={"pk": S("d"), "s": value}) == ONE + current
    assert _message(ddb.update_item, TableName=t, Key={"pk": S("d")},
                    AttributeUpdates={"s": {"Action": "PUT", "Value": value}}) == ONE + current
    assert _message(ddb.get_item, TableName=t, Key={"pk": value}) == current
    assert _message(ddb.batch_write_item,
                    RequestItems={t: [{"PutRequest": {"Item": {"pk": S("d"), "s": value}}}]}) \
        == older
    assert _message(ddb.batch_write_item,
                    RequestItems={t: [{"DeleteRequest": {"Key": {"pk": value}}}]}) == older


def test_documents_nest_at_most_32_levels(ddb: Any, values_table: str) -> None:
    """"Nested attribute depth: DynamoDB supports nested attributes up to 32 levels deep"
    (Constraints, "Attributes"), the attribute itself the first: 31 maps around a value
    are stored, 32 refused, with DynamoDB's message, worded per operation as values are
    (paritysuite conformance suite, tests/tier3/limits/nestingDepth.test.ts: PutItem and
    an UpdateItem expression value enveloped, BatchWriteItem and a transaction's Put
    bare)."""
    t = values_table
    ddb.put_item(TableName=t, Item={"pk": S("deep"), "d": _deep(31)})
    assert ddb.get_item(TableName=t, Key={"pk": S("deep")})["Item"]["d"] == _deep(31)
    too_deep = {"pk": S("deeper"), "d": _deep(32)}
    assert _message(ddb.put_item, TableName=t, Item=too_deep) == ONE + NEST
    assert _message(ddb.update_item, TableName=t, Key={"pk": S("deeper")},
                    UpdateExpression="SET t = :t", ConditionExpression="d = :deep",
                    ExpressionAttributeValues={":t": S("y"), ":deep": _deep(32)}) == ONE + NEST
    assert _message(ddb.batch_write_item, RequestItems={t: [{"PutRequest": {"Item": too_deep}}]}) \
        == NEST
    assert _message(ddb.transact_write_items,
                    TransactItems=[{"Put": {"TableName": t, "Item": too_deep}}]) == NEST
    lists: dict[str, Any] = S("leaf")
    for _ in range(32):
        lists = {"L": [lists]}
    assert _message(ddb.put_item, TableName=t, Item={"pk": S("deeper"), "d": lists}) == ONE + NEST
    assert "Item" not in ddb.get_item(TableName=t, Key={"pk": S("deeper")})


def test_an_empty_binary_key_is_worded_for_binary(ddb: Any) -> None:
    """An empty key value is refused naming its type: "... cannot contain an empty
    binary value. Key: pk" for B (paritysuite conformance suite,
    error-messages/putItem.test.ts and updateItem.test.ts; dynalite's test/getItem.js)."""
    name = f"documented_binary_{next(_names)}"
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "B"}])
    message = ("One or more parameter values are not valid. The AttributeValue for a key "
               "attribute cannot contain an empty binary value. Key: pk")
    assert _message(ddb.put_item, TableName=name, Item={"pk": {"B": b""}}) == message
    assert _message(ddb.update_item, TableName=name, Key={"pk": {"B": b""}},
                    UpdateExpression="SET a = :v", ExpressionAttributeValues={":v": S("x")}) \
        == message
    assert _message(ddb.get_item, TableName=name, Key={"pk": {"B": b""}}) == message


# ---- the HTTP front end -----------------------------------------------------------------

def test_a_plain_get_of_the_root_is_the_health_check(server: Any) -> None:
    """DynamoDB's endpoint answers `GET /` with "healthy: " and the host the client
    asked for (alternator's test_health_works, which passes against DynamoDB:
    "healthy: dynamodb.us-east-1.amazonaws.com")."""
    with urllib.request.urlopen(server.url + "/", timeout=5) as response:
        assert response.status == 200
        assert response.read().decode() == f"healthy: 127.0.0.1:{server.port}"
    request = urllib.request.Request(server.url + "/",
                                     headers={"Host": "dynamodb.us-east-1.amazonaws.com"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.read() == b"healthy: dynamodb.us-east-1.amazonaws.com"


def _exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass
        received = b""
        while len(received) < 65536:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    return received


def test_a_head_too_long_is_answered_not_dropped(server: Any) -> None:
    """A request line or head too long for the front end is answered with a status and
    DynamoDB's error shape, then the connection closes: a 414 and a 431 (RFC 9110 and
    RFC 6585), never a connection reset without an answer. What DynamoDB's own front end
    answers here is not documented, nor recorded by any conformance suite we found."""
    line = b"POST /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    answer = _exchange(server.port, line)
    assert answer.startswith(b"HTTP/1.1 414 "), answer[:200]
    assert b"RequestURITooLongException" in answer
    head = (b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: DynamoDB_20120810.ListTables\r\n"
            + b"X-Big: " + b"a" * 40_000 + b"\r\nContent-Length: 2\r\n\r\n{}")
    answer = _exchange(server.port, head)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"RequestHeaderFieldsTooLargeException" in answer
    with urllib.request.urlopen(server.url + "/health", timeout=5) as response:
        assert response.status == 200
