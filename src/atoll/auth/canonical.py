"""The SigV4 canonical request, built from a request as the HTTP layer holds it.

Theory of operation
The canonical request is the text both sides hash and sign: the method; the URI path
(dot segments and empty segments removed, percent-encoded once more, as AWS does for
every service but S3); the query (decoded, re-encoded with AWS's unreserved set,
sorted); one `name:value` line per header listed in SignedHeaders, in that order, each
value trimmed with inner runs of whitespace collapsed to one space and repeated headers
joined with ','; the SignedHeaders list; and the hex SHA-256 of the body.

It is built here in bytes, straight from the bytes the HTTP layer received: a header
value is used as received unless it has whitespace to collapse, so the usual request
costs one join and no decoding. The result is the same as botocore's, which works on
text: the HTTP layer's bytes are latin-1 text (as HTTP defines header values), so a
value with a byte above 127 is decoded as latin-1, collapsed as text (whose whitespace
includes U+0085 and U+00A0) and encoded as UTF-8, as a client's signer encodes the
canonical request; an ASCII value is collapsed as bytes with the four ASCII separator
controls (0x1C-0x1F), which text treats as whitespace and bytes do not, counted as
whitespace too. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import quote, unquote_plus

# bytes.split() splits on space, \t, \n, \v, \f and \r; str.split() also on 0x1C-0x1F
_SEPARATORS_AS_SPACE: Final = bytes(range(0x1C)) + b"    " + bytes(range(0x20, 256))


@dataclass(frozen=True, slots=True)
class SignedHeaderList:
    """A well-formed SignedHeaders value, ready to build canonical requests with: the
    value as sent (`text`), its names in order, the bytes that go before each value in
    the canonical request (`b"name:"` for the first, `b"\\nname:"` after), and the names
    as a set for membership tests."""

    text: bytes
    names: tuple[bytes, ...]
    leads: tuple[bytes, ...]
    named: frozenset[bytes]

    @staticmethod
    def of(names: list[str]) -> SignedHeaderList:
        """From a list already checked well formed (lower-case ASCII names)."""
        encoded = tuple(name.encode("ascii") for name in names)
        leads = tuple((b"\n" if i else b"") + name + b":" for i, name in enumerate(encoded))
        return SignedHeaderList(b";".join(encoded), encoded, leads, frozenset(encoded))


def header_value(value: bytes) -> bytes:
    """A header value as it appears in the canonical request: trimmed, each inner run of
    whitespace one space (bytes in, canonical UTF-8 bytes out; see the module docstring)."""
    if value.isascii():
        # (split and join return `value` itself when it has no whitespace at all)
        return b" ".join(value.translate(_SEPARATORS_AS_SPACE).split())
    return " ".join(value.decode("latin-1").split()).encode("utf-8")


def canonical_request(method: bytes, path: bytes, query: bytes, signed: SignedHeaderList,
                      values: list[bytes], body_hash: bytes) -> bytes:
    """The canonical request; `values[i]` is the canonical value of `signed.names[i]`."""
    pieces = [method.upper(), b"\n", canonical_uri(path), b"\n", canonical_query(query),
              b"\n"]
    leads = signed.leads
    for i in range(len(leads)):
        pieces.append(leads[i])
        pieces.append(values[i])
    pieces.append(b"\n\n")
    pieces.append(signed.text)
    pieces.append(b"\n")
    pieces.append(body_hash)
    return b"".join(pieces)


def canonical_uri(path: bytes) -> bytes:
    """The path with dot segments and empty segments removed, encoded once more."""
    if path == b"/" or not path:
        return b"/"
    return canonical_uri_text(path.decode("latin-1")).encode("ascii")


def canonical_uri_text(path: str) -> str:
    """`canonical_uri` of a path as text."""
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


def canonical_query(query: bytes) -> bytes:
    """The query's canonical form (empty for none)."""
    if not query:
        return b""
    return canonical_query_text(query.decode("latin-1")).encode("ascii")


def canonical_query_text(query: str) -> str:
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
