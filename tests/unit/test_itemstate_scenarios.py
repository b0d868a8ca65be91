"""Item state scenarios, one rule at a time (issues 26 and 28, DESIGN.md decision 5)."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import pytest

from atoll.model.writes import INCREMENT, SET, AttributeWrite
from atoll.replication.itemstate import (
    ATTRIBUTE,
    COUNTER,
    ITEM,
    REPLACED,
    Dot,
    ItemState,
    empty_state,
    encode_state,
    fold_region,
    join,
    join_conflicts,
    latest_dot,
    materialize,
    migrate,
    put,
    row_form,
    update,
)
from tests.itemstate_world import HOUR_MS, KEY, KEY_NAMES, World


def fold_all(states: list[ItemState]) -> ItemState:
    result = empty_state()
    for state in states:
        result = join(result, state)
    return result


def every_order(states: list[ItemState]) -> set[bytes]:
    """The encoded join of `states` in every order."""
    out = set()
    for order in itertools.permutations(states):
        joined = fold_all(list(order))
        out.add(encode_state(joined, materialize(joined, KEY), KEY_NAMES))
    return out


def skewed_world() -> World:
    """Region a's clock runs an hour ahead; b and c are right."""
    return World({"a": HOUR_MS, "b": 0, "c": 0})


# ---- issue 26: clock skew never beats causality ---------------------------------------

@pytest.mark.parametrize("overwrite", ["put", "delete", "update"])
def test_a_later_write_that_read_a_skewed_version_wins_everywhere(overwrite: str) -> None:
    world = skewed_world()
    world.put("a", {**KEY, "x": {"S": "from a"}, "y": {"S": "kept?"}})
    a_state = world.regions["a"].state
    world.sync("c", "a")  # c holds a's write only
    world.sync("b", "a")  # b reads it ...
    world.step(("wait", 1500))  # ... and 1.5 s later overwrites it
    if overwrite == "put":
        world.put("b", {**KEY, "x": {"S": "from b"}})
        expected: dict[str, Any] | None = {**KEY, "x": {"S": "from b"}}
    elif overwrite == "delete":
        world.delete("b")
        expected = None
    else:
        assert world.update("b", "SET x = :v", {":v": {"S": "from b"}})
        expected = {**KEY, "x": {"S": "from b"}, "y": {"S": "kept?"}}
    b_write = world.writes[-1].dot
    assert a_state is not None and b_write.hlc < max(a_state.ctx.values())  # a smaller hlc
    states = [a_state, world.regions["b"].state, world.regions["c"].state]
    assert len(every_order(states)) == 1  # type: ignore[arg-type]
    world.sync_all()
    for region in world.regions.values():
        assert region.item == expected
    assert not any(world.conflicts.values())  # a causal overwrite is no conflict


def test_both_sides_writing_under_skew_is_a_conflict_won_by_the_greater_hlc() -> None:
    world = skewed_world()
    world.put("a", {**KEY, "x": {"S": "a"}})
    world.put("b", {**KEY, "x": {"S": "b"}})  # concurrent: neither saw the other
    a_dot, b_dot = world.writes[0].dot, world.writes[1].dot
    world.sync_all()
    for region in world.regions.values():
        assert region.item == {**KEY, "x": {"S": "a"}}  # a's clock is ahead
    for name in ("a", "b"):
        (conflict,) = world.conflicts[name]
        assert (conflict.kind, conflict.winner, conflict.loser) == (ITEM, a_dot, b_dot)
        assert conflict.winner_value == {**KEY, "x": {"S": "a"}}
        assert conflict.loser_value == {**KEY, "x": {"S": "b"}}


def test_a_region_that_saw_the_skewed_write_orders_later_writes_after_it() -> None:
    """Once b saw a's +1 h write, b's writes go on superseding a's, every time."""
    world = skewed_world()
    for round_ in range(3):
        world.update("a", "SET x = :v", {":v": {"S": f"a{round_}"}})
        world.sync("b", "a")
        world.step(("wait", 1500))
        world.update("b", "SET x = :v", {":v": {"S": f"b{round_}"}})
        world.sync("a", "b")
    world.sync_all()
    assert world.regions["c"].item == {**KEY, "x": {"S": "b2"}}
    assert not any(world.conflicts.values())


