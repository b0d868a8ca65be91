"""Tags (TagResource, UntagResource, ListTagsOfResource) and the account-level answers
(DescribeLimits, DescribeEndpoints).

Tags live in the table definition, so they persist and replicate with it; a change is an
ordinary definition rewrite under the DDL lock.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from atoll.engine.tabledef import TableDef
from atoll.errors import ResourceNotFound, ValidationError

if TYPE_CHECKING:
    from atoll.engine.engine import Engine

MAX_TAGS = 50
ENDPOINT_CACHE_MINUTES = 1440
ACCOUNT_MAX_CAPACITY_UNITS = 80_000
TABLE_MAX_CAPACITY_UNITS = 40_000

_TABLE_ARN_RE = re.compile(r"arn:[^:]+:dynamodb:[^:]*:[^:]*:table/([a-zA-Z0-9_.-]{3,255})\Z")


def _table_of(engine: Engine, arn: str) -> TableDef:
    match = _TABLE_ARN_RE.match(arn)
    if match is None:
        raise ValidationError(f"Invalid TableArn: Invalid ResourceArn provided as input {arn}")
    table = engine.catalog.get(match.group(1))
    if table is None or not table.tid:
        raise ResourceNotFound(f"Requested resource not found: ResourcArn: {arn} not found")
    return table


def tags_of(request: dict[str, Any]) -> dict[str, str]:
    """The Tags list of a CreateTable or TagResource request, validated."""
    tags: dict[str, str] = {}
    for tag in request.get("Tags") or ():
        key = tag["Key"]
        if key.startswith("aws:"):
            raise ValidationError("One or more parameter values were invalid: Tag keys "
                                  "starting with 'aws:' are reserved for system use")
        tags[key] = tag["Value"]
    return tags


async def tag_resource(engine: Engine, request: dict[str, Any]) -> dict[str, Any]:
    new_tags = tags_of(request)
    async with engine.catalog.ddl_lock:
        table = _table_of(engine, request["ResourceArn"])
        merged = {**table.tags, **new_tags}
        if len(merged) > MAX_TAGS:
            raise ValidationError("One or more parameter values were invalid: The number of "
                                  f"tags exceeds the limit of {MAX_TAGS}")
        updated = table.copy()
        updated.tags = merged
        await engine.replace_definition(table, updated)
    return {}


async def untag_resource(engine: Engine, request: dict[str, Any]) -> dict[str, Any]:
    async with engine.catalog.ddl_lock:
        table = _table_of(engine, request["ResourceArn"])
        updated = table.copy()
        for key in request["TagKeys"]:
            updated.tags.pop(key, None)
        await engine.replace_definition(table, updated)
    return {}


async def list_tags_of_resource(engine: Engine, request: dict[str, Any]) -> dict[str, Any]:
    table = _table_of(engine, request["ResourceArn"])
    return {"Tags": [{"Key": k, "Value": v} for k, v in table.tags.items()]}


async def describe_limits(engine: Engine, request: dict[str, Any]) -> dict[str, Any]:
    return {
        "AccountMaxReadCapacityUnits": ACCOUNT_MAX_CAPACITY_UNITS,
        "AccountMaxWriteCapacityUnits": ACCOUNT_MAX_CAPACITY_UNITS,
        "TableMaxReadCapacityUnits": TABLE_MAX_CAPACITY_UNITS,
        "TableMaxWriteCapacityUnits": TABLE_MAX_CAPACITY_UNITS,
    }


async def describe_endpoints(engine: Engine, request: dict[str, Any]) -> dict[str, Any]:
    return {"Endpoints": [{"Address": engine.endpoint_address,
                           "CachePeriodInMinutes": ENDPOINT_CACHE_MINUTES}]}
