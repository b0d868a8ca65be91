"""Helpers for stream tests: a boto3 `dynamodbstreams` client, reading shards and whole
streams the way a consumer does (parents first, following NextShardIterator), and moving
a `--settable-clock` node's clock."""

from __future__ import annotations

from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer
from botocore.config import Config

from tests.support import credentials_for, node_post

MAX_PAGES = 1_000  # every read loop here is bounded
_deserialize = TypeDeserializer().deserialize


def streams_client(url: str) -> Any:
    """boto3's `dynamodbstreams` client, signing with the server's admin key."""
    key_id, secret = credentials_for(url)
    return boto3.client("dynamodbstreams", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id=key_id, aws_secret_access_key=secret,
                        config=Config(retries={"max_attempts": 1, "mode": "standard"}))


def advance_clock(url: str, ms: int) -> int:
    """Move a node started with --settable-clock forward; returns its new now (ms)."""
    status, answer = node_post(url, "/_atoll/clock", {"advance_ms": ms})
    assert status == 200, answer
    return int(answer["now_ms"])


def all_shards(streams: Any, arn: str) -> list[dict[str, Any]]:
    """Every shard DescribeStream lists, page by page (2 at a time, to page)."""
    shards: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"StreamArn": arn, "Limit": 2}
    for _ in range(MAX_PAGES):
        description = streams.describe_stream(**kwargs)["StreamDescription"]
        shards += description["Shards"]
        if "LastEvaluatedShardId" not in description:
            return shards
        kwargs["ExclusiveStartShardId"] = description["LastEvaluatedShardId"]
    raise AssertionError("DescribeStream did not stop paging")


def read_iterator(streams: Any, iterator: str | None, limit: int = 1000
                  ) -> tuple[list[dict[str, Any]], str | None]:
    """Records from `iterator` until a page comes back empty (an open shard) or no
    NextShardIterator is given (a closed shard read to its end): (records, the last
    iterator, None if the shard ended)."""
    records: list[dict[str, Any]] = []
    for _ in range(MAX_PAGES):
        if iterator is None:
            return records, None
        page = streams.get_records(ShardIterator=iterator, Limit=limit)
        records += page["Records"]
        following = page.get("NextShardIterator")
        if not page["Records"]:
            return records, following
        iterator = following
    raise AssertionError("GetRecords did not stop")


def read_stream(streams: Any, arn: str) -> list[dict[str, Any]]:
    """Every record of a stream from the trim horizon, each shard after its parent."""
    shards = all_shards(streams, arn)
    ids = {s["ShardId"] for s in shards}
    done: set[str] = set()
    records: list[dict[str, Any]] = []
    for _ in range(len(shards) + 1):
        ready = [s for s in shards if s["ShardId"] not in done
                 and (s.get("ParentShardId") not in ids or s["ParentShardId"] in done)]
        if not ready:
            return records
        for shard in ready:
            iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                                  ShardIteratorType="TRIM_HORIZON")
            records += read_iterator(streams, iterator["ShardIterator"])[0]
            done.add(shard["ShardId"])
    return records


def plain(image: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if image is None else {k: _deserialize(v) for k, v in image.items()}


def event(record: dict[str, Any]) -> tuple[str, dict[str, Any], Any, Any]:
    """(eventName, keys, OldImage, NewImage) of a record, as plain Python values."""
    body = record["dynamodb"]
    return (record["eventName"], plain(body["Keys"]), plain(body.get("OldImage")),
            plain(body.get("NewImage")))


def latest_arn(ddb: Any, table: str) -> str:
    return str(ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"])
