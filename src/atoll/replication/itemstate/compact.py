"""Compaction: an item state without the entries no future write can make show again.

Theory of operation: a state keeps entries that do not show — the values of one
attribute that lost to a newer one (last writer wins), entries older than a concurrent
whole-item write, the members and values of the source that lost between a value and a
set, whole-item writes older than the greatest one — because a write that has NOT seen
them could still arrive and decide by them. Once every dot in the state is causally
stable — every state any live region will ever send has seen it (atoll.replication.fold's
stable cut, from two rounds of acknowledgements) — that cannot happen any more: every
later write observed all of the state, so it either replaces an attribute wholesale
(removing every entry of it it saw, shown or not) or leaves those entries as hidden as
they are. Then `compact` drops them, and the item, and every merge outcome after it,
stays the same (tests/properties/test_compaction_laws.py).

Removal of dotted entries only: a copy of the uncompacted state that meets the
compacted one loses the same entries in the join (the compacted side has seen them and
no longer holds them), so the removal sticks in every region. What is not dotted — the
context, counter contributions (max-joined) — stays: dropping them would not stick (a
copy still holding them gives them back in the join) and a contribution that adds
nothing still carries the floors that keep a late copy from counting twice. The
compaction is made as an ordinary write of the folding region (a new dot), so every
region adopts the same compacted state.
"""

from __future__ import annotations

from typing import Any

from atoll.invariant import invariant
from atoll.replication.itemstate.state import (
    AttrState,
    Dot,
    ElementKey,
    ItemState,
    admitted,
    greatest_gen,
    prune_ops,
)
from atoll.replication.itemstate.view import resolve_attribute


def compact(state: ItemState) -> ItemState:
    """`state` without its hidden entries (the same state if there are none). Only for
    a state whose every dot is causally stable (see the module doc)."""
    gstar = greatest_gen(state)
    gens = state.gens if gstar is None or len(state.gens) == 1 else \
        {gstar.region: state.gens[gstar.region]}
    attrs: dict[str, AttrState] = {}
    for name, attr in state.attrs.items():
        kept = _compact_attr(state, gstar, attr)
        if not kept.empty():
            attrs[name] = kept
    ops = prune_ops(state.ops, attrs, state.marks)
    compacted = ItemState(state.ctx, gens, attrs, ops, state.marks)
    return state if compacted == state else compacted


def _compact_attr(state: ItemState, gstar: Dot | None, attr: AttrState) -> AttrState:
    view = resolve_attribute(state, gstar, attr)
    regs: dict[str, tuple[int, Any]] = {}
    sets: dict[ElementKey, dict[str, int]] = {}
    reg_wins = view.reg_best is not None and (view.set_best is None
                                              or view.reg_best > view.set_best)
    if reg_wins:
        best = view.reg_best
        invariant(best is not None, "a value that shows has a dot")
        assert best is not None  # for the type checker (invariant() above says why)
        regs = {best.region: attr.regs[best.region]}
    elif view.set_best is not None:
        for key, holders in attr.sets.items():
            if key[0] != view.set_kind:
                continue
            shown = {region: hlc for region, hlc in holders.items()
                     if admitted(state, gstar, hlc, region)}
            if shown:
                sets[key] = shown if len(shown) < len(holders) else holders
    if regs == attr.regs and sets == attr.sets:
        return attr
    return AttrState(regs if regs != attr.regs else attr.regs,
                     sets if sets != attr.sets else attr.sets, attr.ctrs)


def compaction_write(state: ItemState, dot: Dot) -> ItemState | None:
    """`compact(state)` as a write at `dot` (its region's next dot): the compacted state
    whose context also holds `dot`, so that it supersedes every copy of `state` in the
    join; None if there is nothing to compact."""
    compacted = compact(state)
    if compacted is state:
        return None
    invariant(dot.hlc > state.ctx.get(dot.region, 0), "a write's dot must be new")
    ctx = dict(compacted.ctx)
    ctx[dot.region] = dot.hlc
    return ItemState(ctx, compacted.gens, compacted.attrs, compacted.ops, compacted.marks)
