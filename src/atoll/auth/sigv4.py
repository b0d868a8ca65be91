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

Bounded work per refused request: everything that can be refused by parsing (sizes,
shape, date, scope, signed-header rules, signature syntax) is refused before any key
lookup or hash; the body is hashed only for a known, usable key, and when the client
states the body's hash, the HMAC is checked first and the body hashed only for a
correct signature. What clients repeat is remembered, each in a bounded table: the
derived signing key per (secret, date, region, service) (FIFO eviction; a secret changed
under the same id misses), a Credential value's parts and the outcome of its scope checks
(all but the date, which is compared with each request's), well-formed SignedHeaders
lists, and the last X-Amz-Date parsed; the usual Authorization layout is parsed by one
regular expression. So a valid request costs two SHA-256s, one HMAC and the canonical
request built once (`verify_wire` takes the request as the HTTP layer holds it). Nothing
that depends on the request itself is cached: the signature, the body's hash, the window
and the key's state are checked on every request (cost: `python -m bench.auth`).

Presigned (query-string) requests are refused: DynamoDB clients sign headers, and a
second code path is a second attack surface. Errors follow DynamoDB's types and wording
(`atoll.auth.errors`). Pure: the time is an argument, no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from urllib.parse import quote, unquote_plus

from atoll.auth import errors as e
from atoll.auth.keys import AccessKey

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "dynamodb"
TERMINATOR = "aws4_request"
SKEW_MS = 5 * 60 * 1000
MAX_AUTHORIZATION_CHARS = 4096
MAX_SIGNED_HEADERS = 64
MAX_SIGNED_HEADER_CHARS = 64 * 1024
SIGNING_KEY_CACHE_ENTRIES = 4096
SCOPE_CACHE_ENTRIES = 1024

MISMATCH = ("The request signature we calculated does not match the signature you "
            "provided. Check your AWS Secret Access Key and signing method. Consult the "
            "service documentation for details.")
BAD_TOKEN = "The security token included in the request is invalid."
EXPIRED_TOKEN = "The security token included in the request is expired"
MISSING = "Request is missing Authentication Token"

_REGION_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}\Z")
_KEY_ID_RE = re.compile(r"[A-Za-z0-9]{1,128}\Z")
_HEADER_NAME_RE = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]{1,128}\Z")
_USUAL_AUTHORIZATION_RE = re.compile(
    r"AWS4-HMAC-SHA256 Credential=([^\s,=]+), ?SignedHeaders=([^\s,=]+), ?"
    r"Signature=([^\s,=]+)\Z")
_SIGNATURE_RE = re.compile(r"[0-9a-f]{64}\Z")
_HEX64_RE = re.compile(r"[0-9a-fA-F]{64}\Z")
_PRESIGN_PARAMS = ("X-Amz-Signature=", "X-Amz-Credential=", "X-Amz-Algorithm=")
_STEERING_HEADERS = (("x-amz-target", "X-Amz-Target"),
                     ("x-amz-security-token", "X-Amz-Security-Token"),
                     ("x-amz-content-sha256", "X-Amz-Content-SHA256"))
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_UTC_ZONES = ("GMT", "UTC", "+0000", "-0000")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

