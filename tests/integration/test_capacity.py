"""ReturnConsumedCapacity through boto3, with DynamoDB's capacity-unit arithmetic: reads
in 4 KB units (eventually consistent: half), writes in 1 KB units of the larger of the old
and new item, index writes charged to their index, transactions doubled."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import create_table


def _item(pk: str, size_bytes: int, **extra: Any) -> dict[str, Any]:
    # "pk" (2) + value (len(pk)) + "pad" (3) + padding = size_bytes
    return {"pk": {"S": pk}, "pad": {"S": "x" * (size_bytes - 5 - len(pk))}, **extra}


@pytest.fixture
def indexed(ddb: Any, table_name: str) -> str:
    ddb.create_table(
        TableName=table_name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "g", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[{"IndexName": "by_g",
                                 "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "KEYS_ONLY"}}])
    return table_name


@pytest.mark.parametrize("size,consistent,units", [
    (100, False, 0.5), (100, True, 1.0), (4096, True, 1.0), (4097, True, 2.0),
    (9000, False, 1.5),
])
def test_get_item_read_units(ddb: Any, hash_table: str, size: int, consistent: bool,
                             units: float) -> None:
    ddb.put_item(TableName=hash_table, Item=_item("a", size))
    response = ddb.get_item(TableName=hash_table, Key={"pk": {"S": "a"}},
                            ConsistentRead=consistent, ReturnConsumedCapacity="TOTAL")
    assert response["ConsumedCapacity"]["CapacityUnits"] == units
    assert response["ConsumedCapacity"]["TableName"] == hash_table


def test_get_of_missing_item_costs_the_minimum(ddb: Any, hash_table: str) -> None:
    response = ddb.get_item(TableName=hash_table, Key={"pk": {"S": "none"}},
                            ReturnConsumedCapacity="TOTAL")
    assert response["ConsumedCapacity"]["CapacityUnits"] == 0.5


@pytest.mark.parametrize("size,units", [(100, 1.0), (1024, 1.0), (1025, 2.0), (3000, 3.0)])
def test_put_item_write_units(ddb: Any, hash_table: str, size: int, units: float) -> None:
    response = ddb.put_item(TableName=hash_table, Item=_item("a", size),
                            ReturnConsumedCapacity="TOTAL")
    assert response["ConsumedCapacity"]["CapacityUnits"] == units


def test_write_units_use_the_larger_of_old_and_new(ddb: Any, hash_table: str) -> None:
    ddb.put_item(TableName=hash_table, Item=_item("a", 5000))
    small = ddb.put_item(TableName=hash_table, Item=_item("a", 10), ReturnConsumedCapacity="TOTAL")
    assert small["ConsumedCapacity"]["CapacityUnits"] == 5.0
    ddb.put_item(TableName=hash_table, Item=_item("b", 2000))
    deleted = ddb.delete_item(TableName=hash_table, Key={"pk": {"S": "b"}},
                              ReturnConsumedCapacity="TOTAL")
    assert deleted["ConsumedCapacity"]["CapacityUnits"] == 2.0
    updated = ddb.update_item(TableName=hash_table, Key={"pk": {"S": "c"}},
                              UpdateExpression="SET v = :v",
                              ExpressionAttributeValues={":v": {"S": "x"}},
                              ReturnConsumedCapacity="TOTAL")
    assert updated["ConsumedCapacity"]["CapacityUnits"] == 1.0


def test_indexes_mode_splits_table_and_index_units(ddb: Any, indexed: str) -> None:
    response = ddb.put_item(TableName=indexed, Item=_item("a", 1500, g={"S": "x"}),
                            ReturnConsumedCapacity="INDEXES")
    consumed = response["ConsumedCapacity"]
    assert consumed["Table"]["CapacityUnits"] == 2.0
    assert consumed["GlobalSecondaryIndexes"] == {"by_g": {"CapacityUnits": 1.0,
                                                           "WriteCapacityUnits": 1.0}}
    assert consumed["CapacityUnits"] == 3.0
    # moving the item to another index key deletes one index row and writes another
    moved = ddb.update_item(TableName=indexed, Key={"pk": {"S": "a"}}, UpdateExpression="SET g = :g",
                            ExpressionAttributeValues={":g": {"S": "y"}},
                            ReturnConsumedCapacity="INDEXES")["ConsumedCapacity"]
    assert moved["GlobalSecondaryIndexes"]["by_g"]["CapacityUnits"] == 2.0
    # an item outside the sparse index costs the index nothing
    sparse = ddb.put_item(TableName=indexed, Item=_item("b", 10),
                          ReturnConsumedCapacity="INDEXES")["ConsumedCapacity"]
    assert "GlobalSecondaryIndexes" not in sparse and sparse["CapacityUnits"] == 1.0
    total = ddb.put_item(TableName=indexed, Item=_item("c", 10, g={"S": "x"}),
                         ReturnConsumedCapacity="TOTAL")["ConsumedCapacity"]
    assert total["CapacityUnits"] == 2.0 and "Table" not in total


def test_query_and_scan_count_the_items_read(ddb: Any, indexed: str) -> None:
    range_table = create_table(ddb, indexed + "_r", range_key=("sk", "N"))
    for n in range(10):
        ddb.put_item(TableName=range_table, Item={"pk": {"S": "p"}, "sk": {"N": str(n)},
                                                  "pad": {"S": "x" * 1000}})
    query = ddb.query(TableName=range_table, KeyConditionExpression="pk = :p",
                      ExpressionAttributeValues={":p": {"S": "p"}}, ConsistentRead=True,
                      ReturnConsumedCapacity="TOTAL")
    assert query["ConsumedCapacity"]["CapacityUnits"] == 3.0  # ~10 KB in 4 KB units
    scan = ddb.scan(TableName=range_table, ReturnConsumedCapacity="TOTAL")
    assert scan["ConsumedCapacity"]["CapacityUnits"] == 1.5
    ddb.put_item(TableName=indexed, Item=_item("a", 10, g={"S": "x"}))
    on_index = ddb.query(TableName=indexed, IndexName="by_g", KeyConditionExpression="g = :g",
                         ExpressionAttributeValues={":g": {"S": "x"}},
                         ReturnConsumedCapacity="INDEXES")["ConsumedCapacity"]
    assert on_index["GlobalSecondaryIndexes"]["by_g"]["CapacityUnits"] == 0.5
    assert on_index["Table"]["CapacityUnits"] == 0.0


def test_batches_and_transactions(ddb: Any, hash_table: str) -> None:
    written = ddb.batch_write_item(RequestItems={hash_table: [
        {"PutRequest": {"Item": _item(f"k{n}", 1500)}} for n in range(3)]},
        ReturnConsumedCapacity="TOTAL")
    assert written["ConsumedCapacity"] == [{"TableName": hash_table, "CapacityUnits": 6.0,
                                            "WriteCapacityUnits": 6.0}]
    read = ddb.batch_get_item(RequestItems={hash_table: {"Keys": [
        {"pk": {"S": f"k{n}"}} for n in range(3)]}}, ReturnConsumedCapacity="TOTAL")
    assert read["ConsumedCapacity"][0]["CapacityUnits"] == 1.5
    transacted = ddb.transact_write_items(TransactItems=[
        {"Put": {"TableName": hash_table, "Item": _item("t1", 1500)}},
        {"Delete": {"TableName": hash_table, "Key": {"pk": {"S": "k0"}}}}],
        ReturnConsumedCapacity="TOTAL")
    assert transacted["ConsumedCapacity"][0]["CapacityUnits"] == 8.0  # (2 + 2) * 2
    got = ddb.transact_get_items(TransactItems=[
        {"Get": {"TableName": hash_table, "Key": {"pk": {"S": "t1"}}}}],
        ReturnConsumedCapacity="TOTAL")
    assert got["ConsumedCapacity"][0]["CapacityUnits"] == 2.0


def test_no_capacity_unless_asked(ddb: Any, hash_table: str) -> None:
    assert "ConsumedCapacity" not in ddb.put_item(TableName=hash_table, Item=_item("a", 10))
    assert "ConsumedCapacity" not in ddb.put_item(TableName=hash_table, Item=_item("a", 10),
                                                  ReturnConsumedCapacity="NONE")


def test_item_collection_metrics_on_tables_with_an_lsi(ddb: Any, table_name: str) -> None:
    ddb.create_table(
        TableName=table_name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "l")],
        LocalSecondaryIndexes=[{"IndexName": "by_l", "Projection": {"ProjectionType": "ALL"},
                                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                              {"AttributeName": "l", "KeyType": "RANGE"}]}])
    key = {"pk": {"S": "a"}, "sk": {"S": "1"}}
    put = ddb.put_item(TableName=table_name, Item={**key, "l": {"S": "x"}},
                       ReturnItemCollectionMetrics="SIZE")
    assert put["ItemCollectionMetrics"] == {"ItemCollectionKey": {"pk": {"S": "a"}},
                                            "SizeEstimateRangeGB": [0.0, 1.0]}
    updated = ddb.update_item(TableName=table_name, Key=key, UpdateExpression="SET v = :v",
                              ExpressionAttributeValues={":v": {"S": "y"}},
                              ReturnItemCollectionMetrics="SIZE")
    assert updated["ItemCollectionMetrics"]["ItemCollectionKey"] == {"pk": {"S": "a"}}
    deleted = ddb.delete_item(TableName=table_name, Key=key, ReturnItemCollectionMetrics="SIZE")
    assert "ItemCollectionMetrics" in deleted


def test_no_item_collection_metrics_without_an_lsi(ddb: Any, hash_table: str) -> None:
    put = ddb.put_item(TableName=hash_table, Item=_item("a", 10), ReturnItemCollectionMetrics="SIZE")
    assert "ItemCollectionMetrics" not in put


def test_item_collection_metrics_of_batches_and_transactions(ddb: Any, table_name: str) -> None:
    ddb.create_table(
        TableName=table_name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "l")],
        LocalSecondaryIndexes=[{"IndexName": "by_l", "Projection": {"ProjectionType": "KEYS_ONLY"},
                                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                              {"AttributeName": "l", "KeyType": "RANGE"}]}])
    batch = ddb.batch_write_item(RequestItems={table_name: [
        {"PutRequest": {"Item": {"pk": {"S": p}, "sk": {"S": s}, "l": {"S": "x"}}}}
        for p, s in (("a", "1"), ("a", "2"), ("b", "1"))]}, ReturnItemCollectionMetrics="SIZE")
    keys = [m["ItemCollectionKey"] for m in batch["ItemCollectionMetrics"][table_name]]
    assert keys == [{"pk": {"S": "a"}}, {"pk": {"S": "b"}}]
    transacted = ddb.transact_write_items(TransactItems=[
        {"Put": {"TableName": table_name, "Item": {"pk": {"S": "c"}, "sk": {"S": "1"}}}}],
        ReturnItemCollectionMetrics="SIZE")
    (metrics,) = transacted["ItemCollectionMetrics"][table_name]
    assert metrics == {"ItemCollectionKey": {"pk": {"S": "c"}}, "SizeEstimateRangeGB": [0.0, 1.0]}


def test_writes_that_leave_an_index_row_unchanged_cost_the_index_nothing(
        ddb: Any, indexed: str) -> None:
    ddb.put_item(TableName=indexed, Item=_item("a", 100, g={"S": "x"}))
    untouched = ddb.update_item(TableName=indexed, Key={"pk": {"S": "a"}},
                                UpdateExpression="SET extra = :v",
                                ExpressionAttributeValues={":v": {"N": "1"}},
                                ReturnConsumedCapacity="INDEXES")["ConsumedCapacity"]
    assert "GlobalSecondaryIndexes" not in untouched  # by_g is KEYS_ONLY
    assert untouched["CapacityUnits"] == 1.0
    removed = ddb.update_item(TableName=indexed, Key={"pk": {"S": "a"}}, UpdateExpression="REMOVE g",
                              ReturnConsumedCapacity="INDEXES")["ConsumedCapacity"]
    assert removed["GlobalSecondaryIndexes"]["by_g"]["CapacityUnits"] == 1.0
    assert ddb.scan(TableName=indexed, IndexName="by_g")["Items"] == []
