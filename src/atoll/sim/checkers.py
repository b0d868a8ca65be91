"""Checkers: what must hold after the faults heal and the cluster goes quiet.

Theory of operation: each checker takes the regions' stores (any `ReplicaStore`: the
memory store or the node's SQLite store), the acknowledged changes from the workload and
what the run recorded, and returns a list of human-readable violations (empty = pass).
They do not know how the run went, so the simulator, live tests and drills can reuse them
on any cluster whose stores they can read.

  converged          every region holds the same cursors and byte-identical contents
  acknowledged       every acknowledged write is present, or superseded by a later
                     write to the same item that knew it (the item's causal state saw
                     it and no longer holds it), or hidden by a concurrent write that a
                     conflict log records (the loser), or its table was deleted. A
                     delete that every region had applied (below a tombstone horizon
                     some purge used) may have lost its tombstone: what came after it
                     began the item's state afresh
  states_converged   every region holds the same causal state for every item
  counters_and_sets  every counter holds exactly the sum of the acknowledged increments
                     that no acknowledged reset (a put or delete of its item) observed;
                     every set holds exactly the members with an acknowledged ADD that
                     no reset nor DELETE of the member observed (and that a concurrent,
                     newer put does not hide)
  cursors_gapless    no cursor past a gap: each region's changelog holds every record
                     from its start up to its cursor, the ones the origin made, except
                     the records a snapshot rebuild bridged (below a cursor it adopted)
  matches_reference  the contents equal the result of applying every acknowledged
                     change, in causal order, to one fresh store (the merge laws, end to end)
  forgeries_refused  nothing of a forged change (atoll.sim.forgery) is stored: no item
                     and no changelog record carries the forgeries' mark
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import orjson

from atoll.clock.hlc import HybridClock
from atoll.model.writes import ADD_ELEMENTS, DELETE_ELEMENTS, INCREMENT
from atoll.replication import itemstate
from atoll.replication.apply import ApplyChanges
from atoll.replication.change import Change, ItemKey, ItemWrite, Version, encode_change
from atoll.replication.itemstate import Dot
from atoll.replication.itemstate.compact import compact
from atoll.replication.memory_store import MemoryStore
from atoll.replication.merge import ItemUpdate, Stored, key_item
from atoll.replication.protocol import plan_batch
from atoll.replication.store import (
    ReplicaStore,
    Snapshot,
    StoreTxn,
    digest_snapshot,
    snapshot,
)
from atoll.sim.forgery import FORGED_ATTRIBUTE

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
                 tombstone_horizon_hlc: int = 0, apart: frozenset[str] = frozenset()
                 ) -> list[str]:
    """`apart`: attributes that attribute-level updates write beside whole items (a
    shown put is judged without them; counters_and_sets judges them)."""
    store = stores[sorted(stores)[0]]
    tables = store.table_states()
    keys = sorted({op.key for change in acked for op in change.ops
                   if isinstance(op, ItemWrite)})
    finals = stored_items(store, keys)
    # deletes every region had applied: a purge may have dropped their tombstones
    purged = {op.key for change in acked if change.hlc < tombstone_horizon_hlc
              for op in change.ops if isinstance(op, ItemWrite) and op.item is None}
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
            elif op.item is None and change.hlc < tombstone_horizon_hlc:
                continue  # a delete every region had applied (its tombstone may be gone)
            else:
                why = _missing(finals.get(op.key), op, change.version, table.definition or {},
                               apart,
                               op.key in purged, lost_in_conflict)
            if why:
                problems.append(f"acknowledged write {change.origin}/{change.seq} to "
                                f"{op.key}: {why}")
    return problems[:MAX_REPORTED]


def stored_items(store: ReplicaStore, keys: Sequence[ItemKey]) -> dict[ItemKey, Stored]:
    """The stored version of each key with its causal state (None-free: keys without a
    row are left out), read in one store transaction that writes nothing."""
    def read(txn: StoreTxn) -> dict[ItemKey, Stored]:
        found = {key: txn.stored(key) for key in keys}
        return {key: stored for key, stored in found.items() if stored is not None}
    return store.write(read)


def item_state(final: Stored, definition: dict[str, Any], pk: bytes,
               sk: bytes) -> itemstate.ItemState:
    """The causal state a stored item holds (its row form rebuilt if need be)."""
    key = key_item(definition, pk, sk)
    return itemstate.load(itemstate.Stored(
        final.state, Dot(final.version.hlc, final.version.origin),
        None if final.prev is None else Dot(final.prev.hlc, final.prev.origin)),
        final.item, key.keys())


def _missing(final: Stored | None, op: ItemWrite, version: Version,
             definition: dict[str, Any], apart: frozenset[str], purged: bool,
             lost_in_conflict: set[tuple[ItemKey, Version]]) -> str:
    """Why an acknowledged write is not accounted for in the final state ("" if it is):
    it shows (its gen is the greatest, with its item), or a write that observed it
    removed it (its dot is in the state's context, its gen is gone), or it is hidden by
    a concurrent write and a conflict log records it."""
    if final is None:
        return "" if op.item is None or purged else "lost: the item has no row"
    state = item_state(final, definition, op.pk, op.sk)
    dot = Dot(version.hlc, version.origin)
    if dot.hlc > state.ctx.get(dot.region, 0):
        return "" if purged else f"lost: the item's state never saw it (context {state.ctx})"
    gen = state.gens.get(dot.region)
    if gen is None or gen[0] != dot.hlc:
        return ""  # removed by a later write that observed it (or an update's entries)
    if itemstate.greatest_gen(state) == dot:
        shown = None if final.item is None else {
            name: value for name, value in final.item.items() if name not in apart}
        if op.item is None and shown is not None and set(shown) <= set(
                key_item(definition, op.pk, op.sk)):
            return ""  # a delete, and the item is back by concurrent updates apart alone
        return "" if shown == op.item else "present with other contents"
    if op.item is None and final.item is None:
        return ""  # a delete hidden by a concurrent delete: both say "gone" (they agree)
    gstar = itemstate.greatest_gen(state)
    if op.item is None and gstar is not None and not state.gens[gstar.region][1] \
            and final.item is not None and set(final.item) - apart <= set(
                key_item(definition, op.pk, op.sk)):
        return ""  # hidden by a concurrent delete; the item is back by updates apart alone
    if (op.key, version) in lost_in_conflict:
        return ""
    return "hidden by a concurrent write without a logged conflict"


def states_converged(stores: Mapping[str, ReplicaStore],
                     tombstone_horizon_hlc: int = 0) -> list[str]:
    """Every region holds the same causal state of every item (not only the same
    visible item): the join converged, counters' contributions and hidden entries too.

    One difference is allowed, the trace of a purge: a delete below the tombstone
    horizon had reached every region, and a region that purged its tombstone writes the
    item afresh (its context no longer names the delete), while a region that had not
    purged yet joins that write into its tombstone and keeps the delete's dot. Both
    show the same item (every later write is newer than the delete); states are
    compared without their dots below the horizon (the contents checks compare the
    items exactly)."""
    names = sorted(stores)
    tables = stores[names[0]].table_states()
    keys = sorted({key for store in stores.values() for key in store.contents()})
    finals = {name: stored_items(stores[name], keys) for name in names}
    problems = []
    for key in keys:
        table = tables.get(key[0])
        if table is None or not table.live:
            continue
        definition = table.definition or {}
        present = {name: finals[name][key] for name in names if key in finals[name]}
        if len(present) < len(names) and all(f.item is None for f in present.values()):
            # a tombstone: regions purge theirs independently, below a horizon they
            # share, so some may hold it and some not (the contents check covers it)
            pass
        elif len(present) < len(names):
            problems.append(f"item {key}: held by {sorted(present)} only")
            continue
        states = {name: _unpurged(item_state(final, definition, key[1], key[2]),
                                  tombstone_horizon_hlc)
                  for name, final in present.items()}
        first = next(iter(states.values()), None)
        if any(state != first for state in states.values()):
            problems.append(f"item {key}: states differ: "
                            + "; ".join(f"{name}={state!r}" for name, state in states.items()))
    return problems[:MAX_REPORTED]


def counters_and_sets(stores: Mapping[str, ReplicaStore], acked: Sequence[Change],
                      updates: Sequence[tuple[Change, ItemUpdate]]) -> list[str]:
    """The exact due of every counter (`c`) and set (`s`) the workload updated, from the
    acknowledged writes' causal contexts alone, against every region's item."""
    tables = stores[sorted(stores)[0]].table_states()
    by_change = {(change.origin, change.seq): update for change, update in updates}
    writes: dict[ItemKey, list[tuple[Dot, dict[str, int], ItemUpdate | None]]] = {}
    for change in acked:
        update = by_change.get((change.origin, change.seq))
        for op in change.ops:
            table = tables.get(op.table)
            if isinstance(op, ItemWrite) and table is not None and table.live:
                ctx = _write_context(op, change.version, table.definition or {})
                writes.setdefault(op.key, []).append(
                    (Dot(change.hlc, change.origin), ctx, update))
    keys = sorted(key for key, made in writes.items() if any(u for _d, _c, u in made))
    problems = []
    held = {name: stored_items(store, keys) for name, store in stores.items()}
    for name in sorted(stores):
        for key in keys:
            final = held[name].get(key)
            definition = tables[key[0]].definition or {}
            # the greatest whole-item write, from a region that still holds the row (a
            # region may have purged the tombstone of a delete that hid an older member)
            witness = final or next((h[key] for h in held.values() if key in h), None)
            state = None if witness is None else item_state(witness, definition, key[1],
                                                            key[2])
            gstar = None if state is None else itemstate.greatest_gen(state)
            item = {} if final is None or final.item is None else final.item
            due = (_counter_due(writes[key]), _set_due(writes[key], gstar))
            if (item.get("c"), item.get("s")) != due:
                problems.append(f"{name}: item {key} holds c={item.get('c')} s={item.get('s')}"
                                f", due c={due[0]} s={due[1]}")
    return problems[:MAX_REPORTED]


def _write_context(op: ItemWrite, version: Version, definition: dict[str, Any]
                   ) -> dict[str, int]:
    """The causal context of the state an item write carried (what its writer had seen)."""
    key_names = key_item(definition, op.pk, op.sk).keys()
    return itemstate.load(itemstate.Stored(
        op.state, Dot(version.hlc, version.origin),
        None if op.prev is None else Dot(op.prev.hlc, op.prev.origin)),
        op.item, key_names).ctx


def _observed(dot: Dot, ctx: Mapping[str, int]) -> bool:
    return dot.hlc <= ctx.get(dot.region, 0)


def _counter_due(made: Sequence[tuple[Dot, dict[str, int], ItemUpdate | None]]) -> Any:
    resets = [ctx for _dot, ctx, update in made if update is None]
    live = [int(u.operand["N"]) for dot, _ctx, u in made
            if u is not None and u.kind == INCREMENT
            and not any(_observed(dot, ctx) for ctx in resets)]
    return {"N": str(sum(live))} if live else None


def _set_due(made: Sequence[tuple[Dot, dict[str, int], ItemUpdate | None]],
             gstar: Dot | None) -> Any:
    members: set[str] = set()
    for dot, ctx, update in made:
        if update is None or update.kind != ADD_ELEMENTS:
            continue
        admitted = (gstar is None or dot == gstar or _observed(gstar, ctx)
                    or (dot.hlc, dot.region) > (gstar.hlc, gstar.region))
        for member in update.operand["SS"]:
            removed = any(_observed(dot, other_ctx) for other_dot, other_ctx, other in made
                          if other_dot != dot and (other is None or (
                              other.kind == DELETE_ELEMENTS and member in other.operand["SS"])))
            if admitted and not removed:
                members.add(member)
    return {"SS": sorted(members)} if members else None


def _unpurged(state: itemstate.ItemState, horizon_hlc: int) -> itemstate.ItemState:
    """`state` without what a purge below `horizon_hlc` may have made a region forget:
    its dots below the horizon (context entries, whole-item writes, values, set dots)."""
    if not horizon_hlc:
        return state
    attrs = {}
    for name, attr in state.attrs.items():
        sets = {e: {r: h for r, h in dots.items() if h >= horizon_hlc}
                for e, dots in attr.sets.items()}
        kept = itemstate.AttrState(
            {r: reg for r, reg in attr.regs.items() if reg[0] >= horizon_hlc},
            {e: dots for e, dots in sets.items() if dots}, attr.ctrs)
        if not kept.empty():
            attrs[name] = kept
    return itemstate.ItemState(
        {region: hlc for region, hlc in state.ctx.items() if hlc >= horizon_hlc},
        {region: gen for region, gen in state.gens.items() if gen[0] >= horizon_hlc},
        attrs, {dot: ctx for dot, ctx in state.ops.items() if dot.hlc >= horizon_hlc},
        {region: hlc for region, hlc in state.marks.items() if hlc >= horizon_hlc})


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


def forgeries_refused(stores: Mapping[str, ReplicaStore]) -> list[str]:
    mark = orjson.dumps(FORGED_ATTRIBUTE)
    problems = []
    for name, store in sorted(stores.items()):
        for key, stored in sorted(store.contents().items()):
            if stored.item is not None and FORGED_ATTRIBUTE in stored.item:
                problems.append(f"{name}: a forged item is stored under {key}")
        for origin in sorted(store.cursors()):
            for seq, frame in store.records_since(origin, 0, MAX_LOG_RECORDS):
                if mark in frame:
                    problems.append(f"{name}: its log holds a forged change {origin}/{seq}")
    return problems[:MAX_REPORTED]


def _diff(a: Snapshot, b: Snapshot) -> str:
    tables = sorted(set(a.tables) ^ set(b.tables))
    keys = sorted(k for k in set(a.items) | set(b.items)
                  if _seen(a.items.get(k)) != _seen(b.items.get(k)))
    return f"tables {tables}, items {keys[:3]}{'...' if len(keys) > 3 else ''}"


def _seen(stored: Stored | None) -> tuple[Version, object] | None:
    return None if stored is None else (stored.version, stored.item)


def _live_states(stores: Mapping[str, ReplicaStore]
                 ) -> Iterator[tuple[str, ItemKey, itemstate.ItemState]]:
    """Every live item's state in every region (region, key, state), in order."""
    names = sorted(stores)
    tables = stores[names[0]].table_states()
    for name in names:
        for key, stored in sorted(stores[name].contents().items()):
            table = tables.get(key[0])
            if stored.item is None or table is None or not table.live:
                continue
            yield name, key, item_state(stored, table.definition or {}, key[1], key[2])


def folded(stores: Mapping[str, ReplicaStore], retired: Sequence[str]) -> list[str]:
    """No live item holds a counter contribution of a region that left the topology
    that still adds to its value (atoll.replication.fold folded them all)."""
    if not retired:
        return []
    problems = []
    for name, key, state in _live_states(stores):
        unfolded = [r for r in itemstate.unfolded_regions(state, ()) if r in retired]
        if unfolded:
            problems.append(f"{name}: item {key} still counts {unfolded} apart")
    return problems[:MAX_REPORTED]


def compacted(stores: Mapping[str, ReplicaStore]) -> list[str]:
    """Every live item's state is compact (itemstate.compact): once everything is
    acknowledged everywhere, the folding region compacts every state."""
    problems = [f"{name}: item {key} is not compacted: {state!r}"
                for name, key, state in _live_states(stores) if compact(state) is not state]
    return problems[:MAX_REPORTED]
