"""Secondary indexes through boto3: GSIs and LSIs at CreateTable, GSIs added and removed
by UpdateTable (with backfill), projections, sparse indexes, Query/Scan with IndexName,
and DynamoDB's answers to bad index definitions and bad index keys."""

from __future__ import annotations

import time
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.integration.indexcheck import check_indexes, scan_all
from tests.integration.wire import expect_error
from tests.support import credentials_for

BACKFILL_TIMEOUT_S = 60.0


def _no_retries(ddb: Any) -> Any:
    key_id, secret = credentials_for(ddb.meta.endpoint_url)
    return boto3.client("dynamodb", endpoint_url=ddb.meta.endpoint_url, region_name="us-east-1",
                        aws_access_key_id=key_id, aws_secret_access_key=secret,
                        config=Config(retries={"total_max_attempts": 1}))


def _defs(**types: str) -> list[dict[str, str]]:
    return [{"AttributeName": n, "AttributeType": t} for n, t in types.items()]


def _keys(hash_key: str, range_key: str | None = None) -> list[dict[str, str]]:
    schema = [{"AttributeName": hash_key, "KeyType": "HASH"}]
    if range_key:
        schema.append({"AttributeName": range_key, "KeyType": "RANGE"})
    return schema


def _gsi(name: str, hash_key: str, range_key: str | None = None, projection: str = "ALL",
         non_key: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"ProjectionType": projection}
    if non_key:
        spec["NonKeyAttributes"] = non_key
    return {"IndexName": name, "KeySchema": _keys(hash_key, range_key), "Projection": spec}


@pytest.fixture
def orders(ddb: Any, table_name: str) -> str:
    """pk/sk table with a GSI by customer (ALL), a KEYS_ONLY GSI by status, an INCLUDE
    GSI by region and an LSI by amount."""
    ddb.create_table(
        TableName=table_name, KeySchema=_keys("pk", "sk"), BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=_defs(pk="S", sk="N", customer="S", placed="N", status="S",
                                   region="S", amount="N"),
        GlobalSecondaryIndexes=[
            _gsi("by_customer", "customer", "placed"),
            _gsi("by_status", "status", projection="KEYS_ONLY"),
            _gsi("by_region", "region", projection="INCLUDE", non_key=["amount"]),
        ],
        LocalSecondaryIndexes=[{"IndexName": "by_amount", "KeySchema": _keys("pk", "amount"),
                                "Projection": {"ProjectionType": "KEYS_ONLY"}}])
    return table_name


def _order(pk: str, sk: int, **attrs: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"pk": {"S": pk}, "sk": {"N": str(sk)}}
    for name, value in attrs.items():
        item[name] = {"N": str(value)} if isinstance(value, int) else {"S": value}
    return item


