"""Reads as DynamoDB documents them: key conditions written either way round, Select with
projections on tables and indexes, ExclusiveStartKey checks, projections of paths that
lead nowhere or into key attributes.

Every test names its source: the DynamoDB API Reference or Developer Guide page, or,
where those do not give the exact wording, a conformance suite recorded against real
DynamoDB (ScyllaDB's alternator tests, dynalite's tests, moto's aws_verified tests), with
the file.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.wire import expect_error

TABLE = "documented_reads"  # pk S, sk N, GSI by_g (g S, KEYS_ONLY), LSI by_l (l S, KEYS_ONLY)
INVALID = "The provided starting key is invalid"
SCHEMA = "The provided key element does not match the schema"


def S(text: str) -> dict[str, Any]:
    return {"S": text}


def N(text: str | int) -> dict[str, Any]:
    return {"N": str(text)}


def _index(name: str, *keys: tuple[str, str], projection: str = "KEYS_ONLY") -> dict[str, Any]:
    return {"IndexName": name, "Projection": {"ProjectionType": projection},
            "KeySchema": [{"AttributeName": a, "KeyType": t} for a, t in keys]}


@pytest.fixture(scope="module")
def table(ddb: Any) -> str:
    """Partition "p" holds sk 0..11, each with a GSI key g and an LSI key l; partition
    "q" one item."""
    ddb.create_table(
        TableName=TABLE, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "N"},
                              {"AttributeName": "g", "AttributeType": "S"},
                              {"AttributeName": "l", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[_index("by_g", ("g", "HASH"))],
        LocalSecondaryIndexes=[_index("by_l", ("pk", "HASH"), ("l", "RANGE"))])
    for i in range(12):
        ddb.put_item(TableName=TABLE, Item={"pk": S("p"), "sk": N(i), "g": S("gg"),
                                            "l": S(f"l{i:02}"), "a": S(f"a{i}"),
                                            "m": {"M": {"b": N(i)}}})
    ddb.put_item(TableName=TABLE, Item={"pk": S("q"), "sk": N(0), "g": S("gh"), "l": S("l00")})
    return TABLE


def _sks(answer: dict[str, Any]) -> list[int]:
    return [int(item["sk"]["N"]) for item in answer["Items"]]


# ---- KeyConditionExpression with the value on the left ---------------------------------

@pytest.mark.parametrize("condition, expected", [
    (":p = pk", list(range(12))),
    (":p = pk AND :c = sk", [5]),
    (":p = pk AND :c < sk", [6, 7, 8, 9, 10, 11]),
    ("pk = :p AND :c <= sk", [5, 6, 7, 8, 9, 10, 11]),
    (":p = pk AND :c > sk", [0, 1, 2, 3, 4]),
    (":p = pk AND :c >= sk", [0, 1, 2, 3, 4, 5]),
])
def test_a_key_condition_may_name_the_value_first(ddb: Any, table: str, condition: str,
                                                  expected: list[int]) -> None:
    """The key may stand on either side of a comparison; with the value first the
    operator reads the other way (`:c < sk` is `sk > :c`): alternator's
    test_key_condition_expression_num_eq_reverse and _num_lt_reverse, which pass
    against DynamoDB, and dynalite's test/query.js (`:a <= a`)."""
    answer = ddb.query(TableName=table, KeyConditionExpression=condition,
                       ExpressionAttributeValues={":p": S("p"), ":c": N(5)}
                       if ":c" in condition else {":p": S("p")})
    assert _sks(answer) == expected


def test_a_reversed_key_condition_is_checked_like_a_plain_one(ddb: Any, table: str) -> None:
    """The partition key still needs `=` and the value the key's type, whichever side
    it is on ("Query key condition not supported"; "Condition parameter type does not
    match schema type": dynalite's test/query.js)."""
    expect_error(ddb.query, "ValidationException", "Query key condition not supported",
                 TableName=table, KeyConditionExpression=":p < pk",
                 ExpressionAttributeValues={":p": S("p")})
    expect_error(ddb.query, "ValidationException",
                 "One or more parameter values were invalid: Condition parameter type does not "
                 "match schema type", TableName=table, KeyConditionExpression=":p = pk",
                 ExpressionAttributeValues={":p": N(1)})


