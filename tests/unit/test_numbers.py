"""DynamoDB numbers: parsing, limits, canonical text, arithmetic (atoll.model.numbers).

DynamoDB ("Data types"): "Numbers can have up to 38 digits of precision. Exceeding this
results in an exception." Positive range 1E-130 to 9.9999999999999999999999999999999999999E+125,
negative range -9.9999999999999999999999999999999999999E+125 to -1E-130. "Leading and
trailing zeroes are trimmed."
"""

from __future__ import annotations

import decimal
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atoll.errors import ValidationError
from atoll.model.numbers import add, compare, is_canonical, normalize_number, subtract

CANONICAL = [
    ("0", "0"), ("-0", "0"), ("0.000", "0"), ("0e10", "0"), ("-0.0e-5", "0"),
    ("1", "1"), ("+1", "1"), ("01", "1"), ("1.50", "1.5"), ("1.0", "1"), ("-1.0", "-1"),
    ("1e2", "100"), ("1E+2", "100"), ("1e-2", "0.01"), ("123.456e1", "1234.56"),
    (".5", "0.5"), ("5.", "5"), ("-.5", "-0.5"), ("00.0100", "0.01"),
    ("1E-130", "0." + "0" * 129 + "1"),
    ("1E+125", "1" + "0" * 125),
    ("9.9999999999999999999999999999999999999E+125", "99999999999999999999999999999999999999" + "0" * 88),
    ("12345678901234567890123456789012345678", "12345678901234567890123456789012345678"),
    ("0.12345678901234567890123456789012345678", "0.12345678901234567890123456789012345678"),
    ("1234567890123456789012345678901234567800000", "1234567890123456789012345678901234567800000"),
    ("-3.14159", "-3.14159"),
    # zero takes the magnitude its text names, as DynamoDB's BigDecimal does: 0.0e126 is
    # magnitude 125 (allowed), 0e126 is 126 (refused below)
    ("0.0e126", "0"), ("0e125", "0"), ("0e-130", "0"),
    ("0.1e126", "1" + "0" * 125),
    ("1e0000000000000000000000000000005", "100000"),  # leading zeros of an exponent
    ("1" + "0" * 200 + "e-200", "1"),
    ("0." + "0" * 300 + "1e300", "0.1"),
]


@pytest.mark.parametrize("text,canonical", CANONICAL, ids=[c[0] for c in CANONICAL])
def test_canonical_text(text: str, canonical: str) -> None:
    assert normalize_number(text) == canonical
    assert Decimal(normalize_number(text)) == Decimal(text)
    assert normalize_number(canonical) == canonical  # idempotent


REJECTED = [
    ("1E+126", "Number overflow"),
    ("-1E+126", "Number overflow"),
    ("10E+125", "Number overflow"),
    ("1E-131", "Number underflow"),
    ("0.1E-130", "Number underflow"),
    ("-1E-131", "Number underflow"),
    ("123456789012345678901234567890123456789", "more than 38 significant digits"),
    ("1.23456789012345678901234567890123456789", "more than 38 significant digits"),
    ("0.000123456789012345678901234567890123456789", "more than 38 significant digits"),
    ("", "cannot be converted to a numeric value"),
    ("abc", "cannot be converted to a numeric value"),
    ("1e", "cannot be converted to a numeric value"),
    ("1.2.3", "cannot be converted to a numeric value"),
    ("--1", "cannot be converted to a numeric value"),
    (" 1", "cannot be converted to a numeric value"),
    ("1 ", "cannot be converted to a numeric value"),
    ("NaN", "cannot be converted to a numeric value"),
    ("Infinity", "cannot be converted to a numeric value"),
    ("-inf", "cannot be converted to a numeric value"),
    ("0x10", "cannot be converted to a numeric value"),
    ("1_000", "cannot be converted to a numeric value"),
    (".", "cannot be converted to a numeric value"),
    # exponents beyond what a decimal context holds: never Infinity, never 0
    ("1e999999999", "Number overflow"),
    ("-1e999999999", "Number overflow"),
    ("1E+999999999", "Number overflow"),
    ("1e-999999999", "Number underflow"),
    ("-1e-999999999", "Number underflow"),
    ("1e" + "9" * 40, "Number overflow"),
    ("1e-" + "9" * 40, "Number underflow"),
    ("9" * 38 + "e" + "9" * 5000, "Number overflow"),  # longer than int() converts
    ("0e126", "Number overflow"),
    ("0e-131", "Number underflow"),
    ("0e999999999", "Number overflow"),
    ("1" * 39 + "e999999999", "more than 38 significant digits"),
]


