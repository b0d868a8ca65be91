"""The canonical bytes of an item state, stored and shipped beside its visible item.

Theory of operation: a state is always kept next to the item it materializes to (the
row's item bytes; the item of a change's write), so its encoding leaves out what the
item already says:
  - *base form*: the attributes written by one write and untouched since — a put's
    attributes, typically — are not listed at all. The base dot is the dot that the most
    attributes are eligible for (ties: the older dot); an attribute is eligible when
    its whole state is one entry of that dot holding exactly the item's value (for a
    set: exactly the item's members, each with that single dot) and no counter.
  - *elided values*: a listed value entry equal to the item's value of the attribute
    (absent counts as equal to a removal) is written as [hlc, region] without it.
So a put's state is its context and its gen, `{"c":{"us-east":H},"g":[[H,"us-east",1]]}`,
and an update adds [hlc, region] per attribute it wrote.

Layout (orjson, keys sorted, no whitespace; optional members are omitted when empty):

    state := {"a": {name: attr}, "b": dot, "c": {region: hlc}, "g": [gen, ...],
              "o": [[hlc, region, {region: hlc}], ...], "x": [dot, ...]}
    attr  := {"n": {region: [p, n, fp, fn]}, "r": [[hlc, region] | [hlc, region, value
              | null], ...], "s": {"SS"|"NS"|"BS": {member: [dot, ...]}}}
    gen   := [hlc, region, 1 | 0]       dot := [hlc, region]

"c" is the context; "g" the whole-item writes (1: put, 0: delete); "a" the listed
attributes; "b" the base dot, written only when it is not g*'s dot; "o" the ops
(an update's observed gens of other regions); "x" the existence markers. Lists of dots
are sorted by (hlc, region). Counter figures are exact non-negative decimals in plain
notation, trailing zero figures dropped ([p] when n, fp and fn are 0).

`decode_state` refuses (BadChange) bytes that are not valid JSON of this shape, break a
state invariant (an entry the context has not seen, two entries of one region for one
key, a floor above its sum, an op no entry carries, ...), exceed the bounds
(`MAX_STATE_BYTES`, `MAX_REGIONS`) or are not byte-identical to the canonical
re-encoding: two regions can never hold different bytes for the same state.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from decimal import Decimal
from typing import Any, Final

import orjson

from atoll.errors import AtollError
from atoll.invariant import invariant
from atoll.model.values import ALL_TYPES, check_value
from atoll.replication.errors import BadChange
from atoll.replication.itemstate.state import (
    COUNTER_CONTEXT,
    SET_TYPES,
    ZERO,
    AttrState,
    Counter,
    Dot,
    ElementKey,
    ItemState,
    canonical_base64,
    counter_text,
    element_key,
    greatest_gen,
    referenced_dots,
    value_kind,
    written_attr,
)
from atoll.replication.itemstate.view import materialize

Item = dict[str, Any]

MAX_STATE_BYTES: Final = 4 * 1024 * 1024
"""A state holds at most one value per region per attribute next to a <= 400 KB item."""
MAX_REGIONS: Final = 64
MAX_REGION_CHARS: Final = 64
MAX_HLC: Final = (1 << 63) - 1
_MAX_COUNTER_CHARS: Final = 320
_COUNTER_RE: Final = re.compile(r"(?:0|[1-9][0-9]*)(?:\.[0-9]*[1-9])?\Z", re.ASCII)
_STATE_FIELDS: Final = frozenset(("a", "b", "c", "g", "o", "x"))
_ATTR_FIELDS: Final = frozenset(("n", "r", "s"))


# ---- encoding -------------------------------------------------------------------------

def encode_state(state: ItemState, item: Item | None, key_names: Collection[str]) -> bytes:
    """The canonical bytes of `state`, whose visible item is `item` (None: no item)."""
    shown: Item = item if item is not None else {}
    gstar = greatest_gen(state)
    base, base_names = _base(state, shown, key_names)
    doc: dict[str, Any] = {"c": state.ctx}
    attrs = {name: _attr_doc(attr, shown.get(name)) for name, attr in state.attrs.items()
             if name not in base_names}
    if attrs:
        doc["a"] = attrs
    if base is not None and base != gstar:
        doc["b"] = [base.hlc, base.region]
    if state.gens:
        doc["g"] = sorted([hlc, region, 1 if exists else 0]
                          for region, (hlc, exists) in state.gens.items())
    if state.ops:
        doc["o"] = [[dot.hlc, dot.region, seen] for dot, seen in sorted(state.ops.items())]
    if state.marks:
        doc["x"] = _dots(state.marks)
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def _base(state: ItemState, shown: Item, key_names: Collection[str]
          ) -> tuple[Dot | None, set[str]]:
    """The base dot and the attributes in base form (see the module docstring)."""
    eligible: dict[Dot, list[str]] = {}
    for name, attr in state.attrs.items():
        value = shown.get(name)
        if value is None or name in key_names:
            continue
        dot = _eligible_dot(attr, value)
        if dot is not None:
            names = eligible.get(dot)
            if names is None:
                eligible[dot] = [name]
            else:
                names.append(name)
    if not eligible:
        return None, set()
    best = best_base(eligible)
    return best, set(eligible[best])


def best_base(eligible: dict[Dot, list[str]]) -> Dot:
    """The dot the most attributes are eligible for; of equals, the older (so a base
    stays put while single attributes are rewritten one by one)."""
    best: Dot | None = None
    best_count = 0
    for dot, names in eligible.items():
        count = len(names)
        if best is None or count > best_count or (count == best_count and dot < best):
            best, best_count = dot, count
    invariant(best is not None, "a base is chosen among eligible dots")
    return best  # type: ignore[return-value]


def _eligible_dot(attr: AttrState, value: Any) -> Dot | None:
    if attr.ctrs:
        return None
    if attr.regs:
        if attr.sets or len(attr.regs) != 1:
            return None
        for region, (hlc, held) in attr.regs.items():
            return Dot(hlc, region) if held == value else None
    kind = value_kind(value)
    if kind not in SET_TYPES or len(attr.sets) != len(value[kind]):
        return None
    dot: Dot | None = None
    for member in value[kind]:
        holders = attr.sets.get((kind, member))
        if holders is None or len(holders) != 1:
            return None
        for region, hlc in holders.items():
            if dot is None:
                dot = Dot(hlc, region)
            elif dot != (hlc, region):
                return None
    return dot


def _attr_doc(attr: AttrState, shown: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if attr.regs:
        doc["r"] = [[hlc, region] if value == shown else [hlc, region, value]
                    for hlc, region, value in sorted(
                        (hlc, region, value) for region, (hlc, value) in attr.regs.items())]
    if attr.sets:
        by_kind: dict[str, dict[str, list[list[Any]]]] = {}
        for (kind, member), holders in attr.sets.items():
            by_kind.setdefault(kind, {})[member] = _dots(holders)
        doc["s"] = by_kind
    if attr.ctrs:
        doc["n"] = {region: _counter_doc(contribution)
                    for region, contribution in attr.ctrs.items()}
    return doc


def _dots(holders: dict[str, int]) -> list[list[Any]]:
    return [[hlc, region] for hlc, region in sorted((hlc, region)
                                                    for region, hlc in holders.items())]


def _counter_doc(contribution: Counter) -> list[str]:
    figures = [counter_text(figure) for figure in contribution]
    while figures and figures[-1] == "0":
        figures.pop()
    return figures


# ---- decoding -------------------------------------------------------------------------

def decode_state(data: bytes, item: Item | None, key_names: Collection[str], *,
                 trusted: bool = False) -> ItemState:
    """The state in `data`, stored beside its visible item `item`.

    From a peer (`trusted=False`): BadChange unless the bytes are well formed, keep
    every state invariant and bound, and are the canonical encoding. `trusted=True`
    for bytes this node encoded itself and read back from checksummed storage (the
    write path): they are only parsed, which costs a fraction of the checks."""
    if trusted:
        return _trusted_state(orjson.loads(data), item if item is not None else {},
                              key_names)
    if not isinstance(data, bytes) or not data or len(data) > MAX_STATE_BYTES:
        raise BadChange("item state is empty, too large or not bytes")
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise BadChange(f"item state is not JSON: {error}") from None
    shown: Item = item if item is not None else {}
    try:
        state = _state_from_doc(doc, shown, key_names)
    except (TypeError, ValueError, KeyError, ArithmeticError) as error:
        raise BadChange(f"item state is malformed: {error}") from None
    if encode_state(state, item, key_names) != data:
        raise BadChange("item state is not in canonical form")
    return state


def _trusted_state(doc: dict[str, Any], shown: Item, key_names: Collection[str]
                   ) -> ItemState:
    """`_state_from_doc` without its checks, for bytes this node wrote."""
    gens = {region: (hlc, flag == 1) for hlc, region, flag in doc.get("g", ())}
    attrs: dict[str, AttrState] = {}
    raw_attrs: dict[str, Any] | None = doc.get("a")
    if raw_attrs is not None:
        for name, raw in raw_attrs.items():
            value = shown.get(name)
            regs = {entry[1]: (entry[0], value if len(entry) == 2 else entry[2])
                    for entry in raw.get("r", ())}
            sets: dict[ElementKey, dict[str, int]] = {}
            raw_sets: dict[str, Any] | None = raw.get("s")
            if raw_sets is not None:
                for kind, members in raw_sets.items():
                    for member, holders in members.items():
                        sets[(kind, member)] = {region: hlc for hlc, region in holders}
            ctrs: dict[str, Counter] = {}
            raw_ctrs: dict[str, Any] | None = raw.get("n")
            if raw_ctrs is not None:
                for region, figures in raw_ctrs.items():
                    ctrs[region] = counter_from_figures(figures)
            attrs[name] = AttrState(regs, sets, ctrs)
    base: Dot | None = None
    raw_base = doc.get("b")
    if raw_base is not None:
        base = Dot(raw_base[0], raw_base[1])
    else:
        for region, (hlc, _exists) in gens.items():
            if base is None or Dot(hlc, region) > base:
                base = Dot(hlc, region)
    if base is not None:
        for name, value in shown.items():
            if name not in attrs and name not in key_names:
                attrs[name] = written_attr(value, base, {})
    ops = {Dot(hlc, region): seen for hlc, region, seen in doc.get("o", ())}
    marks = {region: hlc for hlc, region in doc.get("x", ())}
    return ItemState(doc["c"], gens, attrs, ops, marks)


def counter_from_figures(figures: list[str]) -> Counter:
    """A counter contribution from its stored figures (trusted: no checks)."""
    values = [COUNTER_CONTEXT.create_decimal(text) for text in figures]
    while len(values) < 4:
        values.append(ZERO)
    return (values[0], values[1], values[2], values[3])


def _state_from_doc(doc: Any, shown: Item, key_names: Collection[str]) -> ItemState:
    if type(doc) is not dict or "c" not in doc or not doc.keys() <= _STATE_FIELDS:
        raise BadChange("item state has the wrong fields")
    ctx = _ctx(doc["c"])
    gens: dict[str, tuple[int, bool]] = {}
    for raw in _list(doc.get("g", []), "gens"):
        if type(raw) is not list or len(raw) != 3 or raw[2] not in (0, 1) \
                or type(raw[2]) is not int:
            raise BadChange("a whole-item write is malformed")
        dot = _seen_dot(raw[:2], ctx)
        _once(gens, dot.region, "whole-item write")
        gens[dot.region] = (dot.hlc, raw[2] == 1)
    attrs: dict[str, AttrState] = {}
    raw_attrs = doc.get("a", {})
    if type(raw_attrs) is not dict or ("a" in doc and not raw_attrs):
        raise BadChange("item state attributes are malformed")
    for name, raw in raw_attrs.items():
        if name in key_names or not name:
            raise BadChange(f"item state lists a key or empty attribute name {name!r}")
        attrs[name] = _attr(raw, ctx, shown.get(name))
    marks = {dot.region: dot.hlc for dot in _dot_list(doc.get("x", []), ctx, "markers")}
    if "x" in doc and not marks:
        raise BadChange("item state markers are empty")
    base = _base_dot(doc, gens, ctx)
    for name, value in shown.items():
        if name not in key_names and name not in attrs:
            if base is None:
                raise BadChange(f"attribute {name!r} has no entry in the item state")
            attrs[name] = written_attr(value, base, {})
    ops = _ops(doc.get("o", []), ctx, attrs, marks)
    if "o" in doc and not ops:
        raise BadChange("item state ops are empty")
    return ItemState(ctx, gens, attrs, ops, marks)


def _ctx(raw: Any) -> dict[str, int]:
    if type(raw) is not dict or not raw or len(raw) > MAX_REGIONS:
        raise BadChange("item state context must name 1..64 regions")
    return {_region(region): _hlc(hlc) for region, hlc in raw.items()}


def _region(raw: Any) -> str:
    if type(raw) is not str or not raw or len(raw) > MAX_REGION_CHARS:
        raise BadChange("a region name in the item state is malformed")
    return raw


def _hlc(raw: Any) -> int:
    if type(raw) is not int or not 1 <= raw <= MAX_HLC:
        raise BadChange("an hlc in the item state is malformed")
    return raw


def _list(raw: Any, what: str) -> list[Any]:
    if type(raw) is not list:
        raise BadChange(f"item state {what} is not a list")
    return raw


def _seen_dot(raw: Any, ctx: dict[str, int]) -> Dot:
    """A dot the context has observed (every entry's dot must be)."""
    if type(raw) is not list or len(raw) != 2:
        raise BadChange("a dot in the item state is malformed")
    dot = Dot(_hlc(raw[0]), _region(raw[1]))
    if dot.hlc > ctx.get(dot.region, 0):
        raise BadChange(f"the item state holds {dot.hlc}/{dot.region} beyond its context")
    return dot


def _dot_list(raw: Any, ctx: dict[str, int], what: str) -> list[Dot]:
    dots = [_seen_dot(entry, ctx) for entry in _list(raw, what)]
    if len({dot.region for dot in dots}) != len(dots):
        raise BadChange(f"item state {what} hold two dots of one region")
    return dots


def _once(entries: dict[str, Any], region: str, what: str) -> None:
    if region in entries:
        raise BadChange(f"item state holds two {what}s of region {region}")


def _attr(raw: Any, ctx: dict[str, int], shown: Any) -> AttrState:
    if type(raw) is not dict or not raw or not raw.keys() <= _ATTR_FIELDS:
        raise BadChange("an attribute of the item state is malformed")
    regs: dict[str, tuple[int, Any]] = {}
    for entry in _list(raw.get("r", []), "values"):
        if type(entry) is not list or len(entry) not in (2, 3):
            raise BadChange("an attribute value entry is malformed")
        dot = _seen_dot(entry[:2], ctx)
        _once(regs, dot.region, "value")
        if len(entry) == 2:  # the item's value (the item was checked where it came from)
            regs[dot.region] = (dot.hlc, shown)
        else:
            value = entry[2]
            regs[dot.region] = (dot.hlc, None if value is None else _checked_value(value))
    sets: dict[ElementKey, dict[str, int]] = {}
    raw_sets = raw.get("s", {})
    if type(raw_sets) is not dict:
        raise BadChange("set members are malformed")
    for kind, members in raw_sets.items():
        if kind not in SET_TYPES or type(members) is not dict or not members:
            raise BadChange("set members are malformed")
        for member, holders in members.items():
            if type(member) is not str or not _canonical_member(kind, member):
                raise BadChange(f"set member {member!r} is not canonical")
            dots = _dot_list(holders, ctx, "set member dots")
            if not dots:
                raise BadChange("a set member has no dot")
            sets[(kind, member)] = {dot.region: dot.hlc for dot in dots}
    ctrs: dict[str, Counter] = {}
    raw_ctrs = raw.get("n", {})
    if type(raw_ctrs) is not dict:
        raise BadChange("counter contributions are malformed")
    for region, figures in raw_ctrs.items():
        if _region(region) not in ctx:
            raise BadChange("a counter contribution of a region the context has not seen")
        ctrs[region] = _counter(figures)
    attr = AttrState(regs, sets, ctrs)
    if attr.empty():
        raise BadChange("an attribute of the item state is empty")
    return attr


def _canonical_member(kind: str, member: str) -> bool:
    if kind == "BS":
        return canonical_base64(member)
    if kind == "NS":
        try:
            return element_key(kind, member) == member
        except AtollError:
            return False
    return True


def _counter(raw: Any) -> Counter:
    if type(raw) is not list or not 1 <= len(raw) <= 4 or raw[-1] == "0":
        raise BadChange("a counter contribution is malformed")
    figures = [_figure(text) for text in raw] + [ZERO] * (4 - len(raw))
    p, n, fp, fn = figures
    if fp > p or fn > n or (not p and not n):
        raise BadChange("a counter contribution's floors exceed its sums")
    return (p, n, fp, fn)


def _figure(text: Any) -> Decimal:
    if type(text) is not str or len(text) > _MAX_COUNTER_CHARS or not _COUNTER_RE.match(text):
        raise BadChange("a counter figure is not a canonical non-negative number")
    return COUNTER_CONTEXT.create_decimal(text)


def _checked_value(value: Any) -> Any:
    """A stored attribute value: a valid DynamoDB value, already normalised (a value
    normalisation would change — a non-canonical or impossible number — is refused)."""
    if type(value) is not dict or len(value) != 1 or value_kind(value) not in ALL_TYPES:
        raise BadChange("an attribute value in the item state is malformed")
    before = orjson.dumps(value)
    try:
        check_value(value)
    except AtollError as error:
        raise BadChange(f"an attribute value in the item state is invalid: {error}") from None
    if orjson.dumps(value) != before:
        raise BadChange("an attribute value in the item state is not normalised")
    return value


def _base_dot(doc: dict[str, Any], gens: dict[str, tuple[int, bool]],
              ctx: dict[str, int]) -> Dot | None:
    if "b" in doc:
        return _seen_dot(doc["b"], ctx)
    best: Dot | None = None
    for region, (hlc, _exists) in gens.items():
        if best is None or Dot(hlc, region) > best:
            best = Dot(hlc, region)
    return best


def _ops(raw: Any, ctx: dict[str, int], attrs: dict[str, AttrState],
         marks: dict[str, int]) -> dict[Dot, dict[str, int]]:
    ops: dict[Dot, dict[str, int]] = {}
    live = referenced_dots(attrs, marks) if raw else set()
    for entry in _list(raw, "ops"):
        if type(entry) is not list or len(entry) != 3 or type(entry[2]) is not dict \
                or not entry[2]:
            raise BadChange("an op of the item state is malformed")
        dot = _seen_dot(entry[:2], ctx)
        if dot in ops or dot not in live:
            raise BadChange("an op of the item state is repeated or carried by no entry")
        seen = {_region(region): _hlc(hlc) for region, hlc in entry[2].items()}
        if dot.region in seen or any(hlc > ctx.get(region, 0) for region, hlc in seen.items()):
            raise BadChange("an op of the item state observed what its context has not")
        ops[dot] = seen
    return ops


def verify_item(state: ItemState, item: Item | None, key: Item) -> None:
    """BadChange unless `item` is what `state` materializes to (`key`: key attributes):
    for a state and item received together from a peer."""
    if materialize(state, key) != item:
        raise BadChange("the item does not match its state")
