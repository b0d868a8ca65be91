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

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support import ServerProcess, client, create_table

SMALL = "3m"
LARGER = "16m"
ITEM_PAD = "x" * 10_000
MAX_WRITES = 1000


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SMALL}", "tmpfs", str(mount_point)],
                   check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


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

    check = sqlite3.connect(data_dir / "atoll-local.db")
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    check.close()
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
