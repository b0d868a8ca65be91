"""Compaction changes no merge outcome (issue 28 item 6, itemstate.compact).

A random reachable history among regions a, b and c (tests/itemstate_world.py) reaches
the acknowledgement point: every region holds every write of the item (every dot of the
state is causally stable). Region a then compacts its state as a write. After that, any
changes: puts, deletes and UpdateItems in any region — a's made on the compacted state —
and exchanges of state in any direction. The same history without the compaction must
show the same item in every region after every step, and the join of every state ever
produced must show the same item and agree whatever the order.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atoll.replication.itemstate import Dot, materialize
from atoll.replication.itemstate.codec import decode_state, encode_state
from atoll.replication.itemstate.compact import compact, compaction_write
from tests.itemstate_world import KEY, KEY_NAMES, World, join_in_any_order, skews, steps


def _compact_at_a(world: World) -> bool:
    a = world.regions["a"]
    if a.state is None:
        a.clock.tick()
        return False
    written = compaction_write(a.state, Dot(a.clock.tick(), "a"))
    if written is None:
        return False
    assert materialize(written, KEY) == materialize(a.state, KEY)
    data = encode_state(written, a.item, KEY_NAMES)  # a valid state on the wire
    assert decode_state(data, a.item, KEY_NAMES) == written
    a.state = written
    world.produced.append(written)
    return True


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(skews, st.lists(steps, max_size=30), st.lists(steps, max_size=15),
       st.integers(0, 2**32))
def test_merging_after_the_acknowledgement_point_is_the_same_with_and_without_compaction(
        skew: dict[str, int], history: list[tuple[Any, ...]], after: list[tuple[Any, ...]],
        seed: int) -> None:
    world = World(skew).run(history)
    world.sync_all()  # the acknowledgement point: every dot is everywhere
    plain = world.clone()
    stable = len(world.produced)
    _compact_at_a(world)
    plain.regions["a"].clock.tick()  # the compaction's dot (taken even if it had nothing)
    for step in after:
        world.step(step)
        plain.step(step)
        for name in world.regions:
            assert world.regions[name].item == plain.regions[name].item, (name, step)
    if not world.produced:
        return
    rng = random.Random(seed)
    # every state from the acknowledgement point on (older ones are observed by all)
    joined = [join_in_any_order(world.produced[stable - 1:], rng) for _ in range(3)]
    assert joined[0] == joined[1] == joined[2]
    assert materialize(joined[0], KEY) == materialize(
        join_in_any_order(plain.produced[stable - 1:], rng), KEY)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(skews, st.lists(steps, max_size=30))
def test_compaction_keeps_the_item_and_is_idempotent(
        skew: dict[str, int], history: list[tuple[Any, ...]]) -> None:
    world = World(skew).run(history)
    world.sync_all()
    state = world.regions["a"].state
    if state is None:
        return
    once = compact(state)
    assert materialize(once, KEY) == materialize(state, KEY)
    assert compact(once) is once
    assert len(encode_state(once, materialize(once, KEY), KEY_NAMES)) <= len(
        encode_state(state, materialize(state, KEY), KEY_NAMES))
