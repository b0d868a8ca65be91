"""Global tables: DescribeGlobalTable, ListGlobalTables and UpdateTable's ReplicaUpdates.

Theory of operation: every Atoll table lives in every region of its cluster (a table is
created once, in any region, and replicates everywhere), so each table is a global table
whose replicas are exactly the cluster's regions; a node outside a cluster has one region,
its own. DescribeGlobalTable and ListGlobalTables (the 2017.11.29 API) answer that for
every table. Per-table region sets do not exist: a ReplicaUpdates entry that would add,
change, remove or disassociate one region of one table is refused with a message that
says so, never accepted and ignored.
"""

from __future__ import annotations

from typing import Any

from atoll.engine.context import EngineContext
from atoll.engine.tabledef import TableDef
from atoll.errors import GlobalTableNotFound, ValidationError

_INVALID = "One or more parameter values were invalid: "
MAX_LIST_LIMIT = 100


def regions_of(ctx: EngineContext) -> tuple[str, ...]:
    """The regions every table lives in: the cluster's, or this node's alone."""
    return ctx.settings.replica_regions() or (ctx.region,)


def check_replica_updates(ctx: EngineContext, table: TableDef, request: dict[str, Any]) -> None:
    """Refuse any ReplicaUpdates entry, saying why for the first one."""
    updates = request.get("ReplicaUpdates")
    if updates is None:
        return
    regions = regions_of(ctx)
    listed = ", ".join(regions)
    for entry in updates:
        actions = [a for a in ("Create", "Update", "Delete", "Disassociate")
                   if entry.get(a) is not None]
        if len(actions) != 1:
            raise ValidationError(_INVALID + "exactly one of Create, Update, Delete or "
                                  "Disassociate must be given per replica update")
        action = actions[0]
        region = entry[action]["RegionName"]
        if action == "Create":
            if region in regions:
                raise ValidationError(
                    _INVALID + f"Region {region} is already a replica of table {table.name}: "
                    f"every Atoll table lives in every region of its cluster ({listed})")
            raise ValidationError(
                _INVALID + f"Region {region} is not a region of this Atoll cluster ({listed}); "
                "regions join the cluster through its topology, and every table is in all "
                "of them")
        if region not in regions:
            raise ValidationError(_INVALID + f"Region {region} is not a replica of table "
                                  f"{table.name} (its replicas: {listed})")
        if action == "Update":
            raise ValidationError(
                _INVALID + f"Atoll does not keep per-region settings: the replica of table "
                f"{table.name} in {region} has the table's own settings")
        raise ValidationError(
            _INVALID + f"Cannot remove region {region} from table {table.name}: every Atoll "
            f"table lives in every region of its cluster ({listed}); per-table region sets "
            "are not supported")


def _global_arn(ctx: EngineContext, name: str) -> str:
    return f"arn:aws:dynamodb::{ctx.settings.account_id}:global-table/{name}"


async def describe_global_table(ctx: EngineContext, request: dict[str, Any]) -> dict[str, Any]:
    name = request["GlobalTableName"]
    table = ctx.catalog.get(name)
    if table is None or not table.tid:
        raise GlobalTableNotFound(f"Global table not found: Global table with name: {name} "
                                  "does not exist")
    status = "CREATING" if table.restoring else "ACTIVE"
    return {"GlobalTableDescription": {
        "ReplicationGroup": [{"RegionName": region, "ReplicaStatus": status}
                             for region in regions_of(ctx)],
        "GlobalTableArn": _global_arn(ctx, name),
        "CreationDateTime": table.created_at,
        "GlobalTableStatus": status,
        "GlobalTableName": name,
    }}


async def list_global_tables(ctx: EngineContext, request: dict[str, Any]) -> dict[str, Any]:
    limit = min(int(request.get("Limit", MAX_LIST_LIMIT)), MAX_LIST_LIMIT)
    start = request.get("ExclusiveStartGlobalTableName")
    regions = regions_of(ctx)
    wanted = request.get("RegionName")
    names = ctx.catalog.names() if wanted is None or wanted in regions else []
    if start is not None:
        names = [n for n in names if n > start]
    group = [{"RegionName": region} for region in regions]
    result: dict[str, Any] = {"GlobalTables": [{"GlobalTableName": n, "ReplicationGroup": group}
                                               for n in names[:limit]]}
    if len(names) > limit:
        result["LastEvaluatedGlobalTableName"] = names[limit - 1]
    return result
