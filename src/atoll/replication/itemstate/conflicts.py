"""Conflicts: what a join really lost, with both sides.

Theory of operation: a write that a later write observed is removed from the state (it
was superseded, not lost). What a state still holds but does not show is a *loss*, and
every loss has a concurrent cause:
  - ITEM       a whole-item write that is not g* (a concurrent put/delete won by
               (hlc, region)); its own entries are part of this one record;
  - REPLACED   an attribute write older than a concurrent whole-item write g* that it had
               not observed (the put replaced it);
  - ATTRIBUTE  a value or set members that lost to the concurrent winner of the same
               attribute (last writer wins by (hlc, region); a set against a value; a set
               of another type);
  - COUNTER    live increments of a region hidden because a concurrent non-number value
               won the attribute.
Local writes never create a loss (they observe everything they replace), so losses
appear only in joins. `join_conflicts` reports the losses of the joined state that the
local state did not already hold as losses: each region logs each loss once, the first
time its state holds both sides, and causally ordered writes never produce one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from atoll.replication.itemstate.state import (
    AttrState,
    Dot,
    ItemState,
    admitted,
    contribution_net,
    counter_text,
    greatest_gen,
    sorted_members,
)
from atoll.replication.itemstate.view import AttrView, materialize, resolve_attribute

Item = dict[str, Any]

ITEM: Final = "item"
REPLACED: Final = "replaced"
ATTRIBUTE: Final = "attribute"
COUNTER: Final = "counter"

LossKey = tuple[str, str, int, str, str]


@dataclass(frozen=True, slots=True)
class Conflict:
    """One loss: the loser's write and value, and what won (decision 5).

    kind        ITEM, REPLACED, ATTRIBUTE or COUNTER
    attribute   the attribute ("" for ITEM)
    winner      the winning write: g* for ITEM and REPLACED; the attribute's visible
                value or set entry for ATTRIBUTE and COUNTER (None: no single write, the
                attribute is a counter alone)
    winner_value  the visible item (ITEM) or attribute value (else); None: absent
    loser       the losing write (None for COUNTER: increments have no single write)
    loser_region  the loser's region (for COUNTER, whose increments)
    loser_value   ITEM: the whole-item write's item (None: a delete); REPLACED/ATTRIBUTE:
                  the value it wrote (None: a REMOVE) or the set members it added;
                  COUNTER: {"N": the hidden net increments}
    """

    kind: str
    attribute: str
    winner: Dot | None
    winner_value: Any
    loser: Dot | None
    loser_region: str
    loser_value: Any


def join_conflicts(local: ItemState, joined: ItemState, key: Item) -> list[Conflict]:
    """The losses `joined` holds that `local` (this region's state before the join) did
    not, in a deterministic order. `key`: the item's key attributes."""
    if joined is local:
        return []
    found = losses(joined, key)
    if not found:
        return []
    known = losses(local, key)
    return [found[k] for k in sorted(found) if k not in known]


def losses(state: ItemState, key: Item) -> dict[LossKey, Conflict]:
    """Every loss the state holds, by a key that identifies it across states."""
    gstar = greatest_gen(state)
    out: dict[LossKey, Conflict] = {}
    losing_gens = {Dot(hlc, region) for region, (hlc, _e) in state.gens.items()
                   if gstar is None or Dot(hlc, region) != gstar}
    if losing_gens:
        shown = materialize(state, key)
        for dot in sorted(losing_gens):
            out[(ITEM, "", dot.hlc, dot.region, "")] = Conflict(
                ITEM, "", gstar, shown, dot, dot.region, _gen_image(state, dot, key))
    for name, attr in state.attrs.items():
        if _one_shown_value(state, gstar, attr):
            continue  # the usual shape: nothing lost
        view = resolve_attribute(state, gstar, attr)
        winner = view.set_best if view.source == "set" else view.reg_best
        for region, (hlc, value) in attr.regs.items():
            dot = Dot(hlc, region)
            if dot in losing_gens or (view.source != "set" and dot == view.reg_best):
                continue
            if admitted(state, gstar, hlc, region):
                out[(ATTRIBUTE, name, hlc, region, "")] = Conflict(
                    ATTRIBUTE, name, winner, view.value, dot, region, value)
            else:
                out[(REPLACED, name, hlc, region, "")] = Conflict(
                    REPLACED, name, gstar, view.value, dot, region, value)
        if attr.sets:
            _member_losses(state, gstar, name, attr.sets, view, losing_gens, out)
        if view.live and not _counted(view):
            for region, (p, n, fp, fn) in sorted(attr.ctrs.items()):
                if p > fp or n > fn:
                    net = contribution_net((p, n, fp, fn))
                    shown_net = counter_text(abs(net))
                    out[(COUNTER, name, 0, region, f"{p}/{n}/{fp}/{fn}")] = Conflict(
                        COUNTER, name, winner, view.value, None, region,
                        {"N": shown_net if net >= 0 else "-" + shown_net})
    return out


def _one_shown_value(state: ItemState, gstar: Dot | None, attr: AttrState) -> bool:
    """The attribute holds one admitted value entry and nothing else."""
    if attr.sets or attr.ctrs or len(attr.regs) != 1:
        return False
    for region, (hlc, _value) in attr.regs.items():
        return admitted(state, gstar, hlc, region)
    return False


def _counted(view: AttrView) -> bool:
    if view.source == "counter":
        return True
    return view.source == "reg" and type(view.reg_value) is dict and "N" in view.reg_value


def _member_losses(state: ItemState, gstar: Dot | None, name: str,
                   sets: dict[tuple[str, str], dict[str, int]], view: AttrView,
                   losing_gens: set[Dot], out: dict[LossKey, Conflict]) -> None:
    """Set members not shown, grouped by the write that added them."""
    lost: dict[Dot, tuple[str, list[str], bool]] = {}
    for (kind, member), holders in sets.items():
        if view.source == "set" and kind == view.set_kind and any(
                admitted(state, gstar, hlc, region) for region, hlc in holders.items()):
            continue  # shown
        for region, hlc in holders.items():
            dot = Dot(hlc, region)
            if dot in losing_gens:
                continue
            entry = lost.get(dot)
            if entry is None:
                entry = (kind, [], admitted(state, gstar, hlc, region))
                lost[dot] = entry
            entry[1].append(member)
    winner = view.set_best if view.source == "set" else view.reg_best
    for dot, (kind, members, is_admitted) in lost.items():
        value = {kind: sorted_members(kind, members)}
        if is_admitted:
            out[(ATTRIBUTE, name, dot.hlc, dot.region, "")] = Conflict(
                ATTRIBUTE, name, winner, view.value, dot, dot.region, value)
        else:
            out[(REPLACED, name, dot.hlc, dot.region, "")] = Conflict(
                REPLACED, name, gstar, view.value, dot, dot.region, value)


def _gen_image(state: ItemState, dot: Dot, key: Item) -> Item | None:
    """What a whole-item write wrote (its own entries), or None for a delete."""
    if not state.gens[dot.region][1]:
        return None
    image = dict(key)
    for name, attr in state.attrs.items():
        entry = attr.regs.get(dot.region)
        if entry is not None and entry[0] == dot.hlc and entry[1] is not None:
            image[name] = entry[1]
            continue
        for (kind, _m), holders in attr.sets.items():
            if holders.get(dot.region) == dot.hlc:
                members = [m for (k, m), h in attr.sets.items()
                           if k == kind and h.get(dot.region) == dot.hlc]
                image[name] = {kind: sorted_members(kind, members)}
                break
    return image
