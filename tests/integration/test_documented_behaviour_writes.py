"""Writes as DynamoDB documents them: updates that only take away, key size limits,
transaction limits and cancellation reasons, numbers inside expressions, condition
operand types.

Every test names its source: the DynamoDB API Reference or Developer Guide page, or,
where those do not give the exact wording, a conformance suite recorded against real
DynamoDB (ScyllaDB's alternator tests, dynalite's tests, moto's aws_verified tests, the
paritysuite DynamoDB conformance suite), with the file.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.wire import expect_error

_names = itertools.count()
HASH_TOO_LONG = ("One or more parameter values were invalid: Size of hashkey has exceeded the "
                 "maximum size limit of2048 bytes")
RANGE_TOO_LONG = ("One or more parameter values were invalid: Aggregated size of all range keys "
                  "has exceeded the size limit of 1024 bytes")
CANCELLED = "Transaction cancelled, please refer cancellation reasons for specific reasons "


def S(text: str) -> dict[str, Any]:
    return {"S": text}


def N(text: str | int) -> dict[str, Any]:
    return {"N": str(text)}


def _table(ddb: Any, range_type: str | None = None, **extra: Any) -> str:
    """A fresh table: pk (S) and an optional sort key sk, plus any index definitions."""
    name = f"documented_writes_{next(_names)}"
    schema = [{"AttributeName": "pk", "KeyType": "HASH"}]
    definitions = [{"AttributeName": "pk", "AttributeType": "S"}]
    if range_type is not None:
        schema.append({"AttributeName": "sk", "KeyType": "RANGE"})
        definitions.append({"AttributeName": "sk", "AttributeType": range_type})
    definitions += extra.pop("definitions", [])
    ddb.create_table(TableName=name, KeySchema=schema, AttributeDefinitions=definitions,
                     BillingMode="PAY_PER_REQUEST", **extra)
    return name


def _cancellation(call: Any, **params: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as caught:
        call(**params)
    response = caught.value.response
    assert response["Error"]["Code"] == "TransactionCanceledException", response
    return response


# ---- UpdateItem that only takes attributes away ----------------------------------------

@pytest.mark.parametrize("update", [
    {"UpdateExpression": "REMOVE a, b.c"},
    {"UpdateExpression": "DELETE s :v", "ExpressionAttributeValues": {":v": {"SS": ["x"]}}},
    {"UpdateExpression": "REMOVE a DELETE s :v", "ExpressionAttributeValues": {":v": {"NS": ["1"]}}},
    {"AttributeUpdates": {"a": {"Action": "DELETE"}}},
])
@pytest.mark.parametrize("return_values", ["NONE", "ALL_NEW", "UPDATED_NEW", "ALL_OLD"])
def test_an_update_that_only_takes_away_does_not_create_the_item(
        ddb: Any, hash_table: str, update: dict[str, Any], return_values: str) -> None:
    """DynamoDB creates no item from an UpdateItem whose actions only REMOVE or DELETE,
    and answers without Attributes (scylladb/scylladb#5862, whose test
    test_update_item_non_existant passes against DynamoDB)."""
    key = {"pk": S(f"absent-{return_values}")}
    answer = ddb.update_item(TableName=hash_table, Key=key, ReturnValues=return_values, **update)
    assert "Attributes" not in answer
    assert "Item" not in ddb.get_item(TableName=hash_table, Key=key, ConsistentRead=True)


def test_a_passing_condition_does_not_make_a_removing_update_create_the_item(
        ddb: Any, hash_table: str) -> None:
    """The condition is evaluated (it holds on the absent item) and still nothing is
    created (scylladb/scylladb#5862)."""
    key = {"pk": S("absent-with-condition")}
    ddb.update_item(TableName=hash_table, Key=key, UpdateExpression="REMOVE a",
                    ConditionExpression="attribute_not_exists(pk)")
    assert "Item" not in ddb.get_item(TableName=hash_table, Key=key, ConsistentRead=True)


def test_updates_that_add_or_name_no_action_still_create_the_item(ddb: Any,
                                                                  hash_table: str) -> None:
    """The exception is only for updates that take away: a SET creates the item (the
    UpdateItem API Reference: "creates a new item if it does not already exist"), and so
    does an update with no action at all (dynalite's "should just add item with key if
    no action", alternator's test_empty_update)."""
    ddb.update_item(TableName=hash_table, Key={"pk": S("set")}, UpdateExpression="SET a = :v",
                    ExpressionAttributeValues={":v": N(1)})
    ddb.update_item(TableName=hash_table, Key={"pk": S("bare")})
    assert ddb.get_item(TableName=hash_table, Key={"pk": S("set")})["Item"] == {
        "pk": S("set"), "a": N(1)}
    assert ddb.get_item(TableName=hash_table, Key={"pk": S("bare")})["Item"] == {"pk": S("bare")}


def test_a_removing_update_of_an_existing_item_still_updates_it(ddb: Any,
                                                                hash_table: str) -> None:
    """Only an absent item stays absent: an existing one loses the attributes, and
    UPDATED_NEW has nothing to show for a removal (UpdateItem API Reference,
    ReturnValues)."""
    key = {"pk": S("present")}
    ddb.put_item(TableName=hash_table, Item={**key, "a": N(1), "b": N(2)})
    answer = ddb.update_item(TableName=hash_table, Key=key, UpdateExpression="REMOVE a",
                             ReturnValues="ALL_NEW")
    assert answer["Attributes"] == {**key, "b": N(2)}
    assert "Attributes" not in ddb.update_item(TableName=hash_table, Key=key,
                                               UpdateExpression="REMOVE b",
                                               ReturnValues="UPDATED_NEW")


def test_a_transaction_update_that_only_takes_away_does_not_create_the_item(
        ddb: Any, hash_table: str) -> None:
    """A transaction's Update is an UpdateItem (TransactWriteItems API Reference): the
    same rule holds, and the other actions are written."""
    ddb.transact_write_items(TransactItems=[
        {"Update": {"TableName": hash_table, "Key": {"pk": S("txn-absent")},
                    "UpdateExpression": "REMOVE a"}},
        {"Put": {"TableName": hash_table, "Item": {"pk": S("txn-put")}}}])
    assert "Item" not in ddb.get_item(TableName=hash_table, Key={"pk": S("txn-absent")})
    assert ddb.get_item(TableName=hash_table, Key={"pk": S("txn-put")})["Item"]


# ---- key size limits --------------------------------------------------------------------

def test_partition_key_values_are_at_most_2048_bytes(ddb: Any) -> None:
    """"Partition key length: the maximum length of a partition key value is 2048
    bytes" (Developer Guide, "Service, account, and table quotas" / Constraints); the
    message is DynamoDB's, no space before the number (moto's
    test_key_length_exceptions.py, dynalite's test/getItem.js). Bytes, not characters:
    a 4-byte character counts 4. Reads are refused as writes are (alternator's
    test_limit_partition_key_len_2048)."""
    table = _table(ddb)
    ddb.put_item(TableName=table, Item={"pk": S("x" * 2048)})
    ddb.put_item(TableName=table, Item={"pk": S("\U0001f600" * 512)})
    for key in ({"pk": S("x" * 2049)}, {"pk": S("x" + "\U0001f600" * 512)}):
        expect_error(ddb.put_item, "ValidationException", HASH_TOO_LONG, TableName=table,
                     Item=key)
        expect_error(ddb.get_item, "ValidationException", HASH_TOO_LONG, TableName=table,
                     Key=key)
        expect_error(ddb.update_item, "ValidationException", HASH_TOO_LONG, TableName=table,
                     Key=key, UpdateExpression="SET a = :v",
                     ExpressionAttributeValues={":v": N(1)})
        expect_error(ddb.delete_item, "ValidationException", HASH_TOO_LONG, TableName=table,
                     Key=key)
    expect_error(ddb.batch_write_item, "ValidationException", HASH_TOO_LONG,
                 RequestItems={table: [{"PutRequest": {"Item": {"pk": S("y" * 2049)}}}]})


def test_sort_key_values_are_at_most_1024_bytes(ddb: Any) -> None:
    """"The maximum length of a sort key value is 1024 bytes" (Constraints page);
    DynamoDB's message speaks of "all range keys" (moto's test_key_length_exceptions.py,
    dynalite's test/getItem.js). Binary keys count their bytes, not their base64 text
    (alternator's test_limit_sort_key_len_1024)."""
    table = _table(ddb, "S")
    binary = _table(ddb, "B")
    ddb.put_item(TableName=table, Item={"pk": S("a"), "sk": S("x" * 1024)})
    ddb.put_item(TableName=binary, Item={"pk": S("a"), "sk": {"B": b"\x01" * 1024}})
    expect_error(ddb.put_item, "ValidationException", RANGE_TOO_LONG, TableName=table,
                 Item={"pk": S("a"), "sk": S("x" * 1025)})
    expect_error(ddb.put_item, "ValidationException", RANGE_TOO_LONG, TableName=binary,
                 Item={"pk": S("a"), "sk": {"B": b"\x01" * 1025}})
    expect_error(ddb.get_item, "ValidationException", RANGE_TOO_LONG, TableName=table,
                 Key={"pk": S("a"), "sk": S("x" * 1025)})


def test_secondary_index_key_values_have_the_same_limits(ddb: Any) -> None:
    """The limits hold for index keys too ("Partition keys and sort keys" applies to
    tables and secondary indexes): a GSI partition key over 2,048 bytes and a GSI or LSI
    sort key over 1,024 are refused with the same messages (moto's
    test_put_long_string_gsi_range_key_exception: the table's partition key may hold
    2,048 bytes, but not when it is also a GSI sort key; formkiq/formkiq-core#271 quotes
    the range message for a GSI attribute)."""
    table = _table(
        ddb, "S",
        definitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("g", "l")],
        GlobalSecondaryIndexes=[
            {"IndexName": "by_g", "Projection": {"ProjectionType": "ALL"},
             "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}]},
            {"IndexName": "by_sk_pk", "Projection": {"ProjectionType": "KEYS_ONLY"},
             "KeySchema": [{"AttributeName": "sk", "KeyType": "HASH"},
                           {"AttributeName": "pk", "KeyType": "RANGE"}]}],
        LocalSecondaryIndexes=[
            {"IndexName": "by_l", "Projection": {"ProjectionType": "ALL"},
             "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                           {"AttributeName": "l", "KeyType": "RANGE"}]}])
    ok = {"pk": S("a"), "sk": S("s"), "g": S("g" * 2048), "l": S("l" * 1024)}
    ddb.put_item(TableName=table, Item=ok)
    for item, message in [
            ({**ok, "g": S("g" * 2049)}, HASH_TOO_LONG),
            ({**ok, "l": S("l" * 1025)}, RANGE_TOO_LONG),
            ({**ok, "pk": S("p" * 1025)}, RANGE_TOO_LONG)]:
        expect_error(ddb.put_item, "ValidationException", message, TableName=table, Item=item)
    # an update that makes an index key too long says so in an update's words (the API
    # Reference's list of ValidationError messages under TransactionCanceledException)
    expect_error(ddb.update_item, "ValidationException",
                 "The update expression attempted to update the secondary index key beyond "
                 "allowed size limits", TableName=table, Key={"pk": S("a"), "sk": S("s")},
                 UpdateExpression="SET g = :v", ExpressionAttributeValues={":v": S("g" * 2049)})
    assert ddb.get_item(TableName=table, Key={"pk": S("a"), "sk": S("s")})["Item"] == ok


# ---- transactions -----------------------------------------------------------------------

def test_a_transaction_over_4_mb_is_refused(ddb: Any, hash_table: str) -> None:
    """"The aggregate size of the items in the transaction cannot exceed 4 MB"
    (TransactWriteItems API Reference): eleven 390 KB items are refused whole, nothing
    written; ten (3.9 MB) go through."""
    big = "x" * (390 * 1024)
    items = [{"Put": {"TableName": hash_table, "Item": {"pk": S(f"big{i}"), "d": S(big)}}}
             for i in range(11)]
    expect_error(ddb.transact_write_items, "ValidationException", "4 MB", TransactItems=items)
    assert "Item" not in ddb.get_item(TableName=hash_table, Key={"pk": S("big0")})
    ddb.transact_write_items(TransactItems=items[:10])
    assert ddb.get_item(TableName=hash_table, Key={"pk": S("big9")})["Item"]["d"] == S(big)


def test_a_key_of_the_wrong_type_cancels_the_transaction(ddb: Any, hash_table: str) -> None:
    """Inside a transaction a key of the wrong type is not a ValidationException: the
    transaction is cancelled, that action's reason a ValidationError with the message
    the single operation gives, the others None; an empty string key stays a
    request-level ValidationException (paritysuite conformance suite, captured against
    DynamoDB: tests/tier3/error-messages/transactWriteItems.test.ts)."""
    put_ok = {"Put": {"TableName": hash_table, "Item": {"pk": S("fine")}}}
    cases = [
        ({"Put": {"TableName": hash_table, "Item": {"pk": N(5)}}},
         "One or more parameter values were invalid: Type mismatch for key pk expected: S "
         "actual: N"),
        ({"Put": {"TableName": hash_table, "Item": {"pk": {"L": [S("x")]}}}},
         "One or more parameter values were invalid: Type mismatch for key pk expected: S "
         "actual: L"),
        ({"Delete": {"TableName": hash_table, "Key": {"pk": N(5)}}},
         "The provided key element does not match the schema"),
        ({"ConditionCheck": {"TableName": hash_table, "Key": {"pk": {"L": []}},
                             "ConditionExpression": "attribute_not_exists(pk)"}},
         "The provided key element does not match the schema"),
        ({"Update": {"TableName": hash_table, "Key": {"pk": N(5)},
                     "UpdateExpression": "SET a = :v", "ExpressionAttributeValues": {":v": N(1)}}},
         "The provided key element does not match the schema"),
    ]
    for action, message in cases:
        response = _cancellation(ddb.transact_write_items, TransactItems=[put_ok, action])
        assert response["Error"]["Message"] == CANCELLED + "[None, ValidationError]"
        assert response["CancellationReasons"] == [
            {"Code": "None"}, {"Code": "ValidationError", "Message": message}]
    assert "Item" not in ddb.get_item(TableName=hash_table, Key={"pk": S("fine")})
    expect_error(ddb.transact_write_items, "ValidationException",
                 "The AttributeValue for a key attribute cannot contain an empty string value",
                 TransactItems=[{"Delete": {"TableName": hash_table, "Key": {"pk": S("")}}}])


def test_an_update_that_breaks_a_limit_cancels_with_the_documented_reason(ddb: Any) -> None:
    """The TransactionCanceledException entry of the API Reference lists the
    ValidationError messages of a transaction whose changes break a limit: an item grown
    past 400 KB ("Item size to update has exceeded the maximum allowed size"), a
    secondary index key made too long, nesting too deep ("Nesting Levels have exceeded
    supported limits", worded so in the reason: paritysuite's nestingDepth.test.ts), a
    number out of range."""
    table = _table(ddb, definitions=[{"AttributeName": "g", "AttributeType": "S"}],
                   GlobalSecondaryIndexes=[{
                       "IndexName": "by_g", "Projection": {"ProjectionType": "KEYS_ONLY"},
                       "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}]}])
    half = S("x" * (210 * 1024))
    deep: dict[str, Any] = S("leaf")
    for _ in range(31):
        deep = {"M": {"n": deep}}
    ddb.put_item(TableName=table, Item={"pk": S("k"), "big": N("9E+125"), "deep": deep})
    cases = [
        ("SET a = :v, b = :v", {":v": half},
         "Item size to update has exceeded the maximum allowed size"),
        ("SET g = :v", {":v": S("g" * 2049)},
         "The update expression attempted to update the secondary index key beyond allowed "
         "size limits"),
        ("SET deep" + ".n" * 31 + " = :v",  # the leaf, 31 maps down, becomes a map
         {":v": {"M": {"x": S("y")}}}, "Nesting Levels have exceeded supported limits"),
        ("SET big = big + :v", {":v": N("9E+125")},
         "Number overflow. Attempting to store a number with magnitude larger than supported "
         "range"),
    ]
    for expression, values, message in cases:
        response = _cancellation(ddb.transact_write_items, TransactItems=[{"Update": {
            "TableName": table, "Key": {"pk": S("k")}, "UpdateExpression": expression,
            "ExpressionAttributeValues": values}}])
        assert response["CancellationReasons"] == [{"Code": "ValidationError",
                                                    "Message": message}], expression
    assert ddb.get_item(TableName=table, Key={"pk": S("k")})["Item"]["big"] == N("9" + "0" * 125)


# ---- numbers computed inside expressions ------------------------------------------------

@pytest.mark.parametrize("expression, values, message", [
    ("SET r = :a + :b", {":a": N("9E+125"), ":b": N("9E+125")}, "Number overflow"),
    ("SET r = :a - :b", {":a": N("9E+125"), ":b": N("-9E+125")}, "Number overflow"),
    ("SET r = :a - :b", {":a": N("2E-130"), ":b": N("1.5E-130")}, "Number underflow"),
    # 1E+50 + 1 needs 51 digits: DynamoDB says "Number overflow" here too, not the
    # 38-digit message (alternator's test_update_expression_plus_imprecise)
    ("SET r = :a + :b", {":a": N("1E+50"), ":b": N(1)}, "Number overflow"),
    ("ADD n :b", {":b": N("1E+50")}, "Number overflow"),
])
def test_arithmetic_results_out_of_range_are_refused(ddb: Any, hash_table: str,
                                                     expression: str, values: dict[str, Any],
                                                     message: str) -> None:
    """Numbers hold 38 significant digits within 1E-130..9.99E+125 (Developer Guide,
    "Data types", Number); a result of `+`, `-` or ADD outside that is refused with
    DynamoDB's messages (alternator's test_number.py: test_update_expression_plus_overflow,
    test_update_expression_plus_imprecise), and nothing is written."""
    key = {"pk": S("arith")}
    ddb.put_item(TableName=hash_table, Item={**key, "n": N(1)})
    expect_error(ddb.update_item, "ValidationException", message, TableName=hash_table, Key=key,
                 UpdateExpression=expression, ExpressionAttributeValues=values)
    assert ddb.get_item(TableName=hash_table, Key=key)["Item"] == {**key, "n": N(1)}


def test_arithmetic_keeps_all_38_digits(ddb: Any, hash_table: str) -> None:
    """The arithmetic is exact to 38 digits (alternator's
    test_update_expression_plus_precision)."""
    key = {"pk": S("precise")}
    ddb.update_item(TableName=hash_table, Key=key, UpdateExpression="SET r = :a + :b",
                    ExpressionAttributeValues={":a": N(1), ":b": N("1" + "0" * 36)})
    assert ddb.get_item(TableName=hash_table, Key=key)["Item"]["r"] == N("1" + "0" * 35 + "1")


# ---- conditions: comparison operand types -----------------------------------------------

@pytest.mark.parametrize("condition, value, type_name", [
    ("a < :v", {"BOOL": True}, "BOOL"),
    ("a <= :v", {"M": {"x": N(1)}}, "M"),
    (":v > a", {"NULL": True}, "NULL"),
    ("a >= :v", {"L": [N(1)]}, "L"),
    ("a < :v", {"SS": ["x"]}, "SS"),
])
def test_ordering_a_value_that_has_no_order_is_refused(ddb: Any, hash_table: str,
                                                       condition: str, value: dict[str, Any],
                                                       type_name: str) -> None:
    """`<`, `<=`, `>`, `>=` compare strings, numbers and binaries ("Comparison operator
    and function reference"); a value of another type is refused, not compared as
    false: "Invalid FilterExpression: Incorrect operand type for operator or function;
    operator or function: <=, operand type: BOOL" is DynamoDB's answer quoted in the
    Trino DynamoDB connector's source. Equality still compares any type."""
    key = {"pk": S("ordered")}
    ddb.put_item(TableName=hash_table, Item={**key, "a": N(1)})
    op = condition.split()[1]
    expect_error(ddb.put_item, "ValidationException",
                 "Invalid ConditionExpression: Incorrect operand type for operator or function; "
                 f"operator or function: {op}, operand type: {type_name}",
                 TableName=hash_table, Item=key, ConditionExpression=condition,
                 ExpressionAttributeValues={":v": value})
    expect_error(ddb.scan, "ValidationException", "Invalid FilterExpression: Incorrect operand "
                 f"type for operator or function; operator or function: {op}", TableName=hash_table,
                 FilterExpression=condition, ExpressionAttributeValues={":v": value})
    ddb.put_item(TableName=hash_table, Item=key, ConditionExpression="a <> :v",
                 ExpressionAttributeValues={":v": value})


@pytest.mark.parametrize("condition, values, message", [
    ("size(:v) > :n", {":v": N(1), ":n": N(0)},
     "Incorrect operand type for operator or function; operator or function: size, operand "
     "type: N"),
    ("attribute_type(a, :t)", {":t": S("STRING")},
     "Invalid attribute type name found; type: STRING, valid types:"),
    ("attribute_type(a, :t)", {":t": N(1)},
     "Incorrect operand type for operator or function; operator or function: attribute_type"),
    ("begins_with(a, :t)", {":t": N(1)},
     "Incorrect operand type for operator or function; operator or function: begins_with, "
     "operand type: N"),
    ("a BETWEEN :x AND :y", {":x": N(5), ":y": N(4)},
     "The BETWEEN operator requires upper bound to be greater than or equal to lower bound; "
     "lower bound operand: AttributeValue: {N:5}, upper bound operand: AttributeValue: {N:4}"),
])
def test_update_condition_function_and_type_errors(ddb: Any, hash_table: str, condition: str,
                                                   values: dict[str, Any], message: str) -> None:
    """Update conditions with size(), attribute_type(), begins_with() and BETWEEN are
    checked against their operand types before the item is read, with DynamoDB's
    messages (dynalite's test/updateItem.js and test/putItem.js; alternator's
    test_condition_expression.py)."""
    expect_error(ddb.update_item, "ValidationException", "Invalid ConditionExpression: " + message,
                 TableName=hash_table, Key={"pk": S("cond")}, UpdateExpression="SET z = :z",
                 ConditionExpression=condition, ExpressionAttributeValues={":z": N(1), **values})
    assert "Item" not in ddb.get_item(TableName=hash_table, Key={"pk": S("cond")})


def test_size_compares_as_a_number(ddb: Any, hash_table: str) -> None:
    """size() of a path is a number, so comparing it with a number works and with a
    string is false, not an error (Developer Guide, "Comparison operator and function
    reference", size)."""
    key = {"pk": S("sized")}
    ddb.put_item(TableName=hash_table, Item={**key, "s": S("abc")})
    ddb.update_item(TableName=hash_table, Key=key, UpdateExpression="SET z = :z",
                    ConditionExpression="size(s) = :n",
                    ExpressionAttributeValues={":z": N(1), ":n": N(3)})
    expect_error(ddb.update_item, "ConditionalCheckFailedException", "", TableName=hash_table,
                 Key=key, UpdateExpression="SET z = :z", ConditionExpression="size(s) = :n",
                 ExpressionAttributeValues={":z": N(2), ":n": S("3")})

