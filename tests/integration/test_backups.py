"""On-demand backups through boto3 against a live node (DynamoDB's CreateBackup,
DescribeBackup, ListBackups, DeleteBackup and RestoreTableFromBackup)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support import ServerProcess, client, create_table, error_code, scan_all, wait_until

pytestmark = pytest.mark.beside_others  # one node at a time, nothing timed (conftest.py)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(data_dir=tmp_path_factory.mktemp("backups"),
                       extra=["--region", "us-east", "--account-id", "111122223333"]) as server:
        yield server


@pytest.fixture()
def ddb(node: ServerProcess) -> Any:
    return client(node.url)


def _available(ddb: Any, arn: str) -> dict[str, Any]:
    assert wait_until(lambda: ddb.describe_backup(BackupArn=arn)["BackupDescription"][
        "BackupDetails"]["BackupStatus"] == "AVAILABLE", 30, 0.1)
    return dict(ddb.describe_backup(BackupArn=arn)["BackupDescription"])


def _restored(ddb: Any, name: str) -> dict[str, Any]:
    ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.2,
                                                                       "MaxAttempts": 300})
    return dict(ddb.describe_table(TableName=name)["Table"])


def _indexed_table(ddb: Any, name: str) -> None:
    ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": t}
                              for a, t in (("pk", "S"), ("sk", "N"), ("g", "S"), ("l", "N"))],
        GlobalSecondaryIndexes=[{"IndexName": "byG", "Projection": {"ProjectionType": "ALL"},
                                 "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}]}],
        LocalSecondaryIndexes=[{"IndexName": "byL", "Projection": {"ProjectionType": "KEYS_ONLY"},
                                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                              {"AttributeName": "l", "KeyType": "RANGE"}]}],
        TableClass="STANDARD_INFREQUENT_ACCESS", Tags=[{"Key": "team", "Value": "red"}])


def _item(n: int) -> dict[str, Any]:
    return {"pk": {"S": f"p{n % 7}"}, "sk": {"N": str(n)}, "g": {"S": f"g{n % 3}"},
            "l": {"N": str(-n)}, "blob": {"B": bytes([n % 256]) * 3}, "set": {"SS": ["a", f"{n}"]},
            "nested": {"M": {"list": {"L": [{"N": "1.5"}, {"BOOL": n % 2 == 0}, {"NULL": True}]}}}}


def _all(ddb: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table}
    while True:
        page = ddb.scan(**kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return sorted(items, key=lambda i: (i["pk"]["S"], int(i["sk"]["N"])))
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_a_dropped_table_comes_back_from_its_backup(ddb: Any) -> None:
    _indexed_table(ddb, "orders")
    for n in range(120):
        ddb.put_item(TableName="orders", Item=_item(n))
    ddb.delete_item(TableName="orders", Key={"pk": {"S": "p1"}, "sk": {"N": "1"}})
    before = _all(ddb, "orders")
    details = ddb.create_backup(TableName="orders", BackupName="nightly")["BackupDetails"]
    assert details["BackupStatus"] in ("CREATING", "AVAILABLE")
    assert details["BackupType"] == "USER" and details["BackupName"] == "nightly"
    assert details["BackupArn"].startswith(
        "arn:aws:dynamodb:us-east:111122223333:table/orders/backup/")
    # writes after the backup's request are not in it
    ddb.put_item(TableName="orders", Item=_item(1000))
    ddb.delete_item(TableName="orders", Key={"pk": {"S": "p0"}, "sk": {"N": "0"}})
    described = _available(ddb, details["BackupArn"])
    source = described["SourceTableDetails"]
    assert source["TableName"] == "orders" and source["ItemCount"] == len(before)
    assert source["KeySchema"][1] == {"AttributeName": "sk", "KeyType": "RANGE"}
    assert source["BillingMode"] == "PAY_PER_REQUEST"
    features = described["SourceTableFeatureDetails"]
    assert [i["IndexName"] for i in features["GlobalSecondaryIndexes"]] == ["byG"]
    assert [i["IndexName"] for i in features["LocalSecondaryIndexes"]] == ["byL"]
    assert described["BackupDetails"]["BackupSizeBytes"] > 0

    ddb.delete_table(TableName="orders")
    assert "orders" not in ddb.list_tables()["TableNames"]
    answer = ddb.restore_table_from_backup(TargetTableName="orders",
                                           BackupArn=details["BackupArn"])["TableDescription"]
    assert answer["TableStatus"] == "CREATING"
    assert answer["RestoreSummary"]["SourceBackupArn"] == details["BackupArn"]
    assert answer["RestoreSummary"]["RestoreInProgress"] is True
    table = _restored(ddb, "orders")
    assert table["RestoreSummary"]["RestoreInProgress"] is False
    assert table["RestoreSummary"]["SourceTableArn"] == source["TableArn"]
    assert table["TableId"] != source["TableId"]
    assert table["ItemCount"] == len(before)
    assert table["TableClassSummary"]["TableClass"] == "STANDARD_INFREQUENT_ACCESS"
    assert ddb.list_tags_of_resource(ResourceArn=table["TableArn"])["Tags"] == []  # not restored
    assert _all(ddb, "orders") == before
    by_g = ddb.query(TableName="orders", IndexName="byG", KeyConditionExpression="g = :g",
                     ExpressionAttributeValues={":g": {"S": "g2"}})["Items"]
    assert len(by_g) == sum(1 for i in before if i["g"]["S"] == "g2")
    by_l = ddb.query(TableName="orders", IndexName="byL", KeyConditionExpression="pk = :p",
                     ExpressionAttributeValues={":p": {"S": "p3"}})["Items"]
    assert len(by_l) == sum(1 for i in before if i["pk"]["S"] == "p3")
    # the restored table is an ordinary table
    ddb.put_item(TableName="orders", Item=_item(2000))
    assert "Item" in ddb.get_item(TableName="orders", Key={"pk": {"S": _item(2000)["pk"]["S"]},
                                                           "sk": {"N": "2000"}})


def test_a_backup_taken_under_writes_is_one_consistent_moment(ddb: Any) -> None:
    """A writer appends k0, k1, k2... in order while the backup is taken: a consistent
    snapshot holds a gap-free prefix of them, and every write succeeds meanwhile."""
    create_table(ddb, "stream")
    stop = threading.Event()
    written: list[int] = []
    errors: list[Exception] = []

    def writer() -> None:
        writer_ddb = client(ddb.meta.endpoint_url)
        n = 0
        while not stop.is_set() and n < 20_000:
            try:
                writer_ddb.put_item(TableName="stream", Item={"pk": {"S": f"k{n:06d}"}})
            except Exception as exc:  # none expected
                errors.append(exc)
                return
            written.append(n)
            n += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert wait_until(lambda: len(written) > 200, 30, 0.01)
        arns = [ddb.create_backup(TableName="stream", BackupName=f"bak{i}")["BackupDetails"][
            "BackupArn"] for i in range(3)]
        count_at = len(written)
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not errors
    for i, arn in enumerate(arns):
        _available(ddb, arn)
        ddb.restore_table_from_backup(TargetTableName=f"stream{i}", BackupArn=arn)
    sizes = []
    for i in range(3):
        _restored(ddb, f"stream{i}")
        keys = sorted(int(k[1:]) for k in scan_all(ddb, f"stream{i}"))
        assert keys == list(range(len(keys))), "a backup is not one moment of the table"
        sizes.append(len(keys))
    assert sizes == sorted(sizes) and 200 <= sizes[0] and sizes[-1] <= count_at + 64


def _backup_file(node: ServerProcess, arn: str) -> Path:
    assert node.data_dir is not None
    ident = arn.rpartition("/")[2]
    return node.data_dir / "backups" / "tables" / f"{ident}.atb"


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_corrupted_backup_file_is_refused_on_restore(ddb: Any, node: ServerProcess,
                                                       damage: str) -> None:
    name = f"fragile-{damage}"
    create_table(ddb, name)
    for n in range(300):
        ddb.put_item(TableName=name, Item={"pk": {"S": f"k{n}"}, "v": {"S": "x" * 50}})
    arn = ddb.create_backup(TableName=name, BackupName="bak")["BackupDetails"]["BackupArn"]
    _available(ddb, arn)
    path = _backup_file(node, arn)
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x04
    else:
        del data[-100:]
    path.write_bytes(bytes(data))
    with pytest.raises(ClientError) as caught:
        ddb.restore_table_from_backup(TargetTableName=f"{name}-restored", BackupArn=arn)
    assert error_code(caught) == "ValidationException"
    message = caught.value.response["Error"]["Message"]
    assert "corrupted" in message and str(path.name) in message
    assert ("failed its checksum" if damage == "flip" else "truncated") in message
    assert f"{name}-restored" not in ddb.list_tables()["TableNames"]


def test_list_backups_filters_and_pages(ddb: Any) -> None:
    for name in ("listed-a", "listed-b"):
        create_table(ddb, name)
    start = time.time() - 1
    arns = []
    for i in range(5):
        table = "listed-a" if i % 2 == 0 else "listed-b"
        arns.append(ddb.create_backup(TableName=table, BackupName=f"list{i}")["BackupDetails"][
            "BackupArn"])
        time.sleep(0.02)
    middle = ddb.describe_backup(BackupArn=arns[2])["BackupDescription"]["BackupDetails"][
        "BackupCreationDateTime"]
    mine = [s for s in ddb.list_backups(TimeRangeLowerBound=start)["BackupSummaries"]
            if s["TableName"].startswith("listed-")]
    assert [s["BackupArn"] for s in mine] == arns  # oldest first
    assert {s["BackupType"] for s in mine} == {"USER"}
    only_a = ddb.list_backups(TableName="listed-a")["BackupSummaries"]
    assert [s["BackupArn"] for s in only_a] == arns[0::2]
    by_arn = ddb.describe_table(TableName="listed-b")["Table"]["TableArn"]
    assert [s["BackupArn"] for s in ddb.list_backups(TableName=by_arn)["BackupSummaries"]] \
        == arns[1::2]
    later = ddb.list_backups(TableName="listed-a", TimeRangeLowerBound=middle)["BackupSummaries"]
    assert [s["BackupArn"] for s in later] == arns[2::2]  # the lower bound is inclusive
    earlier = ddb.list_backups(TableName="listed-a", TimeRangeUpperBound=middle)
    assert [s["BackupArn"] for s in earlier["BackupSummaries"]] == arns[0:1]  # exclusive
    assert ddb.list_backups(TableName="listed-a", BackupType="SYSTEM")["BackupSummaries"] == []
    assert len(ddb.list_backups(TableName="listed-a", BackupType="ALL")["BackupSummaries"]) == 3
    # paging
    seen: list[str] = []
    kwargs: dict[str, Any] = {"TimeRangeLowerBound": start, "Limit": 2}
    for _page in range(10):
        page = ddb.list_backups(**kwargs)
        seen += [s["BackupArn"] for s in page["BackupSummaries"]
                 if s["TableName"].startswith("listed-")]
        if "LastEvaluatedBackupArn" not in page:
            break
        assert len(page["BackupSummaries"]) == 2
        kwargs["ExclusiveStartBackupArn"] = page["LastEvaluatedBackupArn"]
    assert seen == arns
    # deleting
    for arn in arns:
        _available(ddb, arn)
    deleted = ddb.delete_backup(BackupArn=arns[0])["BackupDescription"]
    assert deleted["BackupDetails"]["BackupStatus"] == "DELETED"
    with pytest.raises(ClientError) as caught:
        ddb.describe_backup(BackupArn=arns[0])
    assert error_code(caught) == "BackupNotFoundException"
    with pytest.raises(ClientError) as caught:
        ddb.delete_backup(BackupArn=arns[0])
    assert error_code(caught) == "BackupNotFoundException"
    assert arns[0] not in [s["BackupArn"] for s in ddb.list_backups()["BackupSummaries"]]


def test_restore_overrides_and_errors(ddb: Any) -> None:
    _indexed_table(ddb, "source")
    for n in range(30):
        ddb.put_item(TableName="source", Item=_item(n))
    arn = ddb.create_backup(TableName="source", BackupName="bak")["BackupDetails"]["BackupArn"]
    _available(ddb, arn)
    ddb.restore_table_from_backup(
        TargetTableName="overridden", BackupArn=arn, BillingModeOverride="PROVISIONED",
        ProvisionedThroughputOverride={"ReadCapacityUnits": 5, "WriteCapacityUnits": 6},
        GlobalSecondaryIndexOverride=[{
            "IndexName": "byG", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "ALL"},
            "ProvisionedThroughput": {"ReadCapacityUnits": 2, "WriteCapacityUnits": 3}}],
        LocalSecondaryIndexOverride=[])
    table = _restored(ddb, "overridden")
    # (DescribeTable describes no BillingModeSummary for a table made PROVISIONED)
    assert table.get("BillingModeSummary", {"BillingMode": "PROVISIONED"})["BillingMode"] \
        == "PROVISIONED"
    assert table["ProvisionedThroughput"]["WriteCapacityUnits"] == 6
    assert table["GlobalSecondaryIndexes"][0]["ProvisionedThroughput"]["ReadCapacityUnits"] == 2
    assert "LocalSecondaryIndexes" not in table
    assert {d["AttributeName"] for d in table["AttributeDefinitions"]} == {"pk", "sk", "g"}
    assert len(_all(ddb, "overridden")) == 30

    def refused(expected: str, **request: Any) -> str:
        with pytest.raises(ClientError) as caught:
            ddb.restore_table_from_backup(**{"TargetTableName": "never", "BackupArn": arn,
                                             **request})
        assert error_code(caught) == expected, caught.value.response
        return str(caught.value.response["Error"]["Message"])

    assert "KMS" in refused("ValidationException",
                            SSESpecificationOverride={"Enabled": True, "SSEType": "KMS"})
    assert "no global secondary index nope" in refused(
        "ValidationException", GlobalSecondaryIndexOverride=[{
            "IndexName": "nope", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "ALL"}}])
    refused("TableAlreadyExistsException", TargetTableName="source")
    refused("BackupNotFoundException",
            BackupArn=arn.rpartition("/")[0] + "/01700000000000-deadbeef")
    assert "never" not in ddb.list_tables()["TableNames"]
    with pytest.raises(ClientError) as caught:
        ddb.create_backup(TableName="no-such-table", BackupName="bak")
    assert error_code(caught) == "TableNotFoundException"


def test_a_restored_table_has_no_stream_until_one_is_enabled(ddb: Any) -> None:
    """Stream settings are not restored (DynamoDB: "you must manually set up ... stream
    settings" on the restored table); the source keeps its stream."""
    create_table(ddb, "streamed")
    ddb.update_table(TableName="streamed", StreamSpecification={
        "StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    ddb.put_item(TableName="streamed", Item={"pk": {"S": "a"}})
    arn = ddb.create_backup(TableName="streamed", BackupName="withstream")["BackupDetails"][
        "BackupArn"]
    _available(ddb, arn)
    ddb.restore_table_from_backup(TargetTableName="streamed-copy", BackupArn=arn)
    table = _restored(ddb, "streamed-copy")
    assert "StreamSpecification" not in table and "LatestStreamArn" not in table
    assert ddb.describe_table(TableName="streamed")["Table"]["StreamSpecification"] == {
        "StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    ddb.update_table(TableName="streamed-copy", StreamSpecification={
        "StreamEnabled": True, "StreamViewType": "KEYS_ONLY"})
    copy = ddb.describe_table(TableName="streamed-copy")["Table"]
    assert copy["StreamSpecification"]["StreamViewType"] == "KEYS_ONLY"
    assert copy["LatestStreamArn"] != ddb.describe_table(TableName="streamed")["Table"][
        "LatestStreamArn"]


def test_backups_survive_a_restart_and_restore_afterwards(tmp_path: Path) -> None:
    node = ServerProcess(data_dir=tmp_path).start()
    try:
        ddb = client(node.url)
        create_table(ddb, "kept")
        for n in range(40):
            ddb.put_item(TableName="kept", Item={"pk": {"S": f"k{n}"}})
        arn = ddb.create_backup(TableName="kept", BackupName="bak")["BackupDetails"]["BackupArn"]
        _available(ddb, arn)
        node.stop()
        node.start()
        ddb = client(node.url)
        assert [s["BackupArn"] for s in ddb.list_backups()["BackupSummaries"]] == [arn]
        ddb.restore_table_from_backup(TargetTableName="kept-again", BackupArn=arn)
        _restored(ddb, "kept-again")
        assert scan_all(ddb, "kept-again") == scan_all(ddb, "kept")
    finally:
        node.stop()
