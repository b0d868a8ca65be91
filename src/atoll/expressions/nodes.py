"""Parsed condition trees and how they evaluate against an item.

Theory of operation: the parser builds small node objects; each condition node has
`test(item, names, values) -> bool` and each operand node has
`get(item, names, values) -> AttributeValue | None` (None: the path leads nowhere).
Nodes are immutable after parsing and shared between requests through the parse cache,
so request data (names, values, item) only ever flows through the arguments.

AND/OR are n-ary (a chain of 1000 ANDs is one node, evaluated by a loop, never a deep
recursion).

Why nodes and not closures: key conditions and the engine need to inspect the tree
(`keycondition.resolve` walks it), which closures would hide. Measured with
bench/expressions_micro.py (CPython 3.11): a 5-clause condition evaluates in ~9 us,
`attribute_not_exists(pk)` in ~0.4 us; a closure-compiled variant was not benchmarked.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from atoll.errors import ValidationError
from atoll.expressions import paths
from atoll.expressions import values as v
from atoll.expressions.paths import Path

Item = dict[str, Any]
Names = dict[str, str]
Values = dict[str, Any]


# ---- operands -------------------------------------------------------------------------

class Operand(ABC):
    __slots__ = ()

    @abstractmethod
    def get(self, item: Item | None, names: Names, values: Values) -> Any:
        """The operand's value for `item`, or None where its path leads nowhere."""


class PathOperand(Operand):
    __slots__ = ("path",)

    def __init__(self, path: tuple[str | int, ...]) -> None:
        self.path = path

    def get(self, item: Item | None, names: Names, values: Values) -> Any:
        return paths.lookup(item, paths.resolve(self.path, names))

    def resolved(self, names: Names) -> Path:
        return paths.resolve(self.path, names)

    def __repr__(self) -> str:
        return f"PathOperand({self.path!r})"


class ValueOperand(Operand):
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def get(self, item: Item | None, names: Names, values: Values) -> Any:
        return value_of(self.name, values)

    def __repr__(self) -> str:
        return f"ValueOperand({self.name!r})"


def value_of(name: str, values: Values) -> Any:
    try:
        return values[name]
    except (KeyError, TypeError):
        raise ValidationError("An expression attribute value used in expression is not "
                              f"defined; attribute value: {name}") from None


class SizeOperand(Operand):
    __slots__ = ("operand",)

    def __init__(self, operand: Operand) -> None:
        self.operand = operand

    def get(self, item: Item | None, names: Names, values: Values) -> Any:
        n = v.size(self.operand.get(item, names, values))
        return None if n is None else {"N": str(n)}

    def __repr__(self) -> str:
        return f"SizeOperand({self.operand!r})"


# ---- conditions -----------------------------------------------------------------------

class Condition(ABC):
    __slots__ = ()

    @abstractmethod
    def test(self, item: Item | None, names: Names, values: Values) -> bool:
        """Whether the condition holds for `item`."""


def _eq(a: Any, b: Any) -> bool:
    return v.equal(a, b)


def _ne(a: Any, b: Any) -> bool:
    return not v.equal(a, b)


def _lt(a: Any, b: Any) -> bool:
    c = v.order(a, b)
    return c is not None and c < 0


def _le(a: Any, b: Any) -> bool:
    c = v.order(a, b)
    return c is not None and c <= 0


def _gt(a: Any, b: Any) -> bool:
    c = v.order(a, b)
    return c is not None and c > 0


def _ge(a: Any, b: Any) -> bool:
    c = v.order(a, b)
    return c is not None and c >= 0


COMPARATORS = {"=": _eq, "<>": _ne, "<": _lt, "<=": _le, ">": _gt, ">=": _ge}


class Compare(Condition):
    __slots__ = ("op", "left", "right", "_fn")

    def __init__(self, op: str, left: Operand, right: Operand) -> None:
        self.op = op
        self.left = left
        self.right = right
        self._fn = COMPARATORS[op]

    def test(self, item: Item | None, names: Names, values: Values) -> bool:
        return self._fn(self.left.get(item, names, values), self.right.get(item, names, values))

    def __repr__(self) -> str:
        return f"Compare({self.op!r}, {self.left!r}, {self.right!r})"


