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

import base64
from collections.abc import Sequence
from typing import Any

import orjson

from atoll.checksum import crc32
from atoll.invariant import invariant
from atoll.model.values import value_size

INSERT, MODIFY, REMOVE = 0, 1, 2
EVENT_NAMES = (b"INSERT", b"MODIFY", b"REMOVE")
BY_TTL = 4  # flag on a REMOVE made by the TTL sweeper (a service, not a user)
SEQUENCE_BASE = 10**20
MAX_SEQUENCE_DIGITS = 40

Materialized = tuple[bytes, int]  # (item JSON, size in bytes) as this region stores it
KeysJson = tuple[bytes, int]  # a record's Keys as JSON, and their size in bytes
_OLD_VIEWS = frozenset(("OLD_IMAGE", "NEW_AND_OLD_IMAGES"))
_NEW_VIEWS = frozenset(("NEW_IMAGE", "NEW_AND_OLD_IMAGES"))


def stream_record(view_type: str, key_names: Sequence[str], keys: KeysJson | None,
                  old: Materialized | None, new: Materialized | None
                  ) -> tuple[int, bytes] | None:
    """(kind, fragment) of the record a write from `old` to `new` leaves, or None when it
    changed nothing. `keys`: the record's Keys already rendered (`KeysRenderer`), or None to
    take them from the item."""
    if new is not None:
        if old is None:
            kind = INSERT
        elif same_item(old[0], new[0]):
            return None
        else:
            kind = MODIFY
        source = new
    elif old is not None:
        kind = REMOVE
        source = old
    else:
        return None
    if keys is None:
        item = orjson.loads(source[0])
        chosen = {name: item[name] for name in key_names}
        keys = (orjson.dumps(chosen, option=orjson.OPT_SORT_KEYS),
                sum(len(name.encode()) + value_size(v) for name, v in chosen.items()))
    # The record's `dynamodb` members as stored (SizeBytes: keys plus the images shown),
    # joined in one go (compiled, a bytes %-format of the same pieces costs twice as much).
    if new is not None and view_type in _NEW_VIEWS:
        if old is not None and view_type in _OLD_VIEWS:
            return kind, b"".join((b'"Keys":', keys[0], b',"NewImage":', new[0],
                                   b',"OldImage":', old[0], b',"SizeBytes":',
                                   b"%d" % (keys[1] + new[1] + old[1])))
        return kind, b"".join((b'"Keys":', keys[0], b',"NewImage":', new[0],
                               b',"SizeBytes":', b"%d" % (keys[1] + new[1])))
    if old is not None and view_type in _OLD_VIEWS:
        return kind, b"".join((b'"Keys":', keys[0], b',"OldImage":', old[0],
                               b',"SizeBytes":', b"%d" % (keys[1] + old[1])))
    return kind, b"".join((b'"Keys":', keys[0], b',"SizeBytes":', b"%d" % keys[1]))


def key_json(parts: Sequence[tuple[str, str, bytes]]) -> KeysJson | None:
    """A record's Keys and their size from a write's encoded key, each part (attribute
    name, type, encoded bytes), hash key first: see `KeysRenderer`."""
    renderer = KeysRenderer([(name, kind) for name, kind, _ in parts])
    return renderer.render([raw for _, _, raw in parts])


class KeysRenderer:
    """Renders a record's Keys, and their size, from a write's encoded key for one key
    schema ((attribute name, type) of each key part, hash key first). A string or binary
    key's encoding is its value's own bytes (atoll.model.keys), so no item is parsed;
    the members' order (by name, as stored items have theirs) and each member's JSON up
    to its value are worked out once per schema, so a write pays for its values only.
    A schema with a number key renders None (the text of a number is taken from the
    item instead)."""

    def __init__(self, schema: Sequence[tuple[str, str]]) -> None:
        invariant(len(schema) in (1, 2), "a key schema has one or two attributes")
        order = sorted(range(len(schema)), key=lambda i: schema[i][0])
        heads = [orjson.dumps(schema[i][0]) + b':{"' + schema[i][1].encode() + b'":'
                 for i in order]
        # Members in order: the first's key part and JSON before its value, and the
        # second's (index -1: none), each value a JSON string, each member closed by "}".
        self._first = order[0]
        self._first_binary = schema[order[0]][1] == "B"
        self._open = b"{" + heads[0]
        self._second = order[1] if len(order) > 1 else -1
        self._second_binary = self._second >= 0 and schema[self._second][1] == "B"
        self._between = b"}," + heads[1] if len(order) > 1 else b""
        self._names_size = sum(len(name.encode()) for name, _ in schema)
        self._numeric = any(kind not in ("S", "B") for _, kind in schema)

    def render(self, raws: Sequence[bytes]) -> KeysJson | None:
        """Keys of the encoded key parts `raws` (in the schema's order)."""
        if self._numeric:
            return None
        first = raws[self._first]
        if self._second < 0:
            return (self._open + _json_string(first, self._first_binary) + b"}}",
                    self._names_size + len(first))
        second = raws[self._second]
        return (b"".join((self._open, _json_string(first, self._first_binary),
                          self._between, _json_string(second, self._second_binary),
                          b"}}")),
                self._names_size + len(first) + len(second))


