"""ExclusiveStartKey of a Query or Scan: checked and encoded the way DynamoDB checks it.

Theory of operation: a start key is the LastEvaluatedKey of an earlier page, so it holds
exactly the table's key attributes, plus the index's key attributes when an index is
read. DynamoDB checks one in layers, and each layer has its own answer (recorded
against DynamoDB in dynalite's test suite, test/query.js and test/scan.js, and its
actions/query.js and actions/scan.js):

1. the attribute names: not exactly the expected ones is "The provided starting key is
   invalid" (a table Scan adds ": The provided key element does not match the schema");
2. the attributes of the key schema being read (the index's, or the table's for a
   table Query): a value of the wrong type is "The provided key element does not match
   the schema", one over the key size limit the size message;
3. the table's key, as a GetItem key: its error prefixed with "The provided starting key
   is invalid: ";
4. for a Query, the key against the key condition: another partition is "outside query
   boundaries" when there is no sort-key condition; with one, a sort key the condition
   excludes "does not match the range key predicate", and a matching sort key in another
   partition "can return at most one row and cannot be restarted";
5. for a parallel Scan, a key whose partition hashes outside the segment names the
   segment ("Please use ExclusiveStartKey with correct Segment").
"""

from __future__ import annotations

from typing import Any, NamedTuple

from atoll.engine.indexdef import IndexDef
from atoll.engine.tabledef import TableDef
from atoll.errors import ValidationError
from atoll.model.keys import check_key_size, encode_key_value, partition_hash
from atoll.model.values import check_value

INVALID = "The provided starting key is invalid"
_SCHEMA = "The provided key element does not match the schema"
_OUTSIDE = "The provided starting key is outside query boundaries based on provided conditions"
_PREDICATE = "The provided starting key does not match the range key predicate"
_ONE_ROW = "The query can return at most one row and cannot be restarted"

Bound = tuple[bytes, bool]  # (encoded value, inclusive)


class StartKey(NamedTuple):
    """An encoded start key: the table key (h, pk, sk) and the key of what is read
    (the index's when an index is read, else the table's again)."""
    h: int
    pk: bytes
    sk: bytes
    read_pk: bytes
    read_sk: bytes


def decode(table: TableDef, index: IndexDef | None, start: Any, scan: bool) -> StartKey:
    """Check `start` (layers 1-3 above) and encode it."""
    names = set(table.key_names())
    if index is not None:
        names.update(index.key_names())
    if type(start) is not dict or set(start) != names:
        if scan and index is None:
            raise ValidationError(f"{INVALID}: {_SCHEMA}")
        raise ValidationError(INVALID)
    read_keys = index.key_names() if index is not None else table.key_names()
    read_hash = index.hash_key if index is not None else table.hash_key
    encoded: dict[str, bytes] = {}
    if index is not None or not scan:
        for name in read_keys:
            encoded[name] = _piece(start[name], table.attribute_types[name], name == read_hash)
    try:
        h, pk, sk = table.encode_key({name: start[name] for name in table.key_names()})
    except ValidationError as exc:
        raise ValidationError(f"{INVALID}: {exc.message}") from None
    if index is None:
        return StartKey(h, pk, sk, pk, sk)
    read_sk = encoded[index.range_key] if index.range_key is not None else b""
    return StartKey(h, pk, sk, encoded[index.hash_key], read_sk)


def _piece(value: Any, kind: str, partition: bool) -> bytes:
    if type(value) is not dict or len(value) != 1 or kind not in value:
        raise ValidationError(_SCHEMA)
    check_value(value)  # a malformed number or base64 text: the value's own message
    encoded = encode_key_value(value, kind)
    check_key_size(encoded, kind, partition)
    return encoded


def check_query(start: StartKey, pk: bytes, sort_condition: bool,
                lower: Bound | None, upper: Bound | None) -> None:
    """Layer 4: the start key against the Query's key condition (partition `pk`, the
    sort-key bounds when there is a sort-key condition)."""
    if not sort_condition:
        if start.read_pk != pk:
            raise ValidationError(_OUTSIDE)
        return
    if not _within(start.read_sk, lower, upper):
        raise ValidationError(_PREDICATE)
    if start.read_pk != pk:
        raise ValidationError(_ONE_ROW)


def _within(value: bytes, lower: Bound | None, upper: Bound | None) -> bool:
    if lower is not None and (value < lower[0] or (value == lower[0] and not lower[1])):
        return False
    return upper is None or value < upper[0] or (value == upper[0] and upper[1])


def check_segment(start: StartKey, h_start: int, h_end: int, segment: Any, total: Any) -> None:
    """Layer 5: a parallel Scan's start key must hash into the scanned segment."""
    h = partition_hash(start.read_pk)
    if not h_start <= h < h_end:
        raise ValidationError(f"{INVALID}: Invalid ExclusiveStartKey. Please use "
                              "ExclusiveStartKey with correct Segment. "
                              f"TotalSegments: {total} Segment: {segment}")
