"""The write path's common case on the stored bytes: a region updating its own item.

Theory of operation: most UpdateItems are made in the region that made the item's last
whole-item write (or on an item no put made), by one region at a time. Then the new
state differs from the old only in the context and in the written attributes: the
writer observed no other region's whole-item write, so no op is recorded, and no other
attribute's entries change. `update_fast` makes exactly that edit on the stored JSON
document (codec.py), without building the state: SET/REMOVE replace the attribute's
document, INCREMENT rewrites the writer's counter figures, ADD/DELETE of members edit
the member map; then the base dot is chosen again — unless the writes cannot have
changed the choice (`_layout_kept`: the bench's updates of listed attributes beside a
put's) — and the document is dumped. No Dot is built on the way but for the state's
latest dot when it is not the write's own (a NamedTuple's constructor runs
interpreted even in the compiled build).

It answers None — the caller takes the general path (load, `update`, store) — whenever
the case is not that one: another region's gen or an op or a marker is held, a counter
sum is clamped, members are hidden or of another type, the update leaves no entry of its
own, ... A property test holds both paths byte-identical on reachable states.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Final

import orjson

from atoll.invariant import invariant
from atoll.model.writes import (
    ADD_ELEMENTS,
    DELETE_ELEMENTS,
    INCREMENT,
    REMOVE,
    SET,
    AttributeWrite,
)
from atoll.replication.itemstate.codec import best_base
from atoll.replication.itemstate.state import (
    COUNTER_CONTEXT,
    SET_TYPES,
    ZERO,
    Dot,
    canonical_set,
    counter_text,
    element_key,
    ordered_item,
    sorted_members,
    value_kind,
)
from atoll.replication.itemstate.view import dynamodb_number

Item = dict[str, Any]
Doc = dict[str, Any]


class _Old:
    """The parsed old document: context, gens, listed attributes, and the base dot and
    g* as (hlc, region) fields (region "": none; region names are never empty), so
    that no Dot is built for them."""

    __slots__ = ("ctx", "gens", "attrs", "base_hlc", "base_region", "gstar_hlc",
                 "gstar_region")

    def __init__(self, ctx: dict[str, int], gens: list[Any], attrs: Doc, base_hlc: int,
                 base_region: str, gstar_hlc: int, gstar_region: str) -> None:
        self.ctx = ctx
        self.gens = gens
        self.attrs = attrs
        self.base_hlc = base_hlc
        self.base_region = base_region
        self.gstar_hlc = gstar_hlc
        self.gstar_region = gstar_region

    def base(self) -> Dot | None:
        return Dot(self.base_hlc, self.base_region) if self.base_region else None


def update_fast(data: bytes | None, version: tuple[int, str], prev: tuple[int, str] | None,
                old_item: Item | None, writes: Sequence[AttributeWrite], dot: Dot, key: Item,
                relayout: bool = False) -> tuple[bytes, Dot, Item] | None:
    """`update_stored` for the common case on a row's stored form (`data`, `version`,
    `prev` as (hlc, region) pairs; `data` None: no row): the new state bytes, the
    greatest dot they have seen and the visible item; or None (see the module
    docstring). `relayout=True` always chooses the layout again (`_layout`), which the
    shortcut `_layout_kept` must match (a property test)."""
    hlc, region = dot.hlc, dot.region
    parsed = _parse(data, version, prev, old_item, region)
    if parsed is None:
        return None
    if hlc <= parsed.ctx.get(region, 0):  # invariant() called only when it fails
        invariant(False, "a local write's dot must be newer than every dot of its own region")
    old_shown: Item = old_item if old_item is not None else {}
    shown: Item = dict(old_item) if old_item is not None else dict(key)
    attrs = parsed.attrs  # parsed afresh for this write: edited in place
    own = False  # the update leaves an entry or a contribution of its own
    # The layout (base dot, which attributes are in base form) stays as it was unless a
    # write takes an attribute out of the base form or leaves one eligible for a dot
    # other than this write's; then `_layout` chooses again (see `_layout_kept`).
    moved = False
    mine = 0  # written attributes now eligible for the base form with this write's dot
    names: set[str] = set()
    for write in writes:
        name = write.name
        if name in key or name in names:
            return None  # a key attribute, or a second write of one attribute
        names.add(name)
        old_doc = attrs.get(name)
        old_value = old_shown.get(name)
        doc = _written(parsed, old_doc, old_value, write, hlc, region)
        if doc is None:
            return None
        attr_doc, value = doc
        if old_doc is None and old_value is not None:
            moved = True  # it was in base form
        if attr_doc:
            attrs[name] = attr_doc
            own = own or write.kind != DELETE_ELEMENTS
            if not moved:
                found, found_hlc, found_region = _eligible_for(attr_doc, value)
                if found:
                    if found_hlc == hlc and found_region == region:
                        mine += 1
                    else:
                        moved = True
        else:
            attrs.pop(name, None)
        if value is None:
            shown.pop(name, None)
        else:
            shown[name] = value
    if not own:
        return None  # the general path adds an existence marker
    ctx = parsed.ctx
    ctx[region] = hlc
    out: Doc = {"c": ctx}
    if parsed.gens:
        out["g"] = parsed.gens
    base_hlc, base_region = parsed.base_hlc, parsed.base_region
    if relayout or moved or not _layout_kept(parsed, mine, old_shown, names, key, hlc, region):
        base = _layout(attrs, shown, key, parsed.base())
        base_hlc, base_region = (0, "") if base is None else (base.hlc, base.region)
    if attrs:
        out["a"] = attrs
    if base_region and (base_hlc != parsed.gstar_hlc or base_region != parsed.gstar_region):
        out["b"] = [base_hlc, base_region]
    return (orjson.dumps(out, option=orjson.OPT_SORT_KEYS), _latest(ctx, dot),
            ordered_item(shown))


def _layout_kept(old: _Old, mine: int, old_shown: Item, written: set[str], key: Item,
                 hlc: int, region: str) -> bool:
    """Whether `_layout` would keep the old base dot and move nothing, given that no
    write took an attribute out of the base form and every written attribute is either
    ineligible or eligible for this write's dot (`mine` of them).

    Exact, because the stored layout was chosen by the same rule: every attribute
    eligible for the old base B is in base form (so no listed one is), no write changed
    an unwritten attribute, and a written one can now count only for the new dot. So
    B's count is unchanged, every other old dot's count can only have fallen, and the
    only new rival is this write's dot with `mine` attributes: B stays iff it has more,
    or as many and is older (`best_base`'s tie rule). Without a base (no attribute was
    eligible for any dot) the layout stays iff no written attribute is eligible."""
    if not mine:
        return True
    if not old.base_region:
        return False
    in_base = 0
    for name in old_shown:
        if name not in old.attrs and name not in key and name not in written:
            in_base += 1
    if in_base != mine:
        return in_base > mine
    return (old.base_hlc, old.base_region) < (hlc, region)


def _latest(ctx: dict[str, int], dot: Dot) -> Dot:
    """The greatest dot of a context by (hlc, region): usually the write's own `dot`,
    returned as it is (else one Dot built, not one per region)."""
    best_hlc, best_region = 0, ""
    for region, hlc in ctx.items():
        if hlc > best_hlc or (hlc == best_hlc and region > best_region):
            best_hlc, best_region = hlc, region
    if best_hlc == dot.hlc and best_region == dot.region:
        return dot
    return Dot(best_hlc, best_region)


def _parse(data: bytes | None, version: tuple[int, str], prev: tuple[int, str] | None,
           old_item: Item | None, region: str) -> _Old | None:
    if data is None:
        return _Old({}, [], {}, 0, "", 0, "")
    if not data:  # row form: one whole-item write with its own entries
        hlc, origin = version
        if origin != region:
            return None
        ctx = {origin: hlc}
        if prev is not None and prev[0] > ctx.get(prev[1], 0):
            ctx[prev[1]] = prev[0]
        gens = [[hlc, origin, 0 if old_item is None else 1]]
        if old_item is None:
            return _Old(ctx, gens, {}, 0, "", hlc, origin)
        return _Old(ctx, gens, {}, hlc, origin, hlc, origin)
    doc = orjson.loads(data)
    if "o" in doc or "x" in doc:
        return None
    raw_gens: list[Any] | None = doc.get("g")  # typed: compiled code checks the type
    gstar_hlc, gstar_region = 0, ""
    if raw_gens is None:
        raw_gens = []
    elif raw_gens:
        if len(raw_gens) > 1:
            return None
        gen = raw_gens[0]
        gstar_region = gen[1]
        if gstar_region != region:
            return None
        gstar_hlc = gen[0]
    raw_base = doc.get("b")
    attrs = doc.get("a")
    if attrs is None:
        attrs = {}
    if raw_base is not None:
        return _Old(doc["c"], raw_gens, attrs, raw_base[0], raw_base[1], gstar_hlc,
                    gstar_region)
    return _Old(doc["c"], raw_gens, attrs, gstar_hlc, gstar_region, gstar_hlc, gstar_region)


def _written(old: _Old, attr: Doc | None, value: Any, write: AttributeWrite,
             hlc: int, region: str) -> tuple[Doc, Any] | None:
    """The attribute's new document and visible value, or None (the general path)."""
    kind = write.kind
    if kind == SET or kind == REMOVE:
        return _assigned(attr, write.value if kind == SET else None, hlc, region)
    if kind == INCREMENT:
        return _incremented(old, attr, value, write, hlc, region)
    if kind == ADD_ELEMENTS or kind == DELETE_ELEMENTS:
        return _members_edited(old, attr, value, write, hlc, region)
    return None