@pytest.mark.parametrize("text,fragment", REJECTED, ids=[r[0] or "empty" for r in REJECTED])
def test_rejected_numbers(text: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as caught:
        normalize_number(text)
    assert fragment in caught.value.message


def test_trailing_zeros_do_not_count_as_significant_digits() -> None:
    # 38 significant digits followed by zeros is still 38 significant digits.
    assert normalize_number("1" * 38 + "000") == "1" * 38 + "000"
    assert normalize_number("0.000" + "1" * 38) == "0.000" + "1" * 38


@pytest.mark.parametrize("a,b,total,difference", [
    ("1", "2", "3", "-1"),
    ("0.1", "0.2", "0.3", "-0.1"),
    ("1.5", "-1.5", "0", "3"),
    ("1E+125", "1E+125", "2" + "0" * 125, "0"),
    ("12345678901234567890123456789012345678", "0", "12345678901234567890123456789012345678",
     "12345678901234567890123456789012345678"),
])
def test_arithmetic_is_exact(a: str, b: str, total: str, difference: str) -> None:
    assert add(a, b) == total
    assert subtract(a, b) == difference


OVERFLOW = "Number overflow. Attempting to store a number with magnitude larger than supported range"
UNDERFLOW = ("Number underflow. Attempting to store a number with magnitude smaller than "
             "supported range")


@pytest.mark.parametrize("a,b,message", [
    ("9E+125", "9E+125", OVERFLOW),
    ("-9E+125", "-9E+125", OVERFLOW),
    # a result needing more than 38 digits: DynamoDB answers 1E+50 + 1 with its overflow
    # message (ScyllaDB's test_update_expression_plus_imprecise, run against DynamoDB)
    ("1" * 38, "0.1", OVERFLOW),
    ("1E+50", "1", OVERFLOW),
    ("1", "1E-130", OVERFLOW),
    # stored before numbers were checked on their text: such an item cannot be updated
    ("Infinity", "1", OVERFLOW),
    ("-Infinity", "1", OVERFLOW),
    ("NaN", "1", OVERFLOW),
])
def test_arithmetic_respects_limits(a: str, b: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        add(a, b)
    assert caught.value.message == message


def test_a_difference_below_the_smallest_magnitude_underflows() -> None:
    with pytest.raises(ValidationError) as caught:
        subtract("0." + "0" * 129 + "10000000000000000000000000000000000001",
                 "0." + "0" * 129 + "1")
    assert caught.value.message == UNDERFLOW


@pytest.mark.parametrize("text,canonical", [
    ("1", True), ("-1.5", True), ("0", True), ("1" + "0" * 125, True),
    ("1.0", False), ("1e2", False), ("-0", False), ("Infinity", False), ("NaN", False),
    ("1" + "0" * 126, False), ("1" * 39, False), (1, False), (None, False),
])
def test_is_canonical(text: object, canonical: bool) -> None:
    assert is_canonical(text) is canonical


_WIDE = decimal.Context(prec=100)


def _in_range(d: Decimal) -> bool:
    return d == 0 or (-130 <= d.adjusted() <= 125
                      and len(d.normalize(_WIDE).as_tuple().digits) <= 38)


numbers = st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(_in_range)


@given(numbers, numbers)
def test_compare_matches_decimal(a: Decimal, b: Decimal) -> None:
    ta, tb = normalize_number(str(a)), normalize_number(str(b))
    assert compare(ta, tb) == (a > b) - (a < b)


@given(numbers)
def test_normalize_round_trips_exactly(value: Decimal) -> None:
    text = normalize_number(str(value))
    assert Decimal(text) == value
    assert "E" not in text and "e" not in text
    assert normalize_number(text) == text
