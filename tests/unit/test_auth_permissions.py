"""Roles and table lists: the permission table, the tables each request touches, and
DynamoDB's AccessDeniedException message shape."""

from __future__ import annotations

from typing import Any

import botocore.session
import pytest

from atoll.auth.errors import REASON_DENIED, AccessDenied
from atoll.auth.keys import ROLE_ADMIN, ROLE_READ_ONLY, ROLE_READ_WRITE, AccessKey, create_key
from atoll.auth.permissions import (
    ADMIN,
    ATOLL_CREATE_KEY,
    ATOLL_DESCRIBE_STATUS,
    ATOLL_LIST_KEYS,
    ATOLL_READ_CONFLICTS,
    ATOLL_REVOKE_KEY,
    ATOLL_UPDATE_TOPOLOGY,
    READ,
    WRITE,
    Access,
    authorize,
    authorize_request,
    may_whatever_the_tables,
    partiql_statement,
    request_tables,
    required_access,
    table_from_arn,
)

REGION = "us-east-1"
ARN = "arn:aws:dynamodb:us-east-1:000000000000:table/"

# The permission table, written out: every operation of DynamoDB's service model and of
# DynamoDB Streams, and Atoll's own actions, with the class each needs.
EXPECTED: dict[str, str] = {
    **dict.fromkeys([
        "GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems", "SearchVectors",
        "DescribeTable", "DescribeTimeToLive", "DescribeContinuousBackups",
        "DescribeContributorInsights", "DescribeEndpoints", "DescribeLimits",
        "DescribeKinesisStreamingDestination", "DescribeTableReplicaAutoScaling",
        "DescribeGlobalTable", "DescribeGlobalTableSettings", "DescribeBackup",
        "DescribeExport", "DescribeImport", "DescribeBulkOperation", "ListTables",
        "ListTagsOfResource", "ListBackups", "ListContributorInsights", "ListExports",
        "ListImports", "ListGlobalTables", "ListBulkOperations", "GetResourcePolicy",
        "DescribeStream", "GetShardIterator", "GetRecords", "ListStreams",
        ATOLL_DESCRIBE_STATUS, ATOLL_READ_CONFLICTS], READ),
    **dict.fromkeys([
        "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"], WRITE),
    **dict.fromkeys([
        "CreateTable", "UpdateTable", "DeleteTable", "UpdateTimeToLive", "TagResource",
        "UntagResource", "CreateBackup", "DeleteBackup", "RestoreTableFromBackup",
        "RestoreTableToPointInTime", "UpdateContinuousBackups", "UpdateContributorInsights",
        "CreateGlobalTable", "UpdateGlobalTable", "UpdateGlobalTableSettings",
        "EnableKinesisStreamingDestination", "DisableKinesisStreamingDestination",
        "UpdateKinesisStreamingDestination", "ExportTableToPointInTime", "ImportTable",
        "PutResourcePolicy", "DeleteResourcePolicy", "UpdateTableReplicaAutoScaling",
        "StartBulkPutItems", "CancelBulkOperation", ATOLL_UPDATE_TOPOLOGY, ATOLL_CREATE_KEY,
        ATOLL_LIST_KEYS, ATOLL_REVOKE_KEY], ADMIN),
}
PARTIQL_OPS = {"ExecuteStatement", "BatchExecuteStatement", "ExecuteTransaction"}


def key(role: str, tables: list[str] | None = None) -> AccessKey:
    return create_key(role, now_ms=1, tables=tables)


ADMIN_KEY = key(ROLE_ADMIN)
WRITER = key(ROLE_READ_WRITE)
READER = key(ROLE_READ_ONLY)


def allowed(k: AccessKey, operation: str, body: dict[str, Any]) -> bool:
    try:
        authorize_request(k, operation, body, REGION)
    except AccessDenied as denied:
        assert denied.reason == REASON_DENIED and denied.key_id == k.key_id
        return False
    return True


def test_every_dynamodb_operation_is_classified() -> None:
    session = botocore.session.get_session()
    model_ops = set()
    for service in ("dynamodb", "dynamodbstreams"):
        model_ops |= set(session.get_service_model(service).operation_names)
    atoll_ops = {op for op in EXPECTED if op.startswith("atoll:")}
    assert model_ops - PARTIQL_OPS == set(EXPECTED) - atoll_ops
    for operation, kind in EXPECTED.items():
        assert required_access(operation, {"TableName": "T"}).kind == kind, operation


