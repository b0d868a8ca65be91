"""Malformed requests of every operation against a live server: never a 500, never a crash.

A valid request of each operation is mutated at random, by a fixed seed: a member is
dropped, replaced by a value of the wrong type or shape (null, numbers, empty and huge
strings, empty containers, broken attribute values), a list element duplicated, an unknown
member added, or a string replaced by a soup of expression tokens (so that the mutation
reaches the expression parsers and the engine, not only request validation). The bodies
go over raw HTTP, as a hand-written client could send them.

Every answer must be a 200 or a 400 carrying one of DynamoDB's error types and a message;
afterwards the server is healthy and its log holds no traceback. The test runs its own
server so the tables it creates and drops cannot disturb other tests. This fuzzer found
null list elements and null map values (`"TransactItems": [null]`) answered with 500s.
"""

from __future__ import annotations

import copy
import http.client
import json
import random
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.wire import JSON_10, TARGET_PREFIX
from tests.support import ServerProcess, sign

pytestmark = pytest.mark.beside_others  # one node at a time, nothing timed (conftest.py)

SEEDS = (1, 2, 3, 4, 5)
REQUESTS_PER_SEED = 1500
TABLE = "fuzz_req"
OTHER = "fuzz_req_2"
ARN = f"arn:aws:dynamodb:us-east-1:000000000000:table/{TABLE}"
ERROR_TYPES = {
    "ValidationException", "SerializationException", "ResourceNotFoundException",
    "ResourceInUseException", "ConditionalCheckFailedException",
    "TransactionCanceledException", "UnknownOperationException", "LimitExceededException",
    "IdempotentParameterMismatchException", "TransactionConflictException"}

KEY = {"pk": {"S": "a"}, "sk": {"N": "1"}}
ITEM = {**KEY, "s": {"S": "x"}, "n": {"N": "5"}, "g": {"S": "G"},
        "l": {"L": [{"S": "a"}, {"N": "2"}]}, "m": {"M": {"x": {"SS": ["a", "b"]}}},
        "b": {"B": "AAEC"}, "ns": {"NS": ["1", "2"]}}
