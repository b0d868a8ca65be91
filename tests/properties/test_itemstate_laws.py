"""Laws of the per-item causal state (issues 26 and 28, DESIGN.md decision 5).

Every state below is *reachable*: made by random PutItems, DeleteItems and UpdateItems
(evaluated by the real expression evaluator) in random regions whose clocks are skewed by
up to an hour, with random exchanges of state between them (tests/itemstate_world.py).
"""

from __future__ import annotations

import copy
import random
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atoll import expressions as ex
from atoll.errors import ValidationError
from atoll.expressions.attrwrites import attribute_writes
from atoll.model.numbers import normalize_number
from atoll.model.values import check_item
from atoll.model.writes import INCREMENT, AttributeWrite
from atoll.replication.errors import BadChange
from atoll.replication.itemstate import (
    ATTRIBUTE,
    REPLACED,
    Dot,
    ItemState,
    apply_stored,
    decode_state,
    delete,
    delete_stored,
    empty_state,
    encode_state,
    join,
    join_conflicts,
    join_full,
    load,
    losses,
    materialize,
    put,
    put_stored,
    row_form,
    store,
    update,
    update_stored,
)
from atoll.replication.itemstate.fastpath import update_fast
from atoll.replication.itemstate.state import COUNTER_CONTEXT, referenced_dots
from atoll.replication.itemstate.view import ROUND_38, dynamodb_number, in_range
from tests.itemstate_world import (
    KEY,
    KEY_NAMES,
    MEMBERS,
    REGIONS,
    UPDATES,
    World,
    canonical_item,
    put_items,
    regions,
    skews,
    steps,
    update_values,
)

laws = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
plans = st.lists(steps, min_size=8, max_size=40)


def encoded(state: ItemState) -> bytes:
    return encode_state(state, materialize(state, KEY), KEY_NAMES)


def fold(states: list[ItemState]) -> ItemState:
    result = empty_state()
    for state in states:
        result = join(result, state)
    return result


def three(world: World, rnd: random.Random) -> tuple[ItemState, ItemState, ItemState]:
    pool = world.produced or [empty_state()]
    return rnd.choice(pool), rnd.choice(pool), rnd.choice(pool)


# ---- the semilattice ------------------------------------------------------------------

@laws
@given(skews, plans, st.randoms(use_true_random=False))
def test_join_is_commutative_associative_idempotent(skew: dict[str, int], plan: list[Any],
                                                    rnd: random.Random) -> None:
    world = World(skew).run(plan)
    for _ in range(5):
        a, b, c = three(world, rnd)
        assert encoded(join(a, b)) == encoded(join(b, a))
        assert encoded(join(join(a, b), c)) == encoded(join(a, join(b, c)))
        assert join(a, a) == a
        assert join(join(a, b), b) == join(a, b)


@laws
@given(skews, plans, st.randoms(use_true_random=False))
def test_the_dominating_shortcut_equals_the_full_join(skew: dict[str, int], plan: list[Any],
                                                      rnd: random.Random) -> None:
    world = World(skew).run(plan)
    for _ in range(5):
        a, b, _c = three(world, rnd)
        assert join(a, b) == join_full(a, b)


