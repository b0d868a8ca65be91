"""A request's Key encoded by TableDef.encode_key: the short way for well-formed string
keys answers exactly as the checked way (the naive reference, `_checked_key`) — the same
bytes, or the same error with the same message — for keys of every shape: string, number
and binary key schemas, values well formed or not, at and over the size limits, extra
and missing attributes."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest

from atoll.engine.tabledef import TableDef, parse_create_table
from atoll.errors import AtollError


def _table(hash_type: str, range_type: str | None) -> TableDef:
    schema = [{"AttributeName": "pk", "KeyType": "HASH"}]
    definitions = [{"AttributeName": "pk", "AttributeType": hash_type}]
    if range_type is not None:
        schema.append({"AttributeName": "sk", "KeyType": "RANGE"})
        definitions.append({"AttributeName": "sk", "AttributeType": range_type})
    return parse_create_table({"TableName": "keys_test", "BillingMode": "PAY_PER_REQUEST",
                               "KeySchema": schema, "AttributeDefinitions": definitions}, 0.0)


TABLES = [_table(h, r) for h in ("S", "N", "B") for r in (None, "S", "N", "B")]

# Values of every kind a key may be sent: well formed, malformed, the wrong type, sizes at
# and over the partition (2048 bytes) and sort (1024 bytes) key limits, in ASCII and in
# characters of several UTF-8 bytes.
VALUES: list[Any] = [
    {"S": "a"}, {"S": "é"}, {"S": ""}, {"S": 5}, {"S": None}, {"S": ["x"]},
    {"S": "x" * 1024}, {"S": "x" * 1025}, {"S": "x" * 2048}, {"S": "x" * 2049},
    {"S": "é" * 512}, {"S": "é" * 513}, {"S": "é" * 1024}, {"S": "é" * 1025},
    {"N": "1"}, {"N": "01.50"}, {"N": "abc"}, {"N": ""}, {"N": 1}, {"N": "1e126"},
    {"B": "AAE="}, {"B": ""}, {"B": "not base64!"}, {"B": 3},
    {"SS": ["a"]}, {"BOOL": True}, {"NULL": True}, {"M": {}}, {"s": "a"}, {"X": "a"},
    {"S": "a", "N": "1"}, {}, "a", None, 5,
]


def _outcome(encode: Any, key: Any) -> tuple[str, Any]:
    try:
        return "ok", encode(key)
    except AtollError as error:
        return type(error).__name__, error.message


def _same(table: TableDef, key: Any) -> None:
    short = _outcome(table.encode_key, copy.deepcopy(key))
    checked = _outcome(table._checked_key, copy.deepcopy(key))
    assert short == checked, (table.attribute_types, key)


@pytest.mark.parametrize("table", TABLES, ids=lambda t: "-".join(
    t.attribute_types[n] for n in t.key_names()))
def test_every_key_is_encoded_or_refused_as_the_checked_way_does(table: TableDef) -> None:
    names = table.key_names()
    for values in itertools.product(VALUES, repeat=len(names)):
        _same(table, dict(zip(names, values, strict=True)))
    for value in VALUES:  # an attribute missing, one too many, the wrong name, not a map
        _same(table, {names[0]: value})
        _same(table, {**{n: {"S": "a"} for n in names}, "extra": value})
        _same(table, {"other": value})
        _same(table, {names[-1]: value, "other": {"S": "a"}})
        if type(value) is dict:  # (encode_key takes a map: the shape check saw to it)
            _same(table, value)
    _same(table, {})


def test_the_short_way_gives_the_bytes_of_a_string_key() -> None:
    table = _table("S", "S")
    key = table.encode_key({"pk": {"S": "item-1"}, "sk": {"S": "é"}})
    assert key[1:] == (b"item-1", "é".encode())
    assert key == table._checked_key({"pk": {"S": "item-1"}, "sk": {"S": "é"}})
