"""The failover client (`atoll.client.boto3_client`) against a live 3-region cluster:
the preferred region is SIGKILLed, its DNS name stops resolving, and it comes back.

Each scenario runs a bounded workload loop and measures failed requests and the longest
interval without a successful one (printed: `pytest -s` shows the figures)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

import atoll.client
from tests.support import ClusterProcesses, client, create_table, wait_until

REGIONS = ("us-east", "eu-west", "ap-south")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterProcesses]:
    cluster = ClusterProcesses(tmp_path, REGIONS).start()
    try:
        yield cluster
    finally:
        cluster.stop()


class Workload:
    """Puts and gets in a thread until stopped; records every outcome's time."""

    def __init__(self, ddb: Any, table: str, max_s: float = 60.0) -> None:
        self.ddb, self.table, self.max_s = ddb, table, max_s
        self.ok: list[float] = []
        self.read_errors: list[str] = []
        self.write_errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        started = time.monotonic()
        n = 0
        while not self._stop.is_set() and time.monotonic() - started < self.max_s:
            n += 1
            key = {"pk": {"S": f"k{n % 50}"}}
            try:
                self.ddb.put_item(TableName=self.table, Item={**key, "n": {"N": str(n)}})
                self.ok.append(time.monotonic())
            except botocore.exceptions.BotoCoreError as exc:
                self.write_errors.append(repr(exc))
            except botocore.exceptions.ClientError as exc:
                self.write_errors.append(repr(exc))
            try:
                self.ddb.get_item(TableName=self.table, Key=key)
                self.ok.append(time.monotonic())
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
                self.read_errors.append(repr(exc))
            time.sleep(0.005)

    def __enter__(self) -> Workload:
        self._thread.start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def longest_gap_s(self, since: float) -> float:
        times = [since] + [t for t in self.ok if t >= since]
        return max(b - a for a, b in zip(times, times[1:], strict=False)) if len(times) > 1 else 0.0


def _failover(cluster: ClusterProcesses, tmp_path: Path) -> Any:
    return atoll.client.boto3_client(seeds=[cluster.url(r) for r in REGIONS],
                                     region_preference=list(REGIONS),
                                     cache_path=tmp_path / "topology-cache.json")


def test_sigkill_of_the_preferred_region_fails_over_and_returns(
        cluster: ClusterProcesses, tmp_path: Path) -> None:
    ddb = _failover(cluster, tmp_path)
    table = create_table(ddb, "failover")
    assert wait_until(lambda: all(
        "failover" in client(cluster.url(r)).list_tables()["TableNames"] for r in REGIONS), 10)
    with Workload(ddb, table) as work:
        time.sleep(1.0)
        assert atoll.client.metrics(ddb)["route"] == "us-east"
        killed_at = time.monotonic()
        cluster.nodes["us-east"].kill()
        time.sleep(3.0)
        routed = atoll.client.metrics(ddb)["route"]
        gap = work.longest_gap_s(killed_at)
        cluster.nodes["us-east"].start()
        assert wait_until(lambda: atoll.client.metrics(ddb)["route"] == "us-east", 10)
        time.sleep(0.5)
    m = atoll.client.metrics(ddb)
    print(f"\nSIGKILL: longest gap {gap * 1000:.0f} ms, read errors {len(work.read_errors)}, "
          f"write errors {len(work.write_errors)}, failovers {m['failovers']}, "
          f"served_by {m['served_by']}")
    assert routed == "eu-west"
    assert gap <= 2.0
    assert work.read_errors == []
    assert m["failovers"] > 0 and m["served_by"]["eu-west"] > 0
    atoll.client.close(ddb)


class FakeDns:
    """Names under .atoll.test resolve from a dict (the simulated DNS record)."""

    def __init__(self) -> None:
        self.records: dict[str, str] = {}
        self._real = socket.getaddrinfo

    def getaddrinfo(self, host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".atoll.test"):
            if host not in self.records:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            host = self.records[host]
        return self._real(host, *args, **kwargs)


def test_an_empty_dns_record_does_not_stop_the_failover_client(
        cluster: ClusterProcesses, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dns = FakeDns()
    name = "dynamodb.us-east.atoll.test"
    dns.records[name] = "127.0.0.1"
    monkeypatch.setattr(socket, "getaddrinfo", dns.getaddrinfo)
    port = cluster.nodes["us-east"].port
    naive = client(f"http://{name}:{port}")
    ddb = _failover(cluster, tmp_path)
    table = create_table(naive, "dns")  # the name works while its record exists
    assert wait_until(lambda: all(
        "dns" in client(cluster.url(r)).list_tables()["TableNames"] for r in REGIONS), 10)
    with Workload(ddb, table) as work:
        time.sleep(0.5)
        emptied_at = time.monotonic()
        del dns.records[name]  # the 2025 failure: the record is empty
        # a client that connects now (a new process, a recycled connection) cannot
        fresh = client(f"http://{name}:{port}")
        with pytest.raises(botocore.exceptions.EndpointConnectionError):
            fresh.get_item(TableName=table, Key={"pk": {"S": "k1"}})
        time.sleep(2.0)
        gap = work.longest_gap_s(emptied_at)
    m = atoll.client.metrics(ddb)
    print(f"\nDNS empty: longest gap {gap * 1000:.0f} ms, read errors {len(work.read_errors)}, "
          f"write errors {len(work.write_errors)}, route {m['route']}")
    assert work.read_errors == [] and work.write_errors == []
    assert m["route"] == "us-east"  # addresses from the topology: no lookup at all
    atoll.client.close(ddb)


def test_topology_cache_survives_a_total_discovery_failure(
        cluster: ClusterProcesses, tmp_path: Path) -> None:
    ddb = _failover(cluster, tmp_path)
    atoll.client.close(ddb)
    # a new client whose only seed is dead still finds the regions from the cache
    dead = "http://127.0.0.1:1"
    again = atoll.client.boto3_client(seeds=[dead], region_preference=["eu-west"],
                                      cache_path=tmp_path / "topology-cache.json")
    assert again.list_tables()["TableNames"] == []
    assert atoll.client.metrics(again)["route"] == "eu-west"
    atoll.client.close(again)
    with pytest.raises(atoll.client.DiscoveryError):
        atoll.client.boto3_client(seeds=[dead], cache_path=tmp_path / "nothing.json")


def test_unsafe_writes_are_not_sent_twice() -> None:
    safe = atoll.client.retry_safe
    assert safe("GetItem", {}) and safe("Query", {}) and safe("BatchWriteItem", {})
    assert safe("PutItem", {"Item": {}})
    assert not safe("PutItem", {"ConditionExpression": "attribute_not_exists(pk)"})
    assert safe("UpdateItem", {"UpdateExpression": "SET a = :a REMOVE b"})
    assert not safe("UpdateItem", {"UpdateExpression": "SET a = a + :one"})
    assert not safe("UpdateItem", {"UpdateExpression": "ADD c :one"})
    assert not safe("UpdateItem", {"UpdateExpression": "SET l = list_append(l, :x)"})
    assert not safe("TransactWriteItems", {"ClientRequestToken": "t"})
    assert not safe("CreateTable", {})
