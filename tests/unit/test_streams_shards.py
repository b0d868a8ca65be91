"""Shards, iterator starts, iterators and stream specifications (atoll.streams)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atoll.errors import ExpiredIterator, TrimmedDataAccess, ValidationError
from atoll.streams.iterators import ITERATOR_TTL_MS, ShardIterator, decode_iterator
from atoll.streams.records import sequence_number
from atoll.streams.shards import (
    RETENTION_MS,
    SHARD_ROLL_MS,
    Shard,
    describe_shard,
    parse_shard_id,
    roll_due,
    shard_id,
    start_position,
    visible_shards,
)
from atoll.streams.spec import (
    check_update,
    label_at,
    label_ms,
    new_label,
    parse_stream_arn,
    stream_arn,
    wanted_view_type,
)

OPEN = Shard(2, 100, None, 5_000, None)
CLOSED = Shard(1, 10, 99, 1_000, 5_000)


def test_shard_ids_sort_in_creation_order_and_name_their_number() -> None:
    ids = [shard_id(created, number) for created, number in ((1_000, 1), (1_001, 2), (90_000, 3))]
    assert ids == sorted(ids) and all(28 <= len(i) <= 65 for i in ids)
    assert [parse_shard_id(i) for i in ids] == [1, 2, 3]
    assert parse_shard_id("shardId-123") is None and parse_shard_id(ids[0] + "x") is None


def test_descriptions_start_at_the_oldest_untrimmed_position_and_end_if_closed() -> None:
    assert describe_shard(CLOSED, None, 0) == {
        "ShardId": CLOSED.shard_id, "SequenceNumberRange": {
            "StartingSequenceNumber": sequence_number(10),
            "EndingSequenceNumber": sequence_number(99)}}
    described = describe_shard(OPEN, CLOSED, 120)
    assert described["ParentShardId"] == CLOSED.shard_id
    assert described["SequenceNumberRange"] == {"StartingSequenceNumber": sequence_number(121)}


def test_closed_shards_are_shown_for_24_hours() -> None:
    assert visible_shards([CLOSED, OPEN], 5_000 + RETENTION_MS) == [CLOSED, OPEN]
    assert visible_shards([CLOSED, OPEN], 5_001 + RETENTION_MS) == [OPEN]


def test_an_open_shard_rolls_after_4_hours() -> None:
    assert not roll_due(OPEN, 5_000 + SHARD_ROLL_MS - 1)
    assert roll_due(OPEN, 5_000 + SHARD_ROLL_MS)
    assert not roll_due(CLOSED, 10**12)


@pytest.mark.parametrize(("kind", "shard", "trimmed", "last", "sequence", "expected"), [
    ("TRIM_HORIZON", CLOSED, 0, 150, None, 10),
    ("TRIM_HORIZON", CLOSED, 50, 150, None, 51),
    ("LATEST", OPEN, 0, 150, None, 151),
    ("LATEST", OPEN, 0, 40, None, 100),  # no record of the stream in it yet
    ("LATEST", CLOSED, 0, 150, None, 100),  # after its end: nothing to read
    ("AT_SEQUENCE_NUMBER", CLOSED, 0, 150, 20, 20),
    ("AFTER_SEQUENCE_NUMBER", CLOSED, 0, 150, 20, 21),
    ("AFTER_SEQUENCE_NUMBER", OPEN, 0, 150, 150, 151),
])
def test_iterator_starts(kind: str, shard: Shard, trimmed: int, last: int,
                         sequence: int | None, expected: int) -> None:
    assert start_position(kind, shard, trimmed, last, sequence) == expected


@pytest.mark.parametrize(("kind", "shard", "sequence", "error"), [
    ("AT_SEQUENCE_NUMBER", CLOSED, 9, ValidationError),  # before the shard
    ("AT_SEQUENCE_NUMBER", CLOSED, 100, ValidationError),  # after its end
    ("AT_SEQUENCE_NUMBER", OPEN, 151, ValidationError),  # after the newest record
    ("AT_SEQUENCE_NUMBER", CLOSED, 30, TrimmedDataAccess),
    ("AFTER_SEQUENCE_NUMBER", CLOSED, 29, TrimmedDataAccess),
])
def test_iterator_starts_refused(kind: str, shard: Shard, sequence: int,
                                 error: type[Exception]) -> None:
    with pytest.raises(error):
        start_position(kind, shard, 30, 150, sequence)


@given(st.integers(0, 2**63), st.integers(0, 2**32), st.integers(0, 2**63),
       st.integers(0, 2**50))
def test_iterators_round_trip_until_they_expire(sid: int, shard: int, pos: int,
                                               issued: int) -> None:
    iterator = ShardIterator("arn:x", sid, shard, pos, issued)
    text = iterator.encode()
    assert text.startswith("arn:x|1|") and len(text) <= 2048
    assert decode_iterator(text, issued + ITERATOR_TTL_MS) == iterator
    with pytest.raises(ExpiredIterator):
        decode_iterator(text, issued + ITERATOR_TTL_MS + 1)


@pytest.mark.parametrize("text", ["", "arn", "arn|1|", "arn|2|AAAA", "arn|1|%%%%",
                                  ShardIterator("a", 1, 2, 3, 4).encode()[:-2] + "AA"])
def test_damaged_iterators_are_refused(text: str) -> None:
    with pytest.raises(ValidationError):
        decode_iterator(text, 0)


def test_labels_are_iso_8601_milliseconds_and_always_move_forward() -> None:
    assert label_at(1_432_155_070_252) == "2015-05-20T20:51:10.252"
    assert label_ms("2015-05-20T20:51:10.252") == 1_432_155_070_252
    assert new_label(1_432_155_070_000, "2015-05-20T20:51:10.252") == "2015-05-20T20:51:10.253"
    assert new_label(1_432_155_080_000, "2015-05-20T20:51:10.252") == "2015-05-20T20:51:20.000"


def test_stream_arns_parse_back() -> None:
    arn = stream_arn("eu-west", "Forum", "2015-05-20T20:51:10.252")
    assert arn == "arn:aws:dynamodb:eu-west:000000000000:table/Forum/stream/2015-05-20T20:51:10.252"
    assert parse_stream_arn(arn) == ("eu-west", "Forum", "2015-05-20T20:51:10.252")
    for bad in ("x" * 40, arn + "/x", arn.replace("/stream/", "/streams/"),
                arn.replace("Forum", "a/b")):
        assert parse_stream_arn(bad) is None


def test_stream_specification_rules() -> None:
    assert wanted_view_type({"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}) == "KEYS_ONLY"
    assert wanted_view_type({"StreamEnabled": False}) is None
    with pytest.raises(ValidationError, match="UpdateViewType is required"):
        wanted_view_type({"StreamEnabled": True})
    with pytest.raises(ValidationError, match="UpdateViewType must not be specified"):
        wanted_view_type({"StreamEnabled": False, "StreamViewType": "NEW_IMAGE"})
    check_update("T", None, "NEW_IMAGE")
    check_update("T", "NEW_IMAGE", None)
    with pytest.raises(ValidationError, match="Table already has an enabled stream: TableName: T"):
        check_update("T", "NEW_IMAGE", "NEW_IMAGE")
    with pytest.raises(ValidationError, match="Table has no stream to disable: TableName: T"):
        check_update("T", None, None)
