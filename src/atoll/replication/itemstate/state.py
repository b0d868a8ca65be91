"""The causal state of one item: dots, the causal context, and what each attribute holds.

Theory of operation (the package docstring has the whole picture): a write's identity is
its dot `Dot(hlc, region)`. A state records every dot of the item it has seen in `ctx`
(max hlc per region: exact, because a change always ships the writer's whole state, so a
state that saw a region's dot saw all its earlier dots of the item) and holds *dotted
entries* — whole-item writes (`gens`), attribute values (`AttrState.regs`), set members
(`AttrState.sets`) and existence markers (`marks`) — each at most one per region and
key, plus counter contributions (`AttrState.ctrs`), which are not dotted but max-joined.

Objects here are immutable by convention: operations build new dicts and new objects
and share the untouched ones, so a state read from storage can be kept and reused.
"""

from __future__ import annotations

import base64
import binascii
import decimal
from decimal import Decimal
from typing import Any, Final, NamedTuple

from atoll.model.numbers import normalize_number


class Dot(NamedTuple):
    """A write's identity; ordered as (hlc, region), DynamoDB global tables' order."""

    hlc: int
    region: str


Counter = tuple[Decimal, Decimal, Decimal, Decimal]
"""A region's contribution to a counter: (p, n, fp, fn) — the cumulative sums of its
positive and of its negated negative increments, and the floors a reset observed."""

ElementKey = tuple[str, str]
"""A set member: (set type "SS"/"NS"/"BS", canonical member text)."""

SET_TYPES: Final = frozenset(("SS", "NS", "BS"))

# Counter sums are exact: contributions are sums of DynamoDB numbers (38 digits,
# 1E-130 <= |x| < 1E+126); 400 digits hold any sum of up to 1E+140 of them exactly, and
# `Inexact` is trapped so a rounding can never pass silently.
COUNTER_CONTEXT: Final = decimal.Context(
    prec=400, Emax=999_999, Emin=-999_999,
    traps=[decimal.InvalidOperation, decimal.Inexact, decimal.Overflow, decimal.DivisionByZero])
ZERO: Final = Decimal(0)


class AttrState:
    """What one top-level attribute holds.

    regs  {region: (hlc, value | None)}  whole-value writes; None: removed
    sets  {element: {region: hlc}}       add-wins set members and the dots that added them
    ctrs  {region: (p, n, fp, fn)}       counter contributions
    """

    __slots__ = ("regs", "sets", "ctrs")

    def __init__(self, regs: dict[str, tuple[int, Any]],
                 sets: dict[ElementKey, dict[str, int]],
                 ctrs: dict[str, Counter]) -> None:
        self.regs = regs
        self.sets = sets
        self.ctrs = ctrs

    def empty(self) -> bool:
        return not self.regs and not self.sets and not self.ctrs

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, AttrState) and self.regs == other.regs
                and self.sets == other.sets and self.ctrs == other.ctrs)

    def __repr__(self) -> str:
        return f"AttrState(regs={self.regs!r}, sets={self.sets!r}, ctrs={self.ctrs!r})"


EMPTY_ATTR: Final = AttrState({}, {}, {})


class ItemState:
    """The causal state of one item (key attributes excluded; they never change).

    ctx    {region: hlc}              every dot of the item this state has seen
    gens   {region: (hlc, exists)}    whole-item writes (PutItem True, DeleteItem False)
                                      not yet removed by a write that observed them
    attrs  {name: AttrState}          per top-level attribute
    ops    {dot: {region: hlc}}       for an UpdateItem whose entries are still held: the
                                      gens of OTHER regions its writer held (what it
                                      observed of whole-item writes); absent when none
    marks  {region: hlc}              existence markers: an UpdateItem that left the item
                                      without non-key attributes still made it exist
    """

    __slots__ = ("ctx", "gens", "attrs", "ops", "marks")

    def __init__(self, ctx: dict[str, int], gens: dict[str, tuple[int, bool]],
                 attrs: dict[str, AttrState], ops: dict[Dot, dict[str, int]],
                 marks: dict[str, int]) -> None:
        self.ctx = ctx
        self.gens = gens
        self.attrs = attrs
        self.ops = ops
        self.marks = marks

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, ItemState) and self.ctx == other.ctx
                and self.gens == other.gens and self.attrs == other.attrs
                and self.ops == other.ops and self.marks == other.marks)

    def __repr__(self) -> str:
        return (f"ItemState(ctx={self.ctx!r}, gens={self.gens!r}, attrs={self.attrs!r}, "
                f"ops={self.ops!r}, marks={self.marks!r})")


def empty_state() -> ItemState:
    """The state of an item nobody has written."""
    return ItemState({}, {}, {}, {}, {})


def ordered_item(item: dict[str, Any]) -> dict[str, Any]:
    """`item` with its attributes in name order (the same dict when already so). The
    items materialize, put, update (and its fast path) and apply_stored return are in
    this order, so regions holding equal states hold items equal in order too, however
    each reached them (a region's own writes edit the item in place; a join
    materializes it afresh). Stored bytes are key-sorted JSON whatever the order; this
    makes the in-memory items (ReturnValues, Streams images) agree as well. put_stored
    returns a put's request item as is when its sets are canonical (the engine then
    keeps the bytes and index plan it made)."""
    previous = ""
    for index, name in enumerate(item):
        if index and name <= previous:
            return dict(sorted(item.items()))
        previous = name
    return item


def greatest_gen(state: ItemState) -> Dot | None:
    """g*: the greatest whole-item write by (hlc, region), or None."""
    best: Dot | None = None
    for region, (hlc, _exists) in state.gens.items():
        dot = Dot(hlc, region)
        if best is None or dot > best:
            best = dot
    return best


