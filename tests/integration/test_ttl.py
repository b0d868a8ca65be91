"""Time to live through boto3: UpdateTimeToLive/DescribeTimeToLive, and the sweeper
deleting expired items (with their index rows) within a bounded time, on a server started
with a 0.5 s sweep interval."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.indexcheck import check_indexes, scan_all
from tests.integration.wire import expect_error
from tests.support import ServerProcess, client, create_table

SWEEP_INTERVAL_S = 0.5
EXPIRY_BOUND_S = 10.0  # an expired item must be gone within this


@pytest.fixture(scope="module")
def ttl_ddb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    process = ServerProcess(data_dir=tmp_path_factory.mktemp("ttl"),
                            extra=["--ttl-interval", str(SWEEP_INTERVAL_S)]).start()
    yield client(process.url)
    process.stop()


def test_describe_and_update_time_to_live(ddb: Any, hash_table: str) -> None:
    assert ddb.describe_time_to_live(TableName=hash_table)["TimeToLiveDescription"] == {
        "TimeToLiveStatus": "DISABLED"}
    response = ddb.update_time_to_live(
        TableName=hash_table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "exp"})
    assert response["TimeToLiveSpecification"] == {"Enabled": True, "AttributeName": "exp"}
    assert ddb.describe_time_to_live(TableName=hash_table)["TimeToLiveDescription"] == {
        "TimeToLiveStatus": "ENABLED", "AttributeName": "exp"}
    expect_error(ddb.update_time_to_live, "ValidationException", "TimeToLive is already enabled",
                 TableName=hash_table,
                 TimeToLiveSpecification={"Enabled": True, "AttributeName": "other"})
    ddb.update_time_to_live(TableName=hash_table,
                            TimeToLiveSpecification={"Enabled": False, "AttributeName": "exp"})
    expect_error(ddb.update_time_to_live, "ValidationException", "already disabled",
                 TableName=hash_table,
                 TimeToLiveSpecification={"Enabled": False, "AttributeName": "exp"})
    expect_error(ddb.describe_time_to_live, "ResourceNotFoundException", "",
                 TableName="no_such_table")


def _wait_until(predicate: Any, bound_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < bound_s:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"not reached within {bound_s}s")


def test_sweeper_removes_expired_items_within_bound(ttl_ddb: Any) -> None:
    table = "ttl_sweep"
    ttl_ddb.create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "g", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[{"IndexName": "by_g",
                                 "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "ALL"}}])
    ttl_ddb.update_time_to_live(TableName=table,
                                TimeToLiveSpecification={"Enabled": True, "AttributeName": "exp"})
    now = int(time.time())
    cases = {
        "expired": {"N": str(now - 60)},
        "future": {"N": str(now + 3600)},
        "not_a_number": {"S": str(now - 60)},
        "ancient": {"N": str(now - 6 * 365 * 24 * 3600)},  # over 5 years: ignored
    }
    for name, value in cases.items():
        ttl_ddb.put_item(TableName=table, Item={"pk": {"S": name}, "g": {"S": "x"}, "exp": value})
    ttl_ddb.put_item(TableName=table, Item={"pk": {"S": "no_ttl"}, "g": {"S": "x"}})
    for n in range(300):
        ttl_ddb.put_item(TableName=table, Item={"pk": {"S": f"bulk{n}"}, "g": {"S": "x"},
                                                "exp": {"N": str(now - n)}})

    def swept() -> bool:
        return {i["pk"]["S"] for i in scan_all(ttl_ddb, table)} == {
            "future", "not_a_number", "ancient", "no_ttl"}

    _wait_until(swept, EXPIRY_BOUND_S)
    check_indexes(ttl_ddb, table)


def test_expired_but_unswept_items_are_still_returned(ddb: Any, hash_table: str) -> None:
    """The shared server sweeps only every 30 s: an item that just expired is still there."""
    ddb.update_time_to_live(TableName=hash_table,
                            TimeToLiveSpecification={"Enabled": True, "AttributeName": "exp"})
    ddb.put_item(TableName=hash_table, Item={"pk": {"S": "a"}, "exp": {"N": str(int(time.time()) - 5)}})
    assert "Item" in ddb.get_item(TableName=hash_table, Key={"pk": {"S": "a"}})


def test_updated_ttl_is_respected(ttl_ddb: Any) -> None:
    table = create_table(ttl_ddb, "ttl_update")
    ttl_ddb.update_time_to_live(TableName=table,
                                TimeToLiveSpecification={"Enabled": True, "AttributeName": "exp"})
    soon = int(time.time()) + 2
    ttl_ddb.put_item(TableName=table, Item={"pk": {"S": "kept"}, "exp": {"N": str(soon)}})
    ttl_ddb.put_item(TableName=table, Item={"pk": {"S": "gone"}, "exp": {"N": str(soon)}})
    ttl_ddb.update_item(TableName=table, Key={"pk": {"S": "kept"}}, UpdateExpression="REMOVE exp")
    _wait_until(lambda: "Item" not in ttl_ddb.get_item(TableName=table, Key={"pk": {"S": "gone"}}),
                EXPIRY_BOUND_S)
    assert "Item" in ttl_ddb.get_item(TableName=table, Key={"pk": {"S": "kept"}})
