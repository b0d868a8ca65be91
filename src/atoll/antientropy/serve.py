"""The answering side of verify: one request in, one response out, no state kept.

Theory of operation: every region answers verify requests from its own `TreeStore`,
whoever asks — a peer's session over the authenticated peer link, its own node's
session by a local call, or `atoll verify` run from outside. Nothing is remembered
between requests (the session carries every position: buckets, resume keys), so a
side has nothing to time out, clean up or bound besides one request's work, which the
message bounds limit: a Children request reads at most the whole bucket array, a Keys
request returns at most `limit` rows and scans at most MAX_SCAN_ROWS, a Scrub request
rebuilds at most MAX_SCRUB_BUCKETS buckets.

The shell calls `serve` where it may block (a worker thread for SQLite): the reads are
synchronous store calls, a Scrub or Repair request writes.
"""

from __future__ import annotations

from atoll.antientropy.hashing import (
    TreeShape,
    buckets_under,
    level_hashes,
    sub_bucket_of,
)
from atoll.antientropy.messages import (
    MAX_DAMAGED_LISTED,
    MAX_LISTED_CORRUPT,
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
    Request,
    Response,
    Scrub,
    Scrubbed,
    Span,
    SubHashes,
    listed_of,
)
from atoll.antientropy.store import KeyPos, RepairLogEntry, RepairRecord, TreeStore, scrub_bucket
from atoll.antientropy.wire import decode_request, encode_response
from atoll.replication.errors import BadMessage

MAX_SCAN_ROWS = 65_536  # rows one Keys request may read (sub-bucket filters skip rows)
MAX_SCRUB_BUCKETS = 4096
_READ_CHUNK = 1024


def serve(data: bytes, store: TreeStore, now_ms: int,
          repair_log: list[RepairLogEntry] | None = None) -> bytes:
    """The encoded response to the encoded request `data`. Malformed requests and
    requests this store cannot answer get an Error response. `repair_log`, if given,
    receives the entries of the repairs applied (the store has logged them already)."""
    try:
        request = decode_request(data)
    except BadMessage as error:
        return encode_response(Error(0, f"bad request: {error}"))
    return encode_response(answer(request, store, now_ms, repair_log))


def answer(request: Request, store: TreeStore, now_ms: int,
           repair_log: list[RepairLogEntry] | None = None) -> Response:
    if isinstance(request, Repair):
        return _repair(request, store, now_ms, repair_log)
    if isinstance(request, Fetch):
        return Fetched(request.sid, tuple(store.fetch(request.table, request.keys)))
    if request.bucket_bits != store.bucket_bits:
        return Error(request.sid, f"this region keeps {store.bucket_bits}-bit buckets, "
                                  f"not {request.bucket_bits}")
    if isinstance(request, Open):
        return _open(request, store)
    if isinstance(request, Scrub):
        return _scrub(request, store)
    if isinstance(request, Children):
        return _children(request, store)
    if isinstance(request, Keys):
        return _keys(request, store)
    return _sub_hashes(request, store)


def _open(request: Open, store: TreeStore) -> Opened:
    cursors = dict(store.cursors())  # first: before any row this session reads here
    purged = dict(store.purged())
    versions = store.table_versions(request.table)
    if versions is None or versions[1] is not None:
        created, dropped = (None, None) if versions is None else versions
        return Opened(request.sid, store.region, created, dropped, cursors, purged, 0, ())
    shape = TreeShape(request.bucket_bits, request.fanout_bits)
    buckets = store.bucket_hashes(request.table, 0, shape.buckets)
    level1 = tuple(level_hashes(shape, buckets, 1, 0, shape.fanout))
    return Opened(request.sid, store.region, versions[0], None, cursors, purged,
                  store.key_count(request.table), level1,
                  tuple(sorted(store.damaged(request.table)))[:MAX_DAMAGED_LISTED])


