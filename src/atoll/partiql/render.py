"""PartiQL expressions rendered as DynamoDB expressions (the engine's own language).

Theory of operation: a translated statement is an ordinary DynamoDB request, so its
conditions and updates become ConditionExpression / FilterExpression /
KeyConditionExpression / UpdateExpression text. `Expressions` collects one request's
ExpressionAttributeNames and ExpressionAttributeValues while rendering: every name in a
path becomes a `#nK` placeholder (so a PartiQL name that is a DynamoDB reserved word, or
holds a dot, is fine) and every literal or parameter a `:vK` placeholder. Literals become
attribute values here too (`values_of`): `[..]` a list, `{'k': v}` a map, `<<..>>` a
string or number set.

`x IS [NOT] MISSING` is attribute_not_exists / attribute_exists; `x IS NULL`, `IS STRING`
... test the attribute's type (attribute_type), so a missing attribute IS NOT NULL.

What has no DynamoDB expression (arithmetic in a condition, a function DynamoDB's PartiQL
does not have) is refused with DynamoDB's message.
"""

from __future__ import annotations

from typing import Any

from atoll.errors import ValidationError
from atoll.partiql import nodes as n
from atoll.partiql.tokens import position

# `IS <type>`: the attribute_type each PartiQL type name tests.
IS_TYPES = {"NULL": "NULL", "BOOLEAN": "BOOL", "BLOB": "B", "STRING": "S", "NUMERIC": "N",
            "STRUCT": "M", "TUPLE": "M", "LIST": "L"}
# Functions of a condition: name -> number of operands.
CONDITION_FUNCTIONS = {"begins_with": 2, "contains": 2, "attribute_type": 2,
                       "attribute_exists": 1, "attribute_not_exists": 1}
_BAG = "Unsupported data type in Bag. DynamoDB only supports either numbers or strings in bags"


