"""The engine's side of replication in: applying peers' changes (the outbox is outbox.py).

Theory of operation
- In: `apply_job(engine, changes)` returns a write job that applies a peer's changes in
  order inside ONE storage transaction, exactly as the `ReplicaStore.apply` contract says:
  duplicates (seq <= cursor) are skipped, a gap stops the batch, the pure merge rule
  (`replication.merge.merge_change`) decides every op, and the effects — table states,
  item rows with their index rows, tombstones, conflicts — are written together with the
  change itself (kept in the changelog, so it can be passed on) and the origin's cursor.
  A change into a table this region has not seen yet is held: the batch stops before it
  and its origin's cursor stays, to be retried when the creation arrives.
"""

from __future__ import annotations

import itertools
import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from atoll.clock import hlc_physical_ms
from atoll.engine import indexes, streams
from atoll.engine.outbox import definition_table, table_state
from atoll.engine.tabledef import TableDef
from atoll.errors import AtollError
from atoll.model.keys import partition_hash
from atoll.model.values import item_size
from atoll.replication.change import Change, Version, item_json
from atoll.replication.errors import UnknownTable
from atoll.replication.merge import Conflict, Stored, TableState, merge_change
from atoll.storage import WriteTxn

if TYPE_CHECKING:
    from atoll.engine.engine import Engine

log = logging.getLogger(__name__)

@dataclass
class ApplyOutcome:
    applied: int = 0
    duplicates: int = 0
    conflicts: int = 0
    stopped_at_gap: bool = False
    held_for_table: str | None = None
    lag_ms: list[int] = field(default_factory=list)
    table_events: list[tuple[str, str, TableDef | None]] = field(default_factory=list)


def _local_table(txn: WriteTxn, name: str) -> TableDef | None:
    row = txn.table_row(name)
    if row is None:
        return None
    table = TableDef.from_json(orjson.loads(row[1]))
    table.tid = int(row[0])
    return table


# A deliberate defect, for the drill's proof that its checker can fail
# (tests/integration/test_drill.py): with ATOLL_FAULT_DROP_EVERY=N in a node's
# environment, it silently skips every Nth replicated item write. Never set otherwise.
_DROP_EVERY = int(os.environ.get("ATOLL_FAULT_DROP_EVERY") or 0)
_applied_item_writes = itertools.count(1)


class _ApplyBatch:
    """One write job's state: definitions, states and rows read once, cursors moved, changes kept."""

    def __init__(self, engine: Engine, txn: WriteTxn) -> None:
        self.engine = engine
        self.txn = txn
        self.outcome = ApplyOutcome()
        self.now_ms = engine.now_ms()
        self.tables: dict[str, TableDef | None] = {}
        self.states: dict[str, TableState | None] = {}
        self.rows: dict[tuple[str, bytes, bytes], _Row] = {}  # read once per key and change
        self.cursors: dict[str, int] = {}
        self.cursor_hlc: dict[str, int] = {}
        self.logged: list[tuple[str, int, int, bytes]] = []  # changelog records, written at the end

    def local(self, name: str) -> TableDef | None:
        if name not in self.tables:
            self.tables[name] = _local_table(self.txn, name)
        return self.tables[name]

    def state_of(self, name: str) -> TableState | None:
        if name not in self.states:
            self.states[name] = table_state(self.txn, name)
        return self.states[name]

    def stored_of(self, key: tuple[str, bytes, bytes]) -> Stored | None:
        row = _read_row(self.txn, self.local(key[0]), key)
        self.rows[key] = row
        return row.stored

    def admit(self, change: Change) -> bool | None:
        """True to apply `change`, False to skip it (a duplicate), None to stop (a gap)."""
        outcome = self.outcome
        if change.origin == self.engine.region:
            outcome.duplicates += 1
            return False
        cursor = self.cursors.get(change.origin)
        if cursor is None:
            cursor = self.cursors[change.origin] = self.txn.cursor(change.origin)
        if change.seq <= cursor:
            outcome.duplicates += 1
            return False
        if change.seq > cursor + 1:
            outcome.stopped_at_gap = True
            return None
        return True

    def apply(self, change: Change, frame: bytes) -> bool:
        """Apply one admitted change; False when it waits for its table's creation."""
        engine, txn, outcome = self.engine, self.txn, self.outcome
        self.rows.clear()
        try:
            effects = merge_change(change, self.stored_of, self.state_of)
        except UnknownTable as exc:
            outcome.held_for_table = exc.table
            return False
        for name, state in effects.tables.items():
            _apply_table_state(engine, txn, name, state, outcome)
            self.tables.pop(name, None)
            self.states.pop(name, None)
        for key, stored in effects.items.items():
            table = self.local(key[0])
            if _DROP_EVERY and next(_applied_item_writes) % _DROP_EVERY == 0:
                continue  # the injected defect (see _DROP_EVERY)
            if table is not None:
                _apply_item(engine, txn, table, key[1], key[2], stored, self.rows.get(key))
        self._record_conflicts(effects.conflicts)
        self.logged.append((change.origin, change.seq, change.hlc, frame))
        self.cursors[change.origin] = change.seq
        self.cursor_hlc[change.origin] = change.hlc
        engine.clock.observe(change.hlc)
        outcome.applied += 1
        outcome.lag_ms.append(max(0, self.now_ms - hlc_physical_ms(change.hlc)))
        return True

    def _record_conflicts(self, conflicts: list[Conflict]) -> None:
        for conflict in conflicts:
            if conflict.winner_item is None and conflict.loser_item is None:
                continue  # two deletes of one item agree: nothing was lost
            self.txn.record_conflict(self.now_ms, conflict.table, conflict_record(conflict))
            self.outcome.conflicts += 1

    def finish(self, bounded_before: int) -> ApplyOutcome:
        engine = self.engine
        if engine.clock.bounded_count > bounded_before:
            # a peer's clock runs ahead of ours by more than the skew bound: not followed
            log.warning("%d changes stamped more than %d ms ahead of this region's clock "
                        "(origins %s): their timestamps were not followed",
                        engine.clock.bounded_count - bounded_before, engine.clock.max_skew_ms,
                        sorted(self.cursor_hlc))
        self.txn.append_remote_changes(self.logged)
        for origin, hlc in self.cursor_hlc.items():
            # in the same transaction as the changes it covers
            self.txn.set_cursor(origin, self.cursors[origin], hlc)
        return self.outcome


