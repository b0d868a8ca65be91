"""The DynamoDB Streams API over this region's streams: ListStreams, DescribeStream,
GetShardIterator, GetRecords.

Theory of operation: these are reads of what the storage keeps (engine/streams.py
writes it; atoll.streams says what shards, positions and iterators are), answered on the
event-loop thread. Before a stream is read, `stream_upkeep.due` says whether retention
or a rollover would change what the read sees; if so that stream's upkeep runs first.

A stream is found by its ARN: this region's name, the table name and the label; streams
disabled more than 24 hours ago are gone. GetRecords reads the records first and then
the stream's trim point and its shard's end: both only ever move forward, so a trim or a
close that commits between those reads is seen (a trimmed start is refused, records past
the shard's new end belong to its child and are left out) instead of being skipped.
"""

from __future__ import annotations

from typing import Any

import orjson

from atoll.engine import stream_upkeep
from atoll.engine.context import EngineContext
from atoll.errors import ResourceNotFound, TrimmedDataAccess, ValidationError
from atoll.streams.iterators import ShardIterator, decode_iterator
from atoll.streams.records import Renderer, get_records_response, parse_sequence_number
from atoll.streams.shards import (
    Shard,
    Stream,
    describe_shard,
    parse_shard_id,
    start_position,
    visible_shards,
)
from atoll.streams.spec import label_ms, parse_stream_arn

MAX_STREAMS_LIMIT = 100
MAX_SHARDS_LIMIT = 100
MAX_RECORDS_LIMIT = 1000
MAX_RECORDS_BYTES = 1024 * 1024
_TRIMMED = "The operation attempted to read past the oldest stream record in a shard."
_NO_SHARD = "Requested resource not found: Shard does not exist"


def _limit(request: dict[str, Any], high: int) -> int:
    limit = int(request.get("Limit", high))
    if limit > high:
        raise ValidationError(f"1 validation error detected: Value '{limit}' at 'limit' failed "
                              f"to satisfy constraint: Member must have value less than or "
                              f"equal to {high}")
    return limit


def _streams(ctx: EngineContext) -> list[Stream]:
    return [Stream(*row) for row in ctx.storage.streams()]


def _not_found(arn: str) -> ResourceNotFound:
    return ResourceNotFound(f"Requested resource not found: Stream: {arn} not found")


def _find(ctx: EngineContext, arn: str) -> Stream:
    parsed = parse_stream_arn(arn)
    if parsed is None:
        raise ValidationError(f"Invalid StreamArn: {arn}")
    region, table_name, label = parsed
    now_ms = ctx.now_ms()
    if region == ctx.region:
        for stream in _streams(ctx):
            if stream.table_name == table_name and stream.label == label \
                    and stream.visible(now_ms):
                return stream
    raise _not_found(arn)


def _shards(ctx: EngineContext, sid: int) -> list[Shard]:
    return [Shard(*row) for row in ctx.storage.stream_shards(sid)]


async def _fresh(ctx: EngineContext, stream: Stream, arn: str) -> tuple[Stream, list[Shard]]:
    """The stream and its visible shards, after its upkeep if it was due."""
    shards = _shards(ctx, stream.sid)
    if stream_upkeep.due(ctx, stream, shards):
        await stream_upkeep.upkeep(ctx, {stream.sid})
        found = [s for s in _streams(ctx) if s.sid == stream.sid]
        if not found:
            raise _not_found(arn)
        stream = found[0]
        shards = _shards(ctx, stream.sid)
    return stream, visible_shards(shards, ctx.now_ms())


async def list_streams(ctx: EngineContext, request: dict[str, Any]) -> dict[str, Any]:
    limit = _limit(request, MAX_STREAMS_LIMIT)
    now_ms = ctx.now_ms()
    name = request.get("TableName")
    streams = [s for s in _streams(ctx)
               if s.visible(now_ms) and (name is None or s.table_name == name)]
    streams.sort(key=lambda s: s.label, reverse=True)  # newest first within a table
    streams.sort(key=lambda s: s.table_name)
    start = request.get("ExclusiveStartStreamArn")
    if start is not None:
        parsed = parse_stream_arn(start)
        if parsed is None:
            raise ValidationError(f"Invalid ExclusiveStartStreamArn: {start}")
        streams = [s for s in streams if s.table_name > parsed[1]
                   or (s.table_name == parsed[1] and s.label < parsed[2])]
    page = streams[:limit]
    result: dict[str, Any] = {"Streams": [
        {"StreamArn": s.arn(ctx.region, ctx.settings.account_id), "TableName": s.table_name, "StreamLabel": s.label}
        for s in page]}
    if len(streams) > limit:
        result["LastEvaluatedStreamArn"] = page[-1].arn(ctx.region, ctx.settings.account_id)
    return result