SAMPLES: dict[str, dict[str, Any]] = {
    "PutItem": {"TableName": TABLE, "Item": ITEM,
                "ConditionExpression": "attribute_not_exists(#x) OR n < :v",
                "ExpressionAttributeNames": {"#x": "x"},
                "ExpressionAttributeValues": {":v": {"N": "9"}},
                "ReturnValues": "ALL_OLD", "ReturnConsumedCapacity": "TOTAL"},
    "GetItem": {"TableName": TABLE, "Key": KEY, "ProjectionExpression": "#s, l[0], m.x",
                "ExpressionAttributeNames": {"#s": "s"}, "ConsistentRead": True},
    "UpdateItem": {"TableName": TABLE, "Key": KEY,
                   "UpdateExpression": "SET n = n + :v, l = list_append(l, :l), #s = :s "
                                       "ADD m.x :ss REMOVE l[0]",
                   "ConditionExpression": "size(l) > :v",
                   "ExpressionAttributeNames": {"#s": "s"},
                   "ExpressionAttributeValues": {":v": {"N": "1"}, ":s": {"S": "x"},
                                                 ":l": {"L": [{"N": "3"}]},
                                                 ":ss": {"SS": ["c"]}},
                   "ReturnValues": "UPDATED_NEW"},
    "DeleteItem": {"TableName": TABLE, "Key": KEY, "ConditionExpression": "contains(m.x, :s)",
                   "ExpressionAttributeValues": {":s": {"S": "a"}}, "ReturnValues": "ALL_OLD"},
    "Query": {"TableName": TABLE, "IndexName": "gsi",
              "KeyConditionExpression": "pk = :p AND sk BETWEEN :a AND :b",
              "FilterExpression": "n IN (:a, :b)",
              "ExpressionAttributeValues": {":p": {"S": "a"}, ":a": {"N": "0"},
                                            ":b": {"N": "9"}},
              "Limit": 5, "ScanIndexForward": False, "ExclusiveStartKey": KEY,
              "Select": "ALL_ATTRIBUTES"},
    "Scan": {"TableName": TABLE, "Segment": 0, "TotalSegments": 2, "Limit": 3,
             "FilterExpression": "attribute_type(n, :t)", "ProjectionExpression": "pk",
             "ExpressionAttributeValues": {":t": {"S": "N"}}, "ExclusiveStartKey": KEY},
    "BatchGetItem": {"RequestItems": {TABLE: {"Keys": [KEY, {"pk": {"S": "b"}, "sk": {"N": "2"}}],
                                              "ProjectionExpression": "pk, n"}}},
    "BatchWriteItem": {"RequestItems": {TABLE: [
        {"PutRequest": {"Item": ITEM}},
        {"DeleteRequest": {"Key": {"pk": {"S": "c"}, "sk": {"N": "3"}}}}]},
        "ReturnConsumedCapacity": "INDEXES"},
    "TransactWriteItems": {"ClientRequestToken": "token", "TransactItems": [
        {"Put": {"TableName": TABLE, "Item": {**ITEM, "pk": {"S": "t1"}}}},
        {"Update": {"TableName": TABLE, "Key": {"pk": {"S": "t2"}, "sk": {"N": "1"}},
                    "UpdateExpression": "SET n = :v",
                    "ExpressionAttributeValues": {":v": {"N": "1"}}}},
        {"ConditionCheck": {"TableName": TABLE, "Key": KEY,
                            "ConditionExpression": "attribute_exists(pk)"}},
        {"Delete": {"TableName": TABLE, "Key": {"pk": {"S": "t3"}, "sk": {"N": "1"}}}}]},
    "TransactGetItems": {"TransactItems": [
        {"Get": {"TableName": TABLE, "Key": KEY, "ProjectionExpression": "n"}}]},
    "CreateTable": {"TableName": OTHER, "BillingMode": "PAY_PER_REQUEST",
                    "KeySchema": [{"AttributeName": "a", "KeyType": "HASH"}],
                    "AttributeDefinitions": [{"AttributeName": "a", "AttributeType": "S"},
                                             {"AttributeName": "g", "AttributeType": "N"}],
                    "GlobalSecondaryIndexes": [{
                        "IndexName": "g", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                        "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["z"]}}],
                    "Tags": [{"Key": "k", "Value": "v"}]},
    "UpdateTable": {"TableName": TABLE, "BillingMode": "PROVISIONED",
                    "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
                    "AttributeDefinitions": [{"AttributeName": "h", "AttributeType": "S"}],
                    "GlobalSecondaryIndexUpdates": [
                        {"Create": {"IndexName": "g2",
                                    "KeySchema": [{"AttributeName": "h", "KeyType": "HASH"}],
                                    "Projection": {"ProjectionType": "KEYS_ONLY"}}},
                        {"Delete": {"IndexName": "nope"}}]},
    "DescribeTable": {"TableName": TABLE},
    "ListTables": {"Limit": 2, "ExclusiveStartTableName": "a"},
    "UpdateTimeToLive": {"TableName": TABLE, "TimeToLiveSpecification": {
        "Enabled": True, "AttributeName": "ttl"}},
    "DescribeTimeToLive": {"TableName": TABLE},
    "TagResource": {"ResourceArn": ARN, "Tags": [{"Key": "a", "Value": "b"}]},
    "ListTagsOfResource": {"ResourceArn": ARN},
    "UntagResource": {"ResourceArn": ARN, "TagKeys": ["a"]},
    "DeleteTable": {"TableName": OTHER},
}
ODD_VALUES: list[Any] = [
    None, 0, 1, -1, 1.5, 1e308, 2 ** 70, "", "x", "A" * 70000, [], {}, True, False, [None],
    [{}], {"S": "x"}, {"N": "1e500"}, {"N": "x"}, {"B": "!!"}, {"SS": []}, {"L": [{}]},
    {"M": {"": {"S": "x"}}}, {"NULL": False}, {"BOOL": "t"}, {"S": "x", "N": "1"}, "#s", ":v",
    ":nope", "#nope", "attribute_exists(", "a.b[99999999999999999999]", "size(size(a))",
    "SET a = :v, a = :v", "REMOVE", "ADD a :s", "((((((((((a))))))))))=:v", " ", "\u0000"]
ODD_MEMBERS = ["", "X", "TableName", ":x", "#x", "S", "N"]
TOKENS = ["a", "#s", ":v", ":s", ":l", ":ss", "n", "l[0]", "m.x", "size(l)", "AND", "OR", "NOT",
          "(", ")", "=", "<>", "<", ">=", "BETWEEN", "IN", "SET", "REMOVE", "ADD", "DELETE", ",",
          "+", "-", "if_not_exists(n, :v)", "list_append(:l, l)", "begins_with(s, :s)",
          "contains(l, :v)", "attribute_type(n, :s)", "l[1].q", "m.x[0]", ".", "[", "]", "pk",
          "sk", "g"]


def _paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if path:
        yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*path, index))