class Between(Condition):
    __slots__ = ("operand", "low", "high")

    def __init__(self, operand: Operand, low: Operand, high: Operand) -> None:
        self.operand = operand
        self.low = low
        self.high = high

    def test(self, item: Item | None, names: Names, values: Values) -> bool:
        x = self.operand.get(item, names, values)
        low = v.order(x, self.low.get(item, names, values))
        if low is None or low < 0:
            return False
        high = v.order(x, self.high.get(item, names, values))
        return high is not None and high <= 0


class In(Condition):
    __slots__ = ("operand", "options")

    def __init__(self, operand: Operand, options: tuple[Operand, ...]) -> None:
        self.operand = operand
        self.options = options

    def test(self, item: Item | None, names: Names, values: Values) -> bool:
        x = self.operand.get(item, names, values)
        if x is None:
            return False
        return any(v.equal(x, option.get(item, names, values)) for option in self.options)


class And(Condition):
    __slots__ = ("parts",)

    def __init__(self, parts: tuple[Condition, ...]) -> None:
        self.parts = parts

    def test(self, item: Item | None, names: Names, values: Values) -> bool:
        for part in self.parts:
            if not part.test(item, names, values):
                return False
        return True


class Or(Condition):
    __slots__ = ("parts",)

    def __init__(self, parts: tuple[Condition, ...]) -> None:
        self.parts = parts

    def test(self, item: Item | None, names: Names, values: Values) -> bool:
        for part in self.parts:
            if part.test(item, names, values):
                return True
        return False


class Not(Condition):
    __slots__ = ("part",)

    def __init__(self, part: Condition) -> None:
        self.part = part

    def test(self, item: Item | None, names: Names, values: Values) -> bool:
        return not self.part.test(item, names, values)


class Function(Condition):
    """A boolean function: attribute_exists, attribute_not_exists, attribute_type,
    begins_with, contains."""

    __slots__ = ("name", "args")

    def __init__(self, name: str, args: tuple[Operand, ...]) -> None:
        self.name = name
        self.args = args

    def test(self, item: Item | None, names: Names, values: Values) -> bool:
        name = self.name
        first = self.args[0].get(item, names, values)
        if name == "attribute_exists":
            return first is not None
        if name == "attribute_not_exists":
            return first is None
        second = self.args[1].get(item, names, values)
        if name == "begins_with":
            return v.begins_with(first, second)
        if name == "contains":
            return v.contains(first, second)
        # attribute_type: the type name was checked before evaluation
        return first is not None and type(second) is dict and v.type_of(first) == second.get("S")

    def __repr__(self) -> str:
        return f"Function({self.name!r}, {self.args!r})"


def path_heads(root: Condition, names: Names) -> set[str]:
    """The top-level attribute names a condition reads (a Query's filter may not read
    its key attributes)."""
    return {str(path[0]) for path in document_paths(root, names) if type(path[0]) is str}


def document_paths(root: Condition, names: Names) -> list[paths.Path]:
    """Every document path a condition reads, resolved. Iterative, like evaluation: deep
    trees need no deep recursion."""
    found: list[paths.Path] = []
    stack: list[Any] = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, PathOperand):
            found.append(paths.resolve(node.path, names))
        elif isinstance(node, (And, Or)):
            stack.extend(node.parts)
        elif isinstance(node, Not):
            stack.append(node.part)
        elif isinstance(node, Compare):
            stack += (node.left, node.right)
        elif isinstance(node, Between):
            stack += (node.operand, node.low, node.high)
        elif isinstance(node, In):
            stack += (node.operand, *node.options)
        elif isinstance(node, Function):
            stack.extend(node.args)
        elif isinstance(node, SizeOperand):
            stack.append(node.operand)
    return found
