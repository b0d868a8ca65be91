"""Snapshots: the messages a region being rebuilt exchanges with a peer, and the peer's
answers (pure functions of its committed state).

Theory of operation: a rebuild (`atoll.replication.rebuild`) first asks for the *head* —
the peer's cursor vector, read FIRST, then its table states — and then, per live table,
pages of live items and pages of tombstones in RowKey order. Pages may already include
changes made after the head's cursors: harmless, since every row is merged by version.

Wire form: every request and answer is a `protocol.checksummed` frame of JSON:
  request  {"part": "head"}
         | {"part": "rows", "table": name, "tombstones": bool,
            "after": [h, pk hex, sk hex] | null, "limit": rows}
  head     {"cursors": {origin: [seq, hlc]},
            "tables": [{"name", "created": [hlc, origin], "version": [hlc, origin],
                        "definition": {...} | null}]}
  page     {"rows": [[h, pk hex, sk hex, hlc, origin, item | null]], "more": bool}
A malformed request or answer raises BadMessage (the node answers 400).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from atoll.invariant import invariant
from atoll.replication.change import Version
from atoll.replication.config import ReplicationConfig
from atoll.replication.cursors import Cursor, from_wire, to_wire
from atoll.replication.errors import BadMessage
from atoll.replication.merge import Stored, TableState
from atoll.replication.protocol import checksummed, json_object, natural, verified_payload
from atoll.replication.store import ReplicaStore, RowKey

MAX_ROW_HASH = 2 ** 32


@dataclass(frozen=True, slots=True)
class SnapshotRequest:
    table: str | None  # None: the head
    tombstones: bool = False
    after: RowKey | None = None
    limit: int = 1


@dataclass(frozen=True, slots=True)
class SnapshotHead:
    cursors: dict[str, Cursor]
    tables: tuple[tuple[str, TableState], ...]


@dataclass(frozen=True, slots=True)
class SnapshotPage:
    rows: tuple[tuple[bytes, bytes, Stored], ...]  # (pk, sk, version and item)
    more: bool
    last: RowKey | None  # where the next page starts after


# --- requests -----------------------------------------------------------------------------

def encode_request(request: SnapshotRequest) -> bytes:
    if request.table is None:
        return checksummed(orjson.dumps({"part": "head"}))
    after = request.after
    return checksummed(orjson.dumps({
        "part": "rows", "table": request.table, "tombstones": request.tombstones,
        "after": None if after is None else [after[0], after[1].hex(), after[2].hex()],
        "limit": request.limit}))


def decode_request(data: bytes) -> SnapshotRequest:
    doc = json_object(verified_payload(data))
    if doc.get("part") == "head":
        return SnapshotRequest(None)
    table, tombstones, limit = doc.get("table"), doc.get("tombstones"), doc.get("limit")
    if doc.get("part") != "rows" or not isinstance(table, str) or not table:
        raise BadMessage("a snapshot request asks for the head or for a table's rows")
    if not isinstance(tombstones, bool) or not isinstance(limit, int) or not natural(limit) \
            or limit < 1:
        raise BadMessage(f"tombstones must be true or false, limit at least 1: {limit!r:.20}")
    return SnapshotRequest(table, tombstones, _row_key(doc.get("after")), limit)


def _row_key(after: Any) -> RowKey | None:
    if after is None:
        return None
    if (not isinstance(after, list) or len(after) != 3 or not natural(after[0])
            or after[0] >= MAX_ROW_HASH or not all(isinstance(x, str) for x in after[1:])):
        raise BadMessage(f"after must be [hash, pk hex, sk hex], got {after!r:.100}")
    return after[0], _hex(after[1]), _hex(after[2])


def _hex(text: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise BadMessage(f"not hex: {text!r:.40}") from None


# --- answers (the serving side) -----------------------------------------------------------

def answer_snapshot(data: bytes, store: ReplicaStore, config: ReplicationConfig) -> bytes:
    """The answer to a snapshot request from `store`'s committed state."""
    request = decode_request(data)
    if request.table is None:
        cursors = store.cursors()  # first: the log tail after the snapshot starts here
        tables = [{"name": name, "created": list(s.created), "version": list(s.version),
                   "definition": s.definition}
                  for name, s in sorted(store.table_states().items())]
        return checksummed(orjson.dumps({"cursors": to_wire(cursors), "tables": tables}))
    limit = min(request.limit, config.snapshot_page_rows)
    rows = store.snapshot_rows(request.table, request.after, limit, request.tombstones)
    return checksummed(orjson.dumps({"rows": [
        [r.h, r.pk.hex(), r.sk.hex(), r.hlc, r.origin,
         None if r.item is None else orjson.Fragment(r.item)] for r in rows],
        "more": len(rows) == limit}))


def decode_head(data: bytes) -> SnapshotHead:
    doc = json_object(verified_payload(data))
    tables = doc.get("tables")
    if set(doc) != {"cursors", "tables"} or not isinstance(tables, list):
        raise BadMessage("malformed snapshot head")
    return SnapshotHead(from_wire(doc["cursors"]), tuple(_table(entry) for entry in tables))


def _table(entry: Any) -> tuple[str, TableState]:
    try:
        name, definition = entry["name"], entry["definition"]
        created, version = _version(entry["created"]), _version(entry["version"])
    except (KeyError, TypeError):
        raise BadMessage("malformed table in a snapshot head") from None
    if not isinstance(name, str) or not (definition is None or isinstance(definition, dict)):
        raise BadMessage("malformed table in a snapshot head")
    return name, TableState(created, version, definition)


def _version(raw: Any) -> Version:
    if (not isinstance(raw, list) or len(raw) != 2 or not natural(raw[0])
            or not isinstance(raw[1], str)):
        raise BadMessage("malformed version in a snapshot")
    return Version(raw[0], raw[1])


def decode_page(data: bytes) -> SnapshotPage:
    doc = json_object(verified_payload(data))
    rows, more = doc.get("rows"), doc.get("more")
    if set(doc) != {"rows", "more"} or not isinstance(rows, list) or not isinstance(more, bool):
        raise BadMessage("malformed snapshot page")
    decoded = []
    last: RowKey | None = None
    for row in rows:
        if (not isinstance(row, list) or len(row) != 6
                or not (row[5] is None or isinstance(row[5], dict) and row[5])):
            raise BadMessage("malformed snapshot row")
        key = _row_key(row[:3])
        invariant(key is not None, "a row key read from a list of three")
        assert key is not None
        decoded.append((key[1], key[2], Stored(_version(row[3:5]), row[5])))
        last = key
    return SnapshotPage(tuple(decoded), more, last)
