"""Checks that a table's secondary indexes match a full recomputation from the table.

Used after ordinary writes, after a GSI backfill and after a crash: every index must hold
exactly the projected items of the base items that carry its key attributes.
"""

from __future__ import annotations

import json
from typing import Any


def scan_all(ddb: Any, table: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    start: dict[str, Any] | None = None
    while True:
        page = ddb.scan(TableName=table, **params,
                        **({"ExclusiveStartKey": start} if start else {}))
        items += page["Items"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return items


def _canon(item: dict[str, Any]) -> str:
    return json.dumps(item, sort_keys=True)


def expected_index(description: dict[str, Any], index: dict[str, Any],
                   items: list[dict[str, Any]]) -> list[str]:
    """The projected items an index must hold, recomputed from the table's items."""
    table_keys = [k["AttributeName"] for k in description["KeySchema"]]
    index_keys = [k["AttributeName"] for k in index["KeySchema"]]
    projection = index["Projection"]
    kinds = {d["AttributeName"]: d["AttributeType"] for d in description["AttributeDefinitions"]}
    wanted = []
    for item in items:
        if not all(k in item and kinds[k] in item[k] for k in index_keys):
            continue  # sparse: not indexed
        if projection["ProjectionType"] == "ALL":
            projected = item
        else:
            names = table_keys + index_keys + projection.get("NonKeyAttributes", [])
            projected = {n: item[n] for n in names if n in item}
        wanted.append(_canon(projected))
    return sorted(wanted)


def check_indexes(ddb: Any, table: str) -> int:
    """Assert that every index of `table` matches its recomputation; returns how many
    index entries were compared."""
    description = ddb.describe_table(TableName=table)["Table"]
    items = scan_all(ddb, table)
    compared = 0
    indexes = (description.get("GlobalSecondaryIndexes", [])
               + description.get("LocalSecondaryIndexes", []))
    for index in indexes:
        actual = sorted(_canon(i) for i in scan_all(ddb, table, IndexName=index["IndexName"],
                                                    Select="ALL_PROJECTED_ATTRIBUTES"))
        expected = expected_index(description, index, items)
        assert actual == expected, (
            f"index {index['IndexName']} differs from its table: "
            f"{len(actual)} entries, {len(expected)} expected")
        compared += len(actual)
    return compared
