"""The write path's common case on the stored bytes: a region updating its own item.

Theory of operation: most UpdateItems are made in the region that made the item's last
whole-item write (or on an item no put made), by one region at a time. Then the new
state differs from the old only in the context and in the written attributes: the
writer observed no other region's whole-item write, so no op is recorded, and no other
attribute's entries change. `update_fast` makes exactly that edit on the stored JSON
document (codec.py), without building the state: SET/REMOVE replace the attribute's
document, INCREMENT rewrites the writer's counter figures, ADD/DELETE of members edit
the member map; then the base dot is chosen again and the document is dumped.

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
    """The parsed old document: context, gens, listed attributes, base dot, g*."""

    __slots__ = ("ctx", "gens", "attrs", "base", "gstar")

    def __init__(self, ctx: dict[str, int], gens: list[Any], attrs: Doc, base: Dot | None,
                 gstar: Dot | None) -> None:
        self.ctx = ctx
        self.gens = gens
        self.attrs = attrs
        self.base = base
        self.gstar = gstar


def update_fast(data: bytes | None, version: tuple[int, str], prev: tuple[int, str] | None,
                old_item: Item | None, writes: Sequence[AttributeWrite], dot: Dot, key: Item
                ) -> tuple[bytes, Dot, Item] | None:
    """`update_stored` for the common case on a row's stored form (`data`, `version`,
    `prev` as (hlc, region) pairs; `data` None: no row): the new state bytes, the
    greatest dot they have seen and the visible item; or None (see the module
    docstring)."""
    parsed = _parse(data, version, prev, old_item, dot.region)
    if parsed is None:
        return None
    if dot.hlc <= parsed.ctx.get(dot.region, 0):  # invariant() called only when it fails
        invariant(False, "a local write's dot must be newer than every dot of its own region")
    old_shown: Item = old_item if old_item is not None else {}
    shown: Item = dict(old_item) if old_item is not None else dict(key)
    attrs = parsed.attrs  # parsed afresh for this write: edited in place
    own = False  # the update leaves an entry or a contribution of its own
    # whether every write kept its attribute listed and out of base form (an increment
    # of a listed counter, typically): then the base dot and the layout stay as they were
    layout_kept = True
    names: set[str] = set()
    for write in writes:
        name = write.name
        if name in key or name in names:
            return None  # a key attribute, or a second write of one attribute
        names.add(name)
        old_doc = attrs.get(name)
        old_value = old_shown.get(name)
        doc = _written(parsed, old_doc, old_value, write, dot)
        if doc is None:
            return None
        attr_doc, value = doc
        if attr_doc:
            attrs[name] = attr_doc
            own = own or write.kind != DELETE_ELEMENTS
        else:
            attrs.pop(name, None)
        if layout_kept:
            layout_kept = (old_doc is not None and bool(attr_doc)
                           and _eligible(old_doc, old_value) is None
                           and _eligible(attr_doc, value) is None)
        if value is None:
            shown.pop(name, None)
        else:
            shown[name] = value
    if not own:
        return None  # the general path adds an existence marker
    ctx = parsed.ctx
    ctx[dot.region] = dot.hlc
    out: Doc = {"c": ctx}
    if parsed.gens:
        out["g"] = parsed.gens
    base = parsed.base if layout_kept else _layout(attrs, shown, key, parsed.base)
    if attrs:
        out["a"] = attrs
    if base is not None and base != parsed.gstar:
        out["b"] = [base.hlc, base.region]
    return (orjson.dumps(out, option=orjson.OPT_SORT_KEYS), _latest(ctx),
            ordered_item(shown))


def _latest(ctx: dict[str, int]) -> Dot:
    """The greatest dot of a context by (hlc, region) (one Dot built, not one each)."""
    best_hlc, best_region = 0, ""
    for region, hlc in ctx.items():
        if hlc > best_hlc or (hlc == best_hlc and region > best_region):
            best_hlc, best_region = hlc, region
    return Dot(best_hlc, best_region)


def _parse(data: bytes | None, version: tuple[int, str], prev: tuple[int, str] | None,
           old_item: Item | None, region: str) -> _Old | None:
    if data is None:
        return _Old({}, [], {}, None, None)
    if not data:  # row form: one whole-item write with its own entries
        hlc, origin = version
        if origin != region:
            return None
        ctx = {origin: hlc}
        if prev is not None and prev[0] > ctx.get(prev[1], 0):
            ctx[prev[1]] = prev[0]
        gens = [[hlc, origin, 0 if old_item is None else 1]]
        written = Dot(hlc, origin)
        return _Old(ctx, gens, {}, written if old_item is not None else None, written)
    doc = orjson.loads(data)
    if "o" in doc or "x" in doc:
        return None
    gens = doc.get("g", [])
    gstar: Dot | None = None
    if gens:
        if len(gens) > 1 or gens[0][1] != region:
            return None
        gstar = Dot(gens[0][0], gens[0][1])
    raw_base = doc.get("b")
    base = Dot(raw_base[0], raw_base[1]) if raw_base is not None else gstar
    return _Old(doc["c"], gens, doc.get("a", {}), base, gstar)


def _written(old: _Old, attr: Doc | None, value: Any, write: AttributeWrite,
             dot: Dot) -> tuple[Doc, Any] | None:
    """The attribute's new document and visible value, or None (the general path)."""
    kind = write.kind
    if kind == SET or kind == REMOVE:
        return _assigned(attr, write.value if kind == SET else None, dot)
    if kind == INCREMENT:
        return _incremented(old, attr, value, write, dot)
    if kind == ADD_ELEMENTS or kind == DELETE_ELEMENTS:
        return _members_edited(old, attr, value, write, dot)
    return None