@laws
@given(skews, plans, st.randoms(use_true_random=False))
def test_any_permutation_with_duplicates_gives_the_same_state_and_item(
        skew: dict[str, int], plan: list[Any], rnd: random.Random) -> None:
    world = World(skew).run(plan)
    states = list(world.produced)
    reference = fold(states)
    shuffled = states + rnd.choices(states, k=len(states) // 2) if states else []
    rnd.shuffle(shuffled)
    result = fold(shuffled)
    assert encoded(result) == encoded(reference)
    assert materialize(result, KEY) == materialize(reference, KEY)


@laws
@given(skews, plans)
def test_regions_that_exchanged_everything_hold_identical_bytes(skew: dict[str, int],
                                                                plan: list[Any]) -> None:
    world = World(skew).run(plan)
    world.sync_all()
    states = [region.state for region in world.regions.values() if region.state is not None]
    assert len({encoded(state) for state in states}) <= 1
    assert len({repr(region.item) for region in world.regions.values()}) == 1


# ---- causality: a write that observed a version supersedes it -------------------------

def entries(state: ItemState) -> set[tuple[Any, ...]]:
    """Every dotted entry of a state, identified by what it is and its dot."""
    out: set[tuple[Any, ...]] = {("gen", r, h) for r, (h, _e) in state.gens.items()}
    out |= {("mark", r, h) for r, h in state.marks.items()}
    for name, attr in state.attrs.items():
        out |= {("reg", name, r, h) for r, (h, _v) in attr.regs.items()}
        for member, holders in attr.sets.items():
            out |= {("set", name, member, r, h) for r, h in holders.items()}
    return out


@laws
@given(skews, plans)
def test_what_a_write_replaced_is_gone_from_every_state_that_saw_the_write(
        skew: dict[str, int], plan: list[Any]) -> None:
    """Whatever the clocks: an entry a write removed (it observed and replaced it) is in
    no state whose context holds that write, in any region, in any join order."""
    world = World(skew).run(plan)
    world.sync_all()
    finals = [r.state for r in world.regions.values() if r.state is not None]
    for write in world.writes:
        removed = entries(write.before or empty_state()) - entries(write.after)
        if not removed:
            continue
        for state in world.produced + finals:
            if write.dot.hlc <= state.ctx.get(write.dot.region, 0):
                assert not removed & entries(state), (write.dot, removed & entries(state))


@laws
@given(skews, plans, regions, st.sampled_from(("put", "delete", "update")), update_values())
def test_a_write_that_saw_everything_wins_everywhere_whatever_the_clocks(
        skew: dict[str, int], plan: list[Any], writer: str, kind: str,
        values: dict[str, Any]) -> None:
    world = World(skew).run(plan)
    for src in REGIONS:
        world.sync(writer, src)
    world.step(("wait", 1500))
    if kind == "put":
        world.put(writer, {**KEY, "x": {"S": "last"}})
    elif kind == "delete":
        world.delete(writer)
    else:
        world.update(writer, "SET x = :v", {":v": {"S": "last"}})
    expected = world.regions[writer].item
    world.sync_all()
    for region in world.regions.values():
        assert region.item == expected
        if kind == "update":
            assert region.item is not None and region.item["x"] == {"S": "last"}


# ---- attribute-level merge ------------------------------------------------------------

def marks(world: World) -> dict[str, int]:
    return {region: len(found) for region, found in world.conflicts.items()}


def since(world: World, mark: dict[str, int], region: str) -> list[Any]:
    return world.conflicts[region][mark[region]:]


@laws
@given(skews, plans, st.sampled_from(({"S": "xa"}, {"N": "1"})),
       st.sampled_from(({"S": "yb"}, {"BOOL": False})))
def test_concurrent_writes_to_different_attributes_both_survive(
        skew: dict[str, int], plan: list[Any], x: dict[str, Any], y: dict[str, Any]) -> None:
    world = World(skew).run(plan)
    world.sync_all()
    mark = marks(world)
    world.update("a", "SET x = :v", {":v": x})
    world.update("b", "SET y = :w", {":w": y})
    world.sync_all()
    for region in world.regions.values():
        assert region.item is not None and region.item["x"] == x and region.item["y"] == y
        assert since(world, mark, region.name) == []


@laws
@given(skews, plans, st.lists(regions, min_size=2, max_size=3, unique=True))
def test_concurrent_writes_of_one_attribute_keep_the_greatest_hlc_region(
        skew: dict[str, int], plan: list[Any], writers: list[str]) -> None:
    world = World(skew).run(plan)
    world.sync_all()
    mark = marks(world)
    dots: dict[Dot, str] = {}
    for writer in writers:
        world.update(writer, "SET x = :v", {":v": {"S": writer}})
        dots[world.writes[-1].dot] = writer
    world.sync_all()
    best = max(dots)
    for region in world.regions.values():
        assert region.item is not None and region.item["x"] == {"S": dots[best]}
        lost = since(world, mark, region.name)
        assert sorted(c.loser for c in lost) == sorted(d for d in dots if d != best)
        for c in lost:  # the winner is the one that hid the loser when it was detected
            assert c.kind == ATTRIBUTE and c.attribute == "x" and c.winner in dots
            assert c.winner > c.loser and c.winner_value == {"S": dots[c.winner]}
            assert c.loser_value == {"S": dots[c.loser]}


@laws
@given(skews, plans, regions, regions, st.booleans())
def test_a_put_replaces_older_concurrent_updates_and_newer_ones_apply_on_top(
        skew: dict[str, int], plan: list[Any], putter: str, updater: str,
        update_first: bool) -> None:
    world = World(skew).run(plan)
    world.sync_all()
    mark = marks(world)
    dots = {}
    for what in ("u", "p") if update_first else ("p", "u"):
        if what == "u":
            world.update(updater, "SET y = :w", {":w": {"S": "upd"}})
        else:
            world.put(putter, {**KEY, "x": {"S": "put"}})
        dots[what] = world.writes[-1].dot
    world.sync_all()
    concurrent = putter != updater
    y_survives = dots["u"] > dots["p"] if concurrent else not update_first
    for region in world.regions.values():
        item = region.item
        assert item is not None and item["x"] == {"S": "put"}
        assert (item.get("y") == {"S": "upd"}) == y_survives and len(item) == 2 + y_survives
        expected = [] if y_survives or not concurrent else [(REPLACED, "y", dots["u"])]
        assert [(c.kind, c.attribute, c.loser)
                for c in since(world, mark, region.name)] == expected


# ---- counters and sets against reference models ---------------------------------------

counter_steps = st.one_of(
    st.tuples(st.just("inc"), regions, st.sampled_from(("1", "2", "-1", "0.5", "7"))),
    st.tuples(st.just("reset"), regions, st.sampled_from(("set0", "remove", "put", "delete"))),
    st.tuples(st.just("sync"), regions, regions),
    st.tuples(st.just("wait"), st.sampled_from((1, 1500))),
)


@laws
@given(skews, st.lists(counter_steps, max_size=50))
def test_a_counter_is_the_sum_of_the_increments_no_reset_observed(
        skew: dict[str, int], plan: list[Any]) -> None:
    """Increments (ADD n :d) and resets (SET n = 0, REMOVE n, a put with n = 0, a delete),
    from any region, exchanged in any way: after every region saw everything, n is the
    sum of the increments that no reset observed, in every region."""
    world = World(skew)
    observed: dict[str, set[int]] = {r: set() for r in REGIONS}
    amounts: dict[int, Decimal] = {}
    reset_saw: set[int] = set()
    for step in plan:
        if step[0] == "inc":
            ident = len(amounts)
            if world.update(step[1], "ADD n :d", {":d": {"N": step[2]}}):
                amounts[ident] = Decimal(step[2])
                observed[step[1]].add(ident)
        elif step[0] == "reset":
            region, how = step[1], step[2]
            if how == "set0":
                world.update(region, "SET n = :num", {":num": {"N": "0"}})
            elif how == "remove":
                world.update(region, "REMOVE n", {})
            elif how == "put":
                world.put(region, {**KEY, "n": {"N": "0"}})
            else:
                world.delete(region)
            reset_saw |= observed[region]
        else:
            if step[0] == "sync":
                observed[step[1]] |= observed[step[2]]
            world.step(step)
    world.sync_all()
    expected = sum((amounts[i] for i in amounts if i not in reset_saw), Decimal(0))
    for region in world.regions.values():
        shown = (region.item or {}).get("n")
        assert Decimal(shown["N"] if shown else "0") == expected


set_steps = st.one_of(
    st.tuples(st.just("add"), regions, st.lists(st.sampled_from(MEMBERS), min_size=1,
                                                 max_size=2, unique=True)),
    st.tuples(st.just("del"), regions, st.lists(st.sampled_from(MEMBERS), min_size=1,
                                                 max_size=2, unique=True)),
    st.tuples(st.just("sync"), regions, regions),
    st.tuples(st.just("wait"), st.sampled_from((1, 1500))),
)


@laws
@given(skews, st.lists(set_steps, max_size=50))
def test_sets_are_add_wins(skew: dict[str, int], plan: list[Any]) -> None:
    """A member is in the set iff some ADD of it was observed by no DELETE of it."""
    world = World(skew)
    observed: dict[str, set[int]] = {r: set() for r in REGIONS}
    adds: dict[int, str] = {}
    deleted: set[int] = set()
    for step in plan:
        if step[0] in ("add", "del"):
            region, members = step[1], step[2]
            text = "ADD s :ss" if step[0] == "add" else "DELETE s :ss"
            world.update(region, text, {":ss": {"SS": members}})
            if step[0] == "add":
                for member in members:
                    adds[len(adds)] = member
                    observed[region].add(len(adds) - 1)
            else:
                deleted |= {i for i in observed[region] if adds[i] in members}
        else:
            if step[0] == "sync":
                observed[step[1]] |= observed[step[2]]
            world.step(step)
    world.sync_all()
    expected = sorted({adds[i] for i in adds if i not in deleted})
    for region in world.regions.values():
        shown = (region.item or {}).get("s")
        assert (shown["SS"] if shown else []) == expected


# ---- conflicts: only what was really lost ---------------------------------------------

@laws
@given(skews, plans)
def test_sequential_writers_never_conflict(skew: dict[str, int], plan: list[Any]) -> None:
    """Each writer first receives every other region's state: every write observes every
    earlier one, whatever the clocks, and nothing is ever reported or hidden."""
    world = World(skew)
    for step in plan:
        if step[0] in ("put", "delete", "update"):
            for src in REGIONS:
                world.sync(step[1], src)
        world.step(step)
    world.sync_all()
    assert not any(world.conflicts.values())
    assert all(not losses(state, KEY) for state in world.produced)


@laws
@given(skews, plans)
def test_every_loss_a_region_holds_was_reported_there(skew: dict[str, int],
                                                      plan: list[Any]) -> None:
    world = World(skew).run(plan)
    world.sync_all()
    for region in world.regions.values():
        reported = {(c.kind, c.attribute, c.loser, c.loser_region)
                    for c in world.conflicts[region.name]}
        for loss in losses(region.state or empty_state(), KEY).values():
            assert (loss.kind, loss.attribute, loss.loser, loss.loser_region) in reported


@laws
@given(skews, plans)
def test_local_writes_never_hide_anything(skew: dict[str, int], plan: list[Any]) -> None:
    world = World(skew).run(plan)
    for write in world.writes:
        before = set(losses(write.before or empty_state(), KEY))
        assert set(losses(write.after, KEY)) <= before


# ---- the opt-out, bounds, encoding ----------------------------------------------------

@laws
@given(skews, plans)
def test_whole_item_opt_out_converges_to_one_writes_image(skew: dict[str, int],
                                                          plan: list[Any]) -> None:
    world = World(skew, opt_out=True).run(plan)
    images = {w.dot: (materialize(w.after, KEY) if w.after.gens[w.dot.region][1] else None)
              for w in world.writes}
    world.sync_all()
    state = world.regions["a"].state
    if state is None:
        return
    winner = max(Dot(h, r) for r, (h, _e) in state.gens.items())
    for region in world.regions.values():
        assert region.item == images[winner]


@laws
@given(skews, plans)
def test_state_stays_bounded(skew: dict[str, int], plan: list[Any]) -> None:
    world = World(skew).run(plan)
    for state in world.produced:
        assert set(state.gens) <= set(state.ctx) and set(state.marks) <= set(state.ctx)
        assert set(state.ops) <= referenced_dots(state.attrs, state.marks)
        for attr in state.attrs.values():
            assert not attr.empty()
            assert set(attr.regs) <= set(state.ctx) and set(attr.ctrs) <= set(state.ctx)
            for holders in attr.sets.values():
                assert holders and set(holders) <= set(state.ctx)
            for p, n, fp, fn in attr.ctrs.values():
                assert fp <= p and fn <= n


@laws
@given(skews, plans)
def test_every_reachable_state_round_trips_through_canonical_bytes(
        skew: dict[str, int], plan: list[Any]) -> None:
    world = World(skew).run(plan)
    for state in world.produced:
        item = materialize(state, KEY)
        data = encode_state(state, item, KEY_NAMES)
        decoded = decode_state(data, item, KEY_NAMES)
        assert decoded == state
        assert decode_state(data, item, KEY_NAMES, trusted=True) == state
        assert encode_state(decoded, item, KEY_NAMES) == data
        assert canonical_item(item) == item


@laws
@given(skews, plans, regions, put_items, st.sampled_from(UPDATES), update_values())
def test_the_stored_form_and_its_fast_paths_equal_the_plain_functions(
        skew: dict[str, int], plan: list[Any], writer: str, item: dict[str, Any],
        text: str, values: dict[str, Any]) -> None:
    """store/load round trip; put_stored, delete_stored and update_stored (which never
    rebuild what a put replaces) store exactly what the plain functions make."""
    world = World(skew).run(plan)
    region = world.regions[writer]
    state, shown = region.state, region.item
    old = None if state is None else store(state, shown, KEY_NAMES)
    if old is not None:
        assert load(old, shown, KEY_NAMES) == state
        assert (old.data == b"") == (row_form(state) is not None)
    dot = Dot(region.clock.tick(), writer)
    put_state, put_shown = put(state, item, KEY_NAMES, dot)
    assert put_stored(old, item, KEY_NAMES, dot) == (store(put_state, put_shown, KEY_NAMES),
                                                     put_shown)
    assert delete_stored(old, dot) == store(delete(state, dot), None, KEY_NAMES)
    parsed = ex.parse_update(text)
    used = {k: v for k, v in values.items() if k in parsed.values_used}
    try:
        new, _ = ex.apply_update(parsed, dict(shown or KEY), {}, used,
                                 item_exists=shown is not None)
        check_item(new)
    except ValidationError:
        return
    writes = attribute_writes(parsed, {}, used, shown, new)
    up_state, up_shown = update(state, shown, writes, dot, KEY)
    assert update_stored(old, shown, writes, dot, KEY) == (
        store(up_state, up_shown, KEY_NAMES), up_shown)


writer_steps = st.one_of(
    st.tuples(st.just("update"), st.just("a"), st.sampled_from(UPDATES), update_values()),
    st.tuples(st.just("update"), st.just("a"), st.sampled_from(UPDATES), update_values()),
    st.tuples(st.just("update"), st.just("a"), st.sampled_from(UPDATES), update_values()),
    st.tuples(st.just("put"), st.just("a"), put_items),
    st.tuples(st.just("delete"), st.just("a")),
    steps,  # sometimes another region writes, or states are exchanged
)


@laws
@given(skews, st.lists(writer_steps, min_size=5, max_size=40))
def test_the_update_fast_path_is_byte_identical_to_the_general_path(
        skew: dict[str, int], plan: list[Any]) -> None:
    """Region a mostly updates its own item: before each of its updates, the stored
    form's update (fast path when it applies) equals the general path's, byte for byte."""
    world = World(skew)
    for step in plan:
        if step[0] == "update" and step[1] == "a":
            region = world.regions["a"]
            state, shown = region.state, region.item
            old = None if state is None else store(state, shown, KEY_NAMES)
            parsed = ex.parse_update(step[2])
            used = {k: v for k, v in step[3].items() if k in parsed.values_used}
            try:
                new, _ = ex.apply_update(parsed, dict(shown or KEY), {}, used,
                                         item_exists=shown is not None)
                check_item(new)
            except ValidationError:
                continue
            writes = attribute_writes(parsed, {}, used, shown, new)
            dot = Dot(region.clock.tick(), "a")
            general_state, general_shown = update(state, shown, writes, dot, KEY)
            general = store(general_state, general_shown, KEY_NAMES)
            fast = update_fast(None if old is None else old.data,
                               Dot(0, "") if old is None else old.version,
                               None if old is None else old.prev, shown, writes, dot, KEY)
            if fast is not None:
                assert fast == (general.data, general.version, general_shown)
            assert update_stored(old, shown, writes, dot, KEY) == (general, general_shown)
            raw = None if old is None else (  # as a storage reads it: plain tuples
                old.data, (old.version.hlc, old.version.region),
                None if old.prev is None else (old.prev.hlc, old.prev.region))
            assert update_stored(raw, shown, writes, dot, KEY) == (general, general_shown)
            region.state, region.item = general_state, general_shown
            world.produced.append(general_state)
        else:
            world.step(step)


@laws
@given(skews, st.lists(writer_steps, min_size=5, max_size=40))
def test_the_fast_paths_kept_layout_equals_choosing_the_layout_again(
        skew: dict[str, int], plan: list[Any]) -> None:
    """The fast path keeps the stored layout (the base dot, the attributes in base form)
    without choosing it again when its shortcut shows the choice would keep it: on every
    update of region a, the bytes equal those of always choosing again."""
    world = World(skew)
    for step in plan:
        if step[0] != "update" or step[1] != "a":
            world.step(step)
            continue
        region = world.regions["a"]
        state, shown = region.state, region.item
        old = None if state is None else store(state, shown, KEY_NAMES)
        parsed = ex.parse_update(step[2])
        used = {k: v for k, v in step[3].items() if k in parsed.values_used}
        try:
            new, _ = ex.apply_update(parsed, dict(shown or KEY), {}, used,
                                     item_exists=shown is not None)
            check_item(new)
        except ValidationError:
            continue
        writes = attribute_writes(parsed, {}, used, shown, new)
        dot = Dot(region.clock.tick(), "a")
        args = (None if old is None else old.data, Dot(0, "") if old is None else old.version,
                None if old is None else old.prev, shown, writes, dot, KEY)
        assert update_fast(*args) == update_fast(*args, relayout=True)
        region.state, region.item = update(state, shown, writes, dot, KEY)
        world.produced.append(region.state)


def test_an_update_of_listed_attributes_keeps_the_base_form_of_the_others() -> None:
    """The bench's UpdateItem (SET two attributes, ADD a counter) over a put of two
    others: the put's attributes stay in base form, the shortcut's case, and the bytes
    are the general path's."""
    world = World({"a": 0, "b": 0, "c": 0})
    world.put("a", {**KEY, "n": {"N": "1"}, "p": {"S": "payload"}})
    parsed = ex.parse_update("SET t = :t, u = :u ADD c :one")
    for step in range(4):
        region = world.regions["a"]
        assert region.state is not None and region.item is not None
        old = store(region.state, region.item, KEY_NAMES)
        values = {":t": {"S": "t"}, ":u": {"N": str(step)}, ":one": {"N": "1"}}
        new, _ = ex.apply_update(parsed, dict(region.item), {}, values)
        writes = attribute_writes(parsed, {}, values, region.item, new)
        dot = Dot(region.clock.tick(), "a")
        fast = update_fast(old.data, old.version, old.prev, region.item, writes, dot, KEY)
        assert fast is not None
        assert fast == update_fast(old.data, old.version, old.prev, region.item, writes, dot,
                                   KEY, relayout=True)
        region.state, region.item = update(region.state, region.item, writes, dot, KEY)
        assert fast[0] == encode_state(region.state, region.item, KEY_NAMES)
        assert sorted(orjson.loads(fast[0])["a"]) == ["c", "t", "u"]  # n, p in base form


def test_an_item_made_by_updates_alone_takes_the_fast_path() -> None:
    """A state with no whole-item write (no "g" in its bytes): the fast path reads it
    (compiled, a mistyped read of the absent member raised TypeError)."""
    state: ItemState | None = None
    item: dict[str, Any] | None = None
    parsed = ex.parse_update("SET x = :v ADD n :d")
    for step in range(3):
        values = {":v": {"S": f"v{step}"}, ":d": {"N": "1"}}
        new, _ = ex.apply_update(parsed, dict(item or KEY), {}, values,
                                 item_exists=item is not None)
        writes = attribute_writes(parsed, {}, values, item, new)
        dot = Dot(1_000 + step, "a")
        old = None if state is None else store(state, item, KEY_NAMES)
        fast = update_fast(None if old is None else old.data,
                           Dot(0, "") if old is None else old.version,
                           None if old is None else old.prev, item, writes, dot, KEY)
        state, item = update(state, item, writes, dot, KEY)
        assert fast == (encode_state(state, item, KEY_NAMES), dot, item)
        assert b'"g"' not in fast[0]


def test_a_single_writer_update_takes_the_fast_path() -> None:
    world = World({"a": 0, "b": 0, "c": 0})
    world.put("a", {**KEY, "x": {"S": "v"}, "n": {"N": "1"}, "s": {"SS": ["e"]}})
    for text, values in (("SET x = :v", {":v": {"S": "w"}}), ("ADD n :d", {":d": {"N": "2"}}),
                         ("ADD s :ss", {":ss": {"SS": ["f"]}}), ("REMOVE x", {}),
                         ("SET y = :v, n = n - :d", {":v": {"S": "y"}, ":d": {"N": "1"}})):
        region = world.regions["a"]
        assert region.state is not None
        old = store(region.state, region.item, KEY_NAMES)
        parsed = ex.parse_update(text)
        new, _ = ex.apply_update(parsed, dict(region.item or KEY), {}, values)
        check_item(new)
        writes = attribute_writes(parsed, {}, values, region.item, new)
        dot = Dot(region.clock.tick(), "a")
        fast = update_fast(old.data, old.version, old.prev, region.item, writes, dot, KEY)
        assert fast is not None, text
        region.state, region.item = update(region.state, region.item, writes, dot, KEY)
        assert fast == (encode_state(region.state, region.item, KEY_NAMES),
                        max(Dot(h, r) for r, h in region.state.ctx.items()), region.item)


decimals = st.builds(lambda digits, exponent, negative: Decimal(
    ("-" if negative else "") + str(digits) + f"E{exponent}"),
    st.integers(0, 10 ** 45), st.integers(-180, 140), st.booleans())


@laws
@given(decimals)
def test_counter_sums_show_as_valid_dynamodb_numbers(value: Decimal) -> None:
    """Exact and canonical whenever DynamoDB can hold the sum; otherwise rounded half-even
    to 38 digits, clamped to the largest magnitude, or 0 below the smallest."""
    shown = dynamodb_number(value)
    assert normalize_number(shown) == shown  # always a valid, canonical DynamoDB number
    exact = COUNTER_CONTEXT.create_decimal(value)
    if in_range(exact):
        assert shown == ("0" if not exact else format(exact.normalize(COUNTER_CONTEXT), "f"))
        return
    rounded = ROUND_38.plus(exact)
    if abs(rounded) >= Decimal("1E+126"):
        assert shown == ("-" if exact < 0 else "") + "9" * 38 + "0" * 88
    elif abs(rounded) < Decimal("1E-130"):
        assert shown == "0"
    else:
        assert Decimal(shown) == rounded


@laws
@given(skews, plans, regions, regions)
def test_applying_a_stored_change_equals_the_join(skew: dict[str, int], plan: list[Any],
                                                  dst: str, src: str) -> None:
    """The receiver's entry point stores exactly the join (its bytes, or the incoming
    bytes as they came when they dominate) and reports the join's conflicts."""
    world = World(skew).run(plan)
    mine, theirs = world.regions[dst], world.regions[src]
    if theirs.state is None:
        return
    local = None if mine.state is None else store(mine.state, mine.item, KEY_NAMES)
    incoming = store(theirs.state, theirs.item, KEY_NAMES)
    stored, item, conflicts, changed = apply_stored(local, mine.item, incoming, theirs.item,
                                                    KEY)
    before = mine.state if mine.state is not None else empty_state()
    joined = join(before, theirs.state)
    assert item == materialize(joined, KEY)
    assert stored == store(joined, item, KEY_NAMES)
    assert conflicts == join_conflicts(before, joined, KEY)
    if stored.data:
        assert decode_state(stored.data, item, KEY_NAMES) == joined
    assert changed == (joined != before or mine.state is None)


@laws
@given(skews, plans, regions, regions)
def test_a_duplicate_built_from_copies_changes_nothing(skew: dict[str, int], plan: list[Any],
                                                       dst: str, src: str) -> None:
    """Applying a write the row already joined reports no change, however the values
    are held: the row and the write are rebuilt from fresh copies of their bytes, items
    and dots (equal, never identical: what a compiled build, which may unbox and rebox
    tuples, or a read from storage hands over), so only equality can say so."""
    world = World(skew).run(plan)
    mine, theirs = world.regions[dst], world.regions[src]
    if theirs.state is None:
        return
    local = None if mine.state is None else store(mine.state, mine.item, KEY_NAMES)
    incoming = store(theirs.state, theirs.item, KEY_NAMES)
    stored, item, _conflicts, _changed = apply_stored(local, mine.item, incoming,
                                                      theirs.item, KEY)
    assert item is None or list(item) == sorted(item)

    def copied(form: Any) -> Any:
        return type(form)(bytes(bytearray(form.data)), Dot(form.version.hlc, form.version.region),
                          None if form.prev is None else Dot(form.prev.hlc, form.prev.region))

    again = apply_stored(copied(stored), copy.deepcopy(item), copied(incoming),
                         copy.deepcopy(theirs.item), KEY)
    assert again[3] is False and again[2] == []
    assert again[0] == stored and again[1] == item


def test_an_item_that_contradicts_its_dominating_state_is_refused() -> None:
    """The item supplies the values a state elides, so only what the state spells out
    (here a counter's figures) can contradict it."""
    state, item = update(None, None, [AttributeWrite(INCREMENT, "n", {"N": "3"}, {"N": "3"})],
                         Dot(5, "a"), KEY)
    incoming = store(state, item, KEY_NAMES)
    assert apply_stored(None, None, incoming, item, KEY)[1] == item
    with pytest.raises(BadChange):
        apply_stored(None, None, incoming, {**KEY, "n": {"N": "4"}}, KEY)
