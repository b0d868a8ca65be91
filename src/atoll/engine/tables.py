"""CreateTable, DescribeTable, ListTables, DeleteTable, UpdateTable."""

from __future__ import annotations

from typing import Any

from atoll.engine import ddl, globaltables, indexes, options, streams
from atoll.engine.context import EngineContext
from atoll.engine.tabledef import TableDef, apply_billing, parse_create_table
from atoll.errors import ResourceInUse, ValidationError


def _describe(ctx: EngineContext, table: TableDef, status: str = "ACTIVE") -> dict[str, Any]:
    count, size = ctx.storage.table_stats(table.tid)
    index_stats = {i.name: indexes.index_stats(ctx, table, i) for i in table.indexes}
    replica_regions = ctx.settings.replica_regions()
    description = table.describe(ctx.region, count, size, status, index_stats,
                                 ctx.settings.account_id, bool(replica_regions))
    if replica_regions:
        # as DynamoDB global tables (version 2019.11.21) report their replicas
        description["GlobalTableVersion"] = "2019.11.21"
        description["Replicas"] = [{"RegionName": region, "ReplicaStatus": status}
                                   for region in replica_regions]
    return description


async def create_table(ctx: EngineContext, request: dict[str, Any]) -> dict[str, Any]:
    table = parse_create_table(request, ctx.now_ms() / 1000)
    if table.name in ctx.catalog:
        raise ResourceInUse(f"Table already exists: {table.name}")

    await ddl.create(ctx, table)
    return {"TableDescription": _describe(ctx, table)}


async def describe_table(ctx: EngineContext, request: dict[str, Any]) -> dict[str, Any]:
    table = ctx.catalog.table(request["TableName"], restoring_ok=True)
    return {"Table": _describe(ctx, table)}


async def list_tables(ctx: EngineContext, request: dict[str, Any]) -> dict[str, Any]:
    limit = request.get("Limit", 100)
    start = request.get("ExclusiveStartTableName")
    names = ctx.catalog.names()
    if start is not None:
        names = [n for n in names if n > start]
    result: dict[str, Any] = {"TableNames": names[:limit]}
    if len(names) > limit:
        result["LastEvaluatedTableName"] = names[limit - 1]
    return result


def _not_restoring(table: TableDef) -> TableDef:
    if table.restoring:
        raise ResourceInUse("Attempt to change a resource which is still in use: Table is "
                            f"being restored: {table.name}")
    return table


# DeleteTable's TableDescription leaves out the table's schema and its indexes, which
# DescribeTable gives (alternator's test_delete_table_description and
# test_delete_table_description_with_si, which pass against DynamoDB; scylladb#14132).
_NOT_IN_DELETE_ANSWER = ("AttributeDefinitions", "KeySchema", "CreationDateTime",
                         "GlobalSecondaryIndexes", "LocalSecondaryIndexes")


async def delete_table(ctx: EngineContext, request: dict[str, Any]) -> dict[str, Any]:
    table = _not_restoring(ctx.catalog.table(request["TableName"], restoring_ok=True))
    if table.deletion_protection:
        raise ValidationError("Resource cannot be deleted as it is currently protected against "
                              "deletion. Disable deletion protection first.")
    description = _describe(ctx, table, status="DELETING")
    for member in _NOT_IN_DELETE_ANSWER:
        description.pop(member, None)

    ctx.catalog.begin_ddl(table.name)
    try:
        await ddl.drop(ctx, table)
        ctx.catalog.publish_drop(table.name, table)
    finally:
        ctx.catalog.end_ddl(table.name)
    return {"TableDescription": description}


async def update_table(ctx: EngineContext, request: dict[str, Any]) -> dict[str, Any]:
    table = _not_restoring(ctx.catalog.table(request["TableName"], restoring_ok=True))
    changes = [k for k in ("BillingMode", "ProvisionedThroughput", "DeletionProtectionEnabled",
                           "GlobalSecondaryIndexUpdates", "StreamSpecification",
                           "SSESpecification", "ReplicaUpdates", *options.UPDATE_MEMBERS,
                           "VectorIndexUpdates", "GlobalTableWitnessUpdates")
               if request.get(k) is not None]
    if not changes:
        raise ValidationError(
            "At least one of ProvisionedThroughput, BillingMode, UpdateStreamEnabled, "
            "GlobalSecondaryIndexUpdates or SSESpecification or ReplicaUpdates is required")
    globaltables.check_replica_updates(ctx, table, request)
    async with ctx.catalog.ddl_lock:
        table = _not_restoring(ctx.catalog.table(request["TableName"], restoring_ok=True))
        updated = table.copy()
        if (request.get("BillingMode") is not None
                or request.get("ProvisionedThroughput") is not None):
            apply_billing(updated, request, creating=False, now_s=ctx.now_ms() / 1000)
        updated.options = options.apply_update(updated.options, request, updated.billing_mode,
                                               ctx.now_ms() / 1000)
        if request.get("DeletionProtectionEnabled") is not None:
            updated.deletion_protection = bool(request["DeletionProtectionEnabled"])
        if request.get("StreamSpecification") is not None:
            streams.update_specification(table, updated, request["StreamSpecification"],
                                         ctx.now_ms())
        backfill: list[str] = []
        dropped: list[int] = []
        if request.get("GlobalSecondaryIndexUpdates") is not None:
            backfill, dropped = indexes.apply_gsi_updates(table, updated, request)
        updated = await ddl.replace_definition(ctx, table, updated, tuple(dropped))
    for index_name in backfill:
        ctx.settings.start_backfill(updated.name, index_name)
    return {"TableDescription": _describe(ctx, updated)}
