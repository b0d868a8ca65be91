"""The pull protocol as scenario scripts (in the style of etcd raft's tests): three
regions, a script of steps, and the expected cursors, contents and counters."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from atoll.clock import HybridClock
from atoll.replication import Change, ItemWrite, Replica, ReplicaConfig, TableOp
from atoll.replication.change import encode_change
from atoll.replication.cursors import Cursor
from atoll.replication.memory_store import MemoryStore
from atoll.replication.protocol import (
    Batch,
    Pull,
    PullSession,
    decode_message,
    encode_message,
    plan_batch,
)
from atoll.replication.store import digest_snapshot

REGIONS = ("a", "b", "c")


@dataclass
class Cluster:
    now_ms: int = 1000
    stores: dict[str, MemoryStore] = field(default_factory=dict)
    replicas: dict[str, Replica] = field(default_factory=dict)
    cuts: set[frozenset[str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        for region in REGIONS:
            self.stores[region] = MemoryStore(region)
            self.start(region)

    def start(self, region: str) -> None:
        clock = HybridClock(lambda: self.now_ms)
        self.replicas[region] = Replica(self.stores[region], clock, REGIONS, self.now_ms,
                                        ReplicaConfig(max_batch_changes=2))

    def write(self, region: str, key: str, value: int | None, table: str = "t") -> Change:
        self.now_ms += 1
        item = None if value is None else {"pk": {"S": key}, "v": {"N": str(value)}}
        return self.replicas[region].write([ItemWrite(table, key.encode(), b"", item)])

    def create(self, region: str, table: str = "t") -> Change:
        self.now_ms += 1
        return self.replicas[region].write([TableOp(table, "create", {"TableName": table})])

    def batch_for(self, puller: str, server: str) -> bytes:
        """The Batch `server` answers to `puller`'s current Pull."""
        self.now_ms += 1
        session = self.replicas[puller].sessions[server]
        session.in_flight = None
        pull = session.poll(self.now_ms + 10_000, self.stores[puller].cursors())
        assert pull is not None
        [(to, reply)] = self.replicas[server].receive(puller, encode_message(pull), self.now_ms)
        assert to == puller
        return reply

    def exchange(self, puller: str, server: str) -> None:
        """Pull until the server has nothing more (each Pull answered at once)."""
        for _ in range(100):
            if frozenset((puller, server)) in self.cuts:
                return
            reply = self.batch_for(puller, server)
            self.replicas[puller].receive(server, reply, self.now_ms)
            if not decode_message(reply).has_more:  # type: ignore[union-attr]
                return

    def value(self, region: str, key: str) -> str | None:
        stored = self.stores[region].stored(("t", key.encode(), b""))
        return None if stored is None or stored.item is None else stored.item["v"]["N"]


def run_script(script: list[tuple]) -> Cluster:
    cluster = Cluster()
    for step in script:
        verb, *args = step
        if verb == "create":
            cluster.create(*args)
        elif verb == "write":
            cluster.write(*args)
        elif verb == "cut":
            cluster.cuts.add(frozenset(args))
        elif verb == "pull":
            cluster.exchange(*args)
        elif verb == "crash":
            del cluster.replicas[args[0]]
            cluster.start(args[0])
        else:
            raise AssertionError(verb)
    return cluster


