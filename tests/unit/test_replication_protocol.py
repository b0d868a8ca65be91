"""The pull protocol's messages and the receiver's planning: wire round trips, refusals
of damaged or malformed messages, and `plan_batch` (per origin, the run that continues
the cursor; a gap or a table not seen yet holds the origin)."""

from __future__ import annotations

import pytest

from atoll.replication.change import Change, ItemWrite, TableOp, Version, encode_change
from atoll.replication.cursors import Cursor
from atoll.replication.errors import BadMessage
from atoll.replication.merge import TableState
from atoll.replication.protocol import (
    Batch,
    Pull,
    checksummed,
    decode_message,
    encode_message,
    plan_batch,
)

CREATE = TableOp("t", "create", {"name": "t"})


def write(origin: str, seq: int, key: bytes = b"k", table: str = "t") -> Change:
    return Change.create(origin, seq, seq * 10, [ItemWrite(table, key, b"", {"pk": {"S": "k"}})])


def no_tables(name: str) -> TableState | None:
    return None


def every_table(name: str) -> TableState | None:
    return TableState(Version(1, "a"), Version(1, "a"), {"name": name})


def test_message_wire_round_trip() -> None:
    pull = Pull(3, {"a": Cursor(2, 9)}, 50, origins=("a", "c"), ahead={"c": 7}, wait_ms=1000)
    assert decode_message(encode_message(pull)) == pull
    batch = Batch(3, (b"x", b"yz"), True, {"a": 4})
    assert decode_message(encode_message(batch)) == batch


@pytest.mark.parametrize("data", [
    b"",
    b"\x00\x00\x00\x00P{}",
    encode_message(Pull(1, {}, 5))[:-1],  # truncated: the checksum no longer matches
    encode_message(Pull(1, {}, 5)).replace(b'"m":5', b'"m":0'),  # checksum, and bounds
])
def test_damaged_or_malformed_messages_are_refused(data: bytes) -> None:
    with pytest.raises(BadMessage):
        decode_message(data)


def test_a_well_framed_pull_with_bad_fields_is_refused() -> None:
    for payload in (b'P{"id":1,"c":{},"m":5,"o":"a","a":{},"w":0}',
                    b'P{"id":1,"c":{},"m":5,"o":[],"a":{"a":-1},"w":0}',
                    b'P{"id":1,"c":{},"m":5001,"o":[],"a":{},"w":0}',
                    b'P{"id":1,"c":{"a":[1]},"m":5,"o":[],"a":{},"w":0}'):
        with pytest.raises(BadMessage):
            decode_message(checksummed(payload))


def test_plan_keeps_per_origin_the_run_after_the_cursor() -> None:
    records = [encode_change(c) for c in (write("a", 3), write("a", 1), write("a", 2),
                                          write("c", 2), write("a", 5))]
    plan = plan_batch(records, {"a": Cursor(1, 10)}, every_table)
    assert [(c.origin, c.seq) for c in plan.accepted] == [("a", 2), ("a", 3)]
    assert plan.duplicates == 1
    assert plan.held == {"a": "gap", "c": "gap"}  # a/5 after a hole; c/2 without c/1
    assert plan.frames == [encode_change(c) for c in plan.accepted]  # as received


def test_a_change_into_a_table_not_seen_yet_waits_for_its_creation() -> None:
    create = Change.create("a", 1, 10, [CREATE])
    into = write("c", 1)
    alone = plan_batch([encode_change(into)], {}, no_tables)
    assert alone.accepted == [] and alone.held == {"c": "unknown table in c/1"}
    # its creation from another origin later in the same batch: both apply, in order
    both = plan_batch([encode_change(into), encode_change(create)], {}, no_tables)
    assert [(c.origin, c.seq) for c in both.accepted] == [("a", 1), ("c", 1)]


def test_damaged_records_are_refused_alone() -> None:
    good = encode_change(Change.create("a", 1, 10, [CREATE]))
    bad = bytearray(encode_change(write("a", 2)))
    bad[-3] ^= 1
    plan = plan_batch([good, bytes(bad)], {}, no_tables)
    assert [c.seq for c in plan.accepted] == [1] and len(plan.refused) == 1
