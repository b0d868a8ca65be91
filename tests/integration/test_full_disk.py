"""A full disk: writes are refused (503, retryable), nothing acknowledged is lost, reads go
on, and writing resumes by itself once there is room again.

The server's data directory is a real tmpfs of a few MB (mounting needs root, which this
machine and its CI have). 10 KB items fill it within a few hundred writes. Then the
filesystem is grown in place (`mount -o remount,size=`), the way an operator frees space,
and the same server process must accept writes again without a restart. Finally the
server is SIGKILLed and restarted: every acknowledged item is there, the item count
matches, and SQLite's integrity check passes.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support import (
    ClusterProcesses,
    ServerProcess,
    assert_database_intact,
    client,
    create_table,
    node_json,
    wait_until,
)

SMALL = "3m"
LARGER = "64m"
ITEM_PAD = "x" * 10_000
MAX_WRITES = 1000


@contextlib.contextmanager
def _small_tmpfs(mount_point: Path) -> Iterator[Path]:
    """A SMALL tmpfs mounted at `mount_point` (created) while the block runs."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount_point.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SMALL}", "tmpfs", str(mount_point)],
                   check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with _small_tmpfs(tmp_path / "disk") as mount_point:
        yield mount_point


def _put(ddb: Any, key: str) -> str | None:
    """None if acknowledged, else the error code."""
    try:
        ddb.put_item(TableName="full", Item={"pk": {"S": key}, "pad": {"S": ITEM_PAD}})
    except ClientError as error:
        assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 503, error.response
        return str(error.response["Error"]["Code"])
    return None


def _all_keys(ddb: Any) -> set[str]:
    keys: set[str] = set()
    kwargs: dict[str, Any] = {"TableName": "full", "ProjectionExpression": "pk"}
    while True:
        page = ddb.scan(**kwargs)
        keys.update(item["pk"]["S"] for item in page["Items"])
        if "LastEvaluatedKey" not in page:
            return keys
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@pytest.mark.slow
def test_full_disk_refuses_writes_loses_nothing_and_recovers(small_disk: Path) -> None:
    data_dir = small_disk / "data"
    server = ServerProcess(data_dir=data_dir).start()
    try:
        ddb = client(server.url)
        create_table(ddb, "full")
        acked: list[str] = []
        refusals: dict[str, int] = {}
        for n in range(MAX_WRITES):
            error = _put(ddb, f"k{n}")
            if error is None:
                acked.append(f"k{n}")
            else:
                refusals[error] = refusals.get(error, 0) + 1
                if sum(refusals.values()) >= 20:
                    break
        assert len(acked) > 20, "the disk filled before the workload got going"
        assert refusals == {"ServiceUnavailableException": 20}, refusals
        # full: reads still answer, from the committed data
        assert _all_keys(ddb) == set(acked)
        assert "Item" in ddb.get_item(TableName="full", Key={"pk": {"S": acked[0]}})

        subprocess.run(["mount", "-o", f"remount,size={LARGER}", str(small_disk)], check=True)
        for n in range(20):
            assert _put(ddb, f"after{n}") is None, "writes did not resume once there was room"
            acked.append(f"after{n}")
        assert ddb.describe_table(TableName="full")["Table"]["ItemCount"] == len(acked)
    finally:
        server.kill()

    assert_database_intact(data_dir / "atoll-local.db")
    restarted = ServerProcess(data_dir=data_dir).start()
    try:
        ddb = client(restarted.url)
        assert _all_keys(ddb) == set(acked)
        assert ddb.describe_table(TableName="full")["Table"]["ItemCount"] == len(acked)
    finally:
        restarted.stop()
    log = server.log()
    assert "database or disk is full" in log, log[-2000:]
    assert "Traceback" not in log, log[-4000:]


