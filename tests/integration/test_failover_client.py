"""The failover client (`atoll.client.boto3_client`) against a live 3-region cluster: the
preferred region is SIGKILLed (and comes back), hung (SIGSTOP), and its DNS name stops
resolving.

Each scenario runs a bounded workload through the client — one thread of idempotent
puts and reads, one of non-idempotent counter increments — and measures failed
requests and the longest interval without a successful one (printed: `pytest -s`)."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

import atoll.client
from tests.support import ClusterProcesses, client, create_table, credentials_for, wait_until

REGIONS = ("us-east", "eu-west", "ap-south")
MAX_WORKLOAD_S = 60.0
MAX_REQUESTS = 100_000
_ERRORS = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterProcesses]:
    cluster = ClusterProcesses(tmp_path, REGIONS).start()
    try:
        yield cluster
    finally:
        cluster.stop()


class Workload:
    """Requests in two threads until stopped (bounded in time and count), every outcome
    recorded: thread 1 puts and reads (both safe to fail over), thread 2 increments a
    counter with UpdateItem ADD (not safe: an attempt that may have reached a region is
    never sent again, so an increment in flight at a crash can surface an error)."""

    def __init__(self, ddb: Any, table: str, counter: bool = True) -> None:
        self.ddb, self.table = ddb, table
        self.ok: list[float] = []
        self.read_errors: list[str] = []
        self.write_errors: list[str] = []
        self.counter_errors: list[str] = []
        self.increments = 0
        self.stale_reads = 0  # a read older than this thread's own acknowledged put
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._puts_and_gets, daemon=True)]
        if counter:
            self._threads.append(threading.Thread(target=self._increments, daemon=True))
        self._started = 0.0

    def _running(self, n: int) -> bool:
        return (not self._stop.is_set() and n < MAX_REQUESTS
                and time.monotonic() - self._started < MAX_WORKLOAD_S)

    def _puts_and_gets(self) -> None:
        n = 0
        written: dict[str, int] = {}
        while self._running(n):
            n += 1
            key = {"pk": {"S": f"k{n % 50}"}}
            try:
                self.ddb.put_item(TableName=self.table, Item={**key, "n": {"N": str(n)}})
                self.ok.append(time.monotonic())
                written[key["pk"]["S"]] = n
            except _ERRORS as exc:
                self.write_errors.append(repr(exc))
            try:
                item = self.ddb.get_item(TableName=self.table, Key=key).get("Item")
                self.ok.append(time.monotonic())
                seen = int(item["n"]["N"]) if item else 0
                if seen < written.get(key["pk"]["S"], 0):
                    self.stale_reads += 1  # replication is asynchronous: after a failover
            except _ERRORS as exc:
                self.read_errors.append(repr(exc))
            time.sleep(0.002)

    def _increments(self) -> None:
        n = 0
        while self._running(n):
            n += 1
            try:
                self.ddb.update_item(TableName=self.table, Key={"pk": {"S": "counter"}},
                                     UpdateExpression="ADD hits :one",
                                     ExpressionAttributeValues={":one": {"N": "1"}})
                self.increments += 1
                self.ok.append(time.monotonic())
            except _ERRORS as exc:
                self.counter_errors.append(repr(exc))
            time.sleep(0.01)

    def __enter__(self) -> Workload:
        self._started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def longest_gap_s(self, since: float, until: float | None = None) -> float:
        """The longest time between `since` and `until` (default now) with no request
        succeeding."""
        until = time.monotonic() if until is None else until
        times = [since] + sorted(t for t in self.ok if since <= t <= until) + [until]
        return max(b - a for a, b in zip(times, times[1:]))

    def summary(self, since: float) -> str:
        return (f"longest gap {self.longest_gap_s(since) * 1000:.0f} ms, errors: reads "
                f"{len(self.read_errors)}, puts {len(self.write_errors)}, increments "
                f"{len(self.counter_errors)} (of {self.increments} done); reads older than "
                f"the thread's own acknowledged put: {self.stale_reads}")


def keys(cluster: ClusterProcesses) -> dict[str, str]:
    """The cluster's admin key as boto3 arguments (an application passes its own)."""
    key_id, secret = cluster.nodes["us-east"].credentials
    return {"aws_access_key_id": key_id, "aws_secret_access_key": secret}


def failover_client(seeds: list[str], tmp_path: Path, **kwargs: Any) -> Any:
    key_id, secret = credentials_for(seeds[0])
    kwargs.setdefault("aws_access_key_id", key_id)
    kwargs.setdefault("aws_secret_access_key", secret)
    return atoll.client.boto3_client(seeds=seeds, region_preference=list(REGIONS),
                                      cache_path=tmp_path / "topology-cache.json", **kwargs)


def _replicated(cluster: ClusterProcesses, table: str) -> bool:
    return all(table in client(cluster.url(r)).list_tables()["TableNames"] for r in REGIONS)