# ---- Select and projections -------------------------------------------------------------

@pytest.mark.parametrize("operation, prefix", [("query", "1 validation error detected: "),
                                               ("scan", "")])
def test_select_and_projection_combinations(ddb: Any, table: str, operation: str,
                                            prefix: str) -> None:
    """Select SPECIFIC_ATTRIBUTES needs a projection, and every other Select refuses one;
    ALL_PROJECTED_ATTRIBUTES needs an index (Query and Scan API Reference, Select). The
    messages are DynamoDB's, recorded in moto's aws_verified suite
    (tests/test_dynamodb/test_dynamodb_select.py): a Query reports them inside the
    "1 validation error detected: " envelope, a Scan bare."""
    call = getattr(ddb, operation)
    base = _read_params(operation, table)
    expect_error(call, "ValidationException",
                 prefix + "Must specify the AttributesToGet or ProjectionExpression when choosing "
                 "to get SPECIFIC_ATTRIBUTES", Select="SPECIFIC_ATTRIBUTES", **base)
    expect_error(call, "ValidationException",
                 prefix + "ALL_PROJECTED_ATTRIBUTES can be used only when Querying using an "
                 "IndexName", Select="ALL_PROJECTED_ATTRIBUTES", **base)
    for select, wanted in (("ALL_ATTRIBUTES", "ALL_ATTRIBUTES"), ("COUNT", "only the Count"),
                           ("ALL_PROJECTED_ATTRIBUTES", "ALL_PROJECTED_ATTRIBUTES")):
        index = {"IndexName": "by_g"} if operation == "scan" else {}
        params = base if operation == "query" else {**base, **index}
        if operation == "query" and select == "ALL_PROJECTED_ATTRIBUTES":
            params = _read_params("query", table, index="by_l")
        expect_error(call, "ValidationException",
                     f"{prefix}Cannot specify the ProjectionExpression when choosing to get "
                     f"{wanted}", Select=select, ProjectionExpression="sk", **params)
        expect_error(call, "ValidationException",
                     f"{prefix}Cannot specify the AttributesToGet when choosing to get {wanted}",
                     Select=select, AttributesToGet=["sk"], **_legacy(params))
    answer = call(Select="SPECIFIC_ATTRIBUTES", ProjectionExpression="sk", **base)
    assert answer["Items"] and all(set(item) == {"sk"} for item in answer["Items"])
    counted = call(Select="COUNT", **base)
    assert "Items" not in counted and counted["Count"] > 0


def _read_params(operation: str, table: str, index: str | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"TableName": table}
    if index is not None:
        params["IndexName"] = index
    if operation == "query":
        params.update(KeyConditionExpression="pk = :k", ExpressionAttributeValues={":k": S("p")})
    return params


def _legacy(params: dict[str, Any]) -> dict[str, Any]:
    """The same read with KeyConditions (AttributesToGet cannot mix with expressions)."""
    if "KeyConditionExpression" not in params:
        return params
    legacy = {k: v for k, v in params.items()
              if k not in ("KeyConditionExpression", "ExpressionAttributeValues")}
    legacy["KeyConditions"] = {"pk": {"ComparisonOperator": "EQ",
                                      "AttributeValueList": [S("p")]}}
    return legacy


@pytest.mark.parametrize("operation", ["query", "scan"])
def test_all_attributes_from_an_index_needs_it_to_project_all(ddb: Any, table: str,
                                                              operation: str) -> None:
    """ALL_ATTRIBUTES from a GSI that does not project ALL is refused; from an LSI it is
    served by fetching the items (Query API Reference, Select; the message recorded in
    moto's test_dynamodb_select.py, test_all_attributes_rejected_for_keys_only_gsi)."""
    expect_error(getattr(ddb, operation), "ValidationException",
                 "One or more parameter values were invalid: Select type ALL_ATTRIBUTES is not "
                 "supported for global secondary index by_g because its projection type is not "
                 "ALL", Select="ALL_ATTRIBUTES", **_read_params(operation, table, "by_g"))
    local = getattr(ddb, operation)(Select="ALL_ATTRIBUTES",
                                    **_read_params(operation, table, "by_l"))
    assert local["Items"] and all("a" in item for item in local["Items"] if item["pk"] == S("p"))
    projected = getattr(ddb, operation)(Select="ALL_PROJECTED_ATTRIBUTES",
                                        **_read_params(operation, table, "by_l"))
    assert all("a" not in item for item in projected["Items"])


