"""Restores: a new table made from a backup or a point in time, through the ctx.

Theory of operation: a restore creates an ordinary table — the same DDL job and
changelog record as CreateTable, so it exists in every region — whose definition carries
a RestoreSummary with RestoreInProgress. While that is so the table is CREATING: it is
described and listed, and refuses item operations in every region (Catalog.table).
The items are then written in chunks of RESTORE_CHUNK_ITEMS, each one write job and one
changelog record, as new versions made by this region: they replicate like any write.
Last, a definition rewrite turns RestoreInProgress off everywhere. Reading the source
(a backup file, a replay) runs off the event loop a chunk at a time.

What a restore carries over follows DynamoDB: keys, attribute definitions, indexes (all
or the ones the overrides keep), billing mode and capacity (or their overrides), table
class and throughput settings. Tags, TTL, stream settings, deletion protection and
point-in-time recovery are the new table's own business, so they start unset.

A restore cut short by a restart is resumed by the region that ran it
(`restore_source` says how), from its first item: writing an item again is harmless.
If the source is gone or unreadable the half-made table is deleted and the fault logged.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from atoll.engine import causal, ddl, options, outbox
from atoll.engine.context import EngineContext
from atoll.engine.indexdef import GSI, LSI, IndexDef, check_index_set, parse_index
from atoll.engine.items import plan_indexes, put_row
from atoll.engine.tabledef import TableDef, apply_billing, check_index_attributes
from atoll.errors import TableAlreadyExists, ValidationError
from atoll.model.values import item_size
from atoll.replication.change import ItemJson, item_json
from atoll.replication.itemstate import Dot
from atoll.storage import WriteTxn

log = logging.getLogger(__name__)

RESTORE_CHUNK_ITEMS = 500
_INVALID = "One or more parameter values were invalid: "

Prepared = list[tuple[tuple[int, bytes, bytes], ItemJson, int, Any]]


def restored_definition(ctx: EngineContext, source: TableDef, target: str,
                        request: dict[str, Any], summary: dict[str, Any],
                        restore_source: dict[str, Any]) -> TableDef:
    """The new table's definition: `source`'s, renamed, with the request's overrides."""
    options.refuse_unsupported({"VectorIndexes": request.get("VectorIndexOverride")})
    options.check_sse(request.get("SSESpecificationOverride"), "SSESpecificationOverride")
    table = source.copy()
    table.name = target
    table.tid = 0
    table.table_id = str(uuid.uuid4())
    table.created_at = ctx.now_ms() / 1000
    table.tags = {}
    table.ttl_attribute = None
    table.stream_view_type = table.stream_label = None
    table.stream_sid = 0
    table.deletion_protection = False
    table.billing_changed_at = None
    for index in table.indexes:
        index.status = "ACTIVE"  # every item is written with the table's indexes
    billing: dict[str, Any] = {"BillingMode": request.get("BillingModeOverride"),
                               "ProvisionedThroughput": request.get(
                                   "ProvisionedThroughputOverride")}
    if billing["BillingMode"] is not None or billing["ProvisionedThroughput"] is not None:
        apply_billing(table, billing, creating=False, now_s=ctx.now_ms() / 1000)
        table.billing_changed_at = None
    if table.billing_mode != "PAY_PER_REQUEST":
        table.options.pop("OnDemandThroughput", None)
    if request.get("OnDemandThroughputOverride") is not None:
        table.options["OnDemandThroughput"] = options.on_demand_throughput(
            request["OnDemandThroughputOverride"], table.billing_mode)
    for member, kind in (("GlobalSecondaryIndexOverride", GSI),
                         ("LocalSecondaryIndexOverride", LSI)):
        if request.get(member) is not None:
            _override_indexes(table, request[member], kind, member)
    for index in table.indexes:
        if index.kind == GSI and table.billing_mode == "PROVISIONED" and not index.read_capacity:
            raise ValidationError(_INVALID + "ProvisionedThroughput must be specified for "
                                  f"index: {index.name} (GlobalSecondaryIndexOverride)")
    check_index_set(table.indexes)
    used = set(table.key_names())
    for index in table.indexes:
        used.update(index.key_names())
    table.attribute_types = {n: t for n, t in table.attribute_types.items() if n in used}
    check_index_attributes(table)
    table.restore = summary
    table.restore_source = restore_source
    return table


