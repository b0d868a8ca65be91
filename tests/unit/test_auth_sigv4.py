"""SigV4 verification against botocore's signer (the reference implementation).

Requests are signed by botocore's `SigV4Auth` exactly as boto3 signs them, then every
signed part is changed in turn: each change must be refused with DynamoDB's error type,
and the untouched request must verify. Times come from the request's own X-Amz-Date,
so the tests do not depend on the machine's clock.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from atoll.auth import errors as e
from atoll.auth.canonical import canonical_query_text, canonical_uri_text
from atoll.auth.keys import ROLE_READ_WRITE, AccessKey, create_key
from atoll.auth.sigv4 import MAX_AUTHORIZATION_CHARS, SignedRequest, SigV4Verifier
from atoll.auth.timestamps import parse_http_date, parse_iso_basic

URL = "http://127.0.0.1:8000/"
BODY = json.dumps({"TableName": "Orders", "Key": {"pk": {"S": "naïve café ☕ 𝄞"}}},
                  ensure_ascii=False).encode("utf-8")
TARGET = "DynamoDB_20120810.GetItem"
MINUTE_MS = 60_000


def _counter(seed: str) -> Callable[[int], bytes]:
    """Deterministic stand-in for secrets.token_bytes."""
    state = {"n": 0}

    def random_bytes(n: int) -> bytes:
        state["n"] += 1
        digest = hashlib.sha512(f"{seed}/{state['n']}".encode()).digest()
        return (digest * (n // len(digest) + 1))[:n]
    return random_bytes


RANDOM = _counter("keys")
KEY = create_key(ROLE_READ_WRITE, now_ms=1, random_bytes=RANDOM)
OTHER = create_key(ROLE_READ_WRITE, now_ms=1, random_bytes=RANDOM)
SESSION = create_key(ROLE_READ_WRITE, now_ms=1, session_expires_ms=10**15, random_bytes=RANDOM)


def default_headers() -> dict[str, str]:
    return {"X-Amz-Target": TARGET, "Content-Type": "application/x-amz-json-1.0"}


def sign(key: AccessKey = KEY, *, method: str = "POST", url: str = URL,
         headers: dict[str, str] | list[tuple[str, str]] | None = None, body: bytes = BODY,
         region: str = "us-east-1", service: str = "dynamodb", token: str | None = None,
         secret: str | None = None, params: dict[str, str] | None = None) -> SignedRequest:
    """`body` sent to `url`, signed by botocore as boto3 would, as the server sees it."""
    credentials = Credentials(key.key_id, secret or key.secret.reveal(),
                              token if token is not None else
                              (key.session_token.reveal() if key.session_token else None))
    request = AWSRequest(method, url, data=body, params=params or {})
    given = default_headers() if headers is None else headers
    for name, value in (list(given.items()) if isinstance(given, dict) else given):
        request.headers[name] = value  # HTTPHeaders: assigning twice sends two headers
    SigV4Auth(credentials, service, region).add_auth(request)
    prepared = request.prepare()
    parts = urlsplit(prepared.url)
    # the headers as signed, repeats kept (the prepared request keeps one of each)
    wire = list(request.headers.items())
    if not any(n.lower() == "host" for n, _ in wire):
        wire.insert(0, ("Host", parts.netloc))  # what http.client adds
    return SignedRequest(prepared.method, parts.path, parts.query, wire, prepared.body or b"")


def header(request: SignedRequest, name: str) -> str:
    return next(v for n, v in request.headers if n.lower() == name.lower())


def signed_at_ms(request: SignedRequest) -> int:
    for name in ("X-Amz-Date", "Date"):
        for n, v in request.headers:
            if n.lower() == name.lower():
                stamp = parse_iso_basic(v) if name == "X-Amz-Date" else parse_http_date(v)
                assert stamp is not None
                return stamp * 1000 + 400
    raise AssertionError("no date header")


def verifier(*keys: AccessKey, **options: object) -> SigV4Verifier:
    table = {k.key_id: k for k in (keys or (KEY, OTHER, SESSION))}
    return SigV4Verifier(table.get, **options)  # type: ignore[arg-type]


def verify(request: SignedRequest, v: SigV4Verifier | None = None,
           now_ms: int | None = None) -> AccessKey:
    return (v or verifier()).verify(request, signed_at_ms(request) if now_ms is None else now_ms)


def refused(request: SignedRequest, error: type[e.AuthError], reason: str,
            now_ms: int | None = None, v: SigV4Verifier | None = None) -> e.AuthError:
    with pytest.raises(error) as caught:
        verify(request, v, now_ms)
    assert type(caught.value) is error
    assert caught.value.reason == reason, caught.value.message
    return caught.value


def with_header(request: SignedRequest, name: str, value: str | None) -> SignedRequest:
    """`request` with header `name` set to `value` (None: removed)."""
    kept = [(n, v) for n, v in request.headers if n.lower() != name.lower()]
    if value is not None:
        kept.append((name, value))
    return dataclasses.replace(request, headers=kept)


def auth_parts(request: SignedRequest) -> dict[str, str]:
    algorithm, _, rest = header(request, "Authorization").partition(" ")
    parts = dict(p.strip().split("=", 1) for p in rest.split(","))
    return {"algorithm": algorithm, **parts}


def with_auth(request: SignedRequest, **changes: str) -> SignedRequest:
    parts = {**auth_parts(request), **changes}
    value = (f"{parts['algorithm']} Credential={parts['Credential']}, "
             f"SignedHeaders={parts['SignedHeaders']}, Signature={parts['Signature']}")
    return with_header(request, "Authorization", value)


def with_credential(request: SignedRequest, index: int, value: str) -> SignedRequest:
    pieces = auth_parts(request)["Credential"].split("/")
    pieces[index] = value
    return with_auth(request, Credential="/".join(pieces))


# -- requests that must verify ---------------------------------------------------------

def test_a_boto3_shaped_request_verifies_and_names_its_key() -> None:
    request = sign()
    assert verify(request) is KEY
    assert auth_parts(request)["SignedHeaders"] == "content-type;host;x-amz-date;x-amz-target"


@pytest.mark.parametrize("case", [
    {"headers": {"X-Amz-Target": TARGET, "Content-Type": "application/x-amz-json-1.0",
                 "X-Custom-A": "  spaced   out\tvalue  ", "x-amz-meta-b": "b"}},
    {"headers": {"x-amz-target": TARGET, "CONTENT-TYPE": "application/x-amz-json-1.0"}},
    {"headers": [("X-Amz-Target", TARGET), ("X-Dup", "first"), ("X-Dup", " second  one ")]},
    {"headers": {"X-Amz-Target": TARGET, "Date": "ignored, replaced by botocore"}},
    {"body": b""},
    {"body": "{\"TableName\": \"T\", \"Item\": {\"s\": {\"S\": \"\u00e9\u4e2d\U0001f600\"}}}"
             .encode("utf-8")},
    {"url": "http://node-a.example:8443/some/./path/../x%20y/"},
    {"url": "https://node-a.example/", "params": {"b": "2", "a": "x y/z~", "c": ""}},
    {"region": "ap-south"},
    {"method": "GET", "body": b""},
], ids=["extra-spaces", "header-case", "repeated-header", "date-header", "empty-body",
        "unicode-body", "dot-segments", "query-https", "atoll-region", "get"])
def test_botocore_signed_variants_verify(case: dict[str, object]) -> None:
    request = sign(**case)  # type: ignore[arg-type]
    assert verify(request) is KEY


@pytest.mark.parametrize("layout", [
    "AWS4-HMAC-SHA256 Credential={c},SignedHeaders={h},Signature={s}",
    "AWS4-HMAC-SHA256 Credential={c} ,  SignedHeaders={h},\tSignature={s}",
    "AWS4-HMAC-SHA256 Signature={s}, Credential={c}, SignedHeaders={h}",
    "  AWS4-HMAC-SHA256 Credential={c}, SignedHeaders={h}, Signature={s}  ",
])
def test_authorization_layouts_parse_alike(layout: str) -> None:
    """The one-step parse of the usual layout and the general parse agree."""
    request = sign()
    parts = auth_parts(request)
    raw = layout.format(c=parts["Credential"], h=parts["SignedHeaders"], s=parts["Signature"])
    assert verify(with_header(request, "Authorization", raw)) is KEY


def test_session_key_with_its_token_verifies() -> None:
    request = sign(SESSION)
    assert "x-amz-security-token" in auth_parts(request)["SignedHeaders"]
    assert verify(request) is SESSION


def test_a_stated_body_hash_that_matches_verifies() -> None:
    digest = hashlib.sha256(BODY).hexdigest()
    request = sign(headers={**default_headers(), "X-Amz-Content-SHA256": digest})
    assert verify(request) is KEY


def test_a_request_verifies_again_within_the_window_as_in_dynamodb() -> None:
    request = sign()
    at = signed_at_ms(request)
    v = verifier()
    assert v.verify(request, at) is KEY
    assert v.verify(request, at + 5 * MINUTE_MS - 1000) is KEY
    refused(request, e.InvalidSignature, e.REASON_EXPIRED, now_ms=at + 6 * MINUTE_MS, v=v)


# -- every signed part changed -----------------------------------------------------------

def _replace(**changes: object) -> Callable[[SignedRequest], SignedRequest]:
    return lambda r: dataclasses.replace(r, **changes)


def _next_second(request: SignedRequest) -> str:
    """The request's X-Amz-Date with its seconds changed (same day)."""
    stamp = header(request, "X-Amz-Date")
    return f"{stamp[:-3]}{(int(stamp[-3:-1]) + 1) % 60:02d}Z"