# ---- issue 28: counters ---------------------------------------------------------------

def test_concurrent_increments_in_three_regions_all_count() -> None:
    world = World({"a": 0, "b": HOUR_MS, "c": -HOUR_MS})
    world.put("a", {**KEY, "n": {"N": "10"}})
    world.sync_all()
    for _ in range(5):
        for region in ("a", "b", "c"):
            assert world.update(region, "ADD n :d", {":d": {"N": "1"}})
            assert world.update(region, "SET n = n + :d", {":d": {"N": "2"}})
    world.sync_all()
    for region in world.regions.values():
        assert region.item == {**KEY, "n": {"N": "55"}}
    assert not any(world.conflicts.values())


def test_a_reset_keeps_the_increments_it_did_not_see() -> None:
    world = World({"a": 0, "b": 0, "c": 0})
    world.update("a", "ADD n :d", {":d": {"N": "5"}})
    world.sync("b", "a")
    world.update("b", "SET n = :num", {":num": {"N": "100"}})  # saw the 5
    world.update("a", "ADD n :d", {":d": {"N": "2"}})  # concurrent with the reset
    world.update("c", "ADD n :d", {":d": {"N": "-0.5"}})  # concurrent too
    world.sync_all()
    for region in world.regions.values():
        assert region.item == {**KEY, "n": {"N": "101.5"}}


def test_a_delete_keeps_concurrent_increments() -> None:
    """The increments a DeleteItem did not see still count: the item comes back holding
    them alone (the reset rule applied to the whole item)."""
    world = World({"a": 0, "b": 0, "c": 0})
    world.put("a", {**KEY, "n": {"N": "3"}, "x": {"S": "gone"}})
    world.sync_all()
    world.delete("b")
    world.update("a", "ADD n :d", {":d": {"N": "4"}})
    world.sync_all()
    assert world.regions["c"].item == {**KEY, "n": {"N": "4"}}


def test_a_counter_hidden_by_a_concurrent_string_is_a_reported_loss() -> None:
    world = World({"a": 0, "b": 0, "c": 0})
    world.put("a", {**KEY, "n": {"N": "1"}})
    world.sync_all()
    world.update("a", "ADD n :d", {":d": {"N": "7"}})
    world.step(("wait", 5))
    world.update("b", "SET n = :v", {":v": {"S": "text"}})
    world.sync_all()
    assert world.regions["c"].item == {**KEY, "n": {"S": "text"}}
    for region in ("a", "b", "c"):
        (conflict,) = [c for c in world.conflicts[region] if c.kind == COUNTER]
        assert conflict.attribute == "n" and conflict.loser_region == "a"
        assert conflict.loser_value == {"N": "7"} and conflict.winner_value == {"S": "text"}


def test_concurrent_sums_beyond_dynamodb_range_are_clamped_deterministically() -> None:
    world = World({"a": 0, "b": 0, "c": 0})
    world.update("a", "ADD n :d", {":d": {"N": "6E+125"}})
    world.update("b", "ADD n :d", {":d": {"N": "6E+125"}})
    world.sync_all()
    largest = {"N": "99999999999999999999999999999999999999" + "0" * 88}
    assert world.regions["c"].item == {**KEY, "n": largest}
    # An increment made on the clamped value: the client is told clamp - 6E+125, so the
    # write resets the counter to exactly that.
    assert world.update("c", "ADD n :d", {":d": {"N": "-6E+125"}})
    told = world.regions["c"].item
    world.sync_all()
    assert world.regions["a"].item == told
    assert told is not None and told["n"] == {"N": "39999999999999999999999999999999999999"
                                                   + "0" * 88}


def test_a_sum_with_more_than_38_digits_is_rounded_and_recovers_exactly() -> None:
    world = World({"a": 0, "b": 0, "c": 0})
    world.update("a", "ADD n :d", {":d": {"N": "1E+20"}})
    world.update("b", "ADD n :d", {":d": {"N": "1E-20"}})
    world.sync_all()
    assert world.regions["c"].item == {**KEY, "n": {"N": "100000000000000000000"}}
    world.update("b", "ADD n :d", {":d": {"N": "-1E-20"}})  # exact again: 1E+20
    world.update("a", "ADD n :d", {":d": {"N": "5"}})
    world.sync_all()
    assert world.regions["c"].item == {**KEY, "n": {"N": "100000000000000000005"}}


