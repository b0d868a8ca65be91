"""Attribute values: validation, normalisation and item size (atoll.model.values).

DynamoDB Developer Guide, "DynamoDB item sizes and formats": a string is its UTF-8 bytes;
a number is about 1 byte per two significant digits plus 1; a binary value its raw bytes;
BOOL and NULL 1 byte; a List or Map 3 bytes plus 1 byte per element plus the elements
(a map element also counts its name); every attribute adds its name's UTF-8 bytes. The
item limit is 400 KB. "Data types": sets may not be empty and hold unique values; nesting
goes up to 32 levels.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from atoll.errors import SerializationError, ValidationError
from atoll.model.values import (
    MAX_ITEM_SIZE_BYTES,
    check_item,
    check_item_size,
    check_value,
    number_size,
)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


SIZES: list[tuple[str, dict[str, Any], int]] = [
    ("string", {"a": {"S": "hello"}}, 1 + 5),
    ("empty string", {"a": {"S": ""}}, 1),
    ("utf-8 string", {"a": {"S": "é😀"}}, 1 + 2 + 4),
    ("utf-8 name", {"é": {"S": "x"}}, 2 + 1),
    ("number 1 digit", {"n": {"N": "7"}}, 1 + 2),
    ("number 2 digits", {"n": {"N": "12"}}, 1 + 2),
    ("number 3 digits", {"n": {"N": "123"}}, 1 + 3),
    ("number trailing zeros trimmed", {"n": {"N": "1000000"}}, 1 + 2),
    ("number leading zeros trimmed", {"n": {"N": "0.0001"}}, 1 + 2),
    ("negative number", {"n": {"N": "-12.34"}}, 1 + 3),
    ("zero", {"n": {"N": "0"}}, 1 + 2),
    ("38 digits", {"n": {"N": "1" * 38}}, 1 + 20),
    ("binary", {"b": {"B": b64(b"\x00\x01\x02")}}, 1 + 3),
    ("bool", {"t": {"BOOL": True}}, 1 + 1),
    ("null", {"z": {"NULL": True}}, 1 + 1),
    ("empty map", {"m": {"M": {}}}, 1 + 3),
    ("empty list", {"l": {"L": []}}, 1 + 3),
    ("list", {"l": {"L": [{"S": "ab"}, {"N": "1"}]}}, 1 + 3 + (2 + 1) + (2 + 1)),
    ("map", {"m": {"M": {"k": {"S": "ab"}}}}, 1 + 3 + (1 + 2 + 1)),
    ("nested", {"m": {"M": {"l": {"L": [{"BOOL": False}]}}}}, 1 + 3 + (1 + (3 + 1 + 1) + 1)),
    ("string set", {"s": {"SS": ["ab", "c"]}}, 1 + 3),
    ("number set", {"s": {"NS": ["1", "12", "123"]}}, 1 + 2 + 2 + 3),
    ("binary set", {"s": {"BS": [b64(b"ab"), b64(b"c")]}}, 1 + 3),
    ("several attributes", {"pk": {"S": "k"}, "v": {"N": "12"}}, (2 + 1) + (1 + 2)),
]


@pytest.mark.parametrize("item,size", [s[1:] for s in SIZES], ids=[s[0] for s in SIZES])
def test_item_size(item: dict[str, Any], size: int) -> None:
    assert check_item(item) == size


def test_number_size_rule() -> None:
    # "(1 byte per two significant digits) + (1 byte)"
    for digits in range(1, 39):
        assert number_size("9" * digits) == (digits + 1) // 2 + 1


def test_item_size_limit_is_400_kb_inclusive() -> None:
    payload = "x" * (MAX_ITEM_SIZE_BYTES - 1)
    at_limit = check_item({"d": {"S": payload}})
    assert at_limit == MAX_ITEM_SIZE_BYTES
    check_item_size(at_limit)
    with pytest.raises(ValidationError, match="Item size has exceeded the maximum allowed size"):
        check_item_size(at_limit + 1)


def _nest(levels: int, kind: str = "M") -> dict[str, Any]:
    value: dict[str, Any] = {"N": "1"}
    for _ in range(levels):
        value = {"M": {"x": value}} if kind == "M" else {"L": [value]}
    return value


@pytest.mark.parametrize("kind", ["M", "L"])
def test_nesting_up_to_32_levels(kind: str) -> None:
    # The attribute is level 1: 31 containers put the innermost value at level 32, the
    # deepest DynamoDB stores (paritysuite conformance suite, nestingDepth.test.ts).
    check_value(_nest(31, kind))
    check_value({kind: {"x": _nest(30, "M"), "y": {"M": {}}} if kind == "M" else [{"L": []}]})
    with pytest.raises(ValidationError, match="Nesting Levels have exceeded supported limits: "
                                              "Attributes in the item have nested levels"):
        check_value(_nest(32, kind))


def test_numbers_are_normalised_in_place_everywhere() -> None:
    item = {"n": {"N": "1.50"}, "ns": {"NS": ["1e2", "-0"]},
            "m": {"M": {"l": {"L": [{"N": "007"}]}}}}
    check_item(item)
    assert item == {"n": {"N": "1.5"}, "ns": {"NS": ["100", "0"]},
                    "m": {"M": {"l": {"L": [{"N": "7"}]}}}}


INVALID: list[tuple[str, Any, type[Exception], str]] = [
    ("empty string set", {"SS": []}, ValidationError, "An string set  may not be empty"),
    ("empty number set", {"NS": []}, ValidationError, "number set"),
    ("empty binary set", {"BS": []}, ValidationError, "binary set"),
    ("duplicate strings", {"SS": ["a", "b", "a"]}, ValidationError,
     'Input collection ["a", "b", "a"] contains duplicates'),
    ("duplicate numbers", {"NS": ["1", "2", "1"]}, ValidationError, "contains duplicates"),
    ("numbers equal after normalising", {"NS": ["1.0", "1"]}, ValidationError,
     "contains duplicates"),
    ("duplicate binaries", {"BS": [b64(b"a"), b64(b"a")]}, ValidationError, "contains duplicates"),
    ("no type", {}, ValidationError, "Supplied AttributeValue is empty"),
    ("two types", {"S": "a", "N": "1"}, ValidationError, "more than one datatypes"),
    ("lower-case type", {"s": "a"}, ValidationError, "Supplied AttributeValue is empty"),
    ("unknown type", {"X": "a"}, SerializationError, ""),
    ("NULL false", {"NULL": False}, ValidationError,
     "Null attribute value types must have the value of true"),
    ("BOOL as string", {"BOOL": "true"}, SerializationError, ""),
    ("S as number", {"S": 5}, SerializationError, ""),
    ("N as number", {"N": 5}, SerializationError, ""),
    ("B not base64", {"B": "***"}, SerializationError, ""),
    ("SS member not string", {"SS": ["a", 1]}, SerializationError, ""),
    ("M not object", {"M": []}, SerializationError, ""),
    ("L not array", {"L": {}}, SerializationError, ""),
    ("not an object", "S", SerializationError, ""),
    ("bad number in a set", {"NS": ["1", "x"]}, ValidationError, "numeric value"),
    ("bad value deep inside", {"M": {"a": {"L": [{"SS": []}]}}}, ValidationError, "may not be empty"),
]


@pytest.mark.parametrize("value,error,fragment", [i[1:] for i in INVALID], ids=[i[0] for i in INVALID])
def test_invalid_values(value: Any, error: type[Exception], fragment: str) -> None:
    with pytest.raises(error) as caught:
        check_value(value)
    assert fragment in caught.value.message  # type: ignore[attr-defined]


def test_empty_strings_and_binaries_are_values() -> None:
    # Since May 2020 DynamoDB accepts empty S and B values for non-key attributes,
    # including inside lists and maps.
    assert check_value({"S": ""}) == 0
    assert check_value({"B": ""}) == 0
    assert check_value({"L": [{"S": ""}]}) == 3 + 1


def test_empty_attribute_name_is_rejected() -> None:
    with pytest.raises(ValidationError, match="attribute name"):
        check_item({"": {"S": "x"}})


def test_item_must_be_an_object() -> None:
    with pytest.raises(SerializationError):
        check_item([{"S": "x"}])
