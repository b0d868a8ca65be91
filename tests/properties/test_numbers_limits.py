"""DynamoDB's number limits hold for every text, at the exponent extremes and digit counts.

DynamoDB ("Data types"): up to 38 significant digits; positive range 1E-130 to
9.9999999999999999999999999999999999999E+125, negative the mirror. The reference here
is Python's exact `Decimal(text)` (no context, no rounding) judged with a context wide
enough for any exponent these strategies make; the parser under test judges the text
without one. A number either comes back canonical and equal to its text, or is refused
with the message of the first limit it breaks (digits, then overflow, then underflow) —
never as Infinity, NaN or a silent 0.
"""

from __future__ import annotations

import decimal
from decimal import Decimal

from hypothesis import example, given, settings
from hypothesis import strategies as st

from atoll.errors import ValidationError
from atoll.model.numbers import add, is_canonical, normalize_number, subtract

OVERFLOW = "Number overflow. Attempting to store a number with magnitude larger than supported range"
UNDERFLOW = ("Number underflow. Attempting to store a number with magnitude smaller than "
             "supported range")
TOO_PRECISE = "Attempting to store more than 38 significant digits in a Number"

_HUGE = decimal.Context(prec=100_000, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)

# exponents around every edge: the limits, the decimal module's default context and
# past it (up to 10**17, where the reference's exact Decimal still holds them; longer
# exponents have a test of their own below)
_EDGES = [0, 1, -1, 124, 125, 126, 127, -129, -130, -131, -132, -167, -168, 999_999,
          -999_999, 999_999_999, -999_999_999, 10**17, -(10**17)]
exponents = st.one_of(st.sampled_from(_EDGES), st.integers(-300, 300),
                      st.integers(-(10**17), 10**17))


@st.composite
def number_texts(draw: st.DrawFn) -> str:
    """Number text as clients write it: sign, leading and trailing zeros, a point
    anywhere, an exponent in either case with or without its sign."""
    significant = draw(st.integers(0, 42))
    digits = draw(st.text("0123456789", min_size=significant, max_size=significant))
    if digits:
        digits = draw(st.sampled_from("123456789")) + digits[1:]
    zeros_before = "0" * draw(st.integers(0, 140))
    zeros_after = "0" * draw(st.integers(0, 140))
    body = zeros_before + digits + zeros_after or "0"
    text = body
    if draw(st.booleans()):
        point = draw(st.integers(0, len(body)))
        text = body[:point] + "." + body[point:]
    if draw(st.booleans()):
        exponent = draw(exponents)
        mark = draw(st.sampled_from(["e", "E"]))
        shown = str(exponent) if exponent < 0 else draw(st.sampled_from(["", "+"])) + str(exponent)
        text += mark + shown
    return draw(st.sampled_from(["", "+", "-"])) + text


def _reference(text: str) -> tuple[str | None, Decimal]:
    """(the message DynamoDB refuses the text with, or None; its exact value)."""
    value = Decimal(text)
    significant = len(value.normalize(_HUGE).as_tuple().digits) if value else 0
    adjusted = value.adjusted()
    if significant > 38:
        return TOO_PRECISE, value
    if adjusted > 125:
        return OVERFLOW, value
    if adjusted < -130:
        return UNDERFLOW, value
    return None, value


@settings(max_examples=600, deadline=None)
@given(number_texts())
@example("1e999999999")
@example("-1e999999999")
@example("1e-999999999")
@example("-1e-999999999")
@example("9.9999999999999999999999999999999999999E+125")
@example("99999999999999999999999999999999999999.5E+88")
@example("1E-130")
@example("0.99999999999999999999999999999999999999E-129")
@example("0e126")
@example("0.0e126")
def test_every_text_is_stored_exactly_or_refused_with_dynamodbs_message(text: str) -> None:
    refusal, value = _reference(text)
    try:
        canonical = normalize_number(text)
    except ValidationError as exc:
        assert exc.message == refusal, (text, exc.message)
        return
    assert refusal is None, (text, canonical)
    assert Decimal(canonical) == value
    assert is_canonical(canonical)
    assert canonical == "0" or 1 <= len(canonical.strip("-").replace(".", "").strip("0")) <= 38
    assert canonical not in ("Infinity", "-Infinity", "NaN")


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["", "-", "+"]), st.sampled_from(["1", "9.99", "0.5", "123"]),
       st.integers(10**17, 10**30))
def test_exponents_longer_than_any_context_never_become_infinity_or_zero(
        sign: str, mantissa: str, exponent: int) -> None:
    for shown, message in ((f"e{exponent}", OVERFLOW), (f"E+{exponent}", OVERFLOW),
                           (f"e-{exponent}", UNDERFLOW)):
        try:
            normalize_number(sign + mantissa + shown)
        except ValidationError as exc:
            assert exc.message == message
        else:
            raise AssertionError(f"{sign + mantissa + shown} was accepted")


_WIDE = decimal.Context(prec=1000)
in_range = st.builds(
    lambda digits, exponent, negative: ("-" if negative else "") + f"{digits}E{exponent}",
    st.integers(1, 10**38 - 1), st.integers(-167, 125), st.booleans(),
).filter(lambda t: _reference(t)[0] is None).map(normalize_number)


@settings(max_examples=500, deadline=None)
@given(in_range, in_range, st.booleans())
def test_arithmetic_is_exact_or_refused(a: str, b: str, subtracting: bool) -> None:
    exact = (_WIDE.subtract if subtracting else _WIDE.add)(Decimal(a), Decimal(b))
    significant = len(exact.normalize(_WIDE).as_tuple().digits) if exact else 0
    if exact and (exact.adjusted() > 125 or significant > 38):
        expected: str | None = OVERFLOW
    elif exact and exact.adjusted() < -130:
        expected = UNDERFLOW
    else:
        expected = None
    try:
        result = (subtract if subtracting else add)(a, b)
    except ValidationError as exc:
        assert exc.message == expected, (a, b, exc.message)
        return
    assert expected is None, (a, b, result)
    assert Decimal(result) == exact
    assert is_canonical(result)
