"""Order-preserving key encoding.

Theory of operation: a key attribute's value becomes bytes whose `memcmp` order equals
DynamoDB's order for that type, so SQLite's BLOB comparison serves Query ranges straight
from the primary-key index:
  S  UTF-8 bytes (DynamoDB orders strings by their UTF-8 bytes);
  B  the raw bytes;
  N  sign class byte, then a biased exponent and the decimal digits, with everything
     complemented for negative numbers so that larger magnitudes sort first.
Each key part is a whole column, so no terminators are needed between parts; within a
negative number a final 0x0A byte makes a shorter digit string sort after its longer
extensions (-0.12 > -0.123).

Key values have DynamoDB's size limits ("Service, account, and table quotas": a
partition key value at most 2,048 bytes, a sort key value at most 1,024), on the table's
keys and on secondary index keys alike; `check_key_size` applies them to the encoded
value, which for S and B is exactly the UTF-8 text or the raw bytes that are counted.

`decode_key_value` inverts the encoding, for showing stored keys (the conflict log) as
the attribute values the user wrote: numbers come back in canonical text.
"""

from __future__ import annotations

import base64
import decimal
from decimal import Decimal
from typing import Any

from atoll.checksum import crc32
from atoll.errors import KeyTooLong
from atoll.invariant import invariant
from atoll.model.numbers import format_number, to_decimal

MAX_PARTITION_KEY_BYTES = 2048
MAX_SORT_KEY_BYTES = 1024
# DynamoDB's messages, as it words them (no space before the size in the first).
_HASH_KEY_TOO_LONG = ("One or more parameter values were invalid: Size of hashkey has exceeded "
                      f"the maximum size limit of{MAX_PARTITION_KEY_BYTES} bytes")
_RANGE_KEY_TOO_LONG = ("One or more parameter values were invalid: Aggregated size of all range "
                       f"keys has exceeded the size limit of {MAX_SORT_KEY_BYTES} bytes")

_EXACT = decimal.Context(prec=100, Emax=999999, Emin=-999999)  # wider than any key
_NEGATIVE = 0x01
_ZERO = 0x02
_POSITIVE = 0x03
_EXPONENT_BIAS = 0x4000  # adjusted exponents lie within -130..125 (plus digit shifts)
_NEGATIVE_END = 0x0A  # above every complemented digit (0..9)


def encode_number(text: str) -> bytes:
    return encode_decimal(to_decimal(text))


def encode_decimal(value: Decimal) -> bytes:
    if not value:
        return bytes((_ZERO,))
    # normalize() needs an explicit context: the default one (28 digits) would round a
    # 38-digit key, so distinct keys would collide.
    sign, digits, exponent = value.normalize(_EXACT).as_tuple()
    invariant(isinstance(exponent, int), "finite number expected")
    # value = 0.d1d2..dn * 10**e  with d1 != 0
    e = len(digits) + int(exponent)
    if not sign:
        return bytes((_POSITIVE,)) + (e + _EXPONENT_BIAS).to_bytes(2, "big") + bytes(digits)
    body = bytes(9 - d for d in digits)
    return bytes((_NEGATIVE,)) + (_EXPONENT_BIAS - e).to_bytes(2, "big") + body + bytes((_NEGATIVE_END,))


def encode_key_value(value: dict[str, Any], kind: str) -> bytes:
    """Encode a validated key attribute value of the schema's type `kind`."""
    if kind == "S":
        return value["S"].encode()
    if kind == "N":
        return encode_number(value["N"])
    return base64.b64decode(value["B"])


def check_key_size(encoded: bytes, kind: str, partition: bool) -> None:
    """Refuse a key value over DynamoDB's limit (numbers, at most 38 digits, never are)."""
    if kind == "N":
        return
    if partition:
        if len(encoded) > MAX_PARTITION_KEY_BYTES:
            raise KeyTooLong(_HASH_KEY_TOO_LONG)
    elif len(encoded) > MAX_SORT_KEY_BYTES:
        raise KeyTooLong(_RANGE_KEY_TOO_LONG)


def decode_number(data: bytes) -> str:
    """The canonical text of an encoded number (ValueError if `data` is not one)."""
    if data == bytes((_ZERO,)):
        return "0"
    if len(data) < 4 or data[0] not in (_NEGATIVE, _POSITIVE):
        raise ValueError(f"not an encoded number: {data.hex()}")
    biased = int.from_bytes(data[1:3], "big")
    if data[0] == _POSITIVE:
        digits, e = tuple(data[3:]), biased - _EXPONENT_BIAS
    else:
        if data[-1] != _NEGATIVE_END:
            raise ValueError(f"not an encoded number: {data.hex()}")
        digits, e = tuple(9 - d for d in data[3:-1]), _EXPONENT_BIAS - biased
    if not digits or not all(0 <= d <= 9 for d in digits):
        raise ValueError(f"not an encoded number: {data.hex()}")
    # value = 0.d1d2..dn * 10**e
    value = Decimal((1 if data[0] == _NEGATIVE else 0, digits, e - len(digits)))
    return format_number(value)


def decode_key_value(data: bytes, kind: str) -> dict[str, Any]:
    """The attribute value (DynamoDB JSON) whose encoding under type `kind` is `data`;
    ValueError if it is not a valid encoding (UnicodeDecodeError is one)."""
    if kind == "S":
        return {"S": data.decode()}
    if kind == "N":
        return {"N": decode_number(data)}
    if kind == "B":
        return {"B": base64.b64encode(data).decode()}
    raise ValueError(f"not a key type: {kind!r}")


def partition_hash(pk: bytes) -> int:
    """The 32-bit hash that orders a Scan and splits it into segments (as DynamoDB's
    scan order follows the partition key's hash, not its value)."""
    return crc32(pk)


def prefix_successor(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every string starting with `prefix`
    (None when there is none: the prefix is all 0xFF)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes((trimmed[-1] + 1,))
