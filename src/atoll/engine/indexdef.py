"""Secondary index definitions: parsing CreateTable/UpdateTable input, describing them.

Theory of operation: an `IndexDef` is part of its table's persisted definition. A global
secondary index (GSI) has its own partition key; a local one (LSI) shares the table's
partition key and only changes the sort key. Each index has a small storage id (`iid`)
unique within its table; its rows live in the `index_items` storage table.
Validation mirrors DynamoDB's CreateTable checks: names unique across both kinds, key
attributes defined in AttributeDefinitions (and every definition used by some key),
at most 20 GSIs and 5 LSIs, LSIs only on tables with a sort key, projections well formed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from atoll.engine import options
from atoll.errors import LimitExceeded, ValidationError

MAX_GSIS = 20
MAX_LSIS = 5
MAX_PROJECTED_ATTRIBUTES = 100  # NonKeyAttributes summed over all of a table's indexes

GSI = "GSI"
LSI = "LSI"

_INVALID = "One or more parameter values were invalid: "


@dataclass
class IndexDef:
    name: str
    kind: str  # GSI or LSI
    hash_key: str
    range_key: str | None
    projection: str = "ALL"  # ALL, KEYS_ONLY or INCLUDE
    non_key_attributes: list[str] = field(default_factory=list)
    iid: int = 0
    status: str = "ACTIVE"  # CREATING while a GSI added by UpdateTable is backfilled
    read_capacity: int = 0
    write_capacity: int = 0
    options: dict[str, Any] = field(default_factory=dict)  # atoll.engine.options

    def key_names(self) -> tuple[str, ...]:
        return (self.hash_key, self.range_key) if self.range_key else (self.hash_key,)

    def key_schema(self) -> list[dict[str, str]]:
        schema = [{"AttributeName": self.hash_key, "KeyType": "HASH"}]
        if self.range_key:
            schema.append({"AttributeName": self.range_key, "KeyType": "RANGE"})
        return schema

    def projection_json(self) -> dict[str, Any]:
        projection: dict[str, Any] = {"ProjectionType": self.projection}
        if self.projection == "INCLUDE":
            projection["NonKeyAttributes"] = list(self.non_key_attributes)
        return projection

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IndexDef:
        return cls(**data)

    def describe(self, table_arn: str, billing_mode: str, item_count: int,
                 size_bytes: int) -> dict[str, Any]:
        description: dict[str, Any] = {
            "IndexName": self.name,
            "KeySchema": self.key_schema(),
            "Projection": self.projection_json(),
            "IndexSizeBytes": size_bytes,
            "ItemCount": item_count,
            "IndexArn": f"{table_arn}/index/{self.name}",
        }
        if self.kind == GSI:
            description["IndexStatus"] = self.status
            if self.status == "CREATING":
                description["Backfilling"] = True
            description["ProvisionedThroughput"] = {
                "NumberOfDecreasesToday": 0,
                "ReadCapacityUnits": self.read_capacity if billing_mode != "PAY_PER_REQUEST" else 0,
                "WriteCapacityUnits": self.write_capacity if billing_mode != "PAY_PER_REQUEST" else 0,
            }
            options.describe_index(self.options, description, self.status)
        return description


def parse_index(spec: dict[str, Any], kind: str, table_hash: str, table_range: str | None,
                billing_mode: str) -> IndexDef:
    """One GlobalSecondaryIndexes/LocalSecondaryIndexes entry (already shape-validated)."""
    name = spec["IndexName"]
    schema = spec["KeySchema"]
    if not schema or len(schema) > 2 or schema[0]["KeyType"] != "HASH":
        raise ValidationError(_INVALID + f"Invalid KeySchema for index {name}: the first "
                              "KeySchemaElement must be a HASH key")
    hash_key = schema[0]["AttributeName"]
    range_key = None
    if len(schema) == 2:
        if schema[1]["KeyType"] != "RANGE":
            raise ValidationError(_INVALID + f"Invalid KeySchema for index {name}: the second "
                                  "KeySchemaElement must be a RANGE key")
        range_key = schema[1]["AttributeName"]
        if range_key == hash_key:
            raise ValidationError("Both the Hash Key and the Range Key element in the KeySchema "
                                  "have the same name")
    if kind == LSI:
        if table_range is None:
            raise ValidationError(_INVALID + "Table KeySchema does not have a range key, which "
                                  "is required when specifying a LocalSecondaryIndex")
        if hash_key != table_hash or range_key is None:
            raise ValidationError(_INVALID + "Index KeySchema does not have the same leading "
                                  f"hash key as table KeySchema for index: {name}. index hash "
                                  f"key: {hash_key}, table hash key: {table_hash}")
    projection = spec["Projection"]
    ptype = projection.get("ProjectionType")
    non_key = list(projection.get("NonKeyAttributes") or [])
    if ptype is None:
        raise ValidationError(_INVALID + "Unknown ProjectionType: null")
    if ptype == "INCLUDE":
        if not non_key:
            raise ValidationError(_INVALID + "ProjectionType is INCLUDE, but NonKeyAttributes "
                                  "is not specified")
        if len(set(non_key)) != len(non_key):
            raise ValidationError(_INVALID + "Duplicate attribute names in NonKeyAttributes: "
                                  + ", ".join(non_key))
    elif non_key:
        raise ValidationError(_INVALID + f"ProjectionType is {ptype}, but NonKeyAttributes "
                              "is specified")
    index = IndexDef(name=name, kind=kind, hash_key=hash_key, range_key=range_key,
                     projection=ptype, non_key_attributes=non_key)
    if kind == GSI:
        throughput = spec.get("ProvisionedThroughput")
        if billing_mode == "PAY_PER_REQUEST":
            if throughput is not None:
                raise ValidationError(_INVALID + "ProvisionedThroughput should not be "
                                      f"specified for index: {name} when BillingMode is "
                                      "PAY_PER_REQUEST")
        else:
            if throughput is None:
                raise ValidationError(_INVALID + "ProvisionedThroughput must be specified for "
                                      f"index: {name}")
            index.read_capacity = int(throughput["ReadCapacityUnits"])
            index.write_capacity = int(throughput["WriteCapacityUnits"])
        index.options = options.index_options(spec, billing_mode, name)
    return index


def parse_indexes(request: dict[str, Any], table_hash: str, table_range: str | None,
                  billing_mode: str) -> list[IndexDef]:
    """Every index of a CreateTable request, with iids assigned 1..n."""
    gsis = request.get("GlobalSecondaryIndexes")
    lsis = request.get("LocalSecondaryIndexes")
    if gsis is not None and not gsis:
        raise ValidationError(_INVALID + "List of GlobalSecondaryIndexes is empty")
    if lsis is not None and not lsis:
        raise ValidationError(_INVALID + "List of LocalSecondaryIndexes is empty")
    if gsis and len(gsis) > MAX_GSIS:
        raise ValidationError(f"GlobalSecondaryIndex count exceeds the per-table limit of {MAX_GSIS}")
    if lsis and len(lsis) > MAX_LSIS:
        raise ValidationError(f"Cannot have more than {MAX_LSIS} local secondary indexes per table")
    indexes = [parse_index(s, GSI, table_hash, table_range, billing_mode) for s in gsis or ()]
    indexes += [parse_index(s, LSI, table_hash, table_range, billing_mode) for s in lsis or ()]
    check_index_set(indexes)
    for iid, index in enumerate(indexes, 1):
        index.iid = iid
    return indexes


def check_index_set(indexes: list[IndexDef]) -> None:
    seen: set[str] = set()
    for index in indexes:
        if index.name in seen:
            raise ValidationError(_INVALID + f"Duplicate index name: {index.name}")
        seen.add(index.name)
    projected = sum(len(i.non_key_attributes) for i in indexes)
    if projected > MAX_PROJECTED_ATTRIBUTES:
        raise LimitExceeded("The number of attributes in key schema and projection of all "
                            f"secondary indexes exceeds the per-table limit of "
                            f"{MAX_PROJECTED_ATTRIBUTES}")