# (name, script, expected {region: {key: value}}, expected seq of each origin at each region)
SCENARIOS = [
    ("pull brings the peer's writes",
     [("create", "a"), ("write", "a", "k", 1), ("pull", "b", "a")],
     {"b": {"k": "1"}}, {"b": {"a": 2}}),
    ("C reaches A through B when A-C is cut",
     [("create", "a"), ("cut", "a", "c"), ("pull", "c", "a"), ("pull", "b", "a"),
      ("pull", "c", "b"), ("write", "c", "k", 7), ("pull", "b", "c"), ("pull", "a", "c"),
      ("pull", "a", "b")],
     {"a": {"k": "7"}}, {"a": {"c": 1}}),
    ("last writer wins: the later concurrent write, everywhere",
     [("create", "a"), ("pull", "b", "a"), ("write", "a", "k", 1), ("write", "b", "k", 2),
      ("pull", "a", "b"), ("pull", "b", "a")],
     {"a": {"k": "2"}, "b": {"k": "2"}}, {"a": {"b": 1}, "b": {"a": 2}}),
    ("a delete's tombstone beats an older concurrent put arriving late",
     [("create", "a"), ("pull", "b", "a"), ("write", "a", "k", 1), ("write", "b", "k", None),
      ("pull", "c", "b"), ("pull", "c", "a")],
     {"c": {"k": None}}, {"c": {"a": 2, "b": 1}}),
    ("a restarted region resumes from its stored cursors",
     [("create", "a"), ("write", "a", "k", 1), ("pull", "b", "a"), ("crash", "b"),
      ("write", "a", "k", 2), ("pull", "b", "a")],
     {"b": {"k": "2"}}, {"b": {"a": 3}}),
    ("batches are bounded (max 2 changes): several round trips catch up",
     [("create", "a")] + [("write", "a", f"k{i}", i) for i in range(7)] + [("pull", "c", "a")],
     {"c": {"k6": "6", "k0": "0"}}, {"c": {"a": 8}}),
]


