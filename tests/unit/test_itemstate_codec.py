"""Item state bytes: the compact forms, exact layouts, and refusal of anything malformed."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atoll.model.writes import INCREMENT, REMOVE, SET, AttributeWrite
from atoll.replication.errors import BadChange
from atoll.replication.itemstate import (
    MAX_REGIONS,
    MAX_STATE_BYTES,
    Dot,
    ItemState,
    decode_state,
    encode_state,
    join,
    materialize,
    put,
    update,
    verify_item,
)
from tests.itemstate_world import KEY, KEY_NAMES, World, skews, steps

H = 111_411_200_000_000_000  # an hlc: 2023-11-14 in ms, shifted left 16 bits
ITEM = {**KEY, "x": {"S": "v"}, "n": {"N": "5"}, "s": {"SS": ["f", "e"]}}


def roundtrip(state: ItemState, item: dict[str, Any] | None) -> bytes:
    data = encode_state(state, item, KEY_NAMES)
    assert decode_state(data, item, KEY_NAMES) == state
    return data


def test_a_put_is_its_context_and_its_gen() -> None:
    state, item = put(None, ITEM, KEY_NAMES, Dot(H, "us-east"))
    assert item == {**KEY, "x": {"S": "v"}, "n": {"N": "5"}, "s": {"SS": ["e", "f"]}}
    assert roundtrip(state, item) == b'{"c":{"us-east":%d},"g":[[%d,"us-east",1]]}' % (H, H)


def test_a_put_over_another_regions_write_keeps_both_in_the_context() -> None:
    first, item = put(None, ITEM, KEY_NAMES, Dot(H, "us-east"))
    state, item = put(first, ITEM, KEY_NAMES, Dot(H - 5, "eu-west"))
    assert roundtrip(state, item) == (b'{"c":{"eu-west":%d,"us-east":%d},'
                                      b'"g":[[%d,"eu-west",1]]}' % (H - 5, H, H - 5))


def test_an_update_lists_the_attributes_it_wrote_without_their_values() -> None:
    state, item = put(None, ITEM, KEY_NAMES, Dot(H, "a"))
    state, item = update(state, item, [AttributeWrite(SET, "x", {"S": "w"}),
                                       AttributeWrite(REMOVE, "gone", None)], Dot(H + 1, "a"),
                         KEY)
    assert roundtrip(state, item) == (
        b'{"a":{"gone":{"r":[[%d,"a"]]},"x":{"r":[[%d,"a"]]}},"c":{"a":%d},'
        b'"g":[[%d,"a",1]]}' % (H + 1, H + 1, H + 1, H))


def test_a_counter_keeps_its_base_value_and_trims_zero_figures() -> None:
    state, item = put(None, ITEM, KEY_NAMES, Dot(H, "a"))
    state, item = update(state, item, [AttributeWrite(INCREMENT, "n", {"N": "7"},
                                                      {"N": "2"})], Dot(H + 1, "a"), KEY)
    state, item = update(state, item, [AttributeWrite(INCREMENT, "n", {"N": "6.5"},
                                                      {"N": "-0.5"})], Dot(H + 2, "a"), KEY)
    assert item["n"] == {"N": "6.5"}
    data = roundtrip(state, item)
    assert b'"n":{"n":{"a":["2","0.5"]},"r":[[%d,"a",{"N":"5"}]]}' % H in data


def test_an_update_only_item_takes_its_most_common_dot_as_base() -> None:
    writes = [AttributeWrite(SET, name, {"S": name}) for name in ("p", "q", "r")]
    state, item = update(None, None, writes, Dot(H, "a"), KEY)
    state, item = update(state, item, [AttributeWrite(SET, "p", {"S": "new"})],
                         Dot(H + 1, "a"), KEY)
    assert roundtrip(state, item) == (b'{"a":{"p":{"r":[[%d,"a"]]}},"b":[%d,"a"],'
                                      b'"c":{"a":%d}}' % (H + 1, H, H + 1))


def test_concurrent_states_round_trip_with_their_losers_values() -> None:
    base, item = put(None, ITEM, KEY_NAMES, Dot(H, "a"))
    left, _ = update(base, item, [AttributeWrite(SET, "x", {"S": "left"})], Dot(H + 1, "a"),
                     KEY)
    right, _ = update(base, item, [AttributeWrite(SET, "x", {"S": "right"})], Dot(H + 2, "b"),
                      KEY)
    joined = join(left, right)
    shown = materialize(joined, KEY)
    data = roundtrip(joined, shown)
    assert b'"x":{"r":[[%d,"a",{"S":"left"}],[%d,"b"]]}' % (H + 1, H + 2) in data
    assert b'"o":[[%d,"b",{"a":%d}]]' % (H + 2, H) in data


# ---- refusal ----------------------------------------------------------------------------

GOOD_ITEM = {**KEY, "x": {"S": "v"}}


def doc_bytes(doc: Any) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


BAD_DOCS = [
    ("not a dict", []),
    ("no context", {"g": [[5, "a", 1]]}),
    ("unknown field", {"c": {"a": 5}, "g": [[5, "a", 1]], "z": 1}),
    ("empty context", {"c": {}}),
    ("hlc zero", {"c": {"a": 0}}),
    ("hlc negative", {"c": {"a": -1}}),
    ("hlc a float", {"c": {"a": 5.0}}),
    ("hlc a bool", {"c": {"a": True}}),
    ("hlc too large", {"c": {"a": 1 << 63}}),
    ("empty region", {"c": {"": 5}}),
    ("long region", {"c": {"r" * 65: 5}}),
    ("too many regions", {"c": {f"r{i}": 5 for i in range(MAX_REGIONS + 1)}}),
    ("gen beyond context", {"c": {"a": 5}, "g": [[6, "a", 1]]}),
    ("two gens of a region", {"c": {"a": 5}, "g": [[4, "a", 1], [5, "a", 1]]}),
    ("gen flag 2", {"c": {"a": 5}, "g": [[5, "a", 2]]}),
    ("gen flag bool", {"c": {"a": 5}, "g": [[5, "a", True]]}),
    ("gens not sorted", {"c": {"a": 5, "b": 6}, "g": [[6, "b", 1], [5, "a", 1]]}),
    ("empty gens", {"c": {"a": 5}, "a": {"x": {"r": [[5, "a"]]}}, "g": []}),
    ("base attribute without a base", {"c": {"a": 5}}),
    ("empty attribute", {"c": {"a": 5}, "a": {"x": {}}}),
    ("unknown attribute field", {"c": {"a": 5}, "a": {"x": {"q": 1}}}),
    ("key attribute listed", {"c": {"a": 5}, "a": {"pk": {"r": [[5, "a"]]}, "x": {"r": [[5, "a"]]}}}),
    ("value entry too long", {"c": {"a": 5}, "a": {"x": {"r": [[5, "a", None, 1]]}}}),
    ("value entry beyond context", {"c": {"a": 5}, "a": {"x": {"r": [[6, "a"]]}}}),
    ("two values of a region", {"c": {"a": 5}, "a": {"x": {"r": [[4, "a", None], [5, "a"]]}}}),
    ("value of an unknown type", {"c": {"a": 5}, "a": {"x": {"r": [[5, "a"]]},
                                                       "y": {"r": [[5, "a", {"Q": 1}]]}}}),
    ("impossible number", {"c": {"a": 5}, "a": {"x": {"r": [[5, "a"]]},
                                                 "y": {"r": [[5, "a", {"N": "1e999999999"}]]}}}),
    ("non-canonical number", {"c": {"a": 5}, "a": {"x": {"r": [[5, "a"]]},
                                                    "y": {"r": [[5, "a", {"N": "1.50"}]]}}}),
    ("value not elided", {"c": {"a": 5}, "a": {"x": {"r": [[5, "a", {"S": "v"}]]}}}),
    ("base form listed", {"c": {"a": 5}, "a": {"x": {"r": [[5, "a"]]}}, "g": [[5, "a", 1]]}),
    ("base equal to g*", {"b": [5, "a"], "c": {"a": 5}, "g": [[5, "a", 1]]}),
    ("non-canonical number member", {"c": {"a": 5}, "a": {"x": {"r": [[5, "a"]]},
                                                            "y": {"s": {"NS": {"1.0": [[5, "a"]]}}}}}),
    ("non-canonical binary member", {"c": {"a": 5}, "a": {"x": {"r": [[5, "a"]]},
                                                           "y": {"s": {"BS": {"QR==": [[5, "a"]]}}}}}),
    ("member without dots", {"c": {"a": 5}, "a": {"x": {"r": [[5, "a"]]},
                                                   "y": {"s": {"SS": {"e": []}}}}}),
    ("unknown set type", {"c": {"a": 5}, "a": {"x": {"r": [[5, "a"]]},
                                                "y": {"s": {"LS": {"e": [[5, "a"]]}}}}}),
    ("floor above sum", {"c": {"a": 5}, "a": {"x": {"r": [[5, "a"]]},
                                               "y": {"n": {"a": ["1", "0", "2"]}}}}),
    ("trailing zero figure", {"c": {"a": 5}, "a": {"x": {"r": [[5, "a"]]},
                                                    "y": {"n": {"a": ["1", "0"]}}}}),
    ("non-canonical figure", {"c": {"a": 5}, "a": {"x": {"r": [[5, "a"]]},
                                                    "y": {"n": {"a": ["01"]}}}}),
    ("negative figure", {"c": {"a": 5}, "a": {"x": {"r": [[5, "a"]]},
                                               "y": {"n": {"a": ["-1"]}}}}),
    ("all-zero contribution", {"c": {"a": 5}, "a": {"x": {"r": [[5, "a"]]},
                                                     "y": {"n": {"a": []}}}}),
    ("contribution of an unseen region", {"c": {"a": 5}, "a": {"x": {"r": [[5, "a"]]},
                                                                "y": {"n": {"b": ["1"]}}}}),
    ("op carried by nothing", {"c": {"a": 5, "b": 3}, "a": {"x": {"r": [[5, "a"]]}},
                               "b": [5, "a"], "o": [[3, "b", {"a": 2}]]}),
    ("op observing its own region", {"c": {"a": 5}, "a": {"x": {"r": [[5, "a"]]}},
                                     "b": [5, "a"], "o": [[5, "a", {"a": 2}]]}),
    ("op observing the unseen", {"c": {"a": 5, "b": 3}, "a": {"x": {"r": [[3, "b"]]}},
                                 "o": [[3, "b", {"a": 9}]]}),
    ("empty markers", {"c": {"a": 5}, "x": []}),
    ("two markers of a region", {"c": {"a": 5}, "x": [[4, "a"], [5, "a"]]}),
]


@pytest.mark.parametrize("doc", [doc for _name, doc in BAD_DOCS],
                         ids=[name for name, _doc in BAD_DOCS])
def test_malformed_states_are_refused(doc: Any) -> None:
    with pytest.raises(BadChange):
        decode_state(doc_bytes(doc), GOOD_ITEM, KEY_NAMES)


def test_every_bad_document_is_otherwise_well_formed_json() -> None:
    """The refusal cases differ from a good state in one respect each."""
    good = {"c": {"a": 5}, "g": [[5, "a", 1]]}
    assert decode_state(doc_bytes(good), GOOD_ITEM, KEY_NAMES).gens == {"a": (5, True)}


@pytest.mark.parametrize("data", [b"", b"{", b"null", b'{"c":{"a":5}} ', b"\xff",
                                  b'{"c": {"a": 5}}', b" " * 10])
def test_non_canonical_or_broken_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(BadChange):
        decode_state(data, None, KEY_NAMES)


def test_oversized_states_are_refused_before_parsing() -> None:
    with pytest.raises(BadChange, match="too large"):
        decode_state(b" " * (MAX_STATE_BYTES + 1), None, KEY_NAMES)


def test_an_item_that_does_not_match_its_state_is_refused() -> None:
    state, item = put(None, ITEM, KEY_NAMES, Dot(H, "a"))
    verify_item(state, item, KEY)
    with pytest.raises(BadChange):
        verify_item(state, {**item, "x": {"S": "forged"}}, KEY)


def test_two_states_that_disagree_about_one_write_cannot_be_joined() -> None:
    left, _ = put(None, ITEM, KEY_NAMES, Dot(H, "a"))
    right, _ = put(None, {**ITEM, "x": {"S": "other"}}, KEY_NAMES, Dot(H, "a"))
    with pytest.raises(BadChange):
        join(left, right)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(skews, st.lists(steps, min_size=5, max_size=30), st.randoms(use_true_random=False))
def test_damaged_bytes_are_refused_or_decode_canonically(
        skew: dict[str, int], plan: list[Any], rnd: random.Random) -> None:
    """A damaged state never raises anything but BadChange, and what it decodes to (a
    damage can still be a valid state) re-encodes to exactly the damaged bytes."""
    world = World(skew).run(plan)
    for state in world.produced[-5:]:
        item = materialize(state, KEY)
        data = bytearray(encode_state(state, item, KEY_NAMES))
        for _ in range(3):
            damaged = bytearray(data)
            damaged[rnd.randrange(len(damaged))] = rnd.randrange(256)
            try:
                decoded = decode_state(bytes(damaged), item, KEY_NAMES)
            except BadChange:
                continue
            assert encode_state(decoded, item, KEY_NAMES) == bytes(damaged)
