"""Checkers: what must hold after the faults heal and the cluster goes quiet.

Theory of operation: each checker takes the regions' stores (and the acknowledged
changes from the workload) and returns a list of human-readable violations (empty =
pass). They do not know how the run went, so the simulator, live tests and drills can
reuse them on any cluster that exposes `MemoryStore`-like stores.

  converged          every region holds the same cursors and byte-identical contents
  acknowledged       every acknowledged write is present, or superseded by a later
                     write to the same item that knew it (the item's causal state saw
                     it and no longer holds it, or a delete whose tombstone every region
                     had applied and then purged), or hidden by a concurrent write that
                     a conflict log records (the loser), or its table was deleted
  cursors_gapless    no cursor past a gap: each region's changelog holds exactly the
                     records after its purge point up to its cursor, the ones the
                     origin made
  matches_reference  the contents equal the result of applying every acknowledged
                     change, in causal order, to one fresh store (the merge laws, end to end)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from atoll.replication import itemstate
from atoll.replication.change import Change, ItemKey, ItemWrite, Version, encode_change
from atoll.replication.itemstate import Dot
from atoll.replication.memory_store import MemoryStore
from atoll.replication.merge import key_item
from atoll.replication.protocol import plan_batch
from atoll.replication.store import digest_snapshot

MAX_REPORTED = 10  # violations listed per checker


def converged(stores: Mapping[str, MemoryStore]) -> list[str]:
    names = sorted(stores)
    first = stores[names[0]]
    problems = []
    for name in names[1:]:
        if stores[name].cursors() != first.cursors():
            problems.append(f"cursors differ: {names[0]}={first.cursors()} "
                            f"{name}={stores[name].cursors()}")
        if digest_snapshot(stores[name].snapshot()) != digest_snapshot(first.snapshot()):
            problems.append(f"contents differ between {names[0]} and {name}: "
                            f"{_diff(first, stores[name])}")
    return problems[:MAX_REPORTED]


def acknowledged(stores: Mapping[str, MemoryStore], acked: Sequence[Change]) -> list[str]:
    store = stores[sorted(stores)[0]]
    lost_in_conflict = {((c.table, c.pk, c.sk), c.loser)
                        for s in stores.values() for c in s.conflicts()}
    problems = []
    for change in acked:
        for op in change.ops:
            if not isinstance(op, ItemWrite):
                continue
            why = _missing(store, op, change.version, lost_in_conflict)
            if why:
                problems.append(f"acknowledged write {change.origin}/{change.seq} to "
                                f"{op.key}: {why}")
    return problems[:MAX_REPORTED]


def _missing(store: MemoryStore, op: ItemWrite, version: Version,
             lost_in_conflict: set[tuple[ItemKey, Version]]) -> str:
    """Why an acknowledged whole-item write is not accounted for in the final state
    ("" if it is): it shows (its gen is the greatest, with its item), or a write that
    observed it removed it (its dot is in the state's context, its gen is gone), or it
    is hidden by a concurrent write and a conflict log records it."""
    table = store.table_state(op.table)
    if table is None:
        return "its table is unknown"
    if not table.live:
        return ""  # superseded by DeleteTable
    final = store.stored(op.key)
    # A delete whose tombstone retention purged had reached every region, after every
    # write it observed: the item's state began afresh (or there is no row at all).
    purged = any(key == op.key for key, _version in store.purged_tombstones)
    if final is None:
        return "" if op.item is None or purged else "lost: the item has no row"
    key = key_item(table.definition or {}, op.pk, op.sk)
    state = itemstate.load(itemstate.Stored(
        final.state, Dot(final.version.hlc, final.version.origin),
        None if final.prev is None else Dot(final.prev.hlc, final.prev.origin)),
        final.item, key.keys())
    dot = Dot(version.hlc, version.origin)
    if dot.hlc > state.ctx.get(dot.region, 0):
        return "" if purged else f"lost: the item's state never saw it (context {state.ctx})"
    gen = state.gens.get(dot.region)
    if gen is None or gen[0] != dot.hlc:
        return ""  # removed by a later write that observed it
    if itemstate.greatest_gen(state) == dot:
        return "" if final.item == op.item else "present with other contents"
    if (op.key, version) in lost_in_conflict:
        return ""
    return "hidden by a concurrent write without a logged conflict"


def cursors_gapless(stores: Mapping[str, MemoryStore], acked: Sequence[Change]) -> list[str]:
    made = {(c.origin, c.seq): c for c in acked}
    problems = []
    for name, store in sorted(stores.items()):
        starts = store.log_start()
        for origin, cursor in store.cursors().items():
            origin_change = made.get((origin, cursor.seq))
            if origin_change is None or origin_change.hlc != cursor.hlc:
                problems.append(f"{name}: cursor {origin}={cursor} is no change {origin} made")
            start = starts.get(origin, 0)
            held = store.logged_seqs(origin)
            if held != list(range(start + 1, cursor.seq + 1)):
                problems.append(f"{name}: log of {origin} is not {start + 1}..{cursor.seq}")
    return problems[:MAX_REPORTED]


def matches_reference(stores: Mapping[str, MemoryStore], acked: Sequence[Change]) -> list[str]:
    reference = MemoryStore("reference")
    records = [encode_change(c) for c in acked]
    for _ in range(len(records) + 1):  # each pass applies at least one change, or stops
        plan = plan_batch(records, reference.cursors(), reference.table_state)
        if not plan.accepted:
            break
        reference.apply(plan.accepted)
    want = digest_snapshot(reference.snapshot())
    return [f"{name} differs from the reference: {_diff(reference, store)}"
            for name, store in sorted(stores.items())
            if digest_snapshot(store.snapshot()) != want][:MAX_REPORTED]


def _diff(a: MemoryStore, b: MemoryStore) -> str:
    sa, sb = a.snapshot(), b.snapshot()
    tables = sorted(set(sa.tables) ^ set(sb.tables))
    keys = sorted(k for k in set(sa.items) | set(sb.items) if sa.items.get(k) != sb.items.get(k))
    return f"tables {tables}, items {keys[:3]}{'...' if len(keys) > 3 else ''}"
