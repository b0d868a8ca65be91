"""The public API contract the engine relies on, beyond the case table."""

from __future__ import annotations

import copy

import pytest

from atoll import expressions as ex
from atoll.errors import ValidationError


def test_parse_is_cached_by_text() -> None:
    assert ex.parse_condition("a = :v") is ex.parse_condition("a = :v")
    assert ex.parse_update("SET a = :v") is ex.parse_update("SET a = :v")
    assert ex.parse_projection("a, b") is ex.parse_projection("a, b")
    assert ex.parse_key_condition("pk = :v") is ex.parse_key_condition("pk = :v")


def test_names_and_values_used() -> None:
    cond = ex.parse_condition("#a.b = :x AND size(#c) > :y")
    assert cond.names_used == {"#a", "#c"} and cond.values_used == {":x", ":y"}
    update = ex.parse_update("SET #a = if_not_exists(#b, :v) REMOVE #c ADD d :w")
    assert update.names_used == {"#a", "#b", "#c"} and update.values_used == {":v", ":w"}
    assert ex.parse_projection("#p, q.#r").names_used == {"#p", "#r"}
    assert ex.parse_projection("#p").values_used == frozenset()
    kc = ex.parse_key_condition("#h = :h AND begins_with(#r, :r)")
    assert kc.names_used == {"#h", "#r"} and kc.values_used == {":h", ":r"}


def test_filter_expression_kind_in_messages() -> None:
    with pytest.raises(ValidationError, match="^Invalid FilterExpression: Syntax error"):
        ex.parse_condition("a =", "FilterExpression")


def test_apply_update_does_not_mutate_and_reports_paths() -> None:
    item = {"pk": {"S": "k"}, "m": {"M": {"x": {"N": "1"}}}, "l": {"L": [{"N": "1"}]},
            "s": {"SS": ["a"]}}
    before = copy.deepcopy(item)
    update = ex.parse_update("SET m.y = :v, l[5] = :v REMOVE m.x ADD s :s")
    new, paths = ex.apply_update(update, item, {}, {":v": {"N": "2"}, ":s": {"SS": ["b"]}})
    assert item == before
    assert new["m"] == {"M": {"y": {"N": "2"}}}
    assert new["l"] == {"L": [{"N": "1"}, {"N": "2"}]}
    assert sorted(map(str, paths)) == sorted(map(str, [("m", "y"), ("l", 1), ("m", "x"),
                                                       ("s",)]))
    assert ex.project_paths(new, paths) == {"m": {"M": {"y": {"N": "2"}}},
                                            "l": {"L": [{"N": "2"}]}, "s": new["s"]}
    assert ex.project_paths(item, paths) == {"m": {"M": {"x": {"N": "1"}}}, "s": item["s"]}


def test_remove_nested_on_missing_item_is_ignored() -> None:
    update = ex.parse_update("REMOVE x.y, z[0]")
    new, _ = ex.apply_update(update, {"pk": {"S": "k"}}, {}, {}, item_exists=False)
    assert new == {"pk": {"S": "k"}}
    with pytest.raises(ValidationError, match="invalid for update"):
        ex.apply_update(update, {"pk": {"S": "k"}}, {}, {})


@pytest.mark.parametrize(("text", "names", "touched"), [
    ("SET pk = :v", {}, "pk"), ("REMOVE sk", {}, "sk"), ("ADD #k :v", {"#k": "pk"}, "pk"),
    ("DELETE sk :v", {}, "sk"), ("SET a = :v, pk.x = :v", {}, "pk"), ("SET a = pk", {}, None),
    ("SET #k = :v", {"#k": "pk.x"}, None),
])
def test_update_touches(text: str, names: dict[str, str], touched: str | None) -> None:
    assert ex.update_touches(ex.parse_update(text), names, {"pk", "sk"}) == touched


def test_validate_reports_value_errors_without_evaluating() -> None:
    cond = ex.parse_condition("a BETWEEN :hi AND :lo", "FilterExpression")
    with pytest.raises(ValidationError, match="^Invalid FilterExpression: The BETWEEN"):
        ex.validate(cond, {}, {":hi": {"N": "2"}, ":lo": {"N": "1"}})
    with pytest.raises(ValidationError, match="overlap"):
        ex.validate(ex.parse_projection("#a, a"), {"#a": "a"}, {})


def test_deferred_error_order_unknown_function_before_reserved() -> None:
    with pytest.raises(ValidationError, match="Invalid function name; function: f"):
        ex.parse_condition("f(status)")
    with pytest.raises(ValidationError, match="redundant parentheses"):
        ex.parse_condition("((f(status)))")
    with pytest.raises(ValidationError, match="reserved keyword: status"):
        ex.parse_update("SET status = f(a)")


def test_reserved_word_list_is_complete_enough() -> None:
    from atoll.expressions.reserved import RESERVED_WORDS
    assert len(RESERVED_WORDS) == 573
    assert {"ABORT", "ZONE", "STATUS", "NAME", "SIZE", "TTL", "FLATTERN"} <= RESERVED_WORDS


def test_resolved_update_paths_follow_the_names_of_each_request() -> None:
    """The parsed update is shared by every request with its text; the paths resolved
    for one request's #names must never leak into another's."""
    update = ex.parse_update("SET #a = :v REMOVE #b")
    item = {"pk": {"S": "k"}, "x": {"N": "1"}, "y": {"N": "2"}}
    values = {":v": {"S": "new"}}
    for _round in range(2):  # the second round answers from what the first remembered
        for names, expected in (
                ({"#a": "x", "#b": "y"}, {"pk": {"S": "k"}, "x": {"S": "new"}}),
                ({"#a": "y", "#b": "x"}, {"pk": {"S": "k"}, "y": {"S": "new"}}),
                ({"#a": "z", "#b": "x"}, {"pk": {"S": "k"}, "y": {"N": "2"}, "z": {"S": "new"}})):
            resolved = ex.validate(update, names, values)
            assert ex.apply_update(update, item, names, values, resolved=resolved)[0] == expected
            assert ex.apply_update(update, item, names, values)[0] == expected
    with pytest.raises(ValidationError, match="overlap"):
        ex.validate(update, {"#a": "x", "#b": "x"}, values)
    for _many in range(20):  # the remembered maps stay few
        ex.validate(update, {"#a": f"a{_many}", "#b": "b"}, values)
    assert len(update.resolved) <= 8
