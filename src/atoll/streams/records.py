"""Stream records: what a write leaves in a stream, and how GetRecords shows it.

Theory of operation
- Capture (`stream_record`, in the write's transaction): a record is made from the
  item as this region held it before the write and as it holds it after — the
  *materialized* items, never a change's body (a replicated change's body says what its
  origin wrote; what this region's item became is the row the apply stored). Each is
  (item JSON, size) or None for no item. No item before and none after, or the same item
  before and after, is no record (DynamoDB writes none for a write that changes nothing:
  an identical PutItem, a DeleteItem of an absent item, an UpdateItem setting what is
  there). Otherwise the record is INSERT, MODIFY or REMOVE, with the keys and the images
  its stream's view type shows, and SizeBytes by DynamoDB's item-size rules (keys plus
  the images shown), rendered once, here, as the JSON members of the record's `dynamodb`
  part: reading never parses an item again.
- Reading (`Renderer`): a stored record becomes GetRecords JSON by concatenating bytes
  around that fragment: eventID, eventName, eventVersion "1.1", eventSource, awsRegion
  (the region answering), ApproximateCreationDateTime (seconds, rounded down), the
  SequenceNumber of its position, StreamViewType and, for deletions made by TTL,
  userIdentity {Type: Service, PrincipalId: dynamodb.amazonaws.com}.
- Positions are a region's record numbers (1, 2, 3... increasing in commit order, shared
  by its streams). A SequenceNumber is the position plus 10**20: a decimal string of 21
  digits, so numeric and string order agree (DynamoDB's are 21 to 40 digits).
- eventID is "<origin region>:<32 hex digits>" (the hex digits name this region, the
  stream and the position, so every record of every region has its own): a consumer
  that wants only the changes written in its own region keeps the records whose eventID
  starts with that region's name.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import orjson

from atoll.model.values import item_size, value_size

INSERT, MODIFY, REMOVE = 0, 1, 2
EVENT_NAMES = (b"INSERT", b"MODIFY", b"REMOVE")
BY_TTL = 4  # flag on a REMOVE made by the TTL sweeper (a service, not a user)
SEQUENCE_BASE = 10**20
MAX_SEQUENCE_DIGITS = 40

Materialized = tuple[bytes, int]  # (item JSON, size in bytes) as this region stores it
_SETS = (b'"SS"', b'"NS"', b'"BS"')
_OLD_VIEWS = frozenset(("OLD_IMAGE", "NEW_AND_OLD_IMAGES"))
_NEW_VIEWS = frozenset(("NEW_IMAGE", "NEW_AND_OLD_IMAGES"))


def stream_record(view_type: str, key_names: Sequence[str], old: Materialized | None,
                  new: Materialized | None) -> tuple[int, bytes] | None:
    """(kind, fragment) of the record a write from `old` to `new` leaves, or None when it
    changed nothing. A new size below 0 means unknown: it is computed from the item."""
    if new is not None:
        if old is None:
            kind = INSERT
        elif same_item(old[0], new[0]):
            return None
        else:
            kind = MODIFY
        item = orjson.loads(new[0])
    elif old is not None:
        kind = REMOVE
        item = orjson.loads(old[0])
    else:
        return None
    keys = {name: item[name] for name in key_names}
    size = sum(len(name.encode()) + value_size(value) for name, value in keys.items())
    parts = [b'"Keys":', orjson.dumps(keys, option=orjson.OPT_SORT_KEYS)]
    if new is not None and view_type in _NEW_VIEWS:
        size += new[1] if new[1] >= 0 else item_size(item)
        parts += (b',"NewImage":', new[0])
    if old is not None and view_type in _OLD_VIEWS:
        size += old[1]
        parts += (b',"OldImage":', old[0])
    parts += (b',"SizeBytes":', str(size).encode())
    return kind, b"".join(parts)


def same_item(a: bytes, b: bytes) -> bool:
    """Whether two stored items are equal as DynamoDB items. Stored JSON has its keys
    sorted and its numbers normalised, so only the order of set members can make equal
    items differ in their bytes."""
    if a == b:
        return True
    if not any(marker in a for marker in _SETS):
        return False
    return _canonical(orjson.loads(a)) == _canonical(orjson.loads(b))


def _canonical(value: Any) -> Any:
    """An item or value with its sets' members in one order, for comparison."""
    if isinstance(value, dict):
        if len(value) == 1:
            ((kind, inner),) = value.items()
            if kind in ("SS", "NS", "BS"):
                return {kind: sorted(inner)}
        return {name: _canonical(inner) for name, inner in value.items()}
    if isinstance(value, list):
        return [_canonical(inner) for inner in value]
    return value


# --- sequence numbers ---------------------------------------------------------------------

def sequence_number(pos: int) -> str:
    return str(SEQUENCE_BASE + pos)


def parse_sequence_number(text: str) -> int | None:
    """The position a SequenceNumber names, or None if it is not one of ours."""
    if not text.isdigit() or not text.isascii() or len(text) > MAX_SEQUENCE_DIGITS:
        return None
    pos = int(text) - SEQUENCE_BASE
    return pos if pos >= 0 else None


# --- reading ------------------------------------------------------------------------------

class Renderer:
    """Renders one stream's stored records as GetRecords shows them in `region`."""

    def __init__(self, region: str, sid: int, view_type: str) -> None:
        self._region = orjson.dumps(region)
        self._id_tail = f"{zlib.crc32(region.encode()):08x}{sid:08x}"
        self._view = orjson.dumps(view_type)

    def render(self, pos: int, created_ms: int, kind: int, origin: str, fragment: bytes
               ) -> bytes:
        parts = [b'{"awsRegion":', self._region,
                 b',"dynamodb":{"ApproximateCreationDateTime":',
                 str(created_ms // 1000).encode(), b",", fragment,
                 b',"SequenceNumber":"', str(SEQUENCE_BASE + pos).encode(),
                 b'","StreamViewType":', self._view,
                 b'},"eventID":', orjson.dumps(f"{origin}:{self._id_tail}{pos:016x}"),
                 b',"eventName":"', EVENT_NAMES[kind & 3],
                 b'","eventSource":"aws:dynamodb","eventVersion":"1.1"']
        if kind & BY_TTL:
            parts.append(b',"userIdentity":{"PrincipalId":"dynamodb.amazonaws.com",'
                         b'"Type":"Service"}')
        parts.append(b"}")
        return b"".join(parts)


def get_records_response(records: list[bytes], next_iterator: str | None) -> bytes:
    """The GetRecords answer: `Records` always (maybe empty), `NextShardIterator` unless
    the shard is closed and read to its end."""
    body = b'{"Records":[' + b",".join(records) + b"]"
    if next_iterator is not None:
        body += b',"NextShardIterator":' + orjson.dumps(next_iterator)
    return body + b"}"
