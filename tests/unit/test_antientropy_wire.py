"""The verify protocol's wire form: exact round trips, and refusal of damaged or
out-of-bounds frames (a peer's mistakes never reach the state machines)."""

from __future__ import annotations

import zlib

import orjson
import pytest

from atoll.antientropy.messages import (
    MAX_PAGE_KEYS,
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
    Scrub,
    Scrubbed,
    Span,
    SubHashes,
)
from atoll.antientropy.serve import serve
from atoll.antientropy.store import Entry
from atoll.antientropy.wire import (
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)
from atoll.replication.cursors import Cursor
from atoll.replication.errors import BadMessage

H = (1 << 128) - 3
REQUESTS = [
    Open(1, "orders", 16, 4),
    Scrub(2, "orders", 16, 4096, 4096),
    Children(3, "orders", 16, 4, 2, (0, 7, 255)),
    Keys(4, "orders", 16, (Span(9), Span(10, (b"pk", b"sk"), 3, (0, 5))), 1000),
    SubHashes(5, "orders", 16, 65535, 12),
    Fetch(6, "orders", ((b"a", b""), (b"b", b"\x00"))),
    Repair(7, "orders", (RepairItem(Entry(b"a", b"", b"v1", b'{"x":1}'), "us-east", H, "older",
                                    True),
                         RepairItem(Entry(b"b", b"s", b"v2", None), "eu-west", 0, "deleted",
                                    False))),
    Repair(8, "orders", (RepairItem(Entry(b"a", b"", b"v1", b'{"x":1}', causal=b's{"c":{}}'),
                                    "us-east", H, "older", False),
                         RepairItem(Entry(b"b", b"", b"v2", None, causal=b"p[1,\"a\",null]"),
                                    "us-east", 0, "deleted", False))),
]
RESPONSES = [
    Opened(1, "us-east", b"created", None, {"us-east": Cursor(5, 900)}, {"eu-west": Cursor(2, 3)},
           42, tuple(range(16))),
    Opened(1, "us-east", b"created", None, {}, {}, 3, (H,) * 16, (7, 65535)),  # damage known
    Opened(1, "us-east", b"created", b"dropped", {}, {}, 0, ()),
    Scrubbed(2, 1000, ((3, H, 0),), ((b"pk", b""),)),
    Hashes(3, (0, 1, H)),
    KeyPages(4, (Page(9, (Listed(b"a", b"", b"v", b"c" * 16, True),
                          Listed(b"b", b"s", b"v", None, True)), None),
                 Page(10, (Listed(b"c", b"", b"v", b"d" * 16, False),), (b"c", b"")))),
    Fetched(6, (Entry(b"a", b"", b"v1", b'{"x":1}', True), None, Entry(b"b", b"", b"v", None))),
    Fetched(6, (Entry(b"a", b"", b"v1", b'{"x":1}', True, b"s{}"),
                Entry(b"b", b"", b"v", None, True, b"p"))),
    Repaired(7, ("applied", "skipped")),
    Error(8, "no"),
]


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: type(r).__name__)
def test_requests_round_trip(request_):
    assert decode_request(encode_request(request_)) == request_