@pytest.mark.slow
def test_a_region_whose_disk_fills_catches_up_when_there_is_room(tmp_path: Path) -> None:
    """eu-west's data directory is a 3 MB tmpfs; us-east takes 10 KB writes until eu-west
    cannot apply them. eu-west keeps serving reads, refuses writes with 503, and once its
    filesystem grows it catches up by itself: the same items as us-east, and its
    background work (changelog retention) still running."""
    with _small_tmpfs(tmp_path / "eu-west") as west_dir:
        cluster = ClusterProcesses(tmp_path, ("us-east", "eu-west"))
        try:
            cluster.start()
            east, west = client(cluster.url("us-east")), client(cluster.url("eu-west"))
            create_table(east, "full")
            assert wait_until(lambda: "full" in west.list_tables()["TableNames"], 10)
            for n in range(400):
                east.put_item(TableName="full", Item={"pk": {"S": f"k{n}"}, "pad": {"S": ITEM_PAD}})
            west_log = cluster.nodes["eu-west"].log
            assert wait_until(lambda: "disk is full" in west_log(), 20), "eu-west never filled"
            assert len(_all_keys(west)) < 400
            # a small write may still fit where a batch of applies did not: either it is
            # acknowledged (and must replicate) or refused with a 503
            during = _put(west, "during") is None

            subprocess.run(["mount", "-o", f"remount,size={LARGER}", str(west_dir)], check=True)
            expected = {f"k{n}" for n in range(400)} | ({"during"} if during else set())
            assert wait_until(lambda: _all_keys(west) == expected, 60, 0.5), \
                "eu-west did not catch up"
            west.put_item(TableName="full", Item={"pk": {"S": "west"}})
            assert wait_until(lambda: _all_keys(east) == expected | {"west"}, 10)
            # retention survived the fault: eu-west purges records both regions hold
            assert wait_until(lambda: node_json(cluster.url("eu-west"), "/_atoll/status")
                              ["replication"]["changelog"]["purged_records"] > 0, 15)
            assert "died" not in west_log() and "Traceback" not in west_log(), west_log()[-4000:]
        finally:
            cluster.stop()


@pytest.mark.slow
def test_an_index_backfill_that_fills_the_disk_finishes_once_there_is_room(
        small_disk: Path) -> None:
    """A GSI added to a table whose copy does not fit: the backfill pauses (the index
    stays CREATING, the table keeps serving) and completes once a ballast file that took
    the room is deleted."""
    subprocess.run(["mount", "-o", f"remount,size={LARGER}", str(small_disk)], check=True)
    server = ServerProcess(data_dir=small_disk / "data").start()
    try:
        ddb = client(server.url)
        create_table(ddb, "full")
        keys = [f"k{n}" for n in range(400)]  # 4 MB: index chunks of 2.5 MB outgrow the WAL
        for key in keys:
            assert _put(ddb, key) is None
        # Empty the WAL (SQLite reuses its file: a backfill could fit in it), then fill
        # the filesystem and give back 512 KB, less than the 2.5 MB of an index chunk.
        database = sqlite3.connect(small_disk / "data" / "atoll-local.db")
        assert wait_until(lambda: database.execute(
            "PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0, 10)
        database.close()
        ballast = small_disk / "ballast"
        with open(ballast, "wb") as filler:
            try:
                while True:
                    filler.write(b"\0" * 65536)
                    filler.flush()
            except OSError:
                pass
        os.truncate(ballast, max(0, ballast.stat().st_size - 512 * 1024))
        ddb.update_table(
            TableName="full", AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            GlobalSecondaryIndexUpdates=[{"Create": {
                "IndexName": "by_pk", "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"}}}])

        def index_status() -> str:
            table = ddb.describe_table(TableName="full")["Table"]
            return str(table["GlobalSecondaryIndexes"][0]["IndexStatus"])
        assert wait_until(lambda: "backfill of full.by_pk paused" in server.log(), 20), \
            server.log()[-3000:]
        assert index_status() == "CREATING"
        assert "Item" in ddb.get_item(TableName="full", Key={"pk": {"S": keys[0]}})

        ballast.unlink()
        assert wait_until(lambda: index_status() == "ACTIVE", 30), "the backfill did not resume"
        for key in (keys[0], keys[-1]):
            assert ddb.query(TableName="full", IndexName="by_pk", Select="COUNT",
                             KeyConditionExpression="pk = :k",
                             ExpressionAttributeValues={":k": {"S": key}})["Count"] == 1
        log = server.log()
        assert "background task" not in log and "Traceback" not in log, log[-4000:]
    finally:
        server.stop()