KeyLookup = Callable[[str], AccessKey | None]


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
        self._signing_keys: dict[tuple[str, str, str, str], bytes] = {}
        self._scopes: dict[str, CredentialScope] = {}  # Credential value -> parts, checks
        # SignedHeaders lists already found well formed (clients send the same few)
        self._header_lists: dict[str, list[str]] = {}
        self._last_date = ("", 0)  # (X-Amz-Date, its epoch seconds): one parse a second

    def verify(self, request: SignedRequest, now_ms: int) -> AccessKey:
        """The key that signed `request`, or an AuthError saying why it is refused."""
        return self._verify(request.method, request.path, request.query,
                            _header_map(request.headers), request.body, now_ms)

    def verify_wire(self, method: bytes, target: bytes, headers: Sequence[tuple[bytes, bytes]],
                    body: bytes, now_ms: int) -> AccessKey:
        """`verify` for a request as the HTTP layer holds it (bytes, as received, decoded
        as latin-1 like any header): no SignedRequest and no second list of headers."""
        path, _, query = target.decode("latin-1").partition("?")
        return self._verify(method.decode("latin-1"), path, query, _wire_header_map(headers),
                            body, now_ms)

    def _verify(self, method: str, path: str, query: str, headers: dict[str, list[str]],
                body: bytes, now_ms: int) -> AccessKey:
        raw = _authorization_header(headers, query)
        algorithm, credential, signed_headers, signature = authorization_parts(
            raw, "x-amz-date" in headers or "date" in headers)
        scope = self._credential_scope(credential)
        key_id = scope.key_id if scope.key_id_ok else None
        stamp, iso, date_header = self._request_time(headers, key_id)
        _check_window(stamp, now_ms, self.skew_ms, key_id)
        header_block = _check_signed_headers(self._header_list(signed_headers, key_id),
                                             headers, date_header, key_id)
        if algorithm != ALGORITHM or not scope.valid or scope.date != iso[:8]:
            _check_algorithm_and_scope(algorithm, scope, iso, self.service, self.regions,
                                       key_id)
        if not _SIGNATURE_RE.match(signature):
            raise e.InvalidSignature(MISMATCH, e.REASON_SIGNATURE, key_id)
        key = self._usable_key(scope.key_id, headers, now_ms)
        claimed = _claimed_body_hash(headers, key_id)
        body_hash = claimed if claimed is not None else hashlib.sha256(body).hexdigest()
        canonical = canonical_request(method, path, query, header_block, signed_headers,
                                      body_hash)
        string_to_sign = "\n".join((ALGORITHM, iso, scope.text,
                                    hashlib.sha256(canonical.encode("utf-8")).hexdigest()))
        signing_key = self._signing_key(key, scope.date, scope.region, scope.service)
        expected = hmac.digest(signing_key, string_to_sign.encode("utf-8"), "sha256").hex()
        if not hmac.compare_digest(expected, signature):
            raise e.InvalidSignature(MISMATCH, e.REASON_SIGNATURE, key.key_id)
        if claimed is not None and not hmac.compare_digest(
                claimed.lower(), hashlib.sha256(body).hexdigest()):
            raise e.InvalidSignature(
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
                e.REASON_BODY_HASH, key.key_id)
        return key

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

    def _request_time(self, headers: dict[str, list[str]],
                      key_id: str | None) -> tuple[int, str, str]:
        """(request time in epoch seconds, as YYYYMMDDTHHMMSSZ, the header it came from);
        one of the date headers is present."""
        values = headers.get("x-amz-date")
        if values is not None and len(values) == 1 and values[0] == self._last_date[0]:
            return self._last_date[1], values[0], "x-amz-date"
        stamp, iso, name = request_time(headers, key_id)
        if name == "x-amz-date":
            self._last_date = (iso, stamp)
        return stamp, iso, name

    def _header_list(self, signed_headers: str, key_id: str | None) -> list[str]:
        names = self._header_lists.get(signed_headers)
        if names is None:
            names = signed_header_names(signed_headers, key_id)
            if len(self._header_lists) >= 256:
                self._header_lists.clear()
            self._header_lists[signed_headers] = names
        return names

    def _usable_key(self, key_id: str, headers: dict[str, list[str]],
                    now_ms: int) -> AccessKey:
        key = self.lookup(key_id)
        if key is None:
            raise e.UnrecognizedClient(BAD_TOKEN, e.REASON_UNKNOWN_KEY, None)
        if key.revoked:
            raise e.UnrecognizedClient(BAD_TOKEN, e.REASON_REVOKED_KEY, key.key_id)
        if key.expired(now_ms):
            raise e.ExpiredToken(EXPIRED_TOKEN, e.REASON_EXPIRED_KEY, key.key_id)
        sent = headers.get("x-amz-security-token")
        if key.session_token is None:
            if sent is not None:
                raise e.UnrecognizedClient(BAD_TOKEN, e.REASON_TOKEN, key.key_id)
        elif sent is None or len(sent) != 1 or not hmac.compare_digest(
                sent[0].strip().encode("utf-8"), key.session_token.reveal().encode("utf-8")):
            raise e.UnrecognizedClient(BAD_TOKEN, e.REASON_TOKEN, key.key_id)
        return key

    def _signing_key(self, key: AccessKey, date: str, region: str, service: str) -> bytes:
        """kSigning = HMAC chain of secret, date, region, service, 'aws4_request', cached
        per (secret, date, region, service): a key whose secret changed under the same id
        misses, and the secret string's hash is computed once per string object."""
        secret = key.secret.reveal()
        cache_key = (secret, date, region, service)
        derived = self._signing_keys.get(cache_key)
        if derived is None:
            derived = signing_key(secret.encode("utf-8"), date, region, service)
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


def signing_key(secret: bytes, date: str, region: str, service: str) -> bytes:
    k = hmac.new(b"AWS4" + secret, date.encode("utf-8"), hashlib.sha256).digest()
    k = hmac.new(k, region.encode("utf-8"), hashlib.sha256).digest()
    k = hmac.new(k, service.encode("utf-8"), hashlib.sha256).digest()
    return hmac.new(k, TERMINATOR.encode("utf-8"), hashlib.sha256).digest()


