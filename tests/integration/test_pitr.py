"""Point-in-time recovery through boto3 against a live node (UpdateContinuousBackups,
DescribeContinuousBackups, RestoreTableToPointInTime), with snapshots every second or
two so restores replay across several of them."""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support import ServerProcess, client, create_table, error_code, scan_all, wait_until

SNAPSHOT_EVERY = ["--pitr-snapshot-interval", "1.5"]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(data_dir=tmp_path_factory.mktemp("pitr"), extra=SNAPSHOT_EVERY) as server:
        yield server


@pytest.fixture()
def ddb(node: ServerProcess) -> Any:
    return client(node.url)


def _enable(ddb: Any, table: str, days: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"PointInTimeRecoveryEnabled": True}
    if days is not None:
        spec["RecoveryPeriodInDays"] = days
    answer = ddb.update_continuous_backups(TableName=table,
                                           PointInTimeRecoverySpecification=spec)
    return dict(answer["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"])


def _restore(ddb: Any, source: str, target: str, at: float | None = None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"SourceTableName": source, "TargetTableName": target}
    if at is None:
        kwargs["UseLatestRestorableTime"] = True
    else:
        kwargs["RestoreDateTime"] = datetime.datetime.fromtimestamp(at, datetime.UTC)
    answer = ddb.restore_table_to_point_in_time(**kwargs)["TableDescription"]
    assert answer["TableStatus"] == "CREATING"
    ddb.get_waiter("table_exists").wait(TableName=target, WaiterConfig={"Delay": 0.2,
                                                                         "MaxAttempts": 300})
    return dict(answer)


def test_a_restore_to_five_seconds_before_a_bad_batch_holds_exactly_what_was_written(
        ddb: Any) -> None:
    create_table(ddb, "ledger", range_key=("sk", "N"))
    for n in range(60):
        ddb.put_item(TableName="ledger", Item={"pk": {"S": f"a{n % 6}"}, "sk": {"N": str(n)},
                                               "v": {"N": str(n)}, "tag": {"SS": ["x", "y"]}})
    _enable(ddb, "ledger")
    for n in range(0, 60, 3):  # overwrites, deletes and new items after enabling
        ddb.put_item(TableName="ledger", Item={"pk": {"S": f"a{n % 6}"}, "sk": {"N": str(n)},
                                               "v": {"S": f"second {n}"}})
        ddb.delete_item(TableName="ledger", Key={"pk": {"S": f"a{(n + 1) % 6}"},
                                                 "sk": {"N": str(n + 1)}})
        ddb.put_item(TableName="ledger", Item={"pk": {"S": "b"}, "sk": {"N": str(n)}})
    ddb.update_item(TableName="ledger", Key={"pk": {"S": "b"}, "sk": {"N": "0"}},
                    UpdateExpression="SET c = :c", ExpressionAttributeValues={":c": {"N": "7"}})
    time.sleep(3.5)  # across at least one more snapshot
    good = _items(ddb, "ledger")
    point = time.time()
    time.sleep(5.0)
    for n in range(0, 60, 2):  # the bad batch, 5 s after the point
        ddb.put_item(TableName="ledger", Item={"pk": {"S": f"a{n % 6}"}, "sk": {"N": str(n)},
                                               "v": {"S": "BAD"}})
    for key in list(good)[:10]:
        ddb.delete_item(TableName="ledger", Key={"pk": {"S": key[0]}, "sk": {"N": key[1]}})
    summary = _restore(ddb, "ledger", "ledger-restored", point)["RestoreSummary"]
    assert abs(summary["RestoreDateTime"].timestamp() - point) < 0.01
    restored = _items(ddb, "ledger-restored")
    assert restored.keys() == good.keys()
    for key, item in good.items():  # item by item
        assert restored[key] == item, key
    latest = _items(ddb, "ledger")
    _restore(ddb, "ledger", "ledger-latest")
    assert _items(ddb, "ledger-latest") == latest


