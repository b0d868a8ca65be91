"""Legacy parameters (Expected, QueryFilter, ScanFilter, KeyConditions, AttributeUpdates,
ConditionalOperator), translated into the expression trees.

Theory of operation: before expressions existed, requests carried conditions and updates
as JSON maps of attribute name -> {ComparisonOperator, AttributeValueList} (or, in
Expected, {Value, Exists}; in AttributeUpdates, {Action, Value}). DynamoDB still accepts
them. Each map is first checked with DynamoDB's legacy messages, then translated into
exactly the objects the parsers return — condition nodes wrapped in a `Condition`, a
`KeyCondition`, `Update` actions — over generated ExpressionAttributeNames (`#!0`, `#!1`,
...) and ExpressionAttributeValues (`:!0`, ...) collected in `Placeholders`. The
tokenizer can never produce those tokens, so they cannot collide with a request's own
names and values (a Query may combine KeyConditions with a FilterExpression). Evaluation
is the one expression evaluator.

Where a legacy operator does not mean what its look-alike expression means, the
translation spells out the difference:
  NULL / NOT_NULL      attribute_not_exists / attribute_exists (not the NULL type)
  NOT_CONTAINS         false on a missing attribute (`NOT contains(a, v)` would be true)
  Exists: false        attribute_not_exists;  Value (Exists absent or true): `a = v`
  AttributeUpdates ADD of a list appends to it (list_append(if_not_exists(a, []), v));
                       a type clash while applying reads "Type mismatch for attribute
                       to update" (`LegacyUpdate`)
  DELETE, no Value     REMOVE a

Sources: the DynamoDB developer guide, "Legacy conditional parameters" (the
ComparisonOperator reference, ConditionalOperator) and the API reference
(ExpectedAttributeValue, AttributeValueUpdate); the messages DynamoDB returns as
recorded by dynalite's test suite and ScyllaDB Alternator's tests (both run against
DynamoDB); the AWS DAX client's request validator for ConditionalOperator.
"""

from __future__ import annotations

from typing import Any

from atoll.errors import ValidationError
from atoll.expressions import Condition
from atoll.expressions import nodes as n
from atoll.expressions import values as v
from atoll.expressions.keycondition import KeyCondition
from atoll.expressions.update import Action, Call, Update
from atoll.model.values import check_value

INVALID = "One or more parameter values were invalid: "
TYPE_MISMATCH = "Type mismatch for attribute to update"
MIXED = "Can not use both expression and non-expression parameters in the same request"

# (fewest, most) entries of AttributeValueList; None: no upper bound
_ARGUMENTS: dict[str, tuple[int, int | None]] = {
    "EQ": (1, 1), "NE": (1, 1), "LE": (1, 1), "LT": (1, 1), "GE": (1, 1), "GT": (1, 1),
    "CONTAINS": (1, 1), "NOT_CONTAINS": (1, 1), "BEGINS_WITH": (1, 1),
    "NULL": (0, 0), "NOT_NULL": (0, 0), "IN": (1, None), "BETWEEN": (2, 2),
}
_SCALARS = ("S", "N", "B")
# Operand types each operator accepts; EQ and NE accept every type (lists, maps, sets...).
_OPERAND_TYPES = {"LE": _SCALARS, "LT": _SCALARS, "GE": _SCALARS, "GT": _SCALARS,
                  "CONTAINS": _SCALARS, "NOT_CONTAINS": _SCALARS, "BEGINS_WITH": ("S", "B"),
                  "IN": _SCALARS, "BETWEEN": _SCALARS}
_COMPARISONS = {"EQ": "=", "NE": "<>", "LT": "<", "LE": "<=", "GT": ">", "GE": ">="}
_KEY_OPERATORS = frozenset({"EQ", "LE", "LT", "GE", "GT", "BEGINS_WITH", "BETWEEN"})
_ADDABLE = frozenset({"N", "SS", "NS", "BS"})


class LegacyUpdate(Update):
    """AttributeUpdates as update actions; only the type-clash message differs."""

    __slots__ = ()
    mismatch_message = TYPE_MISMATCH


