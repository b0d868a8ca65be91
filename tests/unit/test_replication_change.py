"""Change encoding: canonical round trip, and refusal of damaged or malformed records."""

from __future__ import annotations

import zlib

import orjson
import pytest

from atoll.replication.change import (
    Change,
    ItemWrite,
    TableOp,
    Version,
    decode_change,
    encode_change,
    verify_change,
)
from atoll.replication.errors import BadChange

ITEM = {"pk": {"S": "a"}, "n": {"N": "1"}, "b": {"B": "AAE="}, "m": {"M": {"x": {"NULL": True}}}}


def sample() -> Change:
    return Change.create("us-east", 7, 123456789, [
        ItemWrite("t", b"a", b"\x00\x01", ITEM, Version(5, "eu-west")),
        ItemWrite("t", b"b", b"", None),
    ])


def frame_of(doc: object) -> bytes:
    body = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
    return zlib.crc32(body).to_bytes(4, "big") + body


def test_round_trip() -> None:
    change = sample()
    assert decode_change(encode_change(change)) == change


def test_table_op_round_trip() -> None:
    change = Change.create("a", 1, 1, [TableOp("t", "create", {"TableName": "t"})])
    assert decode_change(encode_change(change)) == change


def test_encoding_is_canonical_whatever_the_dict_order() -> None:
    reordered = dict(reversed(list(ITEM.items())))
    a = Change.create("a", 1, 1, [ItemWrite("t", b"k", b"", ITEM)])
    b = Change.create("a", 1, 1, [ItemWrite("t", b"k", b"", reordered)])
    assert encode_change(a) == encode_change(b)


@pytest.mark.parametrize("position", [0, 3, 4, 10, -1])
def test_any_flipped_byte_is_refused(position: int) -> None:
    frame = bytearray(encode_change(sample()))
    frame[position] ^= 0x40
    with pytest.raises(BadChange):
        decode_change(bytes(frame))


def test_a_checksum_over_other_contents_is_refused() -> None:
    change = sample()
    forged = Change(change.origin, change.seq + 1, change.hlc, change.ops, change.checksum)
    with pytest.raises(BadChange):
        verify_change(forged)
    with pytest.raises(BadChange):
        encode_change(forged)


GOOD = {"v": 1, "o": "a", "s": 1, "h": 1,
        "ops": [{"w": "t", "pk": "6b", "sk": "", "i": {"pk": {"S": "k"}}, "p": None}]}


def mutate(**changes: object) -> dict[str, object]:
    return {**GOOD, **changes}


@pytest.mark.parametrize("doc, why", [
    (mutate(v=2), "unknown format version"),
    (mutate(s=0), "seq starts at 1"),
    (mutate(s=True), "seq is a bool"),
    (mutate(h=-1), "negative hlc"),
    (mutate(o=""), "empty origin"),
    (mutate(ops=[]), "no ops"),
    (mutate(ops="x"), "ops not a list"),
    (mutate(ops=[{"w": "t"}]), "op missing fields"),
    (mutate(ops=[{**GOOD["ops"][0], "pk": "zz"}]), "key not hex"),
    (mutate(ops=[{**GOOD["ops"][0], "pk": ""}]), "empty partition key"),
    (mutate(ops=[{**GOOD["ops"][0], "i": {"pk": {"Q": "k"}}}]), "unknown attribute type"),
    (mutate(ops=[{**GOOD["ops"][0], "i": {}}]), "empty item"),
    (mutate(ops=[{**GOOD["ops"][0], "p": [1]}]), "malformed prev"),
    (mutate(ops=[GOOD["ops"][0], GOOD["ops"][0]]), "same item twice"),
    (mutate(ops=[{"t": "t", "k": "drop", "d": None}]), "unknown table op"),
    (mutate(ops=[{"t": "t", "k": "create", "d": None}]), "create without definition"),
    (mutate(ops=[{"t": "t", "k": "delete", "d": None}, GOOD["ops"][0]]), "DDL not alone"),
    ({**GOOD, "extra": 1}, "unknown field"),
    ([1, 2], "not an object"),
])
def test_malformed_records_are_refused(doc: object, why: str) -> None:
    with pytest.raises(BadChange):
        decode_change(frame_of(doc))


def test_the_good_document_decodes() -> None:
    assert decode_change(frame_of(GOOD)).seq == 1


def test_non_canonical_body_is_refused() -> None:
    body = orjson.dumps(GOOD)  # keys not sorted
    frame = zlib.crc32(body).to_bytes(4, "big") + body
    with pytest.raises(BadChange, match="canonical"):
        decode_change(frame)


@pytest.mark.parametrize("frame", [b"", b"\x00\x00\x00\x00", b"abcdnotjson"])
def test_short_or_garbage_frames_are_refused(frame: bytes) -> None:
    with pytest.raises(BadChange):
        decode_change(frame)


def test_encode_new_change_equals_the_two_step_encoding() -> None:
    from atoll.replication.change import (
        Change,
        ItemWrite,
        Version,
        encode_change,
        encode_new_change,
    )

    ops = [ItemWrite("t", b"\x01", b"", {"pk": {"S": "a"}, "n": {"N": "1"}}, Version(5, "eu")),
           ItemWrite("t", b"\x02", b"\x03", None, None)]
    frame = encode_new_change("us", 7, 99, ops)
    assert frame == encode_change(Change.create("us", 7, 99, ops))
