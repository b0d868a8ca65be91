"""SigV4 verification of requests as the HTTP layer holds them (bytes).

The verifier builds the canonical request from the bytes received: a header value is
collapsed as bytes when it is ASCII, as latin-1 text when it is not. Both must give
exactly what a client's signer (botocore, working on text) signs, so the fast path is
checked against the naive reference for every byte string hypothesis finds, and
botocore-signed requests with awkward values must verify. Malformed Authorization and
X-Amz-Date headers, and repeated headers, sent as bytes are refused with DynamoDB's
error types.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atoll.auth import errors as e
from atoll.auth.canonical import canonical_query, canonical_uri, header_value
from atoll.auth.keys import AccessKey
from atoll.auth.sigv4 import SignedRequest, SigV4Verifier
from tests.unit.test_auth_sigv4 import (
    BODY,
    KEY,
    OTHER,
    SESSION,
    TARGET,
    default_headers,
    sign,
    signed_at_ms,
)

Wire = list[tuple[bytes, bytes]]


def reference_value(value: bytes) -> bytes:
    """What botocore signs for a header value received as these bytes."""
    return " ".join(value.decode("latin-1").split()).encode("utf-8")


@given(st.binary(max_size=40))
def test_header_values_collapse_as_botocore_does(value: bytes) -> None:
    assert header_value(value) == reference_value(value)


@given(st.lists(st.sampled_from([b" ", b"\t", b"\x1c", b"\x1f", b"\x85", b"\xa0", b"\x0b",
                                 b"a", b"Z", b"\xe9", b"-", b"  "]), max_size=12))
def test_whitespace_of_every_kind_collapses_as_botocore_does(parts: list[bytes]) -> None:
    value = b"".join(parts)
    assert header_value(value) == reference_value(value)


def test_values_without_whitespace_are_used_as_received() -> None:
    value = b"application/x-amz-json-1.0"
    assert header_value(value) == value
    assert header_value(b"  a \t b  ") == b"a b"
    assert header_value(b"caf\xe9\xa0") == "café".encode()


def test_canonical_path_and_query_from_bytes() -> None:
    assert canonical_uri(b"/") == canonical_uri(b"") == b"/"
    assert canonical_uri(b"/a/./b/../c%20d") == b"/a/c%2520d"
    assert canonical_query(b"") == b""
    assert canonical_query(b"b=2&a=x+y") == b"a=x%20y&b=2"


def wire(request: SignedRequest) -> tuple[bytes, bytes, Wire, bytes]:
    target = request.path + ("?" + request.query if request.query else "")
    return (request.method.encode(), target.encode(),
            [(n.encode("latin-1"), v.encode("latin-1")) for n, v in request.headers],
            request.body)


def verifier(*keys: AccessKey) -> SigV4Verifier:
    table = {k.key_id: k for k in (keys or (KEY, OTHER, SESSION))}
    return SigV4Verifier(table.get)


def verify_wire(request: SignedRequest, headers: Wire | None = None,
                v: SigV4Verifier | None = None) -> AccessKey:
    method, target, received, body = wire(request)
    return (v or verifier()).verify_wire(method, target, received if headers is None
                                         else headers, body, signed_at_ms(request))


def refused_wire(request: SignedRequest, headers: Wire, error: type[e.AuthError],
                 reason: str) -> e.AuthError:
    with pytest.raises(error) as caught:
        verify_wire(request, headers)
    assert type(caught.value) is error
    assert caught.value.reason == reason, caught.value.message
    return caught.value


def replaced(headers: Wire, name: bytes, *values: bytes) -> Wire:
    """`headers` with every `name` header removed and one per value appended."""
    kept = [(n, v) for n, v in headers if n.lower() != name.lower()]
    return kept + [(name, value) for value in values]


def value_of(headers: Wire, name: bytes) -> bytes:
    return next(v for n, v in headers if n.lower() == name.lower())


@pytest.mark.parametrize("value", [
    "spaced   out\tvalue  ", "a\x1cb\x1f c", "caf\xe9 \xa0 au\x85lait", "\xa0lead", "x"])
def test_botocore_signed_awkward_values_verify_as_bytes(value: str) -> None:
    request = sign(headers={**default_headers(), "X-Custom": value})
    assert verify_wire(request) is KEY
    changed = replaced(wire(request)[2], b"X-Custom", value.encode("latin-1") + b"!")
    refused_wire(request, changed, e.InvalidSignature, e.REASON_SIGNATURE)


def test_header_names_are_matched_in_any_case() -> None:
    request = sign()
    shouted = [(n.upper(), v) for n, v in wire(request)[2]]
    assert verify_wire(request, shouted) is KEY


MALFORMED_AUTHORIZATION: dict[str, tuple[Callable[[bytes], bytes | None],
                                          type[e.AuthError], str]] = {
    "absent": (lambda own: None, e.MissingAuthenticationToken, e.REASON_MISSING),
    "empty": (lambda own: b"", e.MissingAuthenticationToken, e.REASON_MISSING),
    "basic": (lambda own: b"Basic dXNlcjpwYXNz", e.MissingAuthenticationToken,
              e.REASON_MISSING),
    "lower-case-algorithm": (lambda own: own.replace(b"AWS4-HMAC-SHA256", b"aws4-hmac-sha256"),
                             e.MissingAuthenticationToken, e.REASON_MISSING),
    "algorithm-alone": (lambda own: b"AWS4-HMAC-SHA256 ", e.IncompleteSignature,
                        e.REASON_MALFORMED),
    "no-equals": (lambda own: own.replace(b"Credential=", b"Credential "),
                  e.IncompleteSignature, e.REASON_MALFORMED),
    "empty-parts": (lambda own: b"AWS4-HMAC-SHA256 Credential=,SignedHeaders=,Signature=",
                    e.IncompleteSignature, e.REASON_MALFORMED),
    "empty-item": (lambda own: own.replace(b", SignedHeaders", b",, SignedHeaders"),
                   e.IncompleteSignature, e.REASON_MALFORMED),
    "unknown-item": (lambda own: own + b", Foo=bar", e.IncompleteSignature,
                     e.REASON_MALFORMED),
    "non-ascii-key-id": (lambda own: own.replace(KEY.key_id.encode(), b"\xe9"),
                         e.UnrecognizedClient, e.REASON_UNKNOWN_KEY),
    "other-algorithm": (lambda own: own.replace(b"SHA256", b"SHA512"), e.IncompleteSignature,
                        e.REASON_ALGORITHM),
    "upper-case-signature": (lambda own: own[:-64] + own[-64:].upper(), e.InvalidSignature,
                             e.REASON_SIGNATURE),
    "oversize": (lambda own: own + b"0" * 4096, e.IncompleteSignature, e.REASON_TOO_LARGE),
}


@pytest.mark.parametrize("name", sorted(MALFORMED_AUTHORIZATION))
def test_malformed_authorization_bytes_are_refused(name: str) -> None:
    change, error, reason = MALFORMED_AUTHORIZATION[name]
    request = sign()
    headers = wire(request)[2]
    value = change(value_of(headers, b"Authorization"))
    changed = replaced(headers, b"Authorization") if value is None \
        else replaced(headers, b"Authorization", value)
    refused_wire(request, changed, error, reason)


def test_two_authorization_headers_are_refused() -> None:
    request = sign()
    headers = wire(request)[2]
    own = value_of(headers, b"Authorization")
    error = refused_wire(request, replaced(headers, b"Authorization", own, own),
                         e.IncompleteSignature, e.REASON_MALFORMED)
    assert error.message == "Only one Authorization header is allowed."


@pytest.mark.parametrize("value", [
    b"", b"20130609T094515", b"20130609T094515z", b"20130609 094515Z", b"2013-06-09T09:45:15Z",
    b"20131309T094515Z", b"20130230T094515Z", b"20130609T096015Z", b"+0130609T094515Z",
    b"\xef\xbc\x92\xef\xbc\x90130609T094515Z", b"20130609T094515Z\x00",
    b"Sun, 09 Jun 2013 09:45:15 GMT"],
    ids=["empty", "no-zone", "lower-z", "space", "extended", "month-13", "feb-30",
         "minute-60", "signed-year", "full-width-digits", "nul", "http-date-in-x-amz-date"])
def test_malformed_x_amz_date_bytes_are_incomplete_signatures(value: bytes) -> None:
    request = sign()
    error = refused_wire(request, replaced(wire(request)[2], b"X-Amz-Date", value),
                         e.IncompleteSignature, e.REASON_DATE_FORMAT)
    assert error.message.startswith("Date must be in ISO-8601 'basic format'. Got '")


def test_a_repeated_x_amz_date_is_refused_even_when_the_copies_agree() -> None:
    request = sign()
    headers = wire(request)[2]
    stamp = value_of(headers, b"X-Amz-Date")
    v = verifier()
    assert verify_wire(request, v=v) is KEY  # its X-Amz-Date is now the remembered one
    with pytest.raises(e.IncompleteSignature) as caught:
        verify_wire(request, replaced(headers, b"X-Amz-Date", stamp, stamp), v=v)
    assert caught.value.reason == e.REASON_DATE_FORMAT


def test_a_padded_x_amz_date_is_read_trimmed_as_signed() -> None:
    request = sign()
    headers = wire(request)[2]
    padded = b"  " + value_of(headers, b"X-Amz-Date") + b" "
    assert verify_wire(request, replaced(headers, b"X-Amz-Date", padded)) is KEY


def test_repeated_token_and_body_hash_headers_are_refused() -> None:
    request = sign(SESSION)
    headers = wire(request)[2]
    token = value_of(headers, b"X-Amz-Security-Token")
    refused_wire(request, replaced(headers, b"X-Amz-Security-Token", token, token),
                 e.UnrecognizedClient, e.REASON_TOKEN)
    stated = sign(headers={**default_headers(),
                           "X-Amz-Content-SHA256": hashlib.sha256(BODY).hexdigest()})
    digest = value_of(wire(stated)[2], b"X-Amz-Content-SHA256")
    assert verify_wire(stated) is KEY
    refused_wire(stated, replaced(wire(stated)[2], b"X-Amz-Content-SHA256", digest, digest),
                 e.InvalidSignature, e.REASON_BODY_HASH)


def test_a_repeated_signed_header_is_signed_as_its_values_joined() -> None:
    request = sign(headers=[("X-Amz-Target", TARGET), ("X-Dup", " one "), ("X-Dup", "t\two")])
    assert verify_wire(request) is KEY
    headers = wire(request)[2]
    swapped = replaced(headers, b"X-Dup", b"t\two", b" one ")
    refused_wire(request, swapped, e.InvalidSignature, e.REASON_SIGNATURE)


def test_text_latin1_cannot_hold_is_refused_not_crashed_on() -> None:
    request = sign()
    odd = SignedRequest(request.method, request.path, request.query,
                        [*request.headers, ("X-Amz-Target", "DynamoDB_20120810.GetItem☕")],
                        request.body)
    with pytest.raises(e.AuthError):
        verifier().verify(odd, signed_at_ms(request))


def _outcome(v: SigV4Verifier, request: SignedRequest, headers: Wire,
             target: bytes | None = None) -> tuple[str, str, str]:
    method, own_target, _, body = wire(request)
    try:
        key = v.verify_wire(method, own_target if target is None else target, headers, body,
                            signed_at_ms(request))
    except e.AuthError as error:
        return type(error).__name__, error.reason, error.message
    return "verified", key.key_id, ""


def _variants(request: SignedRequest) -> dict[str, Wire]:
    """The request's headers, and ways to break them that keep the Authorization value's
    head (all but the signature) or change it."""
    headers = wire(request)[2]
    own = value_of(headers, b"Authorization")
    head, signature = own[:-64], own[-64:]
    found = {name: replaced(headers, b"Authorization", value)
             for name, (change, _, _) in MALFORMED_AUTHORIZATION.items()
             if (value := change(own)) is not None}
    found.update({
        "as-signed": headers,
        "other-hex-signature": replaced(headers, b"Authorization", head + b"0" * 64),
        "short-signature": replaced(headers, b"Authorization", head + signature[:63]),
        "padded-signature": replaced(headers, b"Authorization", head + signature + b" "),
        "signature-twice": replaced(headers, b"Authorization",
                                    head + signature + b", Signature=" + signature),
        "no-date": [(n, v) for n, v in headers if n.lower() != b"x-amz-date"],
        "other-date": replaced(headers, b"X-Amz-Date", b"20300101T000000Z"),
        "target-changed": replaced(headers, b"X-Amz-Target", b"DynamoDB_20120810.DeleteItem"),
        "repeated-authorization": replaced(headers, b"Authorization", own, own),
        "repeated-other": headers + [(b"X-Other", b"1"), (b"X-Other", b"2")],
    })
    return found


@pytest.mark.parametrize("key", [KEY, SESSION], ids=["long-term", "session"])
def test_a_remembered_authorization_head_decides_as_a_fresh_verifier(key: AccessKey) -> None:
    """The verifier remembers what an Authorization value says before its signature once
    a request with it passed the parsing checks; every later request, valid or broken,
    must get the answer a verifier that remembers nothing gives."""
    request = sign(key, token=key.session_token.reveal() if key.session_token else None)
    warm = verifier()
    assert verify_wire(request, v=warm) is key and warm.cached_heads == 1
    for name, headers in _variants(request).items():
        expected = _outcome(verifier(), request, headers)
        assert _outcome(warm, request, headers) == expected, name
        assert _outcome(warm, request, headers) == expected, name  # and once remembered
    for target in (b"/?X-Amz-Signature=0", b"/other"):
        assert _outcome(warm, request, wire(request)[2], target) \
            == _outcome(verifier(), request, wire(request)[2], target)


def test_the_remembered_heads_are_bounded() -> None:
    v = verifier()
    for i in range(1100):  # distinct heads: each request signs a header of another name
        request = sign(headers={**default_headers(), f"X-Custom-{i}": "1"})
        assert verify_wire(request, v=v) is KEY
    assert 0 < v.cached_heads <= 1024