# ---- ExclusiveStartKey ------------------------------------------------------------------

def _query(ddb: Any, table: str, start: Any, condition: str = "pk = :p",
           values: dict[str, Any] | None = None, index: str | None = None) -> Any:
    params: dict[str, Any] = {"TableName": table, "KeyConditionExpression": condition,
                              "ExpressionAttributeValues": values or {":p": S("p")},
                              "ExclusiveStartKey": start}
    if index is not None:
        params["IndexName"] = index
    return lambda: ddb.query(**params)


@pytest.mark.parametrize("start, message", [
    ({"pk": S("p")}, INVALID),
    ({"pk": S("p"), "sk": N(1), "x": S("y")}, INVALID),
    ({"pk": S("p"), "other": N(1)}, INVALID),
    ({"pk": S("p"), "sk": S("1")}, SCHEMA),
    ({"pk": N(1), "sk": N(1)}, SCHEMA),
])
def test_query_start_key_must_be_a_key_of_the_table(ddb: Any, table: str, start: Any,
                                                    message: str) -> None:
    """A start key holds exactly the table's key attributes: others, or missing ones, are
    "The provided starting key is invalid"; a key attribute of the wrong type "The
    provided key element does not match the schema" (dynalite's test/query.js, "range in
    ExclusiveStartKey is invalid" and "range has incorrect schema")."""
    expect_error(lambda: _query(ddb, table, start)(), "ValidationException", message)


def test_query_start_key_must_lie_within_the_key_condition(ddb: Any, table: str) -> None:
    """A start key from another partition is "outside query boundaries"; with a sort-key
    condition, a sort key the condition excludes "does not match the range key
    predicate", and one it admits, in another partition, "can return at most one row"
    (dynalite's test/query.js, "ExclusiveStartKey with out-of-bounds hash key",
    "with non-matching range key", "with matching range but non-matching hash key")."""
    other = {"pk": S("q"), "sk": N(0)}
    expect_error(_query(ddb, table, other), "ValidationException",
                 "The provided starting key is outside query boundaries based on provided "
                 "conditions")
    expect_error(_query(ddb, table, {"pk": S("p"), "sk": N(2)}, "pk = :p AND sk > :c",
                        {":p": S("p"), ":c": N(5)}), "ValidationException",
                 "The provided starting key does not match the range key predicate")
    expect_error(_query(ddb, table, {"pk": S("q"), "sk": N(7)}, "pk = :p AND sk > :c",
                        {":p": S("p"), ":c": N(5)}), "ValidationException",
                 "The query can return at most one row and cannot be restarted")
    page = _query(ddb, table, {"pk": S("p"), "sk": N(7)}, "pk = :p AND sk > :c",
                  {":p": S("p"), ":c": N(5)})()
    assert _sks(page) == [8, 9, 10, 11]


def test_index_query_start_key_holds_the_table_and_index_keys(ddb: Any, table: str) -> None:
    """On an index the start key is the table's key plus the index's (Query API
    Reference, LastEvaluatedKey); without the index key it is invalid, with the index
    key of the wrong type it does not match the schema, from another partition it is
    outside the boundaries (dynalite's test/query.js, "local range in ExclusiveStartKey
    is invalid", "local has incorrect schema", "with local index and out-of-bounds hash
    key")."""
    expect_error(_query(ddb, table, {"pk": S("p"), "sk": N(1)}, index="by_l"),
                 "ValidationException", INVALID)
    expect_error(_query(ddb, table, {"pk": S("p"), "sk": N(1), "l": N(1)}, index="by_l"),
                 "ValidationException", SCHEMA)
    expect_error(_query(ddb, table, {"pk": S("q"), "sk": N(0), "l": S("l00")}, index="by_l"),
                 "ValidationException", "outside query boundaries")
    page = _query(ddb, table, {"pk": S("p"), "sk": N(9), "l": S("l09")}, index="by_l")()
    assert _sks(page) == [10, 11]


