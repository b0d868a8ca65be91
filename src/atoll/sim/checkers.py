"""Checkers: what must hold after the faults heal and the cluster goes quiet.

Theory of operation: each checker takes the regions' stores (any `ReplicaStore`: the
memory store or the node's SQLite store), the acknowledged changes from the workload and
what the run recorded, and returns a list of human-readable violations (empty = pass).
They do not know how the run went, so the simulator, live tests and drills can reuse them
on any cluster whose stores they can read.

  converged          every region holds the same cursors and byte-identical contents
  acknowledged       every acknowledged write is present, or superseded by a later
                     write to the same item that knew it (its `prev`), that a conflict
                     log records (the loser), or by a later delete when it was a delete;
                     or its table was deleted. A delete that every region had applied
                     (below a tombstone horizon some purge used) may have lost its
                     tombstone: what came after it knew it
  cursors_gapless    no cursor past a gap: each region's changelog holds every record
                     from its start up to its cursor, the ones the origin made, except
                     the records a snapshot rebuild bridged (below a cursor it adopted)
  matches_reference  the contents equal the result of applying every acknowledged
                     change, in causal order, to one fresh store (the merge laws, end to end)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from atoll.clock.hlc import HybridClock
from atoll.replication.apply import ApplyChanges
from atoll.replication.change import Change, ItemKey, ItemWrite, Version, encode_change
from atoll.replication.memory_store import MemoryStore
from atoll.replication.merge import Stored
from atoll.replication.protocol import plan_batch
from atoll.replication.store import ReplicaStore, Snapshot, digest_snapshot, snapshot

MAX_REPORTED = 10  # violations listed per checker
MAX_LOG_RECORDS = 1_000_000


def converged(stores: Mapping[str, ReplicaStore]) -> list[str]:
    names = sorted(stores)
    first = stores[names[0]]
    first_snapshot = snapshot(first)
    problems = []
    for name in names[1:]:
        if stores[name].cursors() != first.cursors():
            problems.append(f"cursors differ: {names[0]}={first.cursors()} "
                            f"{name}={stores[name].cursors()}")
        other = snapshot(stores[name])
        if digest_snapshot(other) != digest_snapshot(first_snapshot):
            problems.append(f"contents differ between {names[0]} and {name}: "
                            f"{_diff(first_snapshot, other)}")
    return problems[:MAX_REPORTED]


def acknowledged(stores: Mapping[str, ReplicaStore], acked: Sequence[Change],
                 tombstone_horizon_hlc: int = 0) -> list[str]:
    store = stores[sorted(stores)[0]]
    contents = store.contents()
    tables = store.table_states()
    knew: set[tuple[ItemKey, Version]] = set()
    deletes: dict[ItemKey, list[Version]] = {}
    for change in acked:
        for op in change.ops:
            if isinstance(op, ItemWrite):
                if op.prev is not None:
                    knew.add((op.key, op.prev))
                if op.item is None:
                    deletes.setdefault(op.key, []).append(change.version)
                    if change.hlc < tombstone_horizon_hlc:
                        knew.add((op.key, change.version))  # applied everywhere
    lost_in_conflict = {((c.table, c.pk, c.sk), c.loser)
                        for s in stores.values() for c in s.conflicts()}
    problems = []
    for change in acked:
        for op in change.ops:
            if not isinstance(op, ItemWrite):
                continue
            table = tables.get(op.table)
            if table is None:
                why = "its table is unknown"
            elif not table.live:
                continue  # superseded by DeleteTable
            else:
                why = _missing(contents.get(op.key), op, change.version, knew | _later(
                    deletes, op, change.version), lost_in_conflict)
            if why:
                problems.append(f"acknowledged write {change.origin}/{change.seq} to "
                                f"{op.key}: {why}")
    return problems[:MAX_REPORTED]


def _later(deletes: Mapping[ItemKey, list[Version]], op: ItemWrite,
           version: Version) -> set[tuple[ItemKey, Version]]:
    """A delete superseded by a later delete of the same item: both say "gone"."""
    if op.item is None and any(other > version for other in deletes.get(op.key, ())):
        return {(op.key, version)}
    return set()


def _missing(final: Stored | None, op: ItemWrite, version: Version,
             knew: set[tuple[ItemKey, Version]],
             lost_in_conflict: set[tuple[ItemKey, Version]]) -> str:
    if final is not None and final.version == version:
        return "" if final.item == op.item else "present with other contents"
    if final is not None and final.version < version:
        return f"lost: the item is at an older version {final.version}"
    if final is None and op.item is None:
        return ""  # a delete whose tombstone retention purged
    if (op.key, version) in knew or (op.key, version) in lost_in_conflict:
        return ""
    return "superseded by a write that neither knew it nor logged a conflict"


def cursors_gapless(stores: Mapping[str, ReplicaStore], acked: Sequence[Change],
                    adopted: Mapping[str, Mapping[str, set[int]]]) -> list[str]:
    made = {(c.origin, c.seq): c for c in acked}
    problems = []
    for name, store in sorted(stores.items()):
        for origin, cursor in sorted(store.cursors().items()):
            origin_change = made.get((origin, cursor.seq))
            if origin_change is None or origin_change.hlc != cursor.hlc:
                problems.append(f"{name}: cursor {origin}={cursor} is no change {origin} made")
            held = [seq for seq, _frame in store.records_since(origin, 0, MAX_LOG_RECORDS)]
            bridged = adopted.get(name, {}).get(origin, set())
            if held and held[-1] > cursor.seq:
                problems.append(f"{name}: log of {origin} holds {held[-1]} past its cursor")
            for after, before in _holes([*held, cursor.seq + 1]):
                if before - 1 not in bridged:
                    problems.append(f"{name}: log of {origin} misses {after + 1}..{before - 1}"
                                    f" below its cursor {cursor.seq}")
            if not held and cursor.seq and cursor.seq not in bridged:
                problems.append(f"{name}: log of {origin} is empty below cursor {cursor.seq}")
    return problems[:MAX_REPORTED]


def _holes(seqs: Sequence[int]) -> list[tuple[int, int]]:
    return [(a, b) for a, b in zip(seqs, seqs[1:]) if b != a + 1]


def matches_reference(stores: Mapping[str, ReplicaStore], acked: Sequence[Change]) -> list[str]:
    reference = MemoryStore("reference")
    clock = HybridClock(lambda: 0)
    records = [encode_change(c) for c in acked]
    for _ in range(len(records) + 1):  # each pass applies at least one change, or stops
        plan = plan_batch(records, reference.cursors(), reference.table_state)
        if not plan.accepted:
            break
        reference.write(ApplyChanges(tuple(zip(plan.accepted, plan.frames, strict=True)),
                                     "reference", clock, lambda: 0))
    want = snapshot(reference)
    problems = []
    for name, store in sorted(stores.items()):
        got = snapshot(store)
        if digest_snapshot(got) != digest_snapshot(want):
            problems.append(f"{name} differs from the reference: {_diff(want, got)}")
    return problems[:MAX_REPORTED]


def _diff(a: Snapshot, b: Snapshot) -> str:
    tables = sorted(set(a.tables) ^ set(b.tables))
    keys = sorted(k for k in set(a.items) | set(b.items)
                  if _seen(a.items.get(k)) != _seen(b.items.get(k)))
    return f"tables {tables}, items {keys[:3]}{'...' if len(keys) > 3 else ''}"


def _seen(stored: Stored | None) -> tuple[Version, object] | None:
    return None if stored is None else (stored.version, stored.item)
