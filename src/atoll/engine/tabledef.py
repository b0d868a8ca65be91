"""Table definitions: parsing CreateTable, keys of items, DescribeTable's answer."""

from __future__ import annotations

import re
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from atoll.engine import options
from atoll.engine.indexdef import GSI, LSI, IndexDef, parse_indexes
from atoll.errors import KeySchemaMismatch, ResourceNotFound, ValidationError
from atoll.model.keys import (
    MAX_PARTITION_KEY_BYTES,
    MAX_SORT_KEY_BYTES,
    check_key_size,
    encode_key_value,
    partition_hash,
)
from atoll.model.values import check_value
from atoll.streams.spec import label_at, stream_arn, wanted_view_type

_TABLE_NAME_RE = re.compile(r"[a-zA-Z0-9_.-]+")
_ARN_RE = re.compile(r"arn:[^:]*:dynamodb:[^:]*:[^:]*:table/([^/]+)\Z")

EncodedKey = tuple[int, bytes, bytes]  # (hash, pk bytes, sk bytes)
MAX_TAGS = 50

DEFAULT_ACCOUNT = "000000000000"  # the account id in ARNs unless a node is told another


def table_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:dynamodb:{region}:{account}:table/{name}"


def table_name_of(value: str) -> str:
    """The table name in a TableName parameter (which may also be the table's ARN)."""
    match = _ARN_RE.match(value)
    name = match.group(1) if match else value
    errors = []
    if len(name) < 3:
        errors.append(f"Value '{name}' at 'tableName' failed to satisfy constraint: "
                      "Member must have length greater than or equal to 3")
    elif len(name) > 255:
        errors.append(f"Value '{name}' at 'tableName' failed to satisfy constraint: "
                      "Member must have length less than or equal to 255")
    if not _TABLE_NAME_RE.fullmatch(name):
        errors.append(f"Value '{name}' at 'tableName' failed to satisfy constraint: "
                      "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+")
    if errors:
        noun = "error" if len(errors) == 1 else "errors"
        raise ValidationError(f"{len(errors)} validation {noun} detected: " + "; ".join(errors))
    return name