def _assigned(attr: Doc | None, value: Any, hlc: int, region: str) -> tuple[Doc, Any]:
    doc: Doc
    shown = value
    if value is not None and value_kind(value) in SET_TYPES:
        kind = value_kind(value)
        doc = {"s": {kind: {element_key(kind, m): [[hlc, region]] for m in value[kind]}}}
        shown = canonical_set(value)
    else:
        doc = {"r": [[hlc, region]]}  # the value is the item's: elided
    if attr is not None:
        counters = attr.get("n")
        if counters is not None:
            doc["n"] = {other: _raised(figures) for other, figures in counters.items()}
    return doc, shown


def _raised(figures: list[str]) -> list[str]:
    p = figures[0]
    n = figures[1] if len(figures) > 1 else "0"
    return _trimmed([p, n, p, n])


def _trimmed(figures: list[str]) -> list[str]:
    while figures and figures[-1] == "0":
        figures.pop()
    return figures


def _admitted(old: _Old, hlc: int, region: str) -> bool:
    """Admission with no ops held (the fast path's case)."""
    gstar_hlc = old.gstar_hlc
    return (not old.gstar_region or hlc > gstar_hlc
            or (hlc == gstar_hlc and region >= old.gstar_region))


def _incremented(old: _Old, attr: Doc | None, value: Any, write: AttributeWrite,
                 hlc: int, region: str) -> tuple[Doc, Any] | None:
    operand = write.operand
    if operand is None:
        return None
    delta_text: str | None = operand.get("N")
    if delta_text is None:
        return None
    small_delta = _small_int(delta_text)
    if small_delta is not None:
        if not small_delta:
            return None
    elif not COUNTER_CONTEXT.create_decimal(delta_text):
        return None
    regs: list[list[Any]]
    figures: dict[str, list[str]]
    if attr is None:
        if value is not None:  # base form: the base write's value
            if not old.base_region:
                return None
            regs = [[old.base_hlc, old.base_region, value]]
        else:
            regs = []
        figures = {}
    else:
        if "s" in attr:
            return None
        raw_regs: list[list[Any]] | None = attr.get("r")
        regs = [] if raw_regs is None else [
            entry if len(entry) == 3 else [entry[0], entry[1], value] for entry in raw_regs]
        raw_figures: dict[str, list[str]] | None = attr.get("n")
        # the document was parsed for this write alone: its figures are edited in place
        figures = raw_figures if raw_figures is not None else {}
    best: list[Any] | None = None
    for entry in regs:
        if _admitted(old, entry[0], entry[1]) and (
                best is None or (entry[0], entry[1]) > (best[0], best[1])):
            best = entry
    base_text = "0"
    if best is not None and best[2] is not None:
        best_value: dict[str, Any] = best[2]
        if "N" not in best_value:
            return None
        base_text = best_value["N"]
    summed = None if small_delta is None else _int_sums(base_text, figures, region,
                                                         small_delta)
    if summed is None:
        mine = figures.get(region, ["0"])
        padded = mine + ["0"] * (4 - len(mine))
        summed = _decimal_sums(base_text, figures, padded, region, delta_text)
    shown = {"N": summed}
    if shown != write.value:
        return None  # a clamped sum: the general path resets the counter
    doc: Doc = {"n": figures}
    if regs:
        doc["r"] = [[h, r] if v == shown else [h, r, v] for h, r, v in regs]
    return doc, shown


