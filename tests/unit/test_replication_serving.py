"""The serving side (answering Pulls and snapshot requests) and the rebuild sequence,
over a memory store: which records go out, when a puller is told it is behind, and how a
region copies a peer's snapshot and continues from its cursors."""

from __future__ import annotations

import pytest

from atoll.clock import HybridClock
from atoll.replication.apply import AdoptCursors, ApplyChanges, Purge
from atoll.replication.change import Change, ItemWrite, TableOp, decode_change, encode_change
from atoll.replication.config import ReplicationConfig
from atoll.replication.cursors import Cursor
from atoll.replication.errors import BadMessage
from atoll.replication.memory_store import MemoryStore
from atoll.replication.protocol import Batch, Pull, checksummed
from atoll.replication.rebuild import Rebuild
from atoll.replication.serving import answer_pull, hold_ms
from atoll.replication.snapshot import SnapshotRequest, answer_snapshot, encode_request
from atoll.replication.store import RetentionPlan, digest_snapshot, snapshot

CONFIG = ReplicationConfig(max_batch_changes=4, snapshot_page_rows=2)
REGIONS = ("a", "b", "c")
CLOCK = HybridClock(lambda: 0)
HELD: dict[str, Cursor] = {}  # what the server held when a Pull arrived (only read for
# the puller's own origin and for origins it has no record of)


def change(origin: str, seq: int, key: str = "k") -> Change:
    if origin == "a" and seq == 1:
        return Change.create("a", 1, 10, [TableOp("t", "create", {"name": "t"})])
    return Change.create(origin, seq, seq * 10 + ord(origin), [
        ItemWrite("t", key.encode(), b"", {"pk": {"S": key}, "v": {"N": str(seq)}})])


def store_with(*changes: Change, region: str = "b") -> MemoryStore:
    store = MemoryStore(region)
    store.write(ApplyChanges(tuple((c, encode_change(c)) for c in changes), region, CLOCK,
                             lambda: 0))
    return store


def seqs(batch: Batch) -> list[tuple[str, int]]:
    return [(decode_change(r).origin, decode_change(r).seq) for r in batch.records]


def test_records_after_the_cursor_or_ahead_for_the_origins_asked() -> None:
    store = store_with(*(change("a", s) for s in range(1, 4)), change("c", 1), change("c", 2))
    batch = answer_pull(Pull(1, {"a": Cursor(1, 10)}, 10), "x", REGIONS, store, {}, CONFIG)
    assert seqs(batch) == [("a", 2), ("a", 3), ("c", 1), ("c", 2)] and batch.has_more  # 4 at most
    only_c = answer_pull(Pull(2, {}, 10, origins=("c",), ahead={"c": 1}), "x", REGIONS,
                         store, {}, CONFIG)
    assert seqs(only_c) == [("c", 2)] and not only_c.has_more and only_c.log_start == {}


def test_a_puller_below_the_purged_log_is_behind() -> None:
    store = store_with(*(change("a", s) for s in range(1, 6)))
    store.write(Purge(RetentionPlan({"a": 3}, 0), 100))
    behind = answer_pull(Pull(1, {"a": Cursor(2, 20)}, 10), "c", REGIONS, store, HELD, CONFIG)
    assert behind.log_start == {"a": 3}
    caught_up = answer_pull(Pull(1, {"a": Cursor(3, 30)}, 10), "c", REGIONS, store, HELD, CONFIG)
    assert caught_up.log_start == {} and seqs(caught_up) == [("a", 4), ("a", 5)]
    # a region never needs its own changes back: the origin itself is never "behind"
    assert answer_pull(Pull(1, {"a": Cursor(2, 20)}, 10), "a", REGIONS, store, HELD,
                       CONFIG).log_start == {}


def test_a_hole_left_by_adopted_cursors_cannot_be_crossed() -> None:
    store = store_with(change("a", 1), change("a", 2))
    store.write(AdoptCursors("b", (("a", Cursor(9, 90)),), CLOCK))
    store.write(ApplyChanges(((change("a", 10), encode_change(change("a", 10))),), "b", CLOCK,
                             lambda: 0))
    first = answer_pull(Pull(1, {"a": Cursor(1, 10)}, 10), "c", REGIONS, store, HELD, CONFIG)
    assert seqs(first) == [("a", 2)] and first.log_start == {}  # up to the hole
    second = answer_pull(Pull(2, {"a": Cursor(2, 20)}, 10), "c", REGIONS, store, HELD, CONFIG)
    assert seqs(second) == [] and second.log_start == {"a": 9}


