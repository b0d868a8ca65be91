"""Changes: the unit of replication, and their canonical byte encoding.

Theory of operation: every local write commits ONE `Change` in the same store transaction
as its item rows (the outbox, DESIGN.md decision 2). A change is identified by
`(origin, seq)`, where `seq` is dense per origin (1, 2, 3, ...), and carries one HLC
timestamp: every op in it has the version `Version(hlc, origin)`, which totally orders
writes (decision 3). A TransactWriteItems is one change with several `ItemWrite`s; table
DDL is a change with one `TableOp`.

Encoding (the wire and changelog form, `encode_change`):

    frame = crc32(body) as 4 bytes big-endian || body
    body  = orjson, keys sorted, no whitespace, of
            {"v": 2, "o": origin, "s": seq, "h": hlc, "ops": [op, ...]}
    op    = {"w": table, "pk": hex, "sk": hex, "i": item | null, "p": [hlc, origin] | null,
             "x": state | null}
          | {"t": table, "k": "create" | "update" | "delete", "d": definition | null}

An item write carries the writer's whole causal state of the item (`x`, the canonical
document atoll.replication.itemstate's codec writes, embedded as JSON) and the item that
state shows (`i`, null: a tombstone); `x` null is the row form: one whole-item write at
the change's version over `p` (DESIGN.md decision 3 and the item state design). Version 1
bodies (no `x`, an older node's) still decode, as row-form writes, so a rolling upgrade
keeps applying an older region's changes; a decoded change keeps its format version so
it re-encodes to the bytes it came in. A version-1 node refuses a version-2 change
(BadChange "unknown change format version 2") and holds that origin's log until it is
upgraded: upgrade every region before its writes must reach the others.

`decode_change` refuses (raises `BadChange`) a frame whose checksum does not match, whose
body is not valid JSON of that shape, or whose body is not byte-identical to the canonical
re-encoding (so two regions can never hold different bytes for the same change).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, NewType

import orjson

from atoll.checksum import crc32
from atoll.model.numbers import is_canonical
from atoll.replication.errors import BadChange

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
TABLE_OP_KINDS = ("create", "update", "delete")
MAX_OPS_PER_CHANGE = 1000  # TransactWriteItems allows 100; BatchWrite 25: a generous bound
_VALUE_TYPES = frozenset(("S", "N", "B", "SS", "NS", "BS", "M", "L", "NULL", "BOOL"))
_CHECKSUM_BYTES = 4


class Version(NamedTuple):
    """(hlc, origin): compared as a tuple, hlc first, then the origin's name."""

    hlc: int
    origin: str


ItemKey = tuple[str, bytes, bytes]  # (table, encoded partition key, encoded sort key or b"")

ItemJson = NewType("ItemJson", bytes)
"""An item's wire JSON with its keys sorted at every level (`item_json`): the bytes a
node stores and the form an item takes inside a change body, so equal items are equal
bytes in every region and a new change can embed them without encoding the item again."""


def item_json(item: dict[str, Any]) -> ItemJson:
    return ItemJson(orjson.dumps(item, option=orjson.OPT_SORT_KEYS))


class LoggedWrite(NamedTuple):
    """One item write of a new local change: `ItemWrite` with the item as `ItemJson`."""

    table: str
    pk: bytes
    sk: bytes
    item: ItemJson | None  # None: a delete
    prev: tuple[int, str] | None
    state: bytes = b""  # the item's causal state (b"": the row form)


@dataclass(frozen=True, slots=True)
class ItemWrite:
    """A put or a full new image (`item`), or a delete (`item is None`, a tombstone).

    `prev` is the version the origin overwrote (None if it saw no version of the key).
    `state` is the writer's causal state of the item after the write, whose visible
    item is `item` (b"": the row form — one whole-item write at the change's version
    over `prev`)."""

    table: str
    pk: bytes
    sk: bytes
    item: dict[str, Any] | None
    prev: Version | None = None
    state: bytes = b""

    @property
    def key(self) -> ItemKey:
        return (self.table, self.pk, self.sk)


@dataclass(frozen=True, slots=True)
class TableOp:
    """Table DDL: create (definition), update (new definition), delete (definition None)."""

    table: str
    kind: str
    definition: dict[str, Any] | None = None


Op = ItemWrite | TableOp


