"""Defence in depth on apply (issue 26 item 3): an item filed under a row key its key
attributes do not encode to, and a change reusing an (origin, seq) already logged for
another change, are refused and never stored — the pure checks
(atoll.replication.admission), the planner setting duplicates aside as replays, the one
apply driver (atoll.replication.apply) over the memory store and over the node's store on
SQLite and on PostgreSQL, and the puller's answer to a refusal (backoff, each refusal
reported once)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atoll.clock import HybridClock
from atoll.engine.replica_store import EngineReplicaStore, context_for
from atoll.model.keys import encode_key_value
from atoll.replication.admission import (
    KEY_MISMATCH,
    MAX_REPLAY_CHECKS,
    REUSED_SEQUENCE,
    key_mismatch,
    key_schema,
    reused_sequence,
)
from atoll.replication.apply import ApplyChanges, ApplyOutcome
from atoll.replication.change import Change, ItemWrite, Op, TableOp, encode_change
from atoll.replication.config import ReplicationConfig
from atoll.replication.cursors import Cursor
from atoll.replication.memory_store import MemoryStore
from atoll.replication.protocol import Batch, encode_message, plan_batch
from atoll.replication.puller import SEND, SUBMIT, WAIT, Puller
from atoll.replication.store import ReplicaStore, StoreTxn
from atoll.storage import SqliteStorage, Storage
from atoll.storage.postgres import PostgresStorage
from tests.pg import pg_dsn, pg_server  # noqa: F401  (fixtures)


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


def test_the_planner_sets_duplicates_aside_as_replays_a_bounded_number_of_them() -> None:
    records = [change("b", n, {"pk": {"S": str(n)}}, str(n).encode())[1]
               for n in range(1, MAX_REPLAY_CHECKS + 51)]
    plan = plan_batch(records, {"b": Cursor(10_000, 0)}, lambda _t: None)
    assert plan.duplicates == len(records) and plan.accepted == []
    assert [c.seq for c, _frame in plan.replays] == list(range(1, MAX_REPLAY_CHECKS + 1))
    assert [frame for _c, frame in plan.replays] == records[:MAX_REPLAY_CHECKS]


def test_a_table_definition_names_its_key_schema() -> None:
    assert key_schema(DEFINITION) == ("pk", "S", None, None)
    assert key_schema(SORTED) == ("h", "N", "r", "B")
    assert key_schema(None) is None and key_schema({"name": "x"}) is None


# --- the driver: atoll.replication.apply over both stores ------------------------------

DEFINITION = {"name": "tbl", "hash_key": "pk", "range_key": None,
              "attribute_types": {"pk": "S"}, "billing_mode": "PAY_PER_REQUEST",
              "read_capacity": 0, "write_capacity": 0, "created_at": 0.0,
              "table_id": "tbl-1", "deletion_protection": False, "billing_changed_at": None,
              "indexes": [], "next_iid": 1, "ttl_attribute": None, "tags": {}}
SORTED = {**DEFINITION, "name": "srt", "hash_key": "h", "range_key": "r",
          "attribute_types": {"h": "N", "r": "B"}, "table_id": "srt-1"}
NOW_MS = 1_000_000


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReplicaStore]:
    """Region "a" holding tables `tbl` and `srt`, created by origin "c" (its c/1, c/2):
    the memory store, and the node's store over SQLite and over PostgreSQL."""
    opened: ReplicaStore
    storage: Storage | None = None
    if request.param == "memory":
        opened = MemoryStore("a")
    else:
        if request.param == "sqlite":
            storage = SqliteStorage(str(tmp_path / "a.db"), durable=False, region="a")
        else:
            storage = PostgresStorage(request.getfixturevalue("pg_dsn"), region="a")
        opened = EngineReplicaStore(context_for(storage, "a", lambda: NOW_MS))
    outcome = apply(opened, [made("c", 1, [TableOp("tbl", "create", DEFINITION)]),
                             made("c", 2, [TableOp("srt", "create", SORTED)])])
    assert outcome.applied == 2
    yield opened
    if storage is not None:
        storage.close()


def made(origin: str, seq: int, ops: list[Op]) -> tuple[Change, bytes]:
    one = Change.create(origin, seq, (NOW_MS + seq) << 16, ops)
    return one, encode_change(one)


def put(origin: str, seq: int, key: str, item_key: str | None = None,
        **more: Any) -> tuple[Change, bytes]:
    item = {"pk": {"S": key if item_key is None else item_key}, **more}
    return made(origin, seq, [ItemWrite("tbl", key.encode(), b"", item)])


