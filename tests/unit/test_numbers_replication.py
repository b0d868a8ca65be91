"""Numbers inside replicated changes: a change from a peer carrying a number no region may
store is refused as a bad change (BadChange) when it is decoded, before anything is
applied — whatever the peer's engine let through (an older build stored 1e999999999 as
Infinity), and wherever in the item the number sits.
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson
import pytest

from atoll.replication.change import Change, ItemWrite, decode_change
from atoll.replication.errors import BadChange

KEY = {"pk": {"S": "k"}}


def frame_with(item: dict[str, Any]) -> bytes:
    """A well-formed, canonical change frame writing `item` (checksum correct)."""
    doc = {"v": 1, "o": "eu-west", "s": 1, "h": 1,
           "ops": [{"w": "t", "pk": "6b", "sk": "", "i": item, "p": None}]}
    body = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
    return zlib.crc32(body).to_bytes(4, "big") + body


IMPOSSIBLE = ["Infinity", "-Infinity", "NaN", "inf", "1e999999999", "-1e999999999",
              "1e-999999999", "1E+126", "1E-131", "1" * 39, "", "abc",
              # storable values, but not in the canonical text every region stores
              "1.0", "1e2", "-0", "+1", "01"]


@pytest.mark.parametrize("text", IMPOSSIBLE)
@pytest.mark.parametrize("where", ["top", "map", "list", "set", "deep"])
def test_a_change_with_an_impossible_number_is_a_bad_change(text: str, where: str) -> None:
    value: dict[str, Any] = {
        "top": {"N": text},
        "map": {"M": {"a": {"S": "x"}, "n": {"N": text}}},
        "list": {"L": [{"N": "1"}, {"N": text}]},
        "set": {"NS": ["1", text]},
        "deep": {"M": {"l": {"L": [{"M": {"n": {"L": [{"N": text}]}}}]}}},
    }[where]
    with pytest.raises(BadChange, match="number"):
        decode_change(frame_with({**KEY, "v": value}))


@pytest.mark.parametrize("value", [
    {"N": "0"}, {"N": "-1.5"}, {"N": "1" + "0" * 125}, {"N": "0." + "0" * 129 + "1"},
    {"N": "9" * 38}, {"NS": ["1", "2.5", "-3"]}, {"M": {"n": {"L": [{"N": "7"}]}}},
])
def test_storable_numbers_decode(value: dict[str, Any]) -> None:
    change = decode_change(frame_with({**KEY, "v": value}))
    op = change.ops[0]
    assert isinstance(op, ItemWrite) and op.item == {**KEY, "v": value}


def test_a_local_change_cannot_be_made_with_an_impossible_number() -> None:
    with pytest.raises(BadChange, match="number"):
        Change.create("us-east", 1, 1, [ItemWrite("t", b"k", b"", {**KEY, "n": {"N": "Infinity"}})])


def test_a_number_nested_as_deep_as_json_goes_is_still_checked() -> None:
    value: dict[str, Any] = {"N": "Infinity"}
    for _ in range(50):  # about 190 JSON levels (orjson encodes up to 254)
        value = {"L": [{"M": {"x": value}}]} if _ % 2 else {"L": [value]}
    with pytest.raises(BadChange, match="number"):
        decode_change(frame_with({**KEY, "v": value}))
