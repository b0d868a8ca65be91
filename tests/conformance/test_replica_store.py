"""The replication store contract (atoll.replication.store), run against every store:
the memory store and the node's SQLite store (engine/replica_store.py, on a real
`SqliteStorage` driven with `write_sync`). Every change goes through the one set of jobs
in atoll.replication.apply, so what is checked here is the pair "jobs + store".

Add a factory to STORES to check another implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from atoll.clock import HybridClock
from atoll.engine.replica_store import EngineReplicaStore, context_for
from atoll.replication.apply import (
    AdoptCursors,
    ApplyChanges,
    ApplyOutcome,
    LocalWrite,
    MergeSnapshotRows,
    MergeSnapshotTables,
    Purge,
)
from atoll.replication.change import Change, ItemWrite, Op, TableOp, Version, encode_change
from atoll.replication.config import ReplicationConfig
from atoll.replication.cursors import Cursor
from atoll.replication.errors import UnknownTable
from atoll.replication.faults import DropItemWrites
from atoll.replication.memory_store import MemoryStore
from atoll.replication.merge import Stored, TableState
from atoll.replication.protocol import Batch, Pull, encode_message
from atoll.replication.puller import SEND, SUBMIT, Puller
from atoll.replication.store import (
    ReplicaStore,
    RetentionPlan,
    StoreTxn,
    digest_snapshot,
    snapshot,
)
from atoll.storage import SqliteStorage

NOW_MS = 1_000_000


class Stores:
    """Opens a region's store, and reopens it as a restarted node would."""

    def __init__(self, kind: str, root: Path) -> None:
        self.kind = kind
        self.root = root
        self.memory: dict[str, MemoryStore] = {}
        self.storages: dict[str, SqliteStorage] = {}

    def open(self, region: str, wrap: Callable[[StoreTxn], StoreTxn] | None = None
             ) -> ReplicaStore:
        if self.kind == "memory":
            if region not in self.memory:
                self.memory[region] = MemoryStore(region, wrap=wrap)
            return self.memory[region]
        old = self.storages.pop(region, None)
        if old is not None:
            old.close()
        storage = SqliteStorage(str(self.root / f"{region}.db"), durable=False, region=region)
        self.storages[region] = storage
        return EngineReplicaStore(context_for(storage, region, lambda: NOW_MS), wrap=wrap)

    def close(self) -> None:
        for storage in self.storages.values():
            storage.close()