@dataclass(frozen=True, slots=True)
class Change:
    origin: str
    seq: int
    hlc: int
    ops: tuple[Op, ...]
    checksum: int
    format: int = FORMAT_VERSION  # the body's format version (1: an older node's)

    @property
    def version(self) -> Version:
        return Version(self.hlc, self.origin)

    @staticmethod
    def create(origin: str, seq: int, hlc: int, ops: tuple[Op, ...] | list[Op]) -> Change:
        """A change with its checksum computed over the canonical body."""
        ops = tuple(ops)
        body = _body(origin, seq, hlc, ops)
        _check_shape(origin, seq, hlc, ops)
        return Change(origin, seq, hlc, ops, crc32(body))

    def tables(self) -> frozenset[str]:
        return frozenset(op.table for op in self.ops)


def encode_change(change: Change) -> bytes:
    body = _body(change.origin, change.seq, change.hlc, change.ops, change.format)
    crc = crc32(body)
    if crc != change.checksum:
        raise BadChange(f"change {change.origin}/{change.seq}: checksum does not match its "
                        "contents (corrupted in memory?)")
    return crc.to_bytes(_CHECKSUM_BYTES, "big") + body


def encode_new_change(origin: str, seq: int, hlc: int, ops: list[Op] | tuple[Op, ...]) -> bytes:
    """The frame of a new change, encoded once (the write path's shortcut for
    `encode_change(Change.create(...))`, which encodes the body twice)."""
    ops = tuple(ops)
    _check_shape(origin, seq, hlc, ops, items=False)  # the engine validated the items
    body = _body(origin, seq, hlc, ops)
    return crc32(body).to_bytes(_CHECKSUM_BYTES, "big") + body


def encode_item_change(origin: str, seq: int, hlc: int, writes: Sequence[LoggedWrite]) -> bytes:
    """The frame of a new change of item writes, assembled from pieces: byte-identical to
    `encode_new_change` of the same writes as `ItemWrite`s (a property test holds them
    equal), without building the op objects or encoding any item a second time. The
    engine validated keys and items; nothing is checked here."""
    dumps = orjson.dumps
    parts = [b'{"h":', str(hlc).encode(), b',"o":', dumps(origin), b',"ops":[']
    for index, write in enumerate(writes):
        prev = write.prev
        parts += (b'{"i":' if index == 0 else b',{"i":',
                  b"null" if write.item is None else write.item,
                  b',"p":', b"null" if prev is None else dumps((prev[0], prev[1])),
                  b',"pk":"', write.pk.hex().encode(), b'","sk":"', write.sk.hex().encode(),
                  b'","w":', dumps(write.table), b',"x":',
                  write.state if write.state else b"null", b"}")
    parts += (b'],"s":', str(seq).encode(), b',"v":', str(FORMAT_VERSION).encode(), b"}")
    body = b"".join(parts)
    return crc32(body).to_bytes(_CHECKSUM_BYTES, "big") + body


def decode_change(frame: bytes) -> Change:
    """The change in `frame`, or BadChange if it is damaged, malformed or not canonical."""
    if not isinstance(frame, bytes | bytearray | memoryview) or len(frame) <= _CHECKSUM_BYTES:
        raise BadChange("change frame is too short")
    frame = bytes(frame)
    crc, body = int.from_bytes(frame[:_CHECKSUM_BYTES], "big"), frame[_CHECKSUM_BYTES:]
    if crc32(body) != crc:
        raise BadChange("change checksum mismatch")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise BadChange(f"change body is not JSON: {error}") from None
    change = _from_doc(doc, crc)
    # Canonical: the document re-encodes to the same bytes. With the shape `_from_doc`
    # checked (key parts in lower-case hex, integers where integers belong) that is the
    # body `_body` makes of the change, without building its ops' documents again.
    if orjson.dumps(doc, option=orjson.OPT_SORT_KEYS) != body:
        raise BadChange("change body is not in canonical form")
    return change


def verify_change(change: Change) -> None:
    """Raise BadChange unless `change` is well formed and matches its checksum."""
    _check_shape(change.origin, change.seq, change.hlc, change.ops)
    body = _body(change.origin, change.seq, change.hlc, change.ops, change.format)
    if crc32(body) != change.checksum:
        raise BadChange(f"change {change.origin}/{change.seq}: checksum mismatch")


# --- encoding --------------------------------------------------------------------------

