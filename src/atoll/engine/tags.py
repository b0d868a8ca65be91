"""Tags (TagResource, UntagResource, ListTagsOfResource) and the account-level answers
(DescribeLimits, DescribeEndpoints).

Tags live in the table definition, so they persist and replicate with it; a change is an
ordinary definition rewrite under the DDL lock.
"""

from __future__ import annotations

import re
from typing import Any

from atoll.engine import ddl
from atoll.engine.context import EngineContext
from atoll.engine.tabledef import MAX_TAGS, TableDef, tags_of
from atoll.errors import ResourceNotFound, ValidationError

ENDPOINT_CACHE_MINUTES = 1440
ACCOUNT_MAX_CAPACITY_UNITS = 80_000
TABLE_MAX_CAPACITY_UNITS = 40_000

_TABLE_ARN_RE = re.compile(r"arn:[^:]+:dynamodb:[^:]*:[^:]*:table/([a-zA-Z0-9_.-]{3,255})\Z")


def _table_name_of(arn: str) -> str:
    match = _TABLE_ARN_RE.match(arn)
    if match is None:
        raise ValidationError(f"Invalid TableArn: Invalid ResourceArn provided as input {arn}")
    return match.group(1)


def _table_of(ctx: EngineContext, arn: str) -> TableDef:
    table = ctx.catalog.get(_table_name_of(arn))
    if table is None or not table.tid:
        raise ResourceNotFound(f"Requested resource not found: ResourcArn: {arn} not found")
    return table


def _check_not_empty(request: dict[str, Any], member: str, what: str) -> None:
    """An empty Tags or TagKeys list, once the ARN is known to be a table's, is refused
    with DynamoDB's own wording (dynalite's validations/tagResource.js and
    untagResource.js, with their tests recorded against DynamoDB)."""
    _table_name_of(request["ResourceArn"])
    if not request[member]:
        raise ValidationError(f"Atleast one {what} needs to be provided as Input.")


# TagResource and UntagResource answer a success with an empty body, not "{}"
# (alternator's test_tags_return_empty_body, run against DynamoDB too).
_EMPTY_BODY = b""


async def tag_resource(ctx: EngineContext, request: dict[str, Any]) -> bytes:
    new_tags = tags_of(request)
    _check_not_empty(request, "Tags", "Tag")
    async with ctx.catalog.ddl_lock:
        table = _table_of(ctx, request["ResourceArn"])
        merged = {**table.tags, **new_tags}
        if len(merged) > MAX_TAGS:
            raise ValidationError("One or more parameter values were invalid: The number of "
                                  f"tags exceeds the limit of {MAX_TAGS}")
        updated = table.copy()
        updated.tags = merged
        await ddl.replace_definition(ctx, table, updated)
    return _EMPTY_BODY


async def untag_resource(ctx: EngineContext, request: dict[str, Any]) -> bytes:
    _check_not_empty(request, "TagKeys", "Tag Key")
    async with ctx.catalog.ddl_lock:
        table = _table_of(ctx, request["ResourceArn"])
        updated = table.copy()
        for key in request["TagKeys"]:
            updated.tags.pop(key, None)
        await ddl.replace_definition(ctx, table, updated)
    return _EMPTY_BODY


async def list_tags_of_resource(ctx: EngineContext, request: dict[str, Any]) -> dict[str, Any]:
    table = _table_of(ctx, request["ResourceArn"])
    return {"Tags": [{"Key": k, "Value": v} for k, v in table.tags.items()]}


async def describe_limits(ctx: EngineContext, request: dict[str, Any]) -> dict[str, Any]:
    return {
        "AccountMaxReadCapacityUnits": ACCOUNT_MAX_CAPACITY_UNITS,
        "AccountMaxWriteCapacityUnits": ACCOUNT_MAX_CAPACITY_UNITS,
        "TableMaxReadCapacityUnits": TABLE_MAX_CAPACITY_UNITS,
        "TableMaxWriteCapacityUnits": TABLE_MAX_CAPACITY_UNITS,
    }


async def describe_endpoints(ctx: EngineContext, request: dict[str, Any]) -> dict[str, Any]:
    return {"Endpoints": [{"Address": ctx.settings.endpoint_address,
                           "CachePeriodInMinutes": ENDPOINT_CACHE_MINUTES}]}
