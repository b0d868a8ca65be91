"""Local writes: PutItem, DeleteItem and UpdateItem as new states, and old rows as states.

Theory of operation: a write at region R gets a new dot d = Dot(clock.tick(), R); its
writer observed exactly the current state (every dot in `ctx`). It removes the entries
it replaces — every one it holds is observed — adds its own, and sets ctx[R] = d.hlc.
  - put: removes every gen, value, set member and marker; raises every counter's floors
    to its sums (the increments it saw are reset, concurrent ones will still count);
    adds the gen (d, True) and one entry per non-key attribute (set values as members,
    so a concurrent ADD of a member merges with them).
  - delete: the same with the gen (d, False) and no entries.
  - update, per `AttributeWrite` (atoll.model.writes):
      SET/REMOVE  replaces the attribute: its values and members go, its counter floors
                  rise, one entry (d, value) is added (None for REMOVE; members for a set);
      INCREMENT   adds to R's contribution (p for a positive delta, n for a negative one);
                  nothing is removed, so concurrent increments all count;
      ADD/DELETE  (set members) keeps the visible members with their dots, drops every
                  hidden value or member, raises the floors, and gives each added member
                  the single dot d (DELETE removes the named members): add-wins.
    The writer's observation of other regions' whole-item writes is kept in ops[d], so a
    concurrent put that arrives later can tell the update came after the one it saw.
    An UpdateItem is an upsert: any entry it leaves keeps the item existing (view.py).
    One that leaves none (it only deleted members, or wrote nothing) adds an existence
    marker with its dot instead, replacing the markers it saw.
Each function returns the new state and the visible item, computed from the touched
attributes only (untouched attributes, g* and admission do not change in a local
write); property tests hold it equal to `materialize` of the new state.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from decimal import Decimal
from typing import Any

from atoll.invariant import invariant
from atoll.model.writes import (
    ADD_ELEMENTS,
    DELETE_ELEMENTS,
    INCREMENT,
    REMOVE,
    SET,
    AttributeWrite,
)
from atoll.replication.itemstate.state import (
    COUNTER_CONTEXT,
    EMPTY_ATTR,
    SET_TYPES,
    ZERO,
    AttrState,
    Counter,
    Dot,
    ElementKey,
    ItemState,
    admitted,
    canonical_set,
    element_key,
    empty_state,
    greatest_gen,
    ordered_item,
    prune_ops,
    raise_floors,
    sorted_members,
    value_kind,
    written_attr,
)
from atoll.replication.itemstate.view import (
    attribute_value,
    dynamodb_number,
    in_range,
    materialize,
    resolve_attribute,
)

Item = dict[str, Any]


def _advanced(state: ItemState, dot: Dot) -> dict[str, int]:
    invariant(dot.hlc > state.ctx.get(dot.region, 0),
              "a local write's dot must be newer than every dot of its own region")
    ctx = dict(state.ctx)
    ctx[dot.region] = dot.hlc
    return ctx


def _shown(value: Any) -> Any:
    if value is not None and value_kind(value) in SET_TYPES:
        return canonical_set(value)
    return value


def put(state: ItemState | None, item: Item, key_names: Collection[str],
        dot: Dot) -> tuple[ItemState, Item]:
    """PutItem of `item` (key attributes included) at `dot`: the new state and item."""
    base = state if state is not None else empty_state()
    ctx = _advanced(base, dot)
    attrs: dict[str, AttrState] = {}
    for name, attr in base.attrs.items():
        if attr.ctrs:
            attrs[name] = AttrState({}, {}, raise_floors(attr.ctrs))
    shown: Item = {}
    for name, value in item.items():
        if name in key_names:
            shown[name] = value
            continue
        kept = attrs.get(name)
        attrs[name] = written_attr(value, dot, kept.ctrs if kept is not None else {})
        shown[name] = _shown(value)
    return ItemState(ctx, {dot.region: (dot.hlc, True)}, attrs, {}, {}), ordered_item(shown)


def delete(state: ItemState | None, dot: Dot) -> ItemState:
    """DeleteItem at `dot`: the new state (the item no longer exists)."""
    base = state if state is not None else empty_state()
    ctx = _advanced(base, dot)
    attrs = {name: AttrState({}, {}, raise_floors(attr.ctrs))
             for name, attr in base.attrs.items() if attr.ctrs}
    return ItemState(ctx, {dot.region: (dot.hlc, False)}, attrs, {}, {})


def update(state: ItemState | None, item: Item | None, writes: Sequence[AttributeWrite],
           dot: Dot, key: Item) -> tuple[ItemState, Item]:
    """UpdateItem at `dot`: `item` is the current visible item (None: none), `writes` one
    per touched top-level attribute (atoll.expressions.attrwrites), `key` the key
    attributes. Returns the new state and the new visible item."""
    base = state if state is not None else empty_state()
    ctx = _advanced(base, dot)
    gstar = greatest_gen(base)
    attrs = dict(base.attrs)
    shown: Item = dict(item) if item is not None else dict(key)
    dotted = False  # an entry carries `dot` (ops[dot] may be needed)
    counted = False  # an increment added a contribution
    for write in writes:
        invariant(write.name not in key, "an UpdateItem cannot write a key attribute")
        old = attrs.get(write.name, EMPTY_ATTR)
        new_attr, value = _apply(base, gstar, old, write, dot)
        if write.kind == INCREMENT and value != write.value:
            # The counter showed a clamped sum (view.py): the client was told the value
            # computed from what it saw, so this increment resets the counter to it.
            new_attr, value = _assign(old, write.value, dot)
        dotted = dotted or _carries(new_attr, dot)
        counted = counted or (write.kind == INCREMENT and new_attr != old)
        if new_attr.empty():
            attrs.pop(write.name, None)
        else:
            attrs[write.name] = new_attr
        if value is None:
            shown.pop(write.name, None)
        else:
            shown[write.name] = value
    marks = base.marks
    if not dotted and not counted:  # nothing of its own would keep the item existing
        marks = {dot.region: dot.hlc}  # replaces the markers it saw
        dotted = True
    ops = base.ops
    seen = {region: hlc for region, (hlc, _exists) in base.gens.items() if region != dot.region}
    if dotted and seen:
        ops = dict(ops)
        ops[dot] = seen
    return (ItemState(ctx, base.gens, attrs, prune_ops(ops, attrs, marks), marks),
            ordered_item(shown))


def _carries(attr: AttrState, dot: Dot) -> bool:
    """Whether an entry of `attr` was written at `dot`."""
    entry = attr.regs.get(dot.region)
    if entry is not None and entry[0] == dot.hlc:
        return True
    for holders in attr.sets.values():
        if holders.get(dot.region) == dot.hlc:
            return True
    return False


def _apply(state: ItemState, gstar: Dot | None, old: AttrState, write: AttributeWrite,
           dot: Dot) -> tuple[AttrState, Any]:
    """One attribute write on `old` (an attribute of `state`): the attribute afterwards
    and its visible value."""
    kind = write.kind
    if kind == SET or kind == REMOVE:
        return _assign(old, write.value if kind == SET else None, dot)
    if kind == INCREMENT:
        invariant(write.operand is not None and "N" in write.operand, "an increment is a number")
        delta = COUNTER_CONTEXT.create_decimal(write.operand["N"])  # type: ignore[index]
        attr = old if not delta else AttrState(old.regs, old.sets,
                                               _incremented(old.ctrs, dot.region, delta))
        return attr, attribute_value(state, gstar, attr)
    invariant(kind == ADD_ELEMENTS or kind == DELETE_ELEMENTS, f"unknown write kind {kind!r}")
    return _edit_members(state, gstar, old, write, dot)


def _assign(old: AttrState, value: Any, dot: Dot) -> tuple[AttrState, Any]:
    return written_attr(value, dot, raise_floors(old.ctrs)), _shown(value)


def _incremented(ctrs: dict[str, Counter], region: str, delta: Decimal) -> dict[str, Counter]:
    p, n, fp, fn = ctrs.get(region, (ZERO, ZERO, ZERO, ZERO))
    if delta > 0:
        p = COUNTER_CONTEXT.add(p, delta)
    else:
        n = COUNTER_CONTEXT.subtract(n, delta)
    result = dict(ctrs)
    result[region] = (p, n, fp, fn)
    return result


def _edit_members(state: ItemState, gstar: Dot | None, old: AttrState, write: AttributeWrite,
                  dot: Dot) -> tuple[AttrState, Any]:
    """ADD or DELETE of set members: the visible members keep their dots, everything
    hidden goes (observed), added members get the single dot `dot`."""
    operand = write.operand
    invariant(operand is not None and value_kind(operand) in SET_TYPES, "a set operand")
    kind = value_kind(operand)  # type: ignore[arg-type]
    view = resolve_attribute(state, gstar, old)
    sets: dict[ElementKey, dict[str, int]] = {}
    if view.source == "set":
        for key, holders in old.sets.items():
            if key[0] == view.set_kind and _visible_member(state, gstar, holders):
                sets[key] = holders
    members = [element_key(kind, member) for member in operand[kind]]  # type: ignore[index]
    if write.kind == ADD_ELEMENTS:
        for member in members:
            sets[(kind, member)] = {dot.region: dot.hlc}
    else:
        for member in members:
            sets.pop((kind, member), None)
    attr = AttrState({}, sets, raise_floors(old.ctrs))
    if not sets:
        return attr, None
    shown_kind = view.set_kind if view.source == "set" and write.kind == DELETE_ELEMENTS \
        else kind
    return attr, {shown_kind: sorted_members(shown_kind, [m for (_k, m) in sets])}


def _visible_member(state: ItemState, gstar: Dot | None, holders: dict[str, int]) -> bool:
    for region, hlc in holders.items():
        if admitted(state, gstar, hlc, region):
            return True
    return False


def unfolded_regions(state: ItemState, live: Collection[str]) -> list[str]:
    """The regions outside `live` (regions that left the topology) holding a counter
    contribution that still adds something (p > fp or n > fn), sorted."""
    found: set[str] = set()
    for attr in state.attrs.values():
        for region, (p, n, fp, fn) in attr.ctrs.items():
            if region not in live and (p > fp or n > fn):
                found.add(region)
    return sorted(found)


def fold_region(state: ItemState, item: Item | None, departed: str, dot: Dot,
                key: Item) -> tuple[ItemState, Item | None]:
    """`fold_regions` of one region."""
    return fold_regions(state, item, (departed,), dot, key)


def fold_regions(state: ItemState, item: Item | None, departed: Collection[str], dot: Dot,
                 key: Item) -> tuple[ItemState, Item | None]:
    """A write at `dot` that folds the counter contributions of `departed` (regions that
    left the topology) into each attribute's value: the value becomes a new entry
    holding the old value plus those contributions, and their floors rise to their sums,
    so nothing visible changes. A contribution that is hidden (a non-number value won)
    only has its floors raised. Made by one live region (the lowest-named:
    atoll.replication.fold). The floors, not a removal, are what make the fold commute
    with copies of the state that have not seen it: a copy's contribution joins under
    the raised floors (max), so it adds only increments the fold had not seen."""
    ctx = _advanced(state, dot)
    gstar = greatest_gen(state)
    attrs = dict(state.attrs)
    dotted = False
    for name, attr in state.attrs.items():
        ctrs = dict(attr.ctrs)
        own = ZERO
        for region in departed:
            contribution = attr.ctrs.get(region)
            if contribution is None:
                continue
            p, n, fp, fn = contribution
            if p == fp and n == fn:
                continue
            ctrs[region] = (p, n, p, n)
            own = COUNTER_CONTEXT.add(own, COUNTER_CONTEXT.subtract(
                COUNTER_CONTEXT.subtract(p, fp), COUNTER_CONTEXT.subtract(n, fn)))
        if ctrs == attr.ctrs:
            continue
        view = resolve_attribute(state, gstar, attr)
        base = ZERO
        if view.source == "reg" and view.reg_value is not None and "N" in view.reg_value:
            base = COUNTER_CONTEXT.create_decimal(view.reg_value["N"])
        folded = COUNTER_CONTEXT.add(base, own)
        if view.source in ("reg", "counter") and view.value is not None \
                and "N" in view.value and in_range(folded):
            attrs[name] = AttrState({dot.region: (dot.hlc, {"N": dynamodb_number(folded)})},
                                    {}, ctrs)
            dotted = True
        else:
            attrs[name] = AttrState(attr.regs, attr.sets, ctrs)
    ops = state.ops
    seen = {region: hlc for region, (hlc, _e) in state.gens.items() if region != dot.region}
    if dotted and seen:
        ops = dict(ops)
        ops[dot] = seen
    folded_state = ItemState(ctx, state.gens, attrs, prune_ops(ops, attrs, state.marks),
                             state.marks)
    return folded_state, materialize(folded_state, key) if item is not None else None


def migrate(item: Item | None, version: Dot, prev: Dot | None,
            key_names: Collection[str]) -> ItemState:
    """The state of a row stored before per-item state existed (or of a version-1
    change): one whole-item write at `version` that observed `prev` (what it
    overwrote). Writes older than that, which the old row did not record, count as
    concurrent with it, which is the last-writer-wins rule those rows were made under."""
    ctx = {version.region: version.hlc}
    if prev is not None and prev.hlc > ctx.get(prev.region, 0):
        ctx[prev.region] = prev.hlc
    if item is None:
        return ItemState(ctx, {version.region: (version.hlc, False)}, {}, {}, {})
    attrs = {name: written_attr(value, version, {}) for name, value in item.items()
             if name not in key_names}
    return ItemState(ctx, {version.region: (version.hlc, True)}, attrs, {}, {})


def row_form(state: ItemState) -> tuple[Dot, Dot | None] | None:
    """(version, prev) when `state` is exactly `migrate(item, version, prev)` of its own
    visible item — one whole-item write with its own entries, no counters, ops or
    markers, and a context of at most two regions — else None. A row in this form
    needs no state stored: its version and prev columns rebuild it."""
    if len(state.gens) != 1 or state.ops or state.marks or len(state.ctx) > 2:
        return None
    for region, (hlc, exists) in state.gens.items():
        if state.ctx[region] != hlc or (not exists and state.attrs):
            return None
        for attr in state.attrs.values():
            if not _own_entry(attr, region, hlc):
                return None
        version = Dot(hlc, region)
        for other, other_hlc in state.ctx.items():
            if other != region:
                return version, Dot(other_hlc, other)
        return version, None
    return None


def _own_entry(attr: AttrState, region: str, hlc: int) -> bool:
    if attr.ctrs:
        return False
    if attr.regs:
        entry = attr.regs.get(region)
        return not attr.sets and len(attr.regs) == 1 and entry is not None \
            and entry[0] == hlc and entry[1] is not None
    if not attr.sets:
        return False
    kinds = {key[0] for key in attr.sets}
    return len(kinds) == 1 and all(holders == {region: hlc} for holders in attr.sets.values())
