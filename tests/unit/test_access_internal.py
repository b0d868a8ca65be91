"""Internal tables are hidden from every request (atoll.api.access.check_not_internal):
a request naming one, by name or ARN, in any member, batch, transaction or PartiQL
statement, is answered ResourceNotFound. The short way most requests take is checked
against the full walk over `request_tables` (the naive reference)."""

from __future__ import annotations

from typing import Any

import pytest

from atoll.api.access import check_not_internal
from atoll.auth.permissions import TABLE_MEMBERS, request_tables
from atoll.engine.internal import KEYS_TABLE, is_internal
from atoll.errors import ResourceNotFound

ARN = "arn:aws:dynamodb:us-east-1:000000000000:table/"

# Operations of every kind: single-table items and reads, DDL, streams, backups, batches,
# transactions, imports and PartiQL.
OPERATIONS = (
    "GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "DescribeTable",
    "DeleteTable", "UpdateTable", "TagResource", "ListTagsOfResource", "DescribeStream",
    "GetShardIterator", "ExportTableToPointInTime", "RestoreTableToPointInTime",
    "RestoreTableFromBackup", "CreateGlobalTable", "BatchGetItem", "BatchWriteItem",
    "TransactGetItems", "TransactWriteItems", "ImportTable", "ExecuteStatement",
)

# Values a table member may hold: plain names, ARNs of tables, indexes and streams, ARNs
# that name no table, the prefix elsewhere than at the table, and non-strings.
VALUES: tuple[Any, ...] = (
    "Orders", KEYS_TABLE, "atoll:other", ARN + "Orders", ARN + KEYS_TABLE,
    ARN + KEYS_TABLE + "/index/I", ARN + KEYS_TABLE + "/stream/2024-01-01T00:00:00.000",
    "arn:aws:dynamodb:atoll:000000000000:table/Orders", "arn:aws:dynamodb:r:a:backup/atoll:x",
    "Orders-atoll:", "", 42, None, ["atoll:keys"],
)


def _refused(operation: str, request: dict[str, Any]) -> bool:
    try:
        check_not_internal(operation, request)
    except ResourceNotFound:
        return True
    return False


def _reference(operation: str, request: dict[str, Any]) -> bool:
    return any(is_internal(t) for t in request_tables(operation, request))


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("member", TABLE_MEMBERS)
def test_every_table_member_is_checked_as_the_full_walk_checks_it(operation: str,
                                                                   member: str) -> None:
    for value in VALUES:
        request = {"TableName": "Orders", member: value, "Key": {"pk": {"S": "atoll:keys"}}}
        assert _refused(operation, request) == _reference(operation, request), (
            operation, member, value)


@pytest.mark.parametrize("operation,request_body", [
    ("GetItem", {"TableName": KEYS_TABLE, "Key": {}}),
    ("Query", {"TableName": ARN + KEYS_TABLE}),
    ("DescribeTable", {"TableName": KEYS_TABLE}),
    ("ListTagsOfResource", {"ResourceArn": ARN + KEYS_TABLE + "/index/I"}),
    ("GetShardIterator", {"StreamArn": ARN + KEYS_TABLE + "/stream/x", "ShardId": "s"}),
    ("RestoreTableToPointInTime", {"SourceTableName": "A", "TargetTableName": KEYS_TABLE}),
    ("PutItem", {"TableName": "Orders", "GlobalTableName": KEYS_TABLE}),
    ("BatchGetItem", {"RequestItems": {"A": {}, KEYS_TABLE: {}}}),
    ("BatchWriteItem", {"RequestItems": {ARN + KEYS_TABLE: []}}),
    ("TransactWriteItems", {"TransactItems": [{"Put": {"TableName": "A"}},
                                              {"Delete": {"TableName": KEYS_TABLE}}]}),
    ("TransactGetItems", {"TransactItems": [{"Get": {"TableName": ARN + KEYS_TABLE}}]}),
    ("ImportTable", {"TableCreationParameters": {"TableName": KEYS_TABLE}}),
    ("ExecuteStatement", {"Statement": f'SELECT * FROM "{KEYS_TABLE}"'}),
    ("ExecuteStatement", {"Statement": f'SELECT * FROM "A" WHERE x IN (SELECT * FROM '
                                       f'"{KEYS_TABLE}")'}),
    ("BatchExecuteStatement", {"Statements": [{"Statement": 'SELECT * FROM "A"'},
                                              {"Statement": f'DELETE FROM "{KEYS_TABLE}"'}]}),
])
def test_a_request_naming_an_internal_table_is_refused(operation: str,
                                                       request_body: dict[str, Any]) -> None:
    with pytest.raises(ResourceNotFound, match="not found"):
        check_not_internal(operation, request_body)


@pytest.mark.parametrize("operation,request_body", [
    ("GetItem", {"TableName": "Orders", "Key": {"pk": {"S": KEYS_TABLE}}}),
    ("PutItem", {"TableName": ARN + "Orders", "Item": {"atoll:keys": {"S": "x"}}}),
    ("Query", {"TableName": "Orders", "IndexName": KEYS_TABLE}),
    ("TagResource", {"ResourceArn": "arn:aws:dynamodb:atoll:000000000000:table/Orders"}),
    ("BatchWriteItem", {"RequestItems": {"Orders": [{"PutRequest": {"Item": {
        "pk": {"S": KEYS_TABLE}}}}]}}),
    ("ExecuteStatement", {"Statement": "SELECT * FROM \"Orders\" WHERE pk = 'atoll:keys'"}),
])
def test_a_request_that_only_mentions_the_prefix_is_served(operation: str,
                                                          request_body: dict[str, Any]) -> None:
    check_not_internal(operation, request_body)


def test_the_refusal_names_the_first_internal_table_the_request_names() -> None:
    with pytest.raises(ResourceNotFound, match="Table: atoll:keys not found"):
        check_not_internal("RestoreTableToPointInTime", {
            "SourceTableName": "Orders", "TargetTableName": ARN + KEYS_TABLE})


def test_the_refusal_names_the_first_member_in_member_order_not_body_order() -> None:
    """The short way only decides whether to read the members; they are read in
    TABLE_MEMBERS' order, so the table named is the same whatever order the body has."""
    with pytest.raises(ResourceNotFound, match="Table: atoll:first not found"):
        check_not_internal("GetItem", {"TargetTableName": "atoll:second",
                                       "Key": {}, "TableName": "atoll:first"})
    check_not_internal("Query", {"TableName": "Orders", "IndexName": "atoll:keys",
                                 "Select": "atoll:"})  # the prefix in no table member
