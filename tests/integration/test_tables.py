"""Table operations against a live server, as DynamoDB's API reference describes them.

References (DynamoDB API Reference): CreateTable, DescribeTable (TableDescription),
ListTables ("If LastEvaluatedTableName also appears in the output, you can use this value
as the ExclusiveStartTableName parameter in a subsequent ListTables request"; Limit
defaults to 100), DeleteTable, UpdateTable; boto3's `table_exists`/`table_not_exists`
waiters poll DescribeTable.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import pytest

from tests.integration.wire import expect_error, put_all
from tests.support import create_table

S_KEY = [{"AttributeName": "pk", "KeyType": "HASH"}]
S_DEF = [{"AttributeName": "pk", "AttributeType": "S"}]


def _composite(hash_type: str, range_type: str) -> dict[str, Any]:
    return {
        "KeySchema": [{"AttributeName": "h", "KeyType": "HASH"},
                      {"AttributeName": "r", "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": "h", "AttributeType": hash_type},
                                 {"AttributeName": "r", "AttributeType": range_type}],
    }


@pytest.mark.parametrize("hash_type,range_type", [("S", "N"), ("N", "B"), ("B", "S")])
def test_create_table_echoes_key_schema_and_definitions(ddb: Any, table_name: str,
                                                        hash_type: str, range_type: str) -> None:
    spec = _composite(hash_type, range_type)
    description = ddb.create_table(TableName=table_name, BillingMode="PAY_PER_REQUEST",
                                   **spec)["TableDescription"]
    assert description["TableName"] == table_name
    assert description["KeySchema"] == spec["KeySchema"]
    assert sorted(description["AttributeDefinitions"], key=lambda d: d["AttributeName"]) == \
        sorted(spec["AttributeDefinitions"], key=lambda d: d["AttributeName"])
    assert description["TableStatus"] in ("CREATING", "ACTIVE")
    assert description["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


def test_create_table_with_provisioned_throughput_echoes_it(ddb: Any, table_name: str) -> None:
    description = ddb.create_table(
        TableName=table_name, KeySchema=S_KEY, AttributeDefinitions=S_DEF,
        ProvisionedThroughput={"ReadCapacityUnits": 7, "WriteCapacityUnits": 3},
    )["TableDescription"]
    throughput = description["ProvisionedThroughput"]
    assert (throughput["ReadCapacityUnits"], throughput["WriteCapacityUnits"]) == (7, 3)
    # BillingMode defaults to PROVISIONED; DynamoDB omits the summary or says PROVISIONED.
    assert description.get("BillingModeSummary", {}).get("BillingMode",
                                                         "PROVISIONED") == "PROVISIONED"


def test_describe_table_has_every_documented_field(ddb: Any, table_name: str) -> None:
    before = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=5)
    create_table(ddb, table_name, range_key=("sk", "N"))
    table = ddb.describe_table(TableName=table_name)["Table"]
    assert table["TableName"] == table_name
    assert table["TableStatus"] == "ACTIVE"
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"},
                                  {"AttributeName": "sk", "KeyType": "RANGE"}]
    assert {d["AttributeName"]: d["AttributeType"] for d in table["AttributeDefinitions"]} == \
        {"pk": "S", "sk": "N"}
    assert table["ItemCount"] == 0
    assert table["TableSizeBytes"] == 0
    created = table["CreationDateTime"]
    assert isinstance(created, datetime.datetime)
    assert before <= created <= datetime.datetime.now(datetime.UTC)
    assert table["TableArn"].startswith("arn:aws:dynamodb:")
    assert table["TableArn"].endswith(f":table/{table_name}")
    uuid.UUID(table["TableId"])  # a UUID, as DynamoDB's TableId is
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


def test_describe_table_counts_items_and_bytes(ddb: Any, hash_table: str) -> None:
    # Item size per "DynamoDB item sizes and formats": name bytes + value bytes;
    # a number takes 1 byte per two significant digits plus 1.
    put_all(ddb, hash_table, [{"pk": {"S": f"k{i}"}, "n": {"N": "12"}} for i in range(5)])
    table = ddb.describe_table(TableName=hash_table)["Table"]
    assert table["ItemCount"] == 5
    one_item = len("pk") + len("k0") + len("n") + 2
    assert table["TableSizeBytes"] >= 5 * one_item
    ddb.delete_item(TableName=hash_table, Key={"pk": {"S": "k0"}})
    after = ddb.describe_table(TableName=hash_table)["Table"]
    assert after["ItemCount"] == 4
    assert after["TableSizeBytes"] < table["TableSizeBytes"]


def test_describe_table_identity_is_stable(ddb: Any, hash_table: str) -> None:
    first = ddb.describe_table(TableName=hash_table)["Table"]
    second = ddb.describe_table(TableName=hash_table)["Table"]
    for field in ("TableId", "TableArn", "CreationDateTime"):
        assert first[field] == second[field]


def test_recreated_table_gets_a_new_table_id(ddb: Any, table_name: str) -> None:
    create_table(ddb, table_name)
    first_id = ddb.describe_table(TableName=table_name)["Table"]["TableId"]
    ddb.delete_table(TableName=table_name)
    create_table(ddb, table_name)
    assert ddb.describe_table(TableName=table_name)["Table"]["TableId"] != first_id
    # ... and starts empty
    assert ddb.scan(TableName=table_name)["Count"] == 0


def _all_table_names(ddb: Any, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    params: dict[str, Any] = {"Limit": limit}
    for _ in range(1000):  # bounded: each page advances
        page = ddb.list_tables(**params)
        pages.append(page["TableNames"])
        if "LastEvaluatedTableName" not in page:
            return pages
        assert page["LastEvaluatedTableName"] == page["TableNames"][-1]
        params["ExclusiveStartTableName"] = page["LastEvaluatedTableName"]
    raise AssertionError("ListTables paging did not end")


def test_list_tables_pages_through_seven_tables_with_limit_three(ddb: Any) -> None:
    prefix = f"lt_{uuid.uuid4().hex[:8]}_"
    mine = [create_table(ddb, f"{prefix}{i}") for i in range(7)]
    pages = _all_table_names(ddb, limit=3)
    assert all(len(page) <= 3 for page in pages)
    names = [name for page in pages for name in page]
    assert names == sorted(names), "ListTables returns names in order"
    assert len(names) == len(set(names)), "no table is listed twice"
    assert [n for n in names if n.startswith(prefix)] == mine
    # Start in the middle of my tables: the next three after the exclusive start.
    page = ddb.list_tables(ExclusiveStartTableName=mine[1], Limit=3)
    assert page["TableNames"] == mine[2:5]
    assert page["LastEvaluatedTableName"] == mine[4]


def test_list_tables_without_limit_returns_at_most_100(ddb: Any) -> None:
    page = ddb.list_tables()
    assert len(page["TableNames"]) <= 100
    assert page["TableNames"] == sorted(page["TableNames"])


def test_list_tables_limit_bounds_are_validated(raw_ddb: Any) -> None:
    # ListTablesInput.Limit: range 1..100.
    expect_error(raw_ddb.list_tables, "ValidationException",
                 "Member must have value greater than or equal to 1", Limit=0)
    expect_error(raw_ddb.list_tables, "ValidationException",
                 "Member must have value less than or equal to 100", Limit=101)


def test_delete_table_returns_description_and_removes_table(ddb: Any, hash_table: str) -> None:
    ddb.put_item(TableName=hash_table, Item={"pk": {"S": "x"}})
    description = ddb.delete_table(TableName=hash_table)["TableDescription"]
    assert description["TableName"] == hash_table
    assert description["TableStatus"] in ("DELETING", "ACTIVE")
    assert hash_table not in _flatten(_all_table_names(ddb, limit=100))
    expect_error(ddb.describe_table, "ResourceNotFoundException", hash_table,
                 TableName=hash_table)
    expect_error(ddb.get_item, "ResourceNotFoundException", "", TableName=hash_table,
                 Key={"pk": {"S": "x"}})


def _flatten(pages: list[list[str]]) -> list[str]:
    return [name for page in pages for name in page]


def test_delete_unknown_table_is_resource_not_found(ddb: Any) -> None:
    expect_error(ddb.delete_table, "ResourceNotFoundException", "not found",
                 TableName="no_such_table_ever")


def test_create_duplicate_table_is_resource_in_use(ddb: Any, hash_table: str) -> None:
    table_id = ddb.describe_table(TableName=hash_table)["Table"]["TableId"]
    expect_error(ddb.create_table, "ResourceInUseException", hash_table,
                 TableName=hash_table, KeySchema=S_KEY, AttributeDefinitions=S_DEF,
                 BillingMode="PAY_PER_REQUEST")
    assert ddb.describe_table(TableName=hash_table)["Table"]["TableId"] == table_id


def test_update_table_switches_billing_modes(ddb: Any, hash_table: str) -> None:
    provisioned = ddb.update_table(
        TableName=hash_table, BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 6},
    )["TableDescription"]
    assert provisioned["ProvisionedThroughput"]["ReadCapacityUnits"] == 5
    assert provisioned["ProvisionedThroughput"]["WriteCapacityUnits"] == 6
    assert provisioned["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
    described = ddb.describe_table(TableName=hash_table)["Table"]
    assert described["ProvisionedThroughput"]["WriteCapacityUnits"] == 6

    raised = ddb.update_table(
        TableName=hash_table,
        ProvisionedThroughput={"ReadCapacityUnits": 10, "WriteCapacityUnits": 12},
    )["TableDescription"]
    assert raised["ProvisionedThroughput"]["ReadCapacityUnits"] == 10

    on_demand = ddb.update_table(TableName=hash_table,
                                 BillingMode="PAY_PER_REQUEST")["TableDescription"]
    assert on_demand["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert "LastUpdateToPayPerRequestDateTime" in on_demand["BillingModeSummary"]


def test_update_table_keeps_items(ddb: Any, hash_table: str) -> None:
    ddb.put_item(TableName=hash_table, Item={"pk": {"S": "kept"}})
    ddb.update_table(TableName=hash_table, BillingMode="PROVISIONED",
                     ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1})
    assert ddb.get_item(TableName=hash_table, Key={"pk": {"S": "kept"}})["Item"] == \
        {"pk": {"S": "kept"}}


@pytest.mark.parametrize("params,fragment", [
    # PAY_PER_REQUEST forbids ProvisionedThroughput.
    ({"BillingMode": "PAY_PER_REQUEST",
      "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}},
     "PAY_PER_REQUEST"),
    # PROVISIONED from on-demand needs the throughput.
    ({"BillingMode": "PROVISIONED"}, "ReadCapacityUnits"),
    # Nothing to update at all.
    ({}, "At least one of"),
])
def test_update_table_rejects_bad_billing(raw_ddb: Any, ddb: Any, hash_table: str,
                                          params: dict[str, Any], fragment: str) -> None:
    before = ddb.describe_table(TableName=hash_table)["Table"]
    expect_error(raw_ddb.update_table, "ValidationException", fragment,
                 TableName=hash_table, **params)
    after = ddb.describe_table(TableName=hash_table)["Table"]
    assert after["BillingModeSummary"] == before["BillingModeSummary"]


def test_update_unknown_table_is_resource_not_found(ddb: Any) -> None:
    expect_error(ddb.update_table, "ResourceNotFoundException", "not found",
                 TableName="no_such_table_ever", BillingMode="PAY_PER_REQUEST")


def test_waiters_table_exists_and_table_not_exists(ddb: Any, table_name: str) -> None:
    fast = {"Delay": 1, "MaxAttempts": 5}
    create_table(ddb, table_name)
    ddb.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig=fast)
    ddb.delete_table(TableName=table_name)
    ddb.get_waiter("table_not_exists").wait(TableName=table_name, WaiterConfig=fast)


def test_resource_api_create_and_wait(dynamodb: Any, table_name: str) -> None:
    table = dynamodb.create_table(TableName=table_name, KeySchema=S_KEY,
                                  AttributeDefinitions=S_DEF, BillingMode="PAY_PER_REQUEST")
    table.wait_until_exists()
    assert table.table_status == "ACTIVE"
    assert table.key_schema == S_KEY


INVALID_SCHEMAS: list[tuple[str, dict[str, Any], str]] = [
    ("range key first", {
        "KeySchema": [{"AttributeName": "pk", "KeyType": "RANGE"}],
        "AttributeDefinitions": S_DEF}, "HASH"),
    ("two hash keys", {
        "KeySchema": [{"AttributeName": "a", "KeyType": "HASH"},
                      {"AttributeName": "b", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "a", "AttributeType": "S"},
                                 {"AttributeName": "b", "AttributeType": "S"}]}, "RANGE"),
    ("three key elements", {
        "KeySchema": [{"AttributeName": "a", "KeyType": "HASH"},
                      {"AttributeName": "b", "KeyType": "RANGE"},
                      {"AttributeName": "c", "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": n, "AttributeType": "S"} for n in "abc"]},
     "length less than or equal to 2"),
    ("hash and range share a name", {
        "KeySchema": [{"AttributeName": "a", "KeyType": "HASH"},
                      {"AttributeName": "a", "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": "a", "AttributeType": "S"}]}, "same name"),
    ("key attribute not defined", {
        "KeySchema": S_KEY,
        "AttributeDefinitions": [{"AttributeName": "other", "AttributeType": "S"}]},
     "not defined in AttributeDefinitions"),
    ("definition not used by a key", {
        "KeySchema": S_KEY,
        "AttributeDefinitions": S_DEF + [{"AttributeName": "extra", "AttributeType": "S"}]},
     "Number of attributes in KeySchema does not exactly match"),
    ("duplicate definition", {
        "KeySchema": S_KEY,
        "AttributeDefinitions": S_DEF + S_DEF}, "Duplicate"),
    ("key of type BOOL", {
        "KeySchema": S_KEY,
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "BOOL"}]},
     "Member must satisfy enum value set"),
    ("empty key schema", {
        "KeySchema": [], "AttributeDefinitions": S_DEF}, "keySchema"),
    ("missing key schema", {"AttributeDefinitions": S_DEF},
     "Value null at 'keySchema' failed to satisfy constraint: Member must not be null"),
]


@pytest.mark.parametrize("case,spec,fragment", INVALID_SCHEMAS,
                         ids=[c[0] for c in INVALID_SCHEMAS])
def test_create_table_rejects_invalid_schema(raw_ddb: Any, ddb: Any, table_name: str,
                                             case: str, spec: dict[str, Any],
                                             fragment: str) -> None:
    expect_error(raw_ddb.create_table, "ValidationException", fragment,
                 TableName=table_name, BillingMode="PAY_PER_REQUEST", **spec)
    expect_error(ddb.describe_table, "ResourceNotFoundException", "", TableName=table_name)


@pytest.mark.parametrize("name,fragment", [
    ("ab", "length greater than or equal to 3"),
    ("x" * 256, "length less than or equal to 255"),
    ("has space", "regular expression pattern"),
    ("bad/slash", "regular expression pattern"),
])
def test_create_table_rejects_invalid_names(raw_ddb: Any, ddb: Any, name: str,
                                            fragment: str) -> None:
    # Naming rules: 3..255 characters of a-z, A-Z, 0-9, '_', '-', '.'.
    expect_error(raw_ddb.create_table, "ValidationException", fragment,
                 TableName=name, KeySchema=S_KEY, AttributeDefinitions=S_DEF,
                 BillingMode="PAY_PER_REQUEST")
    assert name not in _flatten(_all_table_names(ddb, limit=100))


def test_create_table_accepts_every_legal_name_character(ddb: Any) -> None:
    name = f"Az09_-.{uuid.uuid4().hex[:6]}"
    create_table(ddb, name)
    assert ddb.describe_table(TableName=name)["Table"]["TableName"] == name


@pytest.mark.parametrize("billing", [
    {},  # PROVISIONED by default: throughput is required
    {"BillingMode": "PAY_PER_REQUEST",
     "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}},
])
def test_create_table_rejects_inconsistent_billing(raw_ddb: Any, ddb: Any, table_name: str,
                                                   billing: dict[str, Any]) -> None:
    expect_error(raw_ddb.create_table, "ValidationException", "",
                 TableName=table_name, KeySchema=S_KEY, AttributeDefinitions=S_DEF, **billing)
    expect_error(ddb.describe_table, "ResourceNotFoundException", "", TableName=table_name)
