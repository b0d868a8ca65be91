"""Change encoding: canonical round trip, and refusal of damaged or malformed records."""

from __future__ import annotations

import zlib
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atoll.replication.change import (
    Change,
    ItemWrite,
    LoggedWrite,
    TableOp,
    Version,
    decode_change,
    encode_change,
    encode_item_change,
    encode_new_change,
    item_json,
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
    (mutate(v=3), "unknown format version"),
    (mutate(v=2), "a version 2 item op without its state field"),
    (mutate(v="2"), "format version not an integer"),
    (mutate(ops=[{**GOOD["ops"][0], "x": None}]), "a version 1 item op with a state field"),
    (mutate(v=2, ops=[{**GOOD["ops"][0], "x": []}]), "state not an object"),
    (mutate(v=2, ops=[{**GOOD["ops"][0], "x": {}}]), "empty state"),
    (mutate(s=0), "seq starts at 1"),
    (mutate(s=True), "seq is a bool"),
    (mutate(h=-1), "negative hlc"),
    (mutate(o=""), "empty origin"),
    (mutate(ops=[]), "no ops"),
    (mutate(ops="x"), "ops not a list"),
    (mutate(ops=[{"w": "t"}]), "op missing fields"),
    (mutate(ops=[{**GOOD["ops"][0], "pk": "zz"}]), "key not hex"),
    (mutate(ops=[{**GOOD["ops"][0], "pk": ""}]), "empty partition key"),
    (mutate(ops=[{**GOOD["ops"][0], "pk": "6B"}]), "key in upper-case hex (not canonical)"),
    (mutate(ops=[{**GOOD["ops"][0], "sk": "6b 6b"}]), "key hex with a space (not canonical)"),
    (mutate(ops=[{**GOOD["ops"][0], "p": [True, "a"]}]), "prev hlc is a bool"),
    (mutate(ops=[{**GOOD["ops"][0], "w": 7}]), "table name not a string"),
    (mutate(ops=[{**GOOD["ops"][0], "i": {"pk": {"Q": "k"}}}]), "unknown attribute type"),
    (mutate(ops=[{**GOOD["ops"][0], "i": {}}]), "empty item"),
    (mutate(ops=[{**GOOD["ops"][0], "p": [1]}]), "malformed prev"),
    (mutate(ops=[{**GOOD["ops"][0], "p": [1, "a"]}]), "prev: its own region's same version"),
    (mutate(h=5, ops=[{**GOOD["ops"][0], "p": [6, "a"]}]), "prev: its own later version"),
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


def test_a_version_1_change_decodes_as_row_form_writes_and_re_encodes_to_its_bytes() -> None:
    """An older region's changes keep applying during a rolling upgrade: each item
    write is the row form (one whole-item write at the change's version over `p`), and
    passing the change on keeps its version-1 bytes."""
    frame = frame_of(GOOD)
    change = decode_change(frame)
    assert change.format == 1
    assert change.ops == (ItemWrite("t", b"k", b"", {"pk": {"S": "k"}}, None, b""),)
    assert encode_change(change) == frame
    verify_change(change)


def test_a_state_travels_embedded_as_canonical_json_and_decodes_to_the_same_bytes() -> None:
    state = b'{"c":{"a":5,"b":3},"g":[[5,"a",1]]}'
    change = Change.create("a", 1, 5, [ItemWrite("t", b"k", b"", {"pk": {"S": "k"}},
                                                 Version(3, "b"), state)])
    frame = encode_change(change)
    assert b',"x":' + state + b"}" in frame
    decoded = decode_change(frame)
    assert decoded == change and decoded.format == 2
    assert decoded.ops[0].state == state  # type: ignore[union-attr]


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


_names = st.text(min_size=1, max_size=12)
_values = st.recursive(
    st.one_of(st.builds(lambda s: {"S": s}, st.text(max_size=20)),
              st.builds(lambda n: {"N": str(n)}, st.integers(-10**20, 10**20)),
              st.builds(lambda b: {"BOOL": b}, st.booleans()),
              st.just({"NULL": True}),
              st.builds(lambda ss: {"SS": sorted(ss)}, st.sets(st.text(max_size=5), min_size=1,
                                                             max_size=3))),
    lambda inner: st.one_of(st.builds(lambda m: {"M": m}, st.dictionaries(_names, inner,
                                                                         max_size=3)),
                            st.builds(lambda v: {"L": v}, st.lists(inner, max_size=3))),
    max_leaves=8)
_writes = st.lists(st.tuples(
    _names,  # table
    st.binary(min_size=1, max_size=8), st.binary(max_size=8),
    st.one_of(st.none(), st.dictionaries(_names, _values, min_size=1, max_size=4)),
    st.one_of(st.none(), st.tuples(st.integers(1, 2**62), _names)),
    st.one_of(st.just(b""), st.builds(
        lambda ctx: orjson.dumps({"c": ctx}, option=orjson.OPT_SORT_KEYS),
        st.dictionaries(_names.filter(bool), st.integers(1, 2**62), min_size=1, max_size=3)))),
    min_size=1, max_size=5, unique_by=lambda w: (w[0], w[1], w[2]))


@settings(max_examples=300, deadline=None)
@given(origin=_names, seq=st.integers(1, 2**62), hlc=st.integers(1, 2**62), writes=_writes)
def test_the_assembled_item_change_is_the_canonical_encoding(
        origin: str, seq: int, hlc: int, writes: list[Any]) -> None:
    """The write path's `encode_item_change` (pieces + the stored item JSON) produces the
    very bytes the general encoder does: peers accept it and decode the same change."""
    logged = [LoggedWrite(table, pk, sk, item_json(item) if item is not None else None, prev,
                          state)
              for table, pk, sk, item, prev, state in writes]
    ops = [ItemWrite(table, pk, sk, item, Version(*prev) if prev is not None else None, state)
           for table, pk, sk, item, prev, state in writes]
    frame = encode_item_change(origin, seq, hlc, logged)
    assert frame == encode_new_change(origin, seq, hlc, ops)
    assert decode_change(frame) == Change.create(origin, seq, hlc, ops)
