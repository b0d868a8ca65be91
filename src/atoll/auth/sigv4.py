"""Verification of AWS Signature Version 4 on DynamoDB requests.

Theory of operation
A client proves it holds an access key's secret by sending an HMAC-SHA256 of a
canonical form of its request, under a key derived from the secret, the date, the
region and the service. The server rebuilds the same canonical request from what it
received and compares. Each check below exists because skipping it lets something
through:

- The canonical request is rebuilt from the request as received, never from values the
  client states about it: method; URI path (dot segments removed, percent-encoded once
  more, as AWS does for every service but S3); query (decoded, re-encoded with AWS's
  unreserved set, sorted); every header the client listed in SignedHeaders, values
  trimmed and inner runs of whitespace collapsed, repeated headers joined with ',';
  and the SHA-256 of the body computed here. So a changed method, path, query, signed
  header or body changes the signature.
- Headers that steer the request must be signed: `host` (as DynamoDB requires),
  `x-amz-target` when present (it selects the operation: an unsigned one would let a
  captured GetItem be replayed as a DeleteItem), the date header used, and
  `x-amz-security-token` and `x-amz-content-sha256` when present.
- `x-amz-content-sha256`, when sent, must equal the SHA-256 the server computes of the
  body; unsigned and streaming payloads are refused: the body is what DynamoDB acts on.
- The request time (`X-Amz-Date`, else `Date`) must be within DynamoDB's window of 5
  minutes of the server's clock, either way: a captured request cannot be replayed
  later than that. The credential scope's date must be that time's date.
- The credential scope must be well formed: 5 parts, service `dynamodb`, terminator
  `aws4_request`, and a region (any well-formed region name unless the verifier is
  given a set: a request signed once by the failover client may reach any region, and
  the region is bound into the derived key, so it is authenticated either way).
- The key must be known and not revoked (one answer for both, so the answer does not
  tell an attacker which ids exist), not expired if it is a session key, and a session
  key's token must match; a long-term key must not be sent with a token.
- The signature is compared with `hmac.compare_digest` (no timing signal of how many
  leading characters matched).

Bounded work per refused request: whatever parsing can refuse (sizes, shape, date,
scope, signed-header rules, signature syntax) is refused before any key lookup or hash;
the body is hashed only for a known, usable key (after the HMAC when the client states
the body's hash). What clients repeat is remembered in bounded tables: derived signing
keys per (secret, date, region, service) (FIFO), an Authorization value's head (all
before ", Signature=", checked once; `_remembered_head` says why that is sound), a
Credential's parts and scope checks (not its date), SignedHeaders lists and the last
X-Amz-Date. The request is verified as the HTTP layer holds it (bytes, one dict of
headers by lower-case name, the canonical request one join: `atoll.auth.canonical`),
so a valid request costs two SHA-256s, one HMAC and that join. The signature, the
body's hash, the window and the key's state are checked on every request (cost:
`python -m bench.auth`, `python -m bench.auth_live`).

Presigned (query-string) requests are refused: DynamoDB clients sign headers, and a
second code path is a second attack surface. Errors follow DynamoDB's types and wording
(`atoll.auth.errors`). Pure: the time is an argument, no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from _hashlib import HMAC as HmacState
from _hashlib import hmac_new
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Final

from atoll.auth import errors as e
from atoll.auth.canonical import SignedHeaderList, canonical_request, header_value
from atoll.auth.keys import AccessKey
from atoll.auth.timestamps import iso_basic, parse_http_date, parse_iso_basic

ALGORITHM: Final = "AWS4-HMAC-SHA256"
SERVICE = "dynamodb"
TERMINATOR = "aws4_request"
SKEW_MS = 5 * 60 * 1000
MAX_AUTHORIZATION_CHARS: Final = 4096
MAX_SIGNED_HEADERS = 64
MAX_SIGNED_HEADER_CHARS: Final = 64 * 1024
SIGNING_KEY_CACHE_ENTRIES = 4096
SCOPE_CACHE_ENTRIES: Final = 1024
HEADER_LIST_CACHE_ENTRIES: Final = 256
VALUE_CACHE_ENTRIES: Final = 1024
HEAD_CACHE_ENTRIES: Final = 1024

_REGION_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}\Z")
_KEY_ID_RE = re.compile(r"[A-Za-z0-9]{1,128}\Z")
_HEADER_NAME_RE = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]{1,128}\Z")
_USUAL_AUTHORIZATION_RE: Final = re.compile(
    r"AWS4-HMAC-SHA256 Credential=([^\s,=]+), ?SignedHeaders=([^\s,=]+), ?"
    r"Signature=([^\s,=]+)\Z")
_USUAL_START: Final = "AWS4-HMAC-SHA256 Credential="
_SIGNATURE_RE: Final = re.compile(r"[0-9a-f]{64}\Z")
_SIGNATURE_PART: Final = b", Signature="
_LOWER_HEX: Final = b"0123456789abcdef"
_HEX64_RE: Final = re.compile(r"[0-9a-fA-F]{64}\Z")
_PRESIGN_PARAMS: Final = (b"X-Amz-Signature=", b"X-Amz-Credential=", b"X-Amz-Algorithm=")
_STEERING_HEADERS: Final = ((b"x-amz-target", "X-Amz-Target"),
                            (b"x-amz-security-token", "X-Amz-Security-Token"),
                            (b"x-amz-content-sha256", "X-Amz-Content-SHA256"))
_X_AMZ_DATE: Final = b"x-amz-date"
_DATE: Final = b"date"
_NOT_REPEATED: Final[frozenset[bytes]] = frozenset()

KeyLookup = Callable[[str], AccessKey | None]
# lower-case header name -> its value as received (a name that was repeated: its values'
# canonical forms joined with ','; the verifier keeps the set of such names beside it)
Fields = dict[bytes, bytes]


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A request as received: raw (still percent-encoded) path and query, headers in
    any case with repeats kept, and the body bytes."""

    method: str
    path: str
    query: str
    headers: Sequence[tuple[str, str]]
    body: bytes

    @staticmethod
    def from_target(method: str, target: str, headers: Sequence[tuple[str, str]],
                    body: bytes) -> SignedRequest:
        """From an HTTP request-target such as `/path?query`."""
        path, _, query = target.partition("?")
        return SignedRequest(method, path, query, headers, body)


