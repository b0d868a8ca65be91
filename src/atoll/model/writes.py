"""Attribute writes: what one UpdateItem does to each top-level attribute it touches.

Theory of operation: the expression evaluator computes an UpdateItem's new item as
DynamoDB defines it; `atoll.expressions.attrwrites` then describes the update, per
top-level attribute, as one `AttributeWrite`, and the per-item causal state
(`atoll.replication.itemstate`) records each write with the merge rule its kind asks
for: a counter increment counts alongside concurrent increments, set additions and
deletions merge add-wins, everything else is a last-writer-wins value of the whole
attribute. The type lives here, below both, so neither package imports the other.

Every write carries `value`, the attribute's new whole value as the evaluator computed
it (None: the attribute is absent afterwards), so the state can check that what it will
show is what the client was told.
"""

from __future__ import annotations

from typing import Any, Final

SET: Final = "set"
"""The attribute's new whole value is `value` (a SET, a nested change, a list append)."""
REMOVE: Final = "remove"
"""The attribute is removed (`value` is None)."""
INCREMENT: Final = "increment"
"""A counter increment by `operand` ({"N": delta}, delta may be negative)."""
ADD_ELEMENTS: Final = "add"
"""ADD of the members of the set `operand` ({"SS"|"NS"|"BS": [...]})."""
DELETE_ELEMENTS: Final = "delete"
"""DELETE of the members of the set `operand`."""

KINDS: Final = frozenset((SET, REMOVE, INCREMENT, ADD_ELEMENTS, DELETE_ELEMENTS))


class AttributeWrite:
    """One attribute's write: `kind`, the attribute `name`, its new whole `value` and
    the `operand` of an increment or a member edit. A plain class rather than a
    NamedTuple: compiled, it is built natively (a NamedTuple's constructor runs
    interpreted), and every UpdateItem builds one per attribute it touches."""

    __slots__ = ("kind", "name", "value", "operand")

    def __init__(self, kind: str, name: str, value: dict[str, Any] | None,
                 operand: dict[str, Any] | None = None) -> None:
        self.kind = kind
        self.name = name
        self.value = value
        self.operand = operand

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, AttributeWrite) and self.kind == other.kind
                and self.name == other.name and self.value == other.value
                and self.operand == other.operand)

    def __repr__(self) -> str:
        return (f"AttributeWrite({self.kind!r}, {self.name!r}, {self.value!r}, "
                f"{self.operand!r})")
