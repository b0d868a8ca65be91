"""Run the shared expression case table (tests/expression_cases.py) against the pure
parser and evaluator, with no server."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from atoll import expressions as ex
from atoll.errors import ValidationError
from tests.expression_cases import CASES


def _run(case: dict[str, Any]) -> Any:
    kind, expr = case["kind"], case["expr"]
    names, values = case["names"], case["values"]
    item = case["item"]
    if kind == "condition":
        parsed = ex.parse_condition(expr)
        return ex.evaluate_condition(parsed, item, names, values)
    if kind == "update":
        parsed = ex.parse_update(expr)
        before = copy.deepcopy(item)
        new_item, _ = ex.apply_update(parsed, item, names, values)
        assert item == before, "apply_update mutated its argument"
        return new_item
    if kind == "projection":
        parsed = ex.parse_projection(expr)
        return ex.project(item, parsed, names)
    schema = case["schema"]
    parsed = ex.parse_key_condition(expr)
    found = ex.resolve_key_condition(parsed, names, values, schema["hash"], schema["range"],
                                     schema["types"])
    return {"hash_value": found.hash_value, "op": found.op, "operands": list(found.operands)}


def _check_names_and_values(case: dict[str, Any]) -> None:
    """What the engine does before evaluating: every #name/:value used must be defined."""
    parse = {"condition": ex.parse_condition, "update": ex.parse_update,
             "projection": ex.parse_projection, "key": ex.parse_key_condition}[case["kind"]]
    parsed = parse(case["expr"])
    for name in sorted(parsed.names_used):
        if name not in case["names"]:
            raise ValidationError("An expression attribute name used in the document path is "
                                  f"not defined; attribute name: {name}")
    for value in sorted(parsed.values_used):
        if value not in case["values"]:
            raise ValidationError("An expression attribute value used in expression is not "
                                  f"defined; attribute value: {value}")
    assert set(case["names"]) <= parsed.names_used, "case defines unused names"
    assert set(case["values"]) <= parsed.values_used, "case defines unused values"


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case(case: dict[str, Any]) -> None:
    if "error" in case:
        with pytest.raises(ValidationError) as info:
            _check_names_and_values(case)
            _run(case)
        wanted = case.get("message_contains")
        if wanted is not None:
            assert wanted in info.value.message
    else:
        _check_names_and_values(case)
        assert _run(case) == case["expect"]


def test_key_condition_resolves_against_each_requests_names() -> None:
    """One parsed key condition (cached by its text) meets different #name maps and
    values from request to request; each resolves against its own."""
    parsed = ex.parse_key_condition("#h = :h AND #r > :r")
    types = {"pk": "S", "sk": "N", "other": "S"}
    first = ex.resolve_key_condition(parsed, {"#h": "pk", "#r": "sk"},
                                     {":h": {"S": "a"}, ":r": {"N": "1"}}, "pk", "sk", types)
    assert (first.hash_value, first.op, first.operands) == ({"S": "a"}, ">", ({"N": "1"},))
    again = ex.resolve_key_condition(parsed, {"#h": "pk", "#r": "sk"},
                                     {":h": {"S": "b"}, ":r": {"N": "7"}}, "pk", "sk", types)
    assert (again.hash_value, again.operands) == ({"S": "b"}, ({"N": "7"},))
    with pytest.raises(ValidationError, match="missed key schema element: pk"):
        ex.resolve_key_condition(parsed, {"#h": "other", "#r": "sk"},
                                 {":h": {"S": "a"}, ":r": {"N": "1"}}, "pk", "sk", types)
    with pytest.raises(ValidationError, match="one condition per key"):
        ex.resolve_key_condition(parsed, {"#h": "pk", "#r": "pk"},
                                 {":h": {"S": "a"}, ":r": {"S": "b"}}, "pk", "sk", types)