@dataclass(frozen=True, slots=True)
class CredentialScope:
    """The parts of a Credential value (`keyid/date/region/service/aws4_request`) and
    whether they pass every scope check but the date's (`valid`; the date must equal the
    request's, which each request brings)."""

    text: str  # date/region/service/terminator: the scope in the string to sign
    credential: str
    key_id: str
    key_id_ok: bool
    date: str
    region: str
    service: str
    terminator: str
    valid: bool


@dataclass(frozen=True, slots=True)
class AuthorizationHead:
    """What an Authorization header value says before its signature, parsed and checked:
    the Credential and SignedHeaders values, the scope's parts (`CredentialScope`) and
    the signed header list."""

    credential: str
    signed_headers: str
    scope: CredentialScope
    signed: SignedHeaderList


class SigV4Verifier:
    """Verifies requests against keys found by `lookup` (None: no such key)."""

    def __init__(self, lookup: KeyLookup, regions: frozenset[str] | None = None,
                 service: str = SERVICE, skew_ms: int = SKEW_MS,
                 cache_entries: int = SIGNING_KEY_CACHE_ENTRIES) -> None:
        if skew_ms <= 0 or skew_ms % 60_000 or cache_entries < 1:
            raise ValueError("skew_ms is a positive number of whole minutes; cache >= 1")
        self.lookup = lookup
        self.regions = regions
        self.service = service
        self.skew_ms = skew_ms
        self.cache_entries = cache_entries
        self._signing_keys: dict[tuple[str, str, str, str], HmacState] = {}
        self._scopes: dict[str, CredentialScope] = {}  # Credential value -> parts, checks
        # SignedHeaders values already found well formed (clients send the same few)
        self._header_lists: dict[str, SignedHeaderList] = {}
        # header value as received -> its canonical form (clients repeat most of theirs)
        self._values: dict[bytes, bytes] = {}
        # the last X-Amz-Date parsed: (as received, as YYYYMMDDTHHMMSSZ, epoch seconds)
        self._last_date: tuple[bytes, str, int] | None = None
        # Authorization values up to ", Signature=" -> what they say (`_remembered_head`)
        self._heads: dict[bytes, AuthorizationHead] = {}

    def verify(self, request: SignedRequest, now_ms: int) -> AccessKey:
        """The key that signed `request`, or an AuthError saying why it is refused."""
        headers = [(_received(n), _received(v)) for n, v in request.headers]
        return self._verify(_received(request.method), _received(request.path),
                            _received(request.query), headers, request.body, now_ms)

    def verify_wire(self, method: bytes, target: bytes, headers: Sequence[tuple[bytes, bytes]],
                    body: bytes, now_ms: int) -> AccessKey:
        """`verify` for a request as the HTTP layer holds it: method, request-target
        (`/path?query`) and headers as received, and the body."""
        path, _, query = target.partition(b"?")
        return self._verify(method, path, query, headers, body, now_ms)

    def _verify(self, method: bytes, path: bytes, query: bytes,
                headers: Sequence[tuple[bytes, bytes]], body: bytes, now_ms: int) -> AccessKey:
        fields = {name.lower(): value for name, value in headers}
        repeated = _NOT_REPEATED if len(fields) == len(headers) else _repeats(headers, fields)
        value = fields.get(b"authorization")
        head_bytes, head, signature_bytes = self._remembered_head(value, fields, repeated,
                                                                  query)
        if head is not None:  # (the usual case: checked as below when first seen)
            algorithm, signature = ALGORITHM, signature_bytes.decode("ascii")
            credential, signed_headers = head.credential, head.signed_headers
            scope, signed = head.scope, head.signed
        else:
            raw = _authorization_header(fields, repeated, query)
            algorithm, credential, signed_headers, signature = authorization_parts(
                raw, _X_AMZ_DATE in fields or _DATE in fields)
            scope = self._credential_scope(credential)
        key_id = scope.key_id if scope.key_id_ok else None
        stamp, iso, date_header = self._request_time(fields, repeated, key_id)
        _check_window(stamp, now_ms, self.skew_ms, key_id)
        if head is None:
            signed = self._header_list(signed_headers, key_id)
        values = _signed_values(signed, fields, repeated, date_header, key_id, self._values)
        if algorithm != ALGORITHM or not scope.valid or scope.date != iso[:8]:
            _check_algorithm_and_scope(algorithm, scope, iso, self.service, self.regions,
                                       key_id)
        if head is None:
            if not _SIGNATURE_RE.match(signature):
                raise e.InvalidSignature(e.MISMATCH, e.REASON_SIGNATURE, key_id)
            if head_bytes is not None and signature_bytes == signature.encode("ascii"):
                self._remember_head(head_bytes, AuthorizationHead(credential, signed_headers,
                                                                  scope, signed))
        key = self._usable_key(scope.key_id, fields, repeated, now_ms)
        claimed = _claimed_body_hash(fields, repeated, key_id)
        body_hash = claimed if claimed is not None else hashlib.sha256(body).hexdigest()
        canonical = canonical_request(method, path, query, signed, values,
                                      body_hash.encode("ascii"))
        string_to_sign = (f"{ALGORITHM}\n{iso}\n{scope.text}\n"
                          f"{hashlib.sha256(canonical).hexdigest()}").encode()
        signing_key = self._signing_key(key, scope.date, scope.region, scope.service)
        expected = signature_of(signing_key, string_to_sign)
        if not hmac.compare_digest(expected, signature):
            raise e.InvalidSignature(e.MISMATCH, e.REASON_SIGNATURE, key.key_id)
        if claimed is not None and not hmac.compare_digest(
                claimed.lower(), hashlib.sha256(body).hexdigest()):
            raise e.InvalidSignature(
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
                e.REASON_BODY_HASH, key.key_id)
        return key

    def _remembered_head(self, value: bytes | None, fields: Fields, repeated: frozenset[bytes],
                         query: bytes) -> tuple[bytes | None, AuthorizationHead | None, bytes]:
        """(head, what it says if remembered, signature) of an Authorization value in the
        usual shape: not repeated, at most MAX_AUTHORIZATION_CHARS, a date header present,
        no query, and ending in ", Signature=" and 64 lower-case hex digits; the head is
        what precedes ", Signature=". Otherwise (None, None, b"").

        Why remembering is sound: every check of the Authorization value but the
        signature's is a function of the head alone when the signature is 64 lower-case
        hex digits (they hold no space, ',' or '=', so every way the value is parsed splits
        it at the same places, whichever such signature ends it). A head is remembered
        (`_remember_head`) only after a request ending so passed every one of those checks,
        and its parsed signature was that ending: every later value with that head and
        such an ending would pass them too, with the same parts."""
        if value is None or repeated or query or len(value) > MAX_AUTHORIZATION_CHARS or not (
                _X_AMZ_DATE in fields or _DATE in fields):
            return None, None, b""
        head_bytes, separator, signature = value.rpartition(_SIGNATURE_PART)
        if not separator or len(signature) != 64 or signature.translate(None, _LOWER_HEX):
            return None, None, b""
        return head_bytes, self._heads.get(head_bytes), signature

    def _remember_head(self, head_bytes: bytes, head: AuthorizationHead) -> None:
        if len(self._heads) >= HEAD_CACHE_ENTRIES:
            self._heads.clear()
        self._heads[head_bytes] = head

    def _credential_scope(self, credential: str) -> CredentialScope:
        """The parts of a Credential value and whether its scope passes every check but
        the date's (which depends on the request): parsed and checked once per distinct
        value (clients send the same one all day), in a bounded table."""
        scope = self._scopes.get(credential)
        if scope is None:
            scope = credential_scope(credential, self.service, self.regions)
            if len(self._scopes) >= SCOPE_CACHE_ENTRIES:
                self._scopes.clear()
            self._scopes[credential] = scope
        return scope

    def _request_time(self, fields: Fields, repeated: frozenset[bytes],
                      key_id: str | None) -> tuple[int, str, bytes]:
        """(request time in epoch seconds, as YYYYMMDDTHHMMSSZ, the header it came from);
        one of the date headers is present. The last X-Amz-Date parsed is remembered:
        clients send the same one for a second."""
        value = fields.get(_X_AMZ_DATE)
        last = self._last_date
        if last is not None and value == last[0] and _X_AMZ_DATE not in repeated:
            return last[2], last[1], _X_AMZ_DATE
        stamp, iso, name = request_time(fields, key_id)
        if value is not None and _X_AMZ_DATE not in repeated:
            self._last_date = (value, iso, stamp)
        return stamp, iso, name

    def _header_list(self, signed_headers: str, key_id: str | None) -> SignedHeaderList:
        signed = self._header_lists.get(signed_headers)
        if signed is None:
            signed = SignedHeaderList.of(signed_header_names(signed_headers, key_id))
            if len(self._header_lists) >= HEADER_LIST_CACHE_ENTRIES:
                self._header_lists.clear()
            self._header_lists[signed_headers] = signed
        return signed

    def _usable_key(self, key_id: str, fields: Fields, repeated: frozenset[bytes],
                    now_ms: int) -> AccessKey:
        key = self.lookup(key_id)
        if key is None:
            raise e.UnrecognizedClient(e.BAD_TOKEN, e.REASON_UNKNOWN_KEY, None)
        if key.revoked:
            raise e.UnrecognizedClient(e.BAD_TOKEN, e.REASON_REVOKED_KEY, key.key_id)
        if key.expired(now_ms):
            raise e.ExpiredToken(e.EXPIRED_TOKEN, e.REASON_EXPIRED_KEY, key.key_id)
        sent = fields.get(b"x-amz-security-token")
        if key.session_token is None:
            if sent is not None:
                raise e.UnrecognizedClient(e.BAD_TOKEN, e.REASON_TOKEN, key.key_id)
        elif sent is None or b"x-amz-security-token" in repeated or not hmac.compare_digest(
                sent.decode("latin-1").strip().encode("utf-8"),
                key.session_token.reveal().encode("utf-8")):
            raise e.UnrecognizedClient(e.BAD_TOKEN, e.REASON_TOKEN, key.key_id)
        return key

    def _signing_key(self, key: AccessKey, date: str, region: str, service: str) -> HmacState:
        """kSigning = HMAC chain of secret, date, region, service, 'aws4_request', as an
        HMAC ready to sign with (`signature_of`), cached per (secret, date, region,
        service): a key whose secret changed under the same id misses, and the secret
        string's hash is computed once per string object."""
        secret = key.secret.reveal()
        cache_key = (secret, date, region, service)
        derived = self._signing_keys.get(cache_key)
        if derived is None:
            derived = hmac_new(signing_key(secret.encode("utf-8"), date, region, service),
                               digestmod="sha256")
            if len(self._signing_keys) >= self.cache_entries:
                del self._signing_keys[next(iter(self._signing_keys))]
            self._signing_keys[cache_key] = derived
        return derived

    @property
    def cached_signing_keys(self) -> int:
        return len(self._signing_keys)

    @property
    def cached_scopes(self) -> int:
        return len(self._scopes)

    @property
    def cached_heads(self) -> int:
        return len(self._heads)


