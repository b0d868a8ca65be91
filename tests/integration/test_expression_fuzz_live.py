"""Hypothesis against the live server: arbitrary text as each of the five expression
parameters, with arbitrary ExpressionAttributeNames/Values, sent through boto3.

The only acceptable answers are success, ValidationException or
ConditionalCheckFailedException: never an InternalServerError (500), never a dropped
connection (botocore would raise a connection error, which fails the test). The pure
parsers have their own fuzz test (tests/properties/test_expression_fuzz.py); this one
proves the whole path — request validation, the engine, error mapping — holds on any
input. The client skips botocore's parameter validation, so malformed maps reach the
server too.

Random text rarely gets past the parser, so two thirds of the texts come from a small
grammar of well-formed expressions over a few paths, #names and :values, with names and
values (valid or not) drawn for exactly the ones the text uses: those reach evaluation,
updates and key checks. 300 examples per expression kind, no deadline. The legacy
parameters (Expected, AttributeUpdates, KeyConditions, QueryFilter, ScanFilter,
ConditionalOperator) get the same treatment with arbitrary maps.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.support import create_table

TABLE = "expression_fuzz_live"
ACCEPTED = {"ValidationException", "ConditionalCheckFailedException"}
KEY = {"pk": {"S": "k"}, "sk": {"N": "1"}}
ITEM = {**KEY, "a": {"N": "5"}, "b": {"S": "text"}, "l": {"L": [{"N": "1"}, {"S": "x"}]},
        "m": {"M": {"a": {"S": "1"}, "n": {"NS": ["1", "2"]}}}, "ss": {"SS": ["a", "b"]},
        "status": {"BOOL": True}}

fuzz = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))

TOKENS = ["a", "b", "l", "m", "pk", "sk", "ss", "status", "size", "#n", "#a", "#b", ":v", ":w",
          ":n", "(", ")", "[", "]", "[0]", "[99999999999]", "0", "1", "-1", ",", ".", "=", "<>",
          "<", "<=", ">", ">=", "+", "-", "AND", "OR", "NOT", "BETWEEN", "IN", "SET", "REMOVE",
          "ADD", "DELETE", "attribute_exists", "attribute_not_exists", "attribute_type",
          "begins_with", "contains", "if_not_exists", "list_append", "_", "#", ":", "$", '"',
          "'", "\\", "\u00e9", "\U0001f600", "\x00", "\t"]

token_soup = st.tuples(st.lists(st.sampled_from(TOKENS), max_size=30),
                       st.sampled_from([" ", ""])).map(lambda pair: pair[1].join(pair[0]))
garbage = st.one_of(st.text(max_size=80), token_soup)

# Well-formed expressions (a small grammar over a few paths, #names and :values), so that
# arbitrary names and values reach evaluation instead of stopping at a syntax error.
NAME_KEYS = ("#n", "#a")
VALUE_KEYS = (":v", ":w")
paths = st.sampled_from(["a", "b", "l", "m", "ss", "pk", "sk", "#n", "#a", "l[0]",
                         "l[7]", "m.a", "m.n", "#n.a", "m.#a", "#n[1]", "l[0].x"])
operands = st.one_of(paths, st.sampled_from(VALUE_KEYS), paths.map(lambda p: f"size({p})"))
comparators = st.sampled_from(["=", "<>", "<", "<=", ">", ">="])
leaves = st.one_of(
    st.tuples(operands, comparators, operands).map(" ".join),
    st.tuples(operands, operands, operands).map(lambda t: f"{t[0]} BETWEEN {t[1]} AND {t[2]}"),
    st.tuples(operands, st.lists(operands, min_size=1, max_size=3)).map(
        lambda t: f"{t[0]} IN ({', '.join(t[1])})"),
    st.tuples(st.sampled_from(["attribute_exists", "attribute_not_exists"]), paths).map(
        lambda t: f"{t[0]}({t[1]})"),
    st.tuples(st.sampled_from(["attribute_type", "begins_with", "contains"]), operands,
              operands).map(lambda t: f"{t[0]}({t[1]}, {t[2]})"),
)
conditions = st.recursive(leaves, lambda inner: st.one_of(
    st.tuples(inner, st.sampled_from(["AND", "OR"]), inner).map(lambda t: f"({t[0]}) {t[1]} ({t[2]})"),
    inner.map(lambda c: f"NOT {c}")), max_leaves=5)
values_or_paths = st.one_of(st.sampled_from(VALUE_KEYS), paths)
right_sides = st.one_of(
    values_or_paths,
    st.tuples(values_or_paths, st.sampled_from(["+", "-"]), values_or_paths).map(" ".join),
    st.tuples(paths, values_or_paths).map(lambda t: f"if_not_exists({t[0]}, {t[1]})"),
    st.tuples(values_or_paths, values_or_paths).map(lambda t: f"list_append({t[0]}, {t[1]})"))
clauses = {
    "SET": st.lists(st.tuples(paths, right_sides).map(lambda t: f"{t[0]} = {t[1]}"),
                    min_size=1, max_size=3).map(", ".join),
    "REMOVE": st.lists(paths, min_size=1, max_size=3).map(", ".join),
    "ADD": st.tuples(paths, st.sampled_from(VALUE_KEYS)).map(" ".join),
    "DELETE": st.tuples(paths, st.sampled_from(VALUE_KEYS)).map(" ".join),
}


def _clause(verb: str) -> st.SearchStrategy[str]:
    return clauses[verb].map(lambda body: f"{verb} {body}")


def _update(verbs: list[str]) -> st.SearchStrategy[str]:
    return st.tuples(*[_clause(verb) for verb in verbs]).map(" ".join)


updates = st.lists(st.sampled_from(sorted(clauses)), min_size=1, max_size=4,
                   unique=True).flatmap(_update)
projections = st.lists(paths, min_size=1, max_size=4).map(", ".join)
key_conditions = st.tuples(
    st.sampled_from(["pk", "#n"]), st.sampled_from(VALUE_KEYS),
    st.one_of(st.just(""), st.tuples(st.sampled_from(["sk", "#a", "a"]), comparators,
                                     st.sampled_from(VALUE_KEYS)).map(lambda t: " AND " + " ".join(t)),
              st.just(" AND sk BETWEEN :v AND :w"), st.just(" AND begins_with(sk, :w)")),
).map(lambda t: f"{t[0]} = {t[1]}{t[2]}")

valid_scalars = st.one_of(
    st.text(max_size=6).map(lambda s: {"S": s}),
    st.sampled_from(["0", "1", "-2.5", "1E+3", "9.9E+125"]).map(lambda n: {"N": n}),
    st.binary(min_size=1, max_size=4).map(lambda b: {"B": b}),
    st.booleans().map(lambda b: {"BOOL": b}),
    st.just({"NULL": True}),
    st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3, unique=True).map(
        lambda x: {"SS": x}),
    st.lists(st.sampled_from(["1", "2", "-3.5"]), min_size=1, max_size=3, unique=True).map(
        lambda x: {"NS": x}),
)
invalid_scalars = st.one_of(
    st.sampled_from(["x", "", " 1", "NaN", "1E+200", "1" * 40]).map(lambda n: {"N": n}),
    st.just({"NULL": False}), st.just({"SS": []}), st.just({"SS": ["a", "a"]}),
    st.just({"NS": ["1", "1.0"]}), st.just({"BS": [b"", b"x"]}), st.just({}),
    st.just({"S": "a", "N": "1"}),
)
scalars = st.one_of(valid_scalars, valid_scalars, valid_scalars, invalid_scalars)
attribute_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda x: {"L": x}),
        st.dictionaries(st.sampled_from(["a", "b", ""]), inner, max_size=3).map(
            lambda x: {"M": x})),
    max_leaves=8)
attribute_names = st.sampled_from(["a", "b", "l", "m", "pk", "sk", "status", "", "a.b", "#n"])
any_names = st.one_of(st.none(), st.dictionaries(
    st.sampled_from(["#n", "#a", "#b", "#x1", "#", "n", "#n#", "#\u00e9", ""]), attribute_names,
    max_size=4))
any_values = st.one_of(st.none(), st.dictionaries(
    st.sampled_from([":v", ":w", ":n", ":x", ":", "v", ":\u00e9", ""]), attribute_values,
    max_size=3))


def expression(grammar: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Two thirds well-formed, one third garbage."""
    return st.one_of(grammar, grammar, garbage)


