"""UpdateContinuousBackups, DescribeContinuousBackups, RestoreTableToPointInTime.

Theory of operation: point-in-time recovery is this region's, per table (as each replica
of a DynamoDB global table has its own). Enabling pins the table now (its first PITR
snapshot) and from then on the storage keeps the table's changelog records past
replication's purge (atoll.backup.pitr). A restore to T replays the newest snapshot at
or before T with the kept changes stamped at or before T (atoll.backup.replay) — off
the event loop — then creates the target table and loads it like any restore
(atoll.engine.restore): an ordinary table that replicates to every region. Continuous
backups themselves are always ENABLED, as DynamoDB reports them for every table.
"""

from __future__ import annotations

import asyncio
from typing import Any

from atoll.backup.pitr import DEFAULT_RECOVERY_DAYS
from atoll.backup.replay import ReplayedTable, replay
from atoll.backup.service import BackupService
from atoll.engine import backups, outbox, restore, tables
from atoll.engine.backups import service_of, source_table
from atoll.engine.context import EngineContext
from atoll.engine.tabledef import TableDef, table_name_of
from atoll.errors import (
    ContinuousBackupsUnavailable,
    TableAlreadyExists,
    TableNotFound,
    ValidationError,
)
from atoll.replication.change import Version
from atoll.replication.merge import TableState


def _description(service: BackupService, table: TableDef) -> dict[str, Any]:
    return {"ContinuousBackupsDescription": {
        "ContinuousBackupsStatus": "ENABLED",
        "PointInTimeRecoveryDescription": service.pitr.describe(table.table_id)}}


async def update_continuous_backups(ctx: EngineContext, request: dict[str, Any]) -> dict[str, Any]:
    service = service_of(ctx)
    table = source_table(ctx, request["TableName"])
    spec = request["PointInTimeRecoverySpecification"]
    if spec["PointInTimeRecoveryEnabled"]:
        if table.restoring:
            raise ContinuousBackupsUnavailable(
                f"Continuous backups cannot be enabled while table {table.name} is being "
                "restored")
        await service.pitr.enable(table.name, table.table_id,
                                  int(spec.get("RecoveryPeriodInDays") or DEFAULT_RECOVERY_DAYS))
    else:
        if spec.get("RecoveryPeriodInDays") is not None:
            raise ValidationError("One or more parameter values were invalid: "
                                  "RecoveryPeriodInDays can only be set when enabling "
                                  "point in time recovery")
        await service.pitr.disable(table.table_id)
    return _description(service, table)


async def describe_continuous_backups(ctx: EngineContext, request: dict[str, Any]
                                      ) -> dict[str, Any]:
    return _description(service_of(ctx), source_table(ctx, request["TableName"]))


def _restore_time_ms(ctx: EngineContext, request: dict[str, Any]) -> int:
    latest = bool(request.get("UseLatestRestorableTime"))
    at = request.get("RestoreDateTime")
    if latest and at is not None:
        raise ValidationError("One or more parameter values were invalid: RestoreDateTime "
                              "and UseLatestRestorableTime cannot both be specified")
    if not latest and at is None:
        raise ValidationError("One or more parameter values were invalid: Either "
                              "RestoreDateTime or UseLatestRestorableTime must be specified")
    return ctx.now_ms() if latest else int(float(str(at)) * 1000)


async def restore_table_to_point_in_time(ctx: EngineContext, request: dict[str, Any]
                                         ) -> dict[str, Any]:
    service = service_of(ctx)
    name = request.get("SourceTableName") or request.get("SourceTableArn")
    if name is None:
        raise ValidationError("One or more parameter values were invalid: Either "
                              "SourceTableName or SourceTableArn must be specified")
    source = source_table(ctx, name)
    target = table_name_of(request["TargetTableName"])
    if target in ctx.catalog:
        raise TableAlreadyExists(f"Table already exists: {target}")
    until_ms = _restore_time_ms(ctx, request)
    table = await _start(ctx, service, source, target, until_ms, request)
    return {"TableDescription": tables._describe(ctx, table)}


async def _start(ctx: EngineContext, service: BackupService, source: TableDef, target: str,
                 until_ms: int, request: dict[str, Any],
                 resuming: TableDef | None = None) -> TableDef:
    """Replay the source to `until_ms`, create the target (unless resuming it) and load
    it in the background."""
    pitr_table, header, snapshot, records, changes = service.pitr.restore_source(
        source.table_id, until_ms)
    try:
        stored = header.get("state")
        definition = header["definition"]
        state = (TableState(Version(*stored[0]), Version(*stored[1]), stored[2] or definition)
                 if stored else TableState(Version(0, ""), Version(0, ""), definition))
        try:
            replayed: ReplayedTable = await asyncio.to_thread(
                replay, source.name, state, header["cursors"], until_ms, snapshot, records)
        finally:
            changes.close()  # the changes are merged in; only the snapshot file is read on
        if replayed.definition is None:
            raise TableNotFound(f"Table not found: {source.name} did not exist at that time")
        table = resuming
        if table is None:
            summary = {"SourceTableArn": source.arn(ctx.region, ctx.settings.account_id),
                       "RestoreDateTime": until_ms / 1000, "RestoreInProgress": True}
            table = restore.restored_definition(
                ctx, outbox.definition_table(replayed.definition), target, request, summary,
                {"region": ctx.region, "table": source.name, "table_id": source.table_id,
                 "until_ms": until_ms, "request": _overrides(request)})
            await restore.create(ctx, table)
    except BaseException:
        service.pitr.release(pitr_table)
        raise
    items = replayed.items
    service.spawn(restore.load(ctx, table, lambda: iter(items),
                               lambda: service.pitr.release(pitr_table)),
                  f"restore {table.name}")
    return table


def _overrides(request: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in request.items() if k.endswith("Override")}


async def resume_restore(ctx: EngineContext, service: BackupService, table: TableDef) -> None:
    """A point-in-time restore that a restart cut short: replay and load it again."""
    source = table.restore_source or {}
    live = ctx.catalog.get(str(source.get("table")))
    if live is None or live.table_id != source.get("table_id"):
        await restore.abandon(ctx, table, "its source table no longer exists")
        return
    try:
        await _start(ctx, service, live, table.name, int(source["until_ms"]),
                     dict(source.get("request") or {}), resuming=table)
    except Exception as exc:
        await restore.abandon(ctx, table, f"its point in time cannot be replayed: {exc}")


def resume_restores(ctx: EngineContext, service: BackupService) -> None:
    """At start: continue the restores this region was running when it stopped."""
    for table in ctx.catalog.tables():
        source = table.restore_source
        if not table.restoring or source is None or source.get("region") != ctx.region:
            continue
        if "backup_arn" in source:
            coro = backups.resume_restore(ctx, service, table)
        else:
            coro = resume_restore(ctx, service, table)
        service.spawn(coro, f"resume restore {table.name}")
