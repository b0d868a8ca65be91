"""The shared expression case table (tests/expression_cases.py), run through boto3 against
a live server — the same cases tests/unit/test_expressions_cases.py runs against the pure
parser and evaluator.

Each kind maps onto the API call that carries it:
  condition   the item-before is put, then PutItem of the same item with the case's
              ConditionExpression: success means true, ConditionalCheckFailedException
              false. Cases with an item also run as a FilterExpression of a Query on that
              item (one item back means true).
  update      the item-before is put, then UpdateItem with the UpdateExpression and
              ReturnValues=ALL_NEW must give the expected item; a failing update must
              leave the stored item as it was.
  projection  the item-before is put, then GetItem with the ProjectionExpression.
  key         Query with the KeyConditionExpression on a table of the case's key schema,
              filled with items around the values the cases use; the expected key range
              ({hash_value, op, operands}) is applied to those items by a naive reference
              here, and the Query must return exactly those, in sort-key order.
Errors must come back as the case's error type with its message fragment, never a 500.

Everything shares one session server and one client; conditions, updates and projections
share one table (each case its own item), key cases one table per key schema (four).
Items are written in the wire form the cases use (binary values as base64 text) and
converted to and from what boto3 expects.
"""

from __future__ import annotations

import base64
import itertools
import json
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.expression_cases import CASES
from tests.support import create_table

CASE_TABLE = "expression_cases_live"
KEY_ATTR = "case_key"  # no case mentions it
CCF = "ConditionalCheckFailedException"

_keys = itertools.count()


# ---- wire form <-> boto3 --------------------------------------------------------------

def to_boto(value: Any) -> Any:
    """Case values hold binaries as base64 text; boto3 wants bytes (and encodes them)."""
    (kind, inner), = value.items()
    if kind == "B":
        return {"B": base64.b64decode(inner)}
    if kind == "BS":
        return {"BS": [base64.b64decode(m) for m in inner]}
    if kind == "L":
        return {"L": [to_boto(e) for e in inner]}
    if kind == "M":
        return {"M": {k: to_boto(e) for k, e in inner.items()}}
    return value


def canon(value: Any) -> Any:
    """A comparable form of an attribute value, wire form or boto3 form: numbers as
    decimals, binaries as bytes, sets unordered."""
    (kind, inner), = value.items()
    if kind == "N":
        return ("N", Decimal(inner))
    if kind == "B":
        return ("B", inner if isinstance(inner, bytes) else base64.b64decode(inner))
    if kind == "NS":
        return ("NS", frozenset(Decimal(m) for m in inner))
    if kind == "SS":
        return ("SS", frozenset(inner))
    if kind == "BS":
        return ("BS", frozenset(m if isinstance(m, bytes) else base64.b64decode(m)
                                for m in inner))
    if kind == "L":
        return ("L", tuple(canon(e) for e in inner))
    if kind == "M":
        return ("M", canon_item(inner))
    return (kind, inner)


def canon_item(item: dict[str, Any]) -> dict[str, Any]:
    return {name: canon(value) for name, value in item.items() if name != KEY_ATTR}


def boto_item(item: dict[str, Any] | None, key: str) -> dict[str, Any]:
    return {**{n: to_boto(v) for n, v in (item or {}).items()}, KEY_ATTR: {"S": key}}


def expression_params(case: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if case["names"]:
        params["ExpressionAttributeNames"] = case["names"]
    if case["values"]:
        params["ExpressionAttributeValues"] = {k: to_boto(v) for k, v in case["values"].items()}
    return params


def check_error(error: ClientError, case: dict[str, Any], kind: str | None = None) -> None:
    response = error.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] < 500, response
    assert response["Error"]["Code"] == case["error"], response["Error"]
    wanted = case.get("message_contains")
    if wanted is not None:
        if kind is not None:  # the case was written for a ConditionExpression
            wanted = wanted.replace("ConditionExpression", kind)
        assert wanted in response["Error"]["Message"], response["Error"]


# ---- fixtures -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def case_table(ddb: Any) -> str:
    return create_table(ddb, CASE_TABLE, hash_key=(KEY_ATTR, "S"))


