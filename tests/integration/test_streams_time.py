"""DynamoDB Streams over time: iterator expiry, 24-hour retention, shard rollover, disabled
streams, TTL deletions and restarts, on live servers whose clock the test moves
(`atoll serve --settable-clock`, POST /_atoll/clock): no test waits for time to pass.
Each runs on a node of each storage (tests/conftest.py STORAGES): SQLite, and PostgreSQL,
where the upkeep (trims, rollovers, drops) runs on the node holding the region's lease.

Cited behaviour (botocore's `dynamodbstreams` model text and the Developer Guide):
- "A shard iterator expires 15 minutes after it is returned to the requester"
  (ExpiredIteratorException).
- "All data in DynamoDB Streams is subject to a 24 hour lifetime"; reading a trimmed
  position gives TrimmedDataAccessException, whether the iterator was taken before the
  trim or asks for a trimmed sequence number.
- "If you disable a stream on a table, the data in the stream will continue to be
  readable for 24 hours"; "If you disable a stream, any shards that are open will be
  closed"; a closed shard has an EndingSequenceNumber and its last GetRecords has no
  NextShardIterator; shards have a lineage (ParentShardId).
- "DynamoDB Streams and Time to Live": items deleted by TTL carry userIdentity
  {type: Service, principalId: dynamodb.amazonaws.com}.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import STORAGES
from tests.integration.streamcheck import (
    advance_clock,
    all_shards,
    event,
    latest_arn,
    read_iterator,
    read_stream,
    streams_client,
)
from tests.integration.wire import expect_error
from tests.pg import fresh_schema_dsn
from tests.support import ServerProcess, client, create_table

pytestmark = pytest.mark.beside_others  # one node at a time, nothing timed (conftest.py)

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
TABLE = "timed"
POLL_BOUND_S = 15.0


@pytest.fixture(params=STORAGES)
def storage(request: pytest.FixtureRequest) -> list[str]:
    """The node's storage arguments: none (SQLite), or a new schema of the session's
    PostgreSQL server."""
    if request.param == "postgresql":
        return ["--storage", fresh_schema_dsn(request.getfixturevalue("pg_server"))]
    return []


@pytest.fixture
def node(storage: list[str]) -> Iterator[ServerProcess]:
    process = ServerProcess(in_memory=not storage, extra=["--settable-clock", *storage])
    process.start()
    yield process
    process.stop()


def _table(ddb: Any, view_type: str = "NEW_AND_OLD_IMAGES") -> str:
    return create_table(ddb, TABLE, StreamSpecification={"StreamEnabled": True,
                                                          "StreamViewType": view_type})


def _put(ddb: Any, key: str, **attributes: Any) -> None:
    ddb.put_item(TableName=TABLE, Item={"pk": {"S": key}, **attributes})


def _keys(records: list[dict[str, Any]]) -> list[str]:
    return [r["dynamodb"]["Keys"]["pk"]["S"] for r in records]


def _iterator(streams: Any, arn: str, shard: str, kind: str = "TRIM_HORIZON",
              **extra: Any) -> str:
    return str(streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType=kind,
                                          **extra)["ShardIterator"])


def test_iterators_expire_after_15_minutes(node: ServerProcess) -> None:
    ddb, streams = client(node.url), streams_client(node.url)
    _table(ddb)
    _put(ddb, "a")
    _put(ddb, "b")
    arn = latest_arn(ddb, TABLE)
    (shard,) = all_shards(streams, arn)
    page = streams.get_records(ShardIterator=_iterator(streams, arn, shard["ShardId"]), Limit=1)
    assert _keys(page["Records"]) == ["a"]
    advance_clock(node.url, 15 * MINUTE_MS - 1000)
    second = streams.get_records(ShardIterator=page["NextShardIterator"], Limit=1)
    assert _keys(second["Records"]) == ["b"]  # still valid at 14:59
    advance_clock(node.url, 2000)
    expect_error(streams.get_records, "ExpiredIteratorException", "15 minutes",
                 ShardIterator=page["NextShardIterator"])
    # each NextShardIterator is issued anew: the one from 2 s ago still works
    assert streams.get_records(ShardIterator=second["NextShardIterator"])["Records"] == []
    fresh = _iterator(streams, arn, shard["ShardId"])
    assert _keys(read_iterator(streams, fresh)[0]) == ["a", "b"]


def test_records_are_trimmed_after_24_hours(node: ServerProcess) -> None:
    ddb, streams = client(node.url), streams_client(node.url)
    _table(ddb)
    _put(ddb, "old")
    advance_clock(node.url, 24 * HOUR_MS - 5 * MINUTE_MS)
    _put(ddb, "new")
    arn = latest_arn(ddb, TABLE)
    first = all_shards(streams, arn)[0]  # the shard rolled over meanwhile: "old" is here
    taken = _iterator(streams, arn, first["ShardId"])  # at "old", 23 h 55 min old
    old_number = read_iterator(streams, taken)[0][0]["dynamodb"]["SequenceNumber"]
    advance_clock(node.url, 10 * MINUTE_MS)  # "old" is now past 24 hours
    expect_error(streams.get_records, "TrimmedDataAccessException",
                 "read past the oldest stream record", ShardIterator=taken)
    expect_error(streams.get_shard_iterator, "TrimmedDataAccessException", "",
                 StreamArn=arn, ShardId=first["ShardId"],
                 ShardIteratorType="AT_SEQUENCE_NUMBER", SequenceNumber=old_number)
    assert _keys(read_stream(streams, arn)) == ["new"]  # TRIM_HORIZON starts after the trim
    first = all_shards(streams, arn)[0]
    assert int(first["SequenceNumberRange"]["StartingSequenceNumber"]) > int(old_number)


def test_shards_roll_over_every_4_hours_with_their_lineage(node: ServerProcess) -> None:
    ddb, streams = client(node.url), streams_client(node.url)
    _table(ddb, "KEYS_ONLY")
    arn = latest_arn(ddb, TABLE)
    _put(ddb, "a")
    advance_clock(node.url, 4 * HOUR_MS - MINUTE_MS)
    (first,) = all_shards(streams, arn)
    latest_in_first = _iterator(streams, arn, first["ShardId"], "LATEST")
    _put(ddb, "b")
    advance_clock(node.url, 2 * MINUTE_MS)  # the first shard is 4 hours old: it rolls over
    parent, child = all_shards(streams, arn)
    assert parent["ShardId"] == first["ShardId"] < child["ShardId"]
    assert child["ParentShardId"] == parent["ShardId"]
    assert "EndingSequenceNumber" in parent["SequenceNumberRange"]
    assert "EndingSequenceNumber" not in child["SequenceNumberRange"]
    _put(ddb, "c")
    records, following = read_iterator(streams, _iterator(streams, arn, parent["ShardId"]))
    assert _keys(records) == ["a", "b"] and following is None  # closed, read to its end
    page = streams.get_records(ShardIterator=latest_in_first)  # LATEST, taken before
    assert _keys(page["Records"]) == ["b"] and "NextShardIterator" not in page
    assert _keys(read_iterator(streams, _iterator(streams, arn, child["ShardId"]))[0]) == ["c"]
    children = streams.describe_stream(StreamArn=arn, ShardFilter={
        "Type": "CHILD_SHARDS", "ShardId": parent["ShardId"]})["StreamDescription"]["Shards"]
    assert [s["ShardId"] for s in children] == [child["ShardId"]]
    assert _keys(read_stream(streams, arn)) == ["a", "b", "c"]
    # an open shard without records does not roll; one with records does
    advance_clock(node.url, 4 * HOUR_MS + 1000)
    assert len(all_shards(streams, arn)) == 3
    advance_clock(node.url, 4 * HOUR_MS + 1000)
    shards = all_shards(streams, arn)
    assert len(shards) == 3 and [s["ShardId"] for s in shards] == sorted(
        s["ShardId"] for s in shards)
    # a shard closed more than 24 hours ago is gone, and so are its records
    advance_clock(node.url, 24 * HOUR_MS)
    remaining = all_shards(streams, arn)
    assert [s["ShardId"] for s in remaining] == [shards[-1]["ShardId"]]
    assert read_stream(streams, arn) == []


def test_a_disabled_stream_is_readable_for_24_hours(node: ServerProcess) -> None:
    ddb, streams = client(node.url), streams_client(node.url)
    _table(ddb, "OLD_IMAGE")
    _put(ddb, "a", v={"N": "1"})
    _put(ddb, "a", v={"N": "2"})
    arn = latest_arn(ddb, TABLE)
    ddb.update_table(TableName=TABLE, StreamSpecification={"StreamEnabled": False})
    _put(ddb, "after")  # no stream: no record anywhere
    advance_clock(node.url, 23 * HOUR_MS)
    description = streams.describe_stream(StreamArn=arn)["StreamDescription"]
    assert description["StreamStatus"] == "DISABLED"
    assert [event(r) for r in read_stream(streams, arn)] == [
        ("INSERT", {"pk": "a"}, None, None), ("MODIFY", {"pk": "a"}, {"pk": "a", "v": 1}, None)]
    advance_clock(node.url, 2 * HOUR_MS)
    assert streams.list_streams(TableName=TABLE)["Streams"] == []
    expect_error(streams.describe_stream, "ResourceNotFoundException",
                 f"Requested resource not found: Stream: {arn} not found", StreamArn=arn)
    assert ddb.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"] == arn


def test_ttl_deletions_carry_the_service_identity(storage: list[str]) -> None:
    node = ServerProcess(in_memory=not storage,
                         extra=["--settable-clock", "--ttl-interval", "0.1", *storage])
    node.start()
    try:
        ddb, streams = client(node.url), streams_client(node.url)
        _table(ddb, "NEW_AND_OLD_IMAGES")
        ddb.update_time_to_live(TableName=TABLE, TimeToLiveSpecification={
            "Enabled": True, "AttributeName": "exp"})
        now_s = advance_clock(node.url, 0) // 1000
        _put(ddb, "expires", exp={"N": str(now_s + 3600)})
        _put(ddb, "deleted")
        ddb.delete_item(TableName=TABLE, Key={"pk": {"S": "deleted"}})
        advance_clock(node.url, 2 * HOUR_MS)  # "expires" is now past its time
        arn = latest_arn(ddb, TABLE)
        removes: list[dict[str, Any]] = []
        deadline = time.monotonic() + POLL_BOUND_S  # the sweeper runs every 0.1 s
        while time.monotonic() < deadline and len(removes) < 2:
            removes = [r for r in read_stream(streams, arn) if r["eventName"] == "REMOVE"]
            time.sleep(0.1)
        by_key = {r["dynamodb"]["Keys"]["pk"]["S"]: r for r in removes}
        assert set(by_key) == {"expires", "deleted"}
        assert by_key["expires"]["userIdentity"] == {"PrincipalId": "dynamodb.amazonaws.com",
                                                     "Type": "Service"}
        assert by_key["expires"]["dynamodb"]["OldImage"]["exp"] == {"N": str(now_s + 3600)}
        assert "userIdentity" not in by_key["deleted"]
    finally:
        node.stop()


def test_a_stream_continues_across_a_crash_and_restart(tmp_path: Path, storage: list[str]
                                                       ) -> None:
    node = ServerProcess(data_dir=tmp_path, extra=storage).start()
    try:
        ddb, streams = client(node.url), streams_client(node.url)
        _table(ddb, "NEW_IMAGE")
        for key in ("a", "b", "c"):
            _put(ddb, key)
        arn = latest_arn(ddb, TABLE)
        (shard,) = all_shards(streams, arn)
        page = streams.get_records(ShardIterator=_iterator(streams, arn, shard["ShardId"]),
                                   Limit=2)
        assert _keys(page["Records"]) == ["a", "b"]
        node.kill()  # SIGKILL: every acknowledged write, and so its record, is durable
        node.start()
        ddb, streams = client(node.url), streams_client(node.url)
        for key in ("d", "e"):
            _put(ddb, key)
        rest, _ = read_iterator(streams, page["NextShardIterator"])  # taken before the crash
        assert _keys(rest) == ["c", "d", "e"]
        everything = read_stream(streams, arn)
        assert _keys(everything) == ["a", "b", "c", "d", "e"]
        numbers = [int(r["dynamodb"]["SequenceNumber"]) for r in everything]
        assert numbers == sorted(set(numbers))
        assert latest_arn(ddb, TABLE) == arn and len(all_shards(streams, arn)) == 1
    finally:
        node.stop()
