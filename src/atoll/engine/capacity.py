"""Consumed capacity: DynamoDB's capacity-unit arithmetic for ReturnConsumedCapacity.

Theory of operation: Atoll does not throttle, but SDKs and cost models read the
ConsumedCapacity DynamoDB reports, so it is computed the same way:
- a read costs one unit per 4 KB of item data (rounded up, at least one unit); an
  eventually consistent read half that. GetItem counts its item; Query and Scan count the
  total size of the items they read (before any filter), rounded up once.
- a write costs one unit per 1 KB of the larger of the old and new item (at least one).
  Each index row written or removed costs its own write units, charged to that index.
- transactions cost double: every read or write of TransactGetItems/TransactWriteItems
  is counted twice (DynamoDB's prepare + commit).
With ReturnConsumedCapacity=TOTAL the answer has the total per table; with INDEXES it
also splits it into Table, GlobalSecondaryIndexes and LocalSecondaryIndexes.
ReturnItemCollectionMetrics=SIZE (tables with an LSI) is answered from one SUM over the
written partition key's items and LSI rows.
"""

from __future__ import annotations

from typing import Any

import orjson

from atoll.engine.context import EngineContext
from atoll.engine.tabledef import TableDef
from atoll.model.keys import encode_key_value, partition_hash

READ_UNIT_BYTES = 4096
WRITE_UNIT_BYTES = 1024
TRANSACTION_FACTOR = 2


def wanted(request: dict[str, Any]) -> str | None:
    mode = request.get("ReturnConsumedCapacity")
    return mode if mode in ("TOTAL", "INDEXES") else None


def read_units(size_bytes: int, consistent: bool) -> float:
    units = float(max(1, -(-size_bytes // READ_UNIT_BYTES)))
    return units if consistent else units / 2


def write_units(size_bytes: int) -> float:
    return float(max(1, -(-size_bytes // WRITE_UNIT_BYTES)))


class Meter:
    """Accumulates one request's units, per table and per index."""

    def __init__(self, mode: str | None, kind: str) -> None:
        self.mode = mode
        self.kind = kind  # "read" or "write"
        self._tables: dict[str, tuple[TableDef, list[float], dict[str, float]]] = {}

    def add(self, table: TableDef, units: float,
            index_units: dict[str, float] | None = None) -> None:
        if self.mode is None:
            return
        entry = self._tables.get(table.name)
        if entry is None:
            entry = self._tables[table.name] = (table, [0.0], {})
        entry[1][0] += units
        for name, value in (index_units or {}).items():
            entry[2][name] = entry[2].get(name, 0.0) + value

    def add_index(self, table: TableDef, index_name: str, units: float) -> None:
        self.add(table, 0.0, {index_name: units})

    def scale(self, factor: float) -> None:
        for _table, units, index_units in self._tables.values():
            units[0] *= factor
            for name in index_units:
                index_units[name] *= factor

    def _one(self, table: TableDef, units: float, index_units: dict[str, float]
             ) -> dict[str, Any]:
        total = units + sum(index_units.values())
        flavour = "ReadCapacityUnits" if self.kind == "read" else "WriteCapacityUnits"
        consumed: dict[str, Any] = {"TableName": table.name, "CapacityUnits": total,
                                    flavour: total}
        if self.mode == "INDEXES":
            consumed["Table"] = {"CapacityUnits": units, flavour: units}
            kinds = {i.name: i.kind for i in table.indexes}
            for kind, member in (("GSI", "GlobalSecondaryIndexes"),
                                 ("LSI", "LocalSecondaryIndexes")):
                part = {name: {"CapacityUnits": value, flavour: value}
                        for name, value in index_units.items() if kinds.get(name) == kind}
                if part:
                    consumed[member] = part
        return consumed

    def single(self) -> dict[str, Any] | None:
        """ConsumedCapacity of a one-table operation (None when not asked for)."""
        if self.mode is None or not self._tables:
            return None
        table, units, index_units = next(iter(self._tables.values()))
        return self._one(table, units[0], index_units)

    def listed(self) -> list[dict[str, Any]] | None:
        """ConsumedCapacity of a multi-table operation (batches, transactions)."""
        if self.mode is None:
            return None
        return [self._one(t, u[0], i) for t, u, i in self._tables.values()]


GIGABYTE = 1 << 30


def item_collection_metrics(ctx: EngineContext, request: dict[str, Any], table: TableDef,
                            key: dict[str, Any]) -> dict[str, Any] | None:
    """ItemCollectionMetrics for a write to `key` (only tables with an LSI have item
    collections; DynamoDB reports an estimate range in GB)."""
    if request.get("ReturnItemCollectionMetrics") != "SIZE":
        return None
    if not any(i.kind == "LSI" for i in table.indexes):
        return None
    value = key[table.hash_key]
    pk = encode_key_value(value, table.hash_type)
    size_gb = ctx.storage.collection_size(table.tid, partition_hash(pk), pk) / GIGABYTE
    return {"ItemCollectionKey": {table.hash_key: value},
            "SizeEstimateRangeGB": [float(int(size_gb)), float(int(size_gb) + 1)]}


def item_collection_metrics_by_table(ctx: EngineContext, request: dict[str, Any],
                                     written: list[tuple[TableDef, dict[str, Any]]]
                                     ) -> dict[str, list[dict[str, Any]]] | None:
    """ItemCollectionMetrics of a multi-item write: per table, one entry per item
    collection written (BatchWriteItem, TransactWriteItems)."""
    if request.get("ReturnItemCollectionMetrics") != "SIZE":
        return None
    result: dict[str, list[dict[str, Any]]] = {}
    seen: set[tuple[str, str]] = set()
    for table, key in written:
        identity = (table.name, orjson.dumps(key.get(table.hash_key)).decode())
        if identity in seen:
            continue
        seen.add(identity)
        metrics = item_collection_metrics(ctx, request, table, key)
        if metrics is not None:
            result.setdefault(table.name, []).append(metrics)
    return result or None


def attach(result: Any, name: str, value: Any) -> Any:
    """Add a member to a response that may still be raw JSON bytes (the fast paths)."""
    if value is None:
        return result
    if type(result) is bytes:
        encoded = orjson.dumps(value)
        if result == b"{}":
            return b'{"' + name.encode() + b'":' + encoded + b"}"
        return result[:-1] + b',"' + name.encode() + b'":' + encoded + b"}"
    result[name] = value
    return result
