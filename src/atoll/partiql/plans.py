"""Statements translated into the DynamoDB requests the engine already runs.

Theory of operation (DynamoDB developer guide, "PartiQL select/insert/update/delete
statements for DynamoDB"):

SELECT. The WHERE clause's top-level AND terms are sorted into
- a partition key condition: `pk = v`, `pk IN [v, ...]` or `pk = v1 OR pk = v2` (with an
  index, `"table"."index"`, the index's partition key);
- a sort key condition: `=`, `<`, `<=`, `>`, `>=`, `BETWEEN`, `begins_with` (a `>=` and a
  `<=` together become one BETWEEN);
- everything else.
Without a partition key condition the statement is a Scan with the whole WHERE as its
filter: DynamoDB runs such a statement as a full table scan rather than refusing it (its
only refusal is an IAM policy denying `dynamodb:PartiQLSelect` when
`dynamodb:FullTableScan` is true, which Atoll's keys and roles do not model).
With one, each partition key value is one read: a GetItem when the read names the full
primary key of the table, else a Query (KeyConditionExpression from the key conditions,
FilterExpression from the terms on other attributes). Terms a read cannot push down (a
GetItem has no filter; a Query's filter may not name its key attributes, e.g. `sk <> 1`)
become the plan's `residual`, a condition the shell evaluates on each item read (a
Limit still counts the items read, as DynamoDB's does). A
projection asks the engine for the projected top-level attributes (and those the residual
needs); the shell then picks the paths (`results.reshape`).

INSERT is a PutItem conditioned on `attribute_not_exists(<partition key>)` (DynamoDB's
INSERT never overwrites: DuplicateItemException). UPDATE is an UpdateItem: the WHERE
must hold an equality on every key attribute, the other terms become its
ConditionExpression, and `attribute_exists(<partition key>)` is added because DynamoDB's
UPDATE of a missing item fails with ConditionalCheckFailedException instead of creating
it. DELETE is a DeleteItem keyed the same way, its other terms its ConditionExpression.
A DELETE with other terms on an item that does not exist fails its condition, as the
DeleteItem it stands for does. EXISTS(SELECT ...) is a TransactWriteItems ConditionCheck:
the item must exist and the other terms hold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from atoll.errors import ValidationError
from atoll.model.values import decode_binary
from atoll.partiql import nodes as n
from atoll.partiql.render import Expressions, tuple_entries
from atoll.partiql.results import labels_of
from atoll.partiql.schema import TableSchema

MAX_KEY_READS = 50  # partition key values one SELECT may name (DynamoDB: "at max 50")
STATEMENT = "statement"
BATCH = "batch"
TRANSACTION = "transaction"

INCOMPLETE_KEY = "Where clause does not contain a mandatory equality on all key attributes"
NOT_ON_INDEX = "This operation is not supported on an index"
_RETURNING_WORDS = {"ALL_OLD": "ALL OLD *", "UPDATED_OLD": "MODIFIED OLD *",
                    "ALL_NEW": "ALL NEW *", "UPDATED_NEW": "MODIFIED NEW *"}
_FLIPPED = {"=": "=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


@dataclass(frozen=True)
class Residual:
    """A condition evaluated by the shell on each item a read returned."""

    condition: str
    names: dict[str, str]
    values: dict[str, Any]


@dataclass(frozen=True)
class SelectPlan:
    table: str
    reads: tuple[tuple[str, dict[str, Any]], ...]  # (operation, request), run in order
    projection: tuple[n.Path, ...] | None  # None: every attribute (`*`)
    residual: Residual | None = None


@dataclass(frozen=True)
class WritePlan:
    kind: str  # INSERT, UPDATE, DELETE or EXISTS
    table: str
    operation: str  # PutItem, UpdateItem, DeleteItem or ConditionCheck
    request: dict[str, Any]
    returning: str | None = None


# --- SELECT --------------------------------------------------------------------------------

def translate_select(select: n.Select, schema: TableSchema, statement: str,
                     mode: str = STATEMENT, consistent_read: bool = False) -> SelectPlan:
    """`mode`: where the statement runs; a batch or a transaction reads one item by its
    full primary key and nothing else."""
    hash_key, range_key, index_name = _read_keys(select, schema, mode)
    if consistent_read and index_name is not None and schema.indexes[index_name].kind == "GSI":
        raise ValidationError("Strongly consistent read is not supported on Global Secondary "
                              "Indexes")
    if select.projection is not None:
        labels_of(select.projection)  # duplicate names are refused before anything runs
    terms = n.conjuncts(select.where)
    hash_values, hash_term = _hash_condition(terms, hash_key)
    sort, sort_terms = _sort_condition(terms, range_key, hash_term)
    used = sort_terms | ({hash_term} if hash_term is not None else set())
    rest = [term for i, term in enumerate(terms) if i not in used]
    if mode != STATEMENT:
        if hash_term is not None and not isinstance(terms[hash_term], n.Compare):
            hash_values = None  # IN or OR: not the equality a single-item read needs
        return _single_item(select, schema, statement, mode, hash_values, sort, rest)
    forward = _check_order(select, hash_key, range_key, hash_values)
    if hash_values is None:
        return _scan(select, statement, index_name)
    for value in hash_values:
        _check_key_type(schema, hash_key, value)
    hash_values = _ordered_values(select, hash_key, hash_values)
    full_key = index_name is None and (range_key is None or (sort is not None and sort[0] == "="))
    if full_key and sort is not None:
        _check_key_type(schema, range_key or "", sort[1][0])
    # a GetItem filters nothing; a Query's filter may not name the keys it reads by
    keys = {hash_key, range_key or hash_key}
    pushed = [not full_key and not _heads(term) & keys for term in rest]
    residual_terms = [term for term, push in zip(rest, pushed) if not push]
    filter_terms = [term for term, push in zip(rest, pushed) if push]
    residual = _residual(residual_terms, statement)
    heads = _projection_heads(select.projection, residual_terms)
    reads: list[tuple[str, dict[str, Any]]] = []
    for value in hash_values:
        expressions = Expressions(statement)
        request: dict[str, Any] = {"TableName": select.source.table}
        if full_key:
            key = {hash_key: value}
            if range_key is not None and sort is not None:
                key[range_key] = sort[1][0]
            request["Key"] = key
            operation = "GetItem"
        else:
            operation = "Query"
            if index_name is not None:
                request["IndexName"] = index_name
            request["KeyConditionExpression"] = _key_condition(
                expressions, hash_key, value, range_key, sort)
            if filter_terms:
                request["FilterExpression"] = expressions.condition(_all_of(filter_terms))
            if forward is not None:
                request["ScanIndexForward"] = forward
        if heads:
            request["ProjectionExpression"] = expressions.projection(heads)
        reads.append((operation, expressions.attach(request)))
    return SelectPlan(select.source.table, tuple(reads), select.projection, residual)


def _read_keys(select: n.Select, schema: TableSchema, mode: str
               ) -> tuple[str, str | None, str | None]:
    """(partition key, sort key, index name) of what the SELECT reads."""
    index_name = select.source.index
    if index_name is None:
        return schema.hash_key, schema.range_key, None
    index = schema.indexes.get(index_name)
    if index is None:
        raise ValidationError("The table does not have the specified index")
    if mode == TRANSACTION:
        raise ValidationError("Reads on indices are not supported within transactions.")
    if mode == BATCH:
        raise ValidationError(_single_item_message(mode))
    return index.hash_key, index.range_key, index_name


def _scan(select: n.Select, statement: str, index_name: str | None) -> SelectPlan:
    expressions = Expressions(statement)
    request: dict[str, Any] = {"TableName": select.source.table}
    if index_name is not None:
        request["IndexName"] = index_name
    if select.where is not None:
        request["FilterExpression"] = expressions.condition(select.where)
    heads = _projection_heads(select.projection, [])
    if heads:
        request["ProjectionExpression"] = expressions.projection(heads)
    return SelectPlan(select.source.table, (("Scan", expressions.attach(request)),),
                      select.projection)


def _single_item_message(mode: str) -> str:
    operation = "BatchExecuteStatement" if mode == BATCH else "ExecuteTransaction"
    return f"Select statements within {operation} must specify the primary key in the where clause."


def _single_item(select: n.Select, schema: TableSchema, statement: str, mode: str,
                 hash_values: list[dict[str, Any]] | None,
                 sort: tuple[str, list[dict[str, Any]]] | None, rest: list[n.Node]
                 ) -> SelectPlan:
    """A batch's or a transaction's SELECT: one GetItem by the full primary key."""
    full = (hash_values is not None and len(hash_values) == 1 and not rest
            and (schema.range_key is None or (sort is not None and sort[0] == "=")))
    if not full or select.order_by:
        raise ValidationError(_single_item_message(mode))
    assert hash_values is not None
    key = {schema.hash_key: hash_values[0]}
    _check_key_type(schema, schema.hash_key, hash_values[0])
    if schema.range_key is not None and sort is not None:
        _check_key_type(schema, schema.range_key, sort[1][0])
        key[schema.range_key] = sort[1][0]
    expressions = Expressions(statement)
    request: dict[str, Any] = {"TableName": select.source.table, "Key": key}
    heads = _projection_heads(select.projection, [])
    if heads:
        request["ProjectionExpression"] = expressions.projection(heads)
    return SelectPlan(select.source.table, (("GetItem", expressions.attach(request)),),
                      select.projection)


def _hash_condition(terms: list[n.Node], hash_key: str
                    ) -> tuple[list[dict[str, Any]] | None, int | None]:
    """The partition key values the WHERE names, and the index of the term naming them."""
    for i, term in enumerate(terms):
        values = _hash_values(term, hash_key)
        if values is not None:
            unique: dict[str, dict[str, Any]] = {}
            for value in values:
                unique.setdefault(json.dumps(value, sort_keys=True), value)
            if len(unique) > MAX_KEY_READS:
                raise ValidationError("Too many decomposed read operations for a given query.")
            return list(unique.values()), i
    return None, None


def _hash_values(term: n.Node, hash_key: str) -> list[dict[str, Any]] | None:
    if isinstance(term, n.Compare) and term.op == "=":
        side = _path_value(term.left, term.right, hash_key)
        return [side] if side is not None else None
    if isinstance(term, n.In) and not term.negated and isinstance(term.operand, n.Path) \
            and term.operand.is_name(hash_key) and all(isinstance(i, n.Value) for i in term.items):
        return [item.value for item in term.items if isinstance(item, n.Value)]
    if isinstance(term, n.Or):
        values: list[dict[str, Any]] = []
        for item in term.items:
            inner = _hash_values(item, hash_key)
            if inner is None:
                return None
            values.extend(inner)
        return values
    return None


def _path_value(a: n.Node, b: n.Node, name: str) -> dict[str, Any] | None:
    """The value of `name = value` (either way round), else None."""
    if isinstance(a, n.Path) and a.is_name(name) and isinstance(b, n.Value):
        return b.value
    if isinstance(b, n.Path) and b.is_name(name) and isinstance(a, n.Value):
        return a.value
    return None


def _sort_condition(terms: list[n.Node], range_key: str | None, hash_term: int | None
                    ) -> tuple[tuple[str, list[dict[str, Any]]] | None, set[int]]:
    """The sort key condition a Query can take, and the indexes of the terms it used."""
    if range_key is None or hash_term is None:
        return None, set()
    found = [(i, c) for i, term in enumerate(terms) if i != hash_term
             and (c := _sort_term(term, range_key)) is not None]
    if not found:
        return None, set()
    first_at, first = found[0]
    if first[0] in (">=", "<="):
        wanted = "<=" if first[0] == ">=" else ">="
        for i, other in found[1:]:
            if other[0] == wanted:
                low, high = (first, other) if first[0] == ">=" else (other, first)
                return ("BETWEEN", [low[1][0], high[1][0]]), {first_at, i}
    return first, {first_at}


def _sort_term(term: n.Node, range_key: str) -> tuple[str, list[dict[str, Any]]] | None:
    if isinstance(term, n.Compare) and term.op in _FLIPPED:
        if isinstance(term.left, n.Path) and term.left.is_name(range_key) \
                and isinstance(term.right, n.Value):
            return term.op, [term.right.value]
        if isinstance(term.right, n.Path) and term.right.is_name(range_key) \
                and isinstance(term.left, n.Value):
            return _FLIPPED[term.op], [term.left.value]
    if isinstance(term, n.Between) and not term.negated and isinstance(term.operand, n.Path) \
            and term.operand.is_name(range_key) and isinstance(term.low, n.Value) \
            and isinstance(term.high, n.Value):
        return "BETWEEN", [term.low.value, term.high.value]
    if isinstance(term, n.Call) and term.name == "begins_with" and len(term.args) == 2 \
            and isinstance(term.args[0], n.Path) and term.args[0].is_name(range_key) \
            and isinstance(term.args[1], n.Value):
        return "begins_with", [term.args[1].value]
    return None


def _key_condition(expressions: Expressions, hash_key: str, value: dict[str, Any],
                   range_key: str | None, sort: tuple[str, list[dict[str, Any]]] | None) -> str:
    text = f"{expressions.name(hash_key)} = {expressions.value(value)}"
    if sort is None or range_key is None:
        return text
    op, values = sort
    name = expressions.name(range_key)
    if op == "BETWEEN":
        return (f"{text} AND {name} BETWEEN {expressions.value(values[0])} "
                f"AND {expressions.value(values[1])}")
    if op == "begins_with":
        return f"{text} AND begins_with({name}, {expressions.value(values[0])})"
    return f"{text} AND {name} {op} {expressions.value(values[0])}"


def _check_order(select: n.Select, hash_key: str, range_key: str | None,
                 hash_values: list[dict[str, Any]] | None) -> bool | None:
    """Check ORDER BY; returns ScanIndexForward when it orders by the sort key."""
    if not select.order_by:
        return None
    if select.where is None:
        raise ValidationError("Must have WHERE clause in the statement when using ORDER BY clause.")
    if hash_values is None:
        raise ValidationError("Must have at least one non-optional hash key condition in WHERE "
                              "clause when using ORDER BY clause.")
    names = [key.name for key in select.order_by]
    for name in names:
        if name not in (hash_key, range_key):
            raise ValidationError(f"Variable reference {name} in ORDER BY clause must be part "
                                  "of the primary key")
    if len(hash_values) > 1 and hash_key not in names:
        raise ValidationError("Must have hash key in ORDER BY clause when more than one hash "
                              "key condition specified in WHERE clause.")
    for key in select.order_by:
        if key.name == range_key:
            return not key.descending
    return None


def _ordered_values(select: n.Select, hash_key: str, values: list[dict[str, Any]]
                    ) -> list[dict[str, Any]]:
    for key in select.order_by:
        if key.name == hash_key:
            return sorted(values, key=_sort_value, reverse=key.descending)
    return values


def _sort_value(value: dict[str, Any]) -> Any:
    """How DynamoDB orders key values: numbers by value, strings by UTF-8, binary by bytes."""
    ((kind, inner),) = value.items()
    if kind == "N":
        return Decimal(inner)
    if kind == "S":
        return inner.encode()
    return decode_binary(inner)


def _residual(terms: list[n.Node], statement: str) -> Residual | None:
    if not terms:
        return None
    expressions = Expressions(statement)
    text = expressions.condition(_all_of(terms))
    return Residual(text, dict(expressions.names), dict(expressions.values))


def _all_of(terms: list[n.Node]) -> n.Node:
    """One condition for AND terms (a single term as itself)."""
    return terms[0] if len(terms) == 1 else n.And(0, 0, tuple(terms))


def _projection_heads(projection: tuple[n.Path, ...] | None,
                      residual_terms: list[n.Node]) -> list[str]:
    """Top-level attributes a read must return (none: every attribute)."""
    if projection is None:
        return []
    heads: dict[str, None] = {}
    for path in projection:
        heads.setdefault(path.head)
    for term in residual_terms:
        for head in sorted(_heads(term)):
            heads.setdefault(head)
    return list(heads)


def _heads(node: n.Node) -> set[str]:
    """Top-level attribute names a condition reads."""
    if isinstance(node, n.Path):
        return {node.head}
    children: tuple[n.Node, ...] = ()
    if isinstance(node, n.And | n.Or | n.ListLiteral | n.Bag):
        children = node.items
    elif isinstance(node, n.Not | n.Negate):
        children = (node.operand,)
    elif isinstance(node, n.Compare | n.Arith):
        children = (node.left, node.right)
    elif isinstance(node, n.Between):
        children = (node.operand, node.low, node.high)
    elif isinstance(node, n.In):
        children = (node.operand, *node.items)
    elif isinstance(node, n.Is):
        children = (node.operand,)
    elif isinstance(node, n.Call):
        children = node.args
    heads: set[str] = set()
    for child in children:
        heads |= _heads(child)
    return heads


def _check_key_type(schema: TableSchema, name: str, value: Any) -> None:
    expected = schema.types.get(name)
    if type(value) is not dict or len(value) != 1 or next(iter(value)) != expected:
        raise ValidationError("Key attribute's data type should match its data type in table's "
                              f"schema: Key {name}")


# --- INSERT, UPDATE, DELETE, EXISTS ----------------------------------------------------------

def translate_write(statement_node: n.Statement, schema: TableSchema, statement: str
                    ) -> WritePlan:
    if isinstance(statement_node, n.Insert):
        return _insert(statement_node, schema, statement)
    if isinstance(statement_node, n.Update):
        return _update(statement_node, schema, statement)
    if isinstance(statement_node, n.Delete):
        return _delete(statement_node, schema, statement)
    if isinstance(statement_node, n.Exists):
        return _exists(statement_node, schema, statement)
    raise ValidationError("Invalid operation. Only select, insert, update and delete "
                          "operations are valid")


def _insert(insert: n.Insert, schema: TableSchema, statement: str) -> WritePlan:
    if not isinstance(insert.item, n.TupleLiteral):
        raise ValidationError("Unsupported format in item expression. Please use struct format "
                              "{...} to express item values for insert statement.")
    item = tuple_entries(insert.item, statement, "root")
    for name in schema.key_names():
        if name not in item:
            raise ValidationError(f"Key attribute should be present in the item: Key {name}")
        _check_key_type(schema, name, item[name])
    expressions = Expressions(statement)
    condition = f"attribute_not_exists({expressions.name(schema.hash_key)})"
    request = expressions.attach({"TableName": insert.source.table, "Item": item,
                                  "ConditionExpression": condition})
    return WritePlan("INSERT", insert.source.table, "PutItem", request)


def _update(update: n.Update, schema: TableSchema, statement: str) -> WritePlan:
    if update.source.index is not None:
        raise ValidationError(NOT_ON_INDEX)
    key, rest = _item_key(update.where, schema)
    expressions = Expressions(statement)
    request: dict[str, Any] = {"TableName": update.source.table, "Key": key,
                               "UpdateExpression": expressions.update(update.actions)}
    condition = f"attribute_exists({expressions.name(schema.hash_key)})"
    if rest:
        condition += f" AND ({expressions.condition(_all_of(rest))})"
    request["ConditionExpression"] = condition
    if update.returning is not None:
        request["ReturnValues"] = update.returning
    return WritePlan("UPDATE", update.source.table, "UpdateItem", expressions.attach(request),
                     update.returning)


def _delete(delete: n.Delete, schema: TableSchema, statement: str) -> WritePlan:
    if delete.returning is not None and delete.returning != "ALL_OLD":
        raise ValidationError(f"Invalid returning clause: RETURNING "
                              f"{_RETURNING_WORDS[delete.returning]}. Only RETURNING ALL OLD * "
                              "is allowed in DELETE statements.")
    if delete.source.index is not None:
        raise ValidationError(NOT_ON_INDEX)
    key, rest = _item_key(delete.where, schema)
    expressions = Expressions(statement)
    request: dict[str, Any] = {"TableName": delete.source.table, "Key": key}
    if rest:
        request["ConditionExpression"] = expressions.condition(_all_of(rest))
    if delete.returning is not None:
        request["ReturnValues"] = "ALL_OLD"
    return WritePlan("DELETE", delete.source.table, "DeleteItem", expressions.attach(request),
                     delete.returning)


def _exists(exists: n.Exists, schema: TableSchema, statement: str) -> WritePlan:
    select = exists.select
    if select.source.index is not None:
        raise ValidationError("Operations on indices are not supported in transactions")
    try:
        key, rest = _item_key(select.where, schema)
    except ValidationError:
        raise ValidationError("EXISTS() must contain a single item read with additional "
                              "condition") from None
    if not rest:
        raise ValidationError("EXISTS() must contain a single item read with additional condition")
    expressions = Expressions(statement)
    condition = (f"attribute_exists({expressions.name(schema.hash_key)}) AND "
                 f"({expressions.condition(_all_of(rest))})")
    request = expressions.attach({"TableName": select.source.table, "Key": key,
                                  "ConditionExpression": condition})
    return WritePlan("EXISTS", select.source.table, "ConditionCheck", request)


def _item_key(where: n.Node | None, schema: TableSchema
              ) -> tuple[dict[str, Any], list[n.Node]]:
    """The primary key a write's WHERE names by equality, and its other terms."""
    terms = n.conjuncts(where)
    key: dict[str, Any] = {}
    used: set[int] = set()
    for name in schema.key_names():
        found = [(i, value) for i, term in enumerate(terms) if isinstance(term, n.Compare)
                 and term.op == "=" and (value := _path_value(term.left, term.right, name))
                 is not None]
        if not found:
            raise ValidationError(INCOMPLETE_KEY)
        if len(found) > 1:
            raise ValidationError(f"Multiple conditions on same key {name}. Only single item "
                                  "Update/Insert/Delete are supported")
        i, value = found[0]
        _check_key_type(schema, name, value)
        key[name] = value
        used.add(i)
    return key, [term for i, term in enumerate(terms) if i not in used]
