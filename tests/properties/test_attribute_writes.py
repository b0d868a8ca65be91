"""UpdateItem as per-attribute writes: applied to the old item's state in isolation, the
writes give exactly the item the expression evaluator computed (what the client sees),
for random UpdateExpressions and legacy AttributeUpdates, on fresh states and on
reachable multi-region states that hold hidden entries, counters and concurrent gens."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atoll import expressions as ex
from atoll.errors import ValidationError
from atoll.expressions import legacy
from atoll.expressions.attrwrites import attribute_writes
from atoll.model.values import check_item
from atoll.model.writes import INCREMENT
from atoll.replication.itemstate import Dot, ItemState, materialize, put, update
from tests.itemstate_world import KEY, KEY_NAMES, World, canonical_item, skews, steps

fuzz = settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))

NUMBERS = ("0", "1", "-2.5", "12345678901234567890", "1E+3", "-0.001")
scalar_values = st.one_of(
    st.sampled_from(NUMBERS).map(lambda text: {"N": text}),
    st.sampled_from(("p", "q", "")).map(lambda text: {"S": text}),
    st.just({"BOOL": True}), st.just({"NULL": True}), st.just({"B": "AAE="}),
)
set_values = st.one_of(
    st.lists(st.sampled_from(("e", "f", "g")), min_size=1, max_size=3, unique=True).map(
        lambda members: {"SS": members}),
    st.lists(st.sampled_from(("1", "2.5", "-3")), min_size=1, max_size=3, unique=True).map(
        lambda members: {"NS": members}),
    st.lists(st.sampled_from(("AQ==", "Ag==", "QR==")), min_size=1, max_size=2,
             unique=True).map(lambda members: {"BS": members}),
)
values = st.one_of(
    scalar_values, set_values,
    st.lists(scalar_values, max_size=3).map(lambda inner: {"L": inner}),
    st.dictionaries(st.sampled_from(("x", "y")), scalar_values, max_size=2).map(
        lambda inner: {"M": inner}),
)
NAMES = ("x", "y", "n", "s", "m", "l")
ss_values = st.lists(st.sampled_from(("e", "f", "g")), min_size=1, max_size=3,
                     unique=True).map(lambda members: {"SS": members})
# Mostly each name's natural type (so counters and sets are updated), sometimes anything.
old_items = st.fixed_dictionaries({}, optional={
    "x": values, "y": values,
    "n": st.one_of(st.sampled_from(NUMBERS).map(lambda text: {"N": text}), values),
    "s": st.one_of(ss_values, ss_values, set_values, values),
    "m": st.dictionaries(st.sampled_from(("x", "y")), scalar_values, max_size=2).map(
        lambda inner: {"M": inner}),
    "l": st.lists(scalar_values, max_size=3).map(lambda inner: {"L": inner}),
})

PATHS = ("x", "y", "n", "n", "s", "s", "m", "l", "m.x", "m.y", "l[0]", "l[2]", "#h")
RHS = (":v", ":d", "n", "x", "{p} + :d", ":d + {p}", "{p} - :d", "if_not_exists({p}, :v)",
       "if_not_exists({p}, :zero) + :d", ":d - {p}", "list_append(l, :list)",
       "list_append(:list, {p})", "{p} + {p}")


# Counter and set updates, which random texts rarely make valid.
FOCUSED = ("ADD s :ss", "DELETE s :ss", "ADD n :d", "SET n = n + :d", "SET n = n - :d",
           "DELETE s :ss ADD n :d", "DELETE s :ss SET x = :v", "ADD s :ss REMOVE x",
           "SET n = if_not_exists(n, :zero) + :d", "SET n = :d + n, x = :v")


@st.composite
def random_update_texts(draw: st.DrawFn) -> str:
    clauses: dict[str, list[str]] = {}
    for _ in range(draw(st.integers(1, 4))):
        verb = draw(st.sampled_from(("SET", "SET", "REMOVE", "ADD", "DELETE")))
        path = draw(st.sampled_from(PATHS))
        if verb == "SET":
            action = f"{path} = " + draw(st.sampled_from(RHS)).format(p=path)
        elif verb == "REMOVE":
            action = path
        else:
            action = f"{path} " + draw(st.sampled_from((":d", ":ss", ":v")))
        clauses.setdefault(verb, []).append(action)
    return " ".join(f"{verb} {', '.join(actions)}" for verb, actions in clauses.items())


def update_texts() -> st.SearchStrategy[str]:
    return st.one_of(random_update_texts(), st.sampled_from(FOCUSED))


request_values = st.fixed_dictionaries({
    ":v": values, ":d": st.sampled_from(NUMBERS).map(lambda text: {"N": text}),
    ":zero": st.just({"N": "0"}), ":ss": st.one_of(ss_values, ss_values, set_values),
    ":list": st.lists(scalar_values, max_size=2).map(lambda inner: {"L": inner}),
})


def normalised(item: dict[str, Any]) -> dict[str, Any] | None:
    try:
        check_item(item)
    except ValidationError:
        return None
    return item


def check_update(state: ItemState | None, old: dict[str, Any] | None, parsed: Any,
                 names: dict[str, str], used: dict[str, Any], dot: Dot) -> list[Any]:
    """Evaluate, classify, apply; assert the state shows what the evaluator computed."""
    base = copy.deepcopy(old) if old is not None else dict(KEY)
    try:
        new, _paths = ex.apply_update(parsed, base, names, used, item_exists=old is not None)
        check_item(new)
    except ValidationError:
        return []
    writes = attribute_writes(parsed, names, used, old, new)
    after, shown = update(state, old, writes, dot, KEY)
    assert shown == canonical_item(new), (writes, old, new, shown)
    assert materialize(after, KEY) == shown
    return writes


@fuzz
@given(old_items, update_texts(), request_values)
def test_writes_reproduce_the_evaluated_item_on_a_put_state(
        attrs: dict[str, Any], text: str, request: dict[str, Any]) -> None:
    old = normalised({**KEY, **copy.deepcopy(attrs)})
    try:
        parsed = ex.parse_update(text)
    except ValidationError:
        return
    if old is None:
        return
    used = {k: v for k, v in copy.deepcopy(request).items() if k in parsed.values_used}
    if normalised(dict(used)) is None:
        return
    state, shown = put(None, old, KEY_NAMES, Dot(1, "b"))
    check_update(state, shown, parsed, {"#h": "x"}, used, Dot(10, "a"))
    check_update(None, None, parsed, {"#h": "x"}, used, Dot(10, "a"))  # no item yet


@fuzz
@given(skews, st.lists(steps, min_size=5, max_size=30), update_texts(), request_values)
def test_writes_reproduce_the_evaluated_item_on_reachable_states(
        skew: dict[str, int], plan: list[Any], text: str, request: dict[str, Any]) -> None:
    world = World(skew).run(plan)
    region = world.regions["a"]
    try:
        parsed = ex.parse_update(text)
    except ValidationError:
        return
    used = {k: v for k, v in copy.deepcopy(request).items() if k in parsed.values_used}
    if normalised(dict(used)) is None:
        return
    check_update(region.state, region.item, parsed, {"#h": "x"}, used,
                 Dot(region.clock.tick(), "a"))


legacy_specs = st.dictionaries(
    st.sampled_from(NAMES),
    st.one_of(st.fixed_dictionaries({"Action": st.just("PUT"), "Value": values}),
              st.fixed_dictionaries({"Action": st.just("ADD"), "Value": st.one_of(
                  st.sampled_from(NUMBERS).map(lambda t: {"N": t}), set_values,
                  st.lists(scalar_values, max_size=2).map(lambda inner: {"L": inner}))}),
              st.fixed_dictionaries({"Action": st.just("DELETE")}, optional={
                  "Value": set_values})),
    min_size=1, max_size=3)


@fuzz
@given(skews, st.lists(steps, min_size=5, max_size=30), legacy_specs)
def test_legacy_attribute_updates_reproduce_the_evaluated_item(
        skew: dict[str, int], plan: list[Any], specs: dict[str, Any]) -> None:
    world = World(skew).run(plan)
    region = world.regions["b"]
    placeholders = legacy.Placeholders()
    try:
        parsed = legacy.attribute_updates(copy.deepcopy(specs), placeholders)
    except ValidationError:
        return
    assert parsed is not None
    writes = check_update(region.state, region.item, parsed, placeholders.names,
                          placeholders.values, Dot(region.clock.tick(), "b"))
    for name, spec in specs.items():  # the legacy ADD of a number is a counter increment
        if spec["Action"] == "ADD" and "N" in spec["Value"] and spec["Value"]["N"] != "0":
            assert any(w.kind == INCREMENT and w.name == name for w in writes) or not writes


@fuzz
@given(skews, st.lists(steps, min_size=5, max_size=30), st.sampled_from(FOCUSED),
       ss_values, st.sampled_from(NUMBERS), st.booleans())
def test_counter_and_set_writes_on_reachable_states(
        skew: dict[str, int], plan: list[Any], text: str, members: dict[str, Any],
        delta: str, seed_item: bool) -> None:
    world = World(skew).run(plan)
    if seed_item:  # make sure s is a string set and n a number before the update
        world.update("c", "SET s = :ss, n = :num", {":ss": {"SS": ["e", "f", "g"]},
                                                   ":num": {"N": "5"}})
    region = world.regions["c"]
    parsed = ex.parse_update(text)
    request = {":ss": members, ":d": {"N": delta}, ":zero": {"N": "0"}, ":v": {"S": "v"}}
    used = {k: v for k, v in request.items() if k in parsed.values_used}
    check_update(region.state, region.item, parsed, {}, used,
                 Dot(region.clock.tick(), "c"))
