"""Tags, DescribeLimits and DescribeEndpoints through boto3."""

from __future__ import annotations

from typing import Any

from tests.integration.wire import expect_error


def _arn(ddb: Any, table: str) -> str:
    return str(ddb.describe_table(TableName=table)["Table"]["TableArn"])


def test_tag_list_untag(ddb: Any, hash_table: str) -> None:
    arn = _arn(ddb, hash_table)
    assert ddb.list_tags_of_resource(ResourceArn=arn)["Tags"] == []
    ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "team", "Value": "core"},
                                            {"Key": "env", "Value": "test"}])
    ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "env", "Value": "prod"}])
    tags = {t["Key"]: t["Value"] for t in ddb.list_tags_of_resource(ResourceArn=arn)["Tags"]}
    assert tags == {"team": "core", "env": "prod"}
    ddb.untag_resource(ResourceArn=arn, TagKeys=["team", "absent"])
    assert ddb.list_tags_of_resource(ResourceArn=arn)["Tags"] == [{"Key": "env", "Value": "prod"}]


def test_tags_given_at_create_table(ddb: Any, table_name: str) -> None:
    ddb.create_table(TableName=table_name, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     Tags=[{"Key": "owner", "Value": "me"}])
    tags = ddb.list_tags_of_resource(ResourceArn=_arn(ddb, table_name))["Tags"]
    assert tags == [{"Key": "owner", "Value": "me"}]


def test_tags_survive_other_table_changes(ddb: Any, hash_table: str) -> None:
    arn = _arn(ddb, hash_table)
    ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "k", "Value": "v"}])
    ddb.update_table(TableName=hash_table, DeletionProtectionEnabled=False)
    assert ddb.list_tags_of_resource(ResourceArn=arn)["Tags"] == [{"Key": "k", "Value": "v"}]


def test_bad_tag_requests(ddb: Any, hash_table: str) -> None:
    arn = _arn(ddb, hash_table)
    missing = arn.replace(hash_table, "no_such_table")
    expect_error(ddb.tag_resource, "ResourceNotFoundException", "", ResourceArn=missing,
                 Tags=[{"Key": "a", "Value": "b"}])
    expect_error(ddb.list_tags_of_resource, "ResourceNotFoundException", "", ResourceArn=missing)
    expect_error(ddb.tag_resource, "ValidationException", "", ResourceArn="not-an-arn",
                 Tags=[{"Key": "a", "Value": "b"}])
    expect_error(ddb.tag_resource, "ValidationException", "exceeds the limit of 50",
                 ResourceArn=arn, Tags=[{"Key": f"k{n}", "Value": "v"} for n in range(51)])
    expect_error(ddb.tag_resource, "ValidationException", "aws:", ResourceArn=arn,
                 Tags=[{"Key": "aws:reserved", "Value": "v"}])


def test_describe_limits(ddb: Any) -> None:
    limits = ddb.describe_limits()
    assert limits["AccountMaxReadCapacityUnits"] == 80000
    assert limits["AccountMaxWriteCapacityUnits"] == 80000
    assert limits["TableMaxReadCapacityUnits"] == 40000
    assert limits["TableMaxWriteCapacityUnits"] == 40000


def test_describe_endpoints(ddb: Any, server: Any) -> None:
    (endpoint,) = ddb.describe_endpoints()["Endpoints"]
    assert endpoint["Address"] == f"127.0.0.1:{server.port}"
    assert endpoint["CachePeriodInMinutes"] == 1440
