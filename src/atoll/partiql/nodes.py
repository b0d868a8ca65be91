"""The parsed form of a PartiQL statement: expression nodes and the five statements.

Theory of operation: the parser binds every `?` to its parameter while parsing, so a
`Value` holds a DynamoDB attribute value (`{"S": "x"}`) whether it was written as a
literal or passed as a parameter. Every node keeps the offset and length of the text it
came from, so a message can point at it (`at <line>:<column>:<length>`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Step = str | int  # a map key or a list index of a document path


@dataclass(frozen=True)
class Node:
    offset: int
    length: int


@dataclass(frozen=True)
class Path(Node):
    """A document path: `a`, `"a b".c[2]`. `steps[0]` is always a name."""

    steps: tuple[Step, ...]

    @property
    def head(self) -> str:
        head = self.steps[0]
        assert isinstance(head, str)
        return head

    def is_name(self, name: str) -> bool:
        return len(self.steps) == 1 and self.steps[0] == name

    def text(self) -> str:
        out = ""
        for step in self.steps:
            if isinstance(step, int):
                out += f"[{step}]"
            else:
                out += ("." if out else "") + step
        return out


@dataclass(frozen=True)
class Value(Node):
    """A literal or a bound parameter, as a DynamoDB attribute value."""

    value: dict[str, Any]
    parameter: bool = False


@dataclass(frozen=True)
class Bag(Node):
    """A `<< ... >>` set literal (turned into SS or NS when the statement is translated,
    where its element types are checked)."""

    items: tuple[Node, ...]


@dataclass(frozen=True)
class ListLiteral(Node):
    items: tuple[Node, ...]


@dataclass(frozen=True)
class TupleLiteral(Node):
    """`{'name': value, ...}`: keys are the string literals' texts, in order."""

    entries: tuple[tuple[Node, Node], ...]


@dataclass(frozen=True)
class Missing(Node):
    """The MISSING literal (only `IS [NOT] MISSING` gives it a meaning in DynamoDB)."""


@dataclass(frozen=True)
class Call(Node):
    name: str  # lower case
    args: tuple[Node, ...]
    name_length: int = 0  # characters of the function name, for messages


@dataclass(frozen=True)
class Arith(Node):
    op: str  # "+" or "-"
    left: Node
    right: Node


@dataclass(frozen=True)
class Negate(Node):
    operand: Node


@dataclass(frozen=True)
class Compare(Node):
    op: str  # = <> < <= > >=
    left: Node
    right: Node


@dataclass(frozen=True)
class Between(Node):
    operand: Node
    low: Node
    high: Node
    negated: bool = False


@dataclass(frozen=True)
class In(Node):
    operand: Node
    items: tuple[Node, ...]
    negated: bool = False


@dataclass(frozen=True)
class Is(Node):
    operand: Node
    kind: str  # upper case: MISSING, NULL, BOOLEAN, STRING, ...
    negated: bool = False


@dataclass(frozen=True)
class And(Node):
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or(Node):
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not(Node):
    operand: Node


@dataclass(frozen=True)
class Source:
    """FROM "table" or "table"."index"."""

    table: str
    index: str | None = None


@dataclass(frozen=True)
class OrderKey:
    name: str
    descending: bool
    offset: int


@dataclass(frozen=True)
class Select:
    source: Source
    projection: tuple[Path, ...] | None  # None: `*`
    where: Node | None
    order_by: tuple[OrderKey, ...] = ()


@dataclass(frozen=True)
class Insert:
    source: Source
    item: Node


@dataclass(frozen=True)
class Assignment:
    """`SET path = value` (value None: `REMOVE path`)."""

    path: Path
    value: Node | None


@dataclass(frozen=True)
class Update:
    source: Source
    actions: tuple[Assignment, ...]
    where: Node | None
    returning: str | None = None  # ALL_OLD, UPDATED_OLD, ALL_NEW, UPDATED_NEW


@dataclass(frozen=True)
class Delete:
    source: Source
    where: Node | None
    returning: str | None = None


@dataclass(frozen=True)
class Exists:
    """`EXISTS(SELECT ...)`: a condition check inside ExecuteTransaction."""

    select: Select


Statement = Select | Insert | Update | Delete | Exists


def is_read(statement: Statement) -> bool:
    return isinstance(statement, Select)


def conjuncts(node: Node | None) -> list[Node]:
    """The top-level AND terms of a condition (flattened)."""
    if node is None:
        return []
    if isinstance(node, And):
        out: list[Node] = []
        for item in node.items:
            out.extend(conjuncts(item))
        return out
    return [node]
