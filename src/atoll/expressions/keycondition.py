"""KeyConditionExpression: the condition grammar, restricted to what a Query can use.

Theory of operation: the text is parsed by the condition parser (same tokens, same error
messages, same caching); `resolve` then checks the tree against the table's key schema
and reduces it to a `KeyRange`: the partition key value and at most one sort-key
condition (`=`, `<`, `<=`, `>`, `>=`, `BETWEEN`, `begins_with`), which the engine turns
into an index range scan. A comparison may name the key on either side (`:v = pk`,
`:v < sk`): with the value on the left the operator is mirrored (`:v < sk` is `sk > :v`).
"""

from __future__ import annotations

from typing import Any

from atoll.errors import ValidationError
from atoll.expressions import nodes as n
from atoll.expressions import paths
from atoll.expressions import values as v
from atoll.expressions.parser import Check, ConditionParser

KIND = "KeyConditionExpression"
_NOT_SUPPORTED = "Query key condition not supported"
_TYPE_MISMATCH = ("One or more parameter values were invalid: Condition parameter type does not "
                  "match schema type")


class KeyRange:
    """What a key condition selects: the partition key's value and at most one sort-key
    condition (`op` None: the whole partition). A plain class rather than a NamedTuple:
    compiled, it is built without a call into interpreted code (once per Query)."""

    __slots__ = ("hash_value", "op", "operands")

    def __init__(self, hash_value: dict[str, Any], op: str | None,
                 operands: tuple[dict[str, Any], ...]) -> None:
        self.hash_value = hash_value
        self.op = op
        self.operands = operands


Leaf = tuple[str, str, tuple[str, ...]]  # (key name, operator, value placeholders)

_MAX_PLANS = 64  # per parsed expression: distinct ExpressionAttributeNames maps seen
# The operator that keeps a comparison's meaning when its operands swap sides.
_MIRRORED = {"=": "=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


class KeyCondition:
    __slots__ = ("root", "names_used", "values_used", "checks", "plans")

    def __init__(self, root: n.Condition, names_used: frozenset[str],
                 values_used: frozenset[str], checks: tuple[Check, ...]) -> None:
        self.root = root
        self.names_used = names_used
        self.values_used = values_used
        self.checks = checks
        # The leaves resolved against a names map, which repeats from request to request
        # while the values change: per names map, built once (parsing is cached by text).
        self.plans: dict[tuple[tuple[str, str], ...], tuple[Leaf, ...]] = {}

    def leaves(self, names: dict[str, str]) -> tuple[Leaf, ...]:
        key = tuple(names.items())
        plan = self.plans.get(key)
        if plan is None:
            plan = tuple(_leaf(leaf, names) for leaf in _checked_leaves(self.root))
            if len(self.plans) >= _MAX_PLANS:
                self.plans.clear()
            self.plans[key] = plan
        return plan


def parse(text: str) -> KeyCondition:
    parser = ConditionParser(text, KIND)
    root = parser.parse()
    return KeyCondition(root, frozenset(parser.names_used), frozenset(parser.values_used),
                        tuple(parser.checks))


def _invalid_operator(name: str) -> ValidationError:
    return ValidationError(f"Invalid operator used in KeyConditionExpression: {name}")


def _leaves(node: n.Condition) -> list[n.Condition]:
    if isinstance(node, n.And):
        out: list[n.Condition] = []
        for part in node.parts:
            out.extend(_leaves(part))
        return out
    if isinstance(node, n.Or):
        raise _invalid_operator("OR")
    if isinstance(node, n.Not):
        raise _invalid_operator("NOT")
    if isinstance(node, n.In):
        raise _invalid_operator("IN")
    return [node]


def _key_name(operand: Any, names: dict[str, str]) -> str:
    if not isinstance(operand, n.PathOperand):
        raise ValidationError(_NOT_SUPPORTED)
    path = paths.resolve(operand.path, names)
    if len(path) != 1:
        raise ValidationError(_NOT_SUPPORTED)
    return str(path[0])


def _checked_leaves(root: n.Condition) -> list[n.Condition]:
    leaves = _leaves(root)
    if len(leaves) > 2:
        raise ValidationError("Conditions can be of length 1 or 2 only")
    return leaves


def _literal(operand: Any) -> str:
    if not isinstance(operand, n.ValueOperand):
        raise ValidationError(_NOT_SUPPORTED)
    return operand.name  # type: ignore[no-any-return]


def _leaf(node: n.Condition, names: dict[str, str]) -> Leaf:
    if isinstance(node, n.Compare):
        if node.op == "<>":
            raise ValidationError(_NOT_SUPPORTED)
        if isinstance(node.left, n.ValueOperand) and isinstance(node.right, n.PathOperand):
            return _key_name(node.right, names), _MIRRORED[node.op], (_literal(node.left),)
        return _key_name(node.left, names), node.op, (_literal(node.right),)
    if isinstance(node, n.Between):
        return (_key_name(node.operand, names), "BETWEEN",
                (_literal(node.low), _literal(node.high)))
    if isinstance(node, n.Function):
        if node.name != "begins_with":
            raise _invalid_operator(node.name)
        return _key_name(node.args[0], names), "begins_with", (_literal(node.args[1]),)
    raise ValidationError(_NOT_SUPPORTED)


def resolve(kc: KeyCondition, names: dict[str, str], values: dict[str, Any], hash_key: str,
            range_key: str | None, key_types: dict[str, str], validated: bool = False
            ) -> KeyRange:
    """`validated`: `atoll.expressions.validate` already ran `kc`'s checks for these names
    and values (a Query's RequestExpressions does, before anything is read)."""
    if not validated:
        for check in kc.checks:
            check(names, values)
    conditions: dict[str, tuple[str, tuple[dict[str, Any], ...]]] = {}
    for name, op, placeholders in kc.leaves(names):
        if name in conditions:
            raise ValidationError(
                "KeyConditionExpressions must only contain one condition per key")
        conditions[name] = (op, tuple(n.value_of(p, values) for p in placeholders))
    if hash_key not in conditions:
        raise ValidationError(f"Query condition missed key schema element: {hash_key}")
    for name in conditions:
        if name != hash_key and name != range_key:
            if range_key is not None:
                raise ValidationError(f"Query condition missed key schema element: {range_key}")
            raise ValidationError(_NOT_SUPPORTED)
    op, operands = conditions[hash_key]
    if op != "=":
        raise ValidationError(_NOT_SUPPORTED)
    _check_types(hash_key, operands, key_types)
    if range_key is None or range_key not in conditions:
        return KeyRange(operands[0], None, ())
    sort_op, sort_operands = conditions[range_key]
    if sort_op == "begins_with" and key_types.get(range_key) == "N":
        raise ValidationError(f"Invalid {KIND}: Incorrect operand type for operator or function; "
                              "operator or function: begins_with, operand type: N")
    _check_types(range_key, sort_operands, key_types)
    return KeyRange(operands[0], sort_op, sort_operands)


def _check_types(name: str, operands: tuple[dict[str, Any], ...],
                 key_types: dict[str, str]) -> None:
    wanted = key_types.get(name)
    for operand in operands:
        if v.type_of(operand) != wanted:
            raise ValidationError(_TYPE_MISMATCH)