def apply(store: ReplicaStore, changes: list[tuple[Change, bytes]],
          replays: tuple[tuple[Change, bytes], ...] = ()) -> ApplyOutcome:
    outcome: ApplyOutcome = store.write(ApplyChanges(tuple(changes), "a", HybridClock(
        lambda: NOW_MS), lambda: NOW_MS, replays))
    return outcome


def items(store: ReplicaStore) -> dict[bytes, Any]:
    return {key[1]: s.item for key, s in store.contents().items() if key[0] == "tbl"}


def logged(store: ReplicaStore, origin: str) -> list[bytes]:
    return [frame for _seq, frame in store.records_since(origin, 0, 100)]


def test_a_misfiled_item_is_refused_and_stops_its_origin_there(store: ReplicaStore) -> None:
    good, misfiled, after = put("b", 1, "one"), put("b", 2, "two", "elsewhere"), put("b", 3, "x")
    other = put("c", 3, "from-c")
    outcome = apply(store, [good, misfiled, after, other])
    assert (outcome.applied, outcome.duplicates) == (2, 0)  # b/1 and c/3: not b/3
    assert outcome.stopped_at_refusal and not outcome.complete
    [refusal] = outcome.refusals
    assert (refusal.kind, refusal.origin, refusal.seq, refusal.table) == (KEY_MISMATCH, "b", 2, "tbl")
    assert refusal.key == "{'pk': {'S': 'two'}}" and "elsewhere" in refusal.why
    assert refusal.checksum == misfiled[0].checksum and refusal.stops
    text = refusal.describe()
    assert "b/2" in text and "tbl" in text and "'two'" in text
    # nothing of it, nor of what came after it, was stored; the cursor waits before it
    assert store.cursors()["b"].seq == 1 and store.cursors()["c"].seq == 3
    assert items(store) == {b"one": {"pk": {"S": "one"}}, b"from-c": {"pk": {"S": "from-c"}}}
    assert logged(store, "b") == [good[1]]
    # the true change under b/2 applies when it comes, and what followed it after it
    outcome = apply(store, [put("b", 2, "two"), after])
    assert outcome.applied == 2 and outcome.complete and outcome.refusals == []
    assert set(items(store)) == {b"one", b"two", b"x", b"from-c"}


def test_a_sort_key_and_a_key_of_the_wrong_type_are_checked(store: ReplicaStore) -> None:
    r = base64.b64encode(b"\x01").decode()
    right = ItemWrite("srt", encode_key_value({"N": "7"}, "N"), b"\x01",
                      {"h": {"N": "7"}, "r": {"B": r}})
    wrong_sort = ItemWrite("srt", encode_key_value({"N": "7"}, "N"), b"\x02",
                           {"h": {"N": "7"}, "r": {"B": r}})
    wrong_type = ItemWrite("tbl", b"7", b"", {"pk": {"N": "7"}})
    outcome = apply(store, [made("b", 1, [right]), made("b", 2, [wrong_sort])])
    assert outcome.applied == 1 and "sort key r=" in outcome.refusals[0].why
    assert outcome.refusals[0].key.startswith("{'h': {'N': '7'}, 'r': {'B':")
    outcome = apply(store, [made("b", 2, [right, wrong_type])])  # one bad op refuses all
    assert outcome.applied == 0 and "lacks its partition key 'pk' of type S" in outcome.refusals[0].why
    assert store.cursors()["b"].seq == 1


def test_a_delete_and_writes_into_unknown_tables_are_not_admission_s_business(
        store: ReplicaStore) -> None:
    delete = made("b", 1, [ItemWrite("tbl", b"gone", b"", None)])
    unknown = made("b", 2, [ItemWrite("later", b"k", b"", {"nothing": {"S": "k"}})])
    outcome = apply(store, [delete, unknown])
    assert outcome.applied == 1 and outcome.refusals == []
    assert outcome.held_for_table == "later"  # held until its creation arrives


