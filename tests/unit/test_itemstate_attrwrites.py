"""Which merge rule each attribute an UpdateItem touches gets (attrwrites.py)."""

from __future__ import annotations

from typing import Any

import pytest

from atoll import expressions as ex
from atoll.expressions import legacy
from atoll.expressions.attrwrites import attribute_writes
from atoll.model.values import check_item
from atoll.model.writes import (
    ADD_ELEMENTS,
    DELETE_ELEMENTS,
    INCREMENT,
    REMOVE,
    SET,
)

KEY = {"pk": {"S": "k"}}
OLD = {**KEY, "n": {"N": "5"}, "s": {"SS": ["e", "f"]}, "x": {"S": "v"},
       "m": {"M": {"a": {"N": "1"}}}, "l": {"L": [{"S": "l0"}]}}
VALUES = {":d": {"N": "2"}, ":neg": {"N": "-1.5"}, ":zero": {"N": "0"}, ":five": {"N": "5"},
          ":v": {"S": "w"}, ":ss": {"SS": ["f", "g"]}, ":list": {"L": [{"S": "z"}]}}
NAMES = {"#n": "n"}

# (expression, old item (None: no item), [(kind, name, operand)])
CASES: list[tuple[str, dict[str, Any] | None, list[tuple[str, str, Any]]]] = [
    ("ADD n :d", OLD, [(INCREMENT, "n", {"N": "2"})]),
    ("ADD n :neg", OLD, [(INCREMENT, "n", {"N": "-1.5"})]),
    ("ADD n :d", None, [(INCREMENT, "n", {"N": "2"})]),
    ("ADD n :zero", None, [(SET, "n", None)]),  # creates n = 0: a value, not a counter
    ("ADD n :zero", OLD, [(INCREMENT, "n", {"N": "0"})]),
    ("SET n = n + :d", OLD, [(INCREMENT, "n", {"N": "2"})]),
    ("SET n = :d + n", OLD, [(INCREMENT, "n", {"N": "2"})]),
    ("SET n = n - :d", OLD, [(INCREMENT, "n", {"N": "-2"})]),
    ("SET n = n - :neg", OLD, [(INCREMENT, "n", {"N": "1.5"})]),
    ("SET #n = #n + :d", OLD, [(INCREMENT, "n", {"N": "2"})]),
    ("SET n = (n + :d)", OLD, [(INCREMENT, "n", {"N": "2"})]),
    ("SET n = :d - n", OLD, [(SET, "n", None)]),
    ("SET n = n + n", OLD, [(SET, "n", None)]),
    ("SET n = m.a + :d", OLD, [(SET, "n", None)]),
    ("SET n = if_not_exists(n, :zero) + :d", None, [(INCREMENT, "n", {"N": "2"})]),
    ("SET n = if_not_exists(n, :zero) + :d", OLD, [(INCREMENT, "n", {"N": "2"})]),
    ("SET n = :d + if_not_exists(n, :zero)", None, [(INCREMENT, "n", {"N": "2"})]),
    ("SET n = if_not_exists(n, :five) + :d", None, [(SET, "n", None)]),
    ("SET n = if_not_exists(n, :five) + :d", OLD, [(INCREMENT, "n", {"N": "2"})]),
    ("SET n = if_not_exists(n, :zero) - :d", None, [(INCREMENT, "n", {"N": "-2"})]),
    ("SET n = :d", OLD, [(SET, "n", None)]),
    ("ADD s :ss", OLD, [(ADD_ELEMENTS, "s", {"SS": ["f", "g"]})]),
    ("ADD s :ss", None, [(ADD_ELEMENTS, "s", {"SS": ["f", "g"]})]),
    ("DELETE s :ss", OLD, [(DELETE_ELEMENTS, "s", {"SS": ["f", "g"]})]),
    ("DELETE s :ss", None, []),  # nothing to delete from: no write
    ("REMOVE x", OLD, [(REMOVE, "x", None)]),
    ("REMOVE x", None, []),
    ("REMOVE nothing", OLD, []),
    ("SET m.a = :v", OLD, [(SET, "m", None)]),
    ("SET m.b = :v, m.a = :d", OLD, [(SET, "m", None)]),
    ("REMOVE m.a", OLD, [(SET, "m", None)]),
    ("REMOVE m.zz", OLD, []),  # removes nothing
    ("ADD m.a :d", OLD, [(SET, "m", None)]),  # nested: the whole new map
    ("SET l = list_append(l, :list)", OLD, [(SET, "l", None)]),
    ("REMOVE l[0]", OLD, [(SET, "l", None)]),
    ("SET x = :v, y = x REMOVE s ADD n :d", OLD,
     [(SET, "x", None), (SET, "y", None), (REMOVE, "s", None), (INCREMENT, "n", {"N": "2"})]),
]


def classify(text: str, old: dict[str, Any] | None) -> list[tuple[str, str, Any]]:
    parsed = ex.parse_update(text)
    values = {k: v for k, v in VALUES.items() if k in parsed.values_used}
    names = {k: v for k, v in NAMES.items() if k in parsed.names_used}
    new, _ = ex.apply_update(parsed, dict(old) if old else dict(KEY), names, values,
                             item_exists=old is not None)
    check_item(new)
    writes = attribute_writes(parsed, names, values, old, new)
    for write in writes:  # every write carries the attribute's new whole value
        assert write.value == new.get(write.name)
    return [(w.kind, w.name, w.operand) for w in writes]


@pytest.mark.parametrize(("text", "old", "expected"), CASES,
                         ids=[f"{text} on {'item' if old else 'none'}"
                              for text, old, _ in CASES])
def test_update_expression_writes(text: str, old: dict[str, Any] | None,
                                  expected: list[tuple[str, str, Any]]) -> None:
    assert sorted(classify(text, old)) == sorted(expected)


LEGACY_CASES: list[tuple[dict[str, Any], list[tuple[str, str, Any]]]] = [
    ({"n": {"Action": "ADD", "Value": {"N": "3"}}}, [(INCREMENT, "n", {"N": "3"})]),
    ({"s": {"Action": "ADD", "Value": {"SS": ["g"]}}}, [(ADD_ELEMENTS, "s", {"SS": ["g"]})]),
    ({"l": {"Action": "ADD", "Value": {"L": [{"S": "q"}]}}}, [(SET, "l", None)]),
    ({"x": {"Action": "PUT", "Value": {"S": "w"}}}, [(SET, "x", None)]),
    ({"x": {"Action": "DELETE"}}, [(REMOVE, "x", None)]),
    ({"s": {"Action": "DELETE", "Value": {"SS": ["e"]}}},
     [(DELETE_ELEMENTS, "s", {"SS": ["e"]})]),
]


@pytest.mark.parametrize(("specs", "expected"), LEGACY_CASES,
                         ids=[next(iter(specs)) + ":" + next(iter(specs.values()))["Action"]
                              for specs, _ in LEGACY_CASES])
def test_legacy_attribute_updates_writes(specs: dict[str, Any],
                                         expected: list[tuple[str, str, Any]]) -> None:
    placeholders = legacy.Placeholders()
    parsed = legacy.attribute_updates(specs, placeholders)
    assert parsed is not None
    new, _ = ex.apply_update(parsed, dict(OLD), placeholders.names, placeholders.values)
    writes = attribute_writes(parsed, placeholders.names, placeholders.values, OLD, new)
    assert [(w.kind, w.name, w.operand) for w in writes] == expected