@dataclass
class TableDef:
    name: str
    hash_key: str
    range_key: str | None
    attribute_types: dict[str, str]
    created_at: float  # epoch seconds, by the engine's clock (CreationDateTime)
    billing_mode: str = "PROVISIONED"
    read_capacity: int = 0
    write_capacity: int = 0
    table_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    deletion_protection: bool = False
    billing_changed_at: float | None = None
    tid: int = 0  # storage id, assigned at creation
    indexes: list[IndexDef] = field(default_factory=list)
    next_iid: int = 1  # storage id of the next index created
    ttl_attribute: str | None = None  # TimeToLive attribute when TTL is enabled
    tags: dict[str, str] = field(default_factory=dict)
    # options kept and described back (atoll.engine.options)
    options: dict[str, Any] = field(default_factory=dict)
    # RestoreSummary of a table made by a restore, and (while it loads) where from and
    # by which region (atoll.engine.restore)
    restore: dict[str, Any] | None = None
    restore_source: dict[str, Any] | None = None
    stream_view_type: str | None = None  # the enabled stream's view type; None: no stream
    stream_label: str | None = None  # the latest stream's label (kept once it is disabled)
    stream_sid: int = 0  # this region's storage id of the enabled stream (not replicated)

    @property
    def restoring(self) -> bool:
        """A restore is still loading the table: it is CREATING, not yet usable."""
        return self.restore is not None and bool(self.restore.get("RestoreInProgress"))

    @property
    def hash_type(self) -> str:
        return self.attribute_types[self.hash_key]

    @property
    def range_type(self) -> str | None:
        return self.attribute_types[self.range_key] if self.range_key else None

    def key_names(self) -> tuple[str, ...]:
        return (self.hash_key, self.range_key) if self.range_key else (self.hash_key,)

    def index(self, name: str) -> IndexDef:
        for index in self.indexes:
            if index.name == name:
                return index
        raise ValidationError(f"The table does not have the specified index: {name}")

    def find_index(self, name: str) -> IndexDef | None:
        return next((i for i in self.indexes if i.name == name), None)

    # --- keys --------------------------------------------------------------------------
    def encode_key(self, key: dict[str, Any]) -> EncodedKey:
        """Encode a request's Key map (exactly the key attributes, right types). Its values
        are checked as values first: a malformed number is refused as such, whatever the
        schema (paritysuite conformance suite, error-messages/valueLayers.test.ts).

        The usual key, of string attributes with well-formed values, is encoded on a short
        way (`_plain_string_key`) that accepts only what the checked way accepts, with the
        same bytes; every other key, and every key refused, takes the checked way, so each
        error and its precedence is decided there."""
        if type(key) is dict and len(key) == (2 if self.range_key else 1):
            pk = _plain_string_key(key.get(self.hash_key), self.hash_type,
                                   MAX_PARTITION_KEY_BYTES)
            if pk is not None:
                range_key = self.range_key
                if range_key is None:
                    return partition_hash(pk), pk, b""
                sk = _plain_string_key(key.get(range_key), self.attribute_types[range_key],
                                       MAX_SORT_KEY_BYTES)
                if sk is not None:
                    return partition_hash(pk), pk, sk
        return self._checked_key(key)

    def _checked_key(self, key: Any) -> EncodedKey:
        """encode_key's way for any key: values checked, then the schema, in DynamoDB's
        order of errors."""
        if type(key) is not dict:
            raise KeySchemaMismatch("The provided key element does not match the schema")
        for value in key.values():
            check_value(value)
        expected = 2 if self.range_key else 1
        if len(key) != expected:
            raise KeySchemaMismatch("The provided key element does not match the schema")
        pk = self._key_part(key, self.hash_key, self.hash_type, in_item=False)
        sk = b""
        if self.range_key:
            sk = self._key_part(key, self.range_key, self.range_type or "S", in_item=False)
        return partition_hash(pk), pk, sk

    def encode_item_key(self, item: dict[str, Any]) -> EncodedKey:
        """Encode the key of an item being written (extra attributes are fine)."""
        pk = self._key_part(item, self.hash_key, self.hash_type, in_item=True)
        sk = b""
        if self.range_key:
            sk = self._key_part(item, self.range_key, self.range_type or "S", in_item=True)
        return partition_hash(pk), pk, sk

    def _key_part(self, item: dict[str, Any], name: str, kind: str, in_item: bool) -> bytes:
        value = item.get(name)
        if value is None:
            if in_item:
                raise ValidationError(
                    f"One or more parameter values were invalid: Missing the key {name} in the item")
            raise KeySchemaMismatch("The provided key element does not match the schema")
        if type(value) is not dict or len(value) != 1 or kind not in value:
            if in_item:
                actual = next(iter(value), "?") if type(value) is dict else "?"
                raise KeySchemaMismatch("One or more parameter values were invalid: Type "
                                        f"mismatch for key {name} expected: {kind} actual: {actual}")
            raise KeySchemaMismatch("The provided key element does not match the schema")
        if value[kind] == "":
            raise ValidationError(
                "One or more parameter values are not valid. The AttributeValue for a key "
                f"attribute cannot contain an empty {'binary' if kind == 'B' else 'string'} "
                f"value. Key: {name}")
        encoded = encode_key_value(value, kind)
        check_key_size(encoded, kind, partition=name == self.hash_key)
        return encoded

    def key_of(self, item: dict[str, Any]) -> dict[str, Any]:
        """The key attributes of a stored item."""
        if self.range_key:
            return {self.hash_key: item[self.hash_key], self.range_key: item[self.range_key]}
        return {self.hash_key: item[self.hash_key]}

    # --- persistence and description ---------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TableDef:
        data = dict(data)
        data["indexes"] = [IndexDef.from_json(i) for i in data.get("indexes") or ()]
        return cls(**data)

    def copy(self) -> TableDef:
        return TableDef.from_json(self.to_json())

    def arn(self, region: str, account: str = DEFAULT_ACCOUNT) -> str:
        return table_arn(region, account, self.name)

    def key_schema(self) -> list[dict[str, str]]:
        schema = [{"AttributeName": self.hash_key, "KeyType": "HASH"}]
        if self.range_key:
            schema.append({"AttributeName": self.range_key, "KeyType": "RANGE"})
        return schema

    def describe(self, region: str, item_count: int, size_bytes: int,
                 status: str = "ACTIVE",
                 index_stats: dict[str, tuple[int, int]] | None = None,
                 account: str = DEFAULT_ACCOUNT, global_table: bool = False) -> dict[str, Any]:
        if status == "ACTIVE" and self.restoring:
            status = "CREATING"
        arn = self.arn(region, account)
        description: dict[str, Any] = {
            "AttributeDefinitions": [{"AttributeName": n, "AttributeType": t}
                                     for n, t in self.attribute_types.items()],
            "TableName": self.name,
            "KeySchema": self.key_schema(),
            "TableStatus": status,
            "CreationDateTime": self.created_at,
            "ProvisionedThroughput": {
                "NumberOfDecreasesToday": 0,
                "ReadCapacityUnits": self.read_capacity,
                "WriteCapacityUnits": self.write_capacity,
            },
            "TableSizeBytes": size_bytes,
            "ItemCount": item_count,
            "TableArn": arn,
            "TableId": self.table_id,
            "DeletionProtectionEnabled": self.deletion_protection,
        }
        if self.billing_mode == "PAY_PER_REQUEST" or self.billing_changed_at is not None:
            summary: dict[str, Any] = {"BillingMode": self.billing_mode}
            if self.billing_mode == "PAY_PER_REQUEST":
                summary["LastUpdateToPayPerRequestDateTime"] = (
                    self.billing_changed_at or self.created_at)
            description["BillingModeSummary"] = summary
        if self.stream_view_type is not None:
            description["StreamSpecification"] = {"StreamEnabled": True,
                                                  "StreamViewType": self.stream_view_type}
        if self.stream_label is not None:
            description["LatestStreamLabel"] = self.stream_label
            description["LatestStreamArn"] = stream_arn(region, self.name,
                                                          self.stream_label, account)
        stats = index_stats or {}
        for kind, member in ((GSI, "GlobalSecondaryIndexes"), (LSI, "LocalSecondaryIndexes")):
            described = [i.describe(arn, self.billing_mode, *stats.get(i.name, (0, 0)))
                         for i in self.indexes if i.kind == kind]
            if described:
                description[member] = described
        options.describe(self.options, description, global_table)
        if self.restore is not None:
            description["RestoreSummary"] = dict(self.restore)
        return description


