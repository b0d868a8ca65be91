"""Defence in depth on apply: checks a peer's change must pass before anything of it is
stored (pure; called by the one apply driver, `atoll.replication.apply.apply_changes`,
so the node and the simulator run them alike).

Theory of operation: a change arrives checksummed and canonical (`decode_change`), so
transport damage is already refused; what these checks catch is a change that is
well-formed yet wrong — a bug or a damaged store at its origin or at a relaying peer,
a forged record on the peer link, or a region that lost its data and numbers its changes
from 1 again:

- key mismatch (`refuse_change`): an item write whose item's key attributes do not encode
  to the row key it is filed under would store an item that no GetItem of its own key
  finds (and that shadows another key). Each item of the change is checked against its
  table's key schema (the table's live definition here: `hash_key`, `range_key` and
  their `attribute_types`); a write into a table that is unknown or deleted here is left
  to the merge (held, or dropped), which stores nothing of it either.
- reused sequence (`ReplayCheck`): (origin, seq) names exactly one change. A change at or
  below its origin's cursor is normally a harmless duplicate and skipped; if the
  changelog holds a *different* change under the same (origin, seq), someone reused a
  sequence number, and skipping it silently would lose that change without a trace. An
  identical replay stays a no-op. A record purged from the log cannot be compared: the
  replay is then skipped unchecked, as before. At most `MAX_REPLAY_CHECKS` replays are
  compared per apply job (each is one read of the changelog), so a batch of a thousand
  relayed duplicates costs a bounded time; the others are skipped unchecked.

What the driver does with a `Refusal` (atoll.replication.apply, puller.py):
- nothing of the refused change is stored: not its items, not its changelog record, not
  its cursor;
- a key mismatch stops its origin in that apply job (`Refusal.stops`): the changes of that
  origin after it are not applied either (they would follow a gap), the other origins'
  changes in the job are; the origin's cursor stays before the refused change, so no later
  change of that origin is ever applied past it. The puller backs off (doubling from
  `backoff_min_ms` to `backoff_max_ms`) and pulls again from the committed cursors: a
  forged or damaged delivery is replaced by the true change, which then applies; a change
  the origin itself holds that way stays refused, and its origin stays behind here (lag
  grows, the link reports it) until an operator repairs the origin.
- a reused sequence does not stop anything: the replay would have been skipped anyway
  and no gap is left behind; it is refused so that it is seen.
- every refusal is counted on its link (`/_atoll/status` peers' `refused_changes`,
  `last_refusal`, `refusing`; `atoll_replication_refused_changes_total`) and logged
  once per link with its origin, sequence, table and key (a refused change that comes
  back with every retry is logged the first time only).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from atoll.model.keys import decode_key_value, encode_key_value
from atoll.replication.change import Change, ItemWrite
from atoll.replication.merge import TableState

KEY_MISMATCH = "key mismatch"
REUSED_SEQUENCE = "reused sequence"
MAX_REPLAY_CHECKS = 100  # changelog reads per apply job to compare replays

KeySchema = tuple[str, str, str | None, str | None]  # hash name and type, range name and type


@dataclass(frozen=True, slots=True)
class Refusal:
    """A change refused before anything of it was stored."""

    kind: str  # KEY_MISMATCH or REUSED_SEQUENCE
    origin: str
    seq: int
    checksum: int  # which change: a retry brings the same one again
    table: str
    key: str  # the row key as its attribute values, when the schema is known (else hex)
    why: str

    @property
    def stops(self) -> bool:
        """Whether its origin's later changes wait behind it (they would follow a gap)."""
        return self.kind == KEY_MISMATCH

    @property
    def identity(self) -> tuple[str, str, int, int]:
        return (self.kind, self.origin, self.seq, self.checksum)

    def describe(self) -> str:
        return (f"refused change {self.origin}/{self.seq} ({self.kind}): table {self.table}, "
                f"key {self.key}: {self.why}")


def key_schema(definition: Mapping[str, Any] | None) -> KeySchema | None:
    """A table definition's key schema (engine/tabledef.py's JSON form), or None if the
    definition does not name one (nothing to check against)."""
    if definition is None:
        return None
    hash_key, range_key = definition.get("hash_key"), definition.get("range_key")
    types = definition.get("attribute_types")
    if not isinstance(hash_key, str) or not isinstance(types, Mapping):
        return None
    hash_type = types.get(hash_key)
    if not isinstance(hash_type, str):
        return None
    if not isinstance(range_key, str):
        return (hash_key, hash_type, None, None)
    range_type = types.get(range_key)
    return (hash_key, hash_type, range_key, range_type if isinstance(range_type, str) else None)


