"""Cursors (version vectors) and retention plans."""

from __future__ import annotations

import pytest

from atoll.clock import make_hlc
from atoll.invariant import InvariantViolation
from atoll.replication.config import ReplicationConfig
from atoll.replication.cursors import Cursor, advance, from_wire, join, lag, meet, to_wire
from atoll.replication.errors import BadMessage
from atoll.replication.retention import plan_retention


def test_advance_only_to_the_next_seq() -> None:
    cursors: dict[str, Cursor] = {}
    advance(cursors, "a", 1, 10)
    advance(cursors, "a", 2, 11)
    assert cursors == {"a": Cursor(2, 11)}
    with pytest.raises(InvariantViolation):
        advance(cursors, "a", 4, 12)  # a gap
    with pytest.raises(InvariantViolation):
        advance(cursors, "a", 3, 11)  # time must move with seq


def test_meet_join_lag() -> None:
    x = {"a": Cursor(3, 30), "b": Cursor(1, 5)}
    y = {"a": Cursor(1, 10)}
    assert meet([x, y], ["a", "b"]) == {"a": Cursor(1, 10), "b": Cursor(0, 0)}
    assert join(x, y) == x
    assert lag(y, x) == {"a": 2, "b": 1}


def test_wire_round_trip_and_refusals() -> None:
    x = {"a": Cursor(3, 30)}
    assert from_wire(to_wire(x)) == x
    for bad in ([], {"a": [1]}, {"a": [-1, 2]}, {"": [1, 2]}, {"a": [True, 1]}):
        with pytest.raises(BadMessage):
            from_wire(bad)


REGIONS = ["a", "b", "c"]
BOUNDS = (ReplicationConfig().max_records_per_origin, ReplicationConfig().max_tombstone_age_ms)


def test_retention_purges_only_what_every_region_acknowledged() -> None:
    own = {"a": Cursor(5, make_hlc(50)), "b": Cursor(4, make_hlc(40)), "c": Cursor(2, make_hlc(20))}
    acked = {"b": {"a": Cursor(3, make_hlc(30)), "b": Cursor(4, make_hlc(40)), "c": Cursor(2, make_hlc(20))},
             "c": {"a": Cursor(5, make_hlc(50)), "b": Cursor(1, make_hlc(10)), "c": Cursor(2, make_hlc(20))}}
    decision = plan_retention("a", REGIONS, acked, own, 100, *BOUNDS)
    assert dict(decision.plan.purge_through) == {"a": 3, "b": 1, "c": 2}
    assert decision.plan.tombstone_horizon_hlc == make_hlc(10)
    assert not decision.forced


def test_retention_waits_for_a_region_never_heard_from() -> None:
    own = {"a": Cursor(5, make_hlc(50))}
    decision = plan_retention("a", REGIONS, {"b": own}, own, 100, *BOUNDS)
    assert dict(decision.plan.purge_through) == {}
    assert decision.plan.tombstone_horizon_hlc == 0


def test_retention_bounded_maximum_forces_a_purge() -> None:
    own = {"a": Cursor(50, make_hlc(50))}
    decision = plan_retention("a", REGIONS, {}, own, now_ms=10_000,
                              max_records_per_origin=10, max_tombstone_age_ms=1000)
    assert decision.plan.purge_through == {"a": 40}
    assert decision.plan.tombstone_horizon_hlc == make_hlc(9000)
    assert decision.forced