def draw_maps(data: st.DataObject, text: str) -> dict[str, Any]:
    """ExpressionAttributeNames/Values: usually exactly the ones `text` uses (with arbitrary
    contents), sometimes arbitrary maps."""
    if data.draw(st.integers(0, 4)) == 0:
        return _maps(data.draw(any_names), data.draw(any_values))
    used_names = {k: data.draw(attribute_names) for k in NAME_KEYS if k in text}
    used_values = {k: data.draw(attribute_values) for k in VALUE_KEYS if k in text}
    return _maps(used_names or None, used_values or None)


def _maps(attribute_names: Any, attribute_values: Any) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if attribute_names is not None:
        params["ExpressionAttributeNames"] = attribute_names
    if attribute_values is not None:
        params["ExpressionAttributeValues"] = attribute_values
    return params


@pytest.fixture(scope="module")
def table(raw_ddb: Any) -> str:
    create_table(raw_ddb, TABLE, range_key=("sk", "N"))
    raw_ddb.put_item(TableName=TABLE, Item=ITEM)
    raw_ddb.put_item(TableName=TABLE, Item={"pk": {"S": "k"}, "sk": {"N": "2"}, "a": {"N": "1"}})
    return TABLE


def answer_is_acceptable(call: Any, **params: Any) -> None:
    try:
        response = call(**params)
    except ClientError as error:
        status = error.response["ResponseMetadata"]["HTTPStatusCode"]
        code = error.response["Error"]["Code"]
        assert status < 500 and code in ACCEPTED, (error.response["Error"], params)
        message = error.response["Error"]["Message"]
        event(f"{code}: {message[:60]}")  # see --hypothesis-show-statistics
        return
    event("success")
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200