class Expressions:
    """One request's expression names and values, collected while rendering."""

    def __init__(self, statement: str) -> None:
        self.statement = statement
        self.names: dict[str, str] = {}
        self._placeholders: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def attach(self, request: dict[str, Any]) -> dict[str, Any]:
        if self.names:
            request["ExpressionAttributeNames"] = dict(self.names)
        if self.values:
            request["ExpressionAttributeValues"] = dict(self.values)
        return request

    def name(self, name: str) -> str:
        placeholder = self._placeholders.get(name)
        if placeholder is None:
            placeholder = f"#n{len(self._placeholders)}"
            self._placeholders[name] = placeholder
            self.names[placeholder] = name
        return placeholder

    def value(self, value: dict[str, Any]) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = value
        return placeholder

    def path(self, path: n.Path) -> str:
        out = ""
        for step in path.steps:
            if isinstance(step, int):
                out += f"[{step}]"
            else:
                out += ("." if out else "") + self.name(step)
        return out

    def at(self, offset: int, length: int) -> str:
        return position(self.statement, offset, length)

    # --- conditions ---------------------------------------------------------------------
    def condition(self, node: n.Node) -> str:
        if isinstance(node, n.And):
            return " AND ".join(f"({self.condition(item)})" for item in node.items)
        if isinstance(node, n.Or):
            return " OR ".join(f"({self.condition(item)})" for item in node.items)
        if isinstance(node, n.Not):
            return f"NOT ({self.condition(node.operand)})"
        if isinstance(node, n.Compare):
            return f"{self.operand(node.left)} {node.op} {self.operand(node.right)}"
        if isinstance(node, n.Between):
            text = (f"{self.operand(node.operand)} BETWEEN {self.operand(node.low)} "
                    f"AND {self.operand(node.high)}")
            return f"NOT ({text})" if node.negated else text
        if isinstance(node, n.In):
            items = ", ".join(self.operand(item) for item in node.items)
            text = f"{self.operand(node.operand)} IN ({items})"
            return f"NOT ({text})" if node.negated else text
        if isinstance(node, n.Is):
            return self.is_test(node)
        if isinstance(node, n.Call):
            return self.function(node)
        raise ValidationError("WHERE clause must contain an expression that resolves to a "
                              "boolean")

    def is_test(self, node: n.Is) -> str:
        if not isinstance(node.operand, n.Path):
            raise ValidationError("The left hand side argument to IS must be a Variable "
                                  "Reference, Literal, or Path")
        path = self.path(node.operand)
        if node.kind == "MISSING":
            return f"attribute_exists({path})" if node.negated else f"attribute_not_exists({path})"
        text = f"attribute_type({path}, {self.value({'S': IS_TYPES[node.kind]})})"
        return f"NOT {text}" if node.negated else text

    def function(self, node: n.Call) -> str:
        arity = CONDITION_FUNCTIONS.get(node.name)
        if arity is None:
            raise ValidationError(f"Unrecognized function: {node.name} at "
                                  f"{self.at(node.offset, node.name_length)}")
        if len(node.args) != arity:
            raise ValidationError("Incorrect number of operands for operator or function; "
                                  f"operator or function: {node.name}, number of operands: "
                                  f"{len(node.args)}")
        first = node.args[0]
        if not isinstance(first, n.Path):
            raise ValidationError("Operator or function requires a document path; operator or "
                                  f"function: {node.name}")
        args = [self.path(first)] + [self.operand(arg) for arg in node.args[1:]]
        return f"{node.name}({', '.join(args)})"

    def operand(self, node: n.Node) -> str:
        """A comparison operand: a path, a value, or size(path)."""
        if isinstance(node, n.Path):
            return self.path(node)
        if isinstance(node, n.Call):
            if node.name == "size":
                if len(node.args) != 1:
                    raise ValidationError(
                        "Incorrect number of operands for operator or function; operator or "
                        f"function: size, number of operands: {len(node.args)}")
                if not isinstance(node.args[0], n.Path):
                    raise ValidationError("Operator or function requires a document path; "
                                          "operator or function: size")
                return f"size({self.path(node.args[0])})"
            if node.name in CONDITION_FUNCTIONS:
                raise ValidationError(f"Unexpected function in an operand: {node.name} at "
                                      f"{self.at(node.offset, node.name_length)}")
            raise ValidationError(f"Unrecognized function: {node.name} at "
                                  f"{self.at(node.offset, node.name_length)}")
        if isinstance(node, n.Missing):
            raise ValidationError("MISSING must be compared using IS operator")
        if isinstance(node, n.Arith | n.Negate):
            op = node.op if isinstance(node, n.Arith) else "-"
            raise ValidationError(
                f"Unsupported operator in Condition Expression. Operator: {op}")
        if isinstance(node, n.Compare | n.Between | n.In | n.Is | n.And | n.Or | n.Not):
            raise ValidationError("Unsupported operand in Condition Expression: a condition "
                                  "cannot be compared")
        return self.value(value_of(node, self.statement))

    # --- updates ------------------------------------------------------------------------
    def update(self, actions: tuple[n.Assignment, ...]) -> str:
        clauses: dict[str, list[str]] = {"SET": [], "REMOVE": [], "ADD": [], "DELETE": []}
        for action in actions:
            target = self.path(action.path)
            value = action.value
            if value is None:
                clauses["REMOVE"].append(target)
            elif isinstance(value, n.Call) and value.name in ("set_add", "set_delete"):
                kind = "ADD" if value.name == "set_add" else "DELETE"
                clauses[kind].append(f"{target} {self.set_operand(action.path, value)}")
            else:
                clauses["SET"].append(f"{target} = {self.update_value(value, top=True)}")
        return " ".join(f"{kind} {', '.join(items)}" for kind, items in clauses.items() if items)

    def set_operand(self, target: n.Path, call: n.Call) -> str:
        name = call.name.upper()
        where = self.at(call.offset, call.name_length)
        if len(call.args) != 2:
            raise ValidationError(f"{name} must have exactly two arguments at {where}")
        first, second = call.args
        if not isinstance(first, n.Path) or first.steps != target.steps:
            raise ValidationError(
                f"The first argument to {name} must equal the assignment value at {where}")
        value = value_of(second, self.statement) if isinstance(second, n.Bag | n.Value) else None
        if type(value) is not dict or len(value) != 1 or next(iter(value)) not in (
                "SS", "NS", "BS"):
            raise ValidationError(f"The second argument to {name} must be a value with type SET "
                                  f"at {self.at(first.offset, first.length)}")
        return self.value(value)

    def update_value(self, node: n.Node, top: bool = False) -> str:
        if isinstance(node, n.Path):
            return self.path(node)
        if isinstance(node, n.Arith):
            if not top:
                raise ValidationError(
                    f"Unsupported operator in Update Expression. Operator: {node.op}")
            return f"{self.update_value(node.left)} {node.op} {self.update_value(node.right)}"
        if isinstance(node, n.Call):
            if node.name == "list_append":
                if len(node.args) != 2:
                    raise ValidationError(
                        "Incorrect number of operands for operator or function; operator or "
                        f"function: list_append, number of operands: {len(node.args)}")
                args = ", ".join(self.update_value(arg) for arg in node.args)
                return f"list_append({args})"
            if node.name in ("set_add", "set_delete"):
                raise ValidationError(f"The first argument to {node.name.upper()} must equal the "
                                      f"assignment value at "
                                      f"{self.at(node.offset, node.name_length)}")
            raise ValidationError(f"Unrecognized function: {node.name} at "
                                  f"{self.at(node.offset, node.name_length)}")
        if isinstance(node, n.Is):
            raise ValidationError("IS operator is not supported in update expressions")
        if isinstance(node, n.Compare | n.Between | n.In | n.And | n.Or | n.Not):
            op = node.op if isinstance(node, n.Compare) else type(node).__name__.upper()
            raise ValidationError(f"Unsupported operator in Update Expression. Operator: {op}")
        if isinstance(node, n.Missing):
            raise ValidationError("MISSING must be compared using IS operator")
        if isinstance(node, n.Negate):
            raise ValidationError("Unsupported operator in Update Expression. Operator: -")
        return self.value(value_of(node, self.statement))

    def projection(self, heads: list[str]) -> str:
        return ", ".join(self.name(head) for head in heads)


