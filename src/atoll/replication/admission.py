"""Defence in depth on apply: checks a peer's change must pass before anything of it is
stored (pure).

Theory of operation: a change arrives checksummed and canonical (`decode_change`), so
transport damage is already refused; what these checks catch is a change that is
well-formed yet wrong — a bug or a damaged store at its origin, or a region that lost its
data and numbers its changes from 1 again:

- `key_mismatch`: an item write whose item's key attributes do not encode to the row key
  it is filed under would store an item that no GetItem of its own key finds (and that
  shadows another key). The item is checked against the table's key schema here.
- `reused_sequence`: (origin, seq) names exactly one change. A change at or below its
  origin's cursor is normally a harmless duplicate and skipped; if the changelog holds a
  *different* change under the same (origin, seq), the origin reused a sequence number,
  and skipping it silently would lose that change everywhere without a trace.

What the shell does with a refusal: it is logged and counted, and nothing of the change is
stored. A reused sequence is a duplicate, so the apply goes on past it; an item whose key
does not match stops its origin's changes there (nothing after it is applied, the next
pull brings it again), exactly like a damaged record, until an operator looks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from atoll.model.keys import encode_key_value
from atoll.replication.change import Change, ItemWrite


def key_mismatch(write: ItemWrite, hash_key: str, hash_type: str, range_key: str | None,
                 range_type: str | None) -> str | None:
    """Why `write`'s item does not belong under its row key, or None if it does (or if it
    is a delete: a tombstone carries no item)."""
    item = write.item
    if item is None:
        return None
    wanted = [(hash_key, hash_type, write.pk, "partition")]
    if range_key is not None and range_type is not None:
        wanted.append((range_key, range_type, write.sk, "sort"))
    elif write.sk:
        return f"item in {write.table} has a sort key but the table has none"
    for name, kind, encoded, role in wanted:
        value = item.get(name)
        if not isinstance(value, Mapping) or set(value) != {kind}:
            return f"item in {write.table} lacks its {role} key {name!r} of type {kind}"
        try:
            matches = encode_key_value(dict(value), kind) == encoded
        except (ValueError, TypeError, KeyError, AttributeError, ArithmeticError):
            matches = False
        if not matches:
            return (f"item in {write.table} has {role} key {name}={_short(value)}, which "
                    f"is not the row key it is filed under")
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


def _short(value: Mapping[str, Any]) -> str:
    text = repr(dict(value))
    return text if len(text) <= 80 else text[:77] + "..."