def test_sigkill_of_the_preferred_region_fails_over_and_returns(
        cluster: ClusterProcesses, tmp_path: Path) -> None:
    ddb = failover_client([cluster.url(r) for r in REGIONS], tmp_path)
    table = create_table(ddb, "failover")
    assert wait_until(lambda: _replicated(cluster, table), 10)
    with Workload(ddb, table) as work:
        time.sleep(1.0)
        assert wait_until(lambda: atoll.client.metrics(ddb)["route"] == "us-east", 5)
        killed_at = time.monotonic()
        cluster.nodes["us-east"].kill()
        time.sleep(3.0)
        routed = atoll.client.metrics(ddb)["route"]
        outage = work.summary(killed_at)
        gap = work.longest_gap_s(killed_at)
        errors_in_outage = (len(work.read_errors), len(work.write_errors))
        cluster.nodes["us-east"].start()  # (c) the region is back
        back_at = time.monotonic()
        assert wait_until(lambda: atoll.client.metrics(ddb)["route"] == "us-east", 10)
        returned_s = time.monotonic() - back_at
        time.sleep(0.5)
    m = atoll.client.metrics(ddb)
    print(f"\nfailover client, SIGKILL of us-east: {outage}; route -> {routed}; "
          f"back on us-east {returned_s * 1000:.0f} ms after it served again; "
          f"failovers {m['failovers']}, served_by {m['served_by']}; stale reads over the "
          f"whole run (return included) {work.stale_reads}")
    assert routed in ("eu-west", "ap-south")  # eu-west unless a probe of it was slow
    assert gap <= 2.0
    assert errors_in_outage == (0, 0)  # reads and idempotent puts: never an error
    assert len(work.counter_errors) <= 1  # at most the increment in flight at the kill
    assert work.read_errors == [] and work.write_errors == []
    assert m["served_by"].get("eu-west", 0) + m["served_by"].get("ap-south", 0) > 0
    atoll.client.close(ddb)


def test_a_hung_preferred_region_is_left_within_a_second(
        cluster: ClusterProcesses, tmp_path: Path) -> None:
    ddb = failover_client([cluster.url(r) for r in REGIONS], tmp_path)
    table = create_table(ddb, "hung")
    assert wait_until(lambda: _replicated(cluster, table), 10)
    node = cluster.nodes["us-east"]
    assert node.proc is not None
    with Workload(ddb, table) as work:
        time.sleep(1.0)
        stopped_at = time.monotonic()
        node.proc.send_signal(signal.SIGSTOP)  # connections are accepted, never answered
        try:
            time.sleep(3.0)
            routed = atoll.client.metrics(ddb)["route"]
            summary = work.summary(stopped_at)
            gap = work.longest_gap_s(stopped_at)
        finally:
            node.proc.send_signal(signal.SIGCONT)
        assert wait_until(lambda: atoll.client.metrics(ddb)["route"] == "us-east", 10)
    print(f"\nfailover client, SIGSTOP of us-east for 3 s: {summary}; route -> {routed}")
    assert routed in ("eu-west", "ap-south")
    assert gap <= 2.0
    # the increment in flight waits for the hung region (within the 5 s budget) and gets
    # its answer when it resumes: nothing surfaces
    assert work.read_errors == [] and work.write_errors == [] and work.counter_errors == []
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
    names = {r: f"http://dynamodb.{r}.atoll.test:{cluster.nodes[r].port}" for r in REGIONS}
    for region in REGIONS:
        dns.records[f"dynamodb.{region}.atoll.test"] = "127.0.0.1"
    monkeypatch.setattr(socket, "getaddrinfo", dns.getaddrinfo)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # the default cache place
    # the application knows the regions by name: discovery goes through DNS once
    ddb = atoll.client.boto3_client(seeds=list(names.values()), region_preference=REGIONS,
                                    **keys(cluster))
    table = create_table(client(names["us-east"], cluster.nodes["us-east"].credentials), "dns")  # the name works while it resolves
    assert wait_until(lambda: _replicated(cluster, table), 10)
    with Workload(ddb, table) as work:
        time.sleep(0.5)
        emptied_at = time.monotonic()
        del dns.records["dynamodb.us-east.atoll.test"]  # the 2025 failure: an empty record
        # a plain client configured with the name cannot connect any more
        with pytest.raises(botocore.exceptions.EndpointConnectionError):
            client(names["us-east"], cluster.nodes["us-east"].credentials).get_item(
                TableName=table, Key={"pk": {"S": "k1"}})
        # a new process whose only seed is that name starts from the cached topology
        fresh = atoll.client.boto3_client(seeds=[names["us-east"]], region_preference=REGIONS,
                                          **keys(cluster))
        assert (tmp_path / "xdg" / "atoll" / "atoll-test.json").exists()
        fresh.put_item(TableName=table, Item={"pk": {"S": "fresh"}})
        assert "Item" in fresh.get_item(TableName=table, Key={"pk": {"S": "fresh"}})
        time.sleep(2.0)
        summary = work.summary(emptied_at)
        gap = work.longest_gap_s(emptied_at)
    m = atoll.client.metrics(ddb)
    print(f"\nfailover client, us-east's DNS record emptied: {summary}; route {m['route']}; "
          f"a new client seeded only by the dead name routed to "
          f"{atoll.client.metrics(fresh)['route']}")
    assert work.read_errors == [] and work.write_errors == [] and work.counter_errors == []
    assert gap <= 2.0
    # addresses come from the topology: us-east keeps serving, no failover was needed
    assert m["failovers"] == 0
    assert wait_until(lambda: atoll.client.metrics(ddb)["route"] == "us-east", 5)
    assert atoll.client.metrics(fresh)["route"] == "us-east"
    atoll.client.close(fresh)
    atoll.client.close(ddb)