def test_a_replay_of_another_change_under_a_used_sequence_is_refused(
        store: ReplicaStore) -> None:
    first, second = put("b", 1, "one", v={"N": "1"}), put("b", 2, "two")
    assert apply(store, [first, second]).applied == 2
    impostor = put("b", 1, "impostor")  # b/1 again, another change
    relayed = made("c", 2, [TableOp("srt", "create", {**SORTED, "table_id": "forged"})])
    outcome = apply(store, [put("b", 3, "three")], replays=(first, impostor, relayed))
    assert outcome.applied == 1 and outcome.complete  # a replay stops nothing
    assert outcome.duplicates == 1  # the identical replay of b/1: a no-op
    assert [(r.kind, r.origin, r.seq) for r in outcome.refusals] == [
        (REUSED_SEQUENCE, "b", 1), (REUSED_SEQUENCE, "c", 2)]
    assert outcome.refusals[0].key == "{'pk': {'S': 'impostor'}}"
    assert outcome.refusals[1].table == "srt" and not outcome.refusals[1].stops
    assert logged(store, "b")[0] == first[1]  # the log keeps the change it held
    assert items(store)[b"one"] == {"pk": {"S": "one"}, "v": {"N": "1"}}
    assert b"impostor" not in items(store)
    # a duplicate found in the changes themselves (another puller applied it first)
    outcome = apply(store, [impostor, put("b", 4, "four")])
    assert outcome.applied == 1 and [r.seq for r in outcome.refusals] == [1]
    # a replay above the cursor is not held here: nothing to compare, and never applied
    outcome = apply(store, [], replays=(put("b", 9, "nine"),))
    assert outcome == ApplyOutcome() and store.cursors()["b"].seq == 4


class CountingReads:
    """A store transaction that counts its changelog reads."""

    reads = 0

    def __init__(self, txn: StoreTxn) -> None:
        self._txn = txn

    def logged_frame(self, origin: str, seq: int) -> bytes | None:
        CountingReads.reads += 1
        return self._txn.logged_frame(origin, seq)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._txn, name)


def test_replays_are_compared_a_bounded_number_of_times_per_job() -> None:
    store = MemoryStore("a", wrap=CountingReads)
    apply(store, [made("c", 1, [TableOp("tbl", "create", DEFINITION)])])
    many = [put("b", n, f"k{n}") for n in range(1, MAX_REPLAY_CHECKS + 51)]
    assert apply(store, many).applied == len(many)
    CountingReads.reads = 0
    outcome = apply(store, many[:50], replays=tuple(many[50:]))
    assert CountingReads.reads == MAX_REPLAY_CHECKS
    assert outcome.duplicates == len(many) and outcome.refusals == []


# --- the puller's answer to a refusal --------------------------------------------------

CONFIG = ReplicationConfig(max_batch_changes=10, pull_wait_ms=100, max_pull_wait_ms=200,
                           request_timeout_ms=500, direct_stale_ms=300, backoff_min_ms=10,
                           backoff_max_ms=40, held_pause_ms=20)


def test_the_puller_backs_off_after_a_refusal_and_reports_each_one_once() -> None:
    store = MemoryStore("a")
    apply(store, [made("b", 1, [TableOp("tbl", "create", DEFINITION)])])
    p = Puller("b", "a", CONFIG, HybridClock(lambda: 0), lambda: NOW_MS, now_ms=0)
    misfiled = put("b", 2, "two", "elsewhere")
    now, waits, reported = 0, [], []
    for _round in range(5):
        assert p.next_step(now).kind == SEND
        pull = p.pull(store.cursors(), ["b"], now)
        p.on_answer(encode_message(Batch(pull.request_id, (misfiled[1],), False, {})), now,
                    store.table_state)
        assert p.next_step(now).kind == SUBMIT
        reported += p.on_applied(store.write(p.take_apply()), now)
        step = p.next_step(now)
        assert step.kind == WAIT
        waits.append(step.until_ms - now)
        now = step.until_ms
    assert waits == [10, 20, 40, 40, 40]  # doubling from the minimum to the maximum
    assert [r.seq for r in reported] == [2]  # logged once, counted every time
    assert p.link.refused_changes == 5 and p.link.refusing and "b/2" in p.link.last_refusal
    assert store.cursors()["b"].seq == 1 and logged(store, "b") == [logged(store, "b")[0]]
    # the true change comes: applied, the link is no longer refusing, the backoff resets
    pull = p.pull(store.cursors(), ["b"], now)
    p.on_answer(encode_message(Batch(pull.request_id, (put("b", 2, "two")[1],), False, {})),
                now, store.table_state)
    assert p.on_applied(store.write(p.take_apply()), now) == []
    assert not p.link.refusing and p.refusal_backoff_ms == CONFIG.backoff_min_ms
    assert store.cursors()["b"].seq == 2


def test_the_puller_sends_a_batch_of_duplicates_to_be_compared() -> None:
    p = Puller("b", "a", CONFIG, HybridClock(lambda: 0), lambda: NOW_MS, now_ms=0)
    pull = p.pull({"b": Cursor(5, 0)}, ["b"], 0)
    dup = put("b", 3, "three")
    p.on_answer(encode_message(Batch(pull.request_id, (dup[1],), False, {})), 0, lambda _t: None)
    job = p.take_apply()
    assert job.changes == () and job.replays == (dup,)
    assert p.link.duplicates == 0  # the apply counts it (or refuses it)
