"""The verify protocol's messages and their wire form.

Theory of operation: the initiator of a session (session.py) sends requests; each side
answers each request on its own, statelessly (serve.py), over the peer link (or a local
call for the initiator's own region). Every message is one frame:

    frame   = u32 crc32(payload) || payload
    payload = kind (1 byte) || u32 header length || header (orjson object) || body

Hashes travel as 16 raw bytes each in the body; rows as `Entry` records in the body:

    entry = u32 len pk || pk || u32 len sk || sk || u32 len version || version
            || u8 flags (1 live, 2 intact, 4 item follows, 8 causal metadata follows)
            || [16-byte content hash if live] || [u32 len item || item if flag 4]
            || [u32 len causal || causal if flag 8]

Flag 8 (a fetched or repaired row's causal metadata, `Entry.causal`) is set only when
there is some: a row without it is encoded exactly as before flag 8 existed, and a
frame from a node that never sets it decodes here as rows without it. A node that
predates flag 8 refuses a frame that carries it ("row flags are malformed"): during a
rolling upgrade verify between old and new nodes fails its fetch or repair visibly
instead of repairing without the item's merge state; replication is not affected.

Requests: o Open, s Scrub, c Children, k Keys, h SubHashes, f Fetch, r Repair.
Responses: O Opened, S Scrubbed, H Hashes, K KeyPages, F Fetched, R Repaired, E Error.
Every header carries the session id `sid`. Decoding refuses (`BadMessage`) a frame whose
checksum fails, that exceeds a bound (sizes below), or whose header has the wrong shape:
a peer's mistakes never reach the state machines as data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from atoll.antientropy.hashing import HASH_BYTES, content_hash
from atoll.antientropy.store import Entry, KeyPos
from atoll.checksum import crc32
from atoll.replication.cursors import Cursor
from atoll.replication.errors import BadMessage

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
MAX_PARENTS = 4096  # nodes whose children one Children request asks for
MAX_SPANS = 1024  # buckets one Keys request lists
MAX_PAGE_KEYS = 4096  # rows one Keys answer carries
MAX_FETCH_KEYS = 1000
MAX_REPAIRS = 1000
MAX_KEY_PART_BYTES = 4096
MAX_VERSION_BYTES = 4096
MAX_ITEM_BYTES = 1024 * 1024
MAX_CAUSAL_BYTES = 4 * 1024 * 1024 + 1024  # an item state (itemstate.MAX_STATE_BYTES) and a tag
MAX_LISTED_CORRUPT = 1000
MAX_DAMAGED_LISTED = 4096  # damaged buckets one Opened carries as evidence
_U32 = 4
_LIVE, _INTACT, _ITEM, _CAUSAL = 1, 2, 4, 8


# --- requests ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Open:
    sid: int
    table: str
    bucket_bits: int
    fanout_bits: int


@dataclass(frozen=True, slots=True)
class Scrub:
    sid: int
    table: str
    bucket_bits: int
    first: int
    count: int


@dataclass(frozen=True, slots=True)
class Children:
    """The hashes of the children (at level + 1) of `parents` at `level`."""

    sid: int
    table: str
    bucket_bits: int
    fanout_bits: int
    level: int
    parents: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Span:
    """List `bucket` from after `after`; with sub_bits > 0 only keys whose sub-bucket
    (hashing.sub_bucket_of) is in `subs`."""

    bucket: int
    after: KeyPos | None = None
    sub_bits: int = 0
    subs: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Keys:
    sid: int
    table: str
    bucket_bits: int
    spans: tuple[Span, ...]
    limit: int


@dataclass(frozen=True, slots=True)
class SubHashes:
    sid: int
    table: str
    bucket_bits: int
    bucket: int
    bits: int


@dataclass(frozen=True, slots=True)
class Fetch:
    sid: int
    table: str
    keys: tuple[KeyPos, ...]


@dataclass(frozen=True, slots=True)
class RepairItem:
    """One repair record on the wire (store.RepairRecord without the table)."""

    entry: Entry  # pk, sk, version, item (None: a tombstone)
    source: str
    replaces: int
    reason: str
    concurrent: bool


@dataclass(frozen=True, slots=True)
class Repair:
    sid: int
    table: str
    items: tuple[RepairItem, ...]


Request = Open | Scrub | Children | Keys | SubHashes | Fetch | Repair


# --- responses --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Opened:
    sid: int
    region: str
    created: bytes | None  # the table's creation version; None: never seen there
    dropped: bytes | None  # its deletion version if deleted
    cursors: Mapping[str, Cursor]
    purged: Mapping[str, Cursor]
    key_count: int
    level1: tuple[int, ...]  # empty when the table is not live
    # buckets this region's scrubs recently found changed behind Atoll's back (evidence
    # for a repair that must choose between two contents of one version: repair.py)
    damaged: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Scrubbed:
    sid: int
    rows: int
    damaged: tuple[tuple[int, int, int], ...]  # (bucket, stored, rebuilt)
    corrupt: tuple[KeyPos, ...]


@dataclass(frozen=True, slots=True)
class Hashes:
    sid: int
    hashes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Listed:
    """One row in a key listing: its content hash instead of its bytes."""

    pk: bytes
    sk: bytes
    version: bytes
    content: bytes | None  # None: a tombstone
    intact: bool


@dataclass(frozen=True, slots=True)
class Page:
    bucket: int
    rows: tuple[Listed, ...]
    resume: KeyPos | None  # None: the span is complete; else continue after this key


@dataclass(frozen=True, slots=True)
class KeyPages:
    sid: int
    pages: tuple[Page, ...]  # for a prefix of the requested spans, in order


@dataclass(frozen=True, slots=True)
class Fetched:
    sid: int
    entries: tuple[Entry | None, ...]


@dataclass(frozen=True, slots=True)
class Repaired:
    sid: int
    outcomes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Error:
    sid: int
    error: str


Response = Opened | Scrubbed | Hashes | KeyPages | Fetched | Repaired | Error


def listed_of(entry: Entry) -> Listed:
    content = None if entry.item is None else content_hash(entry.item)
    return Listed(entry.pk, entry.sk, entry.version, content, entry.intact)


# --- framing ----------------------------------------------------------------------------

def _frame(kind: bytes, header: dict[str, Any], body: bytes = b"") -> bytes:
    raw = orjson.dumps(header)
    payload = b"".join((kind, len(raw).to_bytes(_U32, "big"), raw, body))
    return crc32(payload).to_bytes(_U32, "big") + payload


def _unframe(data: bytes) -> tuple[bytes, dict[str, Any], bytes]:
    if not isinstance(data, bytes) or len(data) < 2 * _U32 + 1 or len(data) > MAX_MESSAGE_BYTES:
        raise BadMessage("empty, short or oversized verify message")
    payload = data[_U32:]
    if crc32(payload) != int.from_bytes(data[:_U32], "big"):
        raise BadMessage("verify message checksum mismatch")
    size = int.from_bytes(payload[1:1 + _U32], "big")
    start = 1 + _U32
    if start + size > len(payload):
        raise BadMessage("verify header runs past the end")
    try:
        header = orjson.loads(payload[start:start + size])
    except orjson.JSONDecodeError:
        raise BadMessage("verify header is not JSON") from None
    if type(header) is not dict or not _natural(header.get("sid")):
        raise BadMessage("verify header is not an object with a session id")
    return payload[:1], header, payload[start + size:]


def _natural(value: Any) -> bool:
    return type(value) is int and value >= 0


class _Reader:
    """Bounded reads from a body; any overrun is a BadMessage."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, size: int) -> bytes:
        if size < 0 or self.at + size > len(self.data):
            raise BadMessage("verify body runs past the end")
        chunk = self.data[self.at:self.at + size]
        self.at += size
        return chunk

    def sized(self, limit: int, what: str) -> bytes:
        size = int.from_bytes(self.take(_U32), "big")
        if size > limit:
            raise BadMessage(f"{what} of {size} bytes exceeds {limit}")
        return self.take(size)

    def done(self) -> bool:
        return self.at == len(self.data)

    def finish(self) -> None:
        if not self.done():
            raise BadMessage("verify body has trailing bytes")


