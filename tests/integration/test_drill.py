"""Short drills of every scenario against real clusters, asserting the invariants; and a
deliberately broken replica, which the drill must catch and name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from atoll.drill.runner import SCENARIOS, DrillOptions, run_scenario
from tests.support import REPO, free_port, worker_port_range


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_short_drill_keeps_every_acknowledged_write(scenario: str, tmp_path: Path) -> None:
    result = run_scenario(scenario, DrillOptions(duration_s=6, rate=60, seed=7, root=tmp_path,
                                                 ports=free_port))
    check = result["check"]
    assert check["acknowledged_writes"] > 50
    assert check["acknowledged_writes_lost"] == 0, check["lost_examples"]
    assert check["divergent_items"] == 0, check["divergent_examples"]
    assert check["phantom_reads"] == 0 and check["counter_problems"] == 0
    assert result["converge_after_stop_s"] is not None
    failover = result["clients"]["failover"]
    assert failover["read_errors"] == 0
    if scenario in ("region-down", "dns-empty"):  # the failover targets (issue 6)
        assert failover["longest_gap_s"] <= 2.0
    if scenario == "dns-empty":  # the naive client, by name, did fail
        assert result["clients"]["naive"]["succeeded"] < result["clients"]["naive"]["attempted"]
    verified = result["verify"]  # every region pair, every drill table, by hash trees
    assert verified["passed"] and verified["exit_code"] == 0, verified
    assert len(verified["pairs"]) == 2 * 3 and {p["summary"] for p in verified["pairs"]} == {
        "MATCH"}
    assert result["passed"]
    # the realistic configuration, as each region's status page says
    assert result["security"] == {
        region: {"auth": "required", "mutual_tls": True} for region in result["security"]}
    assert len(result["security"]) == 3


def test_the_drill_catches_a_replica_that_drops_changes(tmp_path: Path) -> None:
    result = run_scenario("slow-wan", DrillOptions(
        duration_s=6, rate=60, seed=7, root=tmp_path, converge_timeout_s=5,
        fault_drop_every=10, ports=free_port))
    check = result["check"]
    assert not result["passed"]
    assert check["acknowledged_writes_lost"] > 0 and check["divergent_items"] > 0
    # verify finds the dropped changes too: below the stable cut, seen twice, DIVERGED
    assert result["verify"]["exit_code"] == 1 and result["verify"]["diverged_keys"] > 0
    lost = check["lost_examples"][0]
    assert {"region", "table", "key", "acknowledged_value"} <= set(lost)


def test_cli_writes_the_report_and_exits_zero(tmp_path: Path) -> None:
    low, high = worker_port_range()  # this xdist worker's ports, not another's
    done = subprocess.run(
        [sys.executable, "-m", "atoll", "drill", "partition", "--duration", "5s", "--rate", "40",
         "--report", str(tmp_path / "report"), "--data-dir", str(tmp_path / "data"),
         "--port-range", f"{low}-{high}"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "drill PASSED" in done.stdout and "lost 0" in done.stdout
    assert "security: auth required on every client port; peers over mutual TLS" in done.stdout
    report = json.loads((tmp_path / "report" / "drill.json").read_text())
    assert report["passed"] and report["scenarios"][0]["scenario"] == "partition"
    assert "<svg" in (tmp_path / "report" / "drill.html").read_text()


def test_drill_against_a_running_cluster_restores_its_topology(tmp_path: Path) -> None:
    from tests.support import ClusterProcesses, client, node_json, wait_until

    cluster = ClusterProcesses(tmp_path / "cluster").start()
    try:
        before = node_json(cluster.url("us-east"), "/_atoll/topology")
        done = subprocess.run(
            [sys.executable, "-m", "atoll", "drill", "all", "--config",
             str(cluster.config_path), "--duration", "5s", "--rate", "40",
             "--data-dir", str(tmp_path / "drill"),
             "--port-range", "-".join(map(str, worker_port_range()))],
            cwd=REPO, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        for scenario in ("dns-empty", "partition", "slow-wan"):
            assert f"== {scenario}: PASS" in done.stdout
        assert done.stdout.count("security: auth required on every client port; peers over "
                                 "mutual TLS") == 3
        assert "region-down" not in done.stdout  # it would restart the cluster's processes
        after = node_json(cluster.url("eu-west"), "/_atoll/topology")
        assert after["generation"] == before["generation"] + 6  # routed + restored, x3
        assert after["regions"] == before["regions"]  # the real peer endpoints again
        assert wait_until(  # the drill's tables were dropped (everywhere, by replication)
            lambda: client(cluster.url("ap-south")).list_tables()["TableNames"] == [], 10)
        temp = tmp_path / "temp"  # where a drill without --data-dir makes its directory
        temp.mkdir()
        refused = subprocess.run(
            [sys.executable, "-m", "atoll", "drill", "region-down", "--config",
             str(cluster.config_path), "--duration", "5s"],
            cwd=REPO, capture_output=True, text=True, timeout=60,
            env={**os.environ, "TMPDIR": str(temp)})
        assert refused.returncode == 2 and "restarts region processes" in refused.stderr
        assert list(temp.iterdir()) == []  # refused before it made a data directory
    finally:
        cluster.stop()
