"""Whole-node backup and restore (`atoll backup`, `atoll restore`) with real processes: a
lone node goes back to its backup's moment; a cluster member restored from a backup
rejoins, catching up from its cursors or, once the cluster moved past the backup,
rebuilt from a peer."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.pg import PostgresServer, fresh_schema_dsn, pg_server  # noqa: F401  (fixture)
from tests.support import (
    ATOLL,
    REPO,
    ClusterProcesses,
    ServerProcess,
    client,
    create_table,
    node_json,
    scan_all,
    wait_until,
)

REGIONS = ("us-east", "eu-west", "ap-south")


def signed_by(node: ServerProcess) -> list[str]:
    """The CLI options that sign with the node's admin key (a copy needs one)."""
    return ["--credentials", str(node.credentials_path), "--profile", "atoll"]


def atoll(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*ATOLL, *args], cwd=REPO, capture_output=True, text=True, timeout=120)
    if ok:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.mark.beside_others  # one node, nothing timed (conftest.py)
def test_a_lone_node_restored_from_an_online_backup_is_back_at_that_moment(
        tmp_path: Path) -> None:
    node = ServerProcess(data_dir=tmp_path / "node").start()
    try:
        ddb = client(node.url)
        create_table(ddb, "events")
        for n in range(50):
            ddb.put_item(TableName="events", Item={"pk": {"S": f"a{n:04d}"}})
        stop = threading.Event()
        written: list[int] = []

        def writer() -> None:
            writes = client(node.url)
            n = 0
            while not stop.is_set() and n < 5000:
                writes.put_item(TableName="events", Item={"pk": {"S": f"w{n:04d}"}})
                written.append(n)
                n += 1

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            assert wait_until(lambda: len(written) > 50, 30, 0.01)
            out = atoll("backup", "--endpoint", node.url, "--out", str(tmp_path / "online.db"),
                        *signed_by(node))
        finally:
            stop.set()
            thread.join(timeout=30)
        assert "backed up region local" in out.stdout
        for n in range(20):
            ddb.put_item(TableName="events", Item={"pk": {"S": f"z{n}"}})  # after the backup
        node.stop()
        refused = atoll("restore", "--from", str(tmp_path / "online.db"), "--data-dir",
                        str(tmp_path / "node"), ok=False)
        assert refused.returncode != 0 and "--force" in refused.stderr
        atoll("restore", "--from", str(tmp_path / "online.db"), "--data-dir",
              str(tmp_path / "node"), "--force")
        node.start()
        ddb = client(node.url)
        keys = set(scan_all(ddb, "events"))
        assert {f"a{n:04d}" for n in range(50)} <= keys
        assert not any(k.startswith("z") for k in keys)
        taken = sorted(int(k[1:]) for k in keys if k.startswith("w"))
        assert taken == list(range(len(taken))), "the copy is not one moment of the node"
        ddb.put_item(TableName="events", Item={"pk": {"S": "after-restore"}})
        assert "Item" in ddb.get_item(TableName="events", Key={"pk": {"S": "after-restore"}})
        node.stop()
        # a stopped node's file, copied from its data directory, into another one
        atoll("backup", "--data-dir", str(tmp_path / "node"), "--out", str(tmp_path / "off.db"))
        atoll("restore", "--from", str(tmp_path / "off.db"), "--data-dir",
              str(tmp_path / "elsewhere"))
        other = ServerProcess(data_dir=tmp_path / "elsewhere").start()
        try:
            assert set(scan_all(client(other.url), "events")) == keys | {"after-restore"}
        finally:
            other.stop()
    finally:
        if node.proc is not None and node.proc.poll() is None:
            node.stop()


@pytest.mark.beside_others  # one node, nothing timed (conftest.py)
def test_restore_refuses_what_is_not_an_intact_atoll_database(tmp_path: Path) -> None:
    node = ServerProcess(data_dir=tmp_path / "node").start()
    try:
        create_table(client(node.url), "few")
        atoll("backup", "--endpoint", node.url, "--out", str(tmp_path / "good.db"),
              *signed_by(node))
    finally:
        node.stop()
    data = (tmp_path / "good.db").read_bytes()
    (tmp_path / "cut.db").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.db").write_bytes(b"not a database at all" * 100)
    for bad in ("cut.db", "text.db", "missing.db"):
        done = atoll("restore", "--from", str(tmp_path / bad), "--data-dir",
                     str(tmp_path / "target"), ok=False)
        assert done.returncode != 0 and "refusing the backup" in done.stderr, done.stderr
    assert not list((tmp_path / "target").glob("atoll-*.db"))


