"""Engine: the operations DynamoDB requests name, over one `EngineContext`.

`Engine` builds the context (clock restored from storage, catalog loaded from storage)
and answers operations through `HANDLERS`: operation name -> handler(context, request),
and the Streams service's through `STREAM_HANDLERS`.
The handlers live in feature modules by concept; none of them sees `Engine`. Background
work (the TTL sweeper, index backfills) is run by the node over `engine.context`
(atoll.node.background).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from atoll.clock import HybridClock
from atoll.engine import (
    backups,
    batch,
    globaltables,
    items,
    partiql_ops,
    pitr,
    reads,
    stream_reads,
    tables,
    tags,
    transactions,
    ttl,
)
from atoll.engine.catalog import Catalog
from atoll.engine.context import EngineContext, EngineSettings, Storage, wall_clock_ms
from atoll.engine.tabledef import TableDef

Handler = Callable[[EngineContext, dict[str, Any]], Awaitable[Any]]

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

# The reads that never wait (no write, no lock, no I/O but the reader's own statements): the
# same handlers' synchronous forms, which HANDLERS' coroutines call. The api answers them
# without a coroutine (api/dispatch.py, `Api.answer`): a read's answer is then handed to
# the HTTP layer as a value, not as the StopIteration that ends a coroutine (with the
# compiled build's traceback entry, ~1 µs of a GetItem's CPU).
NowHandler = Callable[[EngineContext, dict[str, Any]], Any]
NOW_HANDLERS: dict[str, NowHandler] = {
    "GetItem": items.get_item_now,
    "Query": reads.query_now,
    "Scan": reads.scan_now,
    "BatchGetItem": batch.batch_get_item_now,
}

# The DynamoDB Streams service (X-Amz-Target DynamoDBStreams_20120810.<Op>), same endpoint.
STREAM_HANDLERS: dict[str, Handler] = {
    "ListStreams": stream_reads.list_streams,
    "DescribeStream": stream_reads.describe_stream,
    "GetShardIterator": stream_reads.get_shard_iterator,
    "GetRecords": stream_reads.get_records,
}


class Engine:
    """One node's engine over its storage (not yet started: the node starts storage).

    `catalog`, `storage`, `clock`, `region` and `now_ms` are the context's, named here
    too for the replication side (engine/replica_store.py, node/replicator.py)."""

    def __init__(self, storage: Storage, region: str = "local",
                 now_ms: Callable[[], int] = wall_clock_ms,
                 settings: EngineSettings | None = None) -> None:
        clock = HybridClock(now_ms)
        # never issue a stamp at or below one this region already used (a restart with a
        # clock that went back must not make new writes lose to old ones)
        clock.restore(storage.last_local_hlc())
        catalog = Catalog(_stored_table(tid, definition)
                          for _name, tid, definition in storage.load_tables())
        self.context = EngineContext(catalog, storage, clock, region, now_ms,
                                     settings if settings is not None else EngineSettings())
        self.catalog = catalog
        self.storage = storage
        self.clock = clock
        self.region = region
        self.now_ms = now_ms

    async def handle(self, operation: str, request: dict[str, Any]) -> Any:
        return await HANDLERS[operation](self.context, request)


def _stored_table(tid: int, definition: bytes) -> TableDef:
    table = TableDef.from_json(orjson.loads(definition))
    table.tid = tid
    return table
