"""Query plans: a table Query's key condition, resolved once per request shape.

Theory of operation: before it reads, a Query is checked — its parameters' mix, Select,
its expressions' names and values (each defined and used), its key condition against the
key schema and the values' types — and its key condition is reduced to a `KeyRange`.
For the usual request (`PLANNED_KEYS` only: no index, Select, projection, filter or
legacy parameter) all of that depends on the request's *shape* alone — the table, the
KeyConditionExpression text, the ExpressionAttributeNames map, which value placeholders
it defines and each one's type — except the checks on the values themselves: each value
well formed (`check_value`, which also normalises numbers) and the key condition's own
checks on them (`KeyCondition.checks`). So once the full path (engine/reads.py) has
accepted a request of some shape, `remember` keeps its plan: which placeholder holds the
partition key's value and which the sort key condition's. `resolve` answers a later
request of the same shape from it, running only the value checks, in the full path's
order; a request of another shape, or one whose values fail a check, gets None and takes
the full path, which raises DynamoDB's error for it. What comes after the key range (the
partition key's encoding and its empty-value check, ExclusiveStartKey, the page) is the
same code for both.

A plan is valid for the table definition object it was made with (a table dropped and
created again, or redefined, is another object: its plans are made again). Plans are
kept per (table name, expression text), the latest shape of each, at most `MAX_PLANS`.
"""

from __future__ import annotations

from typing import Any

from atoll.engine.tabledef import TableDef
from atoll.errors import AtollError
from atoll.expressions import KeyCondition, KeyRange
from atoll.expressions.values import type_of
from atoll.model.values import check_value

# The request members a planned Query may have: any other one (IndexName, Select,
# ProjectionExpression, FilterExpression, a legacy parameter) changes what is checked.
PLANNED_KEYS = frozenset((
    "TableName", "KeyConditionExpression", "ExpressionAttributeNames",
    "ExpressionAttributeValues", "Limit", "ScanIndexForward", "ConsistentRead",
    "ReturnConsumedCapacity", "ExclusiveStartKey"))
MAX_PLANS = 1024


class QueryPlan:
    """One shape's resolution: `names` the request's ExpressionAttributeNames (None if it
    had none), `value_types` each placeholder's type tag, `checks` the key condition's
    checks on values, `hash_value` the partition key's placeholder and (`op`, `operands`)
    the sort key condition's operator and placeholders (None, (): the whole partition)."""

    __slots__ = ("table", "names", "value_types", "checks", "hash_value", "op", "operands")

    def __init__(self, table: TableDef, names: dict[str, str] | None,
                 value_types: dict[str, str], kc: KeyCondition, hash_value: str,
                 op: str | None, operands: tuple[str, ...]) -> None:
        self.table = table
        self.names = names
        self.value_types = value_types
        self.checks = kc.checks
        self.hash_value = hash_value
        self.op = op
        self.operands = operands


class QueryPlans:
    """The plans of one engine (event-loop thread only)."""

    def __init__(self) -> None:
        self.plans: dict[tuple[str, str], QueryPlan] = {}

    def resolve(self, table: TableDef, request: dict[str, Any]) -> KeyRange | None:
        """The key range of a request of a planned shape whose values pass their checks;
        None: take the full path (see the module docstring)."""
        if not request.keys() <= PLANNED_KEYS:
            return None
        text = request.get("KeyConditionExpression")
        if not isinstance(text, str):
            return None
        plan = self.plans.get((table.name, text))
        if plan is None or plan.table is not table:
            return None
        names = request.get("ExpressionAttributeNames")
        values = request.get("ExpressionAttributeValues")
        if names != plan.names or type(values) is not dict \
                or values.keys() != plan.value_types.keys():
            return None
        types = plan.value_types
        try:
            for name, value in values.items():
                check_value(value)
                if type_of(value) != types[name]:
                    return None
            given = names if names is not None else {}
            for check in plan.checks:
                check(given, values)
        except AtollError:
            return None  # the full path raises it, worded as DynamoDB words it
        return KeyRange(values[plan.hash_value], plan.op,
                        tuple([values[p] for p in plan.operands]))

    def remember(self, table: TableDef, request: dict[str, Any], kc: KeyCondition,
                 names: dict[str, str], values: dict[str, Any]) -> None:
        """Keep the plan of a request the full path has just resolved against `table`
        (its values checked and normalised): only of a shape `resolve` can answer."""
        if not request.keys() <= PLANNED_KEYS:
            return
        hash_value = ""
        op: str | None = None
        operands: tuple[str, ...] = ()
        for key_name, leaf_op, placeholders in kc.leaves(names):
            if key_name == table.hash_key:
                hash_value = placeholders[0]
            else:
                op, operands = leaf_op, placeholders
        value_types: dict[str, str] = {}
        for name, value in values.items():
            value_types[name] = str(type_of(value))
        given = request.get("ExpressionAttributeNames")
        if len(self.plans) >= MAX_PLANS:
            self.plans.clear()
        self.plans[(table.name, request["KeyConditionExpression"])] = QueryPlan(
            table, dict(given) if given is not None else None, value_types, kc, hash_value,
            op, operands)