# Integer counters (the common case) are summed with Python ints: the same figures and
# text as the exact Decimal sums below whenever every figure, the operand and the base
# value are integers of at most 18 digits (sums of up to 64 of them stay far inside
# DynamoDB's 38 digits, so nothing is clamped or rounded). The property tests hold both
# against the general path byte for byte.
_SMALL_INT_DIGITS: Final = 18


def _small_int(text: str) -> int | None:
    """The value of `text` when it is a plain integer of at most 18 digits, else None."""
    digits = text[1:] if text[:1] == "-" else text
    if 0 < len(digits) <= _SMALL_INT_DIGITS and digits.isascii() and digits.isdigit():
        return int(text)
    return None


def _int_sums(base_text: str, figures: dict[str, list[str]], region: str,
              delta: int) -> str | None:
    """`_decimal_sums` on small integers (None, with `figures` untouched: some figure
    is not one)."""
    total = _small_int(base_text)
    if total is None:
        return None
    p = n = 0
    floors: list[str] = []
    for other, region_figures in figures.items():
        if other == region:
            count = len(region_figures)
            first = _small_int(region_figures[0]) if count else 0
            second = _small_int(region_figures[1]) if count > 1 else 0
            if first is None or second is None:
                return None
            p, n = first, second
            floors = region_figures[2:]
            for text in floors:
                if _small_int(text) is None:
                    return None
        else:
            net = _int_net(region_figures)
            if net is None:
                return None
            total += net
    if delta > 0:
        p += delta
    else:
        n -= delta
    floor_p = int(floors[0]) if floors else 0
    floor_n = int(floors[1]) if len(floors) > 1 else 0
    if floors:
        figures[region] = [str(p), str(n), *floors] if len(floors) > 1 else _trimmed(
            [str(p), str(n), floors[0]])
    else:
        figures[region] = [str(p), str(n)] if n else [str(p)]
    return str(total + (p - floor_p) - (n - floor_n))


