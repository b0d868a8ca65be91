"""Attribute values: validation, normalisation and item size, in one pass.

Theory of operation: a request's attribute values arrive as DynamoDB JSON (`{"N": "1.0"}`).
`check_item` walks an item once: it rejects what DynamoDB rejects (with DynamoDB's
message), rewrites numbers to canonical text in place, and returns the item's size as
DynamoDB counts it, so a PutItem needs no second pass to enforce the 400 KB limit.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from atoll.errors import InvalidValue, SerializationError, ValidationError
from atoll.model.numbers import normalize_number

AttributeValue = dict[str, Any]
Item = dict[str, AttributeValue]

MAX_ITEM_SIZE_BYTES = 400 * 1024
# "Nested attribute depth: 32" — the attribute itself is level 1, so a value may sit at
# most 31 containers deep (captured against DynamoDB in the paritysuite conformance suite,
# tests/tier3/limits/nestingDepth.test.ts: 31 nested maps are stored, 32 refused).
MAX_NESTING_DEPTH = 32
NESTING_TOO_DEEP = ("Nesting Levels have exceeded supported limits: Attributes in the item have "
                    "nested levels beyond supported limit")
NESTING_REASON = "Nesting Levels have exceeded supported limits"  # a transaction's reason
# DynamoDB's size rules: List/Map have 3 bytes of overhead plus one per element.
_CONTAINER_OVERHEAD_BYTES = 3
_ELEMENT_OVERHEAD_BYTES = 1

SCALAR_TYPES = frozenset({"S", "N", "B"})
ALL_TYPES = frozenset({"S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"})

_EMPTY = "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes"
_MANY = ("Supplied AttributeValue has more than one datatypes set, "
         "must contain exactly one of the supported datatypes")


def number_size(text: str) -> int:
    digits = len(text.replace("-", "").replace(".", "").strip("0")) or 1
    return (digits + 1) // 2 + 1


def decode_binary(text: Any) -> bytes:
    if type(text) is not str:
        raise SerializationError("Base64 encoded binary value expected")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SerializationError(f"Invalid Base64 encoded value: {text[:64]}") from None


def check_value(value: Any, depth: int = 0) -> int:
    """Validate and normalise one attribute value in place; return its size in bytes."""
    if type(value) is not dict:
        raise SerializationError("Unexpected value type in payload; AttributeValue must be an object")
    if len(value) != 1:
        raise InvalidValue(_EMPTY if not value else _MANY)
    ((kind, inner),) = value.items()
    if kind == "S":
        if type(inner) is not str:
            raise SerializationError("NUMBER_VALUE cannot be converted to String")
        return len(inner) if inner.isascii() else len(inner.encode())
    if kind == "N":
        if type(inner) is not str:
            raise SerializationError("NUMBER_VALUE cannot be converted to String")
        canonical = normalize_number(inner)
        if canonical is not inner:
            value["N"] = canonical
        return number_size(canonical)
    if kind == "B":
        return len(decode_binary(inner))
    if kind == "BOOL":
        if type(inner) is not bool:
            raise SerializationError("Unexpected value type in payload; BOOL must be a boolean")
        return 1
    if kind == "NULL":
        if inner is not True:
            raise InvalidValue("One or more parameter values were invalid: "
                               "Null attribute value types must have the value of true")
        return 1
    if kind == "M":
        if type(inner) is not dict:
            raise SerializationError("Unexpected value type in payload; M must be an object")
        if inner:
            _check_depth(depth + 1)
        size = _CONTAINER_OVERHEAD_BYTES
        for name, element in inner.items():
            size += len(name.encode()) + check_value(element, depth + 1) + _ELEMENT_OVERHEAD_BYTES
        return size
    if kind == "L":
        if type(inner) is not list:
            raise SerializationError("Unexpected value type in payload; L must be an array")
        if inner:
            _check_depth(depth + 1)
        size = _CONTAINER_OVERHEAD_BYTES
        for element in inner:
            size += check_value(element, depth + 1) + _ELEMENT_OVERHEAD_BYTES
        return size
    if kind in ("SS", "NS", "BS"):
        return _check_set(value, kind, inner)
    if kind in ("s", "n", "b", "m", "l", "ss", "ns", "bs", "bool", "null"):
        raise InvalidValue(_EMPTY)
    raise SerializationError(f"Unknown AttributeValue type: {kind}")


def _check_depth(depth: int) -> None:
    """`depth` of the values inside a container: 0 is the attribute itself."""
    if depth >= MAX_NESTING_DEPTH:
        raise InvalidValue(NESTING_TOO_DEEP, reason=NESTING_REASON)


_SET_NAMES = {"SS": "string set", "NS": "number set", "BS": "binary set"}


def _check_set(value: AttributeValue, kind: str, members: Any) -> int:
    if type(members) is not list:
        raise SerializationError(f"Unexpected value type in payload; {kind} must be an array")
    if not members:
        raise InvalidValue(
            f"One or more parameter values were invalid: An {_SET_NAMES[kind]}  may not be empty")
    size = 0
    if kind == "SS":
        for m in members:
            if type(m) is not str:
                raise SerializationError("Unexpected value type in payload; SS members must be strings")
            size += len(m.encode())
        canonical = members
    elif kind == "NS":
        canonical = [normalize_number(m) for m in members]
        size = sum(number_size(m) for m in canonical)
        value["NS"] = canonical
    else:
        canonical = members
        size = sum(len(decode_binary(m)) for m in members)
    if len(set(canonical)) != len(canonical):
        raise _duplicates(kind, members, canonical)
    return size


_INVALID = "One or more parameter values were invalid: "


def _duplicates(kind: str, members: list[Any], canonical: list[Any]) -> InvalidValue:
    """DynamoDB's refusal of a set with a repeated member, in both of its wordings
    (captured in the paritysuite conformance suite, error-messages/valueLayers.test.ts):
    the older one lists the members as sent; the current one quotes them and lists them
    as its set saw them: in byte order up to the first repeat, then the repeat, then the
    rest as sent. Neither names the members of a number set."""
    if kind == "NS":
        return InvalidValue(f"{_INVALID}Input collection contains duplicates.",
                            "Input collection contains duplicates")
    suffix = "of type BS contains duplicates." if kind == "BS" else " contains duplicates."
    older = "[" + ", ".join(str(m) for m in members) + "]"
    sort_key = (lambda m: base64.b64decode(m)) if kind == "BS" else (lambda m: m.encode())
    seen: list[Any] = []
    shown: list[Any] = list(members)
    for position, member in enumerate(canonical):
        if member in seen:
            shown = sorted(seen, key=sort_key) + [member] + list(members[position + 1:])
            break
        seen.append(member)
    separator = "," if kind == "BS" else ", "
    current = "[" + separator.join(f'"{m}"' for m in shown) + "]"
    return InvalidValue(f"{_INVALID}Input collection {current}{suffix}",
                        f"{_INVALID}Input collection {older}{suffix}")


def check_item(item: Any) -> int:
    """Validate and normalise an item (map of name to value) in place; return its size."""
    if type(item) is not dict:
        raise SerializationError("Unexpected value type in payload; Item must be an object")
    size = 0
    for name, value in item.items():
        if not name:
            raise ValidationError("One or more parameter values were invalid: "
                                  "An attribute name cannot be empty")
        size += (len(name) if name.isascii() else len(name.encode())) + check_value(value)
    return size


def item_size(item: Item) -> int:
    """Size of an already-valid, normalised item (e.g. a replicated one): what
    `check_item` returns for it, without validating or normalising again."""
    return sum((len(name) if name.isascii() else len(name.encode())) + value_size(value)
               for name, value in item.items())


def value_size(value: AttributeValue) -> int:
    """Size of an already-valid, normalised value (see `check_value` for the rules)."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner) if inner.isascii() else len(inner.encode())
    if kind == "N":
        return number_size(inner)
    if kind == "B":
        return _base64_length(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return _CONTAINER_OVERHEAD_BYTES + sum(
            len(name.encode()) + value_size(element) + _ELEMENT_OVERHEAD_BYTES
            for name, element in inner.items())
    if kind == "L":
        return _CONTAINER_OVERHEAD_BYTES + sum(
            value_size(element) + _ELEMENT_OVERHEAD_BYTES for element in inner)
    if kind == "SS":
        return sum(len(m.encode()) for m in inner)
    if kind == "NS":
        return sum(number_size(m) for m in inner)
    return sum(_base64_length(m) for m in inner)  # BS


def _base64_length(text: str) -> int:
    """Bytes that valid, padded base64 `text` decodes to."""
    return len(text) // 4 * 3 - text[-2:].count("=") if text else 0


def check_item_size(size: int) -> None:
    if size > MAX_ITEM_SIZE_BYTES:
        raise ValidationError("Item size has exceeded the maximum allowed size")


def value_type(value: AttributeValue) -> str:
    for kind in value:
        return kind
    raise ValidationError(_EMPTY)