def test_fold_region_moves_a_departed_regions_contribution_into_the_value() -> None:
    world = World({"a": 0, "b": 0, "c": 0})
    world.put("a", {**KEY, "n": {"N": "1"}})
    world.sync_all()
    world.update("c", "ADD n :d", {":d": {"N": "10"}})
    world.update("a", "ADD n :d", {":d": {"N": "100"}})
    world.sync_all()
    a = world.regions["a"]
    assert a.state is not None and a.item == {**KEY, "n": {"N": "111"}}
    folded, item = fold_region(a.state, a.item, "c", Dot(a.clock.tick(), "a"), KEY)
    assert item == a.item and materialize(folded, KEY) == a.item
    p, n, fp, fn = folded.attrs["n"].ctrs["c"]
    assert (p, n) == (fp, fn)  # c's contribution is now part of the value
    world.update("b", "ADD n :d", {":d": {"N": "1000"}})  # concurrent with the fold
    b = world.regions["b"]
    assert b.state is not None
    joined = join(folded, b.state)
    assert materialize(joined, KEY) == {**KEY, "n": {"N": "1111"}}


# ---- issue 28: sets and attribute-level merge -----------------------------------------

def test_an_add_concurrent_with_a_delete_of_the_same_member_wins() -> None:
    world = World({"a": 0, "b": 0, "c": 0})
    world.put("a", {**KEY, "s": {"SS": ["e", "f"]}})
    world.sync_all()
    world.update("a", "ADD s :ss", {":ss": {"SS": ["e", "g"]}})
    world.update("b", "DELETE s :ss", {":ss": {"SS": ["e", "f"]}})
    world.sync_all()
    assert world.regions["c"].item == {**KEY, "s": {"SS": ["e", "g"]}}
    assert not any(world.conflicts.values())


def test_a_put_of_a_set_merges_with_a_newer_concurrent_add() -> None:
    """A put's set is members, so a newer concurrent ADD adds to it (a whole-value entry
    would have hidden the put's members behind the ADD)."""
    world = World({"a": 0, "b": 0, "c": 0})
    world.put("a", {**KEY, "s": {"SS": ["e"]}})
    world.step(("wait", 5))
    world.update("b", "ADD s :ss", {":ss": {"SS": ["f"]}})
    world.sync_all()
    assert world.regions["c"].item == {**KEY, "s": {"SS": ["e", "f"]}}


def test_concurrent_updates_of_different_attributes_of_a_new_item_both_survive() -> None:
    world = World({"a": 0, "b": HOUR_MS, "c": 0})
    world.update("a", "SET x = :v", {":v": {"S": "from a"}})
    world.update("b", "SET y = :v ADD n :d", {":v": {"S": "from b"}, ":d": {"N": "1"}})
    world.update("c", "ADD n :d", {":d": {"N": "1"}})
    world.sync_all()
    assert world.regions["a"].item == {**KEY, "x": {"S": "from a"}, "y": {"S": "from b"},
                                       "n": {"N": "2"}}
    assert not any(world.conflicts.values())


def test_equal_hlcs_are_ordered_by_region_name() -> None:
    base = empty_state()
    a, _ = update(base, None, [AttributeWrite(SET, "x", {"S": "a"})], Dot(7, "us-east"), KEY)
    b, _ = update(base, None, [AttributeWrite(SET, "x", {"S": "b"})], Dot(7, "eu-west"), KEY)
    joined = join(a, b)
    assert materialize(joined, KEY) == {**KEY, "x": {"S": "a"}}  # "us-east" > "eu-west"
    (conflict,) = join_conflicts(b, joined, KEY)
    assert (conflict.kind, conflict.loser, conflict.winner) == (
        ATTRIBUTE, Dot(7, "eu-west"), Dot(7, "us-east"))


