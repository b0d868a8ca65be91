"""Merge laws (DESIGN.md, Tests): applying any set of changes in any order, with
duplicates, gives the same final state — idempotent, commutative, associative — for
puts, full-image updates and deletes (tombstones), and table DDL, over histories
regions can make (each write made through its region's causal state).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from atoll.clock import HybridClock
from atoll.replication.apply import ApplyChanges
from atoll.replication.change import Change, ItemWrite, TableOp, Version, encode_change
from atoll.replication.memory_store import MemoryStore
from atoll.replication.merge import Stored, decide, join_write, local_item_write
from atoll.replication.protocol import plan_batch
from atoll.replication.store import digest_snapshot, snapshot

ORIGINS = ("a", "b", "c")
KEYS = (b"k0", b"k1", b"k2")


@st.composite
def histories(draw: st.DrawFn) -> list[Change]:
    """Changes on a few keys of table t (created by a/1) as regions make them: each
    step, one origin first learns a further prefix of some other origin's changes (as
    its cursors advance), its clock passing every timestamp it learned (an HLC), then
    writes whole items (puts and deletes) through its own rows' causal states
    (`merge.local_item_write`: the row form over what it saw, or the state once three
    regions wrote the item). Only such histories are reachable: a write observes what
    its region's earlier writes observed, and never a timestamp at or above its own."""
    changes = [Change.create("a", 1, 1, [TableOp("t", "create", {"k": 1})])]
    made: dict[str, list[Change]] = {origin: [] for origin in ORIGINS}
    learned = {origin: dict.fromkeys(ORIGINS, 0) for origin in ORIGINS}
    rows: dict[tuple[str, bytes], Stored | None] = {}
    hlcs = dict.fromkeys(ORIGINS, 1)
    for _ in range(draw(st.integers(0, 14))):
        origin = draw(st.sampled_from(ORIGINS))
        other = draw(st.sampled_from(ORIGINS))
        if other != origin:
            upto = draw(st.integers(learned[origin][other], len(made[other])))
            for change in made[other][learned[origin][other]:upto]:
                hlcs[origin] = max(hlcs[origin], change.hlc)
                for op in change.ops:
                    assert isinstance(op, ItemWrite)
                    joined, _conflicts = join_write(rows.get((origin, op.pk)), op,
                                                    change.version, {})
                    if joined is not None:
                        rows[(origin, op.pk)] = joined
            learned[origin][other] = upto
        hlcs[origin] += draw(st.integers(1, 3))
        version = Version(hlcs[origin], origin)
        ops = []
        for key in draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=2, unique=True)):
            value = draw(st.one_of(st.none(), st.integers(0, 3)))
            item = None if value is None else {"pk": {"S": key.decode()}, "v": {"N": str(value)}}
            op = local_item_write(rows.get((origin, key)), ItemWrite("t", key, b"", item, None),
                                  version, {})
            joined, _conflicts = join_write(rows.get((origin, key)), op, version, {})
            assert joined is not None
            rows[(origin, key)] = joined
            ops.append(op)
        seq = len(made[origin]) + (2 if origin == "a" else 1)
        made[origin].append(Change.create(origin, seq, hlcs[origin], ops))
    for origin in ORIGINS:
        changes.extend(made[origin])
    return changes


def _apply_all(changes: list[Change]) -> MemoryStore:
    """Deliver `changes` in the given order, as a receiver does (plan, then apply),
    re-offering what was held until nothing more applies."""
    store = MemoryStore("x")
    records = [encode_change(c) for c in changes]

    def deliver(batch: list[bytes]) -> bool:
        plan = plan_batch(batch, store.cursors(), store.table_state)
        store.write(ApplyChanges(tuple(zip(plan.accepted, plan.frames, strict=True)), "x",
                                 HybridClock(lambda: 0), lambda: 0))
        return bool(plan.accepted)

    for record in records:  # one by one, in the given order: maximal reordering
        deliver([record])
    for _ in range(len(records) + 1):
        if not deliver(records):
            break
    return store


@settings(max_examples=150, deadline=None)
@given(histories(), st.randoms(use_true_random=False))
def test_any_order_with_duplicates_gives_the_same_state(changes: list[Change], rnd) -> None:
    shuffled = changes + rnd.sample(changes, k=len(changes) // 2)  # duplicates
    rnd.shuffle(shuffled)
    a, b = _apply_all(changes), _apply_all(shuffled)
    assert digest_snapshot(snapshot(a)) == digest_snapshot(snapshot(b))
    assert a.cursors() == b.cursors()
    assert {k: s.version for k, s in a.contents().items()} == \
        {k: s.version for k, s in b.contents().items()}


@settings(max_examples=150, deadline=None)
@given(histories(), st.randoms(use_true_random=False))
def test_associative_merge_of_two_replicas(changes: list[Change], rnd) -> None:
    """(x ⊔ y) ⊔ z == x ⊔ (y ⊔ z): regions that merged partial histories in different
    groupings, then exchanged everything, end equal."""
    rnd.shuffle(changes)
    third = len(changes) // 3
    x, y, z = changes[:third], changes[third:2 * third], changes[2 * third:]
    left = _apply_all(x + y + z)
    right = _apply_all(y + z + x)
    assert digest_snapshot(snapshot(left)) == digest_snapshot(snapshot(right))


@given(st.lists(st.tuples(st.integers(1, 9), st.sampled_from(ORIGINS),
                          st.one_of(st.none(), st.integers(0, 2))), min_size=1, max_size=8),
       st.randoms(use_true_random=False))
def test_decide_is_a_max_over_versions(writes, rnd) -> None:
    """Folding `decide` over writes in any order keeps the greatest version (idempotent,
    commutative): tombstones included, so an older put never resurrects a delete."""
    def fold(order):
        stored = None
        for hlc, origin, value in order:
            item = None if value is None else {"v": {"N": str(value)}}
            write = ItemWrite("t", b"k", b"", item)
            if decide(stored, write, Version(hlc, origin)).apply:
                stored = Stored(Version(hlc, origin), item)
        return stored
    shuffled = list(writes) + list(writes)
    rnd.shuffle(shuffled)
    best = max(writes, key=lambda w: (w[0], w[1]))
    for result in (fold(writes), fold(shuffled)):
        assert result is not None and result.version == Version(best[0], best[1])
