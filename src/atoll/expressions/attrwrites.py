"""An UpdateItem as per-attribute writes: which merge rule each touched attribute gets.

Theory of operation: the evaluator (update.py) computes the new item exactly as DynamoDB
does; this module then looks at the parsed update (an UpdateExpression, or
AttributeUpdates translated by legacy.py into the same actions), the old item and that
new item, and describes each touched top-level attribute as one `AttributeWrite`
(atoll.model.writes), whose `value` is the attribute's new whole value:

  INCREMENT  a single action on the top-level attribute that is a pure increment of it:
             `ADD a :d` on a number (or on an absent attribute), `SET a = a + :d`,
             `SET a = :d + a`, `SET a = a - :d`, and the same with `if_not_exists(a, :z)`
             in place of `a` when `a` exists or `:z` is zero (the AttributeUpdates ADD of a
             number is an `ADD a :d` action). `ADD a :0` on an absent attribute creates
             it, so it is a SET of 0.
  ADD / DELETE (members)  `ADD a :set`, `DELETE a :set` on the top-level attribute.
  SET / REMOVE  any other touched attribute: its whole new value, or its removal. Several
             actions on one attribute, or a nested path (`SET m.x = :v`, `REMOVE l[0]`),
             touch the top-level attribute: its whole new value is written.

An action that changes nothing is no write: REMOVE or DELETE of an absent attribute, and
nested REMOVEs that find nothing. Applied to the old item's state in isolation, the
writes give exactly the evaluator's new item (property-tested).
"""

from __future__ import annotations

from typing import Any

from atoll.expressions import nodes as n
from atoll.expressions import paths
from atoll.expressions.paths import Path
from atoll.expressions.update import Action, Call, Update
from atoll.model.numbers import format_number, to_decimal
from atoll.model.writes import (
    ADD_ELEMENTS,
    DELETE_ELEMENTS,
    INCREMENT,
    REMOVE,
    SET,
    AttributeWrite,
)

Item = dict[str, Any]
_SET_TYPES = frozenset(("SS", "NS", "BS"))


def attribute_writes(update: Update, names: dict[str, str], values: dict[str, Any],
                     old_item: Item | None, new_item: Item,
                     resolved: list[Path] | None = None) -> list[AttributeWrite]:
    """The writes of an update whose evaluation turned `old_item` (None: no item) into
    `new_item` (normalised: after `check_item`, as it will be stored). `resolved`: the
    actions' resolved paths when the caller has them."""
    if resolved is None:
        resolved = [paths.resolve(action.path, names) for action in update.actions]
    groups: dict[str, list[tuple[Action, Path]]] = {}
    for action, path in zip(update.actions, resolved):
        head = path[0]
        if type(head) is str:
            groups.setdefault(head, []).append((action, path))
    old: Item = old_item if old_item is not None else {}
    writes: list[AttributeWrite] = []
    for name, actions in groups.items():
        write = _write(name, actions, names, values, old.get(name), new_item.get(name))
        if write is not None:
            writes.append(write)
    return writes


def _write(name: str, actions: list[tuple[Action, Path]], names: dict[str, str],
           values: dict[str, Any], old: Any, new: Any) -> AttributeWrite | None:
    if len(actions) == 1 and len(actions[0][1]) == 1:
        action = actions[0][0]
        verb = action.verb
        if verb == "REMOVE":
            return None if old is None else AttributeWrite(REMOVE, name, None)
        if verb == "ADD":
            operand = n.value_of(action.value.name, values)
            if "N" in operand:
                if old is None and not to_decimal(operand["N"]):
                    return AttributeWrite(SET, name, new)
                return AttributeWrite(INCREMENT, name, new, {"N": operand["N"]})
            return AttributeWrite(ADD_ELEMENTS, name, new, operand)
        if verb == "DELETE":
            if old is None:
                return None
            operand = n.value_of(action.value.name, values)
            return AttributeWrite(DELETE_ELEMENTS, name, new, operand)
        delta = _increment(action.value, name, names, values, old)
        if delta is not None:
            return AttributeWrite(INCREMENT, name, new, {"N": delta})
        return _whole(name, new)
    if old == new and all(action.verb in ("REMOVE", "DELETE") for action, _ in actions):
        return None
    return _whole(name, new)


def _whole(name: str, new: Any) -> AttributeWrite:
    return AttributeWrite(REMOVE, name, None) if new is None else AttributeWrite(SET, name, new)


def _increment(expr: Any, name: str, names: dict[str, str], values: dict[str, Any],
               old: Any) -> str | None:
    """The delta (canonical number text) when `expr` is a pure increment of `name`."""
    if not isinstance(expr, Call) or expr.name not in ("+", "-") or len(expr.args) != 2:
        return None
    if old is not None and (type(old) is not dict or "N" not in old):
        return None
    left, right = expr.args
    if _is_self(left, name, names, values, old) and isinstance(right, n.ValueOperand):
        operand = n.value_of(right.name, values)
    elif expr.name == "+" and _is_self(right, name, names, values, old) \
            and isinstance(left, n.ValueOperand):
        operand = n.value_of(left.name, values)
    else:
        return None
    if type(operand) is not dict or "N" not in operand:
        return None
    delta = to_decimal(operand["N"])
    if expr.name == "-":
        delta = -delta
    return format_number(delta)


def _is_self(operand: Any, name: str, names: dict[str, str], values: dict[str, Any],
             old: Any) -> bool:
    """`operand` reads the attribute's current number: `name` itself, or
    `if_not_exists(name, :z)` when the attribute exists or `:z` is zero."""
    if isinstance(operand, n.PathOperand):
        return old is not None and paths.resolve(operand.path, names) == (name,)
    if isinstance(operand, Call) and operand.name == "if_not_exists":
        target, fallback = operand.args
        if not isinstance(target, n.PathOperand) or paths.resolve(target.path, names) != (name,):
            return False
        if old is not None:
            return True
        if isinstance(fallback, n.ValueOperand):
            default = n.value_of(fallback.name, values)
            return type(default) is dict and "N" in default and not to_decimal(default["N"])
    return False