def _at(node: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        node = node[step]
    return node


def _mutate(rnd: random.Random, request: dict[str, Any]) -> dict[str, Any]:
    request = copy.deepcopy(request)
    paths = list(_paths(request))
    if rnd.random() < 0.5:  # token soup in place of one string: reaches the parsers
        strings = [p for p in paths if isinstance(_at(request, p), str)]
        path = rnd.choice(strings)
        _at(request, path[:-1])[path[-1]] = " ".join(
            rnd.choice(TOKENS) for _ in range(rnd.randint(1, 9)))
        return request
    for _ in range(rnd.choice((1, 1, 1, 2, 3))):
        paths = list(_paths(request))
        if not paths:
            break
        path = rnd.choice(paths)
        parent = _at(request, path[:-1])
        roll = rnd.random()
        if roll < 0.2 and isinstance(parent, dict):
            del parent[path[-1]]
        elif roll < 0.3 and isinstance(parent, dict):
            parent[rnd.choice(ODD_MEMBERS)] = copy.deepcopy(rnd.choice(ODD_VALUES))
        elif roll < 0.4 and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[path[-1]]))
        else:
            parent[path[-1]] = copy.deepcopy(rnd.choice(ODD_VALUES))
    return request


def _post(connection: http.client.HTTPConnection, operation: str,
          body: bytes) -> tuple[int, dict[str, Any]]:
    url = f"http://{connection.host}:{connection.port}/"
    connection.request("POST", "/", body=body, headers=sign(url, "POST", body, {
        "Content-Type": JSON_10, "X-Amz-Target": TARGET_PREFIX + operation}))
    response = connection.getresponse()
    return response.status, json.loads(response.read() or b"{}")


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(data_dir=tmp_path_factory.mktemp("fuzz-data")).start()
    yield process
    process.stop()


def _reset_tables(connection: http.client.HTTPConnection) -> None:
    _post(connection, "DeleteTable", json.dumps({"TableName": TABLE}).encode())
    status, answer = _post(connection, "CreateTable", json.dumps({
        "TableName": TABLE, "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                      {"AttributeName": "sk", "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                 {"AttributeName": "sk", "AttributeType": "N"},
                                 {"AttributeName": "g", "AttributeType": "S"}],
        "GlobalSecondaryIndexes": [{
            "IndexName": "gsi", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "ALL"}}]}).encode())
    assert status == 200, answer
    status, answer = _post(connection, "PutItem",
                           json.dumps({"TableName": TABLE, "Item": ITEM}).encode())
    assert status == 200, answer


@pytest.mark.parametrize("seed", SEEDS)
def test_mutated_requests_get_dynamodb_errors_never_a_500(fuzz_server: ServerProcess,
                                                          seed: int) -> None:
    rnd = random.Random(seed)
    connection = http.client.HTTPConnection("127.0.0.1", fuzz_server.port, timeout=30)
    _reset_tables(connection)
    statuses: dict[int, int] = {}
    for _ in range(REQUESTS_PER_SEED):
        operation = rnd.choice(sorted(SAMPLES))
        body = json.dumps(_mutate(rnd, SAMPLES[operation])).encode()
        status, answer = _post(connection, operation, body)
        statuses[status] = statuses.get(status, 0) + 1
        assert status in (200, 400), (operation, body[:500], answer)
        if status == 400:
            error_type = answer.get("__type", "").rpartition("#")[2]
            assert error_type in ERROR_TYPES, (operation, body[:500], answer)
            assert answer.get("message"), (operation, body[:500], answer)
    connection.close()
    # both kinds of answer occur: the mutations neither all fail nor all pass validation
    assert statuses.get(200, 0) > REQUESTS_PER_SEED // 50, statuses
    assert statuses.get(400, 0) > REQUESTS_PER_SEED // 2, statuses
    with urllib.request.urlopen(fuzz_server.url + "/health", timeout=5) as response:
        assert response.status == 200
    log = fuzz_server.log()
    assert "Traceback" not in log, log[-4000:]
