"""A Query answered from a plan (engine/queryplan.py) answers as the full path does.

Once a table Query of some shape (its table, key condition text, names and value types)
has been accepted, later Queries of that shape skip the checks that depend on the shape
alone. These tests send each request twice around a good request of its shape: first
before any plan of it exists, then after one does, and require the same answer or the
same DynamoDB error both times; and a table created again under the same name with
another sort key type must not be read with the first table's plan.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.wire import put_all
from tests.support import create_table

KEY_CONDITION = "pk = :pk AND sk >= :a"
GOOD = {":pk": {"S": "p"}, ":a": {"S": "s-03"}}

# Values for the planned shape's placeholders that some check refuses, and near shapes.
VARIANTS: list[dict[str, Any]] = [
    {"ExpressionAttributeValues": {":pk": {"S": "p"}, ":a": {"N": "1"}}},  # type mismatch
    {"ExpressionAttributeValues": {":pk": {"S": "p"}, ":a": {"S": "x", "N": "1"}}},
    {"ExpressionAttributeValues": {":pk": {"S": "p"}, ":a": {}}},
    {"ExpressionAttributeValues": {":pk": {"S": "p"}, ":a": {"S": 5}}},  # not a string
    {"ExpressionAttributeValues": {":pk": {"S": ""}, ":a": {"S": "s"}}},  # empty partition
    {"ExpressionAttributeValues": {":pk": {"S": "p"}}},  # :a undefined
    {"ExpressionAttributeValues": {**GOOD, ":b": {"S": "x"}}},  # :b unused
    {"ExpressionAttributeValues": GOOD, "ExpressionAttributeNames": {"#n": "pk"}},  # unused
    {"ExpressionAttributeValues": GOOD, "Select": "ALL_PROJECTED_ATTRIBUTES"},
    {"ExpressionAttributeValues": GOOD,
     "ExclusiveStartKey": {"pk": {"S": "other"}, "sk": {"S": "s-04"}}},
    {"ExpressionAttributeValues": GOOD, "Limit": 2, "ScanIndexForward": False},
    {"ExpressionAttributeValues": {":pk": {"S": "p"}, ":a": {"S": "s-07"}}, "Limit": 3},
]


def _outcome(ddb: Any, table: str, extra: dict[str, Any],
             key_condition: str = KEY_CONDITION) -> Any:
    try:
        answer = ddb.query(TableName=table, KeyConditionExpression=key_condition, **extra)
    except ClientError as error:
        return error.response["Error"]["Code"], error.response["Error"]["Message"]
    answer.pop("ResponseMetadata")
    return answer


@pytest.fixture
def partition(ddb: Any, table_name: str) -> str:
    create_table(ddb, table_name, range_key=("sk", "S"))
    put_all(ddb, table_name, [{"pk": {"S": "p"}, "sk": {"S": f"s-{i:02d}"}, "n": {"N": str(i)}}
                              for i in range(10)])
    return table_name


@pytest.mark.parametrize("variant", VARIANTS, ids=range(len(VARIANTS)))
def test_a_planned_shape_answers_and_refuses_as_the_first_request_of_it(
        raw_ddb: Any, partition: str, variant: dict[str, Any]) -> None:
    before = _outcome(raw_ddb, partition, variant)  # no plan of this table yet
    assert "Items" in _outcome(raw_ddb, partition, {"ExpressionAttributeValues": GOOD, "Limit": 5})
    assert _outcome(raw_ddb, partition, variant) == before
    assert _outcome(raw_ddb, partition, variant) == before


def test_a_planned_between_still_checks_its_bounds_order(ddb: Any, partition: str) -> None:
    between = "pk = :pk AND sk BETWEEN :a AND :b"
    good = {"ExpressionAttributeValues": {":pk": {"S": "p"}, ":a": {"S": "s-01"},
                                          ":b": {"S": "s-03"}}}
    backwards = {"ExpressionAttributeValues": {":pk": {"S": "p"}, ":a": {"S": "s-03"},
                                               ":b": {"S": "s-01"}}}
    refused = _outcome(ddb, partition, backwards, between)
    assert refused[0] == "ValidationException" and "BETWEEN" in refused[1]
    assert [i["sk"]["S"] for i in _outcome(ddb, partition, good, between)["Items"]] == \
        ["s-01", "s-02", "s-03"]
    assert _outcome(ddb, partition, backwards, between) == refused


def test_planned_numbers_are_normalised_like_the_full_paths(ddb: Any, table_name: str) -> None:
    ddb.create_table(TableName=table_name, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                           {"AttributeName": "sk", "AttributeType": "N"}],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                {"AttributeName": "sk", "KeyType": "RANGE"}])
    put_all(ddb, table_name, [{"pk": {"S": "p"}, "sk": {"N": str(i)}} for i in range(-5, 6)])
    answers = [_outcome(ddb, table_name, {"Limit": 3, "ExpressionAttributeValues": {
        ":pk": {"S": "p"}, ":a": {"N": text}}}) for text in ("1", "001.00", "1e0", "0.1E1")]
    assert [i["sk"]["N"] for i in answers[0]["Items"]] == ["1", "2", "3"]
    assert answers[1:] == answers[:1] * 3
    assert answers[0]["LastEvaluatedKey"] == {"pk": {"S": "p"}, "sk": {"N": "3"}}


def test_a_table_created_again_is_not_read_with_the_old_plan(ddb: Any, table_name: str
                                                             ) -> None:
    for sort_type in ("S", "N"):
        ddb.create_table(TableName=table_name, BillingMode="PAY_PER_REQUEST",
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                               {"AttributeName": "sk",
                                                "AttributeType": sort_type}],
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                    {"AttributeName": "sk", "KeyType": "RANGE"}])
        ddb.put_item(TableName=table_name, Item={"pk": {"S": "p"}, "sk": {sort_type: "5"}})
        for _ in range(2):
            outcome = _outcome(ddb, table_name, {"ExpressionAttributeValues": {
                ":pk": {"S": "p"}, ":a": {"S": "1"}}})
            if sort_type == "S":
                assert [i["sk"] for i in outcome["Items"]] == [{"S": "5"}]
            else:
                assert outcome == ("ValidationException", "One or more parameter values were "
                                   "invalid: Condition parameter type does not match schema type")
        ddb.delete_table(TableName=table_name)
