"""Laws of the fold of a departed region's counter contributions (issue 28 item 6,
atoll.replication.fold and itemstate.fold_regions).

A random reachable history among regions a, b and c (tests/itemstate_world.py) ends with
c leaving once every region holds every write of the item (the fold waits for that: its
item's writes below the settled hlc), and a (the lowest-named region) folds. Meanwhile b
goes on incrementing and adding set members without having seen the fold, and may later
take a's state. Every state ever produced (old copies that
arrive late, c's last state still in flight) then reaches a region, in any order. The
fold must change nothing a reader sees: the item equals the one the same history gives
without the fold, every increment counts once, and every order gives the same state.
Resets of a counter concurrent with the fold are left out: they are two concurrent
writes of one attribute, decided by (hlc, region) like any (docs/merge.md).
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atoll.replication.itemstate import (
    Dot,
    fold_regions,
    materialize,
    unfolded_regions,
)
from tests.itemstate_world import KEY, World, join_in_any_order, skews, steps, update_values

CONCURRENT = ("ADD n :d", "ADD x :d", "ADD s :ss", "SET n = n + :d", "SET n = n - :d")
after_steps = st.lists(st.one_of(
    st.tuples(st.just("update"), st.sampled_from(CONCURRENT), update_values()),
    st.tuples(st.just("take"),),  # b joins a's current state
    st.tuples(st.just("wait"),)), max_size=8)


def _fold(world: World) -> None:
    a = world.regions["a"]
    if a.state is None:
        return
    dot = Dot(a.clock.tick(), "a")
    a.state, a.item = fold_regions(a.state, a.item, ["c"], dot, KEY)
    world.produced.append(a.state)


def _after(world: World, plan: list[tuple[Any, ...]]) -> None:
    for step in plan:
        world.now_ms += 1
        if step[0] == "update":
            world.update("b", step[1], step[2])
        elif step[0] == "take":
            world.sync("b", "a")
        else:
            world.now_ms += 1500


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(skews, st.lists(steps, max_size=25), after_steps, st.integers(0, 2**32))
def test_a_fold_changes_nothing_readers_see_and_every_order_agrees(
        skew: dict[str, int], history: list[tuple[Any, ...]], after: list[tuple[Any, ...]],
        seed: int) -> None:
    world = World(skew).run(history)
    world.sync_all()  # c leaves; every write of the item is settled everywhere
    plain = world.clone()
    _fold(world)
    a_state = world.regions["a"].state
    assert a_state is None or not unfolded_regions(a_state, ("a", "b"))
    assert world.regions["a"].item == plain.regions["a"].item  # readers see the same item
    _after(world, after)
    _after(plain, after)
    if not world.produced:
        return
    rng = random.Random(seed)
    folded = [join_in_any_order(world.produced, rng) for _ in range(3)]
    assert folded[0] == folded[1] == folded[2]
    unfolded = join_in_any_order(plain.produced, rng)
    assert materialize(folded[0], KEY) == materialize(unfolded, KEY)
    if a_state is not None:  # once the fold arrived, c adds nothing any more
        assert not unfolded_regions(folded[0], ("a", "b"))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(skews, st.lists(steps, max_size=25), st.integers(0, 2**32))
def test_a_fold_is_idempotent_and_a_second_fold_finds_nothing(
        skew: dict[str, int], history: list[tuple[Any, ...]], seed: int) -> None:
    world = World(skew).run(history)
    world.sync_all()
    a = world.regions["a"]
    if a.state is None:
        return
    once, item = fold_regions(a.state, a.item, ["c"], Dot(a.clock.tick(), "a"), KEY)
    assert item == a.item and materialize(once, KEY) == (a.item if a.item is not None
                                                         else materialize(once, KEY))
    assert not unfolded_regions(once, ("a", "b"))
    twice, item2 = fold_regions(once, item, ["c"], Dot(a.clock.tick(), "a"), KEY)
    assert item2 == item
    assert twice.attrs == once.attrs  # nothing left to fold: only the context moved
    rng = random.Random(seed)
    assert join_in_any_order([*world.produced, once], rng) == join_in_any_order([once, *world.produced], rng)