def parse_create_table(request: dict[str, Any], now_s: float) -> TableDef:
    """Validate a CreateTable request (after shape validation) into a TableDef created
    at `now_s`."""
    name = table_name_of(request["TableName"])
    # botocore's current model marks these optional (for other ways of creating tables);
    # a plain CreateTable needs both, so say so instead of failing on a missing member.
    missing = [m for m in ("AttributeDefinitions", "KeySchema") if request.get(m) is None]
    if missing:
        noun = "error" if len(missing) == 1 else "errors"
        raise ValidationError(f"{len(missing)} validation {noun} detected: " + "; ".join(
            f"Value null at '{m[0].lower() + m[1:]}' failed to satisfy constraint: "
            "Member must not be null" for m in missing))
    key_schema = request["KeySchema"]
    definitions = request["AttributeDefinitions"]
    hash_key, range_key = _parse_key_schema(key_schema)
    types: dict[str, str] = {}
    for definition in definitions:
        attr = definition["AttributeName"]
        if attr in types:
            raise ValidationError("One or more parameter values were invalid: Duplicate "
                                  f"AttributeName in AttributeDefinitions: {attr}")
        types[attr] = definition["AttributeType"]
    key_names = [hash_key] + ([range_key] if range_key else [])
    missing = [k for k in key_names if k not in types]
    if missing:
        raise ValidationError(
            "One or more parameter values were invalid: Some index key attributes are not "
            f"defined in AttributeDefinitions. Keys: [{', '.join(key_names)}], "
            f"AttributeDefinitions: [{', '.join(types)}]")
    table = TableDef(name=name, hash_key=hash_key, range_key=range_key, attribute_types=types,
                     created_at=now_s)
    apply_billing(table, request, creating=True, now_s=now_s)
    table.indexes = parse_indexes(request, hash_key, range_key, table.billing_mode)
    table.next_iid = len(table.indexes) + 1
    table.tags = tags_of(request)
    if len(table.tags) > MAX_TAGS:
        raise ValidationError("One or more parameter values were invalid: The number of tags "
                              f"exceeds the limit of {MAX_TAGS}")
    if not table.indexes and len(types) != len(key_names):
        raise ValidationError(
            "One or more parameter values were invalid: Number of attributes in KeySchema does "
            "not exactly match number of attributes defined in AttributeDefinitions")
    check_index_attributes(table)
    table.deletion_protection = bool(request.get("DeletionProtectionEnabled", False))
    table.options = options.parse_create(request, table.billing_mode)
    spec = request.get("StreamSpecification")
    if spec is not None:
        table.stream_view_type = wanted_view_type(spec)
        if table.stream_view_type is not None:
            table.stream_label = label_at(int(round(now_s * 1000)))
    return table


