"""Clock offsets on a live 3-region cluster (issue 26 item 2), one region's clock moved by
`faketime` (libfaketime: the process's wall clock is an hour ahead) or by the node's own
clock offset.

- A region an hour ahead refuses writes with a retryable 503 ServiceUnavailableException
  while reads, replication and the other regions go on; the failover client writes
  elsewhere; status, /health and /metrics show the offsets and the refusal. Once its
  clock is right it takes writes again by itself (after a restart without faketime, and,
  an hour behind, when its clock is moved forward while it runs).
- What happens to a change stamped beyond the skew bound (here: a region an hour ahead
  allowed to write by a huge --max-clock-offset-ms): the receiving region applies and
  stores it with its own stamp (dropping it would leave the regions different for good),
  counts it (`clock_skew_bounded`), logs it, and does not let its own clock follow: its
  own later writes carry its own time.
"""

from __future__ import annotations

import glob
import re
import shutil
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from botocore.exceptions import ClientError

import atoll.client
from atoll.clock import hlc_physical_ms
from atoll.model.keys import encode_key_value
from tests.support import (
    ClusterProcesses,
    NodeDatabase,
    ServerProcess,
    client,
    create_table,
    node_json,
    wait_until,
)

REGIONS = ("us-east", "eu-west", "ap-south")
SKEWED = "ap-south"
HOUR_MS = 3_600_000
JUDGED_WITHIN_S = 10.0  # probes every 0.5 s; a loaded machine may need a few rounds


def _faketime(offset: str) -> list[str]:
    """A command prefix that runs the node with its wall clock moved by `offset` ("+1h"):
    libfaketime preloaded through `env`, which execs, so the node keeps the pid a test
    stops (the `faketime` wrapper forks, and would leave the node running)."""
    libraries = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    assert shutil.which("faketime") and libraries, \
        "faketime is not installed: `make system-tools` installs it (Debian: apt-get install faketime)"
    return ["env", f"LD_PRELOAD={libraries[0]}", f"FAKETIME={offset}"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcesses]:
    # Mutual TLS between the regions (the clock probes go over it), client ports with
    # auth off: a node whose machine clock is an hour off refuses every signed request
    # (outside SigV4's 5-minute window, as DynamoDB's endpoint would), and this module
    # talks to such nodes to see what they do with their writes.
    processes = ClusterProcesses(tmp_path_factory.mktemp("clock"), REGIONS,
                                 extra=["--auth", "off"])
    base_args = {r: list(n.args) for r, n in processes.nodes.items()}
    processes.base_args = base_args  # type: ignore[attr-defined]
    processes.start()
    ddb = client(processes.nodes["us-east"].url)
    create_table(ddb, "clock")
    assert wait_until(lambda: all(_has_table(n.url, "clock") for n in processes.nodes.values()),
                      20.0)
    try:
        yield processes
    finally:
        processes.stop()


def _has_table(url: str, table: str) -> bool:
    try:
        return table in client(url).list_tables()["TableNames"]
    except Exception:
        return False


def _restart(cluster: ClusterProcesses, region: str, prefix: list[str],
             extra: list[str]) -> ServerProcess:
    node = cluster.nodes[region]
    if node.proc is not None and node.proc.poll() is None:
        node.stop()
    node.args = [*prefix, *cluster.base_args[region], *extra]  # type: ignore[attr-defined]
    return node.start()


def _clock(url: str) -> dict[str, Any]:
    return dict(node_json(url, "/_atoll/status")["clock"])


def _put(url: str, key: str, value: str) -> None:
    client(url).put_item(TableName="clock", Item={"pk": {"S": key}, "v": {"S": value}})


def _get(url: str, key: str) -> dict[str, Any] | None:
    item = client(url).get_item(TableName="clock", Key={"pk": {"S": key}},
                                ConsistentRead=True).get("Item")
    return None if item is None else dict(item)


def _stored_hlc(node: ServerProcess, region: str, key: str) -> int:
    """The version stamp `region` stored for item `key`, read from its SQLite file."""
    with NodeDatabase(node, region) as db:
        (tid,) = db.one("SELECT tid FROM tables WHERE name=?", ("clock",))
        row = db.one("SELECT hlc FROM items WHERE tid=? AND pk=?",
                     (tid, encode_key_value({"S": key}, "S")))
    assert row is not None, f"{key} is not stored in {region}"
    return int(row[0])


def test_a_change_stamped_beyond_the_skew_bound_is_stored_with_its_stamp_but_not_followed(
        cluster: ClusterProcesses) -> None:
    ahead = _restart(cluster, SKEWED, _faketime("+1h"),
                     ["--max-clock-offset-ms", str(10 * HOUR_MS)])  # allowed to write
    east = cluster.nodes["us-east"]
    bounded_before = node_json(east.url, "/_atoll/status")["replication"]["clock_skew_bounded"]
    _put(ahead.url, "from-the-future", "an hour ahead")
    assert wait_until(lambda: _get(east.url, "from-the-future") is not None, 20.0)
    now_ms = int(time.time() * 1000)
    # stored with the origin's stamp, an hour ahead: not dropped, not rewritten
    future = hlc_physical_ms(_stored_hlc(east, "us-east", "from-the-future"))
    assert HOUR_MS - 60_000 < future - now_ms < HOUR_MS + 60_000
    status = node_json(east.url, "/_atoll/status")["replication"]
    assert status["clock_skew_bounded"] > bounded_before
    assert "ahead of this region's clock" in east.log()
    # us-east's clock followed at most by the skew bound (5 s): its own writes carry its time
    _put(east.url, "local-after", "us-east's own time")
    local = hlc_physical_ms(_stored_hlc(east, "us-east", "local-after"))
    assert local - int(time.time() * 1000) < 10_000


