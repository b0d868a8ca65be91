"""Hypothesis: the parsers raise nothing but ValidationError on any text, and evaluation
never crashes on any item (a KeyError or RecursionError escaping would be a bug)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atoll import expressions as ex
from atoll.errors import ValidationError

PARSERS = (ex.parse_condition, ex.parse_update, ex.parse_projection, ex.parse_key_condition)

TOKENS = ["a", "b", "#n", ":v", ":w", "(", ")", "[", "]", "0", "1", ",", ".", "=", "<>", "<",
          "<=", ">", ">=", "+", "-", "AND", "OR", "NOT", "BETWEEN", "IN", "SET", "REMOVE",
          "ADD", "DELETE", "size", "attribute_exists", "attribute_not_exists", "attribute_type",
          "begins_with", "contains", "if_not_exists", "list_append", "status", "_", "#", ":",
          "$", '"', " "]

token_soup = st.lists(st.sampled_from(TOKENS), max_size=40).map(" ".join)
fuzz = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))

scalars = st.one_of(
    st.text(max_size=5).map(lambda s: {"S": s}),
    st.sampled_from(["0", "1", "-2.5", "1E+3", "x", ""]).map(lambda n: {"N": n}),
    st.sampled_from(["", "AQ==", "!!"]).map(lambda b: {"B": b}),
    st.booleans().map(lambda b: {"BOOL": b}),
    st.just({"NULL": True}),
    st.lists(st.sampled_from(["a", "b"]), max_size=3).map(lambda x: {"SS": x}),
    st.lists(st.sampled_from(["1", "2", "q"]), max_size=3).map(lambda x: {"NS": x}),
    st.just({"weird": 1}), st.just({}), st.just({"S": 5}), st.just({"L": "notalist"}),
)
attribute_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3).map(lambda x: {"L": x}),
                            st.dictionaries(st.sampled_from(["a", "b", "n"]), inner,
                                            max_size=3).map(lambda x: {"M": x})),
    max_leaves=10)
items = st.dictionaries(st.sampled_from(["a", "b", "n", "status"]), attribute_values, max_size=4)
request_values = st.dictionaries(st.sampled_from([":v", ":w"]), attribute_values, max_size=2)

CONDITIONS = ["a = :v", "a < :v", "a BETWEEN :v AND :w", "a IN (:v, :w)", "contains(a, :v)",
              "begins_with(a, :v)", "size(a) > :v", "attribute_type(a, :v)", "a.b[0] <> :v",
              "#n.a[1] >= :w", "NOT a = b", "attribute_exists(a) OR size(b) = :v", "a = :v AND b = :w"]
UPDATES = ["SET a = :v", "SET a = a + :v", "SET a = list_append(a, :v)", "SET a.b = :v",
           "SET a[0] = :v", "SET b = if_not_exists(a, :v)", "REMOVE a.b, a[1]", "ADD a :v",
           "DELETE a :v", "SET #n.a[2] = :w REMOVE b", "SET a = :v - b"]


def _parse_all(text: str) -> None:
    for parse in PARSERS:
        try:
            parse(text)
        except ValidationError:
            pass


@fuzz
@given(st.text(max_size=60))
def test_parsers_only_raise_validation_errors_on_text(text: str) -> None:
    _parse_all(text)


@fuzz
@given(token_soup)
def test_parsers_only_raise_validation_errors_on_token_soup(text: str) -> None:
    _parse_all(text)


def test_deep_nesting_is_a_validation_error() -> None:
    # all under the 4 KB limit, so the nesting limit (not the size limit) must catch them
    for text in ["(" * 2000 + "a = :v" + ")" * 2000, "NOT " * 1000 + "a = :v",
                 "(a = :v AND " * 300 + "a = :v" + ")" * 300,
                 "size(" * 600 + "a" + ")" * 600 + " = :v",
                 "SET a = " + "if_not_exists(a, " * 200 + ":v" + ")" * 200]:
        for parse in PARSERS:
            try:
                parse(text)
            except ValidationError:
                pass


def test_long_and_chain_evaluates() -> None:
    text = " AND ".join(["a = :v"] * 300)
    cond = ex.parse_condition(text)
    assert ex.evaluate_condition(cond, {"a": {"N": "1"}}, {}, {":v": {"N": "1"}})


def _safely(call: Any) -> None:
    try:
        call()
    except ValidationError:
        pass


@fuzz
@given(st.sampled_from(CONDITIONS), items, request_values)
def test_conditions_never_crash(text: str, item: dict[str, Any], values: dict[str, Any]) -> None:
    cond = ex.parse_condition(text)
    _safely(lambda: ex.evaluate_condition(cond, item, {"#n": "n"}, values))
    _safely(lambda: ex.evaluate_condition(cond, None, {"#n": "n"}, values))


@fuzz
@given(st.sampled_from(UPDATES), items, request_values)
def test_updates_never_crash(text: str, item: dict[str, Any], values: dict[str, Any]) -> None:
    update = ex.parse_update(text)
    _safely(lambda: ex.apply_update(update, item, {"#n": "n"}, values))


@fuzz
@given(st.sampled_from(["a", "a.b", "a[0], b", "#n.a[1].b, a.n"]), items)
def test_projections_never_crash(text: str, item: dict[str, Any]) -> None:
    projection = ex.parse_projection(text)
    _safely(lambda: ex.project(item, projection, {"#n": "n"}))