def admitted(state: ItemState, gstar: Dot | None, hlc: int, region: str) -> bool:
    """Whether the entry written at (hlc, region) counts beside the greatest whole-item
    write g*: always without one; an entry of g* itself, or newer than g* by (hlc,
    region), or written by an UpdateItem that had observed g*, does; an older entry
    concurrent with g* was replaced by it. (A region's own later writes are newer.)"""
    if gstar is None:
        return True
    if hlc > gstar.hlc or (hlc == gstar.hlc and region >= gstar.region):
        return True
    if not state.ops:
        return False
    seen = state.ops.get(Dot(hlc, region))
    return seen is not None and seen.get(gstar.region, 0) >= gstar.hlc


def written_attr(value: Any, dot: Dot, ctrs: dict[str, Counter]) -> AttrState:
    """The attribute holding `value` (None: removed) written at `dot`: a set value as
    members (so a concurrent ADD of a member merges with them), anything else as one
    value entry."""
    if value is not None:
        kind = value_kind(value)
        if kind in SET_TYPES:
            sets = {(kind, element_key(kind, member)): {dot.region: dot.hlc}
                    for member in value[kind]}
            return AttrState({}, sets, ctrs)
    return AttrState({dot.region: (dot.hlc, value)}, {}, ctrs)


def latest_dot(state: ItemState) -> Dot:
    """The greatest dot the state has seen by (hlc, region): the version summary a row
    keeps in its columns for ordering and verify."""
    best = Dot(0, "")
    for region, hlc in state.ctx.items():
        dot = Dot(hlc, region)
        if dot > best:
            best = dot
    return best


def referenced_dots(attrs: dict[str, AttrState], marks: dict[str, int]) -> set[Dot]:
    """Every dot an entry still carries (ops are kept only for these)."""
    dots: set[Dot] = {Dot(hlc, region) for region, hlc in marks.items()}
    for attr in attrs.values():
        for region, (hlc, _value) in attr.regs.items():
            dots.add(Dot(hlc, region))
        for holders in attr.sets.values():
            for region, hlc in holders.items():
                dots.add(Dot(hlc, region))
    return dots


def prune_ops(ops: dict[Dot, dict[str, int]], attrs: dict[str, AttrState],
              marks: dict[str, int]) -> dict[Dot, dict[str, int]]:
    """`ops` restricted to the dots entries still carry."""
    if not ops:
        return ops
    live = referenced_dots(attrs, marks)
    return {dot: seen for dot, seen in ops.items() if dot in live}


# ---- set members ----------------------------------------------------------------------

def element_key(kind: str, member: Any) -> str:
    """A set member's canonical text: the string itself, the canonical number, or the
    standard padded base64 of the bytes (equal members, equal text)."""
    if kind == "NS":
        return normalize_number(member)
    if kind == "BS":
        raw = base64.b64decode(member, validate=True)
        return base64.b64encode(raw).decode("ascii")
    return str(member)


def canonical_base64(text: str) -> bool:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return base64.b64encode(raw).decode("ascii") == text


def sorted_members(kind: str, members: list[str]) -> list[str]:
    """Canonical member texts in the order a materialized set lists them: strings by
    code point, numbers by value, binaries by their bytes."""
    if kind == "NS":
        return sorted(members, key=COUNTER_CONTEXT.create_decimal)
    if kind == "BS":
        return sorted(members, key=base64.b64decode)
    return sorted(members)


def canonical_set(value: dict[str, Any]) -> dict[str, Any]:
    """A set value as a materialized item shows it (canonical members, sorted)."""
    for kind, members in value.items():
        keys = [element_key(kind, member) for member in members]
        ordered = sorted_members(kind, keys)
        if ordered == members:
            return value
        return {kind: ordered}
    return value


def value_kind(value: Any) -> str:
    for kind in value:
        return str(kind)
    return ""


# ---- counters -------------------------------------------------------------------------

def counter_live(ctrs: dict[str, Counter]) -> bool:
    for p, n, fp, fn in ctrs.values():
        if p > fp or n > fn:
            return True
    return False


def counter_delta(ctrs: dict[str, Counter]) -> Decimal:
    """Σ (p - fp) - (n - fn), exactly."""
    total = ZERO
    for contribution in ctrs.values():
        total = COUNTER_CONTEXT.add(total, contribution_net(contribution))
    return total


def contribution_net(contribution: Counter) -> Decimal:
    """(p - fp) - (n - fn): what a region's contribution adds now, exactly."""
    p, n, fp, fn = contribution
    return COUNTER_CONTEXT.subtract(COUNTER_CONTEXT.subtract(p, fp),
                                    COUNTER_CONTEXT.subtract(n, fn))


def raise_floors(ctrs: dict[str, Counter]) -> dict[str, Counter]:
    """Every contribution reset at what it is now (a reset observed all of them)."""
    if not ctrs:
        return ctrs
    return {region: (p, n, p, n) for region, (p, n, _fp, _fn) in ctrs.items()}


def counter_text(value: Decimal) -> str:
    """Exact canonical text of a non-negative counter sum (plain notation)."""
    if not value:
        return "0"
    text = plain_text(value)
    if text:
        return text
    return format(value.normalize(COUNTER_CONTEXT), "f")


def plain_text(value: Decimal) -> str:
    """The canonical text of a non-zero `value` when str() already writes it in plain
    notation with at most 38 digits (then it is inside DynamoDB's range too: str() uses
    plain notation only for exponents <= 0 and magnitudes >= 1E-6); else ""."""
    text = str(value)
    if "E" in text:
        return ""
    if "." in text:
        text = text.rstrip("0").rstrip(".")
        if len(text) > 40:
            return ""
    elif len(text) > 39:
        return ""
    if len(text) - (text[0] == "-") - ("." in text) > 38:
        return ""
    return text