def test_an_update_that_saw_a_put_applies_on_top_of_it_whatever_the_clocks() -> None:
    world = skewed_world()
    world.put("a", {**KEY, "x": {"S": "put"}})
    world.sync("b", "a")
    world.update("b", "SET y = :v", {":v": {"S": "after"}})  # smaller hlc, but saw the put
    world.put("c", {**KEY, "z": {"S": "concurrent put"}})  # older than a's by hlc
    world.sync_all()
    assert world.regions["c"].item == {**KEY, "x": {"S": "put"}, "y": {"S": "after"}}
    for region in ("a", "b", "c"):
        assert [(c.kind, c.loser) for c in world.conflicts[region]] == [
            (ITEM, world.writes[2].dot)]


def test_an_older_concurrent_update_is_replaced_by_a_put_and_reported() -> None:
    world = World({"a": 0, "b": 0, "c": 0})
    world.update("b", "SET y = :v", {":v": {"S": "older"}})
    world.step(("wait", 5))
    world.put("a", {**KEY, "x": {"S": "put"}})
    world.sync_all()
    assert world.regions["c"].item == {**KEY, "x": {"S": "put"}}
    (conflict,) = world.conflicts["c"]
    assert conflict.kind == REPLACED and conflict.attribute == "y"
    assert conflict.loser_value == {"S": "older"} and conflict.winner == world.writes[1].dot


# ---- existence ------------------------------------------------------------------------

def test_an_update_leaving_only_the_key_still_makes_the_item_exist() -> None:
    world = World({"a": 0, "b": 0, "c": 0})
    assert world.update("a", "REMOVE x", {})  # on a missing item: DynamoDB creates it
    assert world.regions["a"].item == KEY
    world.sync_all()
    assert world.regions["c"].item == KEY
    world.step(("wait", 5))
    world.delete("b")  # saw the marker: the item is gone
    world.sync_all()
    assert world.regions["a"].item is None


def test_a_newer_concurrent_key_only_update_survives_an_older_delete() -> None:
    world = World({"a": 0, "b": 0, "c": 0})
    world.put("a", {**KEY, "x": {"S": "v"}})
    world.sync_all()
    world.delete("c")
    world.step(("wait", 5))
    world.update("b", "REMOVE x", {})
    world.sync_all()
    assert world.regions["a"].item == KEY


# ---- the whole-item opt-out -----------------------------------------------------------

def test_opt_out_keeps_dynamodb_global_tables_whole_item_rule() -> None:
    world = World({"a": 0, "b": 0, "c": 0}, opt_out=True)
    world.put("a", {**KEY, "n": {"N": "1"}})
    world.sync_all()
    world.update("a", "SET x = :v ADD n :d", {":v": {"S": "a"}, ":d": {"N": "1"}})
    world.step(("wait", 5))
    world.update("b", "SET y = :v ADD n :d", {":v": {"S": "b"}, ":d": {"N": "1"}})
    world.sync_all()
    assert world.regions["c"].item == {**KEY, "n": {"N": "2"}, "y": {"S": "b"}}
    assert [c.kind for c in world.conflicts["c"]] == [ITEM]


def test_opt_out_is_still_causal_under_skew() -> None:
    world = World({"a": HOUR_MS, "b": 0, "c": 0}, opt_out=True)
    world.put("a", {**KEY, "x": {"S": "a"}})
    world.sync("b", "a")
    world.update("b", "SET x = :v", {":v": {"S": "b"}})
    world.sync_all()
    assert world.regions["c"].item == {**KEY, "x": {"S": "b"}}


# ---- migration of old rows ------------------------------------------------------------

ROW = {**KEY, "x": {"S": "v"}, "s": {"SS": ["f", "e"]}}


def test_an_old_row_becomes_one_whole_item_write_that_saw_its_prev() -> None:
    state = migrate(ROW, Dot(20, "b"), Dot(10, "a"), KEY_NAMES)
    assert state.ctx == {"a": 10, "b": 20} and state.gens == {"b": (20, True)}
    assert materialize(state, KEY) == {**KEY, "x": {"S": "v"}, "s": {"SS": ["e", "f"]}}
    assert row_form(state) == (Dot(20, "b"), Dot(10, "a"))
    tombstone = migrate(None, Dot(30, "c"), Dot(20, "b"), KEY_NAMES)
    assert materialize(tombstone, KEY) is None and row_form(tombstone) == (Dot(30, "c"),
                                                                           Dot(20, "b"))