def signing_key(secret: bytes, date: str, region: str, service: str) -> bytes:
    k = hmac.digest(b"AWS4" + secret, date.encode("utf-8"), "sha256")
    k = hmac.digest(k, region.encode("utf-8"), "sha256")
    k = hmac.digest(k, service.encode("utf-8"), "sha256")
    return hmac.digest(k, TERMINATOR.encode("utf-8"), "sha256")


def signature_of(signing_key: HmacState, string_to_sign: bytes) -> str:
    """The hex HMAC-SHA256 of the string to sign under the derived key. The key is held
    as OpenSSL's HMAC state after the key (`_hashlib`, what `hmac.new` runs on) and
    copied per request: the same HMAC as `hmac.digest(key, msg, "sha256")` (tested), at
    about half its cost, which sets the key up anew on every call."""
    state = signing_key.copy()
    state.update(string_to_sign)
    return state.hexdigest()


def _received(text: str) -> bytes:
    """Text as the HTTP layer receives it: latin-1 bytes, as HTTP defines headers (text
    latin-1 cannot hold never came over HTTP; its UTF-8 bytes stand for it, as for a
    client that sent those bytes)."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def _repeats(headers: Sequence[tuple[bytes, bytes]], fields: Fields) -> frozenset[bytes]:
    """The names that occur more than once in `headers`; `fields` holds each of those
    as the canonical request does: its values' canonical forms joined with ','."""
    grouped: dict[bytes, list[bytes]] = {}
    for name, value in headers:
        grouped.setdefault(name.lower(), []).append(value)
    repeated = frozenset(name for name, values in grouped.items() if len(values) > 1)
    for name in repeated:
        fields[name] = b",".join([header_value(v) for v in grouped[name]])
    return repeated


