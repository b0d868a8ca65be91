"""The merge rule: the join of two item states (commutative, associative, idempotent).

Theory of operation: receivers apply a change by joining the writer's state into theirs.
  - ctx: pointwise max.
  - dotted entries (gens, values, set members, markers): an entry is kept iff both
    states hold it (the same dot: it must be the same write, else BadChange), or one
    holds it and the other's ctx has not observed its dot — the other never saw it, so
    it is concurrent and survives. An entry one state holds and the other observed but
    does not hold was removed by a write the other saw.
  - counters: per attribute and region, each of p, n, fp, fn is the max.
  - ops: the union, kept only for dots still carried (the same dot: the same map).
This is the causal CRDT join over contexts that are downward-closed per region (Almeida,
Shoker, Baquero, "Delta state replicated data types", 2018): every change ships its
writer's whole state, so a state that observed a dot of region R observed all of R's
earlier dots of the item, and a max per region describes it exactly.

Shortcut: when one context dominates the other (pointwise >=, and they differ), the
dominating state already reflects every write the other saw — the state is a function
of the writes it observed — so it is the join. Tests hold the shortcut equal to the full
join on every reachable state.
"""

from __future__ import annotations

from typing import Any

from atoll.replication.errors import BadChange
from atoll.replication.itemstate.state import (
    AttrState,
    Counter,
    ElementKey,
    ItemState,
    prune_ops,
)


def join(a: ItemState, b: ItemState) -> ItemState:
    """The least state that includes both `a` and `b`."""
    if a.ctx != b.ctx:
        if _dominates(a.ctx, b.ctx):
            return a
        if _dominates(b.ctx, a.ctx):
            return b
    return join_full(a, b)


def _dominates(big: dict[str, int], small: dict[str, int]) -> bool:
    for region, hlc in small.items():
        if big.get(region, 0) < hlc:
            return False
    return True


def join_full(a: ItemState, b: ItemState) -> ItemState:
    """The join computed entry by entry (no shortcut)."""
    ctx = dict(a.ctx)
    for region, hlc in b.ctx.items():
        if hlc > ctx.get(region, 0):
            ctx[region] = hlc
    gens = _join_dotted(a.gens, b.gens, a.ctx, b.ctx, "whole-item write")
    marks = _join_marks(a.marks, b.marks, a.ctx, b.ctx)
    attrs: dict[str, AttrState] = {}
    for name, attr in a.attrs.items():
        other = b.attrs.get(name)
        joined = attr if other is None and _all_concurrent(attr, b.ctx) else \
            _join_attr(attr, other, a.ctx, b.ctx)
        if not joined.empty():
            attrs[name] = joined
    for name, attr in b.attrs.items():
        if name not in a.attrs:
            joined = attr if _all_concurrent(attr, a.ctx) else _join_attr(attr, None, b.ctx, a.ctx)
            if not joined.empty():
                attrs[name] = joined
    ops = dict(a.ops)
    for dot, seen in b.ops.items():
        mine = ops.get(dot)
        if mine is None:
            ops[dot] = seen
        elif mine != seen:
            raise BadChange(f"two states disagree about update {dot.hlc}/{dot.region}")
    return ItemState(ctx, gens, attrs, prune_ops(ops, attrs, marks), marks)


def _all_concurrent(attr: AttrState, other_ctx: dict[str, int]) -> bool:
    """Whether `other_ctx` observed none of `attr`'s dotted entries (nothing to drop)."""
    for region, (hlc, _value) in attr.regs.items():
        if hlc <= other_ctx.get(region, 0):
            return False
    for holders in attr.sets.values():
        for region, hlc in holders.items():
            if hlc <= other_ctx.get(region, 0):
                return False
    return True


def _join_attr(a: AttrState, b: AttrState | None, a_ctx: dict[str, int],
               b_ctx: dict[str, int]) -> AttrState:
    if b is None:
        regs = {region: entry for region, entry in a.regs.items()
                if entry[0] > b_ctx.get(region, 0)}
        sets: dict[ElementKey, dict[str, int]] = {}
        for key, holders in a.sets.items():
            kept = {region: hlc for region, hlc in holders.items()
                    if hlc > b_ctx.get(region, 0)}
            if kept:
                sets[key] = kept
        return AttrState(regs, sets, a.ctrs)
    regs = _join_dotted(a.regs, b.regs, a_ctx, b_ctx, "attribute value")
    sets = {}
    for key in a.sets.keys() | b.sets.keys():
        kept = _join_dotted(a.sets.get(key, {}), b.sets.get(key, {}), a_ctx, b_ctx,
                            "set member")
        if kept:
            sets[key] = kept
    return AttrState(regs, sets, _join_counters(a.ctrs, b.ctrs))


def _join_dotted(a: dict[str, Any], b: dict[str, Any], a_ctx: dict[str, int],
                 b_ctx: dict[str, int], what: str) -> dict[str, Any]:
    """Dotted entries keyed by region; an entry is `hlc` or a tuple starting with it."""
    result: dict[str, Any] = {}
    for region, entry in a.items():
        other = b.get(region)
        hlc = _hlc(entry)
        if other is not None and _hlc(other) == hlc:
            if other != entry:
                raise BadChange(f"two states disagree about the {what} written at "
                                f"{hlc}/{region}")
            result[region] = entry
        elif hlc > b_ctx.get(region, 0):
            result[region] = entry
    for region, entry in b.items():
        if region not in result and _hlc(entry) > a_ctx.get(region, 0):
            result[region] = entry
    return result


def _hlc(entry: Any) -> int:
    return entry if type(entry) is int else int(entry[0])


def _join_marks(a: dict[str, int], b: dict[str, int], a_ctx: dict[str, int],
                b_ctx: dict[str, int]) -> dict[str, int]:
    if not a and not b:
        return a
    return _join_dotted(a, b, a_ctx, b_ctx, "existence marker")


def _join_counters(a: dict[str, Counter], b: dict[str, Counter]) -> dict[str, Counter]:
    if not b:
        return a
    if not a:
        return b
    result = dict(a)
    for region, theirs in b.items():
        mine = result.get(region)
        if mine is None:
            result[region] = theirs
        elif mine != theirs:
            result[region] = (max(mine[0], theirs[0]), max(mine[1], theirs[1]),
                              max(mine[2], theirs[2]), max(mine[3], theirs[3]))
    return result