def apply_job(engine: Engine, changes: list[tuple[Change, bytes]]):  # type: ignore[no-untyped-def]
    """A write job applying `changes` (decoded, checksum-verified, with their frames)."""

    def job(txn: WriteTxn) -> ApplyOutcome:
        bounded_before = engine.clock.bounded_count
        batch = _ApplyBatch(engine, txn)
        for change, frame in changes:
            admitted = batch.admit(change)
            if admitted is None:
                break
            if admitted and not batch.apply(change, frame):
                break
        return batch.finish(bounded_before)

    return job


@dataclass
class _Row:
    live: tuple[bytes, int, int, str] | None
    stored: Stored | None


def _read_row(txn: WriteTxn, table: TableDef | None, key: tuple[str, bytes, bytes]) -> _Row:
    if table is None:
        return _Row(None, None)
    live, dead = txn.versions(table.tid, partition_hash(key[1]), key[1], key[2])
    row = live[:4] if live is not None else None
    if live is not None and (dead is None or (live[2], live[3]) > (dead[0], dead[1])):
        prev = Version(*live[4]) if live[4] is not None else None
        return _Row(row, Stored(Version(live[2], live[3]), orjson.loads(live[0]), prev))  # type: ignore[arg-type]
    if dead is not None:
        prev = Version(*dead[2]) if dead[2] is not None else None
        return _Row(row, Stored(Version(dead[0], dead[1]), None, prev))
    return _Row(row, None)


def _apply_table_state(engine: Engine, txn: WriteTxn, name: str, state: TableState,
                       outcome: ApplyOutcome) -> None:
    definition = state.definition
    txn.set_table_state(name, tuple(state.created), tuple(state.version),  # type: ignore[arg-type]
                        orjson.dumps(definition) if definition is not None else None)
    existing = _local_table(txn, name)
    now_ms = engine.now_ms()
    if existing is not None and (definition is None or _created_differs(existing, definition)):
        streams.reconcile(txn, existing, None, now_ms)
        txn.drop_table(name, existing.tid)
        engine.catalog.committed_drop(existing.tid)
        outcome.table_events.append(("drop", name, None))
        existing = None
    if definition is None:
        return
    table = definition_table(definition)
    streams.reconcile(txn, existing, table, now_ms)
    if existing is None:
        table.tid = txn.create_table(name, orjson.dumps(table.to_json()))
        engine.catalog.committed_create(table)
        outcome.table_events.append(("create", name, table))
    else:
        table.tid = existing.tid
        txn.update_table(name, orjson.dumps(table.to_json()))
        outcome.table_events.append(("update", name, table))
    engine.catalog.committed_update(table)


def _created_differs(existing: TableDef, definition: dict[str, Any]) -> bool:
    """A different table of the same name (a concurrent CreateTable that won)."""
    return existing.table_id != definition.get("table_id")