def _assigned(attr: Doc | None, value: Any, dot: Dot) -> tuple[Doc, Any]:
    doc: Doc
    shown = value
    if value is not None and value_kind(value) in SET_TYPES:
        kind = value_kind(value)
        doc = {"s": {kind: {element_key(kind, m): [[dot.hlc, dot.region]]
                            for m in value[kind]}}}
        shown = canonical_set(value)
    else:
        doc = {"r": [[dot.hlc, dot.region]]}  # the value is the item's: elided
    if attr is not None and "n" in attr:
        doc["n"] = {region: _raised(figures) for region, figures in attr["n"].items()}
    return doc, shown


def _raised(figures: list[str]) -> list[str]:
    p = figures[0]
    n = figures[1] if len(figures) > 1 else "0"
    return _trimmed([p, n, p, n])


def _trimmed(figures: list[str]) -> list[str]:
    while figures and figures[-1] == "0":
        figures.pop()
    return figures


def _admitted(hlc: int, region: str, gstar: Dot | None) -> bool:
    """Admission with no ops held (the fast path's case)."""
    return gstar is None or hlc > gstar.hlc or (hlc == gstar.hlc and region >= gstar.region)


def _incremented(old: _Old, attr: Doc | None, value: Any, write: AttributeWrite,
                 dot: Dot) -> tuple[Doc, Any] | None:
    operand = write.operand
    if operand is None or "N" not in operand:
        return None
    delta_text: str = operand["N"]
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
            if old.base is None:
                return None
            regs = [[old.base.hlc, old.base.region, value]]
        else:
            regs = []
        figures = {}
    else:
        if "s" in attr:
            return None
        regs = [entry if len(entry) == 3 else [entry[0], entry[1], value]
                for entry in attr.get("r", ())]
        figures = dict(attr.get("n", {}))
    best: list[Any] | None = None
    for entry in regs:
        if _admitted(entry[0], entry[1], old.gstar) and (
                best is None or (entry[0], entry[1]) > (best[0], best[1])):
            best = entry
    base_text = "0"
    if best is not None and best[2] is not None:
        if "N" not in best[2]:
            return None
        base_text = best[2]["N"]
    mine = figures.get(dot.region, ["0"])
    padded = mine + ["0"] * (4 - len(mine))
    summed = None if small_delta is None else _int_sums(base_text, figures, padded,
                                                         dot.region, small_delta)
    if summed is None:
        summed = _decimal_sums(base_text, figures, padded, dot.region, delta_text)
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


def _int_sums(base_text: str, figures: dict[str, list[str]], padded: list[str],
              region: str, delta: int) -> str | None:
    """`_decimal_sums` on small integers (None: some figure is not one)."""
    total = _small_int(base_text)
    p = _small_int(padded[0])
    n = _small_int(padded[1])
    if total is None or p is None or n is None:
        return None
    nets: list[int] = []
    for other, region_figures in figures.items():
        if other != region:
            net = _int_net(region_figures)
            if net is None:
                return None
            nets.append(net)
    floor_p, floor_n = _small_int(padded[2]), _small_int(padded[3])
    if floor_p is None or floor_n is None:
        return None
    if delta > 0:
        p += delta
    else:
        n -= delta
    figures[region] = _trimmed([str(p), str(n), padded[2], padded[3]])
    total += (p - floor_p) - (n - floor_n)
    for net in nets:
        total += net
    return str(total)


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
                    dot: Dot) -> tuple[Doc, Any] | None:
    operand = write.operand
    if operand is None or value_kind(operand) not in SET_TYPES:
        return None
    kind = value_kind(operand)
    members: dict[str, list[list[Any]]]
    if attr is None:
        if value is not None:  # base form: the item's members, each with the base dot
            if old.base is None or value_kind(value) != kind:
                return None
            members = {m: [[old.base.hlc, old.base.region]] for m in value[kind]}
        else:
            members = {}
    else:
        if "r" in attr or "n" in attr or set(attr.get("s", {})) != {kind}:
            return None
        members = dict(attr["s"][kind])
        for holders in members.values():
            for hlc, region in holders:
                if not _admitted(hlc, region, old.gstar):
                    return None  # hidden members: the general path drops them
    for member in operand[kind]:
        key = element_key(kind, member)
        if write.kind == ADD_ELEMENTS:
            members[key] = [[dot.hlc, dot.region]]
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
    if value is None or len(doc) != 1:
        return None
    regs = doc.get("r")
    if regs is not None:
        if len(regs) == 1 and len(regs[0]) == 2:
            return Dot(regs[0][0], regs[0][1])
        return None
    sets = doc.get("s")
    kind = value_kind(value)
    if sets is None or len(sets) != 1 or kind not in sets:
        return None
    members = sets[kind]
    if len(members) != len(value[kind]):
        return None
    found: Dot | None = None
    for member in value[kind]:
        holders = members.get(member)
        if holders is None or len(holders) != 1:
            return None
        holder = Dot(holders[0][0], holders[0][1])
        if found is None:
            found = holder
        elif holder != found:
            return None
    return found


def _listed(value: Any, dot: Dot) -> Doc:
    kind = value_kind(value)
    if kind in SET_TYPES:
        return {"s": {kind: {m: [[dot.hlc, dot.region]] for m in value[kind]}}}
    return {"r": [[dot.hlc, dot.region]]}
