"""No CreateTable or UpdateTable member is accepted and dropped.

The test walks botocore's copy of DynamoDB's service model: every member of CreateTable's
and UpdateTable's input (and of their index entries) must have a case below, and each case
either reads the option back from DescribeTable (or ListTagsOfResource) the way DynamoDB
describes it, or expects a ValidationException that says why Atoll refuses it. A member
that botocore adds later fails `test_every_model_member_has_a_case` until it is classified.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError

from tests.integration.streamcheck import streams_client
from tests.support import ServerProcess, client

pytestmark = pytest.mark.beside_others  # one node at a time, nothing timed (conftest.py)

Check = Callable[[dict[str, Any], Any, str], None]
REFUSED = "refused"

_counter = iter(range(1, 10_000))


def _name() -> str:
    return f"opts{next(_counter)}"


def _model_members(operation: str) -> set[str]:
    """Top-level input members, and those of index entries and index update actions."""
    model = botocore.session.get_session().get_service_model("dynamodb")
    shape = model.operation_model(operation).input_shape
    members = set(shape.members)
    nested = {"GlobalSecondaryIndexes": "GlobalSecondaryIndexes",
              "GlobalSecondaryIndexUpdates": "GlobalSecondaryIndexUpdates"}
    for member, prefix in nested.items():
        if member not in shape.members:
            continue
        entry = shape.members[member].member
        if member == "GlobalSecondaryIndexUpdates":
            for action, action_shape in entry.members.items():
                members |= {f"{prefix}.{action}.{m}" for m in action_shape.members}
        else:
            members |= {f"{prefix}.{m}" for m in entry.members}
    return members


@pytest.fixture(scope="module")
def ddb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    server = ServerProcess(in_memory=True, extra=["--region", "us-west",
                                                  "--account-id", "123456789012"]).start()
    try:
        yield client(server.url)
    finally:
        server.stop()


BASE: dict[str, Any] = {
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
    "BillingMode": "PAY_PER_REQUEST",
}
WITH_SORT: dict[str, Any] = {
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                  {"AttributeName": "sk", "KeyType": "RANGE"}],
    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                             {"AttributeName": "sk", "AttributeType": "S"}],
    "BillingMode": "PAY_PER_REQUEST",
}
PROVISIONED = {"BillingMode": "PROVISIONED",
               "ProvisionedThroughput": {"ReadCapacityUnits": 3, "WriteCapacityUnits": 4}}


def _gsi(**extra: Any) -> dict[str, Any]:
    return {"AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                     {"AttributeName": "g", "AttributeType": "S"}],
            "GlobalSecondaryIndexes": [{"IndexName": "byG",
                                        "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                        "Projection": {"ProjectionType": "ALL"}, **extra}]}


def _index(description: dict[str, Any]) -> dict[str, Any]:
    return dict(description["GlobalSecondaryIndexes"][0])


def has(path: str, expected: Any) -> Check:
    def check(description: dict[str, Any], _ddb: Any, _name: str) -> None:
        value: Any = description
        for part in path.split("."):
            value = value[int(part)] if isinstance(value, list) else value[part]
        assert value == expected, (path, value)
    return check


def lacks(member: str) -> Check:
    def check(description: dict[str, Any], _ddb: Any, _name: str) -> None:
        assert member not in description, description.get(member)
    return check


def tags_are(expected: dict[str, str]) -> Check:
    def check(description: dict[str, Any], ddb: Any, _name: str) -> None:
        listed = ddb.list_tags_of_resource(ResourceArn=description["TableArn"])["Tags"]
        assert {t["Key"]: t["Value"] for t in listed} == expected
    return check


# member -> [(CreateTable arguments beyond BASE, check or REFUSED + message part)]
CREATE_CASES: dict[str, list[tuple[dict[str, Any], Any]]] = {
    "TableName": [({}, has("TableStatus", "ACTIVE"))],
    "KeySchema": [(WITH_SORT, has("KeySchema.1", {"AttributeName": "sk", "KeyType": "RANGE"}))],
    "AttributeDefinitions": [({}, has("AttributeDefinitions",
                                      [{"AttributeName": "pk", "AttributeType": "S"}]))],
    "LocalSecondaryIndexes": [({**WITH_SORT, "AttributeDefinitions": [
        *WITH_SORT["AttributeDefinitions"], {"AttributeName": "l", "AttributeType": "N"}],
        "LocalSecondaryIndexes": [{"IndexName": "byL", "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "l", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"}}]},
        has("LocalSecondaryIndexes.0.IndexName", "byL"))],
    "GlobalSecondaryIndexes": [(_gsi(), has("GlobalSecondaryIndexes.0.IndexName", "byG"))],
    "GlobalSecondaryIndexes.IndexName": [(_gsi(), has("GlobalSecondaryIndexes.0.IndexName",
                                                      "byG"))],
    "GlobalSecondaryIndexes.KeySchema": [(_gsi(), has(
        "GlobalSecondaryIndexes.0.KeySchema", [{"AttributeName": "g", "KeyType": "HASH"}]))],
    "GlobalSecondaryIndexes.Projection": [(_gsi(), has(
        "GlobalSecondaryIndexes.0.Projection", {"ProjectionType": "ALL"}))],
    "GlobalSecondaryIndexes.ProvisionedThroughput": [(
        {**PROVISIONED, **_gsi(ProvisionedThroughput={"ReadCapacityUnits": 5,
                                                      "WriteCapacityUnits": 6})},
        has("GlobalSecondaryIndexes.0.ProvisionedThroughput.WriteCapacityUnits", 6))],
    "GlobalSecondaryIndexes.OnDemandThroughput": [
        (_gsi(OnDemandThroughput={"MaxReadRequestUnits": 50}),
         has("GlobalSecondaryIndexes.0.OnDemandThroughput",
             {"MaxReadRequestUnits": 50, "MaxWriteRequestUnits": -1})),
        ({**PROVISIONED, **_gsi(ProvisionedThroughput={"ReadCapacityUnits": 1,
                                                       "WriteCapacityUnits": 1},
                                OnDemandThroughput={"MaxReadRequestUnits": 50})},
         (REFUSED, "PAY_PER_REQUEST"))],
    "GlobalSecondaryIndexes.WarmThroughput": [
        (_gsi(WarmThroughput={"ReadUnitsPerSecond": 15000, "WriteUnitsPerSecond": 5000}),
         has("GlobalSecondaryIndexes.0.WarmThroughput",
             {"ReadUnitsPerSecond": 15000, "WriteUnitsPerSecond": 5000, "Status": "ACTIVE"}))],
    "BillingMode": [({}, has("BillingModeSummary.BillingMode", "PAY_PER_REQUEST"))],
    "ProvisionedThroughput": [(PROVISIONED, has("ProvisionedThroughput.WriteCapacityUnits", 4))],
    "StreamSpecification": [
        ({"StreamSpecification": {"StreamEnabled": False}}, lacks("StreamSpecification")),
        ({"StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}},
         has("StreamSpecification", {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})),
        ({"StreamSpecification": {"StreamEnabled": True}}, (REFUSED, "ViewType is required"))],
    "SSESpecification": [
        ({"SSESpecification": {"Enabled": False}}, lacks("SSEDescription")),
        ({"SSESpecification": {"Enabled": True, "SSEType": "KMS"}}, (REFUSED, "KMS")),
        ({"SSESpecification": {"Enabled": True, "SSEType": "KMS",
                               "KMSMasterKeyId": "alias/mine"}}, (REFUSED, "KMS"))],
    "Tags": [({"Tags": [{"Key": "team", "Value": "blue"}]}, tags_are({"team": "blue"}))],
    "TableClass": [
        ({"TableClass": "STANDARD_INFREQUENT_ACCESS"},
         has("TableClassSummary", {"TableClass": "STANDARD_INFREQUENT_ACCESS"})),
        ({"TableClass": "STANDARD"}, has("TableClassSummary", {"TableClass": "STANDARD"}))],
    "DeletionProtectionEnabled": [({"DeletionProtectionEnabled": True},
                                   has("DeletionProtectionEnabled", True))],
    "WarmThroughput": [({"WarmThroughput": {"ReadUnitsPerSecond": 13000,
                                            "WriteUnitsPerSecond": 4500}},
                        has("WarmThroughput", {"ReadUnitsPerSecond": 13000,
                                               "WriteUnitsPerSecond": 4500, "Status": "ACTIVE"}))],
    "ResourcePolicy": [({"ResourcePolicy": '{"Version": "2012-10-17", "Statement": []}'},
                        (REFUSED, "resource-based policies"))],
    "OnDemandThroughput": [
        ({"OnDemandThroughput": {"MaxReadRequestUnits": 100, "MaxWriteRequestUnits": 20}},
         has("OnDemandThroughput", {"MaxReadRequestUnits": 100, "MaxWriteRequestUnits": 20})),
        ({**PROVISIONED, "OnDemandThroughput": {"MaxReadRequestUnits": 100}},
         (REFUSED, "PAY_PER_REQUEST")),
        ({"OnDemandThroughput": {"MaxReadRequestUnits": 0}}, (REFUSED, "at least 1"))],
    "GlobalTableSourceArn": [({"GlobalTableSourceArn":
                               "arn:aws:dynamodb:us-east-1:123456789012:table/source"},
                              (REFUSED, "global table source"))],
    "GlobalTableSettingsReplicationMode": [
        ({"GlobalTableSettingsReplicationMode": "ENABLED"},
         has("GlobalTableSettingsReplicationMode", "ENABLED")),
        ({"GlobalTableSettingsReplicationMode": "DISABLED"}, (REFUSED, "always replicate"))],
    "VectorIndexes": [({"VectorIndexes": [{
        "IndexName": "vec", "VectorAttribute": {"AttributeName": "v"},
        "Projection": {"ProjectionType": "ALL"}, "Dimensions": 3,
        "DistanceFunction": "COSINE"}]}, (REFUSED, "vector indexes"))],
}


def _create(ddb: Any, name: str, extra: dict[str, Any]) -> dict[str, Any]:
    arguments = {**BASE, **extra}
    if "GlobalSecondaryIndexes" in extra or "LocalSecondaryIndexes" in extra:
        arguments["AttributeDefinitions"] = extra["AttributeDefinitions"]
    return dict(ddb.create_table(TableName=name, **arguments)["TableDescription"])


def _expect_refused(call: Callable[[], Any], part: str) -> None:
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response["Error"]
    assert error["Code"] == "ValidationException", error
    assert part in error["Message"], error["Message"]


CREATE_PARAMS = [(m, i) for m, cases in CREATE_CASES.items() for i in range(len(cases))]


@pytest.mark.parametrize(("member", "index"), CREATE_PARAMS,
                         ids=[f"{m}-{i}" for m, i in CREATE_PARAMS])
def test_create_table_member_is_described_or_refused(ddb: Any, member: str, index: int) -> None:
    extra, expectation = CREATE_CASES[member][index]
    name = _name()
    if isinstance(expectation, tuple):
        _expect_refused(lambda: _create(ddb, name, extra), expectation[1])
        assert name not in ddb.list_tables()["TableNames"]
        return
    created = _create(ddb, name, extra)
    expectation(created, ddb, name)  # the CreateTable answer describes it...
    expectation(dict(ddb.describe_table(TableName=name)["Table"]), ddb, name)  # ...and later


def _update_gsi(action: str, **spec: Any) -> dict[str, Any]:
    return {"GlobalSecondaryIndexUpdates": [{action: {"IndexName": "byG", **spec}}]}


# member -> [(CreateTable arguments beyond BASE, UpdateTable arguments, check or REFUSED)]
UPDATE_CASES: dict[str, list[tuple[dict[str, Any], dict[str, Any], Any]]] = {
    "TableName": [({}, {"DeletionProtectionEnabled": False}, has("TableStatus", "ACTIVE"))],
    "AttributeDefinitions": [({}, {
        "AttributeDefinitions": [{"AttributeName": "g", "AttributeType": "S"}],
        **_update_gsi("Create", KeySchema=[{"AttributeName": "g", "KeyType": "HASH"}],
                      Projection={"ProjectionType": "ALL"})},
        has("AttributeDefinitions.1", {"AttributeName": "g", "AttributeType": "S"}))],
    "BillingMode": [({}, {**PROVISIONED}, has("BillingModeSummary.BillingMode", "PROVISIONED"))],
    "ProvisionedThroughput": [(PROVISIONED, {"ProvisionedThroughput": {
        "ReadCapacityUnits": 7, "WriteCapacityUnits": 8}},
        has("ProvisionedThroughput.ReadCapacityUnits", 7))],
    "GlobalSecondaryIndexUpdates": [(_gsi(), _update_gsi("Delete"),
                                     lacks("GlobalSecondaryIndexes"))],
    "GlobalSecondaryIndexUpdates.Create.IndexName": [({}, {
        "AttributeDefinitions": [{"AttributeName": "g", "AttributeType": "S"}],
        **_update_gsi("Create", KeySchema=[{"AttributeName": "g", "KeyType": "HASH"}],
                      Projection={"ProjectionType": "ALL"})},
        has("GlobalSecondaryIndexes.0.IndexName", "byG"))],
    "GlobalSecondaryIndexUpdates.Create.KeySchema": [({}, {
        "AttributeDefinitions": [{"AttributeName": "g", "AttributeType": "S"}],
        **_update_gsi("Create", KeySchema=[{"AttributeName": "g", "KeyType": "HASH"}],
                      Projection={"ProjectionType": "KEYS_ONLY"})},
        has("GlobalSecondaryIndexes.0.KeySchema.0.AttributeName", "g"))],
    "GlobalSecondaryIndexUpdates.Create.Projection": [({}, {
        "AttributeDefinitions": [{"AttributeName": "g", "AttributeType": "S"}],
        **_update_gsi("Create", KeySchema=[{"AttributeName": "g", "KeyType": "HASH"}],
                      Projection={"ProjectionType": "KEYS_ONLY"})},
        has("GlobalSecondaryIndexes.0.Projection.ProjectionType", "KEYS_ONLY"))],
    "GlobalSecondaryIndexUpdates.Create.ProvisionedThroughput": [(PROVISIONED, {
        "AttributeDefinitions": [{"AttributeName": "g", "AttributeType": "S"}],
        **_update_gsi("Create", KeySchema=[{"AttributeName": "g", "KeyType": "HASH"}],
                      Projection={"ProjectionType": "ALL"},
                      ProvisionedThroughput={"ReadCapacityUnits": 2, "WriteCapacityUnits": 9})},
        has("GlobalSecondaryIndexes.0.ProvisionedThroughput.WriteCapacityUnits", 9))],
    "GlobalSecondaryIndexUpdates.Create.OnDemandThroughput": [({}, {
        "AttributeDefinitions": [{"AttributeName": "g", "AttributeType": "S"}],
        **_update_gsi("Create", KeySchema=[{"AttributeName": "g", "KeyType": "HASH"}],
                      Projection={"ProjectionType": "ALL"},
                      OnDemandThroughput={"MaxWriteRequestUnits": 70})},
        has("GlobalSecondaryIndexes.0.OnDemandThroughput",
            {"MaxReadRequestUnits": -1, "MaxWriteRequestUnits": 70}))],
    "GlobalSecondaryIndexUpdates.Create.WarmThroughput": [({}, {
        "AttributeDefinitions": [{"AttributeName": "g", "AttributeType": "S"}],
        **_update_gsi("Create", KeySchema=[{"AttributeName": "g", "KeyType": "HASH"}],
                      Projection={"ProjectionType": "ALL"},
                      WarmThroughput={"ReadUnitsPerSecond": 20000})},
        has("GlobalSecondaryIndexes.0.WarmThroughput.ReadUnitsPerSecond", 20000))],
    "GlobalSecondaryIndexUpdates.Update.IndexName": [(
        {**PROVISIONED, **_gsi(ProvisionedThroughput={"ReadCapacityUnits": 1,
                                                      "WriteCapacityUnits": 1})},
        _update_gsi("Update", ProvisionedThroughput={"ReadCapacityUnits": 11,
                                                     "WriteCapacityUnits": 12}),
        has("GlobalSecondaryIndexes.0.ProvisionedThroughput.ReadCapacityUnits", 11))],
    "GlobalSecondaryIndexUpdates.Update.ProvisionedThroughput": [(
        {**PROVISIONED, **_gsi(ProvisionedThroughput={"ReadCapacityUnits": 1,
                                                      "WriteCapacityUnits": 1})},
        _update_gsi("Update", ProvisionedThroughput={"ReadCapacityUnits": 11,
                                                     "WriteCapacityUnits": 12}),
        has("GlobalSecondaryIndexes.0.ProvisionedThroughput.WriteCapacityUnits", 12))],
    "GlobalSecondaryIndexUpdates.Update.OnDemandThroughput": [(
        _gsi(), _update_gsi("Update", OnDemandThroughput={"MaxReadRequestUnits": 33}),
        has("GlobalSecondaryIndexes.0.OnDemandThroughput.MaxReadRequestUnits", 33))],
    "GlobalSecondaryIndexUpdates.Update.WarmThroughput": [(
        _gsi(), _update_gsi("Update", WarmThroughput={"WriteUnitsPerSecond": 9000}),
        has("GlobalSecondaryIndexes.0.WarmThroughput",
            {"WriteUnitsPerSecond": 9000, "Status": "ACTIVE"}))],
    "GlobalSecondaryIndexUpdates.Delete.IndexName": [(_gsi(), _update_gsi("Delete"),
                                                      lacks("GlobalSecondaryIndexes"))],
    "StreamSpecification": [({}, {"StreamSpecification": {"StreamEnabled": True,
                                                          "StreamViewType": "KEYS_ONLY"}},
                             has("StreamSpecification.StreamViewType", "KEYS_ONLY"))],
    "SSESpecification": [
        ({}, {"SSESpecification": {"Enabled": True, "SSEType": "KMS"}}, (REFUSED, "KMS")),
        ({}, {"SSESpecification": {"Enabled": False}}, lacks("SSEDescription"))],
    "ReplicaUpdates": [
        ({}, {"ReplicaUpdates": [{"Create": {"RegionName": "us-west"}}]},
         (REFUSED, "already a replica")),
        ({}, {"ReplicaUpdates": [{"Create": {"RegionName": "eu-north-1"}}]},
         (REFUSED, "not a region of this Atoll cluster")),
        ({}, {"ReplicaUpdates": [{"Delete": {"RegionName": "us-west"}}]},
         (REFUSED, "Cannot remove region us-west")),
        ({}, {"ReplicaUpdates": [{"Update": {"RegionName": "us-west",
                                             "TableClassOverride": "STANDARD"}}]},
         (REFUSED, "per-region settings")),
        ({}, {"ReplicaUpdates": [{"Disassociate": {
            "RegionName": "us-west", "DisassociationMode": "WAIT_FOR_REPLICATION"}}]},
         (REFUSED, "Cannot remove region us-west"))],
    "TableClass": [({}, {"TableClass": "STANDARD_INFREQUENT_ACCESS"},
                    has("TableClassSummary.TableClass", "STANDARD_INFREQUENT_ACCESS"))],
    "DeletionProtectionEnabled": [({}, {"DeletionProtectionEnabled": True},
                                   has("DeletionProtectionEnabled", True))],
    "MultiRegionConsistency": [
        ({}, {"MultiRegionConsistency": "EVENTUAL"}, has("MultiRegionConsistency", "EVENTUAL")),
        ({}, {"MultiRegionConsistency": "STRONG"}, (REFUSED, "asynchronously"))],
    "GlobalTableWitnessUpdates": [({}, {"GlobalTableWitnessUpdates": [
        {"Create": {"RegionName": "us-west"}}]}, (REFUSED, "witnesses"))],
    "OnDemandThroughput": [({}, {"OnDemandThroughput": {"MaxReadRequestUnits": 9}},
                            has("OnDemandThroughput", {"MaxReadRequestUnits": 9,
                                                       "MaxWriteRequestUnits": -1}))],
    "WarmThroughput": [({}, {"WarmThroughput": {"ReadUnitsPerSecond": 12500}},
                        has("WarmThroughput.ReadUnitsPerSecond", 12500))],
    "GlobalTableSettingsReplicationMode": [
        ({}, {"GlobalTableSettingsReplicationMode": "ENABLED"},
         has("GlobalTableSettingsReplicationMode", "ENABLED")),
        ({}, {"GlobalTableSettingsReplicationMode": "ENABLED_WITH_OVERRIDES"},
         (REFUSED, "always replicate"))],
    "DisassociationProtectionEnabled": [({}, {"DisassociationProtectionEnabled": True},
                                         has("DisassociationProtectionEnabled", True))],
    "VectorIndexUpdates": [({}, {"VectorIndexUpdates": [{"Delete": {"IndexName": "vec"}}]},
                            (REFUSED, "vector indexes"))],
}

UPDATE_PARAMS = [(m, i) for m, cases in UPDATE_CASES.items() for i in range(len(cases))]


@pytest.mark.parametrize(("member", "index"), UPDATE_PARAMS,
                         ids=[f"{m}-{i}" for m, i in UPDATE_PARAMS])
def test_update_table_member_is_described_or_refused(ddb: Any, member: str, index: int) -> None:
    create_extra, update, expectation = UPDATE_CASES[member][index]
    name = _name()
    _create(ddb, name, create_extra)
    before = dict(ddb.describe_table(TableName=name)["Table"])
    if isinstance(expectation, tuple):
        _expect_refused(lambda: ddb.update_table(TableName=name, **update), expectation[1])
        after = dict(ddb.describe_table(TableName=name)["Table"])
        assert after == before  # a refused update changes nothing
        return
    answered = dict(ddb.update_table(TableName=name, **update)["TableDescription"])
    expectation(answered, ddb, name)
    expectation(dict(ddb.describe_table(TableName=name)["Table"]), ddb, name)


def test_every_model_member_has_a_case() -> None:
    assert _model_members("CreateTable") == set(CREATE_CASES)
    assert _model_members("UpdateTable") == set(UPDATE_CASES)


def test_table_class_update_records_when(ddb: Any) -> None:
    name = _name()
    _create(ddb, name, {"TableClass": "STANDARD"})
    assert "LastUpdateDateTime" not in ddb.describe_table(TableName=name)["Table"][
        "TableClassSummary"]
    ddb.update_table(TableName=name, TableClass="STANDARD_INFREQUENT_ACCESS")
    summary = ddb.describe_table(TableName=name)["Table"]["TableClassSummary"]
    assert summary["TableClass"] == "STANDARD_INFREQUENT_ACCESS"
    assert "LastUpdateDateTime" in summary


def test_arns_carry_the_region_and_the_configured_account(ddb: Any) -> None:
    name = _name()
    _create(ddb, name, {**_gsi(), "StreamSpecification": {"StreamEnabled": True,
                                                         "StreamViewType": "KEYS_ONLY"}})
    table = ddb.describe_table(TableName=name)["Table"]
    assert table["TableArn"] == f"arn:aws:dynamodb:us-west:123456789012:table/{name}"
    assert table["GlobalSecondaryIndexes"][0]["IndexArn"] == \
        f"arn:aws:dynamodb:us-west:123456789012:table/{name}/index/byG"
    stream_arn = table["LatestStreamArn"]
    assert stream_arn == \
        f"arn:aws:dynamodb:us-west:123456789012:table/{name}/stream/{table['LatestStreamLabel']}"
    streams = streams_client(ddb.meta.endpoint_url)
    assert streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["StreamArn"] == \
        stream_arn
    assert {"StreamArn": stream_arn, "TableName": name,
            "StreamLabel": table["LatestStreamLabel"]} in \
        streams.list_streams(TableName=name)["Streams"]
    # the ARN names the table in other calls
    assert ddb.describe_table(TableName=table["TableArn"])["Table"]["TableName"] == name


def test_a_lone_node_describes_its_tables_as_global_tables_of_its_region(ddb: Any) -> None:
    name = _name()
    _create(ddb, name, {})
    described = ddb.describe_global_table(GlobalTableName=name)["GlobalTableDescription"]
    assert described["GlobalTableName"] == name
    assert described["GlobalTableStatus"] == "ACTIVE"
    assert described["ReplicationGroup"] == [{"RegionName": "us-west", "ReplicaStatus": "ACTIVE"}]
    assert described["GlobalTableArn"] == f"arn:aws:dynamodb::123456789012:global-table/{name}"
    listed = ddb.list_global_tables(RegionName="us-west")["GlobalTables"]
    assert {"GlobalTableName": name, "ReplicationGroup": [{"RegionName": "us-west"}]} in listed
    assert ddb.list_global_tables(RegionName="eu-west")["GlobalTables"] == []
    with pytest.raises(ClientError) as caught:
        ddb.describe_global_table(GlobalTableName="no-such-table")
    assert caught.value.response["Error"]["Code"] == "GlobalTableNotFoundException"


def test_list_global_tables_pages(ddb: Any) -> None:
    names = sorted(ddb.list_tables(Limit=100)["TableNames"])
    assert len(names) >= 3
    page = ddb.list_global_tables(Limit=2)
    assert [t["GlobalTableName"] for t in page["GlobalTables"]] == names[:2]
    assert page["LastEvaluatedGlobalTableName"] == names[1]
    rest = ddb.list_global_tables(ExclusiveStartGlobalTableName=names[1], Limit=98)
    assert [t["GlobalTableName"] for t in rest["GlobalTables"]] == names[2:100]
