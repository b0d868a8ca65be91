"""CreateBackup, DescribeBackup, ListBackups, DeleteBackup, RestoreTableFromBackup.

Theory of operation: CreateBackup pins the table (Storage.snapshot_table) while it
handles the request — the backup holds exactly the table as committed then, while
writes go on — and the node's BackupService writes it to a file in the background
(CREATING, then AVAILABLE). RestoreTableFromBackup verifies the whole file first (a
corrupted backup is refused before anything is created), then creates the target
table and loads it through the engine (atoll.engine.restore). Backups are this region's
(atoll.backup.store says why); the restored table is an ordinary, replicated one.
Deleting a table with point-in-time recovery on leaves a SYSTEM backup of it, kept for
35 days, as DynamoDB does.
"""

from __future__ import annotations

from typing import Any

import orjson

from atoll.backup.service import BackupService
from atoll.engine import outbox, restore, tables
from atoll.engine.context import EngineContext
from atoll.engine.indexdef import GSI, LSI
from atoll.engine.tabledef import TableDef, table_name_of
from atoll.errors import (
    ContinuousBackupsUnavailable,
    ResourceNotFound,
    TableAlreadyExists,
    TableInUse,
    TableNotFound,
    ValidationError,
)
from atoll.storage.protocol import TableSnapshot

MAX_LIST_PAGE = 1000  # DynamoDB pages ListBackups at 1 MB; a summary is well under 1 KB


def service_of(ctx: EngineContext) -> BackupService:
    service = ctx.settings.backups
    if service is None:
        raise ContinuousBackupsUnavailable(
            "Backups and point in time recovery are not available on this node (a region "
            "stored in PostgreSQL is backed up with PostgreSQL's own tools)")
    return service


def source_table(ctx: EngineContext, name: str) -> TableDef:
    """The live table a backup or restore reads (TableNotFoundException if none)."""
    try:
        table = ctx.catalog.table(name, restoring_ok=True)
    except ResourceNotFound:
        raise TableNotFound(f"Table not found: {table_name_of(name)}") from None
    if not table.tid:
        raise TableInUse(f"Table is being created: {table.name}")
    return table


def _pinned(ctx: EngineContext, table: TableDef) -> tuple[TableSnapshot, TableDef]:
    """The table pinned now, and its definition as pinned."""
    if table.restoring:
        raise TableInUse(f"Table is being restored: {table.name}")
    snapshot = ctx.storage.snapshot_table(table.name)
    if snapshot is None:
        raise TableNotFound(f"Table not found: {table.name}")
    pinned = TableDef.from_json(orjson.loads(snapshot.definition))
    pinned.tid = snapshot.tid
    return snapshot, pinned


def source_details(ctx: EngineContext, table: TableDef, snapshot: TableSnapshot) -> dict[str, Any]:
    details: dict[str, Any] = {
        "TableName": table.name, "TableId": table.table_id,
        "TableArn": table.arn(ctx.region, ctx.settings.account_id),
        "TableSizeBytes": snapshot.size_bytes, "KeySchema": table.key_schema(),
        "TableCreationDateTime": table.created_at,
        "ProvisionedThroughput": {"ReadCapacityUnits": table.read_capacity,
                                  "WriteCapacityUnits": table.write_capacity},
        "ItemCount": snapshot.item_count, "BillingMode": table.billing_mode}
    if "OnDemandThroughput" in table.options:
        details["OnDemandThroughput"] = dict(table.options["OnDemandThroughput"])
    return details


def feature_details(table: TableDef) -> dict[str, Any]:
    features: dict[str, Any] = {}
    lsis = [{"IndexName": i.name, "KeySchema": i.key_schema(), "Projection": i.projection_json()}
            for i in table.indexes if i.kind == LSI]
    gsis = [{"IndexName": i.name, "KeySchema": i.key_schema(), "Projection": i.projection_json(),
             "ProvisionedThroughput": {"ReadCapacityUnits": i.read_capacity,
                                       "WriteCapacityUnits": i.write_capacity}}
            for i in table.indexes if i.kind == GSI]
    if lsis:
        features["LocalSecondaryIndexes"] = lsis
    if gsis:
        features["GlobalSecondaryIndexes"] = gsis
    features["TimeToLiveDescription"] = (
        {"TimeToLiveStatus": "ENABLED", "AttributeName": table.ttl_attribute}
        if table.ttl_attribute else {"TimeToLiveStatus": "DISABLED"})
    return features


def _begin(ctx: EngineContext, service: BackupService, snapshot: TableSnapshot, table: TableDef,
           name: str, kind: str) -> dict[str, Any]:
    header = {"kind": "backup", "table": table.name, "table_id": table.table_id,
              "table_arn": table.arn(ctx.region, ctx.settings.account_id),
              "definition": outbox.table_definition(table), "region": ctx.region}
    entry = service.begin_backup(snapshot, table.name, name, kind,
                                 source_details(ctx, table, snapshot),
                                 feature_details(table), header)
    return dict(entry.details)