def key_mismatch(write: ItemWrite, hash_key: str, hash_type: str, range_key: str | None,
                 range_type: str | None) -> str | None:
    """Why `write`'s item does not belong under its row key, or None if it does (or if it
    is a delete: a tombstone carries no item)."""
    item = write.item
    if item is None:
        return None
    why = _part_mismatch(write.table, item, hash_key, hash_type, write.pk, "partition")
    if why is not None:
        return why
    if range_key is not None and range_type is not None:
        return _part_mismatch(write.table, item, range_key, range_type, write.sk, "sort")
    if write.sk:
        return f"item in {write.table} has a sort key but the table has none"
    return None


def _part_mismatch(table: str, item: Mapping[str, Any], name: str, kind: str, encoded: bytes,
                   role: str) -> str | None:
    """Why the item's key attribute `name` does not encode to `encoded` (None if it does:
    the path every applied item write takes, so no copies)."""
    value = item.get(name)
    if not isinstance(value, dict) or len(value) != 1 or kind not in value:
        return f"item in {table} lacks its {role} key {name!r} of type {kind}"
    try:
        if encode_key_value(value, kind) == encoded:
            return None
    except (ValueError, TypeError, KeyError, AttributeError, ArithmeticError):
        pass
    return (f"item in {table} has {role} key {name}={_short(value)}, which is not the row "
            "key it is filed under")


def refuse_change(change: Change, table_of: Callable[[str], TableState | None]
                  ) -> Refusal | None:
    """The refusal of `change` (the next change of its origin), if one of its items does
    not encode to the row key it is filed under; None if it may be applied."""
    for op in change.ops:
        if not isinstance(op, ItemWrite) or op.item is None:
            continue
        state = table_of(op.table)
        schema = key_schema(None if state is None else state.definition)
        if schema is None:
            continue  # unknown or deleted here: the merge holds or drops it
        why = key_mismatch(op, *schema)
        if why is not None:
            return Refusal(KEY_MISMATCH, change.origin, change.seq, change.checksum, op.table,
                           row_key_text(op.pk, op.sk, schema), why)
    return None


def reused_sequence(change: Change, frame: bytes, logged: bytes | None) -> str | None:
    """Why `change` (at or below its origin's cursor) is not the duplicate it looks like,
    or None: `logged` is the record the changelog holds for its (origin, seq), None when
    that is no longer kept (purged: nothing to compare against)."""
    if logged is None or logged == frame:
        return None
    return (f"origin {change.origin} sent a different change under sequence {change.seq}, "
            "which an earlier change already holds (did it lose its data and number its "
            "changes again?)")


class ReplayCheck:
    """Compares replays (changes at or below their origin's cursor) with the changelog,
    at most `limit` of them: `logged(origin, seq)` reads the record kept for (origin, seq)
    in the apply's own transaction."""

    def __init__(self, logged: Callable[[str, int], bytes | None],
                 table_of: Callable[[str], TableState | None],
                 limit: int = MAX_REPLAY_CHECKS) -> None:
        self.logged = logged
        self.table_of = table_of
        self.left = limit

    def refuse(self, change: Change, frame: bytes) -> Refusal | None:
        """The refusal of a replay that differs from the change logged under its seq."""
        if self.left <= 0:
            return None
        self.left -= 1
        why = reused_sequence(change, frame, self.logged(change.origin, change.seq))
        if why is None:
            return None
        table, key = "-", "-"
        for op in change.ops:
            table = op.table
            if isinstance(op, ItemWrite):
                state = self.table_of(op.table)
                key = row_key_text(op.pk, op.sk,
                                   key_schema(None if state is None else state.definition))
                break
        return Refusal(REUSED_SEQUENCE, change.origin, change.seq, change.checksum, table,
                       key, why)


def row_key_text(pk: bytes, sk: bytes, schema: KeySchema | None) -> str:
    """A row key as people read it: `{"pk": {"S": "a"}}` under the schema, else hex."""
    if schema is not None:
        hash_key, hash_type, range_key, range_type = schema
        try:
            key = {hash_key: decode_key_value(pk, hash_type)}
            if range_key is not None and range_type is not None:
                key[range_key] = decode_key_value(sk, range_type)
            return _short(key)
        except ValueError:
            pass
    return f"pk={pk.hex()}" + (f" sk={sk.hex()}" if sk else "")


def _short(value: Mapping[str, Any]) -> str:
    text = repr(dict(value))
    return text if len(text) <= 80 else text[:77] + "..."