def _int_net(figures: list[str]) -> int | None:
    """(p - fp) - (n - fn) of a region's stored figures, when all are small integers."""
    net = 0
    for index, text in enumerate(figures):
        value = _small_int(text)
        if value is None:
            return None
        net += value if index == 0 or index == 3 else -value  # p - n - fp + fn
    return net


def _decimal_sums(base_text: str, figures: dict[str, list[str]], padded: list[str],
                  region: str, delta_text: str) -> str:
    """Add the increment to this region's figures (in `figures`) and return the
    counter's visible text: the base value plus every region's net, exactly."""
    delta = COUNTER_CONTEXT.create_decimal(delta_text)
    total = COUNTER_CONTEXT.create_decimal(base_text)
    p, n = (COUNTER_CONTEXT.create_decimal(padded[0]),
            COUNTER_CONTEXT.create_decimal(padded[1]))
    if delta > 0:
        p = COUNTER_CONTEXT.add(p, delta)
    else:
        n = COUNTER_CONTEXT.subtract(n, delta)
    figures[region] = _trimmed([counter_text(p), counter_text(n), padded[2], padded[3]])
    for region_figures in figures.values():
        total = COUNTER_CONTEXT.add(total, _net(region_figures))
    return dynamodb_number(total)


def _net(figures: list[str]) -> Decimal:
    """(p - fp) - (n - fn) of a region's stored figures."""
    values = [COUNTER_CONTEXT.create_decimal(text) for text in figures]
    while len(values) < 4:
        values.append(ZERO)
    return COUNTER_CONTEXT.subtract(COUNTER_CONTEXT.subtract(values[0], values[2]),
                                    COUNTER_CONTEXT.subtract(values[1], values[3]))