def _items(ddb: Any, table: str) -> dict[tuple[str, str], dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    kwargs: dict[str, Any] = {"TableName": table}
    while True:
        page = ddb.scan(**kwargs)
        for item in page["Items"]:
            found[(item["pk"]["S"], item["sk"]["N"])] = item
        if "LastEvaluatedKey" not in page:
            return found
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_continuous_backups_are_described_and_their_window_enforced(ddb: Any) -> None:
    create_table(ddb, "window")
    ddb.put_item(TableName="window", Item={"pk": {"S": "before"}})
    described = ddb.describe_continuous_backups(TableName="window")[
        "ContinuousBackupsDescription"]
    assert described == {"ContinuousBackupsStatus": "ENABLED",
                         "PointInTimeRecoveryDescription": {"PointInTimeRecoveryStatus":
                                                            "DISABLED"}}
    with pytest.raises(ClientError) as caught:
        _restore(ddb, "window", "window-never")
    assert error_code(caught) == "PointInTimeRecoveryUnavailableException"
    enabled_at = time.time()
    description = _enable(ddb, "window", days=7)
    assert description["PointInTimeRecoveryStatus"] == "ENABLED"
    assert description["RecoveryPeriodInDays"] == 7
    assert abs(description["EarliestRestorableDateTime"].timestamp() - enabled_at) < 2
    time.sleep(1.0)
    described = ddb.describe_continuous_backups(TableName="window")[
        "ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    earliest = described["EarliestRestorableDateTime"].timestamp()
    latest = described["LatestRestorableDateTime"].timestamp()
    assert earliest <= latest and abs(latest - time.time()) < 2
    for at in (earliest - 60, time.time() + 3600):
        with pytest.raises(ClientError) as caught:
            _restore(ddb, "window", "window-never", at)
        assert error_code(caught) == "InvalidRestoreTimeException"
    with pytest.raises(ClientError) as caught:
        ddb.restore_table_to_point_in_time(SourceTableName="window", TargetTableName="window-x",
                                           UseLatestRestorableTime=True,
                                           RestoreDateTime=datetime.datetime.now())
    assert error_code(caught) == "ValidationException"
    with pytest.raises(ClientError) as caught:
        _restore(ddb, "no-such-table", "window-never")
    assert error_code(caught) == "TableNotFoundException"
    with pytest.raises(ClientError) as caught:
        _restore(ddb, "window", "window")
    assert error_code(caught) == "TableAlreadyExistsException"
    assert "window-never" not in ddb.list_tables()["TableNames"]
    _restore(ddb, "window", "window-now", earliest + 0.001)
    assert set(scan_all(ddb, "window-now")) == {"before"}
    with pytest.raises(ClientError) as caught:
        ddb.update_continuous_backups(TableName="window", PointInTimeRecoverySpecification={
            "PointInTimeRecoveryEnabled": False, "RecoveryPeriodInDays": 3})
    assert error_code(caught) == "ValidationException"
    off = ddb.update_continuous_backups(TableName="window", PointInTimeRecoverySpecification={
        "PointInTimeRecoveryEnabled": False})["ContinuousBackupsDescription"]
    assert off["PointInTimeRecoveryDescription"] == {"PointInTimeRecoveryStatus": "DISABLED"}
    with pytest.raises(ClientError) as caught:
        _restore(ddb, "window", "window-never")
    assert error_code(caught) == "PointInTimeRecoveryUnavailableException"


def test_deleting_a_table_with_pitr_keeps_a_system_backup(ddb: Any) -> None:
    create_table(ddb, "doomed")
    for n in range(25):
        ddb.put_item(TableName="doomed", Item={"pk": {"S": f"k{n}"}})
    _enable(ddb, "doomed")
    ddb.delete_table(TableName="doomed")
    system = [s for s in ddb.list_backups(BackupType="SYSTEM")["BackupSummaries"]
              if s["TableName"] == "doomed"]
    assert len(system) == 1 and "BackupExpiryDateTime" in system[0]
    days = (system[0]["BackupExpiryDateTime"] - system[0]["BackupCreationDateTime"]).days
    assert days == 35
    assert system[0]["BackupArn"] not in [
        s["BackupArn"] for s in ddb.list_backups()["BackupSummaries"]]  # USER by default
    assert wait_until(lambda: ddb.describe_backup(BackupArn=system[0]["BackupArn"])[
        "BackupDescription"]["BackupDetails"]["BackupStatus"] == "AVAILABLE", 30)
    ddb.restore_table_from_backup(TargetTableName="doomed", BackupArn=system[0]["BackupArn"])
    ddb.get_waiter("table_exists").wait(TableName="doomed", WaiterConfig={"Delay": 0.2})
    assert len(scan_all(ddb, "doomed")) == 25
    assert ddb.describe_continuous_backups(TableName="doomed")["ContinuousBackupsDescription"][
        "PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "DISABLED"


def test_the_window_slides_and_old_snapshots_go(tmp_path: Path) -> None:
    node = ServerProcess(data_dir=tmp_path, extra=["--pitr-window", "3",
                                                   "--pitr-snapshot-interval", "0.5"]).start()
    try:
        ddb = client(node.url)
        create_table(ddb, "sliding")
        _enable(ddb, "sliding")
        started: dict[str, float] = {}
        done: dict[str, float] = {}
        for n in range(40):
            started[f"k{n}"] = time.time()
            ddb.put_item(TableName="sliding", Item={"pk": {"S": f"k{n}"}})
            done[f"k{n}"] = time.time()
            time.sleep(0.15)
        now = time.time()
        described = ddb.describe_continuous_backups(TableName="sliding")[
            "ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
        assert now - 4.5 <= described["EarliestRestorableDateTime"].timestamp() <= now - 2
        table_dir = next((tmp_path / "backups" / "pitr").iterdir())
        while not table_dir.is_dir():
            table_dir = next(p for p in (tmp_path / "backups" / "pitr").iterdir() if p.is_dir())
        snapshots = list(table_dir.glob("snapshot-*.atb"))
        assert 1 <= len(snapshots) <= 10, snapshots  # ~12 were taken; the old ones went
        earliest = described["EarliestRestorableDateTime"].timestamp()
        with pytest.raises(ClientError) as caught:
            _restore(ddb, "sliding", "sliding-old", earliest - 1)
        assert error_code(caught) == "InvalidRestoreTimeException"
        point = earliest + 0.2
        _restore(ddb, "sliding", "sliding-recent", point)
        restored = set(scan_all(ddb, "sliding-recent"))
        assert {k for k, at in done.items() if at <= point} <= restored
        assert restored <= {k for k, at in started.items() if at <= point}
    finally:
        node.stop()


def test_pitr_carries_on_across_a_restart(tmp_path: Path) -> None:
    node = ServerProcess(data_dir=tmp_path, extra=SNAPSHOT_EVERY).start()
    try:
        ddb = client(node.url)
        create_table(ddb, "durable")
        _enable(ddb, "durable")
        for n in range(20):
            ddb.put_item(TableName="durable", Item={"pk": {"S": f"k{n}"}, "v": {"N": "1"}})
        time.sleep(1.0)
        before_restart = time.time()
        time.sleep(1.0)
        node.stop()
        node.start()
        ddb = client(node.url)
        for n in range(10, 30):
            ddb.put_item(TableName="durable", Item={"pk": {"S": f"k{n}"}, "v": {"N": "2"}})
        _restore(ddb, "durable", "durable-then", before_restart)
        then = scan_all(ddb, "durable-then")
        assert set(then) == {f"k{n}" for n in range(20)}
        assert {i["v"]["N"] for i in then.values()} == {"1"}
        _restore(ddb, "durable", "durable-now")
        assert scan_all(ddb, "durable-now") == scan_all(ddb, "durable")
    finally:
        node.stop()
