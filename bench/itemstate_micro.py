"""Micro-benchmark of the per-item causal state (atoll.replication.itemstate).

Run: .venv/bin/python bench/itemstate_micro.py
Prints microseconds per operation (best of 5 repeats) for what a write adds to today's
work (the state read from the row, the new state, its bytes), next to that work (the
evaluator, item validation, the item's bytes); then the receiver's join; then the bytes
a state adds to a typical item. Issue 26 asks PutItem/UpdateItem throughput within 10%
and issue 28 ADD within 15% of the build without the state: with ~85 us of CPU per
PutItem and ~125 us per UpdateItem (README figures), the budget is ~8 and ~12-18 us.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable
from typing import Any

from atoll import expressions as ex
from atoll.expressions.attrwrites import attribute_writes
from atoll.model.values import check_item
from atoll.replication.change import item_json
from atoll.replication.itemstate import (
    Dot,
    ItemState,
    Stored,
    apply_stored,
    join,
    materialize,
    put,
    put_stored,
    store,
    update,
    update_stored,
)

Item = dict[str, Any]

KEY = {"pk": {"S": "user#00042"}, "sk": {"S": "profile"}}
KEY_NAMES = frozenset(KEY)
ITEM = {**KEY, "name": {"S": "Ada Lovelace"}, "email": {"S": "ada@example.com"},
        "visits": {"N": "1024"}, "tags": {"SS": ["admin", "beta", "math"]},
        "address": {"M": {"city": {"S": "London"}, "zip": {"S": "W1"}}}}
H = 111_411_200_000_000_000


def per_op_us(stmt: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(stmt, number=number, repeat=5)) / number * 1e6


def write_path_rows() -> list[tuple[str, float, float]]:
    """(operation, today's work us, the state's added work us)."""
    rows = []
    first, first_item = put(None, ITEM, KEY_NAMES, Dot(H, "us-east"))
    row = store(first, first_item, KEY_NAMES)
    assert row.data == b""  # row form: nothing stored beside the item

    def put_today() -> object:
        item = dict(ITEM)
        check_item(item)
        return item_json(item)

    def put_state() -> object:
        return put_stored(row, ITEM, KEY_NAMES, Dot(H + 1, "us-east"))

    today = per_op_us(put_today, 20_000)
    rows.append(("PutItem over a row in row form", today, per_op_us(put_state, 50_000)))
    third = store(*_put_by_three(), KEY_NAMES)
    rows.append(("PutItem over a row written by 3 regions", today,
                 per_op_us(lambda: put_stored(third, ITEM, KEY_NAMES,
                                              Dot(H + 9, "us-east")), 50_000)))

    for label, text, values in (
            ("UpdateItem SET name = :v", "SET #n = :v", {":v": {"S": "Ada King"}}),
            ("UpdateItem ADD visits :one", "ADD visits :one", {":one": {"N": "1"}}),
            ("UpdateItem SET 2 attrs, ADD 1", "SET #n = :v, email = :e ADD visits :one",
             {":v": {"S": "Ada King"}, ":e": {"S": "ada@king.org"}, ":one": {"N": "1"}})):
        parsed = ex.parse_update(text)
        names = {"#n": "name"} if "#n" in text else {}
        stored, item = row, first_item
        for step in range(10):  # a row its region already updated
            new, _ = ex.apply_update(parsed, item, names, values)
            check_item(new)
            writes = attribute_writes(parsed, names, values, item, new)
            stored, item = update_stored(stored, item, writes, Dot(H + 2 + step, "us-east"),
                                         KEY)

        def update_today(parsed: Any = parsed, names: dict[str, str] = names,
                         values: dict[str, Any] = values, item: Item = item) -> object:
            new, _ = ex.apply_update(parsed, item, names, values)
            check_item(new)
            return item_json(new)

        def update_state(parsed: Any = parsed, names: dict[str, str] = names,
                         values: dict[str, Any] = values, item: Item = item,
                         stored: Stored = stored) -> object:
            new, _ = ex.apply_update(parsed, item, names, values)
            check_item(new)
            writes = attribute_writes(parsed, names, values, item, new)
            return update_stored(stored, item, writes, Dot(H + 100, "us-east"), KEY)

        today = per_op_us(update_today, 20_000)
        rows.append((label, today, per_op_us(update_state, 20_000) - today))
    return rows


def _put_by_three() -> tuple[ItemState, Item]:
    state, item = put(None, ITEM, KEY_NAMES, Dot(H, "us-east"))
    state, item = put(state, ITEM, KEY_NAMES, Dot(H + 1, "eu-west"))
    return put(state, ITEM, KEY_NAMES, Dot(H + 2, "ap-south"))


def concurrent_states() -> tuple[ItemState, ItemState, ItemState]:
    """The same item written concurrently in three regions after a common put."""
    base, item = put(None, ITEM, KEY_NAMES, Dot(H, "us-east"))
    parsed = ex.parse_update("SET #n = :v ADD visits :one")
    out = []
    for offset, region in enumerate(("us-east", "eu-west", "ap-south")):
        values = {":v": {"S": region}, ":one": {"N": "1"}}
        new, _ = ex.apply_update(parsed, item, {"#n": "name"}, values)
        writes = attribute_writes(parsed, {"#n": "name"}, values, item, new)
        state, _ = update(base, item, writes, Dot(H + 10 + offset, region), KEY)
        out.append(state)
    return out[0], out[1], out[2]


def receiver_rows() -> list[tuple[str, float]]:
    """A receiver applying a replicated write to its row (`apply_stored`)."""
    rows = []
    local, local_item = put(None, ITEM, KEY_NAMES, Dot(H, "us-east"))
    local_row = store(local, local_item, KEY_NAMES)
    values = {":one": {"N": "1"}}
    parsed = ex.parse_update("ADD visits :one")
    new, _ = ex.apply_update(parsed, local_item, {}, values)
    incoming, incoming_item = update(local, local_item, attribute_writes(
        parsed, {}, values, local_item, new), Dot(H + 1, "eu-west"), KEY)
    incoming_row = store(incoming, incoming_item, KEY_NAMES)
    rows.append(("apply a sequential change (strict decode, join, store as it came)",
                 per_op_us(lambda: apply_stored(local_row, local_item, incoming_row,
                                                incoming_item, KEY), 20_000)))
    a, b, c = concurrent_states()
    ab = join(a, b)
    ab_item = materialize(ab, KEY)
    ab_row = store(ab, ab_item, KEY_NAMES)
    c_item = materialize(c, KEY)
    c_row = store(c, c_item, KEY_NAMES)
    rows.append(("apply a concurrent change (strict decode, join, materialize, "
                 "conflicts, encode)",
                 per_op_us(lambda: apply_stored(ab_row, ab_item, c_row, c_item, KEY), 5_000)))
    rows.append(("  of which join alone", per_op_us(lambda: join(ab, c), 20_000)))
    rows.append(("  of which materialize alone", per_op_us(lambda: materialize(ab, KEY),
                                                           20_000)))
    return rows


def size_rows() -> list[tuple[str, int, int]]:
    """(case, item bytes, state bytes stored beside them)."""
    rows = []
    state, item = put(None, ITEM, KEY_NAMES, Dot(H, "us-east"))
    rows.append(("put by one region (row form: version columns)", len(item_json(item)),
                 len(store(state, item, KEY_NAMES).data)))
    state2, item2 = put(state, ITEM, KEY_NAMES, Dot(H + 1, "eu-west"))
    state3, item3 = put(state2, ITEM, KEY_NAMES, Dot(H + 2, "ap-south"))
    rows.append(("put after writes of 3 regions", len(item_json(item3)),
                 len(store(state3, item3, KEY_NAMES).data)))
    parsed = ex.parse_update("SET #n = :v ADD visits :one")
    for step in range(10):
        values = {":v": {"S": f"name {step}"}, ":one": {"N": "1"}}
        new, _ = ex.apply_update(parsed, item, {"#n": "name"}, values)
        writes = attribute_writes(parsed, {"#n": "name"}, values, item, new)
        state, item = update(state, item, writes, Dot(H + 10 + step, "us-east"), KEY)
    rows.append(("after 10 updates (SET name, ADD visits) by one region",
                 len(item_json(item)), len(store(state, item, KEY_NAMES).data)))
    a, b, c = concurrent_states()
    joined = join(join(a, b), c)
    shown = materialize(joined, KEY)
    rows.append(("after concurrent SET name + ADD visits in 3 regions",
                 len(item_json(shown)), len(store(joined, shown, KEY_NAMES).data)))
    return rows


def main() -> None:
    print("write path: today's work vs what the state adds (us per op)")
    for label, today, added in write_path_rows():
        print(f"  {label:<44} today {today:7.2f}   state +{added:6.2f}   "
              f"(+{added / today * 100:4.0f}% of that work)")
    print("receiver: applying a replicated write (us per op)")
    for label, us in receiver_rows():
        print(f"  {label:<78} {us:7.2f}")
    print("bytes: item vs the state stored beside it")
    for label, item_bytes, state_bytes in size_rows():
        print(f"  {label:<58} item {item_bytes:4d}   state {state_bytes:4d}")


if __name__ == "__main__":
    main()
