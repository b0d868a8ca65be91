"""DynamoDB numbers: exact decimals, 38 significant digits, magnitude 1E-130 .. <1E+126.

Theory of operation: a number arrives as a string; `normalize_number` parses it with
`decimal`, checks DynamoDB's limits and returns the canonical text DynamoDB answers with
(plain notation, no exponent, no trailing fractional zeros, no leading `+`, `-0` is `0`).
Everything stored is canonical, so equal numbers have equal text.
"""

from __future__ import annotations

import decimal
import re
from decimal import Decimal

from atoll.errors import ValidationError

MAX_DIGITS = 38
# |x| must be >= 1E-130 and < 1E+126: in `adjusted()` terms, -130 <= adjusted <= 125.
MIN_ADJUSTED_EXPONENT = -130
MAX_ADJUSTED_EXPONENT = 125

# DynamoDB's grammar: optional sign, digits with an optional point, optional exponent.
_NUMBER_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z", re.ASCII)

# Wide enough that parsing and arithmetic are exact; the 38-digit rule is checked apart.
_EXACT = decimal.Context(prec=200, Emax=999999, Emin=-999999, traps=[decimal.InvalidOperation])


def parse_number(text: object) -> Decimal:
    """Parse and check a number (any JSON value a request holds where a number belongs);
    raise ValidationError with DynamoDB's message."""
    if type(text) is not str or not _NUMBER_RE.match(text):
        raise ValidationError(f"The parameter cannot be converted to a numeric value: {text}")
    value = _EXACT.create_decimal(text)
    check_limits(value)
    return value


def check_limits(value: Decimal) -> None:
    if not value:
        return
    value = value.normalize(_EXACT)
    if len(value.as_tuple().digits) > MAX_DIGITS:
        raise ValidationError("Attempting to store more than 38 significant digits in a Number")
    adjusted = value.adjusted()
    if adjusted > MAX_ADJUSTED_EXPONENT:
        raise ValidationError(
            "Number overflow. Attempting to store a number with magnitude larger than supported range"
        )
    if adjusted < MIN_ADJUSTED_EXPONENT:
        raise ValidationError(
            "Number underflow. Attempting to store a number with magnitude smaller than supported range"
        )


def format_number(value: Decimal) -> str:
    """Canonical text: plain notation, minimal digits."""
    if not value:
        return "0"
    return format(value.normalize(_EXACT), "f")


_CANON_RE = re.compile(r"-?(?:0|[1-9]\d{0,37})(?:\.\d{0,37}[1-9])?\Z", re.ASCII)


def normalize_number(text: object) -> str:
    """Validate a number string and return DynamoDB's canonical text for it."""
    # Fast path: short plain integers/decimals that are already canonical.
    if type(text) is str and len(text) <= 39 and _CANON_RE.match(text) and text != "-0":
        digits = len(text.replace("-", "").replace(".", "").lstrip("0"))
        if digits <= MAX_DIGITS:
            return text
    return format_number(parse_number(text))


def to_decimal(text: str) -> Decimal:
    """A stored (already canonical) number as a Decimal."""
    return _EXACT.create_decimal(text)


def add(a: str, b: str) -> str:
    """a + b with DynamoDB's limits (used by SET a = a + :v and ADD)."""
    result = _EXACT.add(to_decimal(a), to_decimal(b))
    check_limits(result)
    return format_number(result)


def subtract(a: str, b: str) -> str:
    result = _EXACT.subtract(to_decimal(a), to_decimal(b))
    check_limits(result)
    return format_number(result)


def compare(a: str, b: str) -> int:
    """-1, 0 or 1 as the numbers a and b compare."""
    da, db = to_decimal(a), to_decimal(b)
    return (da > db) - (da < db)
