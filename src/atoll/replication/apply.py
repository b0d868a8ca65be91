"""The jobs: every change replication makes to a store, written once for every store.

Theory of operation: each class here is a job, a function of one `StoreTxn` that a store
runs in ONE transaction (`ReplicaStore.write`, or the SQLite store's group commit). The
simulator runs them over the memory store and over the node's SQLite store; the node runs
them over its SQLite store. So the rules below are the rules that ship:

- `ApplyChanges` (peers' changes, in the order planned by `protocol.plan_batch`): per
  change, a change of this region's own origin or at/below its origin's cursor is a
  duplicate and skipped; one above cursor + 1 is a gap and the job STOPS there (the
  changes before it are kept: a later pull brings the missing ones); a change into a table
  never seen here (`UnknownTable`) stops the job too (held until the creation arrives).
  Before anything of a change is stored it passes `atoll.replication.admission`: a change
  whose item is filed under a row key its key attributes do not encode to is refused and
  stops its origin in this job (nothing of it or after it stored, its cursor stays); a
  duplicate — or a replay the plan set aside (`replays`) — that differs from the change
  the changelog holds under its (origin, seq) is refused (`ApplyOutcome.refusals`).
  Otherwise `merge.merge_change` decides every op, the effects are written (table states,
  items, conflicts), the change is logged and its origin's cursor advanced — all in the
  job's transaction, so after a crash a region resumes exactly where it stopped.
- `LocalWrite`: the next change of this region (the simulator's client writes; the node's
  API writes log their changes through engine/outbox.py).
- `MergeSnapshotTables`, `MergeSnapshotRows`, `AdoptCursors`: the writes of a rebuild
  from a peer's snapshot (`atoll.replication.rebuild`).
- `Purge`: what retention deletes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from atoll.clock.hlc import HybridClock, hlc_physical_ms
from atoll.replication.admission import Refusal, ReplayCheck, refuse_change
from atoll.replication.change import Change, ItemKey, ItemWrite, Op, Version, encode_change
from atoll.replication.cursors import Cursor
from atoll.replication.errors import UnknownTable
from atoll.replication.merge import (
    ChangeEffects,
    Conflict,
    ItemUpdate,
    Stored,
    TableState,
    agree,
    join_write,
    local_item_update,
    local_item_write,
    merge_change,
    snapshot_table_wins,
)
from atoll.replication.store import RetentionPlan, StoreTxn


@dataclass(slots=True)
class ApplyOutcome:
    applied: int = 0  # new changes: written, logged, cursor advanced
    duplicates: int = 0  # at or below their origin's cursor (or this region's own)
    conflicts: list[Conflict] = field(default_factory=list)
    stopped_at_gap: bool = False  # a change above its origin's cursor + 1 ended the job
    held_for_table: str | None = None  # a change into this unknown table ended the job
    lag_ms: list[int] = field(default_factory=list)  # per applied change: apply - origin time
    clock_bounded: int = 0  # stamps too far ahead of this region's clock (not followed)
    refusals: list[Refusal] = field(default_factory=list)  # nothing of them stored (admission)

    @property
    def stopped_at_refusal(self) -> bool:
        """Some origin's changes stopped at a refused change (its cursor waits before it)."""
        return any(refusal.stops for refusal in self.refusals)

    @property
    def complete(self) -> bool:
        """Every change given was applied or was a duplicate."""
        return (not self.stopped_at_gap and self.held_for_table is None
                and not self.stopped_at_refusal)


@dataclass(frozen=True, slots=True)
class ApplyChanges:
    """Apply peers' changes (decoded and checked, each with the frame it arrived in)."""

    changes: tuple[tuple[Change, bytes], ...]
    region: str
    clock: HybridClock
    now_ms: Callable[[], int]
    # duplicates the plan set aside: only compared with the changelog, never applied
    replays: tuple[tuple[Change, bytes], ...] = ()

    def __call__(self, txn: StoreTxn) -> ApplyOutcome:
        return apply_changes(txn, self.changes, self.region, self.clock, self.now_ms(),
                             self.replays)


