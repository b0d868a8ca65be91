"""Hypothesis: legacy conditions and AttributeUpdates, translated into expression trees
(atoll.expressions.legacy) and run by the expression evaluator, agree with a naive
reference written straight from the DynamoDB documentation ("Legacy conditional
parameters": ComparisonOperator reference; API Reference: AttributeValueUpdate).

The reference works on decoded Python values and knows nothing of the expression code.
"""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atoll import expressions as ex
from atoll.errors import ValidationError
from atoll.expressions import legacy

laws = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))

numbers = st.sampled_from(["0", "1", "1.0", "-2.5", "10", "3"])
strings = st.text(alphabet="abc", max_size=3)
binaries = st.binary(max_size=3).map(lambda b: base64.b64encode(b).decode())
scalars = st.one_of(numbers.map(lambda n: {"N": n}), strings.map(lambda s: {"S": s}),
                    binaries.map(lambda b: {"B": b}))
sets = st.one_of(
    st.lists(numbers, min_size=1, max_size=3, unique_by=Decimal).map(lambda x: {"NS": x}),
    st.lists(strings, min_size=1, max_size=3, unique=True).map(lambda x: {"SS": x}))
others = st.one_of(st.just({"BOOL": True}), st.just({"NULL": True}),
                   st.lists(scalars, max_size=3).map(lambda x: {"L": x}),
                   st.dictionaries(st.sampled_from("xy"), scalars, max_size=2).map(
                       lambda x: {"M": x}))
attribute = st.one_of(st.none(), scalars, sets, others)


# ---- the reference ----------------------------------------------------------------

def decode(value: dict[str, Any]) -> tuple[str, Any]:
    (kind, inner), = value.items()
    if kind == "N":
        return kind, Decimal(inner)
    if kind == "B":
        return kind, base64.b64decode(inner)
    if kind == "NS":
        return kind, frozenset(Decimal(m) for m in inner)
    if kind == "SS":
        return kind, frozenset(inner)
    if kind == "L":
        return kind, tuple(decode(e) for e in inner)
    if kind == "M":
        return kind, frozenset((k, decode(e)) for k, e in inner.items())
    return kind, inner


def reference(operator: str, value: Any, operands: list[Any]) -> bool:
    if operator == "NULL":
        return value is None
    if operator == "NOT_NULL":
        return value is not None
    if value is None:
        return operator == "NE"
    kind, x = decode(value)
    args = [decode(o) for o in operands]
    same = all(a[0] == kind for a in args)
    if operator == "EQ":
        return args[0] == (kind, x)
    if operator == "NE":
        return args[0] != (kind, x)
    if operator in ("LT", "LE", "GT", "GE"):
        y = args[0][1]
        return same and {"LT": x < y, "LE": x <= y, "GT": x > y, "GE": x >= y}[operator]
    if operator == "BETWEEN":
        return same and args[0][1] <= x <= args[1][1]
    if operator == "IN":
        return any(a == (kind, x) for a in args)
    if operator == "BEGINS_WITH":
        return same and x.startswith(args[0][1])
    arg_kind, y = args[0]
    if kind in ("S", "B"):
        contained = kind == arg_kind and y in x
    elif kind in ("SS", "NS"):
        contained = kind == arg_kind + "S" and y in x
    elif kind == "L":
        contained = args[0] in x
    else:
        contained = False
    return contained if operator == "CONTAINS" else not contained


OPERATORS = ["EQ", "NE", "LE", "LT", "GE", "GT", "NOT_NULL", "NULL", "CONTAINS",
             "NOT_CONTAINS", "BEGINS_WITH", "IN", "BETWEEN"]


@st.composite
def conditions(draw: Any) -> tuple[str, list[Any]]:
    operator = draw(st.sampled_from(OPERATORS))
    if operator in ("NULL", "NOT_NULL"):
        return operator, []
    if operator in ("EQ", "NE"):
        return operator, [draw(st.one_of(scalars, sets, others))]
    kind = draw(st.sampled_from(["S", "B"] if operator == "BEGINS_WITH" else ["S", "N", "B"]))
    one = {"S": strings, "N": numbers, "B": binaries}[kind].map(lambda x: {kind: x})
    if operator == "IN":
        return operator, draw(st.lists(one, min_size=1, max_size=3))
    if operator == "BETWEEN":
        low, high = draw(one), draw(one)
        if decode(low)[1] > decode(high)[1]:
            low, high = high, low
        return operator, [low, high]
    return operator, [draw(one)]


# ---- the laws ---------------------------------------------------------------------

def evaluate(condition: Any, placeholders: legacy.Placeholders, item: dict[str, Any]) -> bool:
    return ex.evaluate_condition(condition, item, placeholders.names, placeholders.values)


@laws
@given(value=attribute, condition=conditions())
def test_filter_conditions_match_the_reference(value: Any, condition: tuple[str, list[Any]]
                                                ) -> None:
    operator, operands = condition
    item = {} if value is None else {"a": value}
    placeholders = legacy.Placeholders()
    translated = legacy.filter_condition(
        "ScanFilter", {"a": {"ComparisonOperator": operator, "AttributeValueList": operands}},
        None, placeholders)
    assert evaluate(translated, placeholders, item) == reference(operator, value, operands)


