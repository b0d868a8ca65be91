"""`EngineStoreTxn`: the replication store's transaction over the engine's rows.

Theory of operation: replication's jobs (atoll.replication.apply) write through the
`StoreTxn` primitives; this class implements them over one storage write transaction
(`WriteTxn`), in the engine's terms:
- an item version is a row of `items` (live, with its index rows maintained by the
  table's current definition: the catalog's commit view) or of `tombstones` (a delete);
  the newer of the two is the key's version;
- a table state is a row of `table_states`; a live table also exists in `tables` with
  its storage id, and a table that is deleted, or replaced by another creation of the
  same name (another `table_id`), is dropped with its items, tombstones and index rows.
  Catalog changes go to the commit view at once and, after the job committed, to the
  request view (`events`, published by the store);
- the changelog and the cursors: this region's own origin continues `WriteTxn.next_seq`;
- streams (engine/streams.py): storing a peer's item, or a snapshot's, is one of the
  engine's points of storing an item, so it captures the item's stream record in the
  same transaction, with the item as this region stored it before and after; a table
  state stored here reconciles the table's stream like a local DDL does. `now_ms` (the
  job's wall clock) stamps both.

Reads are cached for the job: a key's row read by `stored` is reused by the `write_item`
that follows (one read per key and write, as replication batches need), and table
lookups once per table; a change of table state forgets both.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson

from atoll.engine import indexes, streams
from atoll.engine.catalog import Catalog
from atoll.engine.outbox import definition_table, table_state
from atoll.engine.tabledef import TableDef
from atoll.errors import AtollError
from atoll.invariant import invariant
from atoll.model.keys import partition_hash
from atoll.model.values import item_size
from atoll.replication.change import Change, ItemKey, Version, item_json
from atoll.replication.cursors import Cursor
from atoll.replication.merge import Conflict, Stored, TableState
from atoll.storage import CorruptionDetected, WriteTxn

log = logging.getLogger(__name__)

TableEvent = tuple[str, str, TableDef | None]
_UNREAD: Any = object()  # ("create" | "update" | "drop", name, table)


@dataclass(slots=True)
class _Row:
    live: tuple[bytes, int, int, str] | None  # (item, size, hlc, origin) of the items row
    stored: Stored | None


class EngineStoreTxn:
    def __init__(self, txn: WriteTxn, catalog: Catalog, region: str, now_ms: int) -> None:
        self.txn = txn
        self.catalog = catalog
        self.region = region
        self.now_ms = now_ms
        self.events: list[TableEvent] = []
        self._tables: dict[str, TableDef | None] = {}
        self._states: dict[str, TableState | None] = {}
        self._rows: dict[ItemKey, _Row] = {}

    # --- reads ---------------------------------------------------------------------------
    def cursor_seq(self, origin: str) -> int:
        if origin == self.region:
            return self.txn.next_seq - 1
        return self.txn.cursor(origin)

    def table_state(self, table: str) -> TableState | None:
        if table not in self._states:
            self._states[table] = table_state(self.txn, table)
        return self._states[table]

    def stored(self, key: ItemKey) -> Stored | None:
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = _read_row(self.txn, self._local(key[0]), key)
        return row.stored

    def _local(self, name: str) -> TableDef | None:
        table = self._tables.get(name, _UNREAD)
        if table is _UNREAD:
            row = self.txn.table_row(name)
            table = None
            if row is not None:
                table = TableDef.from_json(orjson.loads(row[1]))
                table.tid = int(row[0])
            self._tables[name] = table
        return table  # type: ignore[return-value]

    # --- writes --------------------------------------------------------------------------
    def set_table_state(self, table: str, state: TableState) -> None:
        definition = state.definition
        self.txn.set_table_state(table, tuple(state.created), tuple(state.version),  # type: ignore[arg-type]
                                 orjson.dumps(definition) if definition is not None else None)
        existing = self._local(table)
        self._tables.pop(table, None)
        self._states.pop(table, None)
        self._rows.clear()
        if existing is not None and (definition is None or _created_differs(existing, definition)):
            streams.reconcile(self.txn, existing, None, self.now_ms)
            self.txn.drop_table(table, existing.tid)
            self.catalog.committed_drop(existing.tid)
            self.events.append(("drop", table, None))
            existing = None
        if definition is None:
            return
        live = definition_table(definition)
        streams.reconcile(self.txn, existing, live, self.now_ms)
        if existing is None:
            live.tid = self.txn.create_table(table, orjson.dumps(live.to_json()))
            self.catalog.committed_create(live)
            self.events.append(("create", table, live))
        else:
            live.tid = existing.tid
            self.txn.update_table(table, orjson.dumps(live.to_json()))
            self.events.append(("update", table, live))
        self.catalog.committed_update(live)

    def write_item(self, key: ItemKey, stored: Stored) -> None:
        row = self._rows.pop(key, None)
        table = self._local(key[0])
        if table is not None:
            _write_item(self.txn, self.catalog.current(table), key[1], key[2], stored, row,
                        self.now_ms)

    def record_conflict(self, conflict: Conflict, detected_ms: int) -> None:
        self.txn.record_conflict(detected_ms, conflict.table, conflict_record(conflict))

    def log_changes(self, records: list[tuple[Change, bytes]]) -> None:
        remote = []
        for change, frame in records:
            if change.origin == self.region:
                seq = self.txn.log_change(change.hlc, frame)
                invariant(seq == change.seq, "a local change logged out of sequence")
            else:
                remote.append((change.origin, change.seq, change.hlc, frame))
        self.txn.append_remote_changes(remote)

    def logged_frame(self, origin: str, seq: int) -> bytes | None:
        try:
            return self.txn.logged_frame(origin, seq)
        except CorruptionDetected:  # reported by the storage: nothing to compare against
            return None

    def set_cursor(self, origin: str, cursor: Cursor) -> None:
        if origin != self.region:
            self.txn.set_cursor(origin, cursor.seq, cursor.hlc)
        elif cursor.seq >= self.txn.next_seq:  # adopted from a snapshot: continue after it
            self.txn.set_cursor(origin, cursor.seq, cursor.hlc)
            self.txn.next_seq = cursor.seq + 1
        # else: a local change just logged; this origin's cursor is its changelog

    def purge_log(self, origin: str, through_seq: int, limit: int) -> int:
        return int(self.txn.purge_changelog(origin, through_seq, limit))

    def purge_tombstones(self, below_hlc: int, limit: int) -> int:
        return int(self.txn.purge_tombstones(below_hlc, limit))


def _read_row(txn: WriteTxn, table: TableDef | None, key: ItemKey) -> _Row:
    """The key's live row and its newest stored version with its causal state (the live
    item's, else the tombstone's: a live item joined its key's delete)."""
    if table is None:
        return _Row(None, None)
    h = partition_hash(key[1])
    live = txn.get(table.tid, h, key[1], key[2])
    found = txn.item_state(table.tid, h, key[1], key[2])
    if found is None:
        return _Row(live, None)
    state, version, prev = found
    item = orjson.loads(live[0]) if live is not None else None
    return _Row(live, Stored(Version(*version), item,
                             Version(*prev) if prev is not None else None, state))