def _authorization_header(fields: Fields, repeated: frozenset[bytes], query: bytes) -> str:
    if query and any(p in query for p in _PRESIGN_PARAMS):
        raise e.IncompleteSignature(
            "Atoll verifies Signature Version 4 in the Authorization header only; "
            "presigned (query-string) requests are not supported.", e.REASON_PRESIGNED)
    value = fields.get(b"authorization")
    raw = "" if value is None else value.decode("latin-1").strip()
    if not raw.startswith("AWS4-"):
        raise e.MissingAuthenticationToken(e.MISSING, e.REASON_MISSING)
    if b"authorization" in repeated:
        raise e.IncompleteSignature("Only one Authorization header is allowed.",
                                    e.REASON_MALFORMED)
    if len(raw) > MAX_AUTHORIZATION_CHARS:
        raise e.IncompleteSignature(
            f"The Authorization header is longer than {MAX_AUTHORIZATION_CHARS} characters.",
            e.REASON_TOO_LARGE)
    return raw


def authorization_parts(raw: str, has_date: bool = True) -> tuple[str, str, str, str]:
    """(algorithm, Credential, SignedHeaders, Signature) of `raw` (already known to start
    with AWS4-); IncompleteSignature if a part (or, with `has_date` False, the request's
    date header) is missing or an item is not key=value. Checks of the parts' values
    come later."""
    if has_date and raw.startswith(_USUAL_START):  # the form every SDK sends
        credential, _, rest = raw[len(_USUAL_START):].partition(", SignedHeaders=")
        signed_headers, _, signature = rest.partition(", Signature=")
        if _plain(credential) and _plain(signed_headers) and _plain(signature):
            return ALGORITHM, credential, signed_headers, signature
    fast = _USUAL_AUTHORIZATION_RE.match(raw)
    if fast is not None and has_date:  # the same, with or without a space after ','
        return ALGORITHM, fast.group(1), fast.group(2), fast.group(3)
    algorithm, _, rest = raw.partition(" ")
    params: dict[str, str] = {}
    for item in rest.split(","):
        item = item.strip()
        name, equals, value = item.partition("=")
        if not equals:
            raise e.IncompleteSignature(
                f"'{item}' not a valid key=value pair (missing equal-sign) in Authorization "
                f"header: '{raw}'.", e.REASON_MALFORMED)
        if name not in ("Credential", "SignedHeaders", "Signature") or name in params:
            raise e.IncompleteSignature(
                f"'{name}' is not a valid or is a repeated parameter in Authorization header: "
                f"'{raw}'.", e.REASON_MALFORMED)
        params[name] = value.strip()
    missing = "".join(f"Authorization header requires '{name}' parameter. "
                      for name in ("Credential", "Signature", "SignedHeaders")
                      if not params.get(name))
    if not has_date:
        missing += ("Authorization header requires existence of either a 'X-Amz-Date' or "
                    "a 'Date' header. ")
    if missing:
        raise e.IncompleteSignature(missing + "Authorization=" + raw, e.REASON_MALFORMED)
    return algorithm, params["Credential"], params["SignedHeaders"], params["Signature"]