def _override_indexes(table: TableDef, specs: list[dict[str, Any]], kind: str,
                      member: str) -> None:
    """Keep the source's indexes of `kind` that `specs` name, as they name them; each
    must match an index of the source (DynamoDB: "should match existing indexes")."""
    kept: list[IndexDef] = []
    for spec in specs:
        wanted = parse_index(spec, kind, table.hash_key, table.range_key, table.billing_mode)
        existing = table.find_index(wanted.name)
        if existing is None or existing.kind != kind:
            raise ValidationError(_INVALID + f"{member}: the backup has no "
                                  f"{'global' if kind == GSI else 'local'} secondary index "
                                  f"{wanted.name}")
        if (wanted.key_schema(), wanted.projection_json()) != \
                (existing.key_schema(), existing.projection_json()):
            raise ValidationError(_INVALID + f"{member}: index {wanted.name} must keep its "
                                  "KeySchema and Projection")
        wanted.iid = existing.iid
        kept.append(wanted)
    table.indexes = [i for i in table.indexes if i.kind != kind] + kept


async def create(ctx: EngineContext, table: TableDef) -> None:
    """Commit the new table's creation (CREATING until `finish`)."""
    if table.name in ctx.catalog:
        raise TableAlreadyExists(f"Table already exists: {table.name}")
    await ddl.create(ctx, table)


def _prepare(table: TableDef, items: list[bytes]) -> Prepared:
    """Off the loop: each item's key, size and index rows."""
    prepared: Prepared = []
    for raw in items:
        item = orjson.loads(raw)
        size = item_size(item)
        prepared.append((table.encode_item_key(item), ItemJson(raw), size,
                         plan_indexes(table, item, raw, size)))
    return prepared


def chunked(items: Iterator[bytes]) -> Iterator[list[bytes]]:
    chunk: list[bytes] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= RESTORE_CHUNK_ITEMS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def load(ctx: EngineContext, table: TableDef, items: Callable[[], Iterator[bytes]],
               done: Callable[[], None]) -> None:
    """Write every item `items()` yields into the restoring `table`, then finish it;
    delete the table if that fails. `done` runs at the end either way."""
    written = 0
    try:
        chunks = chunked(items())
        while True:
            chunk = await asyncio.to_thread(next, chunks, None)
            if chunk is None:
                break
            current = ctx.catalog.current(table)
            prepared = await asyncio.to_thread(_prepare, current, chunk)
            await ctx.storage.write(_chunk_job(ctx, table, current, prepared))
            written += len(prepared)
        await finish(ctx, table.name)
        log.info("restore of %s finished: %d items", table.name, written)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.error("restore of %s failed after %d items", table.name, written, exc_info=True)
        await abandon(ctx, table, str(exc))
    finally:
        done()


def _chunk_job(ctx: EngineContext, table: TableDef, planned: TableDef,
               prepared: Prepared) -> Callable[[WriteTxn], None]:
    def job(txn: WriteTxn) -> None:
        ctx.catalog.ensure_live(table)
        current = ctx.catalog.current(table)
        hlc = ctx.clock.tick()
        dot = Dot(hlc, ctx.region)
        logged: list[outbox.ItemOp] = []
        for key, item_bytes, size, plan in prepared:
            item = orjson.loads(item_bytes)
            if current is not planned:  # the definition changed meanwhile: plan again
                plan = plan_indexes(current, item, item_bytes, size)
            old = txn.get(table.tid, *key)
            stored, shown = causal.put(txn, current, key, item, dot)  # a PutItem's state
            if shown is not item:  # top-level sets in canonical order
                item_bytes = item_json(shown)
                plan = plan_indexes(current, shown, item_bytes, size)
            put_row(ctx, txn, current, key, item_bytes, size, old, plan, stored)
            logged.append((key, item_bytes, old, stored.data))
        outbox.log_item_changes(ctx, txn, hlc, table, logged)
    return job


async def finish(ctx: EngineContext, name: str) -> None:
    """RestoreInProgress goes off: the table is ACTIVE in every region."""
    async with ctx.catalog.ddl_lock:
        table = ctx.catalog.table(name, restoring_ok=True)
        updated = table.copy()
        if updated.restore is not None:
            updated.restore = {**updated.restore, "RestoreInProgress": False}
        updated.restore_source = None
        await ddl.replace_definition(ctx, table, updated)


async def abandon(ctx: EngineContext, table: TableDef, why: str) -> None:
    """Delete an unfinished restore's table (`why` is logged)."""
    log.error("deleting the unfinished restore of %s: %s", table.name, why)

    try:
        await ddl.drop(ctx, table)
        ctx.catalog.publish_drop(table.name, ctx.catalog.get(table.name))
    except Exception as exc:  # dropped meanwhile, or the storage failed
        log.error("could not delete the unfinished restore of %s: %s", table.name, exc)