@pytest.mark.beside_others  # one node, nothing timed (conftest.py)
def test_a_node_on_postgresql_refuses_backups_and_says_why(
        tmp_path: Path, pg_server: PostgresServer) -> None:  # noqa: F811
    """Table backups and PITR keep files on one node's disk, which a region whose nodes
    share PostgreSQL does not have; the whole-node copy is SQLite's. Both are refused
    with what to do instead, not accepted and lost."""
    node = ServerProcess(data_dir=tmp_path / "node",
                         extra=["--storage", fresh_schema_dsn(pg_server)]).start()
    try:
        ddb = client(node.url)
        create_table(ddb, "kept")
        calls = (lambda: ddb.create_backup(TableName="kept", BackupName="nightly"),
                 lambda: ddb.list_backups(),
                 lambda: ddb.describe_continuous_backups(TableName="kept"),
                 lambda: ddb.update_continuous_backups(
                     TableName="kept",
                     PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}))
        for call in calls:
            with pytest.raises(ClientError) as caught:
                call()
            error = caught.value.response["Error"]
            assert error["Code"] == "ContinuousBackupsUnavailableException", error
            assert "PostgreSQL's own tools" in error["Message"]
        done = atoll("backup", "--endpoint", node.url, "--out", str(tmp_path / "copy.db"),
                     *signed_by(node), ok=False)
        assert done.returncode != 0 and "PostgreSQL's own tools" in done.stderr, done.stderr
        assert not (tmp_path / "copy.db").exists()
        ddb.delete_table(TableName="kept")  # DeleteTable has no PITR to keep a backup for
    finally:
        node.stop()


def _converged(clients: dict[str, Any], table: str) -> bool:
    views = [scan_all(ddb, table) for ddb in clients.values()]
    return all(view == views[0] for view in views)


def _rebuilds(cluster: ClusterProcesses, region: str) -> int:
    return int(node_json(cluster.url(region), "/_atoll/status")["replication"][
        "rebuilds_from_snapshot"])


def test_a_restored_region_rejoins_its_cluster(tmp_path: Path) -> None:
    cluster = ClusterProcesses(tmp_path, REGIONS).start()
    south_dir = tmp_path / "ap-south"
    try:
        clients = cluster.clients()
        create_table(clients["us-east"], "shared")
        assert wait_until(lambda: all("shared" in c.list_tables()["TableNames"]
                                      for c in clients.values()), 15)
        for n in range(60):
            clients[REGIONS[n % 3]].put_item(TableName="shared", Item={"pk": {"S": f"a{n}"}})
        assert wait_until(lambda: _converged(clients, "shared"), 20, 0.3)

        # 1. restored right after its backup: the others kept what it lacks; it catches up
        atoll("backup", "--endpoint", cluster.url("ap-south"), "--out", str(tmp_path / "s1.db"),
              *signed_by(cluster.nodes["ap-south"]))
        cluster.nodes["ap-south"].stop()
        for n in range(30):
            clients[REGIONS[n % 2]].put_item(TableName="shared", Item={"pk": {"S": f"b{n}"}})
        done = atoll("restore", "--from", str(tmp_path / "s1.db"), "--data-dir", str(south_dir),
                     "--force", "--certs", str(cluster.certs))
        assert "will catch up" in done.stdout, done.stdout
        cluster.nodes["ap-south"].start()
        clients = cluster.clients()
        assert wait_until(lambda: _converged(clients, "shared"), 30, 0.3)
        assert len(scan_all(clients["ap-south"], "shared")) == 90
        assert _rebuilds(cluster, "ap-south") == 0
        clients["ap-south"].put_item(TableName="shared", Item={"pk": {"S": "south-1"}})
        assert wait_until(lambda: _converged(clients, "shared"), 20, 0.3)

        # 2. restored after the cluster moved past the backup: rebuilt from a peer
        atoll("backup", "--endpoint", cluster.url("ap-south"), "--out", str(tmp_path / "s2.db"),
              *signed_by(cluster.nodes["ap-south"]))
        for n in range(30):
            clients[REGIONS[n % 3]].put_item(TableName="shared", Item={"pk": {"S": f"c{n}"}})
        clients["eu-west"].delete_item(TableName="shared", Key={"pk": {"S": "a0"}})
        assert wait_until(lambda: all(
            node_json(cluster.url(r), "/_atoll/status")["replication"]["changelog"][
                "purged_records"] > 0 for r in REGIONS), 30, 0.5)
        # every region holds every write before ap-south goes (a purge says only that some
        # reached every region): what it lacks after the restore is then all in its peers
        assert wait_until(lambda: _converged(clients, "shared")
                          and len(scan_all(clients["us-east"], "shared")) == 120, 20, 0.3)
        expected = scan_all(clients["us-east"], "shared")
        cluster.nodes["ap-south"].stop()
        done = atoll("restore", "--from", str(tmp_path / "s2.db"), "--data-dir", str(south_dir),
                     "--force", "--certs", str(cluster.certs))
        assert "moved past this backup" in done.stdout and "rebuilt from a peer" in done.stdout
        cluster.nodes["ap-south"].start()
        clients = cluster.clients()
        assert wait_until(lambda: scan_all(clients["ap-south"], "shared") == expected, 30, 0.5)
        assert wait_until(lambda: _rebuilds(cluster, "ap-south") >= 1, 15)
        # its new writes continue its own sequence: the others take them
        clients["ap-south"].put_item(TableName="shared", Item={"pk": {"S": "south-2"}})
        assert wait_until(lambda: "Item" in clients["us-east"].get_item(
            TableName="shared", Key={"pk": {"S": "south-2"}}), 15)
        assert wait_until(lambda: _converged(clients, "shared"), 20, 0.3)
    finally:
        cluster.stop()