def _plain(part: str) -> bool:
    """Whether `part` is what _USUAL_AUTHORIZATION_RE's groups match: not empty, and no
    whitespace, ',' or '=' (isprintable is false for every whitespace but ' ', and for
    a few other characters, whose requests the regular expression then reads)."""
    return part != "" and part.isprintable() and " " not in part and "," not in part \
        and "=" not in part


def credential_scope(credential: str, service: str,
                     regions: frozenset[str] | None) -> CredentialScope:
    """`credential` split into its parts, its scope checked (all but the date)."""
    parts = credential.split("/") + [""] * 5
    key_id, date, region, scope_service, terminator = parts[:5]
    unchecked = CredentialScope(f"{date}/{region}/{scope_service}/{terminator}", credential,
                                key_id, _KEY_ID_RE.match(key_id) is not None, date, region,
                                scope_service, terminator, False)
    try:
        _check_algorithm_and_scope(ALGORITHM, unchecked, date, service, regions, None)
    except e.AuthError:
        return unchecked
    return replace(unchecked, valid=True)


def request_time(fields: Fields, key_id: str | None) -> tuple[int, str, bytes]:
    """(request time in epoch seconds, as YYYYMMDDTHHMMSSZ, the header it came from:
    X-Amz-Date if present, else Date); one of them is present."""
    name = _X_AMZ_DATE if _X_AMZ_DATE in fields else _DATE
    value = fields[name].decode("latin-1").strip()
    stamp = parse_iso_basic(value)
    if stamp is None and name == _DATE:
        stamp = parse_http_date(value)
    if stamp is None:
        raise e.IncompleteSignature(
            f"Date must be in ISO-8601 'basic format'. Got '{value[:64]}'. See "
            "http://en.wikipedia.org/wiki/ISO_8601", e.REASON_DATE_FORMAT, key_id)
    return stamp, iso_basic(stamp), name


