"""Encoding and decoding of the verify messages (the frame format is in messages.py).

`encode_request`/`decode_request` and `encode_response`/`decode_response` are exact
inverses for every well-formed message (tests/properties/test_antientropy_wire.py);
decoders check every bound before building anything and raise `BadMessage`.
"""

from __future__ import annotations

from typing import Any

from atoll.antientropy.hashing import HASH_BYTES, MAX_BUCKET_BITS, MAX_SUB_BITS
from atoll.antientropy.messages import (
    MAX_DAMAGED_LISTED,
    MAX_FETCH_KEYS,
    MAX_KEY_PART_BYTES,
    MAX_LISTED_CORRUPT,
    MAX_PAGE_KEYS,
    MAX_PARENTS,
    MAX_REPAIRS,
    MAX_SPANS,
    MAX_VERSION_BYTES,
    Children,
    Error,
    Fetch,
    Fetched,
    Hashes,
    KeyPages,
    Keys,
    Listed,
    Open,
    Opened,
    Page,
    Repair,
    Repaired,
    RepairItem,
    Request,
    Response,
    Scrub,
    Scrubbed,
    Span,
    SubHashes,
    _entry_bytes,
    _entry_of,
    _frame,
    _full_entry,
    _natural,
    _read_entry,
    _Reader,
    _unframe,
)
from atoll.antientropy.store import KeyPos
from atoll.replication.cursors import from_wire, to_wire
from atoll.replication.errors import BadMessage

MAX_TABLE_NAME = 255
MAX_TEXT = 1024


# --- requests ---------------------------------------------------------------------------

def encode_request(request: Request) -> bytes:
    if isinstance(request, Open):
        return _frame(b"o", {"sid": request.sid, "t": request.table, "bb": request.bucket_bits,
                             "fb": request.fanout_bits})
    if isinstance(request, Scrub):
        return _frame(b"s", {"sid": request.sid, "t": request.table, "bb": request.bucket_bits,
                             "first": request.first, "count": request.count})
    if isinstance(request, Children):
        return _frame(b"c", {"sid": request.sid, "t": request.table, "bb": request.bucket_bits,
                             "fb": request.fanout_bits, "level": request.level,
                             "parents": list(request.parents)})
    if isinstance(request, Keys):
        spans = [[s.bucket, _key_doc(s.after), s.sub_bits, list(s.subs)] for s in request.spans]
        return _frame(b"k", {"sid": request.sid, "t": request.table, "bb": request.bucket_bits,
                             "limit": request.limit, "spans": spans})
    if isinstance(request, SubHashes):
        return _frame(b"h", {"sid": request.sid, "t": request.table, "bb": request.bucket_bits,
                             "bucket": request.bucket, "bits": request.bits})
    if isinstance(request, Fetch):
        return _frame(b"f", {"sid": request.sid, "t": request.table,
                             "keys": [_key_doc(key) for key in request.keys]})
    meta = [[i.source, i.reason, i.concurrent, i.replaces.to_bytes(HASH_BYTES, "big").hex()]
            for i in request.items]
    body = b"".join(_full_entry(i.entry) for i in request.items)
    return _frame(b"r", {"sid": request.sid, "t": request.table, "items": meta}, body)


def decode_request(data: bytes) -> Request:
    kind, h, body = _unframe(data)
    sid = h["sid"]
    if kind == b"r":
        return _decode_repair(sid, h, body)
    if body:
        raise BadMessage("this verify request has no body")
    if kind == b"o":
        _fields(h, "t", "bb", "fb")
        return Open(sid, _table(h["t"]), _bits(h["bb"]), _fanout(h["fb"], h["bb"]))
    if kind == b"s":
        _fields(h, "t", "bb", "first", "count")
        bb = _bits(h["bb"])
        first, count = _bucket(h["first"], bb), h["count"]
        if not _natural(count) or not 0 < count or first + count > 1 << bb:
            raise BadMessage("scrub range is out of bounds")
        return Scrub(sid, _table(h["t"]), bb, first, count)
    if kind == b"c":
        return _decode_children(sid, h)
    if kind == b"k":
        return _decode_keys(sid, h)
    if kind == b"h":
        _fields(h, "t", "bb", "bucket", "bits")
        bb = _bits(h["bb"])
        if not _natural(h["bits"]) or not 1 <= h["bits"] <= MAX_SUB_BITS:
            raise BadMessage("sub-bucket bits out of range")
        return SubHashes(sid, _table(h["t"]), bb, _bucket(h["bucket"], bb), h["bits"])
    if kind == b"f":
        _fields(h, "t", "keys")
        keys = _list(h["keys"], MAX_FETCH_KEYS, "fetch keys")
        return Fetch(sid, _table(h["t"]), tuple(_key(k) for k in keys))
    raise BadMessage("unknown verify request")