# "Tagging restrictions in DynamoDB": letters, white space, numbers and + - = . _ : /
_TAG_TEXT_RE = re.compile(r"[\w\s+\-=.:/]*")
_TAG_PATTERN = r"[\p{L}\p{Z}\p{N}_.:/=+\-]*"


# The merge rule of a table's items across regions (engine/causal.py): attribute-level
# (the default) or, tagged `atoll:merge = item`, DynamoDB global tables' whole-item rule.
MERGE_TAG = "atoll:merge"
MERGE_RULES = ("attribute", "item")


def tags_of(request: dict[str, Any]) -> dict[str, str]:
    """The Tags list of a CreateTable or TagResource request, validated: characters as
    the Developer Guide's "Tagging restrictions in DynamoDB" allows them (refused, like
    the lengths the service model bounds, as request-validation constraints), no key in
    the reserved aws: namespace, and atoll:merge naming a merge rule."""
    tags: dict[str, str] = {}
    errors: list[str] = []
    for position, tag in enumerate(request.get("Tags") or (), 1):
        for member in ("Key", "Value"):
            text = tag[member]
            if not _TAG_TEXT_RE.fullmatch(text):
                errors.append(f"Value '{text}' at 'tags.{position}.member.{member.lower()}' "
                              "failed to satisfy constraint: Member must satisfy regular "
                              f"expression pattern: {_TAG_PATTERN}")
    if errors:
        noun = "error" if len(errors) == 1 else "errors"
        raise ValidationError(f"{len(errors)} validation {noun} detected: " + "; ".join(errors))
    for tag in request.get("Tags") or ():
        key = tag["Key"]
        if key.startswith("aws:"):
            raise ValidationError("One or more parameter values were invalid: Tag keys "
                                  "starting with 'aws:' are reserved for system use")
        if key == MERGE_TAG and tag["Value"] not in MERGE_RULES:
            raise ValidationError(f"One or more parameter values were invalid: Tag {MERGE_TAG} "
                                  f"must be one of: {', '.join(MERGE_RULES)}")
        tags[key] = tag["Value"]
    return tags