def _check_window(stamp_s: int, now_ms: int, skew_ms: int, key_id: str | None) -> None:
    now_s = now_ms // 1000
    skew_s = skew_ms // 1000
    minutes = skew_ms // 60_000
    if stamp_s < now_s - skew_s:
        raise e.InvalidSignature(
            f"Signature expired: {iso_basic(stamp_s)} is now earlier than "
            f"{iso_basic(now_s - skew_s)} ({iso_basic(now_s)} - {minutes} min.)",
            e.REASON_EXPIRED, key_id)
    if stamp_s > now_s + skew_s:
        raise e.InvalidSignature(
            f"Signature not yet current: {iso_basic(stamp_s)} is still later than "
            f"{iso_basic(now_s + skew_s)} ({iso_basic(now_s)} + {minutes} min.)",
            e.REASON_NOT_YET_VALID, key_id)


def signed_header_names(signed_headers: str, key_id: str | None) -> list[str]:
    """The names in a SignedHeaders value, if it is a sorted list of distinct lower-case
    header names (host among them, authorization not); else the refusal."""
    names = signed_headers.split(";")
    if len(names) > MAX_SIGNED_HEADERS or names != sorted(set(names)) \
            or not all(_HEADER_NAME_RE.match(n) for n in names) or "authorization" in names:
        raise e.IncompleteSignature(
            "SignedHeaders must be a sorted list of distinct lower-case header names "
            f"separated by ';' (at most {MAX_SIGNED_HEADERS}), got "
            f"'{signed_headers[:256]}'.", e.REASON_MALFORMED, key_id)
    if "host" not in names:
        raise e.InvalidSignature(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
            e.REASON_UNSIGNED_HEADER, key_id)
    return names


