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

from typing import Any, Final, NamedTuple

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


class AttributeWrite(NamedTuple):
    kind: str
    name: str
    value: dict[str, Any] | None
    operand: dict[str, Any] | None = None
