"""Stream records, made from the materialized items before and after a write, and shown
as GetRecords shows them (atoll.streams.records)."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atoll.model.values import item_size
from atoll.replication.change import item_json
from atoll.streams.records import (
    BY_TTL,
    INSERT,
    MODIFY,
    REMOVE,
    SEQUENCE_BASE,
    KeysRenderer,
    Renderer,
    get_records_response,
    key_json,
    parse_sequence_number,
    same_item,
    sequence_number,
    stream_record,
)

KEYS = ("pk", "sk")


def stored(item: dict[str, Any]) -> tuple[bytes, int]:
    return item_json(item), item_size(item)


OLD = {"pk": {"S": "p"}, "sk": {"N": "1"}, "a": {"S": "x"}}
NEW = {"pk": {"S": "p"}, "sk": {"N": "1"}, "a": {"S": "yy"}, "b": {"BOOL": True}}
KEY_SIZE = 2 + 1 + 2 + 2  # pk "p"; sk 1 (a number of one digit is 2 bytes)


def fragment_of(kind_and_fragment: tuple[int, bytes] | None) -> dict[str, Any]:
    assert kind_and_fragment is not None
    return orjson.loads(b"{" + kind_and_fragment[1] + b"}")


@pytest.mark.parametrize(("view_type", "old_shown", "new_shown"), [
    ("KEYS_ONLY", False, False), ("NEW_IMAGE", False, True), ("OLD_IMAGE", True, False),
    ("NEW_AND_OLD_IMAGES", True, True)])
def test_each_view_type_shows_its_images_and_sizes_them(view_type: str, old_shown: bool,
                                                         new_shown: bool) -> None:
    made = stream_record(view_type, KEYS, None, stored(OLD), stored(NEW))
    assert made is not None and made[0] == MODIFY
    shown = fragment_of(made)
    assert shown["Keys"] == {"pk": {"S": "p"}, "sk": {"N": "1"}}
    assert ("OldImage" in shown) == old_shown and ("NewImage" in shown) == new_shown
    if old_shown:
        assert shown["OldImage"] == OLD
    if new_shown:
        assert shown["NewImage"] == NEW
    assert shown["SizeBytes"] == KEY_SIZE + old_shown * item_size(OLD) + new_shown * item_size(NEW)


def test_inserts_and_removes_have_one_image_and_a_write_of_nothing_no_record() -> None:
    insert = stream_record("NEW_AND_OLD_IMAGES", KEYS, None, None, stored(NEW))
    remove = stream_record("NEW_AND_OLD_IMAGES", KEYS, None, stored(OLD), None)
    assert insert is not None and insert[0] == INSERT and "OldImage" not in fragment_of(insert)
    assert remove is not None and remove[0] == REMOVE and "NewImage" not in fragment_of(remove)
    assert stream_record("NEW_AND_OLD_IMAGES", KEYS, None, None, None) is None
    assert stream_record("KEYS_ONLY", KEYS, None, stored(OLD), stored(OLD)) is None


def test_keys_from_the_encoded_key_match_keys_taken_from_the_item() -> None:
    item = {"a": {"S": "héllo"}, "b": {"B": "AAEC/w=="}, "c": {"N": "1"}}
    parts = [("b", "B", bytes([0, 1, 2, 255])), ("a", "S", "héllo".encode())]
    from_key = stream_record("KEYS_ONLY", ("a", "b"), key_json(parts), None, stored(item))
    from_item = stream_record("KEYS_ONLY", ("a", "b"), None, None, stored(item))
    assert from_key == from_item is not None
    assert fragment_of(from_key)["Keys"] == {"a": {"S": "héllo"}, "b": {"B": "AAEC/w=="}}
    assert key_json([("a", "S", b"x"), ("n", "N", b"\x03")]) is None  # numbers: the item's


def test_items_that_differ_only_in_set_order_are_the_same_item() -> None:
    a = item_json({"pk": {"S": "p"}, "s": {"SS": ["a", "b"]}, "m": {"M": {"n": {"NS": ["1", "2"]}}}})
    b = item_json({"pk": {"S": "p"}, "s": {"SS": ["b", "a"]}, "m": {"M": {"n": {"NS": ["2", "1"]}}}})
    c = item_json({"pk": {"S": "p"}, "s": {"SS": ["b", "c"]}, "m": {"M": {"n": {"NS": ["2", "1"]}}}})
    lists = (item_json({"pk": {"S": "p"}, "l": {"L": [{"S": "a"}, {"S": "b"}]}}),
             item_json({"pk": {"S": "p"}, "l": {"L": [{"S": "b"}, {"S": "a"}]}}))
    assert a != b and same_item(a, b)
    assert not same_item(a, c)
    assert not same_item(*lists)  # a list's order is its value
    # A map key named like a set's type is a name: the string under it is compared.
    named = [item_json({"pk": {"S": "p"}, "s": {"SS": ["a"]}, "m": {"M": {"SS": {"S": v}}}})
             for v in ("a", "b")]
    assert not same_item(*named)


# Items whose names and strings hold what could fool a search for a set's `S":[`: names
# ending in S, quotes, brackets, colons.
_tricky = st.text(alphabet='aS":[]{},\\ ', max_size=6)
_scalars = st.one_of(
    _tricky.map(lambda s: {"S": s}), st.integers(-99, 99).map(lambda n: {"N": str(n)}),
    st.just({"NULL": True}),
    st.lists(_tricky, min_size=1, max_size=4, unique=True).map(lambda s: {"SS": s}),
    st.lists(st.integers(-9, 9).map(str), min_size=1, max_size=4, unique=True).map(
        lambda s: {"NS": s}))
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3).map(lambda items: {"L": items}),
    st.dictionaries(_tricky, inner, max_size=3).map(lambda m: {"M": m})), max_leaves=8)
_items = st.dictionaries(_tricky, _values, min_size=1, max_size=4)


def _sets_reordered(item: dict[str, Any], flip: bool) -> dict[str, Any]:
    """`item` with every set's members in reverse order if `flip` (the same item)."""
    def value(typed: dict[str, Any]) -> dict[str, Any]:
        ((kind, inner),) = typed.items()
        if kind in ("SS", "NS", "BS"):
            return {kind: inner[::-1] if flip else inner}
        if kind == "M":
            return {kind: _sets_reordered(inner, flip)}
        if kind == "L":
            return {kind: [value(element) for element in inner]}
        return typed
    return {name: value(typed) for name, typed in item.items()}