def _signed_values(signed: SignedHeaderList, fields: Fields, repeated: frozenset[bytes],
                   date_header: bytes, key_id: str | None,
                   known: dict[bytes, bytes]) -> list[bytes]:
    """The canonical value of each signed header, in order (trimmed, inner whitespace
    collapsed, repeats joined with ','), after checking that the headers that steer
    the request are signed, and the size bound. `known` remembers canonical forms of
    values (a bounded table: most values recur on every request of a client)."""
    named = signed.named
    for name, shown in _STEERING_HEADERS:
        if name in fields and name not in named:
            raise e.InvalidSignature(
                f"'{shown}' must be a 'SignedHeader' in the AWS Authorization.",
                e.REASON_UNSIGNED_HEADER, key_id)
    if date_header not in named:
        shown = "X-Amz-Date" if date_header == _X_AMZ_DATE else "Date"
        raise e.InvalidSignature(f"'{shown}' must be a 'SignedHeader' in the AWS Authorization.",
                                 e.REASON_UNSIGNED_HEADER, key_id)
    values: list[bytes] = []
    chars = 0
    for name in signed.names:
        value = fields.get(name)
        if value is None:
            raise e.InvalidSignature(e.MISMATCH, e.REASON_SIGNATURE, key_id)
        if name not in repeated:  # (a repeated name's value is canonical already)
            canonical = known.get(value)
            if canonical is None:
                canonical = header_value(value)
                if len(known) >= VALUE_CACHE_ENTRIES:
                    known.clear()
                known[value] = canonical
            value = canonical
        values.append(value)
        chars += len(name) + len(value) + 3  # name, ':', value, '\n', and its ';'
    if chars > MAX_SIGNED_HEADER_CHARS:
        raise e.IncompleteSignature(
            f"The signed headers exceed {MAX_SIGNED_HEADER_CHARS} characters.",
            e.REASON_TOO_LARGE, key_id)
    return values


def _check_algorithm_and_scope(algorithm: str, scope: CredentialScope, stamp: str,
                               service: str, regions: frozenset[str] | None,
                               key_id: str | None) -> None:
    if algorithm != ALGORITHM:
        raise e.IncompleteSignature(
            f"Unsupported AWS 'algorithm': '{algorithm[:64]}' (only {ALGORITHM} for now). ",
            e.REASON_ALGORITHM, key_id)
    if scope.credential.count("/") != 4:
        raise e.IncompleteSignature(
            "Credential must have exactly 5 slash-delimited elements, e.g. "
            f"keyid/date/region/service/term, got '{scope.credential[:256]}'",
            e.REASON_MALFORMED, key_id)
    if not scope.key_id:
        raise e.UnrecognizedClient(e.BAD_TOKEN, e.REASON_UNKNOWN_KEY, None)
    message = ""
    region_ok = _REGION_RE.match(scope.region) is not None if regions is None \
        else scope.region in regions
    if not region_ok:
        message += f"Credential should be scoped to a valid region, not '{scope.region[:64]}'. "
    if scope.service != service:
        message += f"Credential should be scoped to correct service: '{service}'. "
    if scope.terminator != TERMINATOR:
        message += (f"Credential should be scoped with a valid terminator: '{TERMINATOR}', "
                    f"not '{scope.terminator[:64]}'. ")
    if scope.date != stamp[:8]:
        message += ("Date in Credential scope does not match YYYYMMDD from ISO-8601 version "
                    f"of date from HTTP: '{scope.date[:64]}' != '{stamp[:8]}', from '{stamp}'.")
    if message:
        raise e.InvalidSignature(message, e.REASON_SCOPE, key_id)


def _claimed_body_hash(fields: Fields, repeated: frozenset[bytes],
                       key_id: str | None) -> str | None:
    value = fields.get(b"x-amz-content-sha256")
    if value is None:
        return None
    text = "" if b"x-amz-content-sha256" in repeated else value.decode("latin-1").strip()
    if not _HEX64_RE.match(text):
        raise e.InvalidSignature(
            "x-amz-content-sha256 must be the hex SHA-256 of the request body: unsigned and "
            "streaming payloads are not accepted.", e.REASON_BODY_HASH, key_id)
    return text
