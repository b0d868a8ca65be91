"""`atoll proxy` (a real subprocess) in front of a live 3-region cluster: plain boto3 and
the AWS CLI pointed at the proxy keep working through a SIGKILLed region, a hung one
(SIGSTOP) and an emptied DNS record, and traffic returns to the preferred region when
it is back. The proxy process resolves `*.atoll.test` names from a JSON file the test
edits (a `sitecustomize` on its PYTHONPATH): the simulated DNS."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from tests.integration.test_failover_client import FakeDns, Workload
from tests.support import (
    CREDENTIALS,
    REPO,
    ClusterProcesses,
    client,
    create_table,
    credentials_for,
    free_port,
    read_credentials,
    wait_until,
)

REGIONS = ("us-east", "eu-west", "ap-south")

_FAKE_DNS_MODULE = """
import json, os, socket
_real = socket.getaddrinfo
def _getaddrinfo(host, *args, **kwargs):
    if isinstance(host, str) and host.endswith(".atoll.test"):
        with open(os.environ["ATOLL_TEST_DNS"]) as records:
            address = json.load(records).get(host)
        if address is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        host = address
    return _real(host, *args, **kwargs)
socket.getaddrinfo = _getaddrinfo
"""


class FileDns:
    """The simulated DNS of the proxy process: records in a JSON file."""

    def __init__(self, root: Path) -> None:
        self.module_dir = root / "fakedns"
        self.module_dir.mkdir(parents=True, exist_ok=True)
        (self.module_dir / "sitecustomize.py").write_text(_FAKE_DNS_MODULE)
        self.path = root / "dns.json"
        self.records: dict[str, str] = {}
        self.write()

    def write(self) -> None:
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.records))
        os.replace(temporary, self.path)

    def env(self) -> dict[str, str]:
        path = os.pathsep.join(p for p in (str(self.module_dir), os.environ.get("PYTHONPATH"))
                               if p)
        return {**os.environ, "PYTHONPATH": path, "ATOLL_TEST_DNS": str(self.path)}


class ProxyProcess:
    """`atoll proxy` holding the cluster's key: the application signs with the same key
    (the proxy verifies it, then signs each request again for its region)."""

    def __init__(self, seeds: Sequence[str], tmp_path: Path, dns: FileDns,
                 name: str = "proxy", credentials: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, "-m", "atoll", "proxy", "--listen", f"127.0.0.1:{self.port}",
                "--prefer", ",".join(REGIONS), "--cache", str(tmp_path / "proxy-cache.json")]
        if credentials is not None:
            args += ["--credentials", str(credentials), "--profile", "atoll"]
            CREDENTIALS[self.url] = read_credentials(credentials)
        for seed in seeds:
            args += ["--seed", seed]
        self.log_path = tmp_path / f"{name}.log"
        self.proc = subprocess.Popen(args, stdout=open(self.log_path, "wb"),
                                     stderr=subprocess.STDOUT, cwd=REPO, env=dns.env())
        if not wait_until(self._healthy, 20):
            self.stop()
            raise RuntimeError(f"proxy did not start: {self.log_path.read_text()}")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=1):
                return True
        except OSError:
            return False

    def metrics(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/_atoll/proxy/metrics", timeout=2) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=10)


def _names(cluster: ClusterProcesses) -> dict[str, str]:
    return {r: f"http://dynamodb.{r}.atoll.test:{cluster.nodes[r].port}" for r in REGIONS}


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[ClusterProcesses, ProxyProcess, FileDns]]:
    cluster = ClusterProcesses(tmp_path, REGIONS).start()
    dns = FileDns(tmp_path)
    for region in REGIONS:
        dns.records[f"dynamodb.{region}.atoll.test"] = "127.0.0.1"
    dns.write()
    proxy = None
    try:  # seeded by name, as an application would configure it
        proxy = ProxyProcess(list(_names(cluster).values()), tmp_path, dns,
                             credentials=cluster.credentials_path)
        yield cluster, proxy, dns
    finally:
        if proxy is not None:
            proxy.stop()
        cluster.stop()


def test_plain_boto3_through_the_proxy_survives_a_killed_and_a_hung_region(
        setup: tuple[ClusterProcesses, ProxyProcess, FileDns]) -> None:
    cluster, proxy, _dns = setup
    ddb = client(proxy.url)
    table = create_table(ddb, "via_proxy")
    assert wait_until(lambda: all(
        "via_proxy" in client(cluster.url(r)).list_tables()["TableNames"] for r in REGIONS), 10)
    node = cluster.nodes["us-east"]
    with Workload(ddb, table) as work:
        time.sleep(1.0)
        assert wait_until(lambda: proxy.metrics()["route"] == "us-east", 5)
        killed_at = time.monotonic()
        node.kill()
        time.sleep(3.0)
        routed = proxy.metrics()["route"]
        killed = work.summary(killed_at)
        gap = work.longest_gap_s(killed_at)
        errors = (len(work.read_errors), len(work.write_errors))
        node.start()  # (c) the region is back
        back_at = time.monotonic()
        assert wait_until(lambda: proxy.metrics()["route"] == "us-east", 10)
        returned_s = time.monotonic() - back_at
        time.sleep(0.5)
        assert node.proc is not None
        stopped_at = time.monotonic()
        node.proc.send_signal(signal.SIGSTOP)
        try:
            time.sleep(3.0)
            hung_route = proxy.metrics()["route"]
            hung = work.summary(stopped_at)
            hung_gap = work.longest_gap_s(stopped_at)
        finally:
            node.proc.send_signal(signal.SIGCONT)
    m = proxy.metrics()
    print(f"\nproxy, SIGKILL of us-east: {killed}; route -> {routed}; back on us-east "
          f"{returned_s * 1000:.0f} ms after it served again"
          f"\nproxy, SIGSTOP of us-east for 3 s: {hung}; route -> {hung_route}"
          f"\nproxy totals: failovers {m['failovers']}, served_by {m['served_by']}")
    assert routed in ("eu-west", "ap-south") and hung_route in ("eu-west", "ap-south")
    assert gap <= 2.0 and hung_gap <= 2.0
    assert errors == (0, 0)
    assert work.read_errors == [] and work.write_errors == []
    assert len(work.counter_errors) <= 1  # at most the increment in flight at the kill
    assert m["served_by"].get("eu-west", 0) > 0

    def scraped() -> bytes:
        with urllib.request.urlopen(proxy.url + "/metrics", timeout=2) as response:
            return bytes(response.read())
    assert b"atoll_proxy_failovers_total" in scraped()
    # eu-west's health is its latest probe's (every 0.5 s, which a loaded machine can
    # time out now and then): healthy within a few probes
    assert wait_until(lambda: b'atoll_proxy_region_healthy{region="eu-west"} 1.0' in scraped(),
                      10), scraped().decode()[-2000:]


def test_the_aws_cli_and_an_empty_dns_record_through_the_proxy(
        setup: tuple[ClusterProcesses, ProxyProcess, FileDns], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    cluster, proxy, dns = setup
    name = "dynamodb.us-east.atoll.test"
    here = FakeDns()  # the same record for plain clients in this process
    here.records[name] = "127.0.0.1"
    monkeypatch.setattr(socket, "getaddrinfo", here.getaddrinfo)
    naive_url = _names(cluster)["us-east"]
    table = create_table(client(naive_url, cluster.nodes["us-east"].credentials), "cli_dns")
    ddb = client(proxy.url)
    assert wait_until(lambda: "cli_dns" in ddb.list_tables()["TableNames"], 10)
    with Workload(ddb, table) as work:
        time.sleep(0.5)
        emptied_at = time.monotonic()
        del dns.records[name], here.records[name]  # the 2025 failure: an empty record
        dns.write()
        with pytest.raises(botocore.exceptions.EndpointConnectionError):
            client(naive_url, cluster.nodes["us-east"].credentials).list_tables()
        # a proxy (re)started now, seeded only by the dead name, starts from its cache
        again = ProxyProcess([naive_url], tmp_path, dns, name="proxy-restarted",
                             credentials=cluster.credentials_path)
        try:
            through_again = client(again.url)
            through_again.put_item(TableName=table, Item={"pk": {"S": "again"}})
            assert "Item" in through_again.get_item(TableName=table, Key={"pk": {"S": "again"}})
            again_route = again.metrics()["route"]
        finally:
            again.stop()
        time.sleep(1.0)
        summary = work.summary(emptied_at)
        gap = work.longest_gap_s(emptied_at)
    print(f"\nproxy, us-east's DNS record emptied: {summary}; route {proxy.metrics()['route']}; "
          f"a proxy restarted with only the dead name as seed routed to {again_route}")
    assert work.read_errors == [] and work.write_errors == [] and work.counter_errors == []
    assert gap <= 2.0 and again_route == "us-east"
    assert wait_until(lambda: proxy.metrics()["route"] == "us-east", 5)
    key_id, secret = credentials_for(proxy.url)
    env = {**os.environ, "AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret,
           "AWS_DEFAULT_REGION": "us-east-1"}
    aws = [str(Path(sys.executable).parent / "aws"), "--endpoint-url", proxy.url]
    put = subprocess.run([*aws, "dynamodb", "put-item", "--table-name", table, "--item",
                          '{"pk": {"S": "from-cli"}}'], env=env, capture_output=True, timeout=60)
    assert put.returncode == 0, put.stderr
    got = subprocess.run([*aws, "dynamodb", "get-item", "--table-name", table, "--key",
                          '{"pk": {"S": "from-cli"}}'], env=env, capture_output=True, timeout=60)
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["Item"]["pk"] == {"S": "from-cli"}


def test_the_proxy_refuses_what_its_key_did_not_sign(
        setup: tuple[ClusterProcesses, ProxyProcess, FileDns]) -> None:
    """The proxy lends its key to no one: a request signed with another key, or not
    signed, is refused with DynamoDB's error before anything reaches a region."""
    cluster, proxy, _dns = setup
    served = proxy.metrics()["requests"]
    stranger = client(proxy.url, ("AKATSTRANGERKEY00001", "a" * 40))
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        stranger.list_tables()
    assert refused.value.response["Error"]["Code"] == "UnrecognizedClientException"
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config
    unsigned = boto3.client("dynamodb", endpoint_url=proxy.url, region_name="us-east-1",
                            config=Config(signature_version=UNSIGNED))
    with pytest.raises(botocore.exceptions.ClientError) as missing:
        unsigned.list_tables()
    assert missing.value.response["Error"]["Code"] == "MissingAuthenticationTokenException"
    assert proxy.metrics()["requests"] == served  # nothing was forwarded
    assert "TableNames" in client(proxy.url).list_tables()  # its own key works
