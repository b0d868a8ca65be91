"""The visible item: a pure function of the state, the same in every region.

Theory of operation: g* is the greatest whole-item write; an entry counts only when it
is `admitted` beside g* (state.py). For each attribute:
  - r* = the greatest admitted value entry, s* = the greatest admitted set dot;
  - if r* is newer than s* (or there is no s*): r*'s value — a number plus the live
    counter contributions; removed (None): the counter alone when one is live, else
    absent; any other value hides live contributions (a real loss, see conflicts.py);
  - else if s*: the members of s*'s set type that have an admitted dot, sorted
    (`sorted_members`); members of another set type are hidden;
  - else the counter alone when a contribution is live.
The item exists iff g* is a put, or some admitted entry or live counter is held: an
UpdateItem is an upsert, so even its removal of the last attribute, applied on top of a
concurrent older delete, leaves the item existing. The key attributes come from the
caller.

Numbers: a counter's value is summed exactly. DynamoDB could never hold a sum outside
its range, but concurrent increments can produce one (two regions each adding 6E+125);
the item then shows the exact sum rounded half-even to 38 significant digits, with a
magnitude of 1E+126 or more shown as ±9.9999999999999999999999999999999999999E+125 and
a magnitude under 1E-130 as 0. The state keeps the exact sum, so later increments that
bring it back into range show it exactly again; `update` turns a local increment on a
clamped counter into a reset to the value the client was told.
"""

from __future__ import annotations

import decimal
from decimal import Decimal
from typing import Any, Final

from atoll.replication.itemstate.state import (
    COUNTER_CONTEXT,
    AttrState,
    Dot,
    ItemState,
    admitted,
    counter_delta,
    counter_live,
    greatest_gen,
    ordered_item,
    plain_text,
    sorted_members,
)

Item = dict[str, Any]

_MAX_DIGITS: Final = 38
_MAX_ADJUSTED: Final = 125
_MIN_ADJUSTED: Final = -130
ROUND_38: Final = decimal.Context(prec=_MAX_DIGITS, rounding=decimal.ROUND_HALF_EVEN,
                                   Emax=999_999, Emin=-999_999,
                                   traps=[decimal.InvalidOperation])
_LARGEST: Final = Decimal("9.9999999999999999999999999999999999999E+125")


def dynamodb_number(value: Decimal) -> str:
    """The text DynamoDB would hold for `value`, clamped into its range as described in
    the module docstring (exact and canonical whenever `value` is representable)."""
    if not value:
        return "0"
    text = plain_text(value)
    if text:
        return text
    exact = value.normalize(COUNTER_CONTEXT)
    adjusted = exact.adjusted()
    if (len(exact.as_tuple().digits) <= _MAX_DIGITS
            and _MIN_ADJUSTED <= adjusted <= _MAX_ADJUSTED):
        return format(exact, "f")
    rounded = ROUND_38.plus(exact)
    adjusted = rounded.adjusted()
    if adjusted > _MAX_ADJUSTED:
        rounded = _LARGEST.copy_sign(exact)
    elif adjusted < _MIN_ADJUSTED:
        return "0"
    return format(rounded.normalize(ROUND_38), "f")


def in_range(value: Decimal) -> bool:
    """Whether DynamoDB can hold `value` exactly (no clamping or rounding)."""
    if not value:
        return True
    exact = value.normalize(COUNTER_CONTEXT)
    return (len(exact.as_tuple().digits) <= _MAX_DIGITS
            and _MIN_ADJUSTED <= exact.adjusted() <= _MAX_ADJUSTED)


class AttrView:
    """How one attribute resolved: its visible value and what decided it."""

    __slots__ = ("value", "reg_best", "reg_value", "set_best", "set_kind", "live", "source")

    def __init__(self, value: Any, reg_best: Dot | None, reg_value: Any,
                 set_best: Dot | None, set_kind: str, live: bool, source: str) -> None:
        self.value = value  # the visible value, or None (absent)
        self.reg_best = reg_best  # r*
        self.reg_value = reg_value
        self.set_best = set_best  # s*
        self.set_kind = set_kind  # s*'s set type
        self.live = live  # a counter contribution is live
        self.source = source  # "reg", "set", "counter" or "" (absent): what decided it


