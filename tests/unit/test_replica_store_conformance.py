"""The `ReplicaStore` contract (atoll.replication.store), run against every store.

Add a factory to STORES to check another implementation (the SQLite store): each
factory takes a region name and returns an empty store for it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from atoll.replication.change import Change, ItemWrite, TableOp, Version
from atoll.replication.cursors import Cursor
from atoll.replication.errors import OutOfOrder, UnknownTable
from atoll.replication.memory_store import MemoryStore
from atoll.replication.store import ReplicaStore, RetentionPlan, digest_snapshot

STORES: dict[str, Callable[[str], ReplicaStore]] = {
    "memory": MemoryStore,
}

CREATE = TableOp("t", "create", {"TableName": "t"})


@pytest.fixture(params=sorted(STORES))
def make(request: pytest.FixtureRequest) -> Callable[[str], ReplicaStore]:
    return STORES[request.param]


def item(value: int) -> dict:
    return {"pk": {"S": "k"}, "v": {"N": str(value)}}


def put(value: int | None, key: bytes = b"k", prev: Version | None = None) -> ItemWrite:
    return ItemWrite("t", key, b"", None if value is None else item(value), prev)


def remote(origin: str, seq: int, hlc: int, *ops) -> Change:
    return Change.create(origin, seq, hlc, list(ops))


def test_an_empty_store(make) -> None:
    store = make("a")
    assert store.region == "a"
    assert store.cursors() == {} and store.log_start() == {} and store.conflicts() == []
    assert store.changes_since({}, 10) == [] and store.table_state("t") is None
    assert store.snapshot().items == {}


def test_local_write_assigns_dense_seqs_and_fills_prev(make) -> None:
    store = make("a")
    first = store.local_write(10, [CREATE])
    second = store.local_write(11, [put(1)])
    third = store.local_write(12, [put(2)])
    assert [first.seq, second.seq, third.seq] == [1, 2, 3]
    # Each write carries its item state in the row form: its own version over `prev`,
    # the one other region's write it observed (a's own earlier write is implied).
    assert second.ops[0].prev is None  # type: ignore[union-attr]
    assert third.ops[0].prev is None and third.ops[0].state == b""  # type: ignore[union-attr]
    assert store.cursors() == {"a": Cursor(3, 12)}
    assert store.changes_since({}, 10) == [first, second, third]
    assert store.changes_since({"a": Cursor(2, 11)}, 10) == [third]
    store.apply([remote("b", 1, 13, put(3))])
    fourth = store.local_write(14, [put(4)])
    assert fourth.ops[0].prev == Version(13, "b")  # type: ignore[union-attr]


def test_local_write_refusals_change_nothing(make) -> None:
    store = make("a")
    with pytest.raises(UnknownTable):
        store.local_write(10, [put(1)])
    store.local_write(10, [CREATE])
    with pytest.raises(OutOfOrder):
        store.local_write(10, [put(1)])  # hlc not above the last one
    assert store.cursors() == {"a": Cursor(1, 10)} and store.snapshot().items == {}


def test_apply_is_idempotent_and_advances_cursors_with_the_changes(make) -> None:
    store = make("b")
    changes = [remote("a", 1, 10, CREATE), remote("a", 2, 11, put(1))]
    assert store.apply(changes).applied == 2
    result = store.apply(changes)
    assert (result.applied, result.duplicates) == (0, 2)
    assert store.cursors() == {"a": Cursor(2, 11)}
    assert store.changes_since({}, 10) == changes  # learned changes are relayed


def test_apply_is_all_or_nothing(make) -> None:
    store = make("b")
    store.apply([remote("a", 1, 10, CREATE)])
    before = (store.cursors(), digest_snapshot(store.snapshot()), store.changes_since({}, 99))
    with pytest.raises(OutOfOrder):
        store.apply([remote("a", 2, 11, put(1)), remote("a", 4, 13, put(2))])
    with pytest.raises(UnknownTable):
        store.apply([remote("a", 2, 11, put(1)), remote("c", 1, 12, ItemWrite("u", b"k", b"", None))])
    assert (store.cursors(), digest_snapshot(store.snapshot()), store.changes_since({}, 99)) == before


def test_last_writer_wins_and_conflicts_are_logged(make) -> None:
    store = make("b")
    store.apply([remote("a", 1, 10, CREATE), remote("a", 2, 20, put(1))])
    result = store.apply([remote("c", 1, 15, put(3))])  # older, concurrent: loses
    assert len(result.conflicts) == 1 and result.conflicts[0].loser == Version(15, "c")
    store.apply([remote("c", 2, 30, put(None))])  # newer concurrent delete: wins
    assert store.snapshot().items == {}
    store.apply([remote("a", 3, 25, put(9, prev=Version(20, "a")))])  # older than the tombstone
    assert store.snapshot().items == {}  # no resurrection
    losers = [c.loser for c in store.conflicts()]
    assert losers == [Version(15, "c"), Version(20, "a"), Version(25, "a")]


def test_changes_come_in_apply_order_and_limit(make) -> None:
    store = make("b")
    store.apply([remote("a", 1, 10, CREATE)])
    store.local_write(20, [put(1)])
    store.apply([remote("a", 2, 11, put(2, key=b"j"))])
    order = [(c.origin, c.seq) for c in store.changes_since({}, 10)]
    assert order == [("a", 1), ("b", 1), ("a", 2)]
    assert len(store.changes_since({}, 2)) == 2


def test_deleting_a_table_drops_its_items_and_later_writes(make) -> None:
    store = make("b")
    store.apply([remote("a", 1, 10, CREATE), remote("a", 2, 11, put(1)),
                 remote("a", 3, 12, TableOp("t", "delete"))])
    store.apply([remote("c", 1, 11, put(5))])  # a concurrent write into the dead table
    assert store.snapshot().items == {} and not store.table_state("t").live  # type: ignore[union-attr]


def test_purge_follows_the_plan_and_never_moves_cursors(make) -> None:
    store = make("b")
    store.apply([remote("a", 1, 10, CREATE), remote("a", 2, 11, put(1)),
                 remote("a", 3, 12, put(None))])
    purged = store.purge(RetentionPlan({"a": 2}, tombstone_horizon_hlc=13), limit=100)
    assert purged == 3  # two records and the tombstone
    assert store.log_start() == {"a": 2}
    assert [c.seq for c in store.changes_since({}, 10)] == [3]
    assert store.cursors() == {"a": Cursor(3, 12)}


def test_purge_is_bounded(make) -> None:
    store = make("b")
    store.apply([remote("a", s, 10 + s, CREATE if s == 1 else put(s)) for s in range(1, 6)])
    assert store.purge(RetentionPlan({"a": 5}, 0), limit=2) == 2
    assert store.log_start() == {"a": 2}


def test_digest_depends_on_contents_only(make) -> None:
    one, two = make("x"), make("y")
    changes = [remote("a", 1, 10, CREATE), remote("a", 2, 11, put(1)), remote("c", 1, 12, put(2))]
    one.apply(changes)
    two.apply([changes[0], changes[2]])
    two.apply([changes[1]])
    assert digest_snapshot(one.snapshot()) == digest_snapshot(two.snapshot())
    two.apply([remote("c", 2, 13, put(3))])
    assert digest_snapshot(one.snapshot()) != digest_snapshot(two.snapshot())
