"""Committing table definitions: a new table (CreateTable, a restore), a dropped one
(DeleteTable, an abandoned restore) and a rewritten one (UpdateTable, TTL, tags, a
finished backfill).

Theory of operation. A new table: the caller has checked its name is free; `create`
reserves the name in the catalog's request view (so a second create fails at once)
before its job commits, and gives the reservation up if the job fails. The job opens the
table's stream if it has one, stores the definition, logs the DDL in the outbox (so the
table exists in every region) and moves the commit view. A dropped table: one job checks
the table is still live, closes its stream, drops its rows, logs the delete and moves the
commit view; the caller publishes the drop to the request view.

A rewritten definition: the caller holds the catalog's `ddl_lock`, so definitions change
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


async def create(ctx: EngineContext, table: TableDef) -> None:
    """Commit the new `table`'s creation; `table.tid` is its storage id once it returns.

    The name is marked in flight (`Catalog.begin_ddl`) until the outcome is published, so a
    catalog refresh on a shared region leaves it alone, for CreateTable and restores alike.
    """

    def job(txn: WriteTxn) -> int:
        hlc = ctx.clock.tick()
        streams.reconcile(txn, None, table, ctx.now_ms())
        tid = txn.create_table(table.name, orjson.dumps(table.to_json()))
        table.tid = tid
        outbox.log_table_op(ctx, txn, hlc, "create", table.name, table)
        ctx.catalog.committed_create(table)
        return tid

    ctx.catalog.begin_ddl(table.name)
    ctx.catalog.reserve(table)  # hold the name while the create commits
    try:
        table.tid = await ctx.storage.write(job)
    except BaseException:
        ctx.catalog.release(table.name)
        raise
    finally:
        ctx.catalog.end_ddl(table.name)


async def drop(ctx: EngineContext, table: TableDef) -> None:
    """Commit the drop of the live `table` (ResourceNotFound if it is no longer live)."""

    def job(txn: WriteTxn) -> None:
        ctx.catalog.ensure_live(table)
        hlc = ctx.clock.tick()
        streams.reconcile(txn, ctx.catalog.current(table), None, ctx.now_ms())
        txn.drop_table(table.name, table.tid)
        outbox.log_table_op(ctx, txn, hlc, "delete", table.name, None)
        ctx.catalog.committed_drop(table.tid)

    await ctx.storage.write(job)


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
