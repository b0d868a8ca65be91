"""What the translator needs to know of a table: its key and its indexes' keys.

Built from a DescribeTable answer (`TableSchema.from_description`), so the translator
stays pure and the shell decides how fresh the description is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class IndexSchema:
    name: str
    kind: str  # "GSI" or "LSI"
    hash_key: str
    range_key: str | None
    projection_type: str = "ALL"

    def key_names(self) -> tuple[str, ...]:
        return (self.hash_key,) if self.range_key is None else (self.hash_key, self.range_key)


@dataclass(frozen=True)
class TableSchema:
    name: str
    hash_key: str
    range_key: str | None
    types: dict[str, str] = field(default_factory=dict)  # key attribute -> S, N or B
    indexes: dict[str, IndexSchema] = field(default_factory=dict)

    def key_names(self) -> tuple[str, ...]:
        return (self.hash_key,) if self.range_key is None else (self.hash_key, self.range_key)

    @staticmethod
    def from_description(table: dict[str, Any]) -> TableSchema:
        hash_key, range_key = _keys(table["KeySchema"])
        types = {d["AttributeName"]: d["AttributeType"]
                 for d in table.get("AttributeDefinitions", ())}
        indexes: dict[str, IndexSchema] = {}
        for member, kind in (("GlobalSecondaryIndexes", "GSI"), ("LocalSecondaryIndexes", "LSI")):
            for index in table.get(member, ()):
                index_hash, index_range = _keys(index["KeySchema"])
                projection = index.get("Projection", {}).get("ProjectionType", "ALL")
                indexes[index["IndexName"]] = IndexSchema(index["IndexName"], kind, index_hash,
                                                          index_range, projection)
        return TableSchema(table["TableName"], hash_key, range_key, types, indexes)


def _keys(schema: list[dict[str, str]]) -> tuple[str, str | None]:
    hash_key = next(k["AttributeName"] for k in schema if k["KeyType"] == "HASH")
    range_key = next((k["AttributeName"] for k in schema if k["KeyType"] == "RANGE"), None)
    return hash_key, range_key
