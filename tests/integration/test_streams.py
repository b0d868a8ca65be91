"""DynamoDB Streams through boto3's `dynamodbstreams` client, on the DynamoDB endpoint.

Cited behaviour (AWS documentation, the botocore `dynamodbstreams` model's text, and
DynamoDB's observed answers where the documentation is silent):
- "Change data capture for DynamoDB Streams": StreamSpecification on CreateTable and
  UpdateTable; a new stream descriptor on every (re-)enable; LatestStreamArn in
  DescribeTable; a PutItem or UpdateItem that changes no data writes no record; each
  record appears once, records of one item in modification order.
- UpdateTable answers "Table already has an enabled stream: TableName: T" (also for a
  view type change), "Table has no stream to disable: TableName: T", and after a
  disable DescribeTable omits StreamSpecification while LatestStreamArn/Label remain.
- API_streams_*: GetRecords at most 1,000 records (Limit above: ValidationException),
  NextShardIterator absent at the end of a closed shard, shard ids and sequence numbers
  as decimal strings; shards listed in lexical order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.streamcheck import (
    all_shards,
    event,
    latest_arn,
    read_iterator,
    read_stream,
    streams_client,
)
from tests.integration.wire import expect_error
from tests.support import create_table

VIEW_TYPES = ("KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES")


@pytest.fixture(scope="module")
def streams(server: Any) -> Any:
    return streams_client(server.url)


def stream_table(ddb: Any, name: str, view_type: str, **extra: Any) -> str:
    return create_table(ddb, name, range_key=("sk", "S"), StreamSpecification={
        "StreamEnabled": True, "StreamViewType": view_type}, **extra)


# --- StreamSpecification and the table's description ------------------------------------

@pytest.mark.parametrize("view_type", VIEW_TYPES)
def test_create_table_with_a_stream_describes_it(ddb: Any, streams: Any, table_name: str,
                                                 view_type: str) -> None:
    created = ddb.create_table(
        TableName=table_name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": view_type}
    )["TableDescription"]
    described = ddb.describe_table(TableName=table_name)["Table"]
    for description in (created, described):
        assert description["StreamSpecification"] == {"StreamEnabled": True,
                                                      "StreamViewType": view_type}
        assert description["LatestStreamArn"] == (
            f"arn:aws:dynamodb:local:000000000000:table/{table_name}/stream/"
            f"{description['LatestStreamLabel']}")
    assert created["LatestStreamArn"] == described["LatestStreamArn"]
    listed = streams.list_streams(TableName=table_name)["Streams"]
    assert listed == [{"StreamArn": created["LatestStreamArn"], "TableName": table_name,
                       "StreamLabel": created["LatestStreamLabel"]}]
    description = streams.describe_stream(StreamArn=created["LatestStreamArn"])[
        "StreamDescription"]
    assert description["StreamStatus"] == "ENABLED"
    assert description["StreamViewType"] == view_type
    assert description["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    (shard,) = description["Shards"]
    assert shard["SequenceNumberRange"]["StartingSequenceNumber"].isdecimal()
    assert "EndingSequenceNumber" not in shard["SequenceNumberRange"]


def test_a_table_without_a_stream_has_none(ddb: Any, streams: Any, hash_table: str) -> None:
    described = ddb.describe_table(TableName=hash_table)["Table"]
    assert not {"StreamSpecification", "LatestStreamArn", "LatestStreamLabel"} & set(described)
    assert streams.list_streams(TableName=hash_table)["Streams"] == []
    create_table(ddb, hash_table + "_off", StreamSpecification={"StreamEnabled": False})
    assert "LatestStreamArn" not in ddb.describe_table(TableName=hash_table + "_off")["Table"]


def test_stream_specification_rules(ddb: Any, streams: Any, hash_table: str) -> None:
    expect_error(ddb.update_table, "ValidationException",
                 f"Table has no stream to disable: TableName: {hash_table}",
                 TableName=hash_table, StreamSpecification={"StreamEnabled": False})
    expect_error(ddb.update_table, "ValidationException",
                 "One or more parameter values were invalid: If stream is being enabled then "
                 "UpdateViewType is required",
                 TableName=hash_table, StreamSpecification={"StreamEnabled": True})
    enabled = ddb.update_table(TableName=hash_table, StreamSpecification={
        "StreamEnabled": True, "StreamViewType": "KEYS_ONLY"})["TableDescription"]
    first_arn = enabled["LatestStreamArn"]
    assert enabled["StreamSpecification"]["StreamViewType"] == "KEYS_ONLY"
    for view_type in ("KEYS_ONLY", "NEW_IMAGE"):  # the same again, or another view type
        expect_error(ddb.update_table, "ValidationException",
                     f"Table already has an enabled stream: TableName: {hash_table}",
                     TableName=hash_table, StreamSpecification={
                         "StreamEnabled": True, "StreamViewType": view_type})
    expect_error(ddb.update_table, "ValidationException",
                 "One or more parameter values were invalid: If stream is being disabled, then "
                 "UpdateViewType must not be specified",
                 TableName=hash_table, StreamSpecification={
                     "StreamEnabled": False, "StreamViewType": "KEYS_ONLY"})
    expect_error(ddb.update_table, "ValidationException", "enum value set",
                 TableName=hash_table, StreamSpecification={
                     "StreamEnabled": True, "StreamViewType": "EVERYTHING"})
    disabled = ddb.update_table(TableName=hash_table,
                                StreamSpecification={"StreamEnabled": False})["TableDescription"]
    assert "StreamSpecification" not in disabled
    assert disabled["LatestStreamArn"] == first_arn  # the latest stream, now disabled
    # a changed view type is a disable, then an enable: a new stream with a new ARN
    again = ddb.update_table(TableName=hash_table, StreamSpecification={
        "StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})["TableDescription"]
    assert again["LatestStreamArn"] != first_arn
    assert again["LatestStreamLabel"] > enabled["LatestStreamLabel"]
    listed = streams.list_streams(TableName=hash_table)["Streams"]
    assert [s["StreamArn"] for s in listed] == [again["LatestStreamArn"], first_arn]
    old = streams.describe_stream(StreamArn=first_arn)["StreamDescription"]
    assert old["StreamStatus"] == "DISABLED" and old["StreamViewType"] == "KEYS_ONLY"
    assert all("EndingSequenceNumber" in s["SequenceNumberRange"] for s in old["Shards"])


def test_other_table_updates_keep_the_stream(ddb: Any, streams: Any, table_name: str) -> None:
    stream_table(ddb, table_name, "KEYS_ONLY")
    arn = latest_arn(ddb, table_name)
    ddb.update_table(TableName=table_name, DeletionProtectionEnabled=False)
    table_arn = ddb.describe_table(TableName=table_name)["Table"]["TableArn"]
    ddb.tag_resource(ResourceArn=table_arn, Tags=[{"Key": "k", "Value": "v"}])
    ddb.put_item(TableName=table_name, Item={"pk": {"S": "a"}, "sk": {"S": "1"}})
    assert latest_arn(ddb, table_name) == arn
    assert len(streams.list_streams(TableName=table_name)["Streams"]) == 1
    assert len(read_stream(streams, arn)) == 1


# --- records -------------------------------------------------------------------------------

def _writes(ddb: Any, table: str, other: str) -> list[tuple[str, dict[str, Any], Any, Any]]:
    """A run of writes to one item (and one of another table); returns the expected
    (eventName, keys, OldImage, NewImage) of each record, in order."""
    key = {"pk": {"S": "p"}, "sk": {"S": "s"}}
    k = {"pk": "p", "sk": "s"}
    ddb.put_item(TableName=table, Item={**key, "x": {"N": "2"}})
    ddb.put_item(TableName=table, Item={**key, "x": {"N": "2"}})  # the same: no record
    ddb.put_item(TableName=table, Item={**key, "y": {"SS": ["a", "b"]}})
    ddb.put_item(TableName=table, Item={**key, "y": {"SS": ["b", "a"]}})  # the same set
    ddb.update_item(TableName=table, Key=key, UpdateExpression="SET z = :z",
                    ExpressionAttributeValues={":z": {"S": "q"}})
    ddb.update_item(TableName=table, Key=key, UpdateExpression="SET z = :z",  # no change
                    ExpressionAttributeValues={":z": {"S": "q"}})
    ddb.update_item(TableName=table, Key=key, UpdateExpression="REMOVE y, z")
    ddb.delete_item(TableName=table, Key=key)
    ddb.delete_item(TableName=table, Key=key)  # an absent item: no record
    ddb.update_item(TableName=table, Key=key, UpdateExpression="SET b = :b",
                    ExpressionAttributeValues={":b": {"N": "4"}})
    ddb.batch_write_item(RequestItems={table: [{"PutRequest": {"Item": {**key, "x": {"N": "5"}}}}]})
    ddb.transact_write_items(TransactItems=[
        {"Update": {"TableName": table, "Key": key, "UpdateExpression": "SET c = :c",
                    "ExpressionAttributeValues": {":c": {"BOOL": True}}}},
        {"Put": {"TableName": other, "Item": {"pk": {"S": "o"}, "sk": {"S": "t"}}}},
        {"ConditionCheck": {"TableName": table, "Key": {"pk": {"S": "p"}, "sk": {"S": "x"}},
                            "ConditionExpression": "attribute_not_exists(pk)"}}])
    return [
        ("INSERT", k, None, {**k, "x": 2}),
        ("MODIFY", k, {**k, "x": 2}, {**k, "y": {"a", "b"}}),
        ("MODIFY", k, {**k, "y": {"a", "b"}}, {**k, "y": {"a", "b"}, "z": "q"}),
        ("MODIFY", k, {**k, "y": {"a", "b"}, "z": "q"}, k),
        ("REMOVE", k, k, None),
        ("INSERT", k, None, {**k, "b": 4}),
        ("MODIFY", k, {**k, "b": 4}, {**k, "x": 5}),
        ("MODIFY", k, {**k, "x": 5}, {**k, "x": 5, "c": True}),
    ]


@pytest.mark.parametrize("view_type", VIEW_TYPES)
def test_records_follow_each_change_once_in_order_with_the_view_types_images(
        ddb: Any, streams: Any, table_name: str, view_type: str) -> None:
    stream_table(ddb, table_name, view_type)
    other = stream_table(ddb, table_name + "_other", view_type)
    expected = _writes(ddb, table_name, other)
    records = read_stream(streams, latest_arn(ddb, table_name))
    shown_old = view_type in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES")
    shown_new = view_type in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES")
    assert [event(r) for r in records] == [
        (name, keys, old if shown_old else None, new if shown_new else None)
        for name, keys, old, new in expected]
    numbers = [r["dynamodb"]["SequenceNumber"] for r in records]
    assert numbers == sorted(numbers, key=int) and all(n.isdecimal() for n in numbers)
    assert len({r["eventID"] for r in records}) == len(records)
    for record in records:
        assert record["eventSource"] == "aws:dynamodb" and record["awsRegion"] == "local"
        assert record["eventVersion"] == "1.1"
        assert record["dynamodb"]["StreamViewType"] == view_type
        assert record["eventID"].startswith("local:")
        assert "userIdentity" not in record
    other_records = read_stream(streams, latest_arn(ddb, other))
    assert [event(r)[0] for r in other_records] == ["INSERT"]


def test_size_bytes_follows_dynamodbs_item_size(ddb: Any, streams: Any, table_name: str) -> None:
    create_table(ddb, table_name, StreamSpecification={"StreamEnabled": True,
                                                        "StreamViewType": "NEW_AND_OLD_IMAGES"})
    ddb.put_item(TableName=table_name, Item={"pk": {"S": "2"}, "Title": {"S": "aaa"}})
    ddb.put_item(TableName=table_name, Item={"pk": {"S": "2"}, "Title": {"S": "bb"}})
    records = read_stream(streams, latest_arn(ddb, table_name))
    # keys: pk(2)+"2"(1) = 3; the item: 3 + Title(5)+"aaa"(3) = 11
    assert [r["dynamodb"]["SizeBytes"] for r in records] == [3 + 11, 3 + 11 + 10]


# --- iterators -----------------------------------------------------------------------------

@pytest.fixture
def four_records(ddb: Any, table_name: str) -> Iterator[tuple[str, str]]:
    """A KEYS_ONLY stream holding four records: (stream ARN, shard id)."""
    stream_table(ddb, table_name, "KEYS_ONLY")
    for n in range(4):
        ddb.put_item(TableName=table_name, Item={"pk": {"S": f"k{n}"}, "sk": {"S": "s"}})
    arn = latest_arn(ddb, table_name)
    (shard,) = streams_client_for(ddb).describe_stream(StreamArn=arn)["StreamDescription"][
        "Shards"]
    yield arn, shard["ShardId"]


def streams_client_for(ddb: Any) -> Any:
    return streams_client(ddb.meta.endpoint_url)


def _keys(records: list[dict[str, Any]]) -> list[str]:
    return [r["dynamodb"]["Keys"]["pk"]["S"] for r in records]


def test_each_iterator_type_starts_where_documented(ddb: Any, streams: Any, table_name: str,
                                                    four_records: tuple[str, str]) -> None:
    arn, shard = four_records

    def iterator(kind: str, **extra: Any) -> str:
        return str(streams.get_shard_iterator(StreamArn=arn, ShardId=shard,
                                              ShardIteratorType=kind, **extra)["ShardIterator"])

    everything, _ = read_iterator(streams, iterator("TRIM_HORIZON"))
    assert _keys(everything) == ["k0", "k1", "k2", "k3"]
    second = everything[1]["dynamodb"]["SequenceNumber"]
    assert _keys(read_iterator(streams, iterator("AT_SEQUENCE_NUMBER", SequenceNumber=second))[0]
                 ) == ["k1", "k2", "k3"]
    assert _keys(read_iterator(streams, iterator("AFTER_SEQUENCE_NUMBER",
                                                 SequenceNumber=second))[0]) == ["k2", "k3"]
    latest = iterator("LATEST")
    page = streams.get_records(ShardIterator=latest)
    assert page["Records"] == [] and "NextShardIterator" in page  # nothing after LATEST yet
    ddb.put_item(TableName=table_name, Item={"pk": {"S": "k4"}, "sk": {"S": "s"}})
    assert _keys(streams.get_records(ShardIterator=page["NextShardIterator"])["Records"]
                 ) == ["k4"]
    assert _keys(streams.get_records(ShardIterator=latest)["Records"]) == ["k4"]
    assert iterator("TRIM_HORIZON").startswith(arn + "|1|")


def test_get_records_pages_with_limit_and_next_shard_iterator(
        streams: Any, four_records: tuple[str, str]) -> None:
    arn, shard = four_records
    iterator: str | None = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    pages = []
    for _ in range(5):
        page = streams.get_records(ShardIterator=iterator, Limit=3)
        pages.append(_keys(page["Records"]))
        iterator = page["NextShardIterator"]
    assert pages == [["k0", "k1", "k2"], ["k3"], [], [], []]
    with pytest.raises(ClientError) as error:
        streams.get_records(ShardIterator=iterator, Limit=1001)
    assert error.value.response["Error"]["Code"] == "ValidationException"
    assert "less than or equal to 1000" in error.value.response["Error"]["Message"]


def test_iterator_errors(streams: Any, four_records: tuple[str, str]) -> None:
    arn, shard = four_records
    cases: list[tuple[dict[str, Any], str]] = [
        ({"ShardIteratorType": "AT_SEQUENCE_NUMBER"}, "ValidationException"),
        ({"ShardIteratorType": "AFTER_SEQUENCE_NUMBER"}, "ValidationException"),
        ({"ShardIteratorType": "TRIM_HORIZON", "SequenceNumber": "1" * 21},
         "ValidationException"),
        ({"ShardIteratorType": "LATEST", "SequenceNumber": "x" * 21}, "ValidationException"),
        ({"ShardIteratorType": "AT_SEQUENCE_NUMBER", "SequenceNumber": "9" * 30},
         "ValidationException"),  # not a record of this shard
        ({"ShardIteratorType": "LATEST", "ShardId": "shardId-00000000000000000001-00000009"},
         "ResourceNotFoundException"),
        ({"ShardIteratorType": "LATEST", "StreamArn": "x" * 40}, "ValidationException"),
        ({"ShardIteratorType": "LATEST", "StreamArn": arn[:-3] + "999"},
         "ResourceNotFoundException"),
        ({"ShardIteratorType": "LATEST", "StreamArn": arn.replace(":local:", ":elsewhere:")},
         "ResourceNotFoundException"),
    ]
    for extra, code in cases:
        request = {"StreamArn": arn, "ShardId": shard, **extra}
        with pytest.raises(ClientError) as error:
            streams.get_shard_iterator(**request)
        assert error.value.response["Error"]["Code"] == code, request
    good = streams.get_shard_iterator(StreamArn=arn, ShardId=shard,
                                      ShardIteratorType="LATEST")["ShardIterator"]
    for bad in ("x" * 60, good[:-4] + "AAAA", good.replace("|1|", "|2|")):
        with pytest.raises(ClientError) as error:
            streams.get_records(ShardIterator=bad)
        assert error.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as error:
        streams.describe_stream(StreamArn="x" * 40)
    assert error.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as error:
        streams.describe_stream(StreamArn=arn[:-3] + "999")
    assert error.value.response["Error"]["Message"] == (
        f"Requested resource not found: Stream: {arn[:-3] + '999'} not found")


def test_list_streams_pages(ddb: Any, streams: Any, table_name: str) -> None:
    names = [stream_table(ddb, f"{table_name}_{n}", "KEYS_ONLY") for n in range(3)]
    seen: list[str] = []
    kwargs: dict[str, Any] = {"Limit": 1}
    for _ in range(1000):
        page = streams.list_streams(**kwargs)
        assert len(page["Streams"]) <= 1
        seen += [s["TableName"] for s in page["Streams"]]
        if "LastEvaluatedStreamArn" not in page:
            break
        kwargs["ExclusiveStartStreamArn"] = page["LastEvaluatedStreamArn"]
    assert [n for n in seen if n in names] == names  # each once, in table order
    expect_error(streams.list_streams, "ValidationException", "less than or equal to 100",
                 Limit=101)
    expect_error(streams.list_streams, "ValidationException", "",
                 ExclusiveStartStreamArn="kossaapaaasdafsdaasdasdasdasasdasfadfadfa")


def test_describe_stream_with_a_start_shard_beyond_every_shard(
        streams: Any, four_records: tuple[str, str]) -> None:
    arn, _shard = four_records
    description = streams.describe_stream(
        StreamArn=arn, ExclusiveStartShardId="zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz")
    assert description["StreamDescription"]["Shards"] == []
    assert len(all_shards(streams, arn)) == 1


def test_a_deleted_tables_stream_stays_readable_and_disabled(
        ddb: Any, streams: Any, table_name: str) -> None:
    stream_table(ddb, table_name, "NEW_IMAGE")
    ddb.put_item(TableName=table_name, Item={"pk": {"S": "a"}, "sk": {"S": "b"}})
    arn = latest_arn(ddb, table_name)
    deleted = ddb.delete_table(TableName=table_name)["TableDescription"]
    assert deleted["LatestStreamArn"] == arn
    description = streams.describe_stream(StreamArn=arn)["StreamDescription"]
    assert description["StreamStatus"] == "DISABLED" and description["TableName"] == table_name
    assert [event(r)[0] for r in read_stream(streams, arn)] == ["INSERT"]
    (shard,) = description["Shards"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    page = streams.get_records(ShardIterator=iterator)
    assert len(page["Records"]) == 1 and "NextShardIterator" not in page  # closed, read
    # a table of the same name gets a stream of its own
    stream_table(ddb, table_name, "NEW_IMAGE")
    assert latest_arn(ddb, table_name) != arn
    assert len(streams.list_streams(TableName=table_name)["Streams"]) == 2