def test_unknown_operations_need_admin() -> None:
    assert required_access("SomeFutureOperation", {}).kind == ADMIN
    assert not allowed(WRITER, "SomeFutureOperation", {})
    assert allowed(ADMIN_KEY, "SomeFutureOperation", {})


@pytest.mark.parametrize("operation", sorted(EXPECTED))
def test_role_matrix(operation: str) -> None:
    kind = EXPECTED[operation]
    body = {"TableName": "T"}
    assert allowed(ADMIN_KEY, operation, body)
    assert allowed(WRITER, operation, body) == (kind in (READ, WRITE))
    assert allowed(READER, operation, body) == (kind == READ)


@pytest.mark.parametrize("operation", sorted(EXPECTED) + sorted(PARTIQL_OPS)
                         + ["SomeFutureOperation"])
def test_the_shortcut_for_keys_without_a_table_list_never_allows_more(operation: str) -> None:
    """`may_whatever_the_tables` (the api's shortcut, which reads no body) says yes only
    where the full check allows every body, and for every unlimited key the full check
    allows something it does not refuse."""
    bodies: list[dict[str, Any]] = [{}, {"TableName": "T"}, {"TableArn": ARN + "U"},
                                    {"Statement": 'DELETE FROM "T" WHERE pk = ?'},
                                    {"Statement": 'SELECT * FROM "T"'}]
    for k in (ADMIN_KEY, WRITER, READER, key(ROLE_READ_WRITE, ["T"]), key(ROLE_READ_ONLY, ["T"])):
        if may_whatever_the_tables(k, operation):
            assert k.tables is None and operation not in PARTIQL_OPS
            assert all(allowed(k, operation, body) for body in bodies), (k.role, operation)
        elif k.tables is None and operation not in PARTIQL_OPS:
            assert not allowed(k, operation, {"TableName": "T"}), (k.role, operation)
    assert may_whatever_the_tables(READER, "GetItem")
    assert not may_whatever_the_tables(READER, "PutItem")
    assert not may_whatever_the_tables(WRITER, "ExecuteStatement")  # the statement says


@pytest.mark.parametrize("statement,kind", [
    ('SELECT * FROM "Orders" WHERE pk = ?', READ),
    ("select a FROM Orders", READ),
    ('INSERT INTO "Orders" VALUE {\'pk\': ?}', WRITE),
    ('UPDATE "Orders" SET a = 1 WHERE pk = ?', WRITE),
    ('DELETE FROM "Orders" WHERE pk = ?', WRITE),
    ("/* SELECT */ DELETE FROM Orders", WRITE),
    ("REPLACE whatever", WRITE),
])
def test_partiql_statements_are_classed_by_their_verb(statement: str, kind: str) -> None:
    access = required_access("ExecuteStatement", {"Statement": statement})
    assert access.kind == kind
    assert allowed(READER, "ExecuteStatement", {"Statement": statement}) == (kind == READ)
    assert allowed(WRITER, "ExecuteStatement", {"Statement": statement})


def test_partiql_batches_and_transactions_are_writes_if_any_statement_writes() -> None:
    reads = [{"Statement": 'SELECT * FROM "A" WHERE pk = ?'},
             {"Statement": 'SELECT * FROM "B"."ByDate" WHERE pk = ?'}]
    mixed = [*reads, {"Statement": 'DELETE FROM "C" WHERE pk = ?'}]
    assert required_access("BatchExecuteStatement", {"Statements": reads}) == \
        Access("BatchExecuteStatement", READ, ("A", "B"), True)
    assert required_access("BatchExecuteStatement", {"Statements": mixed}).kind == WRITE
    exists = [{"Statement": 'EXISTS(SELECT * FROM "A" WHERE pk = ?)'},
              {"Statement": 'UPDATE "B" SET x = 1 WHERE pk = ?'}]
    assert required_access("ExecuteTransaction", {"TransactStatements": exists}) == \
        Access("ExecuteTransaction", WRITE, ("A", "B"), True)
    assert required_access("ExecuteTransaction", {"TransactStatements": exists[:1]}).kind == READ