def _schema_id(schema: dict[str, Any]) -> str:
    return json.dumps(schema, sort_keys=True)


SORT_VALUES = {"N": [{"N": str(i)} for i in range(7)],
               "S": [{"S": s} for s in ("1", "5", "w", "x", "xa", "xz", "y")]}
HASH_VALUES = {"S": [{"S": "a"}, {"S": "b"}], "B": [{"B": "AQ=="}, {"B": "Ag=="}]}


@pytest.fixture(scope="module")
def key_tables(ddb: Any) -> dict[str, tuple[str, list[dict[str, Any]]]]:
    """One table per key schema the key cases use, with its items (wire form)."""
    tables: dict[str, tuple[str, list[dict[str, Any]]]] = {}
    schemas = {_schema_id(c["schema"]): c["schema"] for c in CASES if c["kind"] == "key"}
    for number, (schema_id, schema) in enumerate(sorted(schemas.items())):
        name = f"expression_cases_keys_{number}"
        types = schema["types"]
        range_key = (schema["range"], types[schema["range"]]) if schema["range"] else None
        create_table(ddb, name, hash_key=(schema["hash"], types[schema["hash"]]),
                     range_key=range_key)
        items = []
        for hash_value in HASH_VALUES[types[schema["hash"]]]:
            sorts = SORT_VALUES[types[schema["range"]]] if schema["range"] else [None]
            for sort_value in sorts:
                item = {schema["hash"]: hash_value}
                if sort_value is not None:
                    item[schema["range"]] = sort_value
                items.append(item)
                ddb.put_item(TableName=name, Item={n: to_boto(v) for n, v in item.items()})
        tables[schema_id] = (name, items)
    return tables


# ---- the runs -------------------------------------------------------------------------

def run_condition(ddb: Any, table: str, case: dict[str, Any]) -> bool:
    key = f"c{next(_keys)}"
    if case["item"] is not None:
        ddb.put_item(TableName=table, Item=boto_item(case["item"], key))
    try:
        ddb.put_item(TableName=table, Item=boto_item(case["item"], key),
                     ConditionExpression=case["expr"], **expression_params(case))
    except ClientError as error:
        if error.response["Error"]["Code"] == CCF:
            return False
        raise
    return True


def run_filter(ddb: Any, table: str, case: dict[str, Any]) -> bool:
    key = f"f{next(_keys)}"
    ddb.put_item(TableName=table, Item=boto_item(case["item"], key))
    params = expression_params(case)
    values = params.setdefault("ExpressionAttributeValues", {})
    values[":case_key_value"] = {"S": key}
    answer = ddb.query(TableName=table, KeyConditionExpression=f"{KEY_ATTR} = :case_key_value",
                       FilterExpression=case["expr"], ConsistentRead=True, **params)
    assert answer["ScannedCount"] == 1, answer
    return bool(answer["Count"])


def run_update(ddb: Any, table: str, case: dict[str, Any]) -> dict[str, Any]:
    key = f"u{next(_keys)}"
    ddb.put_item(TableName=table, Item=boto_item(case["item"], key))
    try:
        answer = ddb.update_item(TableName=table, Key={KEY_ATTR: {"S": key}},
                                 UpdateExpression=case["expr"], ReturnValues="ALL_NEW",
                                 **expression_params(case))
    except ClientError:
        stored = ddb.get_item(TableName=table, Key={KEY_ATTR: {"S": key}}, ConsistentRead=True)
        assert canon_item(stored["Item"]) == canon_item(case["item"]), "a failed update wrote"
        raise
    return canon_item(answer["Attributes"])


def run_projection(ddb: Any, table: str, case: dict[str, Any]) -> dict[str, Any]:
    key = f"p{next(_keys)}"
    ddb.put_item(TableName=table, Item=boto_item(case["item"], key))
    answer = ddb.get_item(TableName=table, Key={KEY_ATTR: {"S": key}}, ConsistentRead=True,
                          ProjectionExpression=case["expr"], **expression_params(case))
    return canon_item(answer.get("Item", {}))


