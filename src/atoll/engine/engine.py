"""Engine: owns the table catalog, the clock and the storage; dispatches operations.

Threading contract: every public coroutine runs on the event-loop thread. Write jobs
(closures passed to `storage.write`) run on the storage writer thread; they may read
`self.live_tids` and tick `self.clock`, which only the writer thread touches after start.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from atoll.clock import HybridClock
from atoll.engine import batch, items, reads, tables
from atoll.engine.tabledef import TableDef, table_name_of
from atoll.errors import ResourceNotFound
from atoll.storage import SqliteStorage, WriteTxn

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
}


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


class Engine:
    def __init__(self, storage: SqliteStorage, region: str = "local",
                 now_ms: Callable[[], int] = wall_clock_ms) -> None:
        self.storage = storage
        self.region = region
        self.clock = HybridClock(now_ms)
        self.tables: dict[str, TableDef] = {}
        for name, tid, definition in storage.load_tables():
            table = TableDef.from_json(orjson.loads(definition))
            table.tid = tid
            self.tables[name] = table
        self.live_tids = {t.tid for t in self.tables.values()}  # writer-thread view

    async def handle(self, operation: str, request: dict[str, Any]) -> Any:
        return await HANDLERS[operation](self, request)

    def table(self, table_name: str) -> TableDef:
        name = table_name_of(table_name)
        table = self.tables.get(name)
        if table is None:
            raise ResourceNotFound(f"Requested resource not found: Table: {name} not found")
        return table

    def ensure_live(self, table: TableDef) -> None:
        """Called inside write jobs: the table may have been dropped since the request
        was validated."""
        if table.tid not in self.live_tids:
            raise ResourceNotFound(f"Requested resource not found: Table: {table.name} not found")

    def log_item_changes(self, txn: WriteTxn, hlc: int, table: TableDef,
                         ops: list[tuple[dict[str, Any], bytes | None]]) -> None:
        """Append one changelog record for item writes (key, new item bytes or None)."""
        body = orjson.dumps({
            "t": table.name,
            "ops": [{"k": key, "i": orjson.Fragment(item) if item is not None else None}
                    for key, item in ops],
        })
        txn.log_change(hlc, body)
