"""Laws of the key encoding: the bytes' order is DynamoDB's order (pure, no server).

DynamoDB ("Query" in the Developer Guide): "If the data type of the sort key is Number,
the results are returned in numeric order; otherwise, the results are returned in order
of UTF-8 bytes." Numbers: up to 38 significant digits, magnitude 1E-130 .. 9.99..E+125.
"""

from __future__ import annotations

import base64
from decimal import Decimal

from hypothesis import example, given
from hypothesis import strategies as st

from atoll.model.keys import decode_key_value, encode_key_value, encode_number, prefix_successor
from atoll.model.numbers import normalize_number


def _sign(x: int) -> int:
    return (x > 0) - (x < 0)


def _cmp(a: object, b: object) -> int:
    return _sign((a > b) - (a < b))  # type: ignore[operator]


@st.composite
def dynamo_numbers(draw: st.DrawFn) -> str:
    """Any number DynamoDB accepts, as text in a random (valid) spelling."""
    if draw(st.integers(0, 20)) == 0:
        return draw(st.sampled_from(["0", "-0", "0.0", "0e5"]))
    digits = draw(st.text("0123456789", min_size=1, max_size=38).filter(lambda d: d[0] != "0"))
    # value = 0.digits * 10**e with e in -129..126  <=>  adjusted exponent in -130..125
    adjusted = draw(st.integers(-130, 125))
    exponent = adjusted - len(digits) + 1
    sign = draw(st.sampled_from(["", "-"]))
    text = f"{sign}{digits}E{exponent}"
    if draw(st.booleans()):  # respell as plain notation with padding zeros
        text = format(Decimal(text), "f")
        if "." in text and draw(st.booleans()):
            text += "000"
    return text


def _key(text: str) -> bytes:
    return encode_number(normalize_number(text))


@given(dynamo_numbers(), dynamo_numbers())
@example("-10", "-1.5")
@example("-0.12", "-0.123")  # a shorter negative digit string is the larger number
@example("1E-130", "-1E-130")
@example("9.9999999999999999999999999999999999999E+125", "1E+125")
@example("-9.9999999999999999999999999999999999999E+125", "-1E+125")
@example("0.1", "0.10000000000000000000000000000000000001")
def test_number_encoding_order_is_decimal_order(a: str, b: str) -> None:
    assert _cmp(_key(a), _key(b)) == _cmp(Decimal(a), Decimal(b))


@given(dynamo_numbers())
def test_equal_numbers_encode_equally(text: str) -> None:
    value = Decimal(text)
    respelled = format(value, "E")  # scientific spelling of the same number
    assert _key(text) == _key(respelled)
    assert _key(text) == _key(normalize_number(text))


@given(st.lists(dynamo_numbers(), min_size=2, max_size=30))
def test_sorting_by_encoding_sorts_numerically(texts: list[str]) -> None:
    by_bytes = [Decimal(t) for t in sorted(texts, key=_key)]
    assert by_bytes == sorted(Decimal(t) for t in texts)


# Strings: DynamoDB compares UTF-8 bytes. Python's str order is code-point order, which
# UTF-8 preserves, so it is the reference; UTF-16 order (Java's String) differs for
# characters above U+FFFF versus U+E000..U+FFFF.
any_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1)


@given(any_text, any_text)
@example("\uffff", "\U0001f600")  # UTF-16 would put the emoji (a surrogate pair) first
@example("a", "a\x00")
@example("Z", "a")
@example("é", "z")
def test_string_encoding_order_is_utf8_byte_order(a: str, b: str) -> None:
    ea, eb = encode_key_value({"S": a}, "S"), encode_key_value({"S": b}, "S")
    assert _cmp(ea, eb) == _cmp(a.encode("utf-8"), b.encode("utf-8"))
    assert _cmp(ea, eb) == _cmp(a, b)


def test_string_order_is_not_utf16_order() -> None:
    high, astral = "\uffff", "\U0001f600"
    assert encode_key_value({"S": high}, "S") < encode_key_value({"S": astral}, "S")
    assert high.encode("utf-16-be") > astral.encode("utf-16-be")


@given(st.binary(min_size=1), st.binary(min_size=1))
@example(b"\x01", b"\x01\x00")
@example(b"\x7f", b"\x80")  # unsigned bytes: 0x80 sorts after 0x7f
def test_binary_encoding_order_is_unsigned_byte_order(a: bytes, b: bytes) -> None:
    ea = encode_key_value({"B": base64.b64encode(a).decode()}, "B")
    eb = encode_key_value({"B": base64.b64encode(b).decode()}, "B")
    assert ea == a and eb == b
    assert _cmp(ea, eb) == _cmp(list(a), list(b))


@given(st.binary(min_size=1, max_size=8), st.binary(max_size=8))
@example(b"\xff", b"")
@example(b"\x01\xff", b"\xff")
def test_prefix_successor_bounds_every_extension(prefix: bytes, suffix: bytes) -> None:
    """begins_with(prefix) is the range [prefix, successor): everything starting with the
    prefix lies inside, and the successor itself does not start with it."""
    successor = prefix_successor(prefix)
    extended = prefix + suffix
    assert prefix <= extended
    if successor is None:
        assert set(prefix) == {0xFF}
    else:
        assert extended < successor
        assert not successor.startswith(prefix)
        assert prefix < successor


# --- decoding: the conflict log shows stored keys as the values the user wrote ---------

@given(dynamo_numbers())
@example("0")
@example("-0.12")
@example("-1E-130")
@example("9.9999999999999999999999999999999999999E+125")
def test_a_number_key_decodes_to_its_canonical_text(text: str) -> None:
    assert decode_key_value(encode_number(text), "N") == {"N": normalize_number(text)}


@given(st.text(min_size=1, max_size=50))
def test_a_string_key_decodes_to_itself(text: str) -> None:
    assert decode_key_value(encode_key_value({"S": text}, "S"), "S") == {"S": text}


@given(st.binary(min_size=1, max_size=50))
def test_a_binary_key_decodes_to_its_base64(data: bytes) -> None:
    value = {"B": base64.b64encode(data).decode()}
    assert decode_key_value(encode_key_value(value, "B"), "B") == value


def test_bytes_that_are_no_encoding_are_refused() -> None:
    import pytest

    for data, kind in ((b"\x07abc", "N"), (b"\x01\x40\x00\x01", "N"), (b"", "N"),
                       (b"\xff\xfe", "S"), (b"x", "BOOL")):
        with pytest.raises(ValueError):
            decode_key_value(data, kind)