def resolve_attribute(state: ItemState, gstar: Dot | None, attr: AttrState) -> AttrView:
    """The attribute's visible value and the entries that decided it."""
    reg_best: Dot | None = None
    reg_value: Any = None
    for region, (hlc, value) in attr.regs.items():
        if admitted(state, gstar, hlc, region):
            dot = Dot(hlc, region)
            if reg_best is None or dot > reg_best:
                reg_best, reg_value = dot, value
    set_best: Dot | None = None
    set_kind = ""
    for (kind, _member), holders in attr.sets.items():
        for region, hlc in holders.items():
            if admitted(state, gstar, hlc, region):
                dot = Dot(hlc, region)
                if set_best is None or dot > set_best:
                    set_best, set_kind = dot, kind
    live = bool(attr.ctrs) and counter_live(attr.ctrs)
    if reg_best is not None and (set_best is None or reg_best > set_best):
        if reg_value is None:
            value = _counter_only(attr) if live else None
            return AttrView(value, reg_best, None, set_best, set_kind, live,
                            "counter" if live else "")
        if live and "N" in reg_value:
            total = COUNTER_CONTEXT.add(COUNTER_CONTEXT.create_decimal(reg_value["N"]),
                                        counter_delta(attr.ctrs))
            reg_shown: Any = {"N": dynamodb_number(total)}
        else:
            reg_shown = reg_value
        return AttrView(reg_shown, reg_best, reg_value, set_best, set_kind, live, "reg")
    if set_best is not None:
        members = [member for (kind, member), holders in attr.sets.items()
                   if kind == set_kind and _any_admitted(state, gstar, holders)]
        return AttrView({set_kind: sorted_members(set_kind, members)}, reg_best, reg_value,
                        set_best, set_kind, live, "set")
    if live:
        return AttrView(_counter_only(attr), reg_best, reg_value, None, "", True, "counter")
    return AttrView(None, reg_best, reg_value, None, "", False, "")


def _counter_only(attr: AttrState) -> dict[str, Any]:
    return {"N": dynamodb_number(counter_delta(attr.ctrs))}


def _any_admitted(state: ItemState, gstar: Dot | None, holders: dict[str, int]) -> bool:
    for region, hlc in holders.items():
        if admitted(state, gstar, hlc, region):
            return True
    return False


def attribute_value(state: ItemState, gstar: Dot | None, attr: AttrState) -> Any:
    """The attribute's visible value, or None when absent."""
    if not attr.sets and not attr.ctrs and len(attr.regs) == 1:
        for region, (hlc, value) in attr.regs.items():  # the usual case: one writer
            return value if admitted(state, gstar, hlc, region) else None
    return resolve_attribute(state, gstar, attr).value


def exists_without_attributes(state: ItemState, gstar: Dot | None) -> bool:
    """Whether the item exists even with no non-key attribute present: g* is a put, or
    an UpdateItem (an upsert) left an admitted entry — a removal, a hidden value or
    member, an existence marker — or a live counter contribution."""
    if gstar is not None and state.gens[gstar.region][1]:
        return True
    for region, hlc in state.marks.items():
        if admitted(state, gstar, hlc, region):
            return True
    for attr in state.attrs.values():
        if attr.ctrs and counter_live(attr.ctrs):
            return True
        for region, (hlc, _value) in attr.regs.items():
            if admitted(state, gstar, hlc, region):
                return True
        for holders in attr.sets.values():
            if _any_admitted(state, gstar, holders):
                return True
    return False


def materialize(state: ItemState, key: Item) -> Item | None:
    """The item a client sees (`key` holds the key attributes), or None: no item
    (never written, deleted, or every write hidden)."""
    gstar = greatest_gen(state)
    item = dict(key)
    present = False
    for name, attr in state.attrs.items():
        value = attribute_value(state, gstar, attr)
        if value is not None:
            item[name] = value
            present = True
    if present or exists_without_attributes(state, gstar):
        return ordered_item(item)
    return None


def exact_counter_value(state: ItemState, gstar: Dot | None, attr: AttrState) -> Decimal | None:
    """The exact (unclamped) number an attribute shows, when it is a counted number."""
    view = resolve_attribute(state, gstar, attr)
    if view.source == "counter":
        return counter_delta(attr.ctrs)
    if view.source == "reg" and type(view.reg_value) is dict and "N" in view.reg_value:
        base = COUNTER_CONTEXT.create_decimal(view.reg_value["N"])
        if view.live:
            return COUNTER_CONTEXT.add(base, counter_delta(attr.ctrs))
        return base
    return None
