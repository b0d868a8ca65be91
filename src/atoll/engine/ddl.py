"""Committing a rewritten table definition (UpdateTable, TTL, tags, a finished backfill).

Theory of operation: the caller holds the catalog's `ddl_lock`, so definitions change
one at a time, and passes the definition it read and the one it wants. One write job
checks the table is still live, stores the new definition (with its stream opened or
closed to match: engine/streams.py), drops the rows of removed indexes, logs the DDL in the outbox and moves the catalog's commit view, all in one
transaction; once it committed, the request view publishes the new definition (unless
the table was dropped or replaced meanwhile).
"""

from __future__ import annotations

import orjson

from atoll.engine import outbox, streams
from atoll.engine.context import EngineContext
from atoll.engine.tabledef import TableDef
from atoll.storage import WriteTxn


async def replace_definition(ctx: EngineContext, table: TableDef, updated: TableDef,
                             dropped_iids: tuple[int, ...] = ()) -> TableDef:
    """Persist `updated` in place of `table` (and drop removed indexes' rows)."""
    updated.tid = table.tid

    def job(txn: WriteTxn) -> None:
        ctx.catalog.ensure_live(table)
        hlc = ctx.clock.tick()
        streams.reconcile(txn, ctx.catalog.current(table), updated, ctx.now_ms())
        txn.update_table(table.name, orjson.dumps(updated.to_json()))
        for iid in dropped_iids:
            txn.index_drop(table.tid, iid)
        outbox.log_table_op(ctx, txn, hlc, "update", table.name, updated)
        ctx.catalog.committed_update(updated)

    await ctx.storage.write(job)
    ctx.catalog.publish_update(table, updated)
    return updated
