"""`atoll streams tail` against a live server: records as they arrive, from the trim
horizon, as JSON, through a cluster config's region, and its refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from atoll.topology.config import ClusterConfig, RegionConfig
from tests.support import REPO, ServerProcess, client, create_table

pytestmark = pytest.mark.beside_others  # one node at a time, nothing timed (conftest.py)

TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def node() -> Any:
    process = ServerProcess(in_memory=True).start()
    yield process
    process.stop()


def _tail(node: ServerProcess | None, *args: str) -> subprocess.Popen[str]:
    """`atoll streams tail ARGS`, signing with the node's admin key."""
    signing = ([] if node is None else
               ["--credentials", str(node.credentials_path), "--profile", "atoll"])
    return subprocess.Popen([sys.executable, "-m", "atoll", "streams", "tail", *args, *signing],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _table(ddb: Any, name: str) -> str:
    return create_table(ddb, name, StreamSpecification={"StreamEnabled": True,
                                                         "StreamViewType": "NEW_AND_OLD_IMAGES"})


def test_tail_prints_records_as_they_arrive(node: ServerProcess) -> None:
    ddb = client(node.url)
    table = _table(ddb, "tailed")
    ddb.put_item(TableName=table, Item={"pk": {"S": "before"}})  # before the tail: not shown
    tail = _tail(node, "--endpoint", node.url, "--table", table, "--count", "3", "--poll", "0.1")
    try:
        assert tail.stderr is not None
        assert tail.stderr.readline().startswith("following arn:aws:dynamodb:local:")
        ddb.put_item(TableName=table, Item={"pk": {"S": "a"}, "n": {"N": "1"}})
        ddb.update_item(TableName=table, Key={"pk": {"S": "a"}}, UpdateExpression="SET n = :n",
                        ExpressionAttributeValues={":n": {"N": "2"}})
        ddb.delete_item(TableName=table, Key={"pk": {"S": "a"}})
        out, _err = tail.communicate(timeout=TIMEOUT_S)
    finally:
        tail.kill()
    lines = out.splitlines()
    assert len(lines) == 3
    assert "local" in lines[0] and "INSERT" in lines[0]
    assert lines[0].endswith('new={"n": 1, "pk": "a"}') and "old=" not in lines[0]
    assert 'old={"n": 1, "pk": "a"}  new={"n": 2, "pk": "a"}' in lines[1]
    assert "REMOVE" in lines[2] and "new=" not in lines[2]


def test_tail_from_the_trim_horizon_as_json_through_a_config(node: ServerProcess,
                                                             tmp_path: Path) -> None:
    ddb = client(node.url)
    table = _table(ddb, "replayed")
    for n in range(3):
        ddb.put_item(TableName=table, Item={"pk": {"S": f"k{n}"}})
    config = tmp_path / "cluster.toml"
    config.write_text(ClusterConfig("tail-test", (
        RegionConfig("far", "http://127.0.0.1:9", "http://127.0.0.1:10"),
        RegionConfig("near", node.url, "http://127.0.0.1:11"))).to_toml())
    tail = _tail(node, "--config", str(config), "--region", "near", "--table", table,
                 "--from", "trim-horizon", "--json", "--count", "3")
    out, err = tail.communicate(timeout=TIMEOUT_S)
    assert tail.returncode == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in records] == ["k0", "k1", "k2"]
    assert all(r["eventName"] == "INSERT" and r["eventID"].startswith("local:")
               for r in records)


def test_tail_refuses_a_table_without_a_stream_and_a_missing_table(node: ServerProcess
                                                                   ) -> None:
    create_table(client(node.url), "no_stream_here")
    for table, fragment in (("no_stream_here", "has no stream"),
                            ("missing_table", "ResourceNotFoundException")):
        tail = _tail(node, "--endpoint", node.url, "--table", table)
        _out, err = tail.communicate(timeout=TIMEOUT_S)
        assert tail.returncode == 1 and fragment in err, err


def test_tail_refuses_a_region_the_config_does_not_name(tmp_path: Path) -> None:
    config = tmp_path / "cluster.toml"
    config.write_text(ClusterConfig("tail-test", (
        RegionConfig("near", "http://127.0.0.1:9", "http://127.0.0.1:10"),)).to_toml())
    tail = _tail(None, "--config", str(config), "--region", "elsewhere", "--table", "t1x")
    _out, err = tail.communicate(timeout=TIMEOUT_S)
    assert tail.returncode == 2 and "region elsewhere is not in" in err