def test_a_region_an_hour_ahead_refuses_writes_until_its_clock_is_corrected(
        cluster: ClusterProcesses) -> None:
    skewed = _restart(cluster, SKEWED, _faketime("+1h"), [])
    east = cluster.nodes["us-east"]
    assert wait_until(lambda: _clock(skewed.url)["refusing_writes"], JUDGED_WITHIN_S), \
        _clock(skewed.url)
    clock = _clock(skewed.url)
    for peer in ("us-east", "eu-west"):  # peers' clocks minus ours: an hour behind
        estimate = clock["peers"][peer]
        assert abs(estimate["offset_ms"] + HOUR_MS) < 5_000 and estimate["beyond_max"]
    # writes: a retryable 503 with DynamoDB's error shape (boto3's retries are off here)
    with pytest.raises(ClientError) as refused:
        _put(skewed.url, "refused", "x")
    error = refused.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert error["Error"]["Code"] == "ServiceUnavailableException"
    assert "clock" in error["Error"]["Message"]
    with pytest.raises(ClientError):
        client(skewed.url).delete_item(TableName="clock", Key={"pk": {"S": "from-the-future"}})
    # reads are served, and replication in goes on
    assert _get(skewed.url, "from-the-future") is not None
    _put(east.url, "while-refusing", "from us-east")
    assert wait_until(lambda: _get(skewed.url, "while-refusing") is not None, 20.0)
    # the correct regions see the skewed one an hour ahead (once a probe of the restarted
    # node came back: until then the estimate is the old process's) and take writes
    assert wait_until(lambda: abs((_clock(east.url)["peers"][SKEWED] or {"offset_ms": 0})
                                  ["offset_ms"] - HOUR_MS) < 5_000, JUDGED_WITHIN_S), \
        _clock(east.url)
    east_clock = _clock(east.url)
    assert not east_clock["refusing_writes"]
    assert abs(east_clock["peers"]["eu-west"]["offset_ms"]) < 500
    _put(cluster.nodes["eu-west"].url, "eu-takes-writes", "yes")
    # the operator sees it: /health detail, status, /metrics
    health = node_json(skewed.url, "/health")
    assert health["status"] == "degraded" and "clock" in health["detail"][0]
    assert node_json(east.url, "/health")["status"] == "ok"
    with urllib.request.urlopen(skewed.url + "/metrics", timeout=5) as response:
        metrics = response.read().decode()
    assert "atoll_clock_refusing_writes 1.0" in metrics
    offset_s = re.search(r'^atoll_clock_offset_seconds\{peer="us-east"\} (\S+)$', metrics, re.M)
    assert offset_s is not None and abs(float(offset_s.group(1)) + 3600) < 5, metrics[-3000:]
    assert "atoll_degraded 1.0" in metrics
    # a failover client that prefers the skewed region writes elsewhere
    ddb = atoll.client.boto3_client(seeds=[skewed.url], region_preference=[SKEWED, *REGIONS[:2]],
                                    cache_path=cluster.root / "route.json")
    try:
        ddb.put_item(TableName="clock", Item={"pk": {"S": "failed-over"}, "v": {"S": "ok"}})
        assert atoll.client.metrics(ddb)["served_by"].get(SKEWED, 0) == 0
    finally:
        atoll.client.close(ddb)
    assert _get(east.url, "failed-over") is not None
    assert "refusing writes" in skewed.log()

    # corrected by a restart without faketime: writes are taken again
    fixed = _restart(cluster, SKEWED, [], [])
    assert wait_until(lambda: _clock(fixed.url)["probes"] >= 2, JUDGED_WITHIN_S)
    assert not _clock(fixed.url)["refusing_writes"]
    _put(fixed.url, "after-restart", "taken")

    # an hour behind, then corrected while it runs (its clock moved forward): refuses,
    # then recovers by itself
    behind = _restart(cluster, SKEWED, [], ["--clock-offset-ms", str(-HOUR_MS),
                                            "--settable-clock"])
    assert wait_until(lambda: _clock(behind.url)["refusing_writes"], JUDGED_WITHIN_S)
    with pytest.raises(ClientError):
        _put(behind.url, "refused-behind", "x")
    request = urllib.request.Request(behind.url + "/_atoll/clock", method="POST",
                                     data=orjson.dumps({"advance_ms": HOUR_MS}))
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
    assert wait_until(lambda: not _clock(behind.url)["refusing_writes"], JUDGED_WITHIN_S), \
        _clock(behind.url)
    _put(behind.url, "recovered", "at run time")
    assert wait_until(lambda: _get(east.url, "recovered") is not None, 20.0)
    assert node_json(behind.url, "/health")["status"] == "ok"
    assert "accepting writes again" in behind.log()