QUERY_KEY = {"pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "k"}]}}


@fuzz
@given(data=st.data(), text=expression(conditions),
       operation=st.sampled_from(["put_item", "delete_item", "update_item"]))
def test_condition_expression(raw_ddb: Any, table: str, data: st.DataObject, text: str,
                              operation: str) -> None:
    params: dict[str, Any] = {"TableName": table, "ConditionExpression": text,
                              **draw_maps(data, text)}
    if operation == "put_item":
        params["Item"] = ITEM
    else:
        params["Key"] = KEY
    answer_is_acceptable(getattr(raw_ddb, operation), **params)
    if operation != "put_item":
        raw_ddb.put_item(TableName=table, Item=ITEM)


@fuzz
@given(data=st.data(), text=expression(updates))
def test_update_expression(raw_ddb: Any, table: str, data: st.DataObject, text: str) -> None:
    answer_is_acceptable(raw_ddb.update_item, TableName=table, Key=KEY, UpdateExpression=text,
                         ReturnValues="UPDATED_NEW", **draw_maps(data, text))
    raw_ddb.put_item(TableName=table, Item=ITEM)  # keep the item small and known


@fuzz
@given(data=st.data(), text=expression(conditions), operation=st.sampled_from(["scan", "query"]))
def test_filter_expression(raw_ddb: Any, table: str, data: st.DataObject, text: str,
                           operation: str) -> None:
    params: dict[str, Any] = {"TableName": table, "FilterExpression": text,
                              **draw_maps(data, text)}
    if operation == "query":
        params["KeyConditions"] = QUERY_KEY
    answer_is_acceptable(getattr(raw_ddb, operation), **params)


@fuzz
@given(data=st.data(), text=expression(projections),
       operation=st.sampled_from(["get_item", "scan", "query", "batch_get_item"]))
def test_projection_expression(raw_ddb: Any, table: str, data: st.DataObject, text: str,
                               operation: str) -> None:
    maps = draw_maps(data, text)
    if operation in ("get_item", "batch_get_item"):
        maps.pop("ExpressionAttributeValues", None)  # not a member of these operations
    if operation == "batch_get_item":
        answer_is_acceptable(raw_ddb.batch_get_item, RequestItems={
            table: {"Keys": [KEY], "ProjectionExpression": text, **maps}})
        return
    params: dict[str, Any] = {"TableName": table, "ProjectionExpression": text, **maps}
    if operation == "get_item":
        params["Key"] = KEY
    elif operation == "query":
        params["KeyConditions"] = QUERY_KEY
    answer_is_acceptable(getattr(raw_ddb, operation), **params)


@fuzz
@given(data=st.data(), text=expression(key_conditions))
def test_key_condition_expression(raw_ddb: Any, table: str, data: st.DataObject,
                                  text: str) -> None:
    answer_is_acceptable(raw_ddb.query, TableName=table, KeyConditionExpression=text,
                         **draw_maps(data, text))


OPERATORS = ["EQ", "NE", "LE", "LT", "GE", "GT", "NOT_NULL", "NULL", "CONTAINS",
             "NOT_CONTAINS", "BEGINS_WITH", "IN", "BETWEEN", "DOG"]
legacy_attributes = st.sampled_from(["a", "b", "l", "m", "ss", "pk", "sk", "", "#n", ":v"])


def _without_none(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if v is not None}


conditions_map = st.dictionaries(legacy_attributes, st.fixed_dictionaries({
    "ComparisonOperator": st.sampled_from(OPERATORS),
    "AttributeValueList": st.lists(attribute_values, max_size=3)}), max_size=3)
expected_map = st.dictionaries(legacy_attributes, st.fixed_dictionaries({
    "ComparisonOperator": st.one_of(st.none(), st.sampled_from(OPERATORS)),
    "AttributeValueList": st.one_of(st.none(), st.lists(attribute_values, max_size=3)),
    "Value": st.one_of(st.none(), attribute_values),
    "Exists": st.one_of(st.none(), st.booleans())}).map(_without_none), max_size=3)
updates_map = st.dictionaries(legacy_attributes, st.fixed_dictionaries({
    "Action": st.one_of(st.none(), st.sampled_from(["PUT", "ADD", "DELETE"])),
    "Value": st.one_of(st.none(), attribute_values)}).map(_without_none), max_size=3)
conditional_operators = st.one_of(st.none(), st.sampled_from(["AND", "OR"]))


@fuzz
@given(expected=st.one_of(st.none(), expected_map), updates=st.one_of(st.none(), updates_map),
       operator=conditional_operators,
       operation=st.sampled_from(["put_item", "delete_item", "update_item"]))
def test_legacy_write_parameters(raw_ddb: Any, table: str, expected: Any, updates: Any,
                                 operator: Any, operation: str) -> None:
    params = _without_none({"TableName": table, "Expected": expected,
                            "ConditionalOperator": operator})
    if operation == "put_item":
        params["Item"] = ITEM
    else:
        params["Key"] = KEY
    if operation == "update_item" and updates is not None:
        params["AttributeUpdates"] = updates
    answer_is_acceptable(getattr(raw_ddb, operation), **params)
    if operation != "put_item":
        raw_ddb.put_item(TableName=table, Item=ITEM)


@fuzz
@given(filters=st.one_of(st.none(), conditions_map), keys=conditions_map,
       operator=conditional_operators, operation=st.sampled_from(["scan", "query"]))
def test_legacy_read_parameters(raw_ddb: Any, table: str, filters: Any, keys: Any,
                                operator: Any, operation: str) -> None:
    if operation == "scan":
        params = _without_none({"TableName": table, "ScanFilter": filters,
                                "ConditionalOperator": operator})
    else:
        params = _without_none({"TableName": table, "QueryFilter": filters, "KeyConditions": keys,
                                "ConditionalOperator": operator})
    answer_is_acceptable(getattr(raw_ddb, operation), **params)


def test_server_still_answers(raw_ddb: Any, table: str) -> None:
    item = raw_ddb.get_item(TableName=table, Key=KEY, ConsistentRead=True)["Item"]
    assert item["pk"] == {"S": "k"}