def _decode_children(sid: int, h: dict[str, Any]) -> Children:
    _fields(h, "t", "bb", "fb", "level", "parents")
    bb = _bits(h["bb"])
    fb = _fanout(h["fb"], bb)
    level = h["level"]
    if not _natural(level) or level >= bb // fb:
        raise BadMessage("children level out of range")
    parents = _list(h["parents"], MAX_PARENTS, "parents")
    limit = 1 << (level * fb)
    if not parents or not all(_natural(p) and p < limit for p in parents):
        raise BadMessage("parent index out of range")
    return Children(sid, _table(h["t"]), bb, fb, level, tuple(parents))


def _decode_keys(sid: int, h: dict[str, Any]) -> Keys:
    _fields(h, "t", "bb", "limit", "spans")
    bb = _bits(h["bb"])
    limit = h["limit"]
    if not _natural(limit) or not 1 <= limit <= MAX_PAGE_KEYS:
        raise BadMessage(f"a key listing holds 1..{MAX_PAGE_KEYS} rows")
    spans = []
    for raw in _list(h["spans"], MAX_SPANS, "spans"):
        if type(raw) is not list or len(raw) != 4:
            raise BadMessage("a span is [bucket, after, sub_bits, subs]")
        sub_bits = raw[2]
        if not _natural(sub_bits) or sub_bits > MAX_SUB_BITS:
            raise BadMessage("sub-bucket bits out of range")
        subs = _list(raw[3], 1 << sub_bits if sub_bits else 0, "sub-buckets")
        if not all(_natural(s) and s < 1 << sub_bits for s in subs) or (sub_bits and not subs):
            raise BadMessage("sub-bucket out of range")
        after = None if raw[1] is None else _key(raw[1])
        spans.append(Span(_bucket(raw[0], bb), after, sub_bits, tuple(subs)))
    if not spans:
        raise BadMessage("a key listing names at least one bucket")
    return Keys(sid, _table(h["t"]), bb, tuple(spans), limit)


def _decode_repair(sid: int, h: dict[str, Any], body: bytes) -> Repair:
    _fields(h, "t", "items")
    metas = _list(h["items"], MAX_REPAIRS, "repairs")
    reader = _Reader(body)
    items = []
    for meta in metas:
        if (type(meta) is not list or len(meta) != 4 or not _text(meta[0])
                or not _text(meta[1]) or type(meta[2]) is not bool):
            raise BadMessage("a repair is [source, reason, concurrent, replaces]")
        items.append(RepairItem(_entry_of(*_read_entry(reader)), meta[0], _hash_hex(meta[3]),
                                meta[1], meta[2]))
    reader.finish()
    return Repair(sid, _table(h["t"]), tuple(items))


# --- responses --------------------------------------------------------------------------