@pytest.mark.parametrize("name, script, values, seqs", SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_scenario(name: str, script: list[tuple], values: dict, seqs: dict) -> None:
    cluster = run_script(script)
    for region, expected in values.items():
        for key, value in expected.items():
            assert cluster.value(region, key) == value, (region, key)
    for region, expected in seqs.items():
        got = {origin: c.seq for origin, c in cluster.stores[region].cursors().items()}
        for origin, seq in expected.items():
            assert got.get(origin, 0) == seq, (region, origin)


def test_concurrent_loser_is_in_the_conflict_log_of_both_sides() -> None:
    cluster = run_script([("create", "a"), ("pull", "b", "a"), ("write", "a", "k", 1),
                          ("write", "b", "k", 2), ("pull", "a", "b"), ("pull", "b", "a")])
    for region in ("a", "b"):
        [conflict] = cluster.stores[region].conflicts()
        assert (conflict.winner.origin, conflict.loser.origin) == ("b", "a")
        assert conflict.loser_item == {"pk": {"S": "k"}, "v": {"N": "1"}}


def test_a_clean_overwrite_is_not_a_conflict() -> None:
    cluster = run_script([("create", "a"), ("write", "a", "k", 1), ("pull", "b", "a"),
                          ("write", "b", "k", 2), ("pull", "a", "b"), ("pull", "c", "b"),
                          ("pull", "c", "a")])
    assert all(not s.conflicts() for s in cluster.stores.values())


def test_duplicated_and_reordered_batches_are_harmless() -> None:
    cluster = run_script([("create", "a"), ("write", "a", "k", 1)])
    first = cluster.batch_for("b", "a")
    cluster.write("a", "k", 2)
    cluster.write("a", "j", 3)
    records = decode_message(cluster.batch_for("b", "a")).records  # type: ignore[union-attr]
    later = encode_message(Batch(0, tuple(reversed(records)), False))
    b = cluster.replicas["b"]
    for reply in (later, first, first, later):
        b.receive("a", reply, cluster.now_ms)
    cluster.exchange("b", "a")
    assert cluster.value("b", "k") == "2" and cluster.value("b", "j") == "3"
    assert b.stats.applied == 4 and b.stats.duplicates > 0


def test_a_gap_holds_the_origin_and_nothing_is_lost() -> None:
    cluster = run_script([("create", "a"), ("write", "a", "k", 1), ("write", "a", "k", 2)])
    changes = cluster.stores["a"].changes_since({}, 10)
    plan = plan_batch([encode_change(changes[2])], {}, cluster.stores["b"].table_state)
    assert plan.accepted == [] and plan.held == {"a": "gap"}


def test_unknown_table_is_held_until_its_creation_arrives() -> None:
    cluster = run_script([("create", "a"), ("pull", "b", "a"), ("write", "b", "k", 5)])
    c = cluster.replicas["c"]
    c.receive("b", encode_message(Batch(0, tuple(encode_change(ch) for ch in
              cluster.stores["b"].changes_since({"a": cluster.stores["b"].cursors()["a"]}, 10)),
              False)), cluster.now_ms)
    assert "b" not in cluster.stores["c"].cursors() and c.stats.held == 1
    cluster.exchange("c", "a")
    cluster.exchange("c", "b")
    assert cluster.value("c", "k") == "5"


def test_a_bad_record_is_refused_and_the_cursor_stays() -> None:
    cluster = run_script([("create", "a"), ("write", "a", "k", 1), ("pull", "b", "a"),
                          ("write", "a", "k", 2)])
    b = cluster.replicas["b"]
    before = (cluster.stores["b"].cursors(), digest_snapshot(cluster.stores["b"].snapshot()))
    record = bytearray(encode_change(cluster.stores["a"].changes_since(
        cluster.stores["b"].cursors(), 1)[0]))
    record[-3] ^= 1
    b.receive("a", encode_message(Batch(0, (bytes(record),), False)), cluster.now_ms)
    assert b.stats.refused_records == 1
    assert (cluster.stores["b"].cursors(), digest_snapshot(cluster.stores["b"].snapshot())) == before
    cluster.exchange("b", "a")
    assert cluster.value("b", "k") == "2"


@pytest.mark.parametrize("sender, data", [
    ("a", b""),
    ("a", b"\x00\x00\x00\x00P{}"),
    ("a", encode_message(Pull(1, {}, 5))[:-1]),
    ("zz", encode_message(Pull(1, {}, 5))),  # not a region of this cluster
])
def test_malformed_or_foreign_messages_are_refused(sender: str, data: bytes) -> None:
    cluster = Cluster()
    assert cluster.replicas["b"].receive(sender, data, cluster.now_ms) == []
    assert cluster.replicas["b"].stats.refused_messages == 1


def test_message_wire_round_trip() -> None:
    pull = Pull(3, {"a": Cursor(2, 9)}, 50)
    assert decode_message(encode_message(pull)) == pull
    batch = Batch(3, (b"x", b"yz"), True, {"a": 4})
    assert decode_message(encode_message(batch)) == batch


# PullSession: (step, now_ms, expect) — "poll" expects whether a Pull is issued.
SESSION_SCRIPT = [
    ("poll", 0, True),       # first pull at once
    ("poll", 10, False),     # one in flight
    ("answer-more", 20, None),
    ("poll", 20, True),      # the peer has more: pull again at once
    ("answer", 30, None),
    ("poll", 40, False),     # wait the interval (50 ms)
    ("poll", 80, True),
    ("poll", 500, False),    # in flight, not yet timed out (1000 ms)
    ("poll", 1080, True),    # timed out: ask again
    ("stale", 1090, None),   # an answer to the timed-out pull does not end the new one
    ("poll", 1100, False),
]


def test_pull_session_script() -> None:
    session = PullSession("a", interval_ms=50, timeout_ms=1000, max_changes=10)
    last: Pull | None = None
    previous: Pull | None = None
    for step, now_ms, expect in SESSION_SCRIPT:
        if step == "poll":
            pull = session.poll(now_ms, {})
            assert (pull is not None) == expect, (step, now_ms)
            if pull is not None:
                previous, last = last, pull
        elif step == "stale":
            assert previous is not None
            assert not session.on_batch(Batch(previous.request_id, (), False), now_ms, False)
        else:
            assert last is not None
            assert session.on_batch(Batch(last.request_id, (), step == "answer-more"), now_ms,
                                    False)
    assert session.timeouts == 1


def test_accepted_changes_keep_the_frames_they_arrived_in() -> None:
    cluster = run_script([("create", "a"), ("write", "a", "k", 1), ("write", "a", "j", 2)])
    changes = cluster.stores["a"].changes_since({}, 10)
    records = [encode_change(c) for c in reversed(changes)]  # out of order, as relays send
    plan = plan_batch(records, {}, cluster.stores["b"].table_state)
    assert [c.seq for c in plan.accepted] == [1, 2, 3]
    assert plan.frames == [encode_change(c) for c in plan.accepted]