def _naive_same(a: bytes, b: bytes) -> bool:
    """The reference: both items parsed, every set compared as a set."""
    def value(typed: dict[str, Any]) -> Any:
        ((kind, inner),) = typed.items()
        if kind in ("SS", "NS", "BS"):
            return kind, frozenset(inner)
        if kind == "M":
            return kind, {name: value(v) for name, v in inner.items()}
        if kind == "L":
            return kind, [value(element) for element in inner]
        return typed
    return bool({n: value(v) for n, v in orjson.loads(a).items()}
                == {n: value(v) for n, v in orjson.loads(b).items()})


@settings(max_examples=300, deadline=None)
@given(_items, _items, st.booleans())
def test_same_item_agrees_with_comparing_the_parsed_items(first: dict[str, Any],
                                                          other: dict[str, Any],
                                                          flip: bool) -> None:
    a = item_json(first)
    for b in (item_json(_sets_reordered(first, flip)), item_json(other)):
        assert same_item(a, b) == _naive_same(a, b)
    assert same_item(a, item_json(_sets_reordered(first, True)))


_key_names = st.text(alphabet='ab"\\é', min_size=1, max_size=4)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_key_names, st.sampled_from(["S", "B"]),
                          st.binary(min_size=1, max_size=6)),
                min_size=1, max_size=2, unique_by=lambda part: part[0]))
def test_rendered_keys_are_the_keys_taken_from_the_item(parts: list[tuple[str, str, bytes]]
                                                        ) -> None:
    parts = [(name, kind, raw if kind == "B" else raw.hex().encode() + "é\"".encode())
             for name, kind, raw in parts]
    item = {name: {kind: base64.b64encode(raw).decode() if kind == "B" else raw.decode()}
            for name, kind, raw in parts}
    names = tuple(name for name, _, _ in parts)
    renderer = KeysRenderer([(name, kind) for name, kind, _ in parts])
    rendered = renderer.render([raw for _, _, raw in parts])
    assert rendered is not None
    assert stream_record("KEYS_ONLY", names, rendered, None, stored(item)) == stream_record(
        "KEYS_ONLY", names, None, None, stored(item))


@given(st.integers(min_value=0, max_value=10**18))
def test_sequence_numbers_are_21_digit_decimals_ordered_like_positions(pos: int) -> None:
    text = sequence_number(pos)
    assert text.isdecimal() and len(text) == 21
    assert parse_sequence_number(text) == pos
    assert (sequence_number(pos) < sequence_number(pos + 1)) and len(sequence_number(pos + 1)) == 21


@pytest.mark.parametrize("text", ["", "abc", "1" * 41, "١٢٣", str(SEQUENCE_BASE - 1), "-5"])
def test_what_is_not_a_sequence_number(text: str) -> None:
    assert parse_sequence_number(text) is None


def test_a_rendered_record_is_dynamodbs_shape() -> None:
    made = stream_record("NEW_IMAGE", KEYS, None, None, stored(NEW))
    assert made is not None
    renderer = Renderer("eu-west", 7, "NEW_IMAGE")
    record = orjson.loads(renderer.render(42, 1_700_000_123_999, made[0], "us-east", made[1]))
    assert record == {
        "awsRegion": "eu-west", "eventName": "INSERT", "eventSource": "aws:dynamodb",
        "eventVersion": "1.1", "eventID": record["eventID"],
        "dynamodb": {"ApproximateCreationDateTime": 1_700_000_123,
                     "Keys": {"pk": {"S": "p"}, "sk": {"N": "1"}}, "NewImage": NEW,
                     "SequenceNumber": sequence_number(42), "SizeBytes": KEY_SIZE + item_size(NEW),
                     "StreamViewType": "NEW_IMAGE"}}
    assert record["eventID"].startswith("us-east:") and len(record["eventID"]) == 8 + 32
    other = orjson.loads(Renderer("ap-south", 7, "NEW_IMAGE").render(
        42, 0, made[0], "us-east", made[1]))
    assert other["eventID"] != record["eventID"]  # another region's record of the change


def test_a_ttl_removal_names_the_service() -> None:
    made = stream_record("KEYS_ONLY", KEYS, None, stored(OLD), None)
    assert made is not None
    record = orjson.loads(Renderer("r", 1, "KEYS_ONLY").render(1, 0, made[0] | BY_TTL, "r",
                                                               made[1]))
    assert record["eventName"] == "REMOVE"
    assert record["userIdentity"] == {"PrincipalId": "dynamodb.amazonaws.com", "Type": "Service"}


def test_get_records_answers_records_always_and_the_next_iterator_if_any() -> None:
    assert orjson.loads(get_records_response([], None)) == {"Records": []}
    assert orjson.loads(get_records_response([b'{"a":1}'], "it")) == {
        "Records": [{"a": 1}], "NextShardIterator": "it"}
