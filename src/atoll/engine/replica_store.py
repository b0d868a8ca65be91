"""`EngineReplicaStore`: the replication store over the engine's storage.

Theory of operation: reads of committed state go to the storage's reader (the event-loop
thread in the node); every change runs as a replication job (atoll.replication.apply)
inside a storage write job, on an `EngineStoreTxn` (engine/replica_txn.py): item rows
with their index rows, the catalog, tombstones, the changelog and cursors. `submit`
queues a job into the storage's group commit and resolves once it is durable — that is
how the node's replicator applies a batch: one storage write job per batch, so catching
up costs one transaction per thousand changes. `write` runs it synchronously on a
storage that was never started (`Storage.write_sync`): the simulator and the conformance
suite drive the very same jobs that way, over a real `SqliteStorage`. After a job
committed, the table definitions it created, changed or dropped become visible to
requests (the catalog's request view).

The store works through the engine's narrow `EngineContext` (catalog, storage, clock,
region, now_ms) and the `Storage` protocol only: the node passes its engine's context;
the simulator builds one with `context_for`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from atoll.clock import HybridClock
from atoll.engine.catalog import Catalog
from atoll.engine.context import EngineContext, EngineSettings
from atoll.engine.replica_txn import EngineStoreTxn, TableEvent, conflict_from_record
from atoll.engine.tabledef import TableDef
from atoll.replication.change import ItemJson, ItemKey, Version
from atoll.replication.cursors import Cursor
from atoll.replication.merge import Conflict, Stored, TableState
from atoll.replication.store import RowKey, SnapshotRow, StoreTxn
from atoll.storage import Storage, WriteTxn

R = TypeVar("R")
CONTENTS_PAGE_ROWS = 1000
MAX_CONTENTS_PAGES = 100_000
CONFLICTS_PAGE = 1000


def context_for(storage: Storage, region: str, now_ms: Callable[[], int]) -> EngineContext:
    """An engine context over `storage` (its catalog holds the tables stored in it), for
    a replication store without an engine (the simulator's, the conformance suite's)."""
    tables = []
    for _name, tid, definition in storage.load_tables():
        table = TableDef.from_json(orjson.loads(definition))
        table.tid = tid
        tables.append(table)
    return EngineContext(Catalog(tables), storage, HybridClock(now_ms), region, now_ms,
                         EngineSettings())


class EngineReplicaStore:
    def __init__(self, context: EngineContext,
                 wrap: Callable[[StoreTxn], StoreTxn] | None = None) -> None:
        """`wrap`: a test-only fault around every transaction (atoll.replication.faults)."""
        self.context = context
        self.storage = context.storage
        self.wrap = wrap

    @property
    def region(self) -> str:
        return self.context.region

    # --- committed state (reader connection) ---------------------------------------------
    def cursors(self) -> dict[str, Cursor]:
        return {o: Cursor(seq, hlc) for o, (seq, hlc) in self.storage.cursor_vector().items()}

    def table_state(self, table: str) -> TableState | None:
        row = self.storage.table_state_row(table)
        return None if row is None else _state(row[0], row[1], row[2], row[3], row[4])

    def table_states(self) -> dict[str, TableState]:
        return {name: _state(ch, co, vh, vo, d)
                for name, ch, co, vh, vo, d in self.storage.load_table_states()}

    def log_start(self) -> dict[str, int]:
        return {o: s for o, s in self.storage.log_start().items() if s > 0}

    def records_since(self, origin: str, after_seq: int, limit: int) -> list[tuple[int, bytes]]:
        return [(seq, body) for seq, _hlc, body in
                self.storage.changes_since(origin, after_seq, limit)]

    def snapshot_rows(self, table: str, after: RowKey | None, limit: int,
                      tombstones: bool) -> list[SnapshotRow]:
        tid = self._tids().get(table)
        if tid is None:
            return []
        return [SnapshotRow(h, pk, sk, hlc, origin, None if item is None else ItemJson(item))
                for h, pk, sk, hlc, origin, item in
                self.storage.snapshot_rows(tid, after, limit, tombstones)]

    def contents(self) -> dict[ItemKey, Stored]:
        result: dict[ItemKey, Stored] = {}
        for name, tid in sorted(self._tids().items()):
            for tombstones in (False, True):
                after = None
                for _page in range(MAX_CONTENTS_PAGES):
                    rows = self.storage.snapshot_rows(tid, after, CONTENTS_PAGE_ROWS, tombstones)
                    for h, pk, sk, hlc, origin, item in rows:
                        found = Stored(Version(hlc, origin), None if item is None
                                       else orjson.loads(item))
                        known = result.get((name, pk, sk))
                        if known is None or found.version > known.version:
                            result[(name, pk, sk)] = found
                        after = (h, pk, sk)
                    if len(rows) < CONTENTS_PAGE_ROWS:
                        break
        return result

    def conflicts(self) -> list[Conflict]:
        result: list[Conflict] = []
        after = 0
        while True:
            page = self.storage.conflicts(after, CONFLICTS_PAGE)
            result += [conflict_from_record(record) for _id, _ms, _t, record in page]
            if len(page) < CONFLICTS_PAGE:
                return result
            after = page[-1][0]

    def _tids(self) -> dict[str, int]:
        """Live tables' storage ids, as committed (not the request view's reservations)."""
        return {name: tid for name, tid, _definition in self.storage.load_tables()}

    # --- transactions ----------------------------------------------------------------------
    def write(self, job: Callable[[StoreTxn], R]) -> R:
        """Run `job` now, on a storage that was not started (simulator, tests)."""
        events: list[TableEvent] = []
        result: R = self.storage.write_sync(self._storage_job(job, events))
        self._publish(events)
        return result

    def submit(self, job: Callable[[StoreTxn], R]) -> asyncio.Future[R]:
        """Queue `job` into the storage's group commit; resolves once it is durable."""
        events: list[TableEvent] = []
        written = self.storage.write(self._storage_job(job, events))
        done: asyncio.Future[R] = written.get_loop().create_future()

        def committed(future: asyncio.Future[Any]) -> None:
            if done.done():
                return
            if future.cancelled():
                done.cancel()
            elif future.exception() is not None:
                done.set_exception(future.exception())  # type: ignore[arg-type]
            else:
                self._publish(events)
                done.set_result(future.result())

        written.add_done_callback(committed)
        return done

    def _storage_job(self, job: Callable[[StoreTxn], R],
                     events: list[TableEvent]) -> Callable[[WriteTxn], R]:
        context, wrap = self.context, self.wrap

        def run(txn: WriteTxn) -> R:
            store_txn = EngineStoreTxn(txn, context.catalog, context.region, context.now_ms())
            result = job(store_txn if wrap is None else wrap(store_txn))
            events[:] = store_txn.events  # a replayed batch runs the job again: the last run
            return result

        return run

    def _publish(self, events: list[TableEvent]) -> None:
        """After commit (event-loop thread): table changes become visible to requests."""
        catalog = self.context.catalog
        for kind, name, table in events:
            if kind == "drop":
                catalog.publish_drop(name)
            elif table is not None:
                catalog.publish(table)


def _state(created_hlc: int, created_origin: str, version_hlc: int, version_origin: str,
           definition: bytes | None) -> TableState:
    return TableState(Version(created_hlc, created_origin), Version(version_hlc, version_origin),
                      orjson.loads(definition) if definition is not None else None)