def _sort_holds(op: str | None, value: Any, operands: list[Any]) -> bool:
    """The naive reference for a key range: one sort-key value against the operands."""
    if op is None:
        return True
    x, args = canon(value)[1], [canon(o)[1] for o in operands]
    if op == "begins_with":
        return bool(x.startswith(args[0]))
    if op == "BETWEEN":
        return bool(args[0] <= x <= args[1])
    return bool({"=": x == args[0], "<": x < args[0], "<=": x <= args[0],
                 ">": x > args[0], ">=": x >= args[0]}[op])


def run_key(ddb: Any, key_tables: dict[str, Any], case: dict[str, Any]
            ) -> tuple[list[Any], list[Any]]:
    """(what Query returned, what the expected key range selects), both in order."""
    table, items = key_tables[_schema_id(case["schema"])]
    schema = case["schema"]
    answer = ddb.query(TableName=table, KeyConditionExpression=case["expr"],
                       ConsistentRead=True, **expression_params(case))
    got = [canon_item(item) for item in answer["Items"]]
    if "expect" not in case:
        return got, []
    expected = case["expect"]
    wanted = [item for item in items
              if canon(item[schema["hash"]]) == canon(expected["hash_value"])
              and (schema["range"] is None
                   or _sort_holds(expected["op"], item[schema["range"]], expected["operands"]))]
    if schema["range"] is not None:
        wanted.sort(key=lambda item: canon(item[schema["range"]])[1])
    return got, [canon_item(item) for item in wanted]


# ---- the tests ------------------------------------------------------------------------

def _ids(kind: str) -> list[str]:
    return [c["id"] for c in CASES if c["kind"] == kind]


def _cases(kind: str) -> list[dict[str, Any]]:
    return [c for c in CASES if c["kind"] == kind]


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 300
    assert {c["kind"] for c in CASES} == {"condition", "update", "projection", "key"}


@pytest.mark.parametrize("case", _cases("condition"), ids=_ids("condition"))
def test_condition_case(ddb: Any, case_table: str, case: dict[str, Any]) -> None:
    if "error" in case:
        with pytest.raises(ClientError) as caught:
            run_condition(ddb, case_table, case)
        check_error(caught.value, case)
    else:
        assert run_condition(ddb, case_table, case) is case["expect"]


FILTER_CASES = [c for c in _cases("condition") if c["item"] is not None]


@pytest.mark.parametrize("case", FILTER_CASES, ids=[c["id"] for c in FILTER_CASES])
def test_condition_case_as_filter(ddb: Any, case_table: str, case: dict[str, Any]) -> None:
    if "error" in case:
        with pytest.raises(ClientError) as caught:
            run_filter(ddb, case_table, case)
        check_error(caught.value, case, "FilterExpression")
    else:
        assert run_filter(ddb, case_table, case) is case["expect"]


@pytest.mark.parametrize("case", _cases("update"), ids=_ids("update"))
def test_update_case(ddb: Any, case_table: str, case: dict[str, Any]) -> None:
    if "error" in case:
        with pytest.raises(ClientError) as caught:
            run_update(ddb, case_table, case)
        check_error(caught.value, case)
    else:
        assert run_update(ddb, case_table, case) == canon_item(case["expect"])


@pytest.mark.parametrize("case", _cases("projection"), ids=_ids("projection"))
def test_projection_case(ddb: Any, case_table: str, case: dict[str, Any]) -> None:
    if "error" in case:
        with pytest.raises(ClientError) as caught:
            run_projection(ddb, case_table, case)
        check_error(caught.value, case)
    else:
        assert run_projection(ddb, case_table, case) == canon_item(case["expect"])


@pytest.mark.parametrize("case", _cases("key"), ids=_ids("key"))
def test_key_case(ddb: Any, key_tables: dict[str, Any], case: dict[str, Any]) -> None:
    if "error" in case:
        with pytest.raises(ClientError) as caught:
            run_key(ddb, key_tables, case)
        check_error(caught.value, case)
    else:
        got, wanted = run_key(ddb, key_tables, case)
        assert wanted, "the key case selects none of the test items: extend SORT_VALUES"
        assert got == wanted