def _body(origin: str, seq: int, hlc: int, ops: tuple[Op, ...],
          version: int = FORMAT_VERSION) -> bytes:
    doc = {"v": version, "o": origin, "s": seq, "h": hlc,
           "ops": [_op_doc(op, version) for op in ops]}
    try:
        return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
    except TypeError as error:
        raise BadChange(f"change cannot be encoded: {error}") from None


def _op_doc(op: Op, version: int) -> dict[str, Any]:
    if isinstance(op, ItemWrite):
        prev = None if op.prev is None else [op.prev.hlc, op.prev.origin]
        doc: dict[str, Any] = {"w": op.table, "pk": op.pk.hex(), "sk": op.sk.hex(),
                               "i": op.item, "p": prev}
        if version >= 2:
            doc["x"] = orjson.Fragment(op.state) if op.state else None
        elif op.state:
            raise BadChange("a version 1 change cannot carry an item state")
        return doc
    if isinstance(op, TableOp):
        return {"t": op.table, "k": op.kind, "d": op.definition}
    raise BadChange(f"not a change op: {type(op).__name__}")


# --- decoding and validation -----------------------------------------------------------

_CHANGE_FIELDS = frozenset(("v", "o", "s", "h", "ops"))
_ITEM_OP_FIELDS_V1 = frozenset(("w", "pk", "sk", "i", "p"))
_ITEM_OP_FIELDS = frozenset(("w", "pk", "sk", "i", "p", "x"))
_TABLE_OP_FIELDS = frozenset(("t", "k", "d"))


def _from_doc(doc: Any, crc: int) -> Change:
    """The change a parsed body describes, each op checked as it is built."""
    if type(doc) is not dict or doc.keys() != _CHANGE_FIELDS:
        raise BadChange("change body has the wrong fields")
    version = doc["v"]
    if type(version) is not int or version not in READABLE_VERSIONS:
        raise BadChange(f"unknown change format version {version!r}")
    raw_ops = doc["ops"]
    if type(raw_ops) is not list:
        raise BadChange("change ops is not a list")
    origin, seq, hlc = doc["o"], doc["s"], doc["h"]
    _check_header(origin, seq, hlc, len(raw_ops))
    item_fields = _ITEM_OP_FIELDS if version >= 2 else _ITEM_OP_FIELDS_V1
    ops = tuple(_op_from_doc(raw, item_fields) for raw in raw_ops)
    _check_op_set(ops)
    _check_prevs(origin, hlc, ops)
    return Change(origin, seq, hlc, ops, crc, version)


def _op_from_doc(raw: Any, item_fields: frozenset[str]) -> Op:
    if type(raw) is not dict:
        raise BadChange("change op has the wrong fields")
    keys = raw.keys()
    op: Op
    try:
        if keys == item_fields:
            op = ItemWrite(raw["w"], _hex(raw["pk"]), _hex(raw["sk"]), raw["i"], _prev(raw["p"]),
                           _state(raw.get("x")))
        elif keys == _TABLE_OP_FIELDS:
            op = TableOp(raw["t"], raw["k"], raw["d"])
        else:
            raise BadChange("change op has the wrong fields")
    except TypeError as error:  # compiled, the op's fields check their own types
        raise BadChange(f"change op has a field of the wrong type: {error}") from None
    _check_op(op)
    return op


def _hex(text: Any) -> bytes:
    if type(text) is not str:
        raise BadChange("key part is not a hex string")
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise BadChange("key part is not valid hex") from None
    if value.hex() != text:  # upper case or spaces: not the form `_op_doc` writes
        raise BadChange("key part is not in canonical hex")
    return value


def _state(raw: Any) -> bytes:
    """An op's embedded state document as bytes (its shape is checked where it is
    decoded: atoll.replication.itemstate's codec, strictly, by the receiver)."""
    if raw is None:
        return b""
    if type(raw) is not dict or not raw:
        raise BadChange("item state is not a JSON object")
    return orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)


def _prev(raw: Any) -> Version | None:
    if raw is None:
        return None
    if (type(raw) is list and len(raw) == 2 and type(raw[0]) is int and raw[0] >= 0
            and type(raw[1]) is str and raw[1]):
        return Version(raw[0], raw[1])
    raise BadChange("prev version is malformed")