def _members_edited(old: _Old, attr: Doc | None, value: Any, write: AttributeWrite,
                    hlc: int, region: str) -> tuple[Doc, Any] | None:
    operand = write.operand
    if operand is None or value_kind(operand) not in SET_TYPES:
        return None
    kind = value_kind(operand)
    members: dict[str, list[list[Any]]]
    if attr is None:
        if value is not None:  # base form: the item's members, each with the base dot
            if not old.base_region or value_kind(value) != kind:
                return None
            members = {m: [[old.base_hlc, old.base_region]] for m in value[kind]}
        else:
            members = {}
    else:
        if "r" in attr or "n" in attr or set(attr.get("s", {})) != {kind}:
            return None
        members = dict(attr["s"][kind])
        for holders in members.values():
            for holder_hlc, holder_region in holders:
                if not _admitted(old, holder_hlc, holder_region):
                    return None  # hidden members: the general path drops them
    for member in operand[kind]:
        key = element_key(kind, member)
        if write.kind == ADD_ELEMENTS:
            members[key] = [[hlc, region]]
        else:
            members.pop(key, None)
    if not members:
        return {}, None
    return {"s": {kind: members}}, {kind: sorted_members(kind, list(members))}


def _layout(attrs: Doc, shown: Item, key: Item, old_base: Dot | None) -> Dot | None:
    """Choose the base dot again (codec.py's rule) and move attributes between the
    listed and the base form accordingly; return the base dot."""
    eligible: dict[Dot, list[str]] = {}
    in_base = [name for name in shown if name not in attrs and name not in key]
    if in_base:
        if old_base is None:
            invariant(False, "attributes in base form have a base dot")
        eligible[old_base] = list(in_base)  # type: ignore[index]
    for name, doc in attrs.items():
        found = _eligible(doc, shown.get(name))
        if found is not None:
            eligible.setdefault(found, []).append(name)
    if not eligible:
        return None
    best = best_base(eligible)
    if best != old_base:
        for name in in_base:  # leave the base form: listed with the old base dot
            attrs[name] = _listed(shown[name], old_base)  # type: ignore[arg-type]
    for name in eligible[best]:
        attrs.pop(name, None)
    return best


def _eligible(doc: Doc, value: Any) -> Dot | None:
    """The dot an attribute's document could be in base form for (see codec.py)."""
    found, hlc, region = _eligible_for(doc, value)
    return Dot(hlc, region) if found else None


def _eligible_for(doc: Doc, value: Any) -> tuple[bool, int, str]:
    """`_eligible` as (whether there is such a dot, its hlc, its region): no Dot built."""
    if value is None or len(doc) != 1:
        return False, 0, ""
    regs = doc.get("r")
    if regs is not None:
        if len(regs) == 1 and len(regs[0]) == 2:
            return True, regs[0][0], regs[0][1]
        return False, 0, ""
    sets = doc.get("s")
    kind = value_kind(value)
    if sets is None or len(sets) != 1 or kind not in sets:
        return False, 0, ""
    members = sets[kind]
    if len(members) != len(value[kind]):
        return False, 0, ""
    found = False
    found_hlc, found_region = 0, ""
    for member in value[kind]:
        holders = members.get(member)
        if holders is None or len(holders) != 1:
            return False, 0, ""
        holder_hlc, holder_region = holders[0][0], holders[0][1]
        if not found:
            found, found_hlc, found_region = True, holder_hlc, holder_region
        elif holder_hlc != found_hlc or holder_region != found_region:
            return False, 0, ""
    return found, found_hlc, found_region


def _listed(value: Any, dot: Dot) -> Doc:
    kind = value_kind(value)
    if kind in SET_TYPES:
        return {"s": {kind: {m: [[dot.hlc, dot.region]] for m in value[kind]}}}
    return {"r": [[dot.hlc, dot.region]]}