def _header_map(headers: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    """Lower-case name -> its values, in order (one comprehension when no name repeats)."""
    unique = {name.lower(): [value] for name, value in headers}
    if len(unique) == len(headers):
        return unique
    result: dict[str, list[str]] = {}
    for name, value in headers:
        lower = name.lower()
        values = result.get(lower)
        if values is None:
            result[lower] = [value]
        else:
            values.append(value)
    return result


def _wire_header_map(headers: Sequence[tuple[bytes, bytes]]) -> dict[str, list[str]]:
    """`_header_map` of headers as received (bytes; latin-1, as HTTP defines them)."""
    unique = {name.decode("latin-1").lower(): [value.decode("latin-1")]
              for name, value in headers}
    if len(unique) == len(headers):
        return unique
    return _header_map([(n.decode("latin-1"), v.decode("latin-1")) for n, v in headers])


def _authorization_header(headers: dict[str, list[str]], query: str) -> str:
    if query and any(p in query for p in _PRESIGN_PARAMS):
        raise e.IncompleteSignature(
            "Atoll verifies Signature Version 4 in the Authorization header only; "
            "presigned (query-string) requests are not supported.", e.REASON_PRESIGNED)
    values = headers.get("authorization")
    if not values or not values[0].strip().startswith("AWS4-"):
        raise e.MissingAuthenticationToken(MISSING, e.REASON_MISSING)
    if len(values) > 1:
        raise e.IncompleteSignature("Only one Authorization header is allowed.",
                                    e.REASON_MALFORMED)
    raw = values[0].strip()
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
    fast = _USUAL_AUTHORIZATION_RE.match(raw)
    if fast is not None and has_date:  # the form every SDK sends, parsed in one step
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


def request_time(headers: dict[str, list[str]], key_id: str | None) -> tuple[int, str, str]:
    """(request time in epoch seconds, as YYYYMMDDTHHMMSSZ, the header it came from:
    X-Amz-Date if present, else Date); one of them is present."""
    name = "x-amz-date" if "x-amz-date" in headers else "date"
    value = ",".join(headers[name]).strip()
    stamp = parse_iso_basic(value)
    if stamp is None and name == "date":
        stamp = parse_http_date(value)
    if stamp is None:
        raise e.IncompleteSignature(
            f"Date must be in ISO-8601 'basic format'. Got '{value[:64]}'. See "
            "http://en.wikipedia.org/wiki/ISO_8601", e.REASON_DATE_FORMAT, key_id)
    return stamp, _iso_basic(stamp), name


def _check_window(stamp_s: int, now_ms: int, skew_ms: int, key_id: str | None) -> None:
    now_s = now_ms // 1000
    skew_s = skew_ms // 1000
    minutes = skew_ms // 60_000
    if stamp_s < now_s - skew_s:
        raise e.InvalidSignature(
            f"Signature expired: {_iso_basic(stamp_s)} is now earlier than "
            f"{_iso_basic(now_s - skew_s)} ({_iso_basic(now_s)} - {minutes} min.)",
            e.REASON_EXPIRED, key_id)
    if stamp_s > now_s + skew_s:
        raise e.InvalidSignature(
            f"Signature not yet current: {_iso_basic(stamp_s)} is still later than "
            f"{_iso_basic(now_s + skew_s)} ({_iso_basic(now_s)} + {minutes} min.)",
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


def _check_signed_headers(names: list[str], headers: dict[str, list[str]],
                          date_header: str, key_id: str | None) -> str:
    """The canonical headers block (`name:value\n` per signed header, values trimmed and
    inner whitespace collapsed, repeats joined with ','), after checking that the
    headers that steer the request are signed, and the size bound."""
    for name, shown in _STEERING_HEADERS:
        if name in headers and name not in names:
            raise e.InvalidSignature(
                f"'{shown}' must be a 'SignedHeader' in the AWS Authorization.",
                e.REASON_UNSIGNED_HEADER, key_id)
    if date_header not in names:
        shown = "X-Amz-Date" if date_header == "x-amz-date" else "Date"
        raise e.InvalidSignature(f"'{shown}' must be a 'SignedHeader' in the AWS Authorization.",
                                 e.REASON_UNSIGNED_HEADER, key_id)
    lines: list[str] = []
    for name in names:
        values = headers.get(name)
        if values is None:
            raise e.InvalidSignature(MISMATCH, e.REASON_SIGNATURE, key_id)
        value = " ".join(values[0].split()) if len(values) == 1 \
            else ",".join(" ".join(v.split()) for v in values)
        lines.append(f"{name}:{value}\n")
    block = "".join(lines)
    if len(block) + len(names) > MAX_SIGNED_HEADER_CHARS:  # (name, ':', value, '\n'): +1 each
        raise e.IncompleteSignature(
            f"The signed headers exceed {MAX_SIGNED_HEADER_CHARS} characters.",
            e.REASON_TOO_LARGE, key_id)
    return block


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
        raise e.UnrecognizedClient(BAD_TOKEN, e.REASON_UNKNOWN_KEY, None)
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


def _claimed_body_hash(headers: dict[str, list[str]], key_id: str | None) -> str | None:
    values = headers.get("x-amz-content-sha256")
    if values is None:
        return None
    value = values[0].strip() if len(values) == 1 else ""
    if not _HEX64_RE.match(value):
        raise e.InvalidSignature(
            "x-amz-content-sha256 must be the hex SHA-256 of the request body: unsigned and "
            "streaming payloads are not accepted.", e.REASON_BODY_HASH, key_id)
    return value


def canonical_request(method: str, path: str, query: str, header_block: str,
                      signed_headers: str, body_hash: str) -> str:
    """The SigV4 canonical request (header_block: `name:value\n` per signed header, in
    SignedHeaders' order, as `_check_signed_headers` makes it)."""
    return "\n".join((method.upper(), canonical_uri(path), canonical_query(query), header_block,
                      signed_headers, body_hash))


def canonical_uri(path: str) -> str:
    """The path with dot segments and empty segments removed, encoded once more."""
    if not path or path == "/":
        return "/"
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    normalized = ("/" if path[0] == "/" else "") + "/".join(segments)
    if path[-1] == "/" and segments:
        normalized += "/"
    return quote(normalized, safe="/~")


def canonical_query(query: str) -> str:
    """Names and values decoded then encoded with AWS's unreserved set, sorted by name
    then value, joined with '&'. '+' decodes to a space, as botocore sends spaces in
    query parameters (and signs them as %20)."""
    if not query:
        return ""
    pairs = []
    for item in query.split("&"):
        name, _, value = item.partition("=")
        pairs.append((quote(unquote_plus(name), safe="-_.~"),
                      quote(unquote_plus(value), safe="-_.~")))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def parse_iso_basic(value: str) -> int | None:
    """Epoch seconds of `YYYYMMDDTHHMMSSZ`, or None if it is not exactly that."""
    if len(value) != 16 or value[8] != "T" or value[15] != "Z" \
            or not (value[:8] + value[9:15]).isdigit() or not value.isascii():
        return None
    return _epoch_s(int(value[0:4]), int(value[4:6]), int(value[6:8]), int(value[9:11]),
                    int(value[11:13]), int(value[13:15]))


def parse_http_date(value: str) -> int | None:
    """Epoch seconds of an RFC 7231 IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), or
    the same in RFC 2822 with a zero offset (`-0000`, as botocore writes the Date)."""
    parts = value.split(" ")
    if len(parts) != 6 or parts[0][:-1] not in _DAYS or not parts[0].endswith(",") \
            or parts[2] not in _MONTHS or parts[5] not in _UTC_ZONES or len(parts[1]) != 2 \
            or len(parts[3]) != 4 or not (parts[1] + parts[3]).isdigit() or not value.isascii():
        return None
    clock = parts[4].split(":")
    if len(clock) != 3 or not all(len(c) == 2 and c.isdigit() for c in clock):
        return None
    return _epoch_s(int(parts[3]), _MONTHS.index(parts[2]) + 1, int(parts[1]),
                    int(clock[0]), int(clock[1]), int(clock[2]))


def _epoch_s(year: int, month: int, day: int, hour: int, minute: int, second: int) -> int | None:
    if not (1 <= month <= 12 and 1 <= day <= _days_in_month(year, month) and hour < 24
            and minute < 60 and second < 60):
        return None
    return _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    year -= 1 if month <= 2 else 0
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def _iso_basic(epoch_s: int) -> str:
    """`YYYYMMDDTHHMMSSZ` of epoch seconds (the inverse of parse_iso_basic)."""
    days, second_of_day = divmod(epoch_s, 86400)
    days += 719468
    era = days // 146097
    day_of_era = days - era * 146097
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36524
                   - day_of_era // 146096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    mp = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = year_of_era + era * 400 + (1 if month <= 2 else 0)
    hour, rest = divmod(second_of_day, 3600)
    minute, second = divmod(rest, 60)
    return f"{year:04d}{month:02d}{day:02d}T{hour:02d}{minute:02d}{second:02d}Z"
