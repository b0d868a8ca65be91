"""The per-peer pull loop (`Puller`) and the routing between peers (`ReplicationCore`),
as scripts of events and the steps they lead to — the contract both shells follow."""

from __future__ import annotations

import pytest

from atoll.clock import HybridClock
from atoll.replication.apply import ApplyOutcome
from atoll.replication.change import Change, ItemWrite, TableOp, Version, encode_change
from atoll.replication.config import ReplicationConfig
from atoll.replication.core import ReplicationCore
from atoll.replication.cursors import Cursor
from atoll.replication.errors import BadMessage, NotAPeer
from atoll.replication.merge import TableState
from atoll.replication.protocol import Batch, Pull, encode_message
from atoll.replication.puller import DRAIN, REBUILD, SEND, SUBMIT, WAIT, Puller

CONFIG = ReplicationConfig(max_batch_changes=10, pull_wait_ms=100, max_pull_wait_ms=200,
                           request_timeout_ms=500, direct_stale_ms=300, backoff_min_ms=10,
                           backoff_max_ms=40, held_pause_ms=20)


def table(name: str) -> TableState | None:
    return TableState(Version(1, "a"), Version(1, "a"), {"name": name})


def records(origin: str, first: int, last: int) -> tuple[bytes, ...]:
    return tuple(encode_change(Change.create(origin, seq, seq * 10, [
        ItemWrite("t", f"k{seq}".encode(), b"", {"pk": {"S": "k"}})]))
        for seq in range(first, last + 1))


def answer(pull: Pull, recs: tuple[bytes, ...] = (), more: bool = False,
           log_start: dict[str, int] | None = None) -> bytes:
    return encode_message(Batch(pull.request_id, recs, more, log_start or {}))


def puller() -> Puller:
    return Puller("a", "b", CONFIG, HybridClock(lambda: 0), lambda: 0, now_ms=0)


def test_fetch_overlaps_the_apply_in_flight_and_skips_what_it_applies() -> None:
    p = puller()
    assert p.next_step(0).kind == SEND
    first = p.pull({"a": Cursor(2, 20)}, ["a"], 0)
    assert (first.ahead, first.wait_ms, first.origins) == ({}, 100, ("a",))
    assert p.next_step(1) == (WAIT, 500)  # the answer, or the timeout
    assert p.on_answer(answer(first, records("a", 3, 5)), 5, table)
    assert p.next_step(5).kind == SUBMIT
    job = p.take_apply()
    assert [c.seq for c, _frame in job.changes] == [3, 4, 5]
    # the apply runs: the next Pull goes out meanwhile, acknowledging only committed cursors
    assert p.next_step(6).kind == SEND
    second = p.pull({"a": Cursor(2, 20)}, ["a"], 6)
    assert second.cursors == {"a": Cursor(2, 20)} and second.ahead == {"a": 5}
    p.on_answer(answer(second, records("a", 6, 7)), 9, table)  # planned after a/5
    assert p.next_step(9).kind == SUBMIT  # joins the next group commit at once
    assert [c.seq for c, _f in p.take_apply().changes] == [6, 7]
    third = p.pull({"a": Cursor(2, 20)}, ["a"], 10)
    assert third.ahead == {"a": 7}
    p.on_answer(answer(third, records("a", 8, 8)), 11, table)
    assert p.applying == 2 and p.next_step(11).kind == DRAIN  # applies_in_flight reached
    p.on_applied(ApplyOutcome(applied=3), 12)
    assert p.next_step(12).kind == SUBMIT
    assert [c.seq for c, _f in p.take_apply().changes] == [8]