def _created_differs(existing: TableDef, definition: dict[str, Any]) -> bool:
    """A different table of the same name (a concurrent CreateTable that won)."""
    return existing.table_id != definition.get("table_id")


def _write_item(txn: WriteTxn, current: TableDef, pk: bytes, sk: bytes, stored: Stored,
                row: _Row | None, now_ms: int) -> None:
    """The item row (or tombstone) of `stored`, with its index rows and stream record."""
    h = partition_hash(pk)
    key = (h, pk, sk)
    old = row.live if row is not None else txn.get(current.tid, h, pk, sk)
    version = stored.version
    prev = (stored.prev.hlc, stored.prev.origin) if stored.prev is not None else None
    if stored.item is None:
        if old is None:
            txn.delete_absent(current.tid, h, pk, sk, version.hlc, version.origin, prev,
                              stored.state)
            return
        txn.delete(current.tid, h, pk, sk, version.hlc, version.origin, old[1], prev,
                   stored.state)
        indexes.apply(txn, current, key, old[0], None)
        streams.capture(txn, current, pk, sk, (old[0], old[1]), None, version.origin, now_ms)
        return
    item_bytes = item_json(stored.item)
    size = item_size(stored.item)
    plan = None
    if current.indexes:
        try:
            plan = indexes.plan(current, stored.item, item_bytes, size)
        except AtollError as exc:  # the origin's definition differed (a concurrent change)
            log.warning("replicated item in %s does not fit its indexes here: %s",
                        current.name, exc.message)
    txn.put(current.tid, h, pk, sk, item_bytes, size, version.hlc, version.origin,
            old[1] if old is not None else None, prev, stored.state)
    if current.indexes:
        indexes.apply(txn, current, key, old[0] if old is not None else None, plan)
    streams.capture(txn, current, pk, sk, (old[0], old[1]) if old is not None else None,
                    (item_bytes, size), version.origin, now_ms)


def conflict_record(conflict: Conflict) -> bytes:
    """A conflict as the node's conflict log keeps it (and /_atoll/conflicts serves it)."""
    return orjson.dumps({
        "table": conflict.table, "pk": conflict.pk.hex(), "sk": conflict.sk.hex(),
        "kind": conflict.kind, "attribute": conflict.attribute,
        "winner": {"hlc": conflict.winner.hlc, "origin": conflict.winner.origin,
                   "item": conflict.winner_item},
        "loser": {"hlc": conflict.loser.hlc, "origin": conflict.loser.origin,
                  "item": conflict.loser_item},
    })


def conflict_from_record(record: bytes) -> Conflict:
    doc = orjson.loads(record)
    winner, loser = doc["winner"], doc["loser"]
    return Conflict(doc["table"], bytes.fromhex(doc["pk"]), bytes.fromhex(doc["sk"]),
                    Version(winner["hlc"], winner["origin"]), winner["item"],
                    Version(loser["hlc"], loser["origin"]), loser["item"],
                    doc.get("kind", "item"), doc.get("attribute", ""))