def test_migrated_rows_of_two_regions_merge_by_the_old_rule() -> None:
    older = migrate(ROW, Dot(20, "b"), Dot(10, "a"), KEY_NAMES)
    newer = migrate({**KEY, "x": {"S": "w"}}, Dot(30, "a"), Dot(20, "b"), KEY_NAMES)
    assert join(older, newer) == newer  # newer saw older: a clean overwrite
    concurrent = migrate({**KEY, "x": {"S": "c"}}, Dot(25, "c"), Dot(10, "a"), KEY_NAMES)
    joined = join(older, concurrent)
    assert materialize(joined, KEY) == {**KEY, "x": {"S": "c"}}  # greater (hlc, region)
    assert [c.kind for c in join_conflicts(older, joined, KEY)] == [ITEM]


def test_row_form_describes_exactly_the_states_a_row_can_rebuild() -> None:
    state, item = put(None, ROW, KEY_NAMES, Dot(5, "a"))
    assert row_form(state) == (Dot(5, "a"), None)
    assert migrate(item, Dot(5, "a"), None, KEY_NAMES) == state
    state_b, item_b = put(state, ROW, KEY_NAMES, Dot(3, "b"))  # b saw a's write
    assert row_form(state_b) == (Dot(3, "b"), Dot(5, "a"))
    assert migrate(item_b, Dot(3, "b"), Dot(5, "a"), KEY_NAMES) == state_b
    state_c, _ = put(state_b, ROW, KEY_NAMES, Dot(4, "c"))
    assert row_form(state_c) is None  # three regions in the context
    updated, _ = update(state, item, [AttributeWrite(SET, "x", {"S": "w"})], Dot(6, "a"), KEY)
    assert row_form(updated) is None
    counted, _ = update(state, item, [AttributeWrite(INCREMENT, "n", {"N": "1"}, {"N": "1"})],
                        Dot(6, "a"), KEY)
    assert row_form(counted) is None
    assert latest_dot(state_c) == Dot(5, "a")


def test_an_increment_of_zero_on_a_missing_attribute_creates_it() -> None:
    state, item = update(None, None, [AttributeWrite(INCREMENT, "n", {"N": "0"}, {"N": "0"})],
                         Dot(1, "a"), KEY)
    assert item == {**KEY, "n": {"N": "0"}} and materialize(state, KEY) == item


def test_a_local_write_must_be_newer_than_its_regions_earlier_writes() -> None:
    state, item = put(None, ROW, KEY_NAMES, Dot(5, "a"))
    with pytest.raises(AssertionError):
        put(state, ROW, KEY_NAMES, Dot(5, "a"))
    put(state, ROW, KEY_NAMES, Dot(4, "b"))  # another region's clock may be behind


def test_decimal_figures_stay_exact() -> None:
    state, item = update(None, None, [AttributeWrite(INCREMENT, "n", {"N": "0.1"},
                                                     {"N": "0.1"})], Dot(1, "a"), KEY)
    for hlc in range(2, 12):
        total = Decimal("0.1") * hlc
        state, item = update(state, item, [AttributeWrite(INCREMENT, "n", {"N": str(total)},
                                                          {"N": "0.1"})], Dot(hlc, "a"), KEY)
    assert item["n"] == {"N": "1.1"}


def test_the_item_state_modules_are_pure() -> None:
    """STYLE.md: a pure package imports no asyncio, sqlite3, socket, time or random."""
    import ast
    from pathlib import Path

    import atoll.expressions.attrwrites
    import atoll.model.writes
    import atoll.replication.itemstate

    forbidden = {"asyncio", "sqlite3", "socket", "time", "random"}
    modules = [*Path(atoll.replication.itemstate.__file__).parent.glob("*.py"),
               Path(atoll.expressions.attrwrites.__file__).parent / "attrwrites.py",
               Path(atoll.model.writes.__file__).parent / "writes.py"]
    imported: set[str] = set()
    for module in modules:
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
    assert {"orjson", "decimal"} <= imported  # the walk sees imports
    assert imported & forbidden == set()