class Placeholders:
    """The generated #names and :values of one request's legacy parameters."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def path(self, attribute: str) -> n.PathOperand:
        token = f"#!{len(self.names)}"
        self.names[token] = attribute
        return n.PathOperand((token,))

    def value(self, value: Any) -> n.ValueOperand:
        token = f":!{len(self.values)}"
        self.values[token] = value
        return n.ValueOperand(token)


# ---- request-level rules --------------------------------------------------------------

def check_mixing(request: dict[str, Any], expression_params: tuple[str, ...],
                 legacy_params: tuple[str, ...]) -> None:
    """Reject a request that uses both kinds of parameters (an empty one counts too).

    KeyConditions is the exception: it may go with a FilterExpression or a
    ProjectionExpression, only not with a KeyConditionExpression."""
    if request.keys().isdisjoint(legacy_params):
        return  # the usual case: no legacy parameter at all
    used = [p for p in expression_params if p in request]
    if not used:
        return
    legacy = [p for p in legacy_params if p in request
              and (p != "KeyConditions" or "KeyConditionExpression" in used)]
    if legacy:
        raise ValidationError(f"{MIXED}: Non-expression parameters: {{{', '.join(legacy)}}} "
                              f"Expression parameters: {{{', '.join(used)}}}")


def check_conditional_operator(request: dict[str, Any], maps: tuple[str, ...]) -> None:
    """ConditionalOperator combines the entries of Expected/QueryFilter/ScanFilter: it
    needs one of them, with at least two entries."""
    if request.get("ConditionalOperator") is None:
        return
    present = [request[m] for m in maps if request.get(m) is not None]
    if not present:
        raise ValidationError("ConditionalOperator cannot be used without Filter or Expected")
    if any(type(m) is not dict or len(m) < 2 for m in present):
        raise ValidationError("ConditionalOperator can only be used when Filter or Expected "
                              "has two or more elements")


def check_attributes_to_get(attributes: list[str]) -> None:
    seen: set[str] = set()
    for name in attributes:
        if name in seen:
            raise ValidationError(f"{INVALID}Duplicate value in attribute name: {name}")
        seen.add(name)


# ---- conditions -----------------------------------------------------------------------

def _check_operands(operator: Any, operands: list[Any]) -> str:
    """Operand count, one type for all, a type the operator takes, BETWEEN's order;
    returns the (valid) operator."""
    if operator not in _ARGUMENTS:  # the api's enum check normally stops it first
        raise ValidationError(f"{INVALID}Unsupported ComparisonOperator: {operator}")
    for operand in operands:
        check_value(operand)
    fewest, most = _ARGUMENTS[operator]
    if len(operands) < fewest or (most is not None and len(operands) > most):
        raise ValidationError(f"{INVALID}Invalid number of argument(s) for the {operator} "
                              "ComparisonOperator")
    kinds = [v.type_of(operand) for operand in operands]
    if any(kind != kinds[0] for kind in kinds):
        raise ValidationError(f"{INVALID}AttributeValues inside AttributeValueList must be of "
                              "same type")
    allowed = _OPERAND_TYPES.get(operator)
    if allowed is not None and kinds and kinds[0] not in allowed:
        raise ValidationError(f"{INVALID}ComparisonOperator {operator} is not valid for "
                              f"{kinds[0]} AttributeValue type")
    if operator == "BETWEEN" and (v.order(operands[0], operands[1]) or 0) > 0:
        raise ValidationError("The BETWEEN condition was provided a range where the lower "
                              "bound is greater than the upper bound")
    return str(operator)


def _node(operator: str, path: n.PathOperand, operands: list[Any],
          placeholders: Placeholders) -> n.Condition:
    if operator in _COMPARISONS:
        return n.Compare(_COMPARISONS[operator], path, placeholders.value(operands[0]))
    if operator == "NULL":
        return n.Function("attribute_not_exists", (path,))
    if operator == "NOT_NULL":
        return n.Function("attribute_exists", (path,))
    if operator == "IN":
        return n.In(path, tuple(placeholders.value(operand) for operand in operands))
    if operator == "BETWEEN":
        return n.Between(path, placeholders.value(operands[0]), placeholders.value(operands[1]))
    value = placeholders.value(operands[0])
    if operator == "CONTAINS":
        return n.Function("contains", (path, value))
    if operator == "NOT_CONTAINS":
        return n.And((n.Function("attribute_exists", (path,)),
                      n.Not(n.Function("contains", (path, value)))))
    return n.Function("begins_with", (path, value))


def _operands(spec: dict[str, Any]) -> list[Any]:
    operands = spec.get("AttributeValueList")
    return list(operands) if type(operands) is list else []


def _combine(parts: list[n.Condition], operator: str | None) -> n.Condition | None:
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return n.Or(tuple(parts)) if operator == "OR" else n.And(tuple(parts))


def _wrap(root: n.Condition | None, placeholders: Placeholders, kind: str) -> Condition | None:
    if root is None:
        return None
    return Condition(root, frozenset(placeholders.names), frozenset(placeholders.values), (),
                     kind)


def _expected_one(attribute: str, spec: dict[str, Any],
                  placeholders: Placeholders) -> n.Condition:
    has_value = spec.get("Value") is not None
    has_list = spec.get("AttributeValueList") is not None
    operator = spec.get("ComparisonOperator")
    exists = spec.get("Exists")
    where = f" for Attribute: {attribute}"
    if has_value and has_list:
        raise ValidationError(f"{INVALID}Value and AttributeValueList cannot be used together"
                              + where)
    if operator is not None:
        if exists is not None:
            raise ValidationError(f"{INVALID}Exists and ComparisonOperator cannot be used "
                                  "together" + where)
        if operator not in ("NULL", "NOT_NULL") and not has_value and not has_list:
            raise ValidationError(f"{INVALID}Value or AttributeValueList must be used with "
                                  f"ComparisonOperator: {operator}" + where)
        operands = [spec["Value"]] if has_value else _operands(spec)
        return _node(_check_operands(operator, operands), placeholders.path(attribute), operands, placeholders)
    if has_list:
        raise ValidationError(f"{INVALID}AttributeValueList can only be used with a "
                              "ComparisonOperator" + where)
    if exists is None or exists:
        if not has_value:
            shown = "null" if exists is None else "true"
            raise ValidationError(f"{INVALID}Value must be provided when Exists is {shown}"
                                  + where)
        check_value(spec["Value"])
        return n.Compare("=", placeholders.path(attribute), placeholders.value(spec["Value"]))
    if has_value:
        raise ValidationError(f"{INVALID}Value cannot be used when Exists is false" + where)
    return n.Function("attribute_not_exists", (placeholders.path(attribute),))


def _entries(param: str, conditions: Any) -> list[tuple[str, dict[str, Any]]]:
    if type(conditions) is not dict:
        raise ValidationError(f"{INVALID}{param} must be a map")
    entries = list(conditions.items())
    for _attribute, spec in entries:
        if type(spec) is not dict:
            raise ValidationError(f"{INVALID}{param} entries must be structures")
    return entries


def expected(conditions: Any, operator: str | None, placeholders: Placeholders
             ) -> Condition | None:
    """Expected (+ ConditionalOperator) as a ConditionExpression; None when empty."""
    parts = [_expected_one(attribute, spec, placeholders)
             for attribute, spec in _entries("Expected", conditions)]
    return _wrap(_combine(parts, operator), placeholders, "ConditionExpression")


def filter_condition(param: str, conditions: Any, operator: str | None,
                     placeholders: Placeholders) -> Condition | None:
    """QueryFilter or ScanFilter (+ ConditionalOperator) as a FilterExpression."""
    parts = []
    for attribute, spec in _entries(param, conditions):
        operands = _operands(spec)
        operator_name = _check_operands(spec.get("ComparisonOperator"), operands)
        parts.append(_node(operator_name, placeholders.path(attribute), operands, placeholders))
    return _wrap(_combine(parts, operator), placeholders, "FilterExpression")


def key_condition(conditions: Any, placeholders: Placeholders) -> KeyCondition:
    """KeyConditions as a KeyConditionExpression; the key schema is checked when the
    engine resolves it (`keycondition.resolve`), with the expression's messages."""
    entries = _entries("KeyConditions", conditions)
    if not 1 <= len(entries) <= 2:
        raise ValidationError("Conditions can be of length 1 or 2 only")
    leaves = []
    for attribute, spec in entries:
        operands = _operands(spec)
        operator = _check_operands(spec.get("ComparisonOperator"), operands)
        if operator not in _KEY_OPERATORS:
            raise ValidationError("Attempted conditional constraint is not an indexable "
                                  "operation")
        leaves.append(_node(operator, placeholders.path(attribute), operands, placeholders))
    root = leaves[0] if len(leaves) == 1 else n.And(tuple(leaves))
    return KeyCondition(root, frozenset(placeholders.names), frozenset(placeholders.values),
                        ())


