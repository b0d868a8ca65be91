"""TransactWriteItems and TransactGetItems through boto3: all-or-nothing, cancellation
reasons in order, idempotency tokens, DynamoDB's limits, and atomicity under concurrency."""

from __future__ import annotations

import random
import threading
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.indexcheck import check_indexes, scan_all
from tests.integration.wire import expect_error
from tests.support import NodeDatabase, client, create_table


def _key(pk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}}


def _put(table: str, pk: str, **attrs: Any) -> dict[str, Any]:
    item = {"pk": {"S": pk}, **{k: {"N": str(v)} for k, v in attrs.items()}}
    return {"Put": {"TableName": table, "Item": item}}


def _check(table: str, pk: str, condition: str = "attribute_exists(pk)") -> dict[str, Any]:
    return {"ConditionCheck": {"TableName": table, "Key": _key(pk),
                               "ConditionExpression": condition}}


def _canceled(call: Any, **params: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as caught:
        call(**params)
    response = caught.value.response
    assert response["Error"]["Code"] == "TransactionCanceledException", response
    return response


def test_all_action_kinds_commit_together(ddb: Any, hash_table: str) -> None:
    ddb.put_item(TableName=hash_table, Item={"pk": {"S": "old"}, "n": {"N": "1"}})
    ddb.put_item(TableName=hash_table, Item={"pk": {"S": "gone"}})
    ddb.put_item(TableName=hash_table, Item={"pk": {"S": "checked"}})
    ddb.transact_write_items(TransactItems=[
        _put(hash_table, "new", n=5),
        {"Update": {"TableName": hash_table, "Key": _key("old"),
                    "UpdateExpression": "ADD n :one", "ConditionExpression": "n = :n",
                    "ExpressionAttributeValues": {":one": {"N": "1"}, ":n": {"N": "1"}}}},
        {"Delete": {"TableName": hash_table, "Key": _key("gone")}},
        _check(hash_table, "checked"),
    ])
    items = {i["pk"]["S"]: i for i in scan_all(ddb, hash_table)}
    assert set(items) == {"new", "old", "checked"}
    assert items["old"]["n"] == {"N": "2"} and items["new"]["n"] == {"N": "5"}


def test_failing_37th_condition_changes_nothing_and_reports_100_reasons(
        ddb: Any, hash_table: str) -> None:
    ddb.put_item(TableName=hash_table, Item={"pk": {"S": "exists"}})
    actions = [_put(hash_table, f"p{n}", n=n) for n in range(99)]
    actions.insert(36, _check(hash_table, "missing"))
    response = _canceled(ddb.transact_write_items, TransactItems=actions)
    reasons = response["CancellationReasons"]
    assert len(reasons) == 100
    assert reasons[36]["Code"] == "ConditionalCheckFailed"
    assert all(r["Code"] == "None" for i, r in enumerate(reasons) if i != 36)
    assert "[None, " in response["Error"]["Message"]
    assert [i["pk"]["S"] for i in scan_all(ddb, hash_table)] == ["exists"]


def test_return_values_on_condition_check_failure(ddb: Any, hash_table: str) -> None:
    ddb.put_item(TableName=hash_table, Item={"pk": {"S": "a"}, "n": {"N": "1"}})
    response = _canceled(ddb.transact_write_items, TransactItems=[
        {"Update": {"TableName": hash_table, "Key": _key("a"), "UpdateExpression": "SET n = :two",
                    "ConditionExpression": "n = :two", "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    "ExpressionAttributeValues": {":two": {"N": "2"}}}},
        _put(hash_table, "b")])
    first, second = response["CancellationReasons"]
    assert first["Code"] == "ConditionalCheckFailed"
    assert first["Item"] == {"pk": {"S": "a"}, "n": {"N": "1"}}
    assert second == {"Code": "None"}


def test_update_that_breaks_a_limit_is_a_validation_reason(ddb: Any, hash_table: str) -> None:
    ddb.put_item(TableName=hash_table, Item={"pk": {"S": "big"}, "s": {"S": "x" * 300_000}})
    response = _canceled(ddb.transact_write_items, TransactItems=[
        _put(hash_table, "other"),
        {"Update": {"TableName": hash_table, "Key": _key("big"), "UpdateExpression": "SET t = :t",
                    "ExpressionAttributeValues": {":t": {"S": "y" * 200_000}}}}])
    assert [r["Code"] for r in response["CancellationReasons"]] == ["None", "ValidationError"]
    assert "Item size" in response["CancellationReasons"][1]["Message"]
    assert "Item" not in ddb.get_item(TableName=hash_table, Key=_key("other"))


def test_two_actions_on_one_item_are_rejected(ddb: Any, hash_table: str) -> None:
    expect_error(ddb.transact_write_items, "ValidationException",
                 "Transaction request cannot include multiple operations on one item",
                 TransactItems=[_put(hash_table, "a"), _check(hash_table, "a")])
    assert scan_all(ddb, hash_table) == []


def test_more_than_100_actions_are_rejected(raw_ddb: Any, hash_table: str) -> None:
    expect_error(raw_ddb.transact_write_items, "ValidationException",
                 "Member must have length less than or equal to 100",
                 TransactItems=[_put(hash_table, f"p{n}") for n in range(101)])


def test_more_than_4_mb_is_rejected(ddb: Any, hash_table: str) -> None:
    big = "x" * 390_000
    actions = [{"Put": {"TableName": hash_table,
                        "Item": {"pk": {"S": f"p{n}"}, "s": {"S": big}}}} for n in range(11)]
    expect_error(ddb.transact_write_items, "ValidationException", "4 MB", TransactItems=actions)
    assert scan_all(ddb, hash_table, ProjectionExpression="pk") == []


def test_updates_growing_past_4_mb_are_rejected(ddb: Any, hash_table: str) -> None:
    big = "y" * 390_000
    actions = [{"Update": {"TableName": hash_table, "Key": _key(f"u{n}"),
                           "UpdateExpression": "SET s = :s",
                           "ExpressionAttributeValues": {":s": {"S": big}}}} for n in range(11)]
    expect_error(ddb.transact_write_items, "ValidationException", "4 MB", TransactItems=actions)
    assert scan_all(ddb, hash_table, ProjectionExpression="pk") == []


def test_bad_input_is_a_validation_exception(ddb: Any, hash_table: str) -> None:
    expect_error(ddb.transact_write_items, "ResourceNotFoundException", "",
                 TransactItems=[_put("no_such_table", "a")])
    expect_error(ddb.transact_write_items, "ValidationException", "",
                 TransactItems=[{"Put": {"TableName": hash_table, "Item": {"x": {"S": "a"}}}}])
    expect_error(ddb.transact_write_items, "ValidationException", "",
                 TransactItems=[{"Update": {"TableName": hash_table, "Key": _key("a"),
                                            "UpdateExpression": "SET pk = :v",
                                            "ExpressionAttributeValues": {":v": {"S": "b"}}}}])


def test_client_request_token_makes_retries_idempotent(ddb: Any, hash_table: str) -> None:
    token = str(uuid.uuid4())
    increment = [{"Update": {"TableName": hash_table, "Key": _key("counter"),
                             "UpdateExpression": "ADD n :one",
                             "ExpressionAttributeValues": {":one": {"N": "1"}}}}]
    for _ in range(3):
        ddb.transact_write_items(TransactItems=increment, ClientRequestToken=token)
    item = ddb.get_item(TableName=hash_table, Key=_key("counter"))["Item"]
    assert item["n"] == {"N": "1"}
    expect_error(ddb.transact_write_items, "IdempotentParameterMismatchException", "",
                 TransactItems=[_put(hash_table, "other")], ClientRequestToken=token)
    ddb.transact_write_items(TransactItems=increment, ClientRequestToken=str(uuid.uuid4()))
    assert ddb.get_item(TableName=hash_table, Key=_key("counter"))["Item"]["n"] == {"N": "2"}


def test_transactions_maintain_indexes(ddb: Any, table_name: str) -> None:
    ddb.create_table(
        TableName=table_name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "g", "AttributeType": "N"}],
        GlobalSecondaryIndexes=[{"IndexName": "by_g",
                                 "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "ALL"}}])
    ddb.transact_write_items(TransactItems=[_put(table_name, f"p{n}", g=n % 3) for n in range(9)])
    ddb.transact_write_items(TransactItems=[
        {"Delete": {"TableName": table_name, "Key": _key("p0")}},
        {"Update": {"TableName": table_name, "Key": _key("p1"), "UpdateExpression": "SET g = :g",
                    "ExpressionAttributeValues": {":g": {"N": "7"}}}}])
    check_indexes(ddb, table_name)
    response = _canceled(ddb.transact_write_items, TransactItems=[
        _put(table_name, "q"), {"Put": {"TableName": table_name,
                                         "Item": {"pk": {"S": "r"}, "g": {"S": "text"}}}}])
    assert [r["Code"] for r in response["CancellationReasons"]] == ["None", "ValidationError"]
    check_indexes(ddb, table_name)


def test_transact_get_items(ddb: Any, hash_table: str) -> None:
    range_table = create_table(ddb, hash_table + "_r", range_key=("sk", "N"))
    ddb.put_item(TableName=hash_table, Item={"pk": {"S": "a"}, "x": {"S": "1"}, "y": {"S": "2"}})
    ddb.put_item(TableName=range_table, Item={"pk": {"S": "b"}, "sk": {"N": "1"}})
    response = ddb.transact_get_items(TransactItems=[
        {"Get": {"TableName": hash_table, "Key": _key("a"), "ProjectionExpression": "x"}},
        {"Get": {"TableName": hash_table, "Key": _key("missing")}},
        {"Get": {"TableName": range_table, "Key": {"pk": {"S": "b"}, "sk": {"N": "1"}}}}])
    assert response["Responses"] == [{"Item": {"x": {"S": "1"}}}, {},
                                     {"Item": {"pk": {"S": "b"}, "sk": {"N": "1"}}}]
    expect_error(ddb.transact_get_items, "ValidationException", "multiple operations on one item",
                 TransactItems=[{"Get": {"TableName": hash_table, "Key": _key("a")}}] * 2)


THREADS = 6
TRANSACTIONS_PER_THREAD = 40


def test_concurrent_transactions_never_leave_a_partial_result(server: Any, ddb: Any) -> None:
    """Writers move value between accounts and bump a shared version on every account;
    readers check, from one TransactGetItems snapshot, that the total never changes and
    every account carries the same version."""
    table = create_table(ddb, f"bank_{uuid.uuid4().hex[:8]}")
    accounts = [f"acct{n}" for n in range(4)]
    ddb.transact_write_items(TransactItems=[_put(table, a, balance=100, version=0)
                                            for a in accounts])
    failures: list[str] = []
    committed = [0]
    lock = threading.Lock()
    stop = threading.Event()

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        own = client(server.url)
        for _ in range(TRANSACTIONS_PER_THREAD):
            source, target = rng.sample(accounts, 2)
            amount = rng.randint(1, 30)
            actions = [{"Update": {
                "TableName": table, "Key": _key(a),
                "UpdateExpression": "ADD version :one, balance :delta",
                "ExpressionAttributeValues": {
                    ":one": {"N": "1"},
                    ":delta": {"N": str(-amount if a == source else amount if a == target else 0)},
                    **({":amount": {"N": str(amount)}} if a == source else {})},
                **({"ConditionExpression": "balance >= :amount"} if a == source else {})}}
                for a in accounts]
            try:
                own.transact_write_items(TransactItems=actions)
                with lock:
                    committed[0] += 1
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "TransactionCanceledException":
                    failures.append(repr(exc.response["Error"]))

    def reader() -> None:
        own = client(server.url)
        while not stop.is_set():
            got = own.transact_get_items(TransactItems=[
                {"Get": {"TableName": table, "Key": _key(a)}} for a in accounts])
            items = [r["Item"] for r in got["Responses"]]
            total = sum(int(i["balance"]["N"]) for i in items)
            versions = {i["version"]["N"] for i in items}
            if total != 400 or len(versions) != 1:
                failures.append(f"partial state seen: total={total} versions={versions}")

    readers = [threading.Thread(target=reader) for _ in range(2)]
    writers = [threading.Thread(target=writer, args=(n,)) for n in range(THREADS)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join(timeout=120)
    stop.set()
    for t in readers:
        t.join(timeout=30)
    assert failures == []
    final = [ddb.get_item(TableName=table, Key=_key(a), ConsistentRead=True)["Item"]
             for a in accounts]
    assert sum(int(i["balance"]["N"]) for i in final) == 400
    assert {i["version"]["N"] for i in final} == {str(committed[0])}
    assert all(int(i["balance"]["N"]) >= 0 for i in final)


def test_a_transaction_is_one_changelog_record(server: Any, ddb: Any, hash_table: str) -> None:
    """One storage transaction and ONE changelog record for the whole transaction, across
    tables, so replication applies it atomically."""
    other = create_table(ddb, hash_table + "_other")

    def records() -> int:
        with NodeDatabase(server) as database:
            return int(database.one("SELECT COUNT(*) FROM changelog")[0])

    before = records()
    ddb.transact_write_items(TransactItems=[
        _put(hash_table, "a"), _put(hash_table, "b"), _put(other, "c"),
        {"Delete": {"TableName": other, "Key": _key("absent")}}])
    assert records() == before + 1