def check_index_attributes(table: TableDef) -> None:
    """Every index key attribute is defined, as a scalar, and every definition is used."""
    used = list(table.key_names())
    for index in table.indexes:
        missing = [k for k in index.key_names() if k not in table.attribute_types]
        if missing:
            raise ValidationError(
                "One or more parameter values were invalid: Some index key attributes are not "
                f"defined in AttributeDefinitions. Keys: [{', '.join(index.key_names())}], "
                f"AttributeDefinitions: [{', '.join(table.attribute_types)}]")
        used += [k for k in index.key_names() if k not in used]
    unused = [n for n in table.attribute_types if n not in used]
    if unused:
        raise ValidationError(
            "One or more parameter values were invalid: Some AttributeDefinitions are not used. "
            f"AttributeDefinitions: [{', '.join(table.attribute_types)}], keys used: "
            f"[{', '.join(used)}]")


def index_not_found(table: TableDef, name: str) -> ResourceNotFound:
    return ResourceNotFound(f"Requested resource not found: Index: {name} not found in "
                            f"table {table.name}")


def _parse_key_schema(key_schema: list[dict[str, str]]) -> tuple[str, str | None]:
    if not key_schema or len(key_schema) > 2:
        raise ValidationError("1 validation error detected: Value '" + str(key_schema) +
                              "' at 'keySchema' failed to satisfy constraint: Member must have "
                              "length less than or equal to 2")
    if key_schema[0]["KeyType"] != "HASH":
        raise ValidationError("Invalid KeySchema: The first KeySchemaElement is not a HASH key type")
    if len(key_schema) == 2:
        if key_schema[1]["KeyType"] != "RANGE":
            raise ValidationError(
                "Invalid KeySchema: The second KeySchemaElement is not a RANGE key type")
        if key_schema[0]["AttributeName"] == key_schema[1]["AttributeName"]:
            raise ValidationError("Both the Hash Key and the Range Key element in the KeySchema "
                                  "have the same name")
        return key_schema[0]["AttributeName"], key_schema[1]["AttributeName"]
    return key_schema[0]["AttributeName"], None


def apply_billing(table: TableDef, request: dict[str, Any], creating: bool, now_s: float) -> None:
    """BillingMode and ProvisionedThroughput of a CreateTable/UpdateTable into `table`;
    a change of mode is dated `now_s`."""
    mode = request.get("BillingMode") or (table.billing_mode if not creating else "PROVISIONED")
    throughput = request.get("ProvisionedThroughput")
    if mode == "PAY_PER_REQUEST":
        if throughput is not None:
            raise ValidationError(
                "One or more parameter values were invalid: Neither ReadCapacityUnits nor "
                "WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST")
        if table.billing_mode != "PAY_PER_REQUEST" and not creating:
            table.billing_changed_at = now_s
        table.billing_mode = mode
        table.read_capacity = table.write_capacity = 0
        return
    if throughput is None:
        if creating or table.billing_mode == "PAY_PER_REQUEST":
            raise ValidationError(
                "One or more parameter values were invalid: ReadCapacityUnits and "
                "WriteCapacityUnits must both be specified when BillingMode is PROVISIONED")
        return
    if table.billing_mode != mode and not creating:
        table.billing_changed_at = now_s
    table.billing_mode = mode
    table.read_capacity = int(throughput["ReadCapacityUnits"])
    table.write_capacity = int(throughput["WriteCapacityUnits"])


def _plain_string_key(value: Any, kind: str, max_bytes: int) -> bytes | None:
    """The key bytes of `value` when it is a well-formed value of a string key attribute
    (`kind` "S"): {"S": a non-empty str} whose UTF-8 fits `max_bytes`. None for anything
    else: the checked way (TableDef._checked_key) then encodes or refuses it. What this
    accepts, check_value and _key_part accept too, and encode to these bytes."""
    if kind != "S" or type(value) is not dict or len(value) != 1:
        return None
    text = value.get("S")
    if type(text) is not str or not text:
        return None
    encoded = text.encode()
    return encoded if len(encoded) <= max_bytes else None