# ---- AttributeUpdates -----------------------------------------------------------------

def attribute_updates(updates: Any, placeholders: Placeholders) -> LegacyUpdate | None:
    """AttributeUpdates as update actions over top-level attributes; None when empty."""
    actions = []
    for attribute, spec in _entries("AttributeUpdates", updates):
        verb = spec.get("Action") or "PUT"
        value = spec.get("Value")
        if value is not None:
            check_value(value)
        path = placeholders.path(attribute).path
        kind = v.type_of(value)
        if value is None:
            if verb != "DELETE":
                raise ValidationError(f"{INVALID}Only DELETE action is allowed when no attribute "
                                      "value is specified")
            actions.append(Action("REMOVE", path))
        elif verb == "PUT":
            actions.append(Action("SET", path, placeholders.value(value)))
        elif verb == "DELETE":
            if kind not in v.SET_TYPES:
                raise ValidationError(f"{INVALID}DELETE action with value is not supported for "
                                      f"the type {kind}")
            actions.append(Action("DELETE", path, placeholders.value(value)))
        elif verb == "ADD" and kind == "L":
            current = Call("if_not_exists", (n.PathOperand(path), placeholders.value({"L": []})))
            actions.append(Action("SET", path, Call("list_append",
                                                    (current, placeholders.value(value)))))
        elif verb == "ADD":
            if kind not in _ADDABLE:
                raise ValidationError(f"{INVALID}ADD action is not supported for the type {kind}")
            actions.append(Action("ADD", path, placeholders.value(value)))
        else:  # the api's enum check normally stops it first
            raise ValidationError(f"{INVALID}Unsupported Action: {verb}")
    if not actions:
        return None
    return LegacyUpdate(tuple(actions), frozenset(placeholders.names),
                        frozenset(placeholders.values), ())