def value_of(node: n.Node, statement: str, under: str = "root") -> dict[str, Any]:
    """The attribute value a literal (or bound parameter) stands for."""
    if isinstance(node, n.Value):
        return node.value
    if isinstance(node, n.ListLiteral):
        return {"L": [value_of(item, statement, under) for item in node.items]}
    if isinstance(node, n.TupleLiteral):
        return {"M": tuple_entries(node, statement, under)}
    if isinstance(node, n.Bag):
        return bag_of(node)
    if isinstance(node, n.Call):
        raise ValidationError(f"Unsupported data type: {node.name} under key {under} at "
                              f"{position(statement, node.offset, node.name_length)}")
    if isinstance(node, n.Path):
        raise ValidationError(f"Unsupported data type: {node.text()} under key {under}")
    if isinstance(node, n.Missing):
        raise ValidationError("MISSING must be compared using IS operator")
    raise ValidationError(f"Unsupported data type: {type(node).__name__.upper()} under key "
                          f"{under}")


def tuple_entries(node: n.TupleLiteral, statement: str, under: str) -> dict[str, Any]:
    entries: dict[str, Any] = {}
    for key_node, value_node in node.entries:
        if not (isinstance(key_node, n.Value) and "S" in key_node.value):
            kind = (next(iter(key_node.value)) if isinstance(key_node, n.Value)
                    else type(key_node).__name__.upper())
            raise ValidationError(
                f"Tuple keys must be of type String. Actual type: {kind} under {under}")
        key = key_node.value["S"]
        if key in entries:
            raise ValidationError(f"Duplicate keys in tuple. Key: {key} under {under}")
        entries[key] = value_of(value_node, statement, key)
    return entries


def bag_of(node: n.Bag) -> dict[str, Any]:
    if not node.items:
        raise ValidationError("Empty bags are not supported")
    kinds: set[str] = set()
    members: list[str] = []
    for item in node.items:
        if not isinstance(item, n.Value) or item.parameter:
            raise ValidationError(_BAG)
        ((kind, text),) = item.value.items()
        if kind not in ("S", "N"):
            raise ValidationError(_BAG)
        kinds.add(kind)
        members.append(text)
    if len(kinds) > 1:
        raise ValidationError(_BAG)
    return {"SS" if kinds == {"S"} else "NS": members}