def _apply_item(engine: Engine, txn: WriteTxn, table: TableDef, pk: bytes, sk: bytes,
                stored: Stored, row: _Row | None) -> None:
    current = engine.catalog.current(table)
    h = partition_hash(pk)
    key = (h, pk, sk)
    old = row.live if row is not None else txn.get(table.tid, h, pk, sk)
    version = stored.version
    prev = (stored.prev.hlc, stored.prev.origin) if stored.prev is not None else None
    if stored.item is None:
        if old is None:
            txn.delete_absent(table.tid, h, pk, sk, version.hlc, version.origin, prev)
            return
        txn.delete(table.tid, h, pk, sk, version.hlc, version.origin, old[1], prev)
        indexes.apply(txn, current, key, old[0], None)
        streams.capture(txn, current, pk, sk, (old[0], old[1]), None, version.origin,
                        engine.now_ms())
        return
    item_bytes = item_json(stored.item)
    size = item_size(stored.item)
    plan = None
    if current.indexes:
        try:
            plan = indexes.plan(current, stored.item, item_bytes, size)
        except AtollError as exc:  # the origin's definition differed (a concurrent change)
            log.warning("replicated item in %s does not fit its indexes here: %s",
                        table.name, exc.message)
    txn.put(table.tid, h, pk, sk, item_bytes, size, version.hlc, version.origin,
            old[1] if old is not None else None, prev)
    if current.indexes:
        indexes.apply(txn, current, key, old[0] if old is not None else None, plan)
    # the one point where this region stores a peer's item: its stream record, if any
    streams.capture(txn, current, pk, sk, (old[0], old[1]) if old is not None else None,
                    (item_bytes, size), version.origin, engine.now_ms())


def conflict_record(conflict: Conflict) -> bytes:
    return orjson.dumps({
        "table": conflict.table, "pk": conflict.pk.hex(), "sk": conflict.sk.hex(),
        "winner": {"hlc": conflict.winner.hlc, "origin": conflict.winner.origin,
                   "item": conflict.winner_item},
        "loser": {"hlc": conflict.loser.hlc, "origin": conflict.loser.origin,
                  "item": conflict.loser_item},
    })


def apply_table_events(engine: Engine, outcome: ApplyOutcome) -> None:
    """After the apply job committed (event-loop thread): update the request-side view."""
    for kind, name, table in outcome.table_events:
        if kind == "drop":
            engine.catalog.publish_drop(name)
        elif table is not None:
            engine.catalog.publish(table)


# --- rebuilding from a peer's snapshot -------------------------------------------------
#
# A region whose peers no longer hold the changes it lacks (purged after every region
# acknowledged them, or the region lost its disk) is rebuilt from a peer's snapshot: the
# peer's cursor vector V0 is read FIRST, then its tables, items and tombstones page by
# page (each page may already include changes after V0: harmless, since everything is
# merged by version), then the cursors are set to V0 and the ordinary log tail follows.


def snapshot_tables_job(engine: Engine, states: list[dict[str, Any]]):  # type: ignore[no-untyped-def]
    def job(txn: WriteTxn) -> ApplyOutcome:
        outcome = ApplyOutcome()
        for entry in states:
            incoming = TableState(Version(*entry["created"]), Version(*entry["version"]),
                                  entry["definition"])
            local = table_state(txn, entry["name"])
            if local is None or incoming.version > local.version:
                _apply_table_state(engine, txn, entry["name"], incoming, outcome)
        return outcome
    return job


def snapshot_rows_job(engine: Engine, name: str,  # type: ignore[no-untyped-def]
                      rows: list[tuple[bytes, bytes, int, str, dict[str, Any] | None]]):
    """Merge one page of a peer's items or tombstones (pk, sk, hlc, origin, item)."""
    def job(txn: WriteTxn) -> int:
        table = _local_table(txn, name)
        if table is None:
            return 0
        written = 0
        for pk, sk, hlc, origin, item in rows:
            incoming = Stored(Version(hlc, origin), item)
            row = _read_row(txn, table, (name, pk, sk))
            if row.stored is None or incoming.version > row.stored.version:
                _apply_item(engine, txn, table, pk, sk, incoming, row)
                written += 1
        return written
    return job


def adopt_cursors_job(engine: Engine, vector: dict[str, tuple[int, int]]):  # type: ignore[no-untyped-def]
    """After a snapshot: continue each origin's log after the snapshot's cursors — this
    region's own included, so it never reuses a sequence number its peers already hold."""
    def job(txn: WriteTxn) -> None:
        for origin, (seq, hlc) in vector.items():
            if origin == engine.region:
                if seq >= txn.next_seq:
                    txn.set_cursor(origin, seq, hlc)
                    txn.next_seq = seq + 1
                engine.clock.restore(hlc)
            elif seq > txn.cursor(origin):
                txn.set_cursor(origin, seq, hlc)
                engine.clock.observe(hlc)
    return job
