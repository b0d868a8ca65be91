"""What a SELECT answers: projected paths picked out of the items the engine read.

DynamoDB's PartiQL names each projected path by its last name and the list indexes after
it: `SELECT m.k[1], l[0], m.z` answers `k[1]`, `l[0]` and `z` (so two paths with the same
last name are refused before anything runs), and an attribute an item lacks is not in
its answer. A residual condition (the terms a read could not push down, see
`plans.translate_select`) is evaluated here with the engine's own expression evaluator.
"""

from __future__ import annotations

from typing import Any

from atoll import expressions as ex
from atoll.errors import ValidationError
from atoll.partiql import nodes as n


def label(path: n.Path) -> str:
    """The name a projected path answers under."""
    last = max(i for i, step in enumerate(path.steps) if isinstance(step, str))
    out = str(path.steps[last])
    for step in path.steps[last + 1:]:
        out += f"[{step}]"
    return out


def labels_of(projection: tuple[n.Path, ...]) -> list[str]:
    labels: list[str] = []
    for path in projection:
        name = label(path)
        if name in labels:
            raise ValidationError(f"Duplicate identifiers in select clause: {name}")
        labels.append(name)
    return labels


def lookup(item: dict[str, Any], steps: tuple[n.Step, ...]) -> Any:
    """The attribute value at `steps` of an item, or None where the path leads nowhere."""
    head = steps[0]
    current = item.get(head) if isinstance(head, str) else None
    for step in steps[1:]:
        if current is None:
            return None
        if isinstance(step, int):
            inner = current.get("L")
            current = inner[step] if type(inner) is list and step < len(inner) else None
        else:
            inner = current.get("M")
            current = inner.get(step) if type(inner) is dict else None
    return current


def reshape(item: dict[str, Any], projection: tuple[n.Path, ...] | None) -> dict[str, Any]:
    if projection is None:
        return item
    out: dict[str, Any] = {}
    for path in projection:
        value = lookup(item, path.steps)
        if value is not None:
            out[label(path)] = value
    return out


def keeps(condition: str, names: dict[str, str], values: dict[str, Any],
          item: dict[str, Any]) -> bool:
    """Whether an item satisfies a residual condition."""
    parsed = ex.parse_condition(condition, "ConditionExpression")  # cached by text
    return ex.evaluate_condition(parsed, item, names, values)