def _check_shape(origin: Any, seq: Any, hlc: Any, ops: tuple[Op, ...], *,
                 items: bool = True) -> None:
    _check_header(origin, seq, hlc, len(ops))
    for op in ops:
        _check_op(op, items)
    _check_op_set(ops)
    _check_prevs(origin, hlc, ops)


def _check_header(origin: Any, seq: Any, hlc: Any, op_count: int) -> None:
    if type(origin) is not str or not origin:
        raise BadChange("change origin is not a region name")
    if type(seq) is not int or seq < 1:
        raise BadChange("change seq must be a positive integer")
    if type(hlc) is not int or hlc < 1:
        raise BadChange("change hlc must be a positive integer")
    if not op_count or op_count > MAX_OPS_PER_CHANGE:
        raise BadChange(f"a change has 1..{MAX_OPS_PER_CHANGE} ops, not {op_count}")


def _check_prevs(origin: str, hlc: int, ops: tuple[Op, ...]) -> None:
    """A write saw only earlier versions of its own region: a `prev` of the change's own
    origin at or after its timestamp describes no state a region can hold."""
    for op in ops:
        prev = op.prev if isinstance(op, ItemWrite) else None
        if prev is not None and prev.origin == origin and prev.hlc >= hlc:
            raise BadChange("an item write's prev is a later version of its own region")


def _check_op_set(ops: tuple[Op, ...]) -> None:
    """Each op is valid on its own; together: a table op alone, each item once."""
    if len(ops) > 1:
        if any(type(op) is TableOp for op in ops):
            raise BadChange("a table op is a change of its own")
        if len({op.key for op in ops}) != len(ops):  # type: ignore[union-attr]
            raise BadChange("a change writes the same item twice")


def _check_op(op: Op, items: bool = True) -> None:
    if not isinstance(op.table, str) or not op.table:
        raise BadChange("op table is not a table name")
    if isinstance(op, TableOp):
        if op.kind not in TABLE_OP_KINDS:
            raise BadChange(f"unknown table op {op.kind!r}")
        if (op.definition is None) != (op.kind == "delete") or not (
                op.definition is None or isinstance(op.definition, dict)):
            raise BadChange("table op definition does not fit its kind")
        return
    if not isinstance(op, ItemWrite):
        raise BadChange(f"not a change op: {type(op).__name__}")
    if not isinstance(op.pk, bytes) or not op.pk or not isinstance(op.sk, bytes):
        raise BadChange("item key parts are malformed")
    if op.prev is not None and not isinstance(op.prev, Version):
        raise BadChange("prev version is malformed")
    if not isinstance(op.state, bytes):
        raise BadChange("item state is not bytes")
    if items and op.item is not None:
        _check_item(op.item)


def _check_item(item: Any) -> None:
    """Shape check of DynamoDB wire JSON; the origin's engine validated the values, but
    numbers are checked again: a number no region may store (Infinity, 1e999999999, 39
    digits, a non-canonical text that would make equal items unequal bytes) is refused
    here whatever sent it, never applied."""
    if type(item) is not dict or not item:
        raise BadChange("item is not a non-empty attribute map")
    for name, value in item.items():
        if type(name) is not str or type(value) is not dict or len(value) != 1:
            raise BadChange(f"attribute {name!r} is not a typed value")
        if not value.keys() <= _VALUE_TYPES:
            raise BadChange(f"attribute {name!r} has an unknown type")
        _check_numbers(name, value)


def _check_numbers(name: str, value: dict[str, Any]) -> None:
    """Every N and NS member inside `value` (through maps and lists, iteratively: a
    peer's nesting cannot exhaust the stack) is a canonical, storable number."""
    pending: list[Any] = [value]
    while pending:
        node = pending.pop()
        if type(node) is not dict or len(node) != 1:
            raise BadChange(f"attribute {name!r} holds a malformed value")
        ((kind, inner),) = node.items()
        if kind == "N":
            if not is_canonical(inner):
                raise BadChange(f"attribute {name!r} holds a number no region may store: "
                                f"{str(inner)[:64]!r}")
        elif kind == "NS":
            if type(inner) is not list or not all(is_canonical(m) for m in inner):
                raise BadChange(f"attribute {name!r} holds a number set no region may store")
        elif kind == "M" and type(inner) is dict:
            pending.extend(inner.values())
        elif kind == "L" and type(inner) is list:
            pending.extend(inner)