def test_one_apply_in_flight_alternates_fetch_and_apply() -> None:
    p = Puller("a", "b", ReplicationConfig(applies_in_flight=1), HybridClock(lambda: 0),
               lambda: 0, now_ms=0)
    first = p.pull({}, ["a"], 0)
    p.on_answer(answer(first, records("a", 1, 2)), 1, table)
    p.take_apply()
    second = p.pull({}, ["a"], 2)
    p.on_answer(answer(second, records("a", 3, 3)), 3, table)
    assert p.next_step(3).kind == DRAIN
    p.on_applied(ApplyOutcome(applied=2), 4)
    assert p.next_step(4).kind == SUBMIT


def test_an_apply_that_falls_short_stops_the_one_planned_past_it() -> None:
    p = puller()
    first = p.pull({}, ["a"], 0)
    p.on_answer(answer(first, records("a", 1, 3)), 1, table)
    p.take_apply()
    second = p.pull({}, ["a"], 2)
    p.on_answer(answer(second, records("a", 4, 5)), 3, table)
    p.take_apply()
    p.on_applied(ApplyOutcome(applied=1, stopped_at_gap=True), 4)  # a/2 held back
    assert p.planned == {} and p.applying == 1
    p.on_applied(ApplyOutcome(stopped_at_gap=True), 5)  # a/4 found the gap at a/2
    assert p.pull({"a": Cursor(1, 10)}, ["a"], 5).ahead == {} and not p.caught_up


def test_an_apply_that_falls_short_forgets_the_raised_cursors() -> None:
    p = puller()
    first = p.pull({}, ["a"], 0)
    p.on_answer(answer(first, records("a", 1, 3)), 1, table)
    p.take_apply()
    p.on_applied(ApplyOutcome(applied=1, stopped_at_gap=True), 2)
    assert p.pull({"a": Cursor(1, 10)}, ["a"], 2).ahead == {}
    p.on_answer(answer(p.in_flight, records("a", 2, 3)), 3, table)  # type: ignore[arg-type]
    p.take_apply()
    p.on_applied(None, 4)  # a storage fault: backed off like a failed pull
    assert p.next_step(5) == (WAIT, 14) and p.planned == {}


def test_failures_back_off_doubling_to_the_maximum_and_reset_on_success() -> None:
    p = puller()
    waits = []
    now = 0
    for _ in range(4):
        p.pull({}, ["a"], now)
        p.on_failure(now, "connection refused")
        step = p.next_step(now)
        waits.append(step.until_ms - now)
        now = step.until_ms
    assert waits == [10, 20, 40, 40] and p.link.errors == 4 and not p.link.connected
    pull = p.pull({}, ["a"], now)
    assert p.expired(now + 500)  # unanswered for the request timeout: the shell fails it
    p.on_answer(answer(pull), now + 1, table)
    assert p.link.connected and p.backoff_ms == 10 and p.next_step(now + 1).kind == SEND


def test_a_refused_or_foreign_answer_is_a_failure() -> None:
    p = puller()
    pull = p.pull({}, ["a"], 0)
    assert not p.on_answer(b"junk", 1, table)
    assert p.link.bad_messages == 1 and p.in_flight is None
    pull = p.pull({}, ["a"], 20)
    assert not p.on_answer(encode_message(Batch(pull.request_id + 1, (), False)), 21, table)


def test_an_unusable_batch_pauses_unless_the_peer_has_more() -> None:
    p = puller()
    pull = p.pull({}, ["a"], 0)
    p.on_answer(answer(pull, records("a", 2, 3)), 1, table)  # a gap before a/2
    assert p.link.held == 1 and p.next_step(1) == (WAIT, 21)
    pull = p.pull({}, ["a"], 21)
    p.on_answer(answer(pull, records("a", 2, 3), more=True), 22, table)
    assert p.next_step(22).kind == SEND