def _entry_bytes(pk: bytes, sk: bytes, version: bytes, content: bytes | None, intact: bool,
                 item: bytes | None, with_item: bool, causal: bytes = b"") -> bytes:
    flags = (_LIVE if content is not None else 0) | (_INTACT if intact else 0)
    flags |= (_ITEM if with_item else 0) | (_CAUSAL if causal else 0)
    parts = [len(pk).to_bytes(_U32, "big"), pk, len(sk).to_bytes(_U32, "big"), sk,
             len(version).to_bytes(_U32, "big"), version, bytes((flags,))]
    if content is not None:
        parts.append(content)
    if with_item:
        assert item is not None
        parts += [len(item).to_bytes(_U32, "big"), item]
    if causal:
        parts += [len(causal).to_bytes(_U32, "big"), causal]
    return b"".join(parts)


def _read_entry(reader: _Reader) -> tuple[Listed, bytes | None, bytes]:
    """A row's listing, its item bytes (flag 4) and its causal metadata (flag 8, b"")."""
    pk = reader.sized(MAX_KEY_PART_BYTES, "partition key")
    sk = reader.sized(MAX_KEY_PART_BYTES, "sort key")
    version = reader.sized(MAX_VERSION_BYTES, "version")
    if not pk or not version:
        raise BadMessage("a row needs a partition key and a version")
    flags = reader.take(1)[0]
    if flags & ~(_LIVE | _INTACT | _ITEM | _CAUSAL) or (flags & _ITEM and not flags & _LIVE):
        raise BadMessage("row flags are malformed")
    content = reader.take(HASH_BYTES) if flags & _LIVE else None
    item = reader.sized(MAX_ITEM_BYTES, "item") if flags & _ITEM else None
    causal = reader.sized(MAX_CAUSAL_BYTES, "causal metadata") if flags & _CAUSAL else b""
    if flags & _CAUSAL and not causal:
        raise BadMessage("row flags are malformed")  # flag 8 is set only when there is some
    return Listed(pk, sk, version, content, bool(flags & _INTACT)), item, causal


def _entry_of(listed: Listed, item: bytes | None, causal: bytes = b"") -> Entry:
    if listed.content is not None and (item is None or content_hash(item) != listed.content):
        raise BadMessage("a fetched row's bytes do not match its content hash")
    return Entry(listed.pk, listed.sk, listed.version, item, listed.intact, causal)


def _full_entry(entry: Entry) -> bytes:
    content = None if entry.item is None else content_hash(entry.item)
    return _entry_bytes(entry.pk, entry.sk, entry.version, content, entry.intact, entry.item,
                        entry.item is not None, entry.causal)
