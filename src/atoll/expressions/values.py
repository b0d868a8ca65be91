"""Attribute-value semantics used by conditions and updates: equality, order, size.

Theory of operation: values stay in DynamoDB's wire shape (`{"N": "1.5"}`). Numbers are
compared as exact decimals, strings by code point (the same order as DynamoDB's UTF-8
byte order), binaries by their decoded bytes. Values of different types are simply
unequal and unordered: a condition never raises because an item holds an unexpected
type. Malformed values (which the api layer should never let through) are treated the
same way, so evaluation cannot crash on them.
"""

from __future__ import annotations

import base64
import binascii
import decimal
from decimal import Decimal
from typing import Any

from atoll.model.numbers import to_decimal

AttributeValue = dict[str, Any]

SET_TYPES = frozenset({"SS", "NS", "BS"})
ORDERED_TYPES = frozenset({"S", "N", "B"})
VALID_TYPES = ("S", "SS", "N", "NS", "B", "BS", "BOOL", "NULL", "L", "M")
TYPE_WORDS = {"S": "STRING", "N": "NUMBER", "B": "BINARY", "NULL": "NULL", "BOOL": "BOOLEAN",
              "L": "LIST", "M": "MAP", "SS": "STRING_SET", "NS": "NUMBER_SET",
              "BS": "BINARY_SET"}


def type_of(value: Any) -> str | None:
    """The type tag of an attribute value, or None if it is not one."""
    if type(value) is dict and len(value) == 1:
        for kind in value:
            return kind  # type: ignore[no-any-return]
    return None


def as_decimal(text: Any) -> Decimal | None:
    if type(text) is not str:
        return None
    try:
        result = to_decimal(text)
    except (decimal.InvalidOperation, ValueError):
        return None
    return None if not result.is_finite() else result


def as_bytes(text: Any) -> bytes | None:
    if type(text) is not str:
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _scalar_key(kind: str, inner: Any) -> Any:
    """A Python value that orders and compares like the DynamoDB scalar."""
    if kind == "N":
        return as_decimal(inner)
    if kind == "B":
        return as_bytes(inner)
    if kind == "S":
        return inner if type(inner) is str else None
    return None


def _member_keys(kind: str, members: Any) -> frozenset[Any] | None:
    if type(members) is not list:
        return None
    scalar = kind[0]
    keys = set()
    for member in members:
        key = _scalar_key(scalar, member)
        if key is None:
            return None
        keys.add(key)
    return frozenset(keys)


def equal(a: Any, b: Any) -> bool:
    """DynamoDB equality: same type and same value (sets ignore order)."""
    if a is None or b is None:
        return False
    kind = type_of(a)
    if kind is None or kind != type_of(b):
        return False
    x, y = a[kind], b[kind]
    if kind == "S":
        return x == y  # type: ignore[no-any-return]
    if kind in ("N", "B"):
        if x == y and type(x) is str:
            return True
        kx = _scalar_key(kind, x)
        return kx is not None and kx == _scalar_key(kind, y)
    if kind in SET_TYPES:
        keys = _member_keys(kind, x)
        return keys is not None and keys == _member_keys(kind, y)
    if kind == "L":
        if type(x) is not list or type(y) is not list or len(x) != len(y):
            return False
        return all(equal(p, q) for p, q in zip(x, y))
    if kind == "M":
        if type(x) is not dict or type(y) is not dict or x.keys() != y.keys():
            return False
        return all(equal(v, y[k]) for k, v in x.items())
    return x == y and type(x) is type(y)  # BOOL, NULL


def order(a: Any, b: Any) -> int | None:
    """-1/0/1 for two comparable scalars of the same type, None when not comparable."""
    if a is None or b is None:
        return None
    kind = type_of(a)
    if kind not in ORDERED_TYPES or kind != type_of(b):
        return None
    x = _scalar_key(kind, a[kind])  # type: ignore[index]
    y = _scalar_key(kind, b[kind])  # type: ignore[index]
    if x is None or y is None:
        return None
    return (x > y) - (x < y)


def size(value: Any) -> int | None:
    """size(): characters of S, bytes of B, members of sets, lists and maps."""
    kind = type_of(value)
    if kind is None:
        return None
    inner = value[kind]
    if kind == "S":
        return len(inner) if type(inner) is str else None
    if kind == "B":
        raw = as_bytes(inner)
        return None if raw is None else len(raw)
    if kind in SET_TYPES or kind == "L":
        return len(inner) if type(inner) is list else None
    if kind == "M":
        return len(inner) if type(inner) is dict else None
    return None


def begins_with(value: Any, prefix: Any) -> bool:
    kind = type_of(value)
    if kind not in ("S", "B") or kind != type_of(prefix):
        return False
    if kind == "S":
        x, y = value["S"], prefix["S"]
        return type(x) is str and type(y) is str and x.startswith(y)
    raw, head = as_bytes(value["B"]), as_bytes(prefix["B"])
    return raw is not None and head is not None and raw.startswith(head)


def contains(value: Any, operand: Any) -> bool:
    """contains(): substring of S/B, member of a set, element of a list."""
    kind = type_of(value)
    other = type_of(operand)
    if kind is None or other is None:
        return False
    inner = value[kind]
    if kind == "S":
        return other == "S" and type(inner) is str and type(operand["S"]) is str \
            and operand["S"] in inner
    if kind == "B":
        raw, part = as_bytes(inner), as_bytes(operand.get("B"))
        return other == "B" and raw is not None and part is not None and part in raw
    if kind in SET_TYPES:
        if other != kind[0] or type(inner) is not list:
            return False
        key = _scalar_key(other, operand[other])
        return key is not None and any(_scalar_key(other, m) == key for m in inner)
    if kind == "L":
        return type(inner) is list and any(equal(element, operand) for element in inner)
    return False


def show(value: AttributeValue) -> str:
    """How DynamoDB prints a value in messages: `AttributeValue: {N:5}`."""
    kind = type_of(value)
    if kind is None:
        return "AttributeValue: {}"
    return "AttributeValue: {" + kind + ":" + str(value[kind]) + "}"