def encode_response(response: Response) -> bytes:
    if isinstance(response, Opened):
        created = None if response.created is None else response.created.hex()
        dropped = None if response.dropped is None else response.dropped.hex()
        return _frame(b"O", {"sid": response.sid, "region": response.region, "cr": created,
                             "dr": dropped,
                             "c": to_wire(response.cursors), "p": to_wire(response.purged),
                             "n": response.key_count,
                             "dm": list(response.damaged[:MAX_DAMAGED_LISTED])},
                      _hash_body(response.level1))
    if isinstance(response, Scrubbed):
        damaged = [[b, _hash_hex_of(s), _hash_hex_of(r)] for b, s, r in response.damaged]
        return _frame(b"S", {"sid": response.sid, "rows": response.rows, "damaged": damaged,
                             "corrupt": [_key_doc(k) for k in response.corrupt]})
    if isinstance(response, Hashes):
        return _frame(b"H", {"sid": response.sid}, _hash_body(response.hashes))
    if isinstance(response, KeyPages):
        pages = [[p.bucket, len(p.rows), _key_doc(p.resume)] for p in response.pages]
        body = b"".join(_entry_bytes(r.pk, r.sk, r.version, r.content, r.intact, None, False)
                        for p in response.pages for r in p.rows)
        return _frame(b"K", {"sid": response.sid, "pages": pages}, body)
    if isinstance(response, Fetched):
        found = [e is not None for e in response.entries]
        body = b"".join(_full_entry(e) for e in response.entries if e is not None)
        return _frame(b"F", {"sid": response.sid, "found": found}, body)
    if isinstance(response, Repaired):
        return _frame(b"R", {"sid": response.sid, "outcomes": list(response.outcomes)})
    return _frame(b"E", {"sid": response.sid, "error": response.error[:MAX_TEXT]})


def decode_response(data: bytes) -> Response:
    kind, h, body = _unframe(data)
    sid = h["sid"]
    if kind == b"O":
        _fields(h, "region", "cr", "dr", "c", "p", "n", "dm")
        if not _text(h["region"]) or not _natural(h["n"]):
            raise BadMessage("malformed Opened")
        damaged = h["dm"]
        if (type(damaged) is not list or len(damaged) > MAX_DAMAGED_LISTED
                or not all(_natural(b) for b in damaged)):
            raise BadMessage("malformed Opened")
        created = None if h["cr"] is None else _hex(h["cr"], MAX_VERSION_BYTES)
        dropped = None if h["dr"] is None else _hex(h["dr"], MAX_VERSION_BYTES)
        if created is None and dropped is not None:
            raise BadMessage("a table deleted but never created")
        return Opened(sid, h["region"], created, dropped, from_wire(h["c"]), from_wire(h["p"]),
                      h["n"], _hashes(body), tuple(damaged))
    if kind == b"S":
        return _decode_scrubbed(sid, h, body)
    if kind == b"H":
        _fields(h)
        return Hashes(sid, _hashes(body))
    if kind == b"K":
        return _decode_pages(sid, h, body)
    if kind == b"F":
        _fields(h, "found")
        found = _list(h["found"], MAX_FETCH_KEYS, "fetched rows")
        reader = _Reader(body)
        entries = []
        for present in found:
            if type(present) is not bool:
                raise BadMessage("malformed Fetched")
            entries.append(_entry_of(*_read_entry(reader)) if present else None)
        reader.finish()
        return Fetched(sid, tuple(entries))
    if body:
        raise BadMessage("this verify response has no body")
    if kind == b"R":
        _fields(h, "outcomes")
        outcomes = _list(h["outcomes"], MAX_REPAIRS, "outcomes")
        if not all(_text(o) for o in outcomes):
            raise BadMessage("malformed Repaired")
        return Repaired(sid, tuple(outcomes))
    if kind == b"E":
        _fields(h, "error")
        if type(h["error"]) is not str:
            raise BadMessage("malformed Error")
        return Error(sid, h["error"][:MAX_TEXT])
    raise BadMessage("unknown verify response")


def _decode_scrubbed(sid: int, h: dict[str, Any], body: bytes) -> Scrubbed:
    _fields(h, "rows", "damaged", "corrupt")
    if body or not _natural(h["rows"]):
        raise BadMessage("malformed Scrubbed")
    damaged = []
    for raw in _list(h["damaged"], 1 << MAX_BUCKET_BITS, "damaged buckets"):
        if type(raw) is not list or len(raw) != 3 or not _natural(raw[0]):
            raise BadMessage("a damaged bucket is [bucket, stored, rebuilt]")
        damaged.append((raw[0], _hash_hex(raw[1]), _hash_hex(raw[2])))
    corrupt = tuple(_key(k) for k in _list(h["corrupt"], MAX_LISTED_CORRUPT, "corrupt rows"))
    return Scrubbed(sid, h["rows"], tuple(damaged), corrupt)