def _flip(index: int) -> Callable[[SignedRequest], SignedRequest]:
    def change(request: SignedRequest) -> SignedRequest:
        signature = auth_parts(request)["Signature"]
        flipped = "%x" % (int(signature[index], 16) ^ 1)
        return with_auth(request, Signature=signature[:index] + flipped + signature[index + 1:])
    return change


MUTATIONS: dict[str, Callable[[SignedRequest], SignedRequest]] = {
    "method": _replace(method="PUT"),
    "path": _replace(path="/other"),
    "query": _replace(query="a=b"),
    "body-byte": lambda r: dataclasses.replace(r, body=r.body[:-2] + b"x}"),
    "body-appended": lambda r: dataclasses.replace(r, body=r.body + b" "),
    "target": lambda r: with_header(r, "X-Amz-Target", "DynamoDB_20120810.DeleteItem"),
    "host": lambda r: with_header(r, "Host", "127.0.0.1:8001"),
    "content-type": lambda r: with_header(r, "Content-Type", "application/json"),
    "x-amz-date-second": lambda r: with_header(r, "X-Amz-Date", _next_second(r)),
    "target-removed": lambda r: with_header(r, "X-Amz-Target", None),
    "host-removed": lambda r: with_header(r, "Host", None),
    "content-type-removed": lambda r: with_header(r, "Content-Type", None),
    "header-repeated": lambda r: dataclasses.replace(
        r, headers=[*r.headers, ("Content-Type", "text/plain")]),
    "region-in-scope": lambda r: with_credential(r, 2, "eu-west-1"),
    "other-key-id": lambda r: with_credential(r, 0, OTHER.key_id),
    "signature-first-bit": _flip(0),
    "signature-middle-bit": _flip(31),
    "signature-last-bit": _flip(63),
    "signature-upper-case": lambda r: with_auth(r, Signature=auth_parts(r)["Signature"].upper()),
    "signature-short": lambda r: with_auth(r, Signature=auth_parts(r)["Signature"][:-1]),
    "signed-with-another-secret": lambda r: sign(secret=OTHER.secret.reveal()),
    "signed-for-another-region": lambda r: with_credential(sign(region="eu-west-1"), 2,
                                                           "us-east-1"),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_any_change_to_a_signed_part_is_refused(name: str) -> None:
    original = sign()
    assert verify(original) is KEY
    changed = MUTATIONS[name](original)
    error = refused(changed, e.InvalidSignature, e.REASON_SIGNATURE)
    assert error.message.startswith("The request signature we calculated does not match")


def test_every_signed_header_is_covered() -> None:
    request = sign(headers={**default_headers(), "X-Custom": "v", "x-amz-meta-a": "b"})
    names = auth_parts(request)["SignedHeaders"].split(";")
    assert set(names) == {"content-type", "host", "x-amz-date", "x-amz-target", "x-custom",
                          "x-amz-meta-a"}
    at = signed_at_ms(request)
    for name in names:
        changed = with_header(request, name, header(request, name) + "0")
        if name == "x-amz-date":
            refused(changed, e.IncompleteSignature, e.REASON_DATE_FORMAT, now_ms=at)
        else:
            refused(changed, e.InvalidSignature, e.REASON_SIGNATURE, now_ms=at)


def test_unsigned_headers_may_change() -> None:
    request = sign()
    assert verify(with_header(request, "User-Agent", "another agent")) is KEY
    assert verify(with_header(request, "X-Unsigned", "anything")) is KEY


# -- malformed, missing and out-of-scope --------------------------------------------------

def test_no_authorization_is_missing_authentication_token() -> None:
    error = refused(with_header(sign(), "Authorization", None),
                    e.MissingAuthenticationToken, e.REASON_MISSING)
    assert error.message == "Request is missing Authentication Token"
    refused(with_header(sign(), "Authorization", "Basic dXNlcjpwYXNz"),
            e.MissingAuthenticationToken, e.REASON_MISSING)


@pytest.mark.parametrize("name", ["Credential", "Signature", "SignedHeaders"])
def test_a_missing_part_is_an_incomplete_signature(name: str) -> None:
    request = sign()
    parts = auth_parts(request)
    kept = ", ".join(f"{k}={v}" for k, v in parts.items() if k not in ("algorithm", name))
    raw = f"AWS4-HMAC-SHA256 {kept}"
    error = refused(with_header(request, "Authorization", raw), e.IncompleteSignature,
                    e.REASON_MALFORMED)
    assert error.message == f"Authorization header requires '{name}' parameter. " \
                            f"Authorization={raw}"


def test_missing_parts_and_date_are_reported_together() -> None:
    request = with_header(with_header(sign(), "X-Amz-Date", None), "Authorization",
                          "AWS4-HMAC-SHA256 Signature=abc")
    error = refused(request, e.IncompleteSignature, e.REASON_MALFORMED, now_ms=0)
    assert error.message == (
        "Authorization header requires 'Credential' parameter. Authorization header "
        "requires 'SignedHeaders' parameter. Authorization header requires existence of "
        "either a 'X-Amz-Date' or a 'Date' header. Authorization=AWS4-HMAC-SHA256 "
        "Signature=abc")


def test_an_item_without_equals_is_named() -> None:
    request = sign()
    raw = header(request, "Authorization").replace("Credential=", "Credential ")
    error = refused(with_header(request, "Authorization", raw), e.IncompleteSignature,
                    e.REASON_MALFORMED)
    assert "not a valid key=value pair (missing equal-sign) in Authorization header" \
        in error.message


@pytest.mark.parametrize("extra", [", Signature=00", ", Foo=bar"])
def test_repeated_or_unknown_parameters_are_refused(extra: str) -> None:
    request = sign()
    raw = header(request, "Authorization") + extra
    refused(with_header(request, "Authorization", raw), e.IncompleteSignature,
            e.REASON_MALFORMED)


def test_an_oversize_authorization_header_is_refused_before_lookup() -> None:
    lookups: list[str] = []
    v = SigV4Verifier(lambda key_id: lookups.append(key_id) or KEY)  # type: ignore[func-returns-value]
    request = sign()
    huge = with_auth(request, SignedHeaders="a" * MAX_AUTHORIZATION_CHARS)
    refused(huge, e.IncompleteSignature, e.REASON_TOO_LARGE, v=v)
    assert lookups == [] and v.cached_signing_keys == 0


def test_unsupported_algorithm() -> None:
    error = refused(with_auth(sign(), algorithm="AWS4-HMAC-SHA512"), e.IncompleteSignature,
                    e.REASON_ALGORITHM)
    assert error.message == ("Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA512' "
                             "(only AWS4-HMAC-SHA256 for now). ")


@pytest.mark.parametrize("credential", ["a/b/c/d", "a/b/c/d/e/f", "onlyone"])
def test_credential_needs_five_parts(credential: str) -> None:
    error = refused(with_auth(sign(), Credential=credential), e.IncompleteSignature,
                    e.REASON_MALFORMED)
    assert error.message.startswith("Credential must have exactly 5 slash-delimited elements")


@pytest.mark.parametrize("index,value,message", [
    (2, "US_EAST!", "Credential should be scoped to a valid region, not 'US_EAST!'. "),
    (3, "s3", "Credential should be scoped to correct service: 'dynamodb'. "),
    (4, "aws5_request", "Credential should be scoped with a valid terminator: "
                        "'aws4_request', not 'aws5_request'. "),
])
def test_credential_scope_is_checked(index: int, value: str, message: str) -> None:
    error = refused(with_credential(sign(), index, value), e.InvalidSignature, e.REASON_SCOPE)
    assert error.message == message


def test_scope_date_must_be_the_request_date() -> None:
    request = sign()
    stamp = header(request, "X-Amz-Date")
    error = refused(with_credential(request, 1, "19991231"), e.InvalidSignature,
                    e.REASON_SCOPE)
    assert error.message == (
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
        f"from HTTP: '19991231' != '{stamp[:8]}', from '{stamp}'.")


def test_a_request_signed_for_another_service_is_refused() -> None:
    refused(sign(service="s3"), e.InvalidSignature, e.REASON_SCOPE)


def test_regions_can_be_restricted() -> None:
    v = verifier(KEY, regions=frozenset({"us-east-1"}))
    assert verify(sign(), v) is KEY
    error = refused(sign(region="eu-west-1"), e.InvalidSignature, e.REASON_SCOPE, v=v)
    assert error.message == "Credential should be scoped to a valid region, not 'eu-west-1'. "


@pytest.mark.parametrize("signed_headers,error,reason", [
    ("content-type;x-amz-date;x-amz-target", e.InvalidSignature, e.REASON_UNSIGNED_HEADER),
    ("content-type;host;x-amz-date", e.InvalidSignature, e.REASON_UNSIGNED_HEADER),
    ("content-type;host;x-amz-target", e.InvalidSignature, e.REASON_UNSIGNED_HEADER),
    ("host;content-type;x-amz-date;x-amz-target", e.IncompleteSignature, e.REASON_MALFORMED),
    ("content-type;Host;x-amz-date;x-amz-target", e.IncompleteSignature, e.REASON_MALFORMED),
    ("content-type;host;host;x-amz-date;x-amz-target", e.IncompleteSignature,
     e.REASON_MALFORMED),
    ("authorization;content-type;host;x-amz-date;x-amz-target", e.IncompleteSignature,
     e.REASON_MALFORMED),
    ("content-type;host;x-absent;x-amz-date;x-amz-target", e.InvalidSignature,
     e.REASON_SIGNATURE),
])
def test_signed_header_rules(signed_headers: str, error: type[e.AuthError],
                             reason: str) -> None:
    refused(with_auth(sign(), SignedHeaders=signed_headers), error, reason)


def test_host_must_be_signed_with_dynamodbs_message() -> None:
    error = refused(with_auth(sign(), SignedHeaders="content-type;x-amz-date;x-amz-target"),
                    e.InvalidSignature, e.REASON_UNSIGNED_HEADER)
    assert error.message == ("'Host' or ':authority' must be a 'SignedHeader' in the AWS "
                             "Authorization.")


def test_an_unsigned_target_added_to_a_request_without_one_is_refused() -> None:
    request = sign(headers={"Content-Type": "application/x-amz-json-1.0"})
    assert verify(request) is KEY  # an admin request carries no target
    error = refused(with_header(request, "X-Amz-Target", TARGET), e.InvalidSignature,
                    e.REASON_UNSIGNED_HEADER)
    assert "'X-Amz-Target' must be a 'SignedHeader'" in error.message


# -- time -------------------------------------------------------------------------------

def test_expired_and_future_signatures_carry_dynamodbs_messages() -> None:
    request = sign()
    at = signed_at_ms(request)
    stamp = header(request, "X-Amz-Date")
    late = refused(request, e.InvalidSignature, e.REASON_EXPIRED, now_ms=at + 5 * MINUTE_MS + 1000)
    assert late.message.startswith(f"Signature expired: {stamp} is now earlier than ")
    assert late.message.endswith(" - 5 min.)")
    early = refused(request, e.InvalidSignature, e.REASON_NOT_YET_VALID,
                    now_ms=at - 5 * MINUTE_MS - 1000)
    assert early.message.startswith(f"Signature not yet current: {stamp} is still later than ")
    assert early.message.endswith(" + 5 min.)")


def test_the_window_is_five_minutes_each_way() -> None:
    request = sign()
    at = (signed_at_ms(request) // 1000) * 1000
    v = verifier()
    assert v.verify(request, at + 5 * MINUTE_MS + 999) is KEY
    assert v.verify(request, at - 5 * MINUTE_MS) is KEY
    refused(request, e.InvalidSignature, e.REASON_EXPIRED, now_ms=at + 5 * MINUTE_MS + 1000)
    refused(request, e.InvalidSignature, e.REASON_NOT_YET_VALID, now_ms=at - 5 * MINUTE_MS - 1000)


def test_exact_expired_message() -> None:
    request = with_header(sign(), "X-Amz-Date", "20130609T094515Z")
    request = with_credential(request, 1, "20130609")
    now_ms = (parse_iso_basic("20130609T100015Z") or 0) * 1000
    error = refused(request, e.InvalidSignature, e.REASON_EXPIRED, now_ms=now_ms)
    assert error.message == ("Signature expired: 20130609T094515Z is now earlier than "
                             "20130609T095515Z (20130609T100015Z - 5 min.)")


@pytest.mark.parametrize("value", ["201", "2013-06-09T09:45:15Z", "20130609T094515",
                                   "20131309T094515Z", "20130230T094515Z",
                                   "20130609T244515Z", "２０１３0609T094515Z"])
def test_a_malformed_date_is_an_incomplete_signature(value: str) -> None:
    request = sign()
    error = refused(with_header(request, "X-Amz-Date", value), e.IncompleteSignature,
                    e.REASON_DATE_FORMAT, now_ms=signed_at_ms(request))
    assert error.message.startswith("Date must be in ISO-8601 'basic format'. Got ")


def test_date_header_signed_by_botocore_verifies_and_must_be_signed() -> None:
    request = sign(headers={"X-Amz-Target": TARGET, "Date": "x"})
    assert not any(n.lower() == "x-amz-date" for n, _ in request.headers)
    assert verify(request) is KEY
    parts = auth_parts(request)
    unsigned = parts["SignedHeaders"].replace("date;", "")
    error = refused(with_auth(request, SignedHeaders=unsigned), e.InvalidSignature,
                    e.REASON_UNSIGNED_HEADER)
    assert "'Date' must be a 'SignedHeader'" in error.message


def test_date_parsers_agree() -> None:
    assert parse_iso_basic("19700101T000000Z") == 0
    assert parse_iso_basic("20000229T235959Z") == 951868799
    assert parse_http_date("Tue, 29 Feb 2000 23:59:59 GMT") == 951868799
    assert parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777
    assert parse_iso_basic("19000229T000000Z") is None
    assert parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT") is None


# -- keys and tokens --------------------------------------------------------------------

def test_unknown_and_revoked_keys_get_the_same_answer() -> None:
    stranger = create_key(ROLE_READ_WRITE, now_ms=1, random_bytes=_counter("stranger"))
    unknown = refused(sign(stranger), e.UnrecognizedClient, e.REASON_UNKNOWN_KEY)
    revoked_key = KEY.revoke(now_ms=5)
    revoked = refused(sign(KEY), e.UnrecognizedClient, e.REASON_REVOKED_KEY,
                      v=verifier(revoked_key))
    assert unknown.message == revoked.message == \
        "The security token included in the request is invalid."
    assert unknown.key_id is None and revoked.key_id == KEY.key_id


def test_session_token_rules() -> None:
    without = sign(SESSION, token="")  # a session key id signed without its token
    assert "x-amz-security-token" not in auth_parts(without)["SignedHeaders"]
    refused(without, e.UnrecognizedClient, e.REASON_TOKEN)
    # a signed token header removed in transit: the signature no longer matches
    stripped = with_header(sign(SESSION), "X-Amz-Security-Token", None)
    refused(stripped, e.InvalidSignature, e.REASON_SIGNATURE)
    refused(sign(SESSION, token="wrong-token"), e.UnrecognizedClient, e.REASON_TOKEN)
    refused(sign(KEY, token="a-token-for-a-long-term-key"), e.UnrecognizedClient,
            e.REASON_TOKEN)


def test_an_expired_session_key_is_expired_token() -> None:
    request = sign(SESSION)
    at = signed_at_ms(request)
    short = dataclasses.replace(SESSION, expires_ms=at - 1)
    error = refused(request, e.ExpiredToken, e.REASON_EXPIRED_KEY, v=verifier(short))
    assert error.message == "The security token included in the request is expired"


def test_an_unsigned_token_is_refused() -> None:
    request = sign(SESSION)
    unsigned = auth_parts(request)["SignedHeaders"].replace(";x-amz-security-token", "")
    refused(with_auth(request, SignedHeaders=unsigned), e.InvalidSignature,
            e.REASON_UNSIGNED_HEADER)


# -- the body hash ------------------------------------------------------------------------

def test_a_stated_body_hash_that_does_not_match_the_body_is_refused() -> None:
    wrong = hashlib.sha256(b"another body").hexdigest()
    # botocore signs the stated hash, so the signature is right and only the body is not
    request = sign(headers={**default_headers(), "X-Amz-Content-SHA256": wrong})
    error = refused(request, e.InvalidSignature, e.REASON_BODY_HASH)
    assert "x-amz-content-sha256" in error.message


@pytest.mark.parametrize("value", ["UNSIGNED-PAYLOAD",
                                   "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "abc"])
def test_unsigned_payloads_are_refused(value: str) -> None:
    request = sign(headers={**default_headers(), "X-Amz-Content-SHA256": value})
    refused(request, e.InvalidSignature, e.REASON_BODY_HASH)


def test_a_stated_hash_is_checked_after_the_signature() -> None:
    """With a stated hash and a wrong signature, the HMAC refuses first: the body of a
    forged request is never hashed."""
    wrong = hashlib.sha256(b"another body").hexdigest()
    request = sign(headers={**default_headers(), "X-Amz-Content-SHA256": wrong})
    refused(_flip(5)(request), e.InvalidSignature, e.REASON_SIGNATURE)


# -- presigned, bounded work, cache --------------------------------------------------------

def test_presigned_requests_are_refused_clearly() -> None:
    request = dataclasses.replace(with_header(sign(), "Authorization", None),
                                  query="X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=00")
    error = refused(request, e.IncompleteSignature, e.REASON_PRESIGNED)
    assert "presigned" in error.message


def test_refusals_before_the_key_cost_no_lookup_and_no_hmac() -> None:
    lookups: list[str] = []

    def lookup(key_id: str) -> AccessKey | None:
        lookups.append(key_id)
        return {KEY.key_id: KEY}.get(key_id)

    v = SigV4Verifier(lookup)
    early = [with_credential(sign(), 3, "s3"), with_auth(sign(), algorithm="AWS4-X"),
             with_header(sign(), "X-Amz-Date", "bad"), with_auth(sign(), SignedHeaders="host"),
             MUTATIONS["signature-short"](sign())]
    for request in early:
        with pytest.raises(e.AuthError):
            v.verify(request, signed_at_ms(sign()))
    assert lookups == [] and v.cached_signing_keys == 0
    stranger = create_key(ROLE_READ_WRITE, now_ms=1, random_bytes=_counter("stranger"))
    with pytest.raises(e.UnrecognizedClient):
        verify(sign(stranger), v)
    assert v.cached_signing_keys == 0


def test_signing_keys_are_cached_within_a_bound() -> None:
    v = verifier(KEY, cache_entries=2)
    for region in ("us-east-1", "eu-west-1", "ap-south-1", "us-east-1"):
        assert verify(sign(region=region), v) is KEY
        assert v.cached_signing_keys <= 2
    assert v.cached_signing_keys == 2


def test_a_new_secret_under_the_same_id_is_not_served_from_the_cache() -> None:
    table = {KEY.key_id: KEY}
    v = SigV4Verifier(table.get)
    old = sign()
    assert verify(old, v) is KEY
    rotated = dataclasses.replace(KEY, secret=OTHER.secret)
    table[KEY.key_id] = rotated
    refused(old, e.InvalidSignature, e.REASON_SIGNATURE, v=v)
    assert verify(sign(rotated), v) is rotated


# -- canonical parts against botocore -------------------------------------------------------

@pytest.mark.parametrize("path", ["", "/", "/a/b", "/a/./b/../c", "//a//b//", "/a%20b/c~d",
                                  "/é", "/a/../../b", "/%2F"])
def test_canonical_uri_matches_botocore(path: str) -> None:
    reference = SigV4Auth(Credentials("a", "b"), "dynamodb", "us-east-1")
    assert canonical_uri_text(path) == reference._normalize_url_path(path)


def test_canonical_query_sorts_and_reencodes() -> None:
    assert canonical_query_text("b=2&a=x%20y&a=1&c") == "a=1&a=x%20y&b=2&c="
    assert canonical_query_text("k=%2f%7E") == "k=%2F~"


# -- what the verifier remembers never stands in for a check -------------------------------

def test_a_remembered_credential_still_has_its_date_checked_per_request() -> None:
    v = verifier()
    request = sign()
    assert verify(request, v) is KEY  # its Credential value is now remembered
    stamp = header(request, "X-Amz-Date")
    next_day = (datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ")
                + datetime.timedelta(days=1)).strftime("%Y%m%dT%H%M%SZ")
    moved = with_header(request, "X-Amz-Date", next_day)
    refused(moved, e.InvalidSignature, e.REASON_SCOPE, now_ms=signed_at_ms(moved), v=v)


def test_a_bad_scope_is_refused_every_time_it_is_sent() -> None:
    v = verifier()
    bad = with_credential(sign(), 3, "s3")
    for _ in range(3):
        refused(bad, e.InvalidSignature, e.REASON_SCOPE, v=v)
    assert verify(sign(), v) is KEY


def test_the_remembered_scopes_are_bounded() -> None:
    v = verifier()
    for n in range(2500):
        refused(with_credential(sign(), 0, f"AKAT{n:016d}"), e.UnrecognizedClient,
                e.REASON_UNKNOWN_KEY, v=v)
    assert 0 < v.cached_scopes <= 1024


def test_the_wire_form_verifies_as_the_signed_request_does() -> None:
    v = verifier()
    for request in (sign(), sign(params={"a": "b c"}),
                    sign(headers=[("X-Amz-Target", TARGET), ("X-Custom", "1"),
                                  ("X-Custom", "  two   words ")])):
        wire = [(n.encode("latin-1"), value.encode("latin-1")) for n, value in request.headers]
        target = (request.path + ("?" + request.query if request.query else "")).encode()
        assert v.verify_wire(request.method.encode(), target, wire, request.body,
                             signed_at_ms(request)) is KEY
        altered = request.body + b" "
        with pytest.raises(e.InvalidSignature):
            v.verify_wire(request.method.encode(), target, wire, altered, signed_at_ms(request))
