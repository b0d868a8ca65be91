"""SharedRegion: what a node does when other nodes of its region share its storage.

With the storage in PostgreSQL (storage/postgres) any number of nodes serve one region.
Each keeps in memory what a single node would keep — its hybrid logical clock, its
table catalog, its background work — so each must learn from the others:
- The clock. Every write batch starts under the region's write lock (loghead.py) with
  the region's head: the highest hlc of the region's own changes, which any node may
  have stamped (restored: it is the region's own past, never issue one at or below it),
  and of peers' changes applied here (observed, with the skew bound, as if this node
  had applied them). So a write stamped by this node is newer than every write of the
  region committed before it, whichever node made it: last-writer-wins orders the
  region's own writes as they committed.
- The catalog's commit view (what write jobs check and maintain indexes by): when the
  head's catalog version moved, the batch reloads the table definitions from its own
  transaction before its jobs run, so a job never writes by a definition that another
  node replaced or dropped before it (a dropped table is no longer live here either).
- The catalog's request view (what requests are validated against): refreshed on the
  event loop when the storage's watcher sees the catalog version move (within about
  its poll interval, 50 ms).
- Background work: the TTL sweeper and index backfills ("background", node/background.py),
  pulling peers' changes with retention purges ("replication"), and verify's tree
  building, scrubbing and comparisons with peers ("verify", node/verifier.py) each run
  on the one node holding the lease of that name (leases.py). A node starts them when
  it takes the lease and stops them when it loses it; another node takes an expired
  lease within seconds of its holder's death. An index added through a node without
  the lease is built by the holder once its catalog refresh sees it CREATING. Serving
  peers' pulls and verify requests needs no lease: any node does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from atoll.engine.engine import _stored_table
from atoll.errors import ServiceUnavailable
from atoll.storage.postgres import PostgresStorage
from atoll.storage.postgres.loghead import Head
from atoll.storage.postgres.txn import PostgresTxn

log = logging.getLogger(__name__)

BACKGROUND = "background"
REPLICATION = "replication"
VERIFY = "verify"
SUPERVISE_INTERVAL_S = 0.25
REFRESH_RETRY_S = 0.05  # a refresh that skipped names in flight runs again after this


class SharedRegion:
    """Wires one node (engine, replicator) to siblings sharing its PostgreSQL storage."""

    def __init__(self, node: Any, storage: PostgresStorage) -> None:
        self.node = node  # atoll.node.node.Node (not imported: it imports this module)
        self.storage = storage
        self._catalog_seen: int | None = None  # the head's catalog version last loaded
        self._definitions: dict[int, tuple[str, bytes]] = {}  # commit view, as loaded
        self._published: dict[str, bytes] = {}  # request view, as last refreshed
        self._remote_seen = 0
        self._retry: asyncio.TimerHandle | None = None  # a refresh skipped names in flight
        self._running: dict[str, bool] = {BACKGROUND: False, REPLICATION: False,
                                          VERIFY: False}
        self._task: asyncio.Task[Any] | None = None
        storage.batch_hook = self._before_batch
        storage.catalog_listeners.append(self._refresh_requests)

    # --- writer thread: before every batch's jobs ----------------------------------------
    def _before_batch(self, txn: PostgresTxn, head: Head) -> None:
        clock = self.node.engine.clock
        clock.restore(head.hlc)
        if head.remote_hlc > self._remote_seen:
            clock.observe(head.remote_hlc)
            self._remote_seen = head.remote_hlc
        if head.catalog != self._catalog_seen:
            self._reload_commit_view(txn.load_tables())
            self._catalog_seen = head.catalog

    def _reload_commit_view(self, rows: list[tuple[str, int, bytes]]) -> None:
        catalog = self.node.engine.catalog
        fresh = {tid: (name, definition) for name, tid, definition in rows}
        for tid, (name, definition) in fresh.items():
            if self._definitions.get(tid) == (name, definition) and catalog.is_live(tid):
                continue
            table = _stored_table(tid, definition)
            if catalog.is_live(tid):
                catalog.committed_update(table)
            else:
                catalog.committed_create(table)
        for tid in self._definitions:
            if tid not in fresh and catalog.is_live(tid):
                catalog.committed_drop(tid)
        self._definitions = fresh

    # --- event-loop thread ---------------------------------------------------------------
    def _refresh_requests(self) -> None:
        """Another node changed a definition: requests see the stored catalog.

        A name this node's own CreateTable or DeleteTable is changing is left alone: the
        rows were read before that DDL committed (so would drop a table being created or
        resurrect one being dropped), and the DDL publishes its own outcome. Should that
        DDL fail, the refresh runs again shortly, so another node's change to the name
        still becomes visible here."""
        try:
            rows = self.storage.load_tables()
        except ServiceUnavailable:
            return  # the next change (or the next batch's reload) catches up
        catalog = self.node.engine.catalog
        names = set()
        skipped = False
        for name, tid, definition in rows:
            names.add(name)
            if catalog.in_flight(name):
                skipped = True
                continue
            current = catalog.get(name)
            if current is None or current.tid != tid or self._published.get(name) != definition:
                catalog.publish(_stored_table(tid, definition))
                self._published[name] = definition
        for name in catalog.names():  # names of committed tables (not reservations)
            if name in names:
                continue
            if catalog.in_flight(name):
                skipped = True
                continue
            catalog.publish_drop(name)
            self._published.pop(name, None)
        if skipped and self._retry is None:
            self._retry = asyncio.get_running_loop().call_later(REFRESH_RETRY_S, self._retried)
        if self._running[BACKGROUND]:
            self._resume_backfills()

    def _retried(self) -> None:
        self._retry = None
        self._refresh_requests()

    def _resume_backfills(self) -> None:
        """On the node running background work: build the indexes another node's
        UpdateTable added (that node starts no backfill: it does not hold the lease)."""
        background = self.node.background
        running = set(background.running())
        for table in self.node.engine.catalog.tables():
            for index in table.indexes:
                if index.status == "CREATING" and \
                        f"backfill {table.name}.{index.name}" not in running:
                    background.backfill(table.name, index.name)

    def _jobs(self) -> list[str]:
        """The leased jobs this node has to run at all."""
        jobs = [BACKGROUND]
        if self.node.replicator is not None:
            jobs.append(REPLICATION)
        if self.node.verifier.has_background:
            jobs.append(VERIFY)
        return jobs

    def start(self) -> None:
        """Ask for the leases and run what they allow (after storage.start, and after
        the verifier started without its background work)."""
        for job in self._jobs():
            self.storage.want_lease(job)
        self._task = asyncio.get_running_loop().create_task(self._supervise(),
                                                            name="region-leases")

    async def stop(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for job in self._running:
            await self._set(job, False)

    async def _supervise(self) -> None:
        jobs = self._jobs()
        while True:
            await asyncio.sleep(SUPERVISE_INTERVAL_S)
            for job in jobs:
                await self._set(job, self.storage.holds_lease(job))

    async def _set(self, job: str, run: bool) -> None:
        if self._running[job] == run:
            return
        self._running[job] = run
        log.info("%s %s on this node (lease %s)", "starting" if run else "stopping", job,
                 "taken" if run else "lost")
        if job == BACKGROUND:
            if run:
                self.node.background.start(self.node.engine.context)
            else:
                await self.node.background.stop()
        elif job == VERIFY:
            if run:
                self.node.verifier.start_background()
            else:
                await self.node.verifier.stop_background()
        elif run:
            self.node.replicator.start()
        else:
            await self._stop_replicator()

    async def _stop_replicator(self) -> None:
        replicator = self.node.replicator
        # A stopped replicator cannot start again: a fresh one serves peers from now on
        # and pulls once this node holds the lease again.
        await replicator.stop()
        with contextlib.suppress(ValueError):
            self.storage.visible_listeners.remove(replicator._on_commit)
        self.node.replicator = replicator.renewed()

    def status(self) -> dict[str, Any]:
        return {"running": sorted(job for job, on in self._running.items() if on),
                "leases": [{"name": n, "holder": h, "expires_in_ms": ms}
                           for n, h, ms in self._lease_holders()]}

    def _lease_holders(self) -> list[tuple[str, str, int]]:
        try:
            return self.storage.lease_holders()
        except ServiceUnavailable:
            return []