@pytest.mark.parametrize("response", RESPONSES, ids=lambda r: type(r).__name__)
def test_responses_round_trip(response):
    assert decode_response(encode_response(response)) == response


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: type(r).__name__)
def test_any_flipped_bit_is_refused(request_):
    frame = encode_request(request_)
    for at in range(0, len(frame), max(1, len(frame) // 16)):
        damaged = bytearray(frame)
        damaged[at] ^= 0x10
        with pytest.raises(BadMessage):
            decode_request(bytes(damaged))


def _frame(kind: bytes, header: dict, body: bytes = b"") -> bytes:
    raw = orjson.dumps(header)
    payload = kind + len(raw).to_bytes(4, "big") + raw + body
    return zlib.crc32(payload).to_bytes(4, "big") + payload


@pytest.mark.parametrize("frame", [
    b"",
    b"\x00" * 8,
    _frame(b"o", {"sid": 1, "t": "x", "bb": 16}),  # a field missing
    _frame(b"o", {"sid": 1, "t": "x", "bb": 21, "fb": 3}),  # buckets beyond the bound
    _frame(b"o", {"sid": 1, "t": "x", "bb": 16, "fb": 3}),  # fan-out does not divide
    _frame(b"o", {"sid": -1, "t": "x", "bb": 16, "fb": 4}),
    _frame(b"o", {"sid": 1, "t": "", "bb": 16, "fb": 4}),
    _frame(b"c", {"sid": 1, "t": "x", "bb": 16, "fb": 4, "level": 4, "parents": [0]}),
    _frame(b"c", {"sid": 1, "t": "x", "bb": 16, "fb": 4, "level": 1, "parents": [16]}),
    _frame(b"c", {"sid": 1, "t": "x", "bb": 16, "fb": 4, "level": 1,
                  "parents": list(range(5000))}),
    _frame(b"k", {"sid": 1, "t": "x", "bb": 16, "limit": MAX_PAGE_KEYS + 1,
                  "spans": [[0, None, 0, []]]}),
    _frame(b"k", {"sid": 1, "t": "x", "bb": 16, "limit": 5, "spans": []}),
    _frame(b"k", {"sid": 1, "t": "x", "bb": 16, "limit": 5, "spans": [[70000, None, 0, []]]}),
    _frame(b"k", {"sid": 1, "t": "x", "bb": 16, "limit": 5, "spans": [[1, ["0A", ""], 0, []]]}),
    _frame(b"k", {"sid": 1, "t": "x", "bb": 16, "limit": 5, "spans": [[1, None, 2, [4]]]}),
    _frame(b"s", {"sid": 1, "t": "x", "bb": 4, "first": 10, "count": 10}),
    _frame(b"f", {"sid": 1, "t": "x", "keys": [["", ""]]}),
    _frame(b"o", {"sid": 1, "t": "x", "bb": 16, "fb": 4}, b"trailing"),
    _frame(b"z", {"sid": 1}),
])
def test_malformed_requests_are_refused(frame):
    with pytest.raises(BadMessage):
        decode_request(frame)


def test_rows_without_causal_metadata_keep_the_frame_of_nodes_that_predate_it():
    """Flag 8 is set only when a row carries causal metadata: a row without it is
    encoded as before the flag existed, so older frames decode here unchanged."""
    plain = Fetched(6, (Entry(b"a", b"", b"v1", b'{"x":1}', True),))
    frame = encode_response(plain)
    assert frame[-len(b'{"x":1}') - 4 - 17] == 0b111  # flags: live, intact, item
    carrying = encode_response(Fetched(6, (Entry(b"a", b"", b"v1", b'{"x":1}', True, b"s{}"),)))
    assert carrying.endswith(b"\x00\x00\x00\x03s{}")
    assert decode_response(frame) == plain


def test_a_row_flagged_with_empty_causal_metadata_is_refused():
    frame = encode_response(Fetched(6, (Entry(b"a", b"", b"v1", None, True, b"s"),)))
    payload = bytearray(frame[4:]).replace(b"\x00\x00\x00\x01s", b"\x00\x00\x00\x00")
    with pytest.raises(BadMessage, match="flags"):
        decode_response(zlib.crc32(bytes(payload)).to_bytes(4, "big") + bytes(payload))


def test_a_repair_whose_item_does_not_match_its_content_hash_is_refused():
    frame = encode_request(REQUESTS[-1])
    damaged = frame.replace(b'{"x":1}', b'{"x":2}')
    payload = damaged[4:]
    with pytest.raises(BadMessage, match="content hash"):
        decode_request(zlib.crc32(payload).to_bytes(4, "big") + payload)


def test_a_listing_over_the_page_bound_is_refused():
    rows = tuple(Listed(b"k%d" % i, b"", b"v", None, True) for i in range(MAX_PAGE_KEYS + 1))
    with pytest.raises(BadMessage, match="at most"):
        decode_response(encode_response(KeyPages(1, (Page(0, rows, None),))))


def test_serve_answers_garbage_with_an_error_response():
    from atoll.antientropy import MemoryTreeStore
    answer = decode_response(serve(b"garbage!!", MemoryTreeStore("a"), 0))
    assert isinstance(answer, Error) and answer.error.startswith("bad request")


def test_serve_refuses_another_bucket_count():
    from atoll.antientropy import MemoryTreeStore
    answer = decode_response(serve(encode_request(Open(4, "t", 8, 4)), MemoryTreeStore("a"), 0))
    assert isinstance(answer, Error) and "16-bit buckets" in answer.error and answer.sid == 4
