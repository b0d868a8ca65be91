"""Backups and point-in-time recovery in a live 3-region cluster: what a restore creates
reaches every region; backups and PITR stay the region's own; PITR keeps its table's
changes past replication's purge; every table is described as a global table over the
cluster's regions."""

from __future__ import annotations

import datetime
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support import ClusterProcesses, create_table, node_json, scan_all, wait_until

REGIONS = ("us-east", "eu-west", "ap-south")


def _everywhere(clients: dict[str, Any], table: str, expected: dict[str, Any],
                timeout_s: float = 60) -> None:
    for region, ddb in clients.items():
        assert wait_until(lambda ddb=ddb: table in ddb.list_tables()["TableNames"]
                          and ddb.describe_table(TableName=table)["Table"]["TableStatus"]
                          == "ACTIVE" and scan_all(ddb, table) == expected,
                          timeout_s, 0.3), f"{table} did not reach {region} whole"


def test_restores_reach_every_region_and_backups_stay_in_theirs(tmp_path: Path) -> None:
    # one PITR snapshot, at enabling: every restore replays the writes after it, most of
    # them purged from the changelog by then and kept for the table
    cluster = ClusterProcesses(tmp_path, REGIONS,
                               extra=["--pitr-snapshot-interval", "3600"]).start()
    try:
        clients = cluster.clients()
        east, west, south = (clients[r] for r in REGIONS)
        create_table(east, "shared")
        assert wait_until(lambda: all("shared" in c.list_tables()["TableNames"]
                                      for c in clients.values()), 15)
        south.update_continuous_backups(TableName="shared", PointInTimeRecoverySpecification={
            "PointInTimeRecoveryEnabled": True})
        for n in range(90):
            clients[REGIONS[n % 3]].put_item(TableName="shared", Item={
                "pk": {"S": f"k{n}"}, "by": {"S": REGIONS[n % 3]}, "n": {"N": str(n)}})
        assert wait_until(lambda: all(len(scan_all(c, "shared")) == 90
                                      for c in clients.values()), 30, 0.3)
        expected = scan_all(east, "shared")
        _everywhere(clients, "shared", expected, 30)

        # global tables: every table lives in every region
        described = west.describe_global_table(GlobalTableName="shared")["GlobalTableDescription"]
        assert sorted(r["RegionName"] for r in described["ReplicationGroup"]) == sorted(REGIONS)
        assert {r["RegionName"] for r in west.describe_table(TableName="shared")["Table"][
            "Replicas"]} == set(REGIONS)
        with pytest.raises(ClientError) as caught:
            west.update_table(TableName="shared",
                              ReplicaUpdates=[{"Delete": {"RegionName": "ap-south"}}])
        assert "Cannot remove region ap-south" in caught.value.response["Error"]["Message"]

        # a backup is its region's
        arn = west.create_backup(TableName="shared", BackupName="west-copy")["BackupDetails"][
            "BackupArn"]
        assert ":eu-west:" in arn
        assert arn not in [s["BackupArn"] for s in east.list_backups()["BackupSummaries"]]
        with pytest.raises(ClientError) as caught:
            east.describe_backup(BackupArn=arn)
        assert caught.value.response["Error"]["Code"] == "BackupNotFoundException"
        assert wait_until(lambda: west.describe_backup(BackupArn=arn)["BackupDescription"][
            "BackupDetails"]["BackupStatus"] == "AVAILABLE", 30)

        time.sleep(2.5)
        point = time.time()
        time.sleep(1.0)
        for n in range(0, 90, 2):  # a bad batch from every region after the point
            clients[REGIONS[n % 3]].put_item(TableName="shared", Item={
                "pk": {"S": f"k{n}"}, "by": {"S": "BAD"}})
        # PITR is its region's too
        assert east.describe_continuous_backups(TableName="shared")[
            "ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"][
            "PointInTimeRecoveryStatus"] == "DISABLED"

        west.restore_table_from_backup(TargetTableName="shared-from-backup", BackupArn=arn)
        south.restore_table_to_point_in_time(
            SourceTableName="shared", TargetTableName="shared-at-point",
            RestoreDateTime=datetime.datetime.fromtimestamp(point, datetime.UTC))
        _everywhere(clients, "shared-from-backup", expected)
        _everywhere(clients, "shared-at-point", expected)
        for ddb in clients.values():  # a restored table takes writes in every region
            restored = ddb.describe_table(TableName="shared-at-point")["Table"]
            assert restored["RestoreSummary"]["RestoreInProgress"] is False
        east.put_item(TableName="shared-at-point", Item={"pk": {"S": "after"}})
        assert wait_until(lambda: "Item" in south.get_item(TableName="shared-at-point",
                                                           Key={"pk": {"S": "after"}}), 15)

        # replication purged its changelog meanwhile; PITR lost nothing to it
        def purged(region: str) -> int:
            status = node_json(cluster.url(region), "/_atoll/status")
            return int(status["replication"]["changelog"]["purged_records"])

        assert wait_until(lambda: purged("ap-south") >= 100, 30, 0.5)
        backups = node_json(cluster.url("ap-south"), "/_atoll/status")["backups"]
        assert backups["pitr"]["tables"] == ["shared"]
        south.restore_table_to_point_in_time(SourceTableName="shared",
                                             TargetTableName="shared-latest",
                                             UseLatestRestorableTime=True)
        _everywhere(clients, "shared-latest", scan_all(south, "shared"))
    finally:
        cluster.stop()