def test_a_cursor_adopted_with_no_record_after_it_cannot_be_served_across() -> None:
    store = store_with(change("a", 1), change("c", 1))
    store.write(AdoptCursors("b", (("c", Cursor(7, 70)),), CLOCK))
    behind = answer_pull(Pull(1, {"a": Cursor(1, 10), "c": Cursor(1, 11)}, 10), "a", REGIONS,
                         store, store.cursors(), CONFIG)
    assert seqs(behind) == [] and behind.log_start == {"c": 7}
    level = answer_pull(Pull(1, {"a": Cursor(1, 10), "c": Cursor(7, 70)}, 10), "a", REGIONS,
                        store, store.cursors(), CONFIG)
    assert level.log_start == {}


def test_a_puller_that_lost_its_own_data_is_behind_on_its_own_origin() -> None:
    store = store_with(change("a", 1), change("c", 1), change("c", 2))
    held = store.cursors()  # b holds c/1..2
    lost = answer_pull(Pull(1, {}, 10), "c", REGIONS, store, held, CONFIG)
    assert lost.log_start == {"c": 2}
    # a non-empty claim older than what the server pulled meanwhile is not a loss
    racing = answer_pull(Pull(1, {"c": Cursor(1, 11)}, 10), "c", REGIONS, store, held, CONFIG)
    assert racing.log_start == {}


def test_only_an_empty_answer_is_held_and_never_beyond_the_maximum() -> None:
    store = store_with(change("a", 1))
    pull = Pull(1, {"a": Cursor(1, 10)}, 10, wait_ms=9000)
    empty = answer_pull(pull, "c", REGIONS, store, HELD, CONFIG)
    assert hold_ms(pull, empty, CONFIG) == CONFIG.max_pull_wait_ms
    assert hold_ms(Pull(1, {}, 10, wait_ms=50), Batch(1, (b"x",), False), CONFIG) == 0


def rebuild(source: MemoryStore, target: MemoryStore) -> Rebuild:
    """Run a whole rebuild of `target` from `source`, the way the shells do."""
    run = Rebuild("a", {"a": 1}, target.region, CLOCK, lambda: 0, CONFIG)
    for _ in range(100):
        request = run.request()
        if request is None:
            target.write(run.finish())
            return run
        for job in run.on_answer(answer_snapshot(request, source, CONFIG)):
            target.write(job)
    raise AssertionError("the rebuild did not end")


def test_a_rebuild_copies_tables_rows_and_tombstones_then_adopts_cursors() -> None:
    source = store_with(*(change("a", s, f"k{s}") for s in range(1, 7)), change("c", 1, "k2"),
                        Change.create("c", 2, 200, [ItemWrite("t", b"k3", b"", None)]))
    target = store_with(change("a", 1), region="c")
    done = rebuild(source, target)
    assert done.rows == 4 + 1  # live items in pages of 2, then the tombstone
    assert digest_snapshot(snapshot(target)) == digest_snapshot(snapshot(source))
    assert target.contents()[("t", b"k3", b"")].item is None
    assert target.cursors() == source.cursors()
    # the log continues after the adopted cursors: it holds no record of c, and of a
    # only a/1, before a hole that serving will not cross
    assert target.records_since("c", 0, 10) == []
    assert [seq for seq, _ in target.records_since("a", 0, 10)] == [1]


def test_snapshot_requests_and_answers_are_checked() -> None:
    source = store_with(change("a", 1))
    for request in (b"junk", checksummed(b'{"part": "rows", "table": "t", "limit": -1}'),
                    checksummed(b'{"part": "rows", "table": "t", "tombstones": false,'
                                b' "after": [4294967296, "00", "00"], "limit": 2}'),
                    checksummed(b'{"part": "rows", "table": ["t"]}')):
        with pytest.raises(BadMessage):
            answer_snapshot(request, source, CONFIG)
    run = Rebuild("a", {}, "c", CLOCK, lambda: 0, CONFIG)
    with pytest.raises(BadMessage):
        run.on_answer(checksummed(b'{"cursors": {}, "tables": [{"name": 1}]}'))
    page = answer_snapshot(encode_request(SnapshotRequest("t", False, None, 5)), source, CONFIG)
    assert page.endswith(b'"more":false}')