@pytest.mark.parametrize("statement,parsed", [
    ('SELECT * FROM "Orders"', (READ, "Orders")),
    ('SELECT "from", b FROM "Or""ders"."Index" WHERE x = \'FROM "Other"\'',
     (READ, 'Or"ders')),
    ("SELECT * FROM Orders.ByDate", (READ, "Orders")),
    ('  insert   into "my-table.v2" value {}', (WRITE, "my-table.v2")),
    ('UPDATE "T" SET a = 1', (WRITE, "T")),
    ('EXISTS (SELECT * FROM "T" WHERE pk = 1)', (READ, "T")),
    ('SELECT * FROM /* "A" */ "B"', None),
    ('SELECT /* FROM "A" */ * FROM "B"', None),
    ('SELECT * -- FROM "A"\n FROM "B"', None),
    ("SELECT * FROM", None),
    ('SELECT * FROM "unterminated', None),
    ("SELECT * FROM ?", None),
    ("", None),
    ("42", None),
])
def test_partiql_table_is_read_or_the_statement_is_unreadable(
        statement: str, parsed: tuple[str, str] | None) -> None:
    assert partiql_statement(statement) == parsed


@pytest.mark.parametrize("operation,body,tables", [
    ("GetItem", {"TableName": "A"}, ("A",)),
    ("GetItem", {"TableName": ARN + "A"}, ("A",)),
    ("Query", {"TableName": "A", "IndexName": "I"}, ("A",)),
    ("BatchGetItem", {"RequestItems": {"A": {}, ARN + "B": {}}}, ("A", "B")),
    ("BatchWriteItem", {"RequestItems": {"A": [], "B": [], "A2": []}}, ("A", "B", "A2")),
    ("TransactGetItems", {"TransactItems": [{"Get": {"TableName": "A"}},
                                            {"Get": {"TableName": "B"}}]}, ("A", "B")),
    ("TransactWriteItems", {"TransactItems": [
        {"Put": {"TableName": "A"}}, {"Update": {"TableName": "B"}},
        {"Delete": {"TableName": ARN + "C"}}, {"ConditionCheck": {"TableName": "A"}}]},
     ("A", "B", "C")),
    ("TagResource", {"ResourceArn": ARN + "A"}, ("A",)),
    ("ListTagsOfResource", {"ResourceArn": ARN + "A/index/I"}, ("A",)),
    ("DescribeStream", {"StreamArn": ARN + "A/stream/2024-01-01T00:00:00.000"}, ("A",)),
    ("GetShardIterator", {"StreamArn": ARN + "A/stream/label", "ShardId": "s"}, ("A",)),
    ("ExportTableToPointInTime", {"TableArn": ARN + "A"}, ("A",)),
    ("RestoreTableToPointInTime", {"SourceTableName": "A", "TargetTableName": "B"},
     ("A", "B")),
    ("ImportTable", {"TableCreationParameters": {"TableName": "A"}}, ("A",)),
    ("ExecuteStatement", {"Statement": 'SELECT * FROM "A"'}, ("A",)),
    ("GetItem", {"TableName": 42}, ()),
    ("BatchGetItem", {"RequestItems": ["A"]}, ()),
    ("TransactWriteItems", {"TransactItems": [{"Put": "A"}, "B"]}, ()),
    ("GetItem", {"TableName": "arn:aws:s3:::bucket/A"}, ("",)),
])
def test_request_tables(operation: str, body: dict[str, Any], tables: tuple[str, ...]) -> None:
    assert request_tables(operation, body) == tables


def test_table_from_arn() -> None:
    assert table_from_arn("Orders") == "Orders"
    assert table_from_arn(ARN + "Orders") == "Orders"
    assert table_from_arn(ARN + "Orders/stream/x") == "Orders"
    assert table_from_arn("arn:aws:dynamodb:r:a:backup/x") == ""
    assert table_from_arn("arn:short") == ""