def test_a_batch_that_says_behind_leads_to_a_rebuild_after_the_apply_in_flight() -> None:
    p = puller()
    pull = p.pull({}, ["a"], 0)
    p.on_answer(answer(pull, records("a", 1, 2)), 1, table)
    p.take_apply()
    pull = p.pull({}, ["a"], 2)
    p.on_answer(answer(pull, log_start={"c": 40}), 3, table)
    assert p.next_step(3).kind == DRAIN
    p.on_applied(ApplyOutcome(applied=2), 4)
    assert p.next_step(4).kind == REBUILD
    assert p.take_rebuild() == {"c": 40} and p.next_step(5).kind == WAIT
    p.on_rebuilt(False, 6)
    assert p.next_step(6) == (WAIT, 46)


def test_origins_are_asked_of_other_peers_once_their_link_is_stale() -> None:
    core = ReplicationCore("b", ["a", "b", "c"], CONFIG, HybridClock(lambda: 0), lambda: 0, 0)
    assert core.origins_via("a", 100) == ["a"]
    core.pullers["c"].link.last_ok_ms = 0
    core.pullers["a"].link.last_ok_ms = 350
    assert core.origins_via("a", 400) == ["a", "c"]  # c failing for 400 ms > 300
    assert core.origins_via("c", 400) == ["c"]
    joined, left = core.set_regions(["b", "c", "d"], 400)
    assert (joined, left) == (["d"], ["a"]) and sorted(core.pullers) == ["c", "d"]


def test_only_peers_may_pull_and_their_pulls_acknowledge_cursors() -> None:
    core = ReplicationCore("b", ["a", "b", "c"], CONFIG, HybridClock(lambda: 0), lambda: 0, 0)
    pull = Pull(1, {"a": Cursor(3, 30)}, 10)
    assert core.accept_pull("a", encode_message(pull)) == pull
    assert core.acked == {"a": {"a": Cursor(3, 30)}}
    for region, data in (("z", encode_message(pull)), ("b", encode_message(pull)),
                         ("c", b"junk"), ("c", encode_message(Batch(1, (), False)))):
        with pytest.raises((NotAPeer, BadMessage)):
            core.accept_pull(region, data)
    assert core.stats.pulls_refused == 4


def test_retention_runs_every_interval_and_purges_what_everyone_acknowledged() -> None:
    core = ReplicationCore("b", ["a", "b"], CONFIG, HybridClock(lambda: 0), lambda: 5000, 0)
    assert not core.retention_due(999) and core.retention_due(1000)
    assert not core.retention_due(1500)
    assert core.retention_job({"b": Cursor(4, 40)}) is None  # a never acknowledged
    core.acked["a"] = {"b": Cursor(3, 30)}
    job = core.retention_job({"b": Cursor(4, 40), "a": Cursor(0, 0)})
    assert job is not None and dict(job.plan.purge_through) == {"b": 3}
    assert job.limit == CONFIG.purge_limit


def test_a_table_op_change_reads_no_table() -> None:
    p = puller()
    pull = p.pull({}, ["a"], 0)
    create = encode_change(Change.create("a", 1, 10, [TableOp("t", "create", {"name": "t"})]))
    p.on_answer(answer(pull, (create,)), 1, lambda name: None)
    assert [c.seq for c, _f in p.take_apply().changes] == [1]


def test_an_unreadable_store_pauses_the_puller_and_starts_over_from_committed_cursors() -> None:
    p = puller()
    pull = p.pull({"a": Cursor(1, 10)}, ["a"], 0)
    p.on_answer(answer(pull, records("a", 2, 3)), 1, table)
    p.take_apply()  # in flight; the next Pull is planned past it ...
    p.pull({"a": Cursor(1, 10)}, ["a"], 2)
    p.on_store_failure(3, "the database is restarting")  # ... when the store cannot be read
    assert (p.in_flight, p.link.errors, p.link.last_error) == (
        None, 1, "storage: the database is restarting")
    assert p.next_step(3) == (WAIT, 43)  # the longest backoff
    p.on_applied(None, 4)  # the apply in flight failed too: its cursors are forgotten
    assert p.pull({"a": Cursor(1, 10)}, ["a"], 43).ahead == {}
