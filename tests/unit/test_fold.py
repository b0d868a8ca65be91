"""The fold of departed regions' counters (atoll.replication.fold): who folds and when,
the bounded walk, and the job's re-check, over the memory store."""

from __future__ import annotations

from atoll.clock.hlc import HybridClock
from atoll.model.writes import INCREMENT
from atoll.replication.apply import ApplyChanges, LocalWrite
from atoll.replication.change import Change, TableOp, encode_change
from atoll.replication.cursors import Cursor
from atoll.replication.fold import (
    FoldWork,
    departed_origins,
    final_origins,
    folder,
    is_settled,
    settled,
)
from atoll.replication.itemstate import ItemState, unfolded_regions
from atoll.replication.memory_store import MemoryStore
from atoll.replication.merge import ItemUpdate
from atoll.replication.store import ReplicaStore
from atoll.sim import checkers

DEFINITION = {"KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
              "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]}


def c(seq: int, hlc: int = 0) -> Cursor:
    return Cursor(seq, hlc or seq * 10)


def test_the_lowest_named_region_folds_and_only_departed_origins_are_folded() -> None:
    assert folder(["us-east", "eu-west", "ap-south"]) == "ap-south"
    assert departed_origins({"a": c(1), "b": c(2), "x": c(3)}, ["a", "b"]) == ["x"]


def test_a_departed_origin_is_final_once_no_live_peer_acknowledged_more_of_it() -> None:
    own = {"a": c(5), "x": c(7)}
    assert final_origins("a", ["a", "b", "d"], ["x"], own, {"b": {"x": c(7)}}) == []  # d?
    assert final_origins("a", ["a", "b", "d"], ["x"], own,
                         {"b": {"x": c(7)}, "d": {"x": c(6)}}) == ["x"]
    assert final_origins("a", ["a", "b"], ["x"], own, {"b": {"x": c(8)}}) == []  # b has more


def test_an_item_is_settled_when_every_live_region_holds_its_writes() -> None:
    own = {"a": c(5, 50), "b": c(3, 30)}
    held = settled("a", ["a", "b"], own, {"b": {"a": c(4, 40), "b": c(3, 30)}})
    assert held == {"a": 40, "b": 30}
    state = ItemState({"a": 40, "b": 30, "x": 99}, {}, {}, {}, {})
    assert is_settled(state, held)  # x left: final_origins answers for it
    assert not is_settled(ItemState({"a": 41}, {}, {}, {}, {}), held)


def _store_with_counters(keys: int) -> tuple[MemoryStore, list[Change]]:
    """Region a's store: table t, and `keys` counters incremented by a and by x."""
    x_store = MemoryStore("x")
    x_clock = HybridClock(lambda: 1_000)
    made = [x_store.write(LocalWrite("x", x_clock, (TableOp("t", "create", DEFINITION),),
                                     lambda: 0))]
    for key in range(keys):
        made.append(x_store.write(LocalWrite("x", x_clock, (
            ItemUpdate("t", f"k{key:02d}".encode(), b"", INCREMENT, "c", {"N": "2"}),),
            lambda: 0)))
    store = MemoryStore("a")
    clock = HybridClock(lambda: 2_000)
    store.write(ApplyChanges(tuple((ch, encode_change(ch)) for ch in made), "a", clock,
                             lambda: 0))
    for key in range(keys):
        store.write(LocalWrite("a", clock, (
            ItemUpdate("t", f"k{key:02d}".encode(), b"", INCREMENT, "c", {"N": "1"}),),
            lambda: 0))
    return store, made


def _values(store: ReplicaStore) -> dict[bytes, object]:
    return {key[1]: s.item["c"] for key, s in store.contents().items()  # type: ignore[index]
            if s.item is not None}


def test_the_walk_folds_every_item_in_bounded_jobs_and_a_second_pass_finds_nothing() -> None:
    store, _made = _store_with_counters(7)
    clock = HybridClock(lambda: 3_000)
    work = FoldWork("a", scan_rows=3, batch_items=2, pages_per_step=1,
                    compact_interval_ms=10**9)
    values = _values(store)
    jobs = 0
    for _ in range(50):
        job = work.step(store, ["a", "b"], {"b": {"x": c(8), "a": c(7, 10**12)}}, clock,
                        lambda: 0, 0)
        if job is None and not work.busy:
            if work.stats.state == "done":
                break
            continue
        if job is not None:
            assert len(job.keys) <= 2
            work.done(store.write(job))
            jobs += 1
    assert work.stats.state == "done" and work.stats.folded_items == 7
    assert jobs == 5 and work.stats.fold_changes == 5  # pages of 3 rows, 2 items a job
    assert _values(store) == values == {f"k{k:02d}".encode(): {"N": "3"} for k in range(7)}
    assert not checkers.folded({"a": store}, ["x"])
    assert work.stats.passes == 2  # the pass that folded, and one that found nothing


def test_pages_and_jobs_sized_per_step_fold_every_item_once() -> None:
    """The node's shell sizes each step's page and job (atoll.replication.pacing): sizes
    that change from step to step, down to one row and one item, still fold every item
    exactly once, and never exceed the configured bounds."""
    store, _made = _store_with_counters(9)
    clock = HybridClock(lambda: 3_000)
    work = FoldWork("a", scan_rows=4, batch_items=3, pages_per_step=1,
                    compact_interval_ms=10**9)
    values = _values(store)
    sizes = [(1, 1), (2, 5), (9, 2), (0, 0), (3, 1)]  # (page rows, job items); 0: configured
    sized = []
    for step in range(200):
        page_rows, job_items = sizes[step % len(sizes)]
        job = work.step(store, ["a", "b"], {"b": {"x": c(10), "a": c(9, 10**12)}}, clock,
                        lambda: 0, 0, page_rows, job_items)
        if job is None and not work.busy:
            if work.stats.state == "done":
                break
            continue
        if job is not None:
            sized.append(len(job.keys))
            assert len(job.keys) <= min(job_items or 3, 3)
            work.done(store.write(job))
    assert work.stats.state == "done" and work.stats.folded_items == 9 == sum(sized)
    assert 1 in sized and max(sized) <= 3
    assert _values(store) == values
    assert not checkers.folded({"a": store}, ["x"])


def test_a_job_refolds_nothing_and_leaves_unsettled_items_for_later() -> None:
    store, _made = _store_with_counters(2)
    clock = HybridClock(lambda: 3_000)
    work = FoldWork("a", scan_rows=10, batch_items=10, pages_per_step=1,
                    compact_interval_ms=10**9)
    # b has not acknowledged a's increments: the items are not settled
    job = work.step(store, ["a", "b"], {"b": {"x": c(3), "a": c(0, 1)}}, clock, lambda: 0,
                    0)
    assert job is not None and len(job.keys) == 2
    result = store.write(job)
    assert result.folded == 0 and result.change is None and result.deferred == 2
    work.done(result)
    settled_job = type(job)(job.region, job.clock, job.table, job.keys, job.departed,
                            {"a": 10**12}, job.now_ms)
    assert store.write(settled_job).folded == 2
    again = store.write(settled_job)
    assert again.folded == 0 and again.change is None  # re-checked in the transaction
    for stored in store.contents().values():
        if stored.item is not None:
            state = checkers.item_state(stored, DEFINITION, b"", b"")
            assert unfolded_regions(state, ("a", "b")) == []


def test_a_cut_is_stable_only_after_a_second_round_covers_what_peers_wrote_before_it() -> None:
    from atoll.replication.fold import StableCut
    cut = StableCut()
    own = {"a": c(5, 50), "b": c(3, 30)}
    b_acks = {"a": c(5, 50), "b": c(4, 40)}  # b wrote its change 4 before it held a's 5
    assert cut.observe("a", ["a", "b"], own, {}) == {}  # b not heard from
    assert cut.observe("a", ["a", "b"], own, {"b": b_acks}) == {}  # first round
    assert cut.observe("a", ["a", "b"], own, {"b": b_acks}) == {}  # a lacks b's 4
    own = {"a": c(5, 50), "b": c(4, 40)}
    assert cut.observe("a", ["a", "b"], own, {"b": b_acks}) == {"a": 50, "b": 30}
    assert cut.observe("a", ["a", "b", "d"], own, {"b": b_acks}) == {}  # a region joined
