"""Defence in depth on apply (issue 26 item 3): an item filed under a row key its key
attributes do not encode to, and a change reusing an (origin, seq) already logged for
another change, are refused and never stored — the pure checks
(atoll.replication.admission) and the planner's duplicate check. The driver's apply does
not call them yet (the single replication driver landed beside this work)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from atoll.model.keys import encode_key_value
from atoll.replication.admission import key_mismatch, reused_sequence
from atoll.replication.change import Change, ItemWrite, encode_change
from atoll.replication.cursors import Cursor
from atoll.replication.protocol import MAX_DUPLICATE_CHECKS, plan_batch


def write(item: dict[str, Any] | None, pk: bytes, sk: bytes = b"") -> ItemWrite:
    return ItemWrite("tbl", pk, sk, item)


S_KEY = ("pk", "S", None, None)
NS_KEY = ("pk", "N", "sk", "B")


@pytest.mark.parametrize(("op", "schema", "why"), [
    (write({"pk": {"S": "a"}, "v": {"N": "1"}}, b"a"), S_KEY, None),
    (write(None, b"a"), S_KEY, None),  # a delete carries no item
    (write({"pk": {"N": "1.50"}, "sk": {"B": base64.b64encode(b"\x00\x01").decode()}},
           encode_key_value({"N": "1.5"}, "N"), b"\x00\x01"), NS_KEY, None),
    (write({"pk": {"S": "b"}}, b"a"), S_KEY, "partition key pk={'S': 'b'}"),
    (write({"v": {"S": "a"}}, b"a"), S_KEY, "lacks its partition key 'pk' of type S"),
    (write({"pk": {"N": "97"}}, b"a"), S_KEY, "lacks its partition key 'pk' of type S"),
    (write({"pk": {"S": "a"}}, b"a", b"x"), S_KEY, "has a sort key but the table has none"),
    (write({"pk": {"N": "1"}, "sk": {"B": "AAE="}}, encode_key_value({"N": "1"}, "N"), b"\x00"),
     NS_KEY, "sort key sk="),
    (write({"pk": {"N": "not a number"}}, b"a"), ("pk", "N", None, None), "partition key"),
])
def test_an_item_must_encode_to_the_row_key_it_is_filed_under(
        op: ItemWrite, schema: tuple[Any, ...], why: str | None) -> None:
    found = key_mismatch(op, *schema)
    assert (found is None) if why is None else (found is not None and why in found)


def change(origin: str, seq: int, item: dict[str, Any], pk: bytes) -> tuple[Change, bytes]:
    made = Change.create(origin, seq, 1 << 20, [ItemWrite("tbl", pk, b"", item)])
    return made, encode_change(made)


def test_a_duplicate_is_refused_only_if_the_log_holds_another_change_under_its_seq() -> None:
    one, frame = change("b", 3, {"pk": {"S": "a"}}, b"a")
    _other, other_frame = change("b", 3, {"pk": {"S": "z"}}, b"z")
    assert reused_sequence(one, frame, frame) is None
    assert reused_sequence(one, frame, None) is None  # purged: nothing to compare against
    why = reused_sequence(one, frame, other_frame)
    assert why is not None and "sequence 3" in why and "origin b" in why


def test_the_planner_refuses_a_duplicate_that_reused_a_sequence() -> None:
    logged = {("b", 1): change("b", 1, {"pk": {"S": "a"}}, b"a")[1],
              ("b", 2): change("b", 2, {"pk": {"S": "c"}}, b"c")[1]}
    same = logged[("b", 1)]
    reused = change("b", 2, {"pk": {"S": "new"}}, b"new")[1]
    plan = plan_batch([same, reused], {"b": Cursor(2, 0)}, lambda _t: None,
                      lambda origin, seq: logged.get((origin, seq)))
    assert plan.duplicates == 1 and plan.accepted == []
    assert len(plan.refused) == 1 and "sequence 2" in plan.refused[0]
    # without the changelog reader it is skipped as a duplicate, as before
    assert plan_batch([same, reused], {"b": Cursor(2, 0)}, lambda _t: None).duplicates == 2


def test_the_planner_compares_a_bounded_number_of_duplicates_per_batch() -> None:
    reads: list[int] = []
    records = [change("b", n, {"pk": {"S": str(n)}}, str(n).encode())[1]
               for n in range(1, MAX_DUPLICATE_CHECKS + 51)]

    def logged(_origin: str, seq: int) -> bytes | None:
        reads.append(seq)
        return None

    plan = plan_batch(records, {"b": Cursor(10_000, 0)}, lambda _t: None, logged)
    assert plan.duplicates == len(records) and len(reads) == MAX_DUPLICATE_CHECKS