def _query(ddb: Any, table: str, index: str, condition: str, values: dict[str, Any],
           **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    start = None
    while True:
        page = ddb.query(TableName=table, IndexName=index, KeyConditionExpression=condition,
                         ExpressionAttributeValues=values, **params,
                         **({"ExclusiveStartKey": start} if start else {}))
        items += page["Items"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return items


def test_gsi_query_returns_items_in_index_order(ddb: Any, orders: str) -> None:
    for n in range(6):
        ddb.put_item(TableName=orders, Item=_order("o", n, customer="ann", placed=100 - n,
                                                   amount=n))
    ddb.put_item(TableName=orders, Item=_order("p", 1, customer="bob", placed=5))
    items = _query(ddb, orders, "by_customer", "customer = :c", {":c": {"S": "ann"}})
    assert [i["placed"]["N"] for i in items] == ["95", "96", "97", "98", "99", "100"]
    assert all(i["amount"] for i in items)  # ALL projection: whole items
    ranged = _query(ddb, orders, "by_customer", "customer = :c AND placed BETWEEN :a AND :b",
                    {":c": {"S": "ann"}, ":a": {"N": "96"}, ":b": {"N": "98"}},
                    ScanIndexForward=False)
    assert [i["placed"]["N"] for i in ranged] == ["98", "97", "96"]


def test_gsi_pages_through_duplicate_index_keys(ddb: Any, orders: str) -> None:
    for n in range(25):
        ddb.put_item(TableName=orders, Item=_order(f"o{n}", n, status="open"))
    seen = []
    start = None
    pages = 0
    while True:
        page = ddb.query(TableName=orders, IndexName="by_status", Limit=4,
                         KeyConditionExpression="#s = :s", ExpressionAttributeNames={"#s": "status"},
                         ExpressionAttributeValues={":s": {"S": "open"}},
                         **({"ExclusiveStartKey": start} if start else {}))
        seen += [i["pk"]["S"] for i in page["Items"]]
        pages += 1
        start = page.get("LastEvaluatedKey")
        if start:
            assert set(start) == {"pk", "sk", "status"}  # table key + index key
        else:
            break
    assert sorted(seen) == sorted(f"o{n}" for n in range(25))
    assert pages >= 7


def test_projections_keys_only_and_include(ddb: Any, orders: str) -> None:
    ddb.put_item(TableName=orders, Item=_order("o", 1, status="open", region="eu",
                                               amount=7, note="hello"))
    keys_only = _query(ddb, orders, "by_status", "#s = :s", {":s": {"S": "open"}},
                       ExpressionAttributeNames={"#s": "status"})
    assert keys_only == [{"pk": {"S": "o"}, "sk": {"N": "1"}, "status": {"S": "open"}}]
    included = _query(ddb, orders, "by_region", "#r = :r", {":r": {"S": "eu"}},
                      ExpressionAttributeNames={"#r": "region"})
    assert included == [{"pk": {"S": "o"}, "sk": {"N": "1"}, "region": {"S": "eu"},
                         "amount": {"N": "7"}}]
    expect_error(ddb.query, "ValidationException", "Select type ALL_ATTRIBUTES is not supported",
                 TableName=orders, IndexName="by_status", Select="ALL_ATTRIBUTES",
                 KeyConditionExpression="#s = :s", ExpressionAttributeNames={"#s": "status"},
                 ExpressionAttributeValues={":s": {"S": "open"}})


def test_sparse_index_holds_only_items_with_its_key(ddb: Any, orders: str) -> None:
    ddb.put_item(TableName=orders, Item=_order("a", 1, status="open"))
    ddb.put_item(TableName=orders, Item=_order("b", 1))
    assert [i["pk"]["S"] for i in scan_all(ddb, orders, IndexName="by_status")] == ["a"]
    assert scan_all(ddb, orders, IndexName="by_customer") == []
    check_indexes(ddb, orders)


def test_index_follows_updates_and_deletes(ddb: Any, orders: str) -> None:
    ddb.put_item(TableName=orders, Item=_order("a", 1, status="open", amount=3))
    ddb.update_item(TableName=orders, Key={"pk": {"S": "a"}, "sk": {"N": "1"}},
                    UpdateExpression="SET #s = :s", ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={":s": {"S": "shipped"}})
    assert _query(ddb, orders, "by_status", "#s = :s", {":s": {"S": "open"}},
                  ExpressionAttributeNames={"#s": "status"}) == []
    assert len(_query(ddb, orders, "by_status", "#s = :s", {":s": {"S": "shipped"}},
                      ExpressionAttributeNames={"#s": "status"})) == 1
    ddb.update_item(TableName=orders, Key={"pk": {"S": "a"}, "sk": {"N": "1"}},
                    UpdateExpression="REMOVE #s", ExpressionAttributeNames={"#s": "status"})
    assert scan_all(ddb, orders, IndexName="by_status") == []
    check_indexes(ddb, orders)
    ddb.delete_item(TableName=orders, Key={"pk": {"S": "a"}, "sk": {"N": "1"}})
    assert scan_all(ddb, orders, IndexName="by_amount") == []
    check_indexes(ddb, orders)


def test_batch_write_maintains_indexes(ddb: Any, orders: str) -> None:
    ddb.batch_write_item(RequestItems={orders: [
        {"PutRequest": {"Item": _order(f"b{n}", n, customer="c", placed=n, amount=n)}}
        for n in range(25)]})
    assert len(_query(ddb, orders, "by_customer", "customer = :c", {":c": {"S": "c"}})) == 25
    ddb.batch_write_item(RequestItems={orders: [
        {"DeleteRequest": {"Key": {"pk": {"S": f"b{n}"}, "sk": {"N": str(n)}}}}
        for n in range(10)]})
    check_indexes(ddb, orders)


def test_lsi_query_allows_consistent_reads_and_fetches_from_table(ddb: Any, orders: str) -> None:
    for n, amount in enumerate([30, 10, 20]):
        ddb.put_item(TableName=orders, Item=_order("p", n, amount=amount, note=f"n{n}"))
    items = _query(ddb, orders, "by_amount", "pk = :p", {":p": {"S": "p"}}, ConsistentRead=True)
    assert [i["amount"]["N"] for i in items] == ["10", "20", "30"]
    assert "note" not in items[0]  # KEYS_ONLY
    full = _query(ddb, orders, "by_amount", "pk = :p AND amount > :a",
                  {":p": {"S": "p"}, ":a": {"N": "15"}}, Select="ALL_ATTRIBUTES")
    assert [i["note"]["S"] for i in full] == ["n2", "n0"]  # fetched from the table


def test_consistent_read_on_gsi_is_rejected(ddb: Any, orders: str) -> None:
    expect_error(ddb.query, "ValidationException",
                 "Consistent reads are not supported on global secondary indexes",
                 TableName=orders, IndexName="by_customer", ConsistentRead=True,
                 KeyConditionExpression="customer = :c",
                 ExpressionAttributeValues={":c": {"S": "x"}})
    expect_error(ddb.scan, "ValidationException", "Consistent reads are not supported",
                 TableName=orders, IndexName="by_customer", ConsistentRead=True)


def test_unknown_index_and_wrong_key_condition(ddb: Any, orders: str) -> None:
    expect_error(ddb.query, "ValidationException",
                 "The table does not have the specified index: nope",
                 TableName=orders, IndexName="nope", KeyConditionExpression="pk = :p",
                 ExpressionAttributeValues={":p": {"S": "x"}})
    expect_error(ddb.query, "ValidationException", "", TableName=orders,
                 IndexName="by_customer", KeyConditionExpression="pk = :p",
                 ExpressionAttributeValues={":p": {"S": "x"}})


def test_index_key_of_wrong_type_rejects_the_write(ddb: Any, orders: str) -> None:
    ddb.put_item(TableName=orders, Item=_order("a", 1, customer="ann", placed=1))
    expect_error(ddb.put_item, "ValidationException",
                 "Type mismatch for Index Key customer Expected: S Actual: N IndexName: by_customer",
                 TableName=orders, Item={"pk": {"S": "a"}, "sk": {"N": "1"},
                                         "customer": {"N": "5"}})
    expect_error(ddb.update_item, "ValidationException", "Type mismatch for Index Key placed",
                 TableName=orders, Key={"pk": {"S": "a"}, "sk": {"N": "1"}},
                 UpdateExpression="SET placed = :p", ExpressionAttributeValues={":p": {"S": "x"}})
    expect_error(ddb.put_item, "ValidationException", "cannot contain an empty string value",
                 TableName=orders, Item={"pk": {"S": "a"}, "sk": {"N": "1"},
                                         "status": {"S": ""}})
    expect_error(ddb.batch_write_item, "ValidationException", "Type mismatch for Index Key",
                 RequestItems={orders: [
                     {"PutRequest": {"Item": _order("z", 1)}},
                     {"PutRequest": {"Item": {"pk": {"S": "y"}, "sk": {"N": "1"},
                                              "amount": {"S": "x"}}}}]})
    item = ddb.get_item(TableName=orders, Key={"pk": {"S": "a"}, "sk": {"N": "1"}})["Item"]
    assert item["customer"] == {"S": "ann"} and item["placed"] == {"N": "1"}
    assert "Item" not in ddb.get_item(TableName=orders, Key={"pk": {"S": "z"}, "sk": {"N": "1"}})
    check_indexes(ddb, orders)


def test_describe_table_shows_indexes(ddb: Any, orders: str) -> None:
    ddb.put_item(TableName=orders, Item=_order("a", 1, customer="c", placed=1, status="s"))
    table = ddb.describe_table(TableName=orders)["Table"]
    gsis = {g["IndexName"]: g for g in table["GlobalSecondaryIndexes"]}
    assert set(gsis) == {"by_customer", "by_status", "by_region"}
    by_customer = gsis["by_customer"]
    assert by_customer["IndexStatus"] == "ACTIVE"
    assert by_customer["ItemCount"] == 1 and by_customer["IndexSizeBytes"] > 0
    assert by_customer["IndexArn"] == table["TableArn"] + "/index/by_customer"
    assert by_customer["Projection"] == {"ProjectionType": "ALL"}
    assert gsis["by_region"]["Projection"] == {"ProjectionType": "INCLUDE",
                                               "NonKeyAttributes": ["amount"]}
    assert gsis["by_region"]["ItemCount"] == 0
    (lsi,) = table["LocalSecondaryIndexes"]
    assert lsi["IndexName"] == "by_amount" and lsi["KeySchema"] == _keys("pk", "amount")


BAD_DEFINITIONS = [
    ("duplicate index names", dict(
        AttributeDefinitions=_defs(pk="S", g="S"),
        GlobalSecondaryIndexes=[_gsi("same", "g"), _gsi("same", "g")]),
     "Duplicate index name: same"),
    ("index key not defined", dict(
        AttributeDefinitions=_defs(pk="S"), GlobalSecondaryIndexes=[_gsi("gsi", "g")]),
     "Some index key attributes are not defined in AttributeDefinitions"),
    ("definition not used", dict(
        AttributeDefinitions=_defs(pk="S", g="S", extra="S"),
        GlobalSecondaryIndexes=[_gsi("gsi", "g")]),
     "Some AttributeDefinitions are not used"),
    ("21 GSIs", dict(
        AttributeDefinitions=_defs(pk="S", g="S"),
        GlobalSecondaryIndexes=[_gsi(f"gsi{n}", "g") for n in range(21)]),
     "GlobalSecondaryIndex count exceeds the per-table limit of 20"),
    ("LSI on a table without sort key", dict(
        AttributeDefinitions=_defs(pk="S", l="S"),
        LocalSecondaryIndexes=[{"IndexName": "lsi", "KeySchema": _keys("pk", "l"),
                                "Projection": {"ProjectionType": "ALL"}}]),
     "LocalSecondaryIndex"),
    ("INCLUDE without attributes", dict(
        AttributeDefinitions=_defs(pk="S", g="S"),
        GlobalSecondaryIndexes=[_gsi("gsi", "g", projection="INCLUDE")]),
     "NonKeyAttributes"),
]


@pytest.mark.parametrize("case,spec,fragment", BAD_DEFINITIONS, ids=[c[0] for c in BAD_DEFINITIONS])
def test_invalid_index_definitions_are_rejected(ddb: Any, table_name: str, case: str,
                                                spec: dict[str, Any], fragment: str) -> None:
    expect_error(ddb.create_table, "ValidationException", fragment, TableName=table_name,
                 KeySchema=_keys("pk"), BillingMode="PAY_PER_REQUEST", **spec)
    expect_error(ddb.describe_table, "ResourceNotFoundException", TableName=table_name)


def test_more_than_five_lsis_are_rejected(ddb: Any, table_name: str) -> None:
    lsis = [{"IndexName": f"lsi{n}", "KeySchema": _keys("pk", f"l{n}"),
             "Projection": {"ProjectionType": "ALL"}} for n in range(6)]
    expect_error(ddb.create_table, "ValidationException",
                 "Cannot have more than 5 local secondary indexes per table",
                 TableName=table_name, KeySchema=_keys("pk", "sk"), BillingMode="PAY_PER_REQUEST",
                 AttributeDefinitions=_defs(pk="S", sk="S", **{f"l{n}": "S" for n in range(6)}),
                 LocalSecondaryIndexes=lsis)


def _wait_active(ddb: Any, table: str, index: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < BACKFILL_TIMEOUT_S:
        gsis = ddb.describe_table(TableName=table)["Table"].get("GlobalSecondaryIndexes", [])
        status = next(g["IndexStatus"] for g in gsis if g["IndexName"] == index)
        if status == "ACTIVE":
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"{index} did not become ACTIVE in {BACKFILL_TIMEOUT_S}s")


ITEMS_FOR_BACKFILL = 30_000  # the backfill (118 chunks) must outlast two requests
GROUPS = 37


@pytest.mark.slow
def test_gsi_added_to_a_loaded_table_backfills_and_answers(ddb: Any, table_name: str) -> None:
    ddb.create_table(TableName=table_name, KeySchema=_keys("pk"), BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=_defs(pk="S"))
    for start in range(0, ITEMS_FOR_BACKFILL, 25):
        ddb.batch_write_item(RequestItems={table_name: [
            {"PutRequest": {"Item": {"pk": {"S": f"item{n}"}, "group": {"S": f"g{n % GROUPS}"},
                                     "n": {"N": str(n)}}}}
            for n in range(start, start + 25)]})
    # made before the backfill starts: building a client takes long enough (tens of ms,
    # more on a loaded machine) for the backfill to finish first
    no_retries = _no_retries(ddb)
    response = ddb.update_table(
        TableName=table_name, AttributeDefinitions=_defs(group="S", n="N"),
        GlobalSecondaryIndexUpdates=[{"Create": _gsi("by_group", "group", "n")}])
    created = {g["IndexName"]: g for g in response["TableDescription"]["GlobalSecondaryIndexes"]}
    assert created["by_group"]["IndexStatus"] == "CREATING"
    # one online index change at a time, as DynamoDB allows (no retry: botocore retries
    # LimitExceededException, and a retry may come after the backfill)
    expect_error(no_retries.update_table, "LimitExceededException",
                 "Only 1 online index can be created or deleted simultaneously per table",
                 TableName=table_name, AttributeDefinitions=_defs(n="N"),
                 GlobalSecondaryIndexUpdates=[{"Create": _gsi("by_n", "n")}])
    expect_error(ddb.query, "ValidationException", "backfilling", TableName=table_name,
                 IndexName="by_group", KeyConditionExpression="#g = :g",
                 ExpressionAttributeNames={"#g": "group"},
                 ExpressionAttributeValues={":g": {"S": "g1"}})
    # the node keeps serving writes during the backfill; they land in the index too
    ddb.put_item(TableName=table_name, Item={"pk": {"S": "late"}, "group": {"S": "g0"},
                                             "n": {"N": "-1"}})
    _wait_active(ddb, table_name, "by_group")
    total = 0
    for group in range(GROUPS):
        items = _query(ddb, table_name, "by_group", "#g = :g", {":g": {"S": f"g{group}"}},
                       ExpressionAttributeNames={"#g": "group"})
        numbers = [int(i["n"]["N"]) for i in items]
        expected = sorted(n for n in range(ITEMS_FOR_BACKFILL) if n % GROUPS == group)
        if group == 0:
            expected = [-1] + expected
        assert numbers == expected
        total += len(items)
    assert total == ITEMS_FOR_BACKFILL + 1
    described = ddb.describe_table(TableName=table_name)["Table"]["GlobalSecondaryIndexes"][0]
    assert described["ItemCount"] == ITEMS_FOR_BACKFILL + 1


def test_update_table_creates_and_deletes_a_gsi(ddb: Any, table_name: str) -> None:
    ddb.create_table(TableName=table_name, KeySchema=_keys("pk"), BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=_defs(pk="S"))
    for n in range(50):
        ddb.put_item(TableName=table_name, Item={"pk": {"S": f"k{n}"}, "g": {"N": str(n % 5)},
                                                 **({"bad": {"N": "1"}} if n == 3 else {})})
    ddb.update_table(TableName=table_name, AttributeDefinitions=_defs(g="N"),
                     GlobalSecondaryIndexUpdates=[{"Create": _gsi("by_g", "g", projection="KEYS_ONLY")}])
    _wait_active(ddb, table_name, "by_g")
    check_indexes(ddb, table_name)
    expect_error(ddb.update_table, "ValidationException", "already exists", TableName=table_name,
                 AttributeDefinitions=_defs(g="N"),
                 GlobalSecondaryIndexUpdates=[{"Create": _gsi("by_g", "g")}])
    expect_error(ddb.update_table, "ResourceNotFoundException", "", TableName=table_name,
                 GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": "missing"}}])
    ddb.update_table(TableName=table_name,
                     GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": "by_g"}}])
    table = ddb.describe_table(TableName=table_name)["Table"]
    assert "GlobalSecondaryIndexes" not in table
    assert table["AttributeDefinitions"] == _defs(pk="S")
    expect_error(ddb.query, "ValidationException", "does not have the specified index",
                 TableName=table_name, IndexName="by_g", KeyConditionExpression="g = :g",
                 ExpressionAttributeValues={":g": {"N": "1"}})


def test_backfill_skips_items_whose_index_key_has_another_type(ddb: Any, table_name: str) -> None:
    ddb.create_table(TableName=table_name, KeySchema=_keys("pk"), BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=_defs(pk="S"))
    ddb.put_item(TableName=table_name, Item={"pk": {"S": "a"}, "g": {"S": "text"}})
    ddb.put_item(TableName=table_name, Item={"pk": {"S": "b"}, "g": {"N": "1"}})
    ddb.update_table(TableName=table_name, AttributeDefinitions=_defs(g="N"),
                     GlobalSecondaryIndexUpdates=[{"Create": _gsi("by_g", "g")}])
    _wait_active(ddb, table_name, "by_g")
    assert [i["pk"]["S"] for i in scan_all(ddb, table_name, IndexName="by_g")] == ["b"]


RANDOM_OPS = 400


def test_random_writes_keep_every_index_equal_to_its_recomputation(ddb: Any, orders: str) -> None:
    """A seeded mix of puts, updates that move or drop index keys, deletes, batches and
    transactions (some rejected for a bad index key): afterwards every index equals a
    full recomputation from the table."""
    import random

    from botocore.exceptions import ClientError

    rng = random.Random(4)

    def key() -> dict[str, Any]:
        return {"pk": {"S": f"k{rng.randint(0, 30)}"}, "sk": {"N": str(rng.randint(0, 3))}}

    def attrs() -> dict[str, Any]:
        chosen: dict[str, Any] = {}
        if rng.random() < 0.7:
            chosen["customer"] = {"S": rng.choice(["ann", "bob", "cy"])}
        if rng.random() < 0.7:
            chosen["placed"] = {"N": str(rng.randint(0, 50))}
        if rng.random() < 0.5:
            chosen["status"] = {"S": rng.choice(["open", "shipped"])}
        if rng.random() < 0.5:
            chosen["region"] = {"S": rng.choice(["eu", "us"])}
        if rng.random() < 0.6:
            chosen["amount"] = {"N": str(rng.randint(0, 9))}
        if rng.random() < 0.05:  # a bad index key: the write must be rejected whole
            chosen["placed"] = {"S": "not a number"}
        return chosen

    rejected = 0
    for _ in range(RANDOM_OPS):
        roll = rng.random()
        try:
            if roll < 0.35:
                ddb.put_item(TableName=orders, Item={**key(), **attrs()})
            elif roll < 0.6:
                changes = attrs()
                removed = rng.sample(["customer", "placed", "status", "region", "amount"], 1)
                removed = [r for r in removed if r not in changes]
                names = {f"#a{i}": n for i, n in enumerate(list(changes) + removed)}
                by_name = {n: a for a, n in names.items()}
                sets = [f"{by_name[n]} = :v{i}" for i, n in enumerate(changes)]
                expression = ("SET " + ", ".join(sets) if sets else "") + (
                    " REMOVE " + ", ".join(by_name[n] for n in removed) if removed else "")
                values = {f":v{i}": v for i, v in enumerate(changes.values())}
                ddb.update_item(TableName=orders, Key=key(), UpdateExpression=expression.strip(),
                                ExpressionAttributeNames=names,
                                **({"ExpressionAttributeValues": values} if values else {}))
            elif roll < 0.75:
                ddb.delete_item(TableName=orders, Key=key())
            elif roll < 0.9:
                keys = {json_key(k): k for k in (key() for _ in range(5))}
                ddb.batch_write_item(RequestItems={orders: [
                    {"PutRequest": {"Item": {**k, **attrs()}}} if rng.random() < 0.7 else
                    {"DeleteRequest": {"Key": k}} for k in keys.values()]})
            else:
                keys = {json_key(k): k for k in (key() for _ in range(4))}
                ddb.transact_write_items(TransactItems=[
                    {"Put": {"TableName": orders, "Item": {**k, **attrs()}}} if rng.random() < 0.7
                    else {"Delete": {"TableName": orders, "Key": k}} for k in keys.values()])
        except ClientError as exc:
            assert exc.response["Error"]["Code"] in ("ValidationException",
                                                     "TransactionCanceledException"), exc
            rejected += 1
    assert rejected > 0, "the workload never tried a bad index key"
    assert check_indexes(ddb, orders) > 0


def json_key(key: dict[str, Any]) -> str:
    return f"{key['pk']['S']}/{key['sk']['N']}"


@pytest.mark.parametrize("forward", [True, False])
def test_paging_an_index_both_ways_and_scanning_it_in_segments(ddb: Any, orders: str,
                                                              forward: bool) -> None:
    for n in range(30):
        ddb.put_item(TableName=orders, Item=_order(f"o{n % 7}", n, customer="ann",
                                                   placed=n % 4, status="open"))
    items = _query(ddb, orders, "by_customer", "customer = :c", {":c": {"S": "ann"}},
                   Limit=3, ScanIndexForward=forward)
    placed = [int(i["placed"]["N"]) for i in items]
    assert placed == sorted(placed, reverse=not forward)
    assert sorted(int(i["sk"]["N"]) for i in items) == list(range(30))
    segments = []
    for segment in range(3):
        segments += scan_all(ddb, orders, IndexName="by_status", Segment=segment,
                             TotalSegments=3, Limit=4)
    assert sorted(int(i["sk"]["N"]) for i in segments) == list(range(30))


def test_writes_during_a_backfill_land_in_the_index(server: Any, ddb: Any, table_name: str) -> None:
    """Threads put, move and delete items while a new GSI is backfilled: once ACTIVE, the
    index equals its recomputation (writes queued behind the UpdateTable maintain it, and
    every chunk reads the current items)."""
    import random
    import threading

    from tests.support import client

    ddb.create_table(TableName=table_name, KeySchema=_keys("pk"), BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=_defs(pk="S"))
    for start in range(0, 3000, 25):
        ddb.batch_write_item(RequestItems={table_name: [
            {"PutRequest": {"Item": {"pk": {"S": f"k{n}"}, "g": {"N": str(n % 13)}}}}
            for n in range(start, start + 25)]})
    stop = threading.Event()
    errors: list[str] = []

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        own = client(server.url)
        while not stop.is_set():
            pk = {"S": f"k{rng.randint(0, 3500)}"}
            try:
                if rng.random() < 0.3:
                    own.delete_item(TableName=table_name, Key={"pk": pk})
                elif rng.random() < 0.5:
                    own.put_item(TableName=table_name, Item={"pk": pk, "g": {"N": str(rng.randint(0, 20))}})
                else:
                    own.update_item(TableName=table_name, Key={"pk": pk}, UpdateExpression="REMOVE g")
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(repr(exc))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    ddb.update_table(TableName=table_name, AttributeDefinitions=_defs(g="N"),
                     GlobalSecondaryIndexUpdates=[{"Create": _gsi("by_g", "g")}])
    _wait_active(ddb, table_name, "by_g")
    time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert check_indexes(ddb, table_name) > 0


def test_gsis_on_a_provisioned_table_need_and_keep_their_throughput(ddb: Any,
                                                                    table_name: str) -> None:
    throughput = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 3}
    expect_error(ddb.create_table, "ValidationException", "ProvisionedThroughput must be specified",
                 TableName=table_name, KeySchema=_keys("pk"), ProvisionedThroughput=throughput,
                 AttributeDefinitions=_defs(pk="S", g="S"), GlobalSecondaryIndexes=[_gsi("gsi", "g")])
    ddb.create_table(TableName=table_name, KeySchema=_keys("pk"), ProvisionedThroughput=throughput,
                     AttributeDefinitions=_defs(pk="S", g="S"),
                     GlobalSecondaryIndexes=[{**_gsi("gsi", "g"),
                                              "ProvisionedThroughput": throughput}])
    ddb.update_table(TableName=table_name, GlobalSecondaryIndexUpdates=[{"Update": {
        "IndexName": "gsi",
        "ProvisionedThroughput": {"ReadCapacityUnits": 7, "WriteCapacityUnits": 8}}}])
    (gsi,) = ddb.describe_table(TableName=table_name)["Table"]["GlobalSecondaryIndexes"]
    assert gsi["ProvisionedThroughput"]["ReadCapacityUnits"] == 7
    assert gsi["ProvisionedThroughput"]["WriteCapacityUnits"] == 8


def test_a_deleted_and_recreated_gsi_starts_empty(ddb: Any, table_name: str) -> None:
    ddb.create_table(TableName=table_name, KeySchema=_keys("pk"), BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=_defs(pk="S", g="S"),
                     GlobalSecondaryIndexes=[_gsi("gsi", "g")])
    ddb.put_item(TableName=table_name, Item={"pk": {"S": "a"}, "g": {"S": "x"}})
    ddb.update_table(TableName=table_name,
                     GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": "gsi"}}])
    ddb.put_item(TableName=table_name, Item={"pk": {"S": "b"}, "g": {"S": "y"}})
    ddb.update_table(TableName=table_name, AttributeDefinitions=_defs(g="S"),
                     GlobalSecondaryIndexUpdates=[{"Create": _gsi("gsi", "g", projection="KEYS_ONLY")}])
    _wait_active(ddb, table_name, "gsi")
    assert check_indexes(ddb, table_name) == 2
