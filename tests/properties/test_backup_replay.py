"""Replay (atoll.backup.replay) against a naive reference, over seeded multi-region histories.

The reference merges every change stamped at or before T into an empty store with the
merge rule. Replay starts instead from a snapshot (the merge of each origin's first
changes, live items and tombstones alike) and an archive that holds the later changes —
in any order across origins, with some records twice and some from below the snapshot's
cursors. Both must give the same items at every T from the snapshot's newest stamp on.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from atoll.backup.replay import replay
from atoll.clock.hlc import hlc_physical_ms, make_hlc
from atoll.model.keys import encode_key_value, partition_hash
from atoll.model.writes import INCREMENT
from atoll.replication.change import (
    Change,
    ItemKey,
    ItemWrite,
    TableOp,
    Version,
    encode_change,
    item_json,
)
from atoll.replication.merge import (
    ItemUpdate,
    Stored,
    TableState,
    local_item_update,
    local_item_write,
    merge_change,
)

TABLE = "t"
OTHER = "other"
ORIGINS = ("a", "b", "c")
DEFINITION = {"name": TABLE}


def _history(seed: int, changes: int) -> list[Change]:
    """Changes of three origins, each origin's stamps increasing; writes to a few keys of
    `t` (and of another table, which replay must ignore), some in transactions."""
    rng = random.Random(seed)
    clock = dict.fromkeys(ORIGINS, 1_000)
    seqs = dict.fromkeys(ORIGINS, 0)
    last: dict[str, int] = {}
    history = []
    for _ in range(changes):
        origin = rng.choice(ORIGINS)
        clock[origin] += rng.randint(0, 40)
        seqs[origin] += 1
        ops: list[Any] = []
        for key in rng.sample(range(8), rng.randint(1, 3)):
            table = OTHER if rng.random() < 0.15 else TABLE
            item = None if rng.random() < 0.3 else {"pk": {"S": f"k{key}"},
                                                     "v": {"N": str(rng.randint(0, 99))}}
            ops.append(ItemWrite(table, f"k{key}".encode(), b"", item))
        keys = {(op.table, op.pk) for op in ops}
        if len(keys) != len(ops):
            ops = ops[:1]
        # an origin's stamps strictly increase, as its hybrid logical clock's do (two
        # writes of one origin never share a stamp: the merge names a write by it)
        hlc = max(make_hlc(clock[origin], rng.randint(0, 3)), last.get(origin, 0) + 1)
        last[origin] = hlc
        history.append(Change.create(origin, seqs[origin], hlc, ops))
    return history


def _merged(changes: list[Change]) -> dict[ItemKey, Stored]:
    store: dict[ItemKey, Stored] = {}
    state = TableState(Version(1, "a"), Version(1, "a"), DEFINITION)
    for change in changes:
        store.update(merge_change(change, store.get, lambda _name: state).items)
    return store


def _items(store: dict[ItemKey, Stored]) -> set[bytes]:
    return {item_json(s.item) for key, s in store.items() if key[0] == TABLE and s.item}


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), changes=st.integers(1, 80), cut=st.floats(0, 1),
       later=st.integers(0, 2_000), on_a_stamp=st.booleans())
def test_replay_equals_merging_everything_up_to_the_point(seed: int, changes: int, cut: float,
                                                          later: int, on_a_stamp: bool) -> None:
    rng = random.Random(seed ^ 0x5EED)
    history = _history(seed, changes)
    per_origin = {o: [c for c in history if c.origin == o] for o in ORIGINS}
    cursors = {o: int(len(cs) * cut) for o, cs in per_origin.items()}
    below = [c for c in history if c.seq <= cursors[c.origin]]
    covered = max((hlc_physical_ms(c.hlc) for c in below), default=0)
    until_ms = covered + later
    stamps = [hlc_physical_ms(c.hlc) for c in history if hlc_physical_ms(c.hlc) >= covered]
    if on_a_stamp and stamps:  # exactly on a change's stamp: that change is in
        until_ms = rng.choice(stamps)
    snapshot_store = _merged(below)
    # as the storage holds them: live items (some over an older tombstone of their key),
    # then tombstones
    live = sorted((partition_hash(pk), pk, sk, s.version.hlc, s.version.origin,
                   item_json(s.item))
                  for (table, pk, sk), s in snapshot_store.items()
                  if table == TABLE and s.item is not None)
    dead = sorted((partition_hash(pk), pk, sk, s.version.hlc, s.version.origin, None)
                  for (table, pk, sk), s in snapshot_store.items()
                  if table == TABLE and s.item is None)
    dead += [(h, pk, sk, hlc - 1, origin, None) for h, pk, sk, hlc, origin, _item in live
             if rng.random() < 0.5]
    rows = live + sorted(dead)
    archived = [c for c in history if c.seq > cursors[c.origin] or rng.random() < 0.2]
    archived += rng.sample(archived, len(archived) // 4)  # archived twice
    rng.shuffle(archived)  # origins interleave in any order

    def snapshot() -> Iterator[Any]:
        return iter(rows)

    def records() -> Iterator[Any]:
        return iter([(c.origin, c.seq, c.hlc, encode_change(c)) for c in archived])

    state = TableState(Version(1, "a"), Version(1, "a"), DEFINITION)
    replayed = replay(TABLE, state, cursors, until_ms, snapshot, records)
    expected = _items(_merged([c for c in history if hlc_physical_ms(c.hlc) <= until_ms]))
    got = list(replayed.items)
    assert len(got) == len(set(got))  # each item once
    assert set(got) == expected
    assert replayed.definition == DEFINITION


def test_a_table_dropped_before_the_point_replays_to_nothing() -> None:
    put = Change.create("a", 1, make_hlc(1_000), [ItemWrite(TABLE, b"k", b"", {"pk": {"S": "k"}})])
    drop = Change.create("a", 2, make_hlc(2_000), [TableOp(TABLE, "delete")])
    state = TableState(Version(1, "a"), Version(1, "a"), DEFINITION)

    def records() -> Iterator[Any]:
        return iter([(c.origin, c.seq, c.hlc, encode_change(c)) for c in (put, drop)])

    assert replay(TABLE, state, {}, 1_500, lambda: iter(()), records).definition == DEFINITION
    assert set(replay(TABLE, state, {}, 1_500, lambda: iter(()), records).items) == {
        orjson.dumps({"pk": {"S": "k"}}, option=orjson.OPT_SORT_KEYS)}
    gone = replay(TABLE, state, {}, 2_500, lambda: iter(()), records)
    assert gone.definition is None and list(gone.items) == []


def test_a_definition_change_before_the_point_is_the_restored_definition() -> None:
    update = Change.create("b", 1, make_hlc(3_000),
                           [TableOp(TABLE, "update", {"name": TABLE, "v": 2})])
    state = TableState(Version(1, "a"), Version(1, "a"), DEFINITION)

    def records() -> Iterator[Any]:
        return iter([("b", 1, update.hlc, encode_change(update))])

    assert replay(TABLE, state, {}, 2_999, lambda: iter(()), records).definition == DEFINITION
    assert replay(TABLE, state, {}, 3_000, lambda: iter(()), records).definition == {
        "name": TABLE, "v": 2}



def test_writes_replay_onto_a_number_keyed_table_in_the_engines_form() -> None:
    """The engine's tables keep key types in attribute_types: the replay decodes a number
    sort key as a number, so each write's state (a whole-item put in the row form, an
    ADD with its state spelled out) shows the item it carries — decoded as a string the
    key differed and the write was refused as damaged. A snapshot row without a state
    stands for a whole-item write of its version."""
    definition = {"name": TABLE, "hash_key": "pk", "range_key": "sk",
                  "attribute_types": {"pk": "S", "sk": "N"}}
    sk = encode_key_value({"N": "7"}, "N")
    first = {"pk": {"S": "k"}, "sk": {"N": "7"}, "v": {"N": "1"}}
    second = {"pk": {"S": "k"}, "sk": {"N": "7"}, "v": {"S": "two"}}
    at_first, at_second, at_third = (Version(make_hlc(ms), "a") for ms in (1_000, 2_000, 3_000))
    put = local_item_write(Stored(at_first, first), ItemWrite(TABLE, b"k", sk, second),
                           at_second, definition)
    put_stored = Stored(at_second, put.item, put.prev, put.state)
    add = local_item_update(put_stored, ItemUpdate(TABLE, b"k", sk, INCREMENT, "n",
                                                   {"N": "5"}), at_third, definition)
    assert add.state  # an increment carries the item's state
    changes = [Change.create("a", seq, at.hlc, [write])
               for seq, at, write in ((2, at_second, put), (3, at_third, add))]
    state = TableState(Version(1, "a"), Version(1, "a"), definition)
    rows = [(partition_hash(b"k"), b"k", sk, at_first.hlc, "a", item_json(first))]

    def records() -> Iterator[Any]:
        return iter([(c.origin, c.seq, c.hlc, encode_change(c)) for c in changes])

    def at(until_ms: int) -> list[bytes]:
        return list(replay(TABLE, state, {"a": 1}, until_ms, lambda: iter(rows), records).items)

    assert at(1_500) == [item_json(first)]
    assert at(2_500) == [item_json(second)]
    assert at(3_500) == [item_json({**second, "n": {"N": "5"}})]