def _decode_pages(sid: int, h: dict[str, Any], body: bytes) -> KeyPages:
    _fields(h, "pages")
    reader = _Reader(body)
    pages, total = [], 0
    for raw in _list(h["pages"], MAX_SPANS, "pages"):
        if type(raw) is not list or len(raw) != 3 or not _natural(raw[0]) or not _natural(raw[1]):
            raise BadMessage("a page is [bucket, rows, resume]")
        total += raw[1]
        if total > MAX_PAGE_KEYS:
            raise BadMessage(f"a key listing holds at most {MAX_PAGE_KEYS} rows")
        rows = tuple(_listed(reader) for _ in range(raw[1]))
        pages.append(Page(raw[0], rows, None if raw[2] is None else _key(raw[2])))
    reader.finish()
    return KeyPages(sid, tuple(pages))


def _listed(reader: _Reader) -> Listed:
    """A listed row: its content hash stands for its bytes, and it carries nothing else."""
    listed, item, causal = _read_entry(reader)
    if item is not None or causal:
        raise BadMessage("a listed row carries its content hash only")
    return listed


# --- small parsers ----------------------------------------------------------------------

def _fields(h: dict[str, Any], *names: str) -> None:
    if set(h) != {"sid", *names}:
        raise BadMessage("verify header has the wrong fields")


def _text(value: Any) -> bool:
    return type(value) is str and 0 < len(value) <= MAX_TEXT


def _table(value: Any) -> str:
    if type(value) is not str or not 0 < len(value) <= MAX_TABLE_NAME:
        raise BadMessage("not a table name")
    return value


def _bits(value: Any) -> int:
    if not _natural(value) or not 1 <= value <= MAX_BUCKET_BITS:
        raise BadMessage("bucket bits out of range")
    return int(value)


def _fanout(value: Any, bucket_bits: Any) -> int:
    if (not _natural(value) or not _natural(bucket_bits) or value == 0
            or value > bucket_bits or bucket_bits % value):
        raise BadMessage("fan-out bits out of range")
    return int(value)


def _bucket(value: Any, bucket_bits: int) -> int:
    if not _natural(value) or value >= 1 << bucket_bits:
        raise BadMessage("bucket out of range")
    return int(value)


def _list(value: Any, limit: int, what: str) -> list[Any]:
    if type(value) is not list or len(value) > limit:
        raise BadMessage(f"{what}: a list of at most {limit}")
    return value


def _hex(value: Any, limit: int) -> bytes:
    if type(value) is not str or len(value) > 2 * limit:
        raise BadMessage("not a hex string")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise BadMessage("not valid hex") from None
    if raw.hex() != value:
        raise BadMessage("hex is not canonical")
    return raw


def _key_doc(key: KeyPos | None) -> list[str] | None:
    return None if key is None else [key[0].hex(), key[1].hex()]


def _key(value: Any) -> KeyPos:
    if type(value) is not list or len(value) != 2:
        raise BadMessage("a key is [pk hex, sk hex]")
    pk = _hex(value[0], MAX_KEY_PART_BYTES)
    if not pk:
        raise BadMessage("a key needs a partition key")
    return pk, _hex(value[1], MAX_KEY_PART_BYTES)


def _hash_hex_of(value: int) -> str:
    return value.to_bytes(HASH_BYTES, "big").hex()


def _hash_hex(value: Any) -> int:
    raw = _hex(value, HASH_BYTES)
    if len(raw) != HASH_BYTES:
        raise BadMessage("a hash is 16 bytes")
    return int.from_bytes(raw, "big")


def _hash_body(hashes: tuple[int, ...] | list[int]) -> bytes:
    return b"".join(value.to_bytes(HASH_BYTES, "big") for value in hashes)


def _hashes(body: bytes) -> tuple[int, ...]:
    if len(body) % HASH_BYTES:
        raise BadMessage("hash list is not a whole number of hashes")
    return tuple(int.from_bytes(body[at:at + HASH_BYTES], "big")
                 for at in range(0, len(body), HASH_BYTES))


__all__ = ["Listed", "decode_request", "decode_response", "encode_request", "encode_response"]
