"""Engine: owns the table catalog, the clock and the storage; dispatches operations.

Threading contract: every public coroutine runs on the event-loop thread. Write jobs
(closures passed to `storage.write`) run one batch at a time, on the event-loop thread or
the storage writer thread (see storage.sqlite); they may read the catalog's commit view
and tick `self.clock`, which only write jobs touch after start (engine/catalog.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import orjson

from atoll.backup.service import BackupService
from atoll.clock import HybridClock
from atoll.engine import (
    backups,
    batch,
    globaltables,
    items,
    outbox,
    partiql_ops,
    pitr,
    reads,
    tables,
    tags,
    transactions,
    ttl,
)
from atoll.engine.catalog import Catalog
from atoll.engine.tabledef import DEFAULT_ACCOUNT, TableDef
from atoll.storage import SqliteStorage, WriteTxn

log = logging.getLogger(__name__)

Handler = Callable[["Engine", dict[str, Any]], Awaitable[Any]]

HANDLERS: dict[str, Handler] = {
    "CreateTable": tables.create_table,
    "DescribeTable": tables.describe_table,
    "ListTables": tables.list_tables,
    "DeleteTable": tables.delete_table,
    "UpdateTable": tables.update_table,
    "PutItem": items.put_item,
    "GetItem": items.get_item,
    "DeleteItem": items.delete_item,
    "UpdateItem": items.update_item,
    "Query": reads.query,
    "Scan": reads.scan,
    "BatchGetItem": batch.batch_get_item,
    "BatchWriteItem": batch.batch_write_item,
    "TransactWriteItems": transactions.transact_write_items,
    "TransactGetItems": transactions.transact_get_items,
    "UpdateTimeToLive": ttl.update_time_to_live,
    "DescribeTimeToLive": ttl.describe_time_to_live,
    "TagResource": tags.tag_resource,
    "UntagResource": tags.untag_resource,
    "ListTagsOfResource": tags.list_tags_of_resource,
    "DescribeLimits": tags.describe_limits,
    "DescribeEndpoints": tags.describe_endpoints,
    "ExecuteStatement": partiql_ops.execute_statement,
    "BatchExecuteStatement": partiql_ops.batch_execute_statement,
    "ExecuteTransaction": partiql_ops.execute_transaction,
    "DescribeGlobalTable": globaltables.describe_global_table,
    "ListGlobalTables": globaltables.list_global_tables,
    "CreateBackup": backups.create_backup,
    "DescribeBackup": backups.describe_backup,
    "ListBackups": backups.list_backups,
    "DeleteBackup": backups.delete_backup,
    "RestoreTableFromBackup": backups.restore_table_from_backup,
    "UpdateContinuousBackups": pitr.update_continuous_backups,
    "DescribeContinuousBackups": pitr.describe_continuous_backups,
    "RestoreTableToPointInTime": pitr.restore_table_to_point_in_time,
}
HANDLERS["DeleteTable"] = backups.delete_table  # keeps a SYSTEM backup when PITR was on


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


class Engine:
    def __init__(self, storage: SqliteStorage, region: str = "local",
                 now_ms: Callable[[], int] = wall_clock_ms) -> None:
        self.storage = storage
        self.region = region
        self.clock = HybridClock(now_ms)
        # never issue a stamp at or below one this region already used (a restart with a
        # clock that went back must not make new writes lose to old ones)
        self.clock.restore(storage.last_local_hlc())
        self.now_ms = now_ms
        self.catalog = Catalog(_stored_table(tid, definition)
                               for _name, tid, definition in storage.load_tables())
        self.replica_regions: tuple[str, ...] = ()  # every region of the cluster, if any
        self.endpoint_address = "127.0.0.1:8000"  # DescribeEndpoints; the node sets it
        self.account_id = DEFAULT_ACCOUNT  # the account id in ARNs; the node sets it
        self.backups: BackupService | None = None  # backups and PITR; the node sets it
        self.ttl_interval_s = ttl.DEFAULT_INTERVAL_S
        self._background: set[asyncio.Task[Any]] = set()
        # (tid, iid) -> (when in s, ItemCount, IndexSizeBytes) of large indexes
        self.index_stats_cache: dict[tuple[int, int], tuple[float, int, int]] = {}

    # --- background work ---------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run a background coroutine, keeping a reference and logging its failure."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._background.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._background.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("background task %s failed", name, exc_info=t.exception())
        task.add_done_callback(done)
        return task

    def start_background(self) -> None:
        """After storage.start: resume interrupted index backfills, start the TTL sweeper."""
        from atoll.engine import indexes
        for table in self.catalog.tables():
            for index in table.indexes:
                if index.status == "CREATING":
                    self.spawn(indexes.backfill(self, table.name, index.name),
                               f"backfill {table.name}.{index.name}")
        self.spawn(ttl.sweeper(self), "ttl-sweeper")

    async def stop_background(self) -> None:
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def replace_definition(self, table: TableDef, updated: TableDef,
                                 dropped_iids: tuple[int, ...] = ()) -> TableDef:
        """Persist a changed definition (and drop removed indexes' rows) in one job; the
        caller holds `ddl_lock`."""
        updated.tid = table.tid

        def job(txn: WriteTxn) -> None:
            self.catalog.ensure_live(table)
            hlc = self.clock.tick()
            txn.update_table(table.name, orjson.dumps(updated.to_json()))
            for iid in dropped_iids:
                txn.index_drop(table.tid, iid)
            outbox.log_table_op(self, txn, hlc, "update", table.name, updated)
            self.catalog.committed_update(updated)

        await self.storage.write(job)
        self.catalog.publish_update(table, updated)
        return updated

    async def handle(self, operation: str, request: dict[str, Any]) -> Any:
        return await HANDLERS[operation](self, request)

    def table(self, table_name: str) -> TableDef:
        return self.catalog.table(table_name)

    def log_item_changes(self, txn: WriteTxn, hlc: int, table: TableDef,
                         ops: list[outbox.ItemOp]) -> None:
        """Log one change for item writes: (key, new item or None, old row)."""
        outbox.log_writes(self, txn, hlc, [outbox.logged_write(txn, table, op) for op in ops])

    def log_multi_table_changes(self, txn: WriteTxn, hlc: int,
                                groups: list[tuple[TableDef, list[outbox.ItemOp]]]) -> None:
        """One change for a transaction's item writes across tables, so replication
        applies the whole transaction atomically in every region."""
        outbox.log_writes(self, txn, hlc, [outbox.logged_write(txn, table, op)
                                            for table, ops in groups for op in ops])


def _stored_table(tid: int, definition: bytes) -> TableDef:
    table = TableDef.from_json(orjson.loads(definition))
    table.tid = tid
    return table