@laws
@given(values=st.tuples(attribute, attribute), first=conditions(), second=conditions(),
       operator=st.sampled_from([None, "AND", "OR"]))
def test_expected_combines_like_the_reference(values: tuple[Any, Any], first: Any, second: Any,
                                              operator: str | None) -> None:
    item = {name: v for name, v in zip(("a", "b"), values) if v is not None}
    expected = {"a": {"ComparisonOperator": first[0], "AttributeValueList": first[1]},
                "b": {"ComparisonOperator": second[0], "AttributeValueList": second[1]}}
    placeholders = legacy.Placeholders()
    translated = legacy.expected(expected, operator, placeholders)
    results = [reference(first[0], values[0], first[1]),
               reference(second[0], values[1], second[1])]
    wanted = any(results) if operator == "OR" else all(results)
    assert evaluate(translated, placeholders, item) == wanted


@laws
@given(value=attribute, present=scalars)
def test_value_and_exists_forms(value: Any, present: Any) -> None:
    item = {} if value is None else {"a": value}
    for spec, wanted in [({"Value": present}, reference("EQ", value, [present])),
                         ({"Exists": True, "Value": present}, reference("EQ", value, [present])),
                         ({"Exists": False}, value is None)]:
        placeholders = legacy.Placeholders()
        translated = legacy.expected({"a": spec}, None, placeholders)
        assert evaluate(translated, placeholders, item) == wanted


def reference_update(item: dict[str, Any], action: str, value: Any) -> dict[str, Any]:
    """AttributeValueUpdate, as documented; raises ValueError on a type mismatch."""
    out = dict(item)
    current = item.get("a")
    if action == "PUT":
        out["a"] = value
    elif value is None:  # DELETE without a value
        out.pop("a", None)
    elif current is None:
        if action == "ADD":
            out["a"] = value
    elif next(iter(current)) != next(iter(value)):
        raise ValueError("type mismatch")
    else:
        kind = next(iter(value))
        if action == "ADD" and kind == "N":
            out["a"] = {"N": str(Decimal(current["N"]) + Decimal(value["N"]))}
        elif action == "ADD" and kind == "L":
            out["a"] = {"L": current["L"] + value["L"]}
        elif action == "ADD":
            members = decode(current)[1] | decode(value)[1]
            out["a"] = ("set", members)
        else:
            members = decode(current)[1] - decode(value)[1]
            if members:
                out["a"] = ("set", members)
            else:
                out.pop("a")
    return out


def comparable(item: dict[str, Any]) -> dict[str, Any]:
    """Sets as (marker, members), numbers as decimals: order and spelling do not matter."""
    out: dict[str, Any] = {}
    for name, value in item.items():
        if type(value) is tuple:
            out[name] = value
        elif next(iter(value)) in ("SS", "NS"):
            out[name] = ("set", decode(value)[1])
        else:
            out[name] = decode(value)
    return out


updates = st.one_of(
    st.tuples(st.just("PUT"), st.one_of(scalars, sets, others)),
    st.tuples(st.just("ADD"), st.one_of(numbers.map(lambda n: {"N": n}), sets,
                                        st.lists(scalars, max_size=2).map(lambda x: {"L": x}))),
    st.tuples(st.just("DELETE"), st.one_of(st.none(), sets)),
)


@laws
@given(value=st.one_of(st.none(), numbers.map(lambda n: {"N": n}), sets, scalars,
                       st.lists(scalars, max_size=2).map(lambda x: {"L": x})),
       update=updates)
def test_attribute_updates_match_the_reference(value: Any, update: tuple[str, Any]) -> None:
    action, operand = update
    item = {"k": {"S": "key"}, **({} if value is None else {"a": value})}
    spec = {"Action": action, **({} if operand is None else {"Value": operand})}
    placeholders = legacy.Placeholders()
    translated = legacy.attribute_updates({"a": spec}, placeholders)
    assert translated is not None
    try:
        wanted = reference_update(item, action, operand)
    except ValueError:
        try:
            ex.apply_update(translated, item, placeholders.names, placeholders.values)
        except ValidationError as error:
            assert error.message == legacy.TYPE_MISMATCH
            return
        raise AssertionError("a type mismatch was applied") from None
    got, _paths = ex.apply_update(translated, item, placeholders.names, placeholders.values)
    assert comparable(got) == comparable(wanted)


@laws
@given(condition=conditions())
def test_key_conditions_take_only_indexable_operators(condition: tuple[str, list[Any]]) -> None:
    operator, operands = condition
    spec = {"k": {"ComparisonOperator": operator, "AttributeValueList": operands}}
    try:
        legacy.key_condition(spec, legacy.Placeholders())
        raised = None
    except ValidationError as error:
        raised = error.message
    if operator in ("EQ", "LE", "LT", "GE", "GT", "BEGINS_WITH", "BETWEEN"):
        assert raised is None  # the key schema and operand types are checked by resolve
    else:
        assert raised == "Attempted conditional constraint is not an indexable operation"
