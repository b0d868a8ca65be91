"""The item state as a row stores it, and the write path's entry points.

Theory of operation: a row keeps its visible item's bytes and, beside them, a `Stored`:
  - row form (`data == b""`): the state is `migrate(item, version, prev)` — one
    whole-item write with its own entries, no counters, ops or markers, and a context of
    at most the writer's and one other region (`row_form`). Every PutItem and
    DeleteItem of an item whose writers were at most two regions, and every row stored
    before item states existed, is in row form: it costs nothing beyond today's version
    and prev columns.
  - otherwise `data` holds the canonical bytes (codec.py), `version` the greatest dot
    the state has seen (`latest_dot`) and `prev` None.
PutItem and DeleteItem replace everything but the context and the counters' floors, so
`put_stored`/`delete_stored` never rebuild the old state: they read its context (and
counter figures, if any) and write the new one directly. `update_stored` loads the state
(a trusted decode: these are this node's own bytes), applies the writes and stores it,
unless its common case — a region updating its own item — edits the stored bytes
directly (fastpath.py).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, NamedTuple

import orjson

from atoll.invariant import invariant
from atoll.model.writes import AttributeWrite
from atoll.replication.itemstate.codec import (
    counter_from_figures,
    decode_state,
    encode_state,
    verify_item,
)
from atoll.replication.itemstate.conflicts import Conflict, join_conflicts
from atoll.replication.itemstate.fastpath import update_fast
from atoll.replication.itemstate.join import join
from atoll.replication.itemstate.local import migrate, put, row_form, update
from atoll.replication.itemstate.state import (
    SET_TYPES,
    AttrState,
    Counter,
    Dot,
    ItemState,
    canonical_set,
    empty_state,
    latest_dot,
    ordered_item,
    raise_floors,
)
from atoll.replication.itemstate.view import materialize

Item = dict[str, Any]


class Stored(NamedTuple):
    """What a row stores beside its item: `data` (b"" in row form), and the version
    columns: in row form the whole-item write and what it overwrote, which rebuild the
    state; otherwise the greatest dot seen and None."""

    data: bytes
    version: Dot
    prev: Dot | None


def store(state: ItemState, item: Item | None, key_names: Collection[str]) -> Stored:
    """The stored form of `state`, whose visible item is `item`."""
    form = row_form(state)
    if form is not None:
        return Stored(b"", form[0], form[1])
    return Stored(encode_state(state, item, key_names), latest_dot(state), None)


def load(stored: Stored, item: Item | None, key_names: Collection[str]) -> ItemState:
    """The state of a row this node stored (`item`: the row's item, None: a tombstone)."""
    if not stored.data:
        return migrate(item, stored.version, stored.prev, key_names)
    return decode_state(stored.data, item, key_names, trusted=True)


def put_stored(old: Stored | None, item: Item, key_names: Collection[str],
               dot: Dot) -> tuple[Stored, Item]:
    """PutItem at `dot` over a row in stored form `old` (None: no row): the new stored
    form and the visible item (`put` in local.py, without rebuilding the old state)."""
    ctx, counters = _context_and_counters(old)
    if counters:
        state, shown = put(ItemState(ctx, {}, counters, {}, {}), item, key_names, dot)
        return store(state, shown, key_names), shown
    return _whole_item(ctx, dot, True), _shown_item(item, key_names)


def delete_stored(old: Stored | None, dot: Dot) -> Stored:
    """DeleteItem at `dot` over a row in stored form `old` (None: no row)."""
    ctx, counters = _context_and_counters(old)
    if counters:
        new_ctx = dict(ctx)
        _advance(new_ctx, dot)
        state = ItemState(new_ctx, {dot.region: (dot.hlc, False)},
                          {name: AttrState({}, {}, raise_floors(attr.ctrs))
                           for name, attr in counters.items()}, {}, {})
        return store(state, None, ())
    return _whole_item(ctx, dot, False)


RawStored = tuple[bytes, tuple[int, str], tuple[int, str] | None]
"""A `Stored` as a storage reads it: (data, (hlc, region), (hlc, region) or None)."""


def update_stored(old: RawStored | None, old_item: Item | None,
                  writes: Sequence[AttributeWrite], dot: Dot, key: Item
                  ) -> tuple[Stored, Item]:
    """UpdateItem at `dot` over a row in stored form `old` (a `Stored`, or the
    storage's plain tuple of it) whose item is `old_item`: the common case edits the
    stored bytes (fastpath.py), anything else goes through the state."""
    if old is None:
        fast = update_fast(None, (0, ""), None, old_item, writes, dot, key)
    else:
        fast = update_fast(old[0], old[1], old[2], old_item, writes, dot, key)
    if fast is not None:
        return Stored(fast[0], fast[1], None), fast[2]
    key_names = key.keys()
    state = None if old is None else load(as_stored(old), old_item, key_names)
    new_state, shown = update(state, old_item, writes, dot, key)
    return store(new_state, shown, key_names), shown


def as_stored(raw: RawStored) -> Stored:
    """A storage's (data, version, prev) tuple as a `Stored` (the same one if it is)."""
    if isinstance(raw, Stored):
        return raw
    prev = raw[2]
    return Stored(raw[0], Dot(raw[1][0], raw[1][1]),
                  Dot(prev[0], prev[1]) if prev is not None else None)


def apply_stored(local: Stored | None, local_item: Item | None, incoming: Stored,
                 incoming_item: Item | None, key: Item
                 ) -> tuple[Stored, Item | None, list[Conflict], bool]:
    """A receiver's apply of a replicated write: the writer's state (`incoming`, in
    stored form, with its visible item) joined into this row's (`local`, None: no row).
    Returns the row's new stored form and item, the conflicts the join revealed here,
    and whether anything changed (False: the join is the local state — a duplicate or
    a superseded write — and `local` is returned as it was). The incoming state is
    decoded strictly (BadChange if malformed) and must show `incoming_item` (which
    supplies the values the state elides, so what can disagree is what the state spells
    out: counters, listed values, existence); when it dominates, its bytes and item are
    stored as they came."""
    key_names = key.keys()
    if incoming.data:
        theirs = decode_state(incoming.data, incoming_item, key_names)
        incoming = Stored(incoming.data, latest_dot(theirs), None)
    else:
        theirs = migrate(incoming_item, incoming.version, incoming.prev, key_names)
    mine = empty_state() if local is None else load(local, local_item, key_names)
    joined = join(mine, theirs)
    if local is not None and _same_state(joined, mine):
        return local, local_item, [], False
    if joined is theirs:
        verify_item(theirs, incoming_item, key)
        shown_item = None if incoming_item is None else ordered_item(incoming_item)
        return incoming, shown_item, join_conflicts(mine, theirs, key), True
    shown = materialize(joined, key)
    return store(joined, shown, key_names), shown, join_conflicts(mine, joined, key), True


def _same_state(joined: ItemState, mine: ItemState) -> bool:
    """Whether the join left this row's state as it was: by value, not identity (the
    join returns a new, equal state for a duplicate whose context equals the local
    one). Contexts are compared first: a join that grew the context changed it."""
    return joined is mine or (joined.ctx == mine.ctx and joined == mine)


def _context_and_counters(old: Stored | None
                          ) -> tuple[dict[str, int], dict[str, AttrState]]:
    """The old state's context, and its counter-holding attributes (figures only)."""
    if old is None:
        return {}, {}
    if not old.data:
        ctx = {old.version.region: old.version.hlc}
        prev = old.prev
        if prev is not None and prev.hlc > ctx.get(prev.region, 0):
            ctx[prev.region] = prev.hlc
        return ctx, {}
    doc = orjson.loads(old.data)
    counters: dict[str, AttrState] = {}
    raw_attrs: dict[str, Any] | None = doc.get("a")
    if raw_attrs is not None:
        for name, raw in raw_attrs.items():
            figures: dict[str, Any] | None = raw.get("n")
            if figures is not None:
                ctrs: dict[str, Counter] = {region: counter_from_figures(f)
                                            for region, f in figures.items()}
                counters[name] = AttrState({}, {}, ctrs)
    return doc["c"], counters


def _advance(ctx: dict[str, int], dot: Dot) -> None:
    invariant(dot.hlc > ctx.get(dot.region, 0),
              "a local write's dot must be newer than every dot of its own region")
    ctx[dot.region] = dot.hlc


def _whole_item(old_ctx: dict[str, int], dot: Dot, exists: bool) -> Stored:
    """A state of one whole-item write with its own entries over context `old_ctx`."""
    ctx = dict(old_ctx)
    _advance(ctx, dot)
    if len(ctx) <= 2:
        for region, hlc in ctx.items():
            if region != dot.region:
                return Stored(b"", dot, Dot(hlc, region))
        return Stored(b"", dot, None)
    data = orjson.dumps({"c": ctx, "g": [[dot.hlc, dot.region, 1 if exists else 0]]},
                        option=orjson.OPT_SORT_KEYS)
    return Stored(data, max(Dot(hlc, region) for region, hlc in ctx.items()), None)


def _shown_item(item: Item, key_names: Collection[str]) -> Item:
    """A put item as the state shows it: top-level sets canonical and sorted."""
    shown: Item | None = None
    for name, value in item.items():
        if name in key_names:
            continue
        for kind in value:
            if kind in SET_TYPES:
                canonical = canonical_set(value)
                if canonical is not value:
                    if shown is None:
                        shown = dict(item)
                    shown[name] = canonical
    # Not reordered: the engine keeps the request's item when this returns it as is (its
    # bytes and index plan are already made), and stored bytes are key-sorted anyway.
    return shown if shown is not None else item