def _scrub(request: Scrub, store: TreeStore) -> Response:
    if request.count > MAX_SCRUB_BUCKETS:
        return Error(request.sid, f"a scrub covers at most {MAX_SCRUB_BUCKETS} buckets")
    rows = 0
    damaged: list[tuple[int, int, int]] = []
    corrupt: list[KeyPos] = []
    snapshots = store.bucket_snapshots(request.table, request.first, request.count)
    for bucket in sorted(snapshots):  # the others are empty: nothing to rebuild
        stored, entries = snapshots[bucket]
        result = scrub_bucket(request.table, bucket, stored, entries)
        rows += result.rows
        corrupt.extend(result.corrupt[:MAX_LISTED_CORRUPT - len(corrupt)])
        if result.damaged:
            store.correct_bucket(request.table, bucket, result.stored ^ result.rebuilt)
            damaged.append((bucket, result.stored, result.rebuilt))
    return Scrubbed(request.sid, rows, tuple(damaged), tuple(corrupt))


def _children(request: Children, store: TreeStore) -> Hashes:
    shape = TreeShape(request.bucket_bits, request.fanout_bits)
    hashes: list[int] = []
    for parent in request.parents:
        first, count = buckets_under(shape, request.level, parent)
        buckets = store.bucket_hashes(request.table, first, count)
        hashes += level_hashes(shape, buckets, request.level + 1, parent * shape.fanout,
                               shape.fanout)
    return Hashes(request.sid, tuple(hashes))


def _keys(request: Keys, store: TreeStore) -> KeyPages:
    budget, scan_budget = request.limit, MAX_SCAN_ROWS
    pages = []
    for span in request.spans:
        if budget <= 0 or scan_budget <= 0:
            break
        rows, resume, scanned = _list_span(request.table, span, store, budget, scan_budget)
        budget -= len(rows)
        scan_budget -= scanned
        pages.append(Page(span.bucket, tuple(rows), resume))
    return KeyPages(request.sid, tuple(pages))


def _list_span(table: str, span: Span, store: TreeStore, budget: int,
               scan_budget: int) -> tuple[list[Listed], KeyPos | None, int]:
    """Rows of one span: (rows, where to resume or None when complete, rows scanned)."""
    rows: list[Listed] = []
    after, scanned = span.after, 0
    subs = frozenset(span.subs)
    while True:
        room = scan_budget - scanned
        if room <= 0:
            return rows, after, scanned
        want = min(_READ_CHUNK, room) if subs else min(_READ_CHUNK, room, budget - len(rows))
        chunk = store.bucket_entries(table, span.bucket, after, want)
        for index, entry in enumerate(chunk):
            scanned += 1
            after = (entry.pk, entry.sk)
            if subs and sub_bucket_of(entry.pk, entry.sk, span.sub_bits) not in subs:
                continue
            rows.append(listed_of(entry))
            if len(rows) >= budget:
                last = index == len(chunk) - 1 and len(chunk) < want
                return rows, None if last else after, scanned
        if len(chunk) < want:
            return rows, None, scanned


def _sub_hashes(request: SubHashes, store: TreeStore) -> Hashes:
    hashes = [0] * (1 << request.bits)
    _, entries = store.bucket_snapshot(request.table, request.bucket)
    for entry in entries:
        hashes[sub_bucket_of(entry.pk, entry.sk, request.bits)] ^= entry.leaf(request.table)
    return Hashes(request.sid, tuple(hashes))


def _repair(request: Repair, store: TreeStore, now_ms: int,
            repair_log: list[RepairLogEntry] | None) -> Repaired:
    outcomes = []
    for item in request.items:
        entry = item.entry
        record = RepairRecord(request.table, entry.pk, entry.sk, entry.version, entry.item,
                              item.source, item.replaces, item.reason, item.concurrent,
                              entry.causal)
        logged = store.apply_repair(record, now_ms)
        if repair_log is not None:
            repair_log.append(logged)
        outcomes.append(logged.outcome)
    return Repaired(request.sid, tuple(outcomes))