async def describe_stream(ctx: EngineContext, request: dict[str, Any]) -> dict[str, Any]:
    arn = request["StreamArn"]
    stream = _find(ctx, arn)
    limit = _limit(request, MAX_SHARDS_LIMIT)
    stream, shards = await _fresh(ctx, stream, arn)
    by_number = {shard.number: shard for shard in shards}
    listed = shards
    shard_filter = request.get("ShardFilter")
    if shard_filter is not None:
        if shard_filter.get("Type") != "CHILD_SHARDS" or not shard_filter.get("ShardId"):
            raise ValidationError("ShardFilter must have Type CHILD_SHARDS and a ShardId")
        parent = parse_shard_id(shard_filter["ShardId"])
        listed = [s for s in shards if parent is not None and s.number == parent + 1]
    start = request.get("ExclusiveStartShardId")
    if start is not None:
        listed = [s for s in listed if s.shard_id > start]
    page = listed[:limit]
    description: dict[str, Any] = {
        "StreamArn": stream.arn(ctx.region, ctx.settings.account_id),
        "StreamLabel": stream.label,
        "StreamStatus": "ENABLED" if stream.disabled_ms is None else "DISABLED",
        "StreamViewType": stream.view_type,
        "CreationRequestDateTime": label_ms(stream.label) / 1000,  # the enabling request
        "TableName": stream.table_name,
        "KeySchema": orjson.loads(stream.key_schema),
        "Shards": [describe_shard(s, by_number.get(s.number - 1), stream.trimmed_pos)
                   for s in page],
    }
    if len(listed) > limit:
        description["LastEvaluatedShardId"] = page[-1].shard_id
    return {"StreamDescription": description}


async def get_shard_iterator(ctx: EngineContext, request: dict[str, Any]) -> dict[str, Any]:
    arn = request["StreamArn"]
    stream = _find(ctx, arn)
    iterator_type = request["ShardIteratorType"]
    text = request.get("SequenceNumber")
    if iterator_type == "AT_TIMESTAMP":
        raise ValidationError("ShardIteratorType AT_TIMESTAMP is not supported by Atoll")
    if iterator_type in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER") and text is None:
        raise ValidationError(f"SequenceNumber is required for ShardIteratorType "
                              f"{iterator_type}")
    if iterator_type in ("TRIM_HORIZON", "LATEST") and text is not None:
        raise ValidationError(f"SequenceNumber cannot be given for ShardIteratorType "
                              f"{iterator_type}")
    sequence = parse_sequence_number(text) if text is not None else None
    if text is not None and sequence is None:
        raise ValidationError(f"Invalid SequenceNumber: {text}")
    stream, shards = await _fresh(ctx, stream, arn)
    shard_id = request["ShardId"]
    shard = next((s for s in shards if s.shard_id == shard_id), None)
    if shard is None:
        raise ResourceNotFound(_NO_SHARD)
    last = ctx.storage.stream_last_pos(stream.sid)
    pos = start_position(iterator_type, shard, stream.trimmed_pos, last, sequence)
    iterator = ShardIterator(stream.arn(ctx.region, ctx.settings.account_id), stream.sid, shard.number, pos,
                             ctx.now_ms())
    return {"ShardIterator": iterator.encode()}


async def get_records(ctx: EngineContext, request: dict[str, Any]) -> bytes:
    limit = _limit(request, MAX_RECORDS_LIMIT)
    iterator = decode_iterator(request["ShardIterator"], ctx.now_ms())
    stream = _iterator_stream(ctx, iterator)
    stream, shards = await _fresh(ctx, stream, iterator.arn)
    if not any(s.number == iterator.shard for s in shards):
        raise ResourceNotFound(_NO_SHARD)
    if iterator.pos <= stream.trimmed_pos:
        raise TrimmedDataAccess(_TRIMMED)
    rows = ctx.storage.stream_records(stream.sid, iterator.pos, limit)
    # read after the records: the trim point and the shard's end, as they are now
    if _trim_point(ctx, stream) >= iterator.pos:
        raise TrimmedDataAccess(_TRIMMED)
    end = next((s.end_pos for s in _shards(ctx, stream.sid) if s.number == iterator.shard),
               None)
    renderer = Renderer(ctx.region, stream.sid, stream.view_type)
    records: list[bytes] = []
    size = 0
    next_pos = iterator.pos
    for pos, created_ms, kind, origin, fragment in rows:
        if end is not None and pos > end:
            break  # the child shard's
        record = renderer.render(pos, created_ms, kind, origin, fragment)
        size += len(record)
        if records and size > MAX_RECORDS_BYTES:
            break
        records.append(record)
        next_pos = pos + 1
    following = None
    if end is None or next_pos <= end:
        following = iterator.at(next_pos, ctx.now_ms()).encode()
    return get_records_response(records, following)


def _iterator_stream(ctx: EngineContext, iterator: ShardIterator) -> Stream:
    """The stream an iterator reads: the one its ARN names, in this region."""
    parsed = parse_stream_arn(iterator.arn)
    if parsed is None or parsed[0] != ctx.region:
        raise ValidationError("Invalid ShardIterator")
    now_ms = ctx.now_ms()
    for stream in _streams(ctx):
        if stream.sid == iterator.sid:
            if (stream.table_name, stream.label) != parsed[1:]:
                raise ValidationError("Invalid ShardIterator")
            if stream.visible(now_ms):
                return stream
    raise _not_found(iterator.arn)


def _trim_point(ctx: EngineContext, stream: Stream) -> int:
    return next((s.trimmed_pos for s in _streams(ctx) if s.sid == stream.sid), 0)