def test_scan_start_key_checks(ddb: Any, table: str) -> None:
    """A table Scan answers a start key without the table's key attributes with "The
    provided starting key is invalid: The provided key element does not match the
    schema"; an index Scan, without the index's, with the bare message (dynalite's
    actions/scan.js and test/scan.js)."""
    expect_error(ddb.scan, "ValidationException", f"{INVALID}: {SCHEMA}", TableName=table,
                 ExclusiveStartKey={"pk": S("p")})
    expect_error(ddb.scan, "ValidationException", INVALID, TableName=table, IndexName="by_g",
                 ExclusiveStartKey={"pk": S("p"), "sk": N(1)})
    response = expect_error(ddb.scan, "ValidationException", SCHEMA, TableName=table,
                            IndexName="by_g",
                            ExclusiveStartKey={"pk": S("p"), "sk": N(1), "g": N(1)})
    assert response["Error"]["Message"] == SCHEMA


def test_parallel_scan_start_key_must_belong_to_the_segment(ddb: Any, table: str) -> None:
    """A parallel Scan resumes within its segment: a start key whose partition belongs
    to another segment is refused naming the segment (dynalite's actions/scan.js:
    "Invalid ExclusiveStartKey. Please use ExclusiveStartKey with correct Segment"),
    and each segment's own LastEvaluatedKey resumes it."""
    total = 2
    segment_of = {}
    for segment in range(total):
        for item in ddb.scan(TableName=table, Segment=segment, TotalSegments=total)["Items"]:
            segment_of[item["pk"]["S"]] = segment
    assert set(segment_of) == {"p", "q"}
    wrong = 1 - segment_of["p"]  # the segment partition "p" does not hash into
    expect_error(ddb.scan, "ValidationException",
                 f"{INVALID}: Invalid ExclusiveStartKey. Please use ExclusiveStartKey with "
                 f"correct Segment. TotalSegments: {total} Segment: {wrong}", TableName=table,
                 Segment=wrong, TotalSegments=total, ExclusiveStartKey={"pk": S("p"), "sk": N(0)})
    seen: list[Any] = []
    params: dict[str, Any] = {"TableName": table, "Segment": segment_of["p"],
                              "TotalSegments": total, "Limit": 5}
    for _ in range(10):
        page = ddb.scan(**params)
        seen += page["Items"]
        if "LastEvaluatedKey" not in page:
            break
        params["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    assert sorted(int(i["sk"]["N"]) for i in seen if i["pk"] == S("p")) == list(range(12))


# ---- projections ------------------------------------------------------------------------

@pytest.mark.parametrize("projection, expected", [
    ("a[0]", {}), ("m[0]", {}), ("m.b[0]", {}), ("a.x", {}), ("m.b.c", {}),
    ("m.b, a[0]", {"m": {"M": {"b": N(3)}}}),
])
def test_a_list_index_or_member_of_the_wrong_container_projects_nothing(
        ddb: Any, table: str, projection: str, expected: dict[str, Any]) -> None:
    """A path that indexes a string or a map as a list, or reads a member of a scalar,
    leads nowhere: the item comes back without it, not an error (Developer Guide,
    "Projection expressions"; alternator's test_projection_expression_path, which passes
    against DynamoDB: "indexing a dictionary as an array ... yields an empty item")."""
    key = {"pk": S("p"), "sk": N(3)}
    assert ddb.get_item(TableName=table, Key=key, ProjectionExpression=projection)["Item"] == \
        expected


def test_a_projection_of_an_absent_item_has_no_item(ddb: Any, table: str) -> None:
    """An absent item has no Item at all, whatever the projection (alternator's
    test_projection_expression_path)."""
    answer = ddb.get_item(TableName=table, Key={"pk": S("none"), "sk": N(0)},
                          ProjectionExpression="a[0]")
    assert "Item" not in answer


@pytest.mark.parametrize("operation", ["get_item", "query", "scan", "batch_get_item"])
@pytest.mark.parametrize("path, which", [("pk[0]", "Key: pk"), ("sk.x", "Key: sk"),
                                         ("g[1]", "IndexKey: g"), ("l.x", "IndexKey: l")])
def test_a_path_into_a_key_attribute_is_refused(ddb: Any, table: str, operation: str,
                                                path: str, which: str) -> None:
    """Key attributes are scalars, so a path into one is refused outright: "Key
    attributes must be scalars; list random access '[]' and map lookup '.' are not
    allowed: Key: a" / "IndexKey: d" (dynalite's test/getItem.js, "non-scalar key access
    in ProjectionExpression"; DynamoDB Local's error table)."""
    key = {"pk": S("p"), "sk": N(1)}
    params: dict[str, Any] = {
        "get_item": {"TableName": table, "Key": key, "ProjectionExpression": path},
        "query": {"TableName": table, "KeyConditionExpression": "pk = :p",
                  "ExpressionAttributeValues": {":p": S("p")}, "ProjectionExpression": path},
        "scan": {"TableName": table, "ProjectionExpression": path},
        "batch_get_item": {"RequestItems": {table: {"Keys": [key],
                                                    "ProjectionExpression": path}}},
    }[operation]
    expect_error(getattr(ddb, operation), "ValidationException",
                 "Key attributes must be scalars; list random access '[]' and map lookup '.' "
                 f"are not allowed: {which}", **params)


def test_filters_and_updates_may_not_reach_into_index_keys(ddb: Any, table: str) -> None:
    """The same holds for a filter's paths and for an update of an index key's
    members (dynalite's test/query.js, "non-scalar index access in FilterExpression";
    alternator's test_gsi_wrong_type_attribute_update_nested: "Key attributes must be
    scalars; ... IndexKey: x"). A filter may not name the query's own keys at all."""
    message = "Key attributes must be scalars; list random access '[]' and map lookup '.' " \
              "are not allowed: IndexKey: g"
    expect_error(ddb.query, "ValidationException", message, TableName=table,
                 KeyConditionExpression="pk = :p", FilterExpression="g[1] = :v",
                 ExpressionAttributeValues={":p": S("p"), ":v": S("x")})
    expect_error(ddb.scan, "ValidationException", message, TableName=table,
                 FilterExpression="attribute_exists(g.x)")
    expect_error(ddb.update_item, "ValidationException", message, TableName=table,
                 Key={"pk": S("p"), "sk": N(1)}, UpdateExpression="SET g.x = :v",
                 ExpressionAttributeValues={":v": S("x")})
    expect_error(ddb.query, "ValidationException",
                 "Filter Expression can only contain non-primary key attributes: Primary key "
                 "attribute: sk", TableName=table, KeyConditionExpression="pk = :p",
                 FilterExpression="sk[0] = :v", ExpressionAttributeValues={":p": S("p"),
                                                                           ":v": N(1)})


def test_a_document_path_is_at_most_32_levels_deep(ddb: Any, table: str) -> None:
    """"Maximum depth for a document path: 32" (Constraints, "Expression parameters");
    DynamoDB's message for 33: "Invalid ProjectionExpression: The document path has too
    many nesting levels; nesting levels: 33" (alternator's
    test_projection_expression_path_nesting_levels)."""
    key = {"pk": S("p"), "sk": N(1)}
    ddb.get_item(TableName=table, Key=key, ProjectionExpression="a" + ".b" * 31)
    expect_error(ddb.get_item, "ValidationException",
                 "Invalid ProjectionExpression: The document path has too many nesting levels; "
                 "nesting levels: 33", TableName=table, Key=key,
                 ProjectionExpression="a" + ".b" * 32)
