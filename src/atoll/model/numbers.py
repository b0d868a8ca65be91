"""DynamoDB numbers: exact decimals, 38 significant digits, magnitude 1E-130 .. <1E+126.

Theory of operation: a number arrives as a string; `normalize_number` checks it against
DynamoDB's limits and returns the canonical text DynamoDB answers with (plain notation,
no exponent, no trailing fractional zeros, no leading `+`, `-0` is `0`). Everything
stored is canonical, so equal numbers have equal text.

The limits are judged on the text itself, before any `Decimal` exists: the count of
significant digits and the adjusted exponent (the power of ten of the first significant
digit) come from the digit strings and the exponent's digits. A decimal context has an
exponent range of its own and quietly turns `1e999999999` into Infinity and
`1e-999999999` into 0; judging the text first means no exponent, however long, reaches
one. Zero takes the magnitude its text names, as DynamoDB (a Java BigDecimal) does:
`0e126` overflows while `0.0e126` (magnitude 125) is zero.

Arithmetic (`SET a = a + :v`, `ADD`) is exact: both operands are in range, so their
sum has at most ~300 digits, within the working precision. A result that does not fit
(more than 38 significant digits, or beyond 1E+126) is refused with DynamoDB's "Number
overflow" message — DynamoDB answers 1E+50 + 1 with that message too, not with the
38-digit one — and one below 1E-130 with "Number underflow".
"""

from __future__ import annotations

import decimal
import re
from collections.abc import Callable
from decimal import Decimal

from atoll.errors import InvalidValue, ValidationError
from atoll.invariant import InvariantViolation

MAX_DIGITS = 38
# |x| must be >= 1E-130 and < 1E+126: in `adjusted()` terms, -130 <= adjusted <= 125.
MIN_ADJUSTED_EXPONENT = -130
MAX_ADJUSTED_EXPONENT = 125

OVERFLOW = "Number overflow. Attempting to store a number with magnitude larger than supported range"
UNDERFLOW = "Number underflow. Attempting to store a number with magnitude smaller than supported range"
TOO_PRECISE = "Attempting to store more than 38 significant digits in a Number"
NOT_NUMERIC = "The parameter cannot be converted to a numeric value"

# DynamoDB's grammar: optional sign, digits with an optional point, optional exponent.
_NUMBER_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z", re.ASCII)
# The same text cut into its parts (applied only to text `_NUMBER_RE` accepted).
_PARTS_RE = re.compile(r"[+-]?(\d*)\.?(\d*)(?:[eE]([+-]?)(\d+))?\Z", re.ASCII)
# An exponent with more digits than this is beyond every limit whatever the digits are
# (a request body holds at most 16 MB of them); it is clamped, never converted whole.
_EXPONENT_DIGITS = 18

# Wide enough that parsing a valid number and formatting it are exact.
_EXACT = decimal.Context(prec=200, Emax=999999, Emin=-999999, traps=[decimal.InvalidOperation])
# Arithmetic on two in-range numbers needs at most 125 + 167 + 2 digits: exact at 400.
# Any rounding (operands that were never valid) is trapped and refused, never stored.
_ARITHMETIC = decimal.Context(prec=400, Emax=999999, Emin=-999999,
                              traps=[decimal.InvalidOperation, decimal.Inexact,
                                     decimal.Overflow, decimal.Underflow])


def parse_number(text: object) -> Decimal:
    """Parse and check a number (any JSON value a request holds where a number belongs);
    raise InvalidValue with DynamoDB's message."""
    if type(text) is not str or not _NUMBER_RE.match(text):
        # DynamoDB's older validation drops the colon after nothing (an empty string)
        raise InvalidValue(f"{NOT_NUMERIC}: {text}", NOT_NUMERIC if text == "" else None)
    significant, adjusted = shape(text)
    if significant > MAX_DIGITS:
        raise InvalidValue(TOO_PRECISE)
    if adjusted > MAX_ADJUSTED_EXPONENT:
        raise InvalidValue(OVERFLOW)
    if adjusted < MIN_ADJUSTED_EXPONENT:
        raise InvalidValue(UNDERFLOW)
    return Decimal(text)  # exact: the exponent is within -167..125 here


def shape(text: str) -> tuple[int, int]:
    """(significant digits, adjusted exponent) of number text `_NUMBER_RE` accepted,
    read from the text: `Decimal(text).adjusted()` without building the Decimal."""
    parts = _PARTS_RE.match(text)
    if parts is None:  # the accepting grammar is a subset of this one
        raise InvariantViolation(f"number text outside the parts grammar: {text[:64]!r}")
    whole, fraction, sign, exponent_digits = parts.groups()
    exponent_digits = (exponent_digits or "0").lstrip("0")
    if len(exponent_digits) > _EXPONENT_DIGITS:
        exponent = 10 ** _EXPONENT_DIGITS
    else:
        exponent = int(exponent_digits or "0")
    if sign == "-":
        exponent = -exponent
    digits = (whole + fraction).lstrip("0")
    if not digits:  # zero: the magnitude its text names (see the module docstring)
        return 0, exponent - len(fraction)
    return len(digits.rstrip("0")), exponent + len(digits) - len(fraction) - 1


def check_limits(value: Decimal) -> None:
    """Refuse an arithmetic result DynamoDB cannot store (its messages for results)."""
    if not value.is_finite():
        raise ValidationError(OVERFLOW)
    if not value:
        return
    adjusted = value.adjusted()
    significant = len(value.normalize(_ARITHMETIC).as_tuple().digits)
    if adjusted > MAX_ADJUSTED_EXPONENT or significant > MAX_DIGITS:
        raise ValidationError(OVERFLOW)
    if adjusted < MIN_ADJUSTED_EXPONENT:
        raise ValidationError(UNDERFLOW)


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


def is_canonical(text: object) -> bool:
    """Whether `text` is a valid number in the canonical form `normalize_number` gives:
    what a stored item (or a peer's change) may hold."""
    if type(text) is not str:
        return False
    try:
        return normalize_number(text) == text
    except ValidationError:
        return False


def to_decimal(text: str) -> Decimal:
    """A stored (already canonical) number as a Decimal."""
    return _EXACT.create_decimal(text)


def add(a: str, b: str) -> str:
    """a + b with DynamoDB's limits (used by SET a = a + :v and ADD)."""
    return _result(_ARITHMETIC.add, a, b)


def subtract(a: str, b: str) -> str:
    return _result(_ARITHMETIC.subtract, a, b)


def _result(operation: Callable[[Decimal, Decimal], Decimal], a: str, b: str) -> str:
    try:
        result = operation(to_decimal(a), to_decimal(b))
    except (decimal.Inexact, decimal.Overflow, decimal.Underflow):
        raise ValidationError(OVERFLOW) from None
    check_limits(result)
    return format_number(result)


def compare(a: str, b: str) -> int:
    """-1, 0 or 1 as the numbers a and b compare."""
    da, db = to_decimal(a), to_decimal(b)
    return (da > db) - (da < db)