def apply_changes(txn: StoreTxn, changes: Sequence[tuple[Change, bytes]], region: str,
                  clock: HybridClock, now_ms: int,
                  replays: Sequence[tuple[Change, bytes]] = ()) -> ApplyOutcome:
    outcome = ApplyOutcome()
    cursors: dict[str, int] = {}
    reached_hlc: dict[str, int] = {}  # per origin advanced: the hlc of its new cursor
    logged: list[tuple[Change, bytes]] = []
    stored_of, table_of = txn.stored, txn.table_state
    bounded_before = clock.bounded_count
    replay = ReplayCheck(txn.logged_frame, table_of)
    for change, frame in replays:
        if change.origin not in cursors:
            cursors[change.origin] = txn.cursor_seq(change.origin)
        if change.seq <= cursors[change.origin]:  # above: not held here, nothing to compare
            _replayed(outcome, replay, change, frame)
    stopped: set[str] = set()  # origins whose change was refused: nothing of theirs after it
    for change, frame in changes:
        origin = change.origin
        if origin in stopped:
            continue
        if origin == region:
            _replayed(outcome, replay, change, frame)  # never needs its own changes back
            continue
        cursor = cursors.get(origin)
        if cursor is None:
            cursor = cursors[origin] = txn.cursor_seq(origin)
        if change.seq <= cursor:
            _replayed(outcome, replay, change, frame)
            continue
        if change.seq > cursor + 1:
            outcome.stopped_at_gap = True
            break
        refusal = refuse_change(change, table_of)
        if refusal is not None:
            outcome.refusals.append(refusal)
            stopped.add(origin)
            continue
        try:
            effects = merge_change(change, stored_of, table_of)
        except UnknownTable as exc:
            outcome.held_for_table = exc.table
            break
        outcome.conflicts.extend(write_effects(txn, effects, now_ms))
        logged.append((change, frame))
        cursors[origin] = change.seq
        reached_hlc[origin] = change.hlc
        clock.observe(change.hlc)
        outcome.applied += 1
        outcome.lag_ms.append(max(0, now_ms - hlc_physical_ms(change.hlc)))
    txn.log_changes(logged)
    for origin, hlc in reached_hlc.items():
        # in the same transaction as the changes it covers
        txn.set_cursor(origin, Cursor(cursors[origin], hlc))
    outcome.clock_bounded = clock.bounded_count - bounded_before
    return outcome


def _replayed(outcome: ApplyOutcome, replay: ReplayCheck, change: Change, frame: bytes) -> None:
    """A change this region holds already: a duplicate, or refused if it is another."""
    refusal = replay.refuse(change, frame)
    if refusal is None:
        outcome.duplicates += 1
    else:
        outcome.refusals.append(refusal)


def write_effects(txn: StoreTxn, effects: ChangeEffects, now_ms: int) -> list[Conflict]:
    """Write what `merge_change` decided; returns the conflicts it recorded (not those
    of two deletes, which agree)."""
    for name, state in effects.tables.items():
        txn.set_table_state(name, state)
    for key, stored in effects.items.items():
        txn.write_item(key, stored)
    recorded = [conflict for conflict in effects.conflicts if not agree(conflict)]
    for conflict in recorded:
        txn.record_conflict(conflict, now_ms)
    return recorded


