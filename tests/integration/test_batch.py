"""BatchGetItem and BatchWriteItem against a live server.

References (DynamoDB API Reference): BatchGetItem — "A single operation can retrieve up to
16 MB of data, which can contain as many as 100 items"; keys that do not exist are simply
not returned; more than 100 keys or the same key twice is a ValidationException ("Provided
list of item keys contains duplicates"). BatchWriteItem — up to 25 put or delete requests;
"There are more than 25 requests in the batch" and "Your request contains at least two
items with identical hash and range keys (which essentially is two put operations)" are
rejected with ValidationException; requests that cannot be processed come back in
UnprocessedItems / UnprocessedKeys.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.wire import expect_error, put_all, snapshot
from tests.support import create_table


def _key(i: int) -> dict[str, Any]:
    return {"pk": {"S": f"k{i:03d}"}}


def _item(i: int) -> dict[str, Any]:
    return {**_key(i), "v": {"N": str(i)}}


@pytest.fixture
def hundred(ddb: Any, hash_table: str) -> str:
    put_all(ddb, hash_table, [_item(i) for i in range(100)])
    return hash_table


def _values(items: list[dict[str, Any]]) -> list[int]:
    return sorted(int(item["v"]["N"]) for item in items)


def test_batch_get_one_hundred_keys(ddb: Any, hundred: str) -> None:
    answer = ddb.batch_get_item(RequestItems={hundred: {"Keys": [_key(i) for i in range(100)]}})
    assert _values(answer["Responses"][hundred]) == list(range(100))
    assert answer["UnprocessedKeys"] == {}


def test_batch_get_missing_keys_are_just_absent(ddb: Any, hundred: str) -> None:
    keys = [_key(i) for i in range(90, 110)]  # 100..109 do not exist
    answer = ddb.batch_get_item(RequestItems={hundred: {"Keys": keys}})
    assert _values(answer["Responses"][hundred]) == list(range(90, 100))


def test_batch_get_nothing_found(ddb: Any, hash_table: str) -> None:
    answer = ddb.batch_get_item(RequestItems={hash_table: {"Keys": [_key(1)]}})
    assert answer["Responses"].get(hash_table, []) == []


def test_batch_get_with_projection(ddb: Any, hundred: str) -> None:
    answer = ddb.batch_get_item(RequestItems={hundred: {
        "Keys": [_key(1), _key(2)], "ProjectionExpression": "#v",
        "ExpressionAttributeNames": {"#v": "v"}}})
    assert sorted(answer["Responses"][hundred], key=lambda i: i["v"]["N"]) == \
        [{"v": {"N": "1"}}, {"v": {"N": "2"}}]


def test_batch_get_across_tables(ddb: Any, hundred: str) -> None:
    other = create_table(ddb, hundred + "_other", hash_key=("id", "N"), range_key=("r", "B"))
    ddb.put_item(TableName=other, Item={"id": {"N": "1"}, "r": {"B": b"\x01"}, "x": {"S": "y"}})
    answer = ddb.batch_get_item(RequestItems={
        hundred: {"Keys": [_key(5)]},
        other: {"Keys": [{"id": {"N": "1.0"}, "r": {"B": b"\x01"}}]},
    })
    assert answer["Responses"][hundred] == [_item(5)]
    assert answer["Responses"][other] == [{"id": {"N": "1"}, "r": {"B": b"\x01"}, "x": {"S": "y"}}]


def test_batch_get_more_than_one_hundred_keys_is_rejected(ddb: Any, hundred: str) -> None:
    expect_error(ddb.batch_get_item, "ValidationException", "",
                 RequestItems={hundred: {"Keys": [_key(i) for i in range(101)]}})


def test_batch_get_more_than_one_hundred_keys_over_two_tables_is_rejected(
        ddb: Any, hundred: str) -> None:
    other = create_table(ddb, hundred + "_second")
    expect_error(ddb.batch_get_item, "ValidationException", "Too many items",
                 RequestItems={hundred: {"Keys": [_key(i) for i in range(60)]},
                               other: {"Keys": [_key(i) for i in range(41)]}})


@pytest.mark.parametrize("keys", [
    [_key(1), _key(1)],
    [_key(1), _key(2), _key(1)],
])
def test_batch_get_duplicate_keys_are_rejected(ddb: Any, hundred: str,
                                               keys: list[dict[str, Any]]) -> None:
    expect_error(ddb.batch_get_item, "ValidationException",
                 "Provided list of item keys contains duplicates",
                 RequestItems={hundred: {"Keys": keys}})


def test_batch_get_duplicate_number_keys_after_normalisation(ddb: Any, table_name: str) -> None:
    create_table(ddb, table_name, hash_key=("id", "N"))
    expect_error(ddb.batch_get_item, "ValidationException", "duplicates",
                 RequestItems={table_name: {"Keys": [{"id": {"N": "1"}}, {"id": {"N": "1.00"}}]}})


@pytest.mark.parametrize("key,fragment", [
    ({"other": {"S": "x"}}, "does not match the schema"),
    ({"pk": {"N": "1"}}, "does not match the schema"),
    ({"pk": {"S": "x"}, "extra": {"S": "y"}}, "does not match the schema"),
])
def test_batch_get_bad_keys(ddb: Any, hundred: str, key: dict[str, Any], fragment: str) -> None:
    expect_error(ddb.batch_get_item, "ValidationException", fragment,
                 RequestItems={hundred: {"Keys": [_key(1), key]}})


def test_batch_get_unknown_table(ddb: Any, hundred: str) -> None:
    expect_error(ddb.batch_get_item, "ResourceNotFoundException", "",
                 RequestItems={hundred: {"Keys": [_key(1)]}, "no_such_table": {"Keys": [_key(1)]}})


# --- BatchWriteItem -----------------------------------------------------------------------

def test_batch_write_twenty_five_puts(ddb: Any, hash_table: str) -> None:
    answer = ddb.batch_write_item(RequestItems={hash_table: [
        {"PutRequest": {"Item": _item(i)}} for i in range(25)]})
    assert answer["UnprocessedItems"] == {}
    assert _values(snapshot(ddb, hash_table)) == list(range(25))


def test_batch_write_put_and_delete_mix(ddb: Any, hash_table: str) -> None:
    put_all(ddb, hash_table, [_item(i) for i in range(10)])
    answer = ddb.batch_write_item(RequestItems={hash_table: [
        *[{"DeleteRequest": {"Key": _key(i)}} for i in range(0, 10, 2)],  # delete the evens
        *[{"PutRequest": {"Item": {**_item(i), "new": {"BOOL": True}}}} for i in (1, 10, 11)],
        {"DeleteRequest": {"Key": _key(99)}},  # deleting an absent item is fine
    ]})
    assert answer["UnprocessedItems"] == {}
    items = {item["pk"]["S"]: item for item in snapshot(ddb, hash_table)}
    assert sorted(items) == [_key(i)["pk"]["S"] for i in (1, 3, 5, 7, 9, 10, 11)]
    assert items["k001"]["new"] == {"BOOL": True}  # a put replaces the whole item
    assert "new" not in items["k003"]


def test_batch_write_across_tables(ddb: Any, hash_table: str) -> None:
    other = create_table(ddb, hash_table + "_w2", hash_key=("id", "N"))
    ddb.batch_write_item(RequestItems={
        hash_table: [{"PutRequest": {"Item": _item(1)}}],
        other: [{"PutRequest": {"Item": {"id": {"N": "7"}}}}],
    })
    assert snapshot(ddb, hash_table) == [_item(1)]
    assert snapshot(ddb, other) == [{"id": {"N": "7"}}]


def test_batch_write_more_than_twenty_five_is_rejected_and_writes_nothing(
        ddb: Any, hash_table: str) -> None:
    expect_error(ddb.batch_write_item, "ValidationException", "25",
                 RequestItems={hash_table: [{"PutRequest": {"Item": _item(i)}} for i in range(26)]})
    assert snapshot(ddb, hash_table) == []


def test_batch_write_more_than_twenty_five_over_two_tables_is_rejected(
        ddb: Any, hash_table: str) -> None:
    other = create_table(ddb, hash_table + "_w3")
    expect_error(ddb.batch_write_item, "ValidationException", "",
                 RequestItems={hash_table: [{"PutRequest": {"Item": _item(i)}} for i in range(13)],
                               other: [{"PutRequest": {"Item": _item(i)}} for i in range(13)]})
    assert snapshot(ddb, hash_table) == [] and snapshot(ddb, other) == []


@pytest.mark.parametrize("requests", [
    [{"PutRequest": {"Item": _item(1)}}, {"PutRequest": {"Item": _item(1)}}],
    [{"PutRequest": {"Item": _item(1)}}, {"DeleteRequest": {"Key": _key(1)}}],
    [{"DeleteRequest": {"Key": _key(1)}}, {"DeleteRequest": {"Key": _key(1)}}],
])
def test_batch_write_duplicate_keys_are_rejected_and_write_nothing(
        ddb: Any, hash_table: str, requests: list[dict[str, Any]]) -> None:
    ddb.put_item(TableName=hash_table, Item={**_key(1), "orig": {"BOOL": True}})
    before = snapshot(ddb, hash_table)
    expect_error(ddb.batch_write_item, "ValidationException", "duplicates",
                 RequestItems={hash_table: [{"PutRequest": {"Item": _item(2)}}, *requests]})
    assert snapshot(ddb, hash_table) == before


@pytest.mark.parametrize("bad,fragment", [
    ({"PutRequest": {"Item": {"v": {"N": "1"}}}}, "Missing the key pk"),
    ({"PutRequest": {"Item": {"pk": {"N": "1"}}}}, "Type mismatch"),
    ({"PutRequest": {"Item": {"pk": {"S": ""}}}}, "empty string"),
    ({"PutRequest": {"Item": {"pk": {"S": "x"}, "n": {"N": "1E+126"}}}}, "overflow"),
    ({"PutRequest": {"Item": {"pk": {"S": "x"}, "ss": {"SS": []}}}}, "empty"),
    ({"PutRequest": {"Item": {"pk": {"S": "x"}, "big": {"S": "x" * 409_600}}}}, "Item size"),
    ({"DeleteRequest": {"Key": {"pk": {"S": "x"}, "extra": {"S": "y"}}}}, "does not match"),
    ({"DeleteRequest": {"Key": {"nope": {"S": "x"}}}}, "does not match"),
])
def test_batch_write_one_bad_request_rejects_the_whole_batch(
        ddb: Any, hash_table: str, bad: dict[str, Any], fragment: str) -> None:
    ddb.put_item(TableName=hash_table, Item=_item(0))
    before = snapshot(ddb, hash_table)
    expect_error(ddb.batch_write_item, "ValidationException", fragment,
                 RequestItems={hash_table: [{"DeleteRequest": {"Key": _key(0)}},
                                            {"PutRequest": {"Item": _item(1)}}, bad]})
    assert snapshot(ddb, hash_table) == before


def test_batch_write_unknown_table_writes_nothing(ddb: Any, hash_table: str) -> None:
    expect_error(ddb.batch_write_item, "ResourceNotFoundException", "",
                 RequestItems={hash_table: [{"PutRequest": {"Item": _item(1)}}],
                               "no_such_table": [{"PutRequest": {"Item": _item(1)}}]})
    assert snapshot(ddb, hash_table) == []


def test_batch_write_empty_request_list_is_rejected(raw_ddb: Any, hash_table: str) -> None:
    expect_error(raw_ddb.batch_write_item, "ValidationException", "",
                 RequestItems={hash_table: []})


def test_batch_write_request_with_both_put_and_delete_is_rejected(raw_ddb: Any, ddb: Any,
                                                                  hash_table: str) -> None:
    expect_error(raw_ddb.batch_write_item, "ValidationException", "",
                 RequestItems={hash_table: [{"PutRequest": {"Item": _item(1)},
                                             "DeleteRequest": {"Key": _key(2)}}]})
    expect_error(raw_ddb.batch_write_item, "ValidationException", "",
                 RequestItems={hash_table: [{}]})
    assert snapshot(ddb, hash_table) == []


def test_resource_batch_writer(dynamodb: Any, hash_table: str) -> None:
    table = dynamodb.Table(hash_table)
    with table.batch_writer() as writer:  # buffers and sends BatchWriteItem of 25
        for i in range(60):
            writer.put_item(Item={"pk": f"k{i:03d}", "v": i})
    assert len(snapshot(dynamodb.meta.client, hash_table)) == 60
