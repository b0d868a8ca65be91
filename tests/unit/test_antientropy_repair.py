"""Repair planning: the merge rule picks the winner, nothing acknowledged is lost, and a
repair applies only to the row verify judged (or one the winner supersedes)."""

from __future__ import annotations

from atoll.antientropy.hashing import content_hash
from atoll.antientropy.messages import Listed
from atoll.antientropy.repair import choose_winner, plan_key, records_for, repair_applies
from atoll.antientropy.store import ALREADY, APPLIED, SKIPPED, Entry
from atoll.antientropy.versions import HLC_SCHEME, encode_hlc_version
from atoll.replication.change import Version


def v(hlc: int, origin: str = "a", prev: tuple[int, str] | None = None) -> bytes:
    return encode_hlc_version(Version(hlc, origin), None if prev is None else Version(*prev))


def live(version: bytes, item: bytes = b"{}", intact: bool = True) -> Listed:
    return Listed(b"k", b"", version, content_hash(item), intact)


def tomb(version: bytes) -> Listed:
    return Listed(b"k", b"", version, None, True)


def test_the_newest_version_wins_whatever_the_order():
    states = {"a": live(v(5)), "b": live(v(9, "b")), "c": None}
    assert choose_winner(states, HLC_SCHEME) == ("b", states["b"])
    reordered = dict(reversed(list(states.items())))
    assert choose_winner(reordered, HLC_SCHEME) == ("b", states["b"])


def test_a_newer_tombstone_wins_over_an_older_item_and_targets_only_live_copies():
    states = {"a": live(v(5)), "b": tomb(v(7, "b", (5, "a"))), "c": None}
    plan = plan_key("t", b"k", b"", states, ["a", "b", "c"], HLC_SCHEME)
    assert plan is not None and plan.source == "b"
    assert [(r, reason) for r, _, reason, _ in plan.targets] == [("a", "deleted")]


def test_a_concurrent_loser_is_logged_as_a_conflict():
    states = {"a": live(v(5, "a", (1, "x"))), "b": live(v(6, "b", (1, "x")))}
    plan = plan_key("t", b"k", b"", states, ["a", "b"], HLC_SCHEME)
    assert plan is not None and plan.targets[0][0] == "a" and plan.targets[0][3] is True
    sequential = {"a": live(v(5, "a")), "b": live(v(6, "b", (5, "a")))}
    plan = plan_key("t", b"k", b"", sequential, ["a", "b"], HLC_SCHEME)
    assert plan is not None and plan.targets[0][3] is False


def test_equal_versions_prefer_the_intact_copy_then_the_majority():
    good, bad = b'{"n":1}', b'{"n":2}'
    states = {"a": live(v(5), good), "b": live(v(5), bad, intact=False)}
    assert choose_winner(states, HLC_SCHEME)[0] == "a"
    states = {"a": live(v(5), good), "b": live(v(5), bad), "c": live(v(5), good)}
    assert choose_winner(states, HLC_SCHEME)[0] == "a"
    assert choose_winner(states, HLC_SCHEME, frozenset({"a", "c"}))[0] == "b"
    tie = {"a": live(v(5), good), "b": live(v(5), bad)}
    assert isinstance(choose_winner(tie, HLC_SCHEME), str)  # no guess
    assert isinstance(choose_winner({"a": live(v(5), bad, intact=False)}, HLC_SCHEME), str)


def test_records_carry_the_fetched_winner_whole():
    states = {"a": live(v(9), b'{"w":1}'), "b": None}
    plan = plan_key("t", b"k", b"", states, ["a", "b"], HLC_SCHEME)
    assert plan is not None
    [(target, record)] = records_for("t", plan, b'{"w":1}')
    assert target == "b" and record.item == b'{"w":1}' and record.replaces == 0
    assert record.source == "a" and record.reason == "missing"


def record_for(winner: Entry, replaces: Entry | None):  # type: ignore[no-untyped-def]
    from atoll.antientropy.store import RepairRecord
    return RepairRecord("t", winner.pk, winner.sk, winner.version, winner.item, "a",
                        0 if replaces is None else replaces.leaf("t"), "older")


def test_repair_applies_to_what_verify_saw_and_is_idempotent():
    seen = Entry(b"k", b"", v(3), b'{"old":1}')
    winner = Entry(b"k", b"", v(9), b'{"new":1}')
    record = record_for(winner, seen)
    assert repair_applies(record, seen, HLC_SCHEME) == APPLIED
    assert repair_applies(record, winner, HLC_SCHEME) == ALREADY  # applied twice: no-op


def test_repair_skips_a_row_that_moved_past_the_winner():
    seen = Entry(b"k", b"", v(3), b'{"old":1}')
    winner = Entry(b"k", b"", v(9), b'{"new":1}')
    newer = Entry(b"k", b"", v(12, "b"), b'{"newest":1}')
    assert repair_applies(record_for(winner, seen), newer, HLC_SCHEME) == SKIPPED
    between = Entry(b"k", b"", v(5, "b"), b'{"b":1}')  # moved on, but still older
    assert repair_applies(record_for(winner, seen), between, HLC_SCHEME) == APPLIED


def test_a_corrupt_row_is_replaced_even_at_the_same_version():
    corrupt = Entry(b"k", b"", v(9), b'{"new":0}', intact=False)
    winner = Entry(b"k", b"", v(9), b'{"new":1}')
    assert repair_applies(record_for(winner, corrupt), corrupt, HLC_SCHEME) == APPLIED
    assert repair_applies(record_for(winner, None), corrupt, HLC_SCHEME) == SKIPPED


def test_a_vanished_row_is_not_resurrected_by_a_stale_record():
    seen = Entry(b"k", b"", v(3), b'{"old":1}')
    winner = Entry(b"k", b"", v(9), b'{"new":1}')
    assert repair_applies(record_for(winner, seen), None, HLC_SCHEME) == SKIPPED
    assert repair_applies(record_for(winner, None), None, HLC_SCHEME) == APPLIED


def test_tombstone_records_against_no_item():
    tombstone = Entry(b"k", b"", v(9), None)
    assert repair_applies(record_for(tombstone, None), None, HLC_SCHEME) == ALREADY
    older = Entry(b"k", b"", v(4), None)
    assert repair_applies(record_for(tombstone, older), older, HLC_SCHEME) == APPLIED