@pytest.fixture(params=["memory", "sqlite"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    opened = Stores(request.param, tmp_path)
    yield opened
    opened.close()


def definition(name: str = "t", table_id: str = "t-1", index: bool = True) -> dict[str, Any]:
    """An engine table definition (the form DDL changes carry)."""
    indexes = [{"name": "by-g", "kind": "GSI", "hash_key": "g", "range_key": None,
                "projection": "ALL", "non_key_attributes": [], "iid": 1, "status": "ACTIVE",
                "read_capacity": 0, "write_capacity": 0}] if index else []
    return {"name": name, "hash_key": "pk", "range_key": None,
            "attribute_types": {"pk": "S", "g": "S"}, "created_at": 0.0, "table_id": table_id,
            "indexes": indexes, "next_iid": 2}


CREATE = TableOp("t", "create", definition())


def item(value: int, key: str = "k") -> dict[str, Any]:
    return {"pk": {"S": key}, "v": {"N": str(value)}, "g": {"S": f"g{value % 2}"}}


def put(value: int | None, key: bytes = b"k", prev: Version | None = None,
        table: str = "t") -> ItemWrite:
    return ItemWrite(table, key, b"", None if value is None else item(value, key.decode()), prev)


def remote(origin: str, seq: int, hlc: int, *ops: Op) -> Change:
    return Change.create(origin, seq, hlc, list(ops))


def apply(store: ReplicaStore, *changes: Change) -> ApplyOutcome:
    clock = HybridClock(lambda: NOW_MS)
    return store.write(ApplyChanges(tuple((c, encode_change(c)) for c in changes),
                                    store.region, clock, lambda: NOW_MS))


def local(store: ReplicaStore, clock: HybridClock, *ops: Op) -> Change:
    return store.write(LocalWrite(store.region, clock, ops, lambda: NOW_MS))


def seqs(store: ReplicaStore, origin: str) -> list[int]:
    return [seq for seq, _frame in store.records_since(origin, 0, 100)]


def state(store: ReplicaStore) -> tuple[Any, ...]:
    return (store.cursors(), digest_snapshot(snapshot(store)), store.contents(),
            {o: seqs(store, o) for o in store.cursors()}, len(store.conflicts()))


def test_an_empty_store(stores: Stores) -> None:
    store = stores.open("a")
    assert store.region == "a"
    assert store.cursors() == {} and store.log_start() == {} and store.conflicts() == []
    assert store.records_since("a", 0, 10) == [] and store.table_state("t") is None
    assert store.contents() == {} and store.table_states() == {}


def test_local_writes_number_densely_carry_their_state_and_are_logged(stores: Stores) -> None:
    store = stores.open("a")
    clock = HybridClock(lambda: NOW_MS)
    first = local(store, clock, CREATE)
    second = local(store, clock, put(1))
    third = local(store, clock, put(2))
    assert [first.seq, second.seq, third.seq] == [1, 2, 3]
    # Each write carries its item's causal state in the row form: its own version over
    # `prev`, the one other region's write it observed (a's own earlier write is implied).
    assert second.ops[0].prev is None  # type: ignore[union-attr]
    assert third.ops[0].prev is None and third.ops[0].state == b""  # type: ignore[union-attr]
    assert store.cursors() == {"a": Cursor(3, third.hlc)}
    assert store.records_since("a", 0, 10) == [(c.seq, encode_change(c))
                                               for c in (first, second, third)]
    assert store.records_since("a", 2, 10) == [(3, encode_change(third))]
    b_put = remote("b", 1, third.hlc + 1, put(3))
    apply(store, b_put)
    fourth = local(store, clock, put(4))
    assert fourth.ops[0].prev == b_put.version  # type: ignore[union-attr]
    reopened = stores.open("a")  # a restart: the next local change continues the log
    assert local(reopened, clock, put(5)).seq == 5


def test_a_local_write_into_an_unknown_table_changes_nothing(stores: Stores) -> None:
    store = stores.open("a")
    clock = HybridClock(lambda: NOW_MS)
    with pytest.raises(UnknownTable):
        local(store, clock, put(1))
    assert store.cursors() == {} and store.contents() == {}
    store = stores.open("a")  # nothing of it reached the disk either
    assert store.cursors() == {} and store.records_since("a", 0, 10) == []


def test_apply_skips_duplicates_and_advances_cursors_with_the_changes(stores: Stores) -> None:
    store = stores.open("b")
    changes = [remote("a", 1, 10, CREATE), remote("a", 2, 11, put(1))]
    assert apply(store, *changes).applied == 2
    again = apply(store, *changes)
    assert (again.applied, again.duplicates, again.complete) == (0, 2, True)
    assert store.cursors() == {"a": Cursor(2, 11)}
    assert store.records_since("a", 0, 10) == [(c.seq, encode_change(c)) for c in changes]
    assert apply(store, remote("b", 1, 12, put(5))).duplicates == 1  # its own origin: never


def test_apply_stops_at_a_gap_keeping_what_came_before(stores: Stores) -> None:
    store = stores.open("b")
    outcome = apply(store, remote("a", 1, 10, CREATE), remote("a", 2, 11, put(1)),
                    remote("a", 4, 13, put(2)), remote("c", 1, 14, put(3, key=b"j")))
    assert outcome.stopped_at_gap and not outcome.complete and outcome.applied == 2
    assert store.cursors() == {"a": Cursor(2, 11)} and seqs(store, "a") == [1, 2]
    assert ("t", b"j", b"") not in store.contents()  # nothing past the gap either


def test_the_driver_never_applies_past_a_gap_and_asks_again_from_committed_cursors(
        stores: Stores) -> None:
    """The driver the node and the simulator run (`Puller`) over each store: the apply in
    flight fails, so the batch fetched meanwhile (planned after it, submitted behind it)
    starts past a gap; its apply stops there, and the next Pull asks again from the committed cursors."""
    store = stores.open("b")
    log = [remote("a", 1, 10, CREATE)] + [
        remote("a", seq, 10 + seq, put(seq, key=f"k{seq}".encode())) for seq in range(2, 8)]
    apply(store, log[0])
    p = Puller("a", "b", ReplicationConfig(), HybridClock(lambda: NOW_MS), lambda: NOW_MS, 0)

    def answer(pull: Pull, first: int, last: int) -> bytes:  # the peer's records first..last
        frames = tuple(encode_change(c) for c in log[first - 1:last])
        return encode_message(Batch(pull.request_id, frames, False))

    assert p.on_answer(answer(p.pull(store.cursors(), ["a"], 0), 2, 4), 1, store.table_state)
    in_flight = p.take_apply()  # a/2..4
    overlapped = p.pull(store.cursors(), ["a"], 2)  # fetched while it runs
    assert overlapped.cursors == {"a": Cursor(1, 10)} and overlapped.ahead == {"a": 4}
    p.on_answer(answer(overlapped, 5, 7), 3, store.table_state)
    assert p.next_step(3).kind == SUBMIT  # submitted behind the apply in flight
    planned_past = p.take_apply()  # a/5..7, planned after a/4

    def disk_full(txn: StoreTxn) -> None:
        in_flight(txn)
        raise RuntimeError("the disk is full")

    with pytest.raises(RuntimeError):
        store.write(disk_full)
    p.on_applied(None, 4)
    outcome = store.write(planned_past)  # the store runs it next: a/4 never came
    assert outcome.stopped_at_gap and outcome.applied == 0
    assert store.cursors() == {"a": Cursor(1, 10)} and len(store.contents()) == 0
    p.on_applied(outcome, 5)
    wake = p.next_step(5).until_ms  # the backoff after the failed apply
    assert p.next_step(wake).kind == SEND
    again = p.pull(store.cursors(), ["a"], wake)
    assert again.cursors == {"a": Cursor(1, 10)} and again.ahead == {}
    p.on_answer(answer(again, 2, 7), wake + 1, store.table_state)
    outcome = store.write(p.take_apply())
    assert outcome.complete and outcome.applied == 6
    assert store.cursors() == {"a": Cursor(7, 17)} and seqs(store, "a") == list(range(1, 8))


def test_apply_holds_a_change_into_an_unknown_table(stores: Stores) -> None:
    store = stores.open("b")
    outcome = apply(store, remote("a", 1, 10, CREATE), remote("c", 1, 11, put(1, table="u")))
    assert outcome.held_for_table == "u" and outcome.applied == 1
    assert store.cursors() == {"a": Cursor(1, 10)}


def test_a_job_that_fails_leaves_nothing_behind(stores: Stores) -> None:
    store = stores.open("b")
    apply(store, remote("a", 1, 10, CREATE), remote("a", 2, 11, put(1)))
    before = state(store)

    def failing(txn: StoreTxn) -> None:
        ApplyChanges(tuple((c, encode_change(c)) for c in [
            remote("a", 3, 12, put(None)), remote("c", 1, 13, TableOp("u", "create",
                                                                      definition("u", "u-1")))]),
            "b", HybridClock(lambda: NOW_MS), lambda: NOW_MS)(txn)
        raise RuntimeError("the disk is full")

    with pytest.raises(RuntimeError):
        store.write(failing)
    assert state(store) == before and store.table_state("u") is None


def test_last_writer_wins_and_concurrent_losers_are_logged(stores: Stores) -> None:
    store = stores.open("b")
    apply(store, remote("a", 1, 10, CREATE), remote("a", 2, 20, put(1)))
    outcome = apply(store, remote("c", 1, 15, put(3)))  # older, concurrent: loses
    assert [c.loser for c in outcome.conflicts] == [Version(15, "c")]
    apply(store, remote("c", 2, 30, put(None)))  # newer concurrent delete: wins
    assert snapshot(store).items == {}
    apply(store, remote("a", 3, 25, put(9, prev=Version(20, "a"))))  # older than the tombstone
    assert snapshot(store).items == {}  # no resurrection
    apply(store, remote("a", 4, 26, put(None, prev=Version(25, "a"))))  # two deletes agree
    losers = [c.loser for c in store.conflicts()]
    assert losers == [Version(15, "c"), Version(20, "a"), Version(25, "a")]
    tombstone = store.contents()[("t", b"k", b"")]  # both deletes' dots in its state
    assert (tombstone.version, tombstone.item) == (Version(30, "c"), None)
    apply(store, remote("a", 5, 40, put(7)))  # a put after the delete: live again
    assert store.contents()[("t", b"k", b"")].version == Version(40, "a")


def test_deleting_a_table_drops_its_items_and_later_writes(stores: Stores) -> None:
    store = stores.open("b")
    apply(store, remote("a", 1, 10, CREATE), remote("a", 2, 11, put(1)),
          remote("a", 3, 12, TableOp("t", "delete")))
    apply(store, remote("c", 1, 11, put(5)))  # a concurrent write into the dead table
    assert store.contents() == {} and not store.table_state("t").live  # type: ignore[union-attr]
    assert store.cursors()["c"] == Cursor(1, 11)  # applied: it just does nothing


def test_a_concurrent_create_that_wins_replaces_the_table(stores: Stores) -> None:
    store = stores.open("b")
    apply(store, remote("a", 1, 10, CREATE), remote("a", 2, 11, put(1)))
    other = TableOp("t", "create", definition(table_id="t-2", index=False))
    apply(store, remote("c", 1, 12, other))
    assert store.table_state("t") == TableState(Version(12, "c"), Version(12, "c"),
                                                definition(table_id="t-2", index=False))
    assert store.contents() == {}  # the old incarnation's items went with it


def test_purge_follows_the_plan_and_never_moves_cursors(stores: Stores) -> None:
    store = stores.open("b")
    apply(store, remote("a", 1, 10, CREATE), remote("a", 2, 11, put(1)),
          remote("a", 3, 12, put(None)))
    result = store.write(Purge(RetentionPlan({"a": 2}, tombstone_horizon_hlc=13), limit=100))
    assert (result.records, result.tombstones) == (2, 1)
    assert store.log_start() == {"a": 2} and seqs(store, "a") == [3]
    assert store.cursors() == {"a": Cursor(3, 12)} and store.contents() == {}


def test_purge_keeps_each_origins_latest_record_and_is_bounded(stores: Stores) -> None:
    store = stores.open("b")
    apply(store, *[remote("a", s, 10 + s, CREATE if s == 1 else put(s)) for s in range(1, 6)])
    assert store.write(Purge(RetentionPlan({"a": 5}, 0), limit=2)).records == 2
    assert store.log_start() == {"a": 2}
    assert store.write(Purge(RetentionPlan({"a": 5}, 0), limit=100)).records == 2
    assert seqs(store, "a") == [5] and store.log_start() == {"a": 4}


def test_snapshot_rows_page_in_key_order(stores: Stores) -> None:
    store = stores.open("b")
    apply(store, remote("a", 1, 10, CREATE),
          *[remote("a", 2 + n, 11 + n, put(n, key=f"k{n}".encode())) for n in range(5)],
          remote("a", 7, 20, put(None, key=b"k2")), remote("a", 8, 21, put(None, key=b"gone")))
    pages, after = [], None
    for _ in range(10):
        page = store.snapshot_rows("t", after, 2, tombstones=False)
        pages.append(page)
        if len(page) < 2:
            break
        after = (page[-1].h, page[-1].pk, page[-1].sk)
    live = [row for page in pages for row in page]
    assert sorted(row.pk for row in live) == [b"k0", b"k1", b"k3", b"k4"]
    assert [(r.h, r.pk) for r in live] == sorted((r.h, r.pk) for r in live)
    dead = store.snapshot_rows("t", None, 10, tombstones=True)
    assert {(r.pk, r.hlc, r.item) for r in dead} == {(b"k2", 20, None), (b"gone", 21, None)}
    assert store.snapshot_rows("nope", None, 10, tombstones=False) == []


def test_a_snapshot_joins_each_rows_state_and_logs_what_it_hid(stores: Stores) -> None:
    store = stores.open("b")
    clock = HybridClock(lambda: NOW_MS)
    apply(store, remote("a", 1, 10, CREATE))
    local(store, clock, put(1))  # b's own write, which the snapshot's newer row replaces
    local(store, clock, put(2, key=b"j"))
    mine = store.contents()[("t", b"j", b"")].version
    newer, older = Version(mine.hlc + 5, "c"), Version(5, "c")
    # rows in the row form without `prev`: c's writes saw nothing of b's, so each is
    # concurrent with b's write of its key; the greater version shows, the other is logged
    rows = ((b"k", b"", Stored(newer, item(7))), (b"j", b"", Stored(older, item(8, "j"))),
            (b"new", b"", Stored(older, None)))
    assert store.write(MergeSnapshotRows("t", rows, lambda: NOW_MS)) == 3
    contents = store.contents()
    assert (contents[("t", b"k", b"")].version, contents[("t", b"k", b"")].item) == (
        newer, item(7))
    assert contents[("t", b"j", b"")].item == item(2, "j")
    assert contents[("t", b"new", b"")].item is None
    assert sorted((c.loser.origin, c.pk) for c in store.conflicts()) == [
        ("b", b"k"), ("c", b"j")]
    # a row whose state saw b's write (its `prev`) supersedes it with no conflict
    later = Version(newer.hlc + 1, "c")
    assert store.write(MergeSnapshotRows("t", ((b"j", b"", Stored(later, item(9, "j"), mine)),),
                                         lambda: NOW_MS)) == 1
    assert store.contents()[("t", b"j", b"")].item == item(9, "j")
    assert len(store.conflicts()) == 2
    states = (("t", TableState(Version(1, "x"), Version(1, "x"), definition(table_id="x"))),
              ("u", TableState(Version(3, "c"), Version(3, "c"), definition("u", "u-1"))))
    assert store.write(MergeSnapshotTables(states)) == 1  # t's state here is newer
    assert store.table_state("u") is not None and store.table_state("t").version == Version(10, "a")  # type: ignore[union-attr]


def test_adopted_cursors_continue_the_log(stores: Stores) -> None:
    store = stores.open("b")
    clock = HybridClock(lambda: NOW_MS)
    apply(store, remote("a", 1, 10, CREATE), remote("a", 2, 11, put(1)))
    adopted = store.write(AdoptCursors("b", (("a", Cursor(9, 90)), ("b", Cursor(4, 80)),
                                             ("c", Cursor(1, 1))), clock))
    assert adopted == {"a": Cursor(9, 90), "b": Cursor(4, 80), "c": Cursor(1, 1)}
    assert store.cursors() == adopted
    assert seqs(store, "a") == [1, 2] and store.log_start() == {}  # records decide it
    store = stores.open("b")  # after a restart too, it never reuses a seq of its own
    change = local(store, clock, put(3))
    assert (change.seq, change.hlc > 80) == (5, True)
    assert store.write(AdoptCursors("b", (("a", Cursor(3, 30)),), clock)) == {}  # only forward


def test_the_fault_wrapper_drops_every_nth_replicated_item_write(stores: Stores) -> None:
    fault = DropItemWrites("b", every=2)
    store = stores.open("b", wrap=fault)
    clock = HybridClock(lambda: NOW_MS)
    apply(store, remote("a", 1, 10, CREATE),
          *[remote("a", 2 + n, 11 + n, put(n, key=f"k{n}".encode())) for n in range(4)])
    local(store, clock, put(9, key=b"mine"))  # its own writes are not replicated writes
    assert store.cursors()["a"] == Cursor(5, 14)  # as if everything was applied
    assert sorted(k[1] for k in store.contents()) == [b"k0", b"k2", b"mine"]
    assert fault.dropped == 2


def test_digest_depends_on_contents_only(stores: Stores) -> None:
    one, two = stores.open("x"), stores.open("y")
    changes = [remote("a", 1, 10, CREATE), remote("a", 2, 11, put(1)), remote("c", 1, 12, put(2))]
    apply(one, *changes)
    apply(two, changes[0], changes[2])
    apply(two, changes[1])
    assert digest_snapshot(snapshot(one)) == digest_snapshot(snapshot(two))
    apply(two, remote("c", 2, 13, put(3)))
    assert digest_snapshot(snapshot(one)) != digest_snapshot(snapshot(two))