@dataclass(frozen=True, slots=True)
class LocalWrite:
    """Commit a client's write as this region's next change: every `ItemWrite` (and
    `ItemUpdate`) is made through its item's stored causal state (`merge.local_item_write`,
    `local_item_update`: it supersedes what this region holds of the item, whatever the
    clocks), then the change merges like any change. Raises UnknownTable (nothing
    written) if an item write names a table that is not live here. Returns the change as
    logged."""

    region: str
    clock: HybridClock
    ops: tuple[Op | ItemUpdate, ...]
    now_ms: Callable[[], int]

    def __call__(self, txn: StoreTxn) -> Change:
        hlc = self.clock.tick()
        filled: list[Op] = []
        for op in self.ops:
            if isinstance(op, (ItemWrite, ItemUpdate)):
                state = txn.table_state(op.table)
                if state is None or not state.live:
                    raise UnknownTable(op.table)
                version, definition = Version(hlc, self.region), state.definition or {}
                op = (local_item_write(txn.stored(op.key), op, version, definition)
                      if isinstance(op, ItemWrite) else
                      local_item_update(txn.stored(op.key), op, version, definition))
            filled.append(op)
        change = Change.create(self.region, txn.cursor_seq(self.region) + 1, hlc, filled)
        write_effects(txn, merge_change(change, txn.stored, txn.table_state), self.now_ms())
        txn.log_changes([(change, encode_change(change))])
        txn.set_cursor(self.region, Cursor(change.seq, hlc))
        return change


@dataclass(frozen=True, slots=True)
class MergeSnapshotTables:
    """A peer's table states, each kept where newer than the local one."""

    states: tuple[tuple[str, TableState], ...]

    def __call__(self, txn: StoreTxn) -> int:
        changed = 0
        for name, incoming in self.states:
            if snapshot_table_wins(txn.table_state(name), incoming):
                txn.set_table_state(name, incoming)
                changed += 1
        return changed


@dataclass(frozen=True, slots=True)
class MergeSnapshotRows:
    """One page of a peer's items or tombstones of a table, each row's causal state
    joined into the local one (as an applied change's is: `merge.join_write`); rows
    without a state (b"", the row form) join as the whole-item write they stand for."""

    table: str
    rows: tuple[tuple[bytes, bytes, Stored], ...]  # (pk, sk, version, item and state)
    now_ms: Callable[[], int]

    def __call__(self, txn: StoreTxn) -> int:
        state = txn.table_state(self.table)
        if state is None or not state.live:
            return 0  # deleted here since: its rows are dropped
        written = 0
        for pk, sk, incoming in self.rows:
            key: ItemKey = (self.table, pk, sk)
            write = ItemWrite(self.table, pk, sk, incoming.item, incoming.prev, incoming.state)
            joined, conflicts = join_write(txn.stored(key), write, incoming.version,
                                           state.definition or {})
            for conflict in conflicts:
                if not agree(conflict):
                    txn.record_conflict(conflict, self.now_ms())
            if joined is not None:
                txn.write_item(key, joined)
                written += 1
        return written


@dataclass(frozen=True, slots=True)
class AdoptCursors:
    """After a snapshot's rows: continue each origin's log after the snapshot's cursors —
    this region's own included, so it never reuses a seq its peers already hold."""

    region: str
    cursors: tuple[tuple[str, Cursor], ...]
    clock: HybridClock

    def __call__(self, txn: StoreTxn) -> dict[str, Cursor]:
        adopted = {}
        for origin, cursor in self.cursors:
            if cursor.seq <= txn.cursor_seq(origin):
                continue
            txn.set_cursor(origin, cursor)
            adopted[origin] = cursor
            if origin == self.region:
                self.clock.restore(cursor.hlc)  # our own past: never stamp at or below it
            else:
                self.clock.observe(cursor.hlc)
        return adopted


@dataclass(frozen=True, slots=True)
class PurgeResult:
    records: int
    tombstones: int


@dataclass(frozen=True, slots=True)
class Purge:
    """Delete what a retention plan allows: at most `limit` records per origin and
    `limit` tombstones."""

    plan: RetentionPlan
    limit: int

    def __call__(self, txn: StoreTxn) -> PurgeResult:
        records = sum(txn.purge_log(origin, through, self.limit)
                      for origin, through in sorted(self.plan.purge_through.items()))
        horizon = self.plan.tombstone_horizon_hlc
        tombstones = txn.purge_tombstones(horizon, self.limit) if horizon else 0
        return PurgeResult(records, tombstones)