async def create_backup(ctx: EngineContext, request: dict[str, Any]) -> dict[str, Any]:
    service = service_of(ctx)
    snapshot, table = _pinned(ctx, source_table(ctx, request["TableName"]))
    try:
        await ctx.storage.settled()  # nothing a crash could undo goes into a backup
    except BaseException:
        snapshot.close()
        raise
    return {"BackupDetails": _begin(ctx, service, snapshot, table, request["BackupName"],
                                    "USER")}


async def describe_backup(ctx: EngineContext, request: dict[str, Any]) -> dict[str, Any]:
    return {"BackupDescription": service_of(ctx).get(request["BackupArn"]).description()}


async def list_backups(ctx: EngineContext, request: dict[str, Any]) -> dict[str, Any]:
    service = service_of(ctx)
    kind = request.get("BackupType", "USER")
    table = table_name_of(request["TableName"]) if request.get("TableName") else None
    lower = request.get("TimeRangeLowerBound")
    upper = request.get("TimeRangeUpperBound")
    entries = [e for e in service.entries()
               if (kind == "ALL" or e.details["BackupType"] == kind)
               and (table is None or e.source["TableName"] == table)
               and (lower is None or e.details["BackupCreationDateTime"] >= float(lower))
               and (upper is None or e.details["BackupCreationDateTime"] < float(upper))]
    start = request.get("ExclusiveStartBackupArn")
    if start is not None:
        arns = [e.arn for e in entries]
        if start in arns:
            entries = entries[arns.index(start) + 1:]
        else:  # deleted since: continue after where it sorted
            ms = _arn_ms(start)
            entries = [e for e in entries
                       if (e.details["BackupCreationDateTime"], e.arn) > (ms / 1000, start)]
    limit = min(int(request.get("Limit", MAX_LIST_PAGE)), MAX_LIST_PAGE)
    result: dict[str, Any] = {"BackupSummaries": [e.summary() for e in entries[:limit]]}
    if len(entries) > limit:
        result["LastEvaluatedBackupArn"] = entries[limit - 1].arn
    return result


def _arn_ms(arn: str) -> int:
    ident = arn.rpartition("/")[2]
    head = ident.partition("-")[0]
    if not head.isdigit():
        raise ValidationError(f"Invalid ExclusiveStartBackupArn: {arn}")
    return int(head)


async def delete_backup(ctx: EngineContext, request: dict[str, Any]) -> dict[str, Any]:
    entry = await service_of(ctx).delete(request["BackupArn"])
    return {"BackupDescription": entry.description()}


async def restore_table_from_backup(ctx: EngineContext, request: dict[str, Any]) -> dict[str, Any]:
    service = service_of(ctx)
    target = table_name_of(request["TargetTableName"])
    if target in ctx.catalog:
        raise TableAlreadyExists(f"Table already exists: {target}")
    entry, header = await service.open_for_restore(request["BackupArn"])
    try:
        summary = {"SourceBackupArn": entry.arn, "SourceTableArn": entry.source["TableArn"],
                   "RestoreDateTime": entry.details["BackupCreationDateTime"],
                   "RestoreInProgress": True}
        table = restore.restored_definition(
            ctx, outbox.definition_table(header["definition"]), target, request, summary,
            {"region": ctx.region, "backup_arn": entry.arn})
        await restore.create(ctx, table)
    except BaseException:
        service.release(entry)
        raise
    service.spawn(restore.load(ctx, table, service.backup_items(entry),
                               lambda: service.release(entry)), f"restore {target}")
    return {"TableDescription": tables._describe(ctx, table)}


async def resume_restore(ctx: EngineContext, service: BackupService, table: TableDef) -> None:
    """A restore from a backup that a restart cut short: load it again from the start."""
    source = table.restore_source or {}
    try:
        entry, _header = await service.open_for_restore(str(source.get("backup_arn")))
    except Exception as exc:
        await restore.abandon(ctx, table, f"its backup cannot be read: {exc}")
        return
    await restore.load(ctx, table, service.backup_items(entry),
                       lambda: service.release(entry))


# --- DeleteTable: a SYSTEM backup of a table with point-in-time recovery ------------------

async def delete_table(ctx: EngineContext, request: dict[str, Any]) -> dict[str, Any]:
    """DeleteTable; a table with PITR on is first pinned, and kept as a SYSTEM backup of
    the table as it was when the request came, once the drop committed."""
    service = ctx.settings.backups
    table = ctx.catalog.get(table_name_of(request["TableName"]))
    snapshot = None
    if service is not None and table is not None and table.tid \
            and service.pitr.enabled(table.table_id) is not None:
        snapshot = ctx.storage.snapshot_table(table.name)
    try:
        answer = await tables.delete_table(ctx, request)
    except BaseException:
        if snapshot is not None:
            snapshot.close()
        raise
    if snapshot is not None and service is not None:
        pinned = TableDef.from_json(orjson.loads(snapshot.definition))
        _begin(ctx, service, snapshot, pinned, f"{pinned.name}$DeletedTableBackup",
               "SYSTEM")
    return answer