def test_denial_has_dynamodbs_message_shape() -> None:
    limited = key(ROLE_READ_ONLY, ["A"])
    with pytest.raises(AccessDenied) as denied:
        authorize_request(limited, "GetItem", {"TableName": "B"}, "eu-west-1", "123456789012")
    assert denied.value.message == (
        f"User: arn:aws:iam::123456789012:user/{limited.key_id} is not authorized to perform: "
        "dynamodb:GetItem on resource: arn:aws:dynamodb:eu-west-1:123456789012:table/B "
        "because no identity-based policy allows the dynamodb:GetItem action")
    with pytest.raises(AccessDenied) as denied:
        authorize_request(READER, "PutItem", {"TableName": "A"}, REGION)
    assert "perform: dynamodb:PutItem on resource: " \
           "arn:aws:dynamodb:us-east-1:000000000000:table/A because" in denied.value.message
    with pytest.raises(AccessDenied) as denied:
        authorize_request(WRITER, ATOLL_UPDATE_TOPOLOGY, {"generation": 9}, REGION)
    assert "perform: atoll:UpdateTopology on resource: " \
           "arn:aws:dynamodb:us-east-1:000000000000:atoll/UpdateTopology" in denied.value.message


def test_a_table_limited_key_touches_only_its_tables() -> None:
    limited = key(ROLE_READ_WRITE, ["A", "B"])
    assert allowed(limited, "GetItem", {"TableName": "A"})
    assert allowed(limited, "PutItem", {"TableName": ARN + "B"})
    assert not allowed(limited, "GetItem", {"TableName": "C"})
    assert not allowed(limited, "GetItem", {"TableName": ARN.replace("table/", "backup/") + "A"})
    assert allowed(limited, "BatchWriteItem", {"RequestItems": {"A": [], "B": []}})
    with pytest.raises(AccessDenied, match="table/C because"):
        authorize_request(limited, "BatchWriteItem", {"RequestItems": {"A": [], "C": []}},
                          REGION)
    assert not allowed(limited, "TransactWriteItems", {"TransactItems": [
        {"Put": {"TableName": "A"}}, {"ConditionCheck": {"TableName": "C"}}]})
    assert not allowed(limited, "ExecuteStatement", {"Statement": 'SELECT * FROM "C"'})
    assert allowed(limited, "ExecuteStatement", {"Statement": 'SELECT * FROM "A"'})


def test_unknown_tables_refuse_a_limited_key_but_not_an_unlimited_one() -> None:
    limited = key(ROLE_READ_ONLY, ["A"])
    unreadable = {"Statement": 'SELECT * FROM /* x */ "A"'}
    with pytest.raises(AccessDenied, match="table/\\* because"):
        authorize_request(limited, "ExecuteStatement", unreadable, REGION)
    assert allowed(WRITER, "ExecuteStatement", unreadable)
    assert not allowed(READER, "ExecuteStatement", unreadable)  # unreadable: a write
    records = required_access("GetRecords", {"ShardIterator": "opaque"})
    assert records.table_scoped and records.tables == ()
    with pytest.raises(AccessDenied):
        authorize(limited, records, REGION)
    authorize(limited, records.for_tables(("A",)), REGION)
    with pytest.raises(AccessDenied):
        authorize(limited, records.for_tables(("B",)), REGION)
    assert not allowed(limited, "GetItem", {})


def test_account_level_reads_are_open_to_every_key() -> None:
    limited = key(ROLE_READ_ONLY, ["A"])
    for operation in ("ListTables", "DescribeLimits", "DescribeEndpoints",
                      ATOLL_DESCRIBE_STATUS):
        assert allowed(limited, operation, {})
        assert not required_access(operation, {}).table_scoped
    assert allowed(limited, "ListStreams", {})
    assert allowed(limited, "ListStreams", {"TableName": "A"})
    assert not allowed(limited, "ListStreams", {"TableName": "B"})


def test_conflicts_need_read_permission_on_the_table() -> None:
    limited = key(ROLE_READ_ONLY, ["A"])
    assert allowed(limited, ATOLL_READ_CONFLICTS, {"TableName": "A"})
    assert not allowed(limited, ATOLL_READ_CONFLICTS, {"TableName": "B"})
    assert not allowed(limited, ATOLL_READ_CONFLICTS, {})
    assert allowed(READER, ATOLL_READ_CONFLICTS, {"TableName": "B"})


def test_keys_and_topology_need_admin() -> None:
    for operation in (ATOLL_UPDATE_TOPOLOGY, ATOLL_CREATE_KEY, ATOLL_LIST_KEYS,
                      ATOLL_REVOKE_KEY, "CreateTable", "DeleteTable", "UpdateTable"):
        assert allowed(ADMIN_KEY, operation, {"TableName": "T"})
        assert not allowed(WRITER, operation, {"TableName": "T"})
        assert not allowed(READER, operation, {"TableName": "T"})