def _json_string(raw: bytes, binary: bool) -> bytes:
    """A key part's value as its JSON string: the text, or the bytes in base64."""
    if binary:
        return b'"' + base64.b64encode(raw) + b'"'
    return orjson.dumps(raw.decode())


def same_item(a: bytes, b: bytes) -> bool:
    """Whether two stored items are equal as DynamoDB items. Stored JSON has its keys
    sorted and its numbers normalised, so only the order of set members can make equal
    items differ in their bytes, and reordering members keeps the length. A set is the
    only value whose JSON has `S":[` (its type, SS, NS or BS, then its members): in an
    item's JSON `":` follows only an object's key, an attribute's name is followed by its
    value's `{`, and a quote inside a string is escaped. So items of different lengths,
    or without a set, are equal only if their bytes are. (`find`, not `in`: a bytes `in`
    tries its operand as an integer first and builds and drops a TypeError.)"""
    if a == b:
        return True
    if len(a) != len(b) or a.find(_SET_TYPE) < 0:
        return False
    return _canonical_item(orjson.loads(a)) == _canonical_item(orjson.loads(b))


_SET_TYPE = b'S":['


def _canonical_item(item: dict[str, Any]) -> dict[str, Any]:
    """An item with its sets' members in one order, for comparison."""
    return {name: _canonical(value) for name, value in item.items()}


def _canonical(value: dict[str, Any]) -> dict[str, Any]:
    """An attribute value ({type: inner}) with its sets' members in one order, walking
    maps and lists by their types (an attribute or map key named SS is not a set)."""
    ((kind, inner),) = value.items()
    if kind in ("SS", "NS", "BS"):
        return {kind: sorted(inner)}
    if kind == "M":
        return {kind: _canonical_item(inner)}
    if kind == "L":
        return {kind: [_canonical(element) for element in inner]}
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

_RECORD = (b'{"awsRegion":%b,"dynamodb":{"ApproximateCreationDateTime":%d,%b,'
           b'"SequenceNumber":"%d","StreamViewType":%b},"eventID":"%b%016x","eventName":"%b",'
           b'"eventSource":"aws:dynamodb","eventVersion":"1.1"%b}')
_BY_SERVICE = b',"userIdentity":{"PrincipalId":"dynamodb.amazonaws.com","Type":"Service"}'


class Renderer:
    """Renders one stream's stored records as GetRecords shows them in `region`: one
    bytes formatting per record around the stored fragment (~1 us)."""

    def __init__(self, region: str, sid: int, view_type: str) -> None:
        self._region = orjson.dumps(region)
        self._id_tail = f"{crc32(region.encode()):08x}{sid:08x}"
        self._view = orjson.dumps(view_type)
        self._id_heads: dict[str, bytes] = {}  # origin -> eventID up to the position

    def render(self, pos: int, created_ms: int, kind: int, origin: str, fragment: bytes
               ) -> bytes:
        head = self._id_heads.get(origin)
        if head is None:  # the JSON string's inside: an origin is escaped once
            head = self._id_heads[origin] = orjson.dumps(f"{origin}:{self._id_tail}")[1:-1]
        return _RECORD % (self._region, created_ms // 1000, fragment, SEQUENCE_BASE + pos,
                          self._view, head, pos, EVENT_NAMES[kind & 3],
                          _BY_SERVICE if kind & BY_TTL else b"")


def get_records_response(records: list[bytes], next_iterator: str | None) -> bytes:
    """The GetRecords answer: `Records` always (maybe empty), `NextShardIterator` unless
    the shard is closed and read to its end."""
    body = b'{"Records":[' + b",".join(records) + b"]"
    if next_iterator is not None:
        body += b',"NextShardIterator":' + orjson.dumps(next_iterator)
    return body + b"}"
