"""`atoll proxy` (a real subprocess) in front of a live 3-region cluster: plain boto3 and
the AWS CLI pointed at the proxy keep working through a SIGKILLed region and an emptied
DNS record, and traffic returns to the preferred region when it is back."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from tests.integration.test_failover_client import FakeDns, Workload
from tests.support import REPO, ClusterProcesses, client, create_table, free_port, wait_until

REGIONS = ("us-east", "eu-west", "ap-south")


class ProxyProcess:
    def __init__(self, cluster: ClusterProcesses, tmp_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, "-m", "atoll", "proxy", "--listen", f"127.0.0.1:{self.port}",
                "--prefer", ",".join(REGIONS), "--cache", str(tmp_path / "proxy-cache.json")]
        for region in REGIONS:
            args += ["--seed", cluster.url(region)]
        self.log_path = tmp_path / "proxy.log"
        self.proc = subprocess.Popen(args, stdout=open(self.log_path, "wb"),
                                     stderr=subprocess.STDOUT, cwd=REPO)
        if not wait_until(self._healthy, 20):
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
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[ClusterProcesses, ProxyProcess]]:
    cluster = ClusterProcesses(tmp_path, REGIONS).start()
    proxy = None
    try:
        proxy = ProxyProcess(cluster, tmp_path)
        yield cluster, proxy
    finally:
        if proxy is not None:
            proxy.stop()
        cluster.stop()


def test_plain_boto3_through_the_proxy_survives_a_killed_region_and_returns(
        setup: tuple[ClusterProcesses, ProxyProcess]) -> None:
    cluster, proxy = setup
    ddb = client(proxy.url)
    table = create_table(ddb, "via_proxy")
    assert wait_until(lambda: all(
        "via_proxy" in client(cluster.url(r)).list_tables()["TableNames"] for r in REGIONS), 10)
    with Workload(ddb, table) as work:
        time.sleep(1.0)
        assert proxy.metrics()["route"] == "us-east"
        killed_at = time.monotonic()
        cluster.nodes["us-east"].kill()
        time.sleep(3.0)
        routed = proxy.metrics()["route"]
        gap = work.longest_gap_s(killed_at)
        cluster.nodes["us-east"].start()
        assert wait_until(lambda: proxy.metrics()["route"] == "us-east", 10)
        time.sleep(0.5)
    m = proxy.metrics()
    print(f"\nproxy SIGKILL: longest gap {gap * 1000:.0f} ms, read errors "
          f"{len(work.read_errors)}, write errors {len(work.write_errors)}, "
          f"failovers {m['failovers']}, served_by {m['served_by']}")
    assert routed == "eu-west"
    assert gap <= 2.0
    assert work.read_errors == []
    assert m["served_by"].get("eu-west", 0) > 0
    with urllib.request.urlopen(proxy.url + "/metrics", timeout=2) as response:
        assert b'atoll_proxy_route{region="us-east"} 1.0' in response.read()


def test_the_aws_cli_and_an_empty_dns_record_through_the_proxy(
        setup: tuple[ClusterProcesses, ProxyProcess], monkeypatch: pytest.MonkeyPatch) -> None:
    cluster, proxy = setup
    dns = FakeDns()
    name = "dynamodb.us-east.atoll.test"
    dns.records[name] = "127.0.0.1"
    monkeypatch.setattr(socket, "getaddrinfo", dns.getaddrinfo)
    naive_url = f"http://{name}:{cluster.nodes['us-east'].port}"
    table = create_table(client(naive_url), "cli_dns")
    ddb = client(proxy.url)
    assert wait_until(lambda: "cli_dns" in ddb.list_tables()["TableNames"], 10)
    with Workload(ddb, table) as work:
        time.sleep(0.5)
        emptied_at = time.monotonic()
        del dns.records[name]
        with pytest.raises(botocore.exceptions.EndpointConnectionError):
            client(naive_url).list_tables()
        time.sleep(1.5)
        gap = work.longest_gap_s(emptied_at)
    print(f"\nproxy DNS empty: longest gap {gap * 1000:.0f} ms, errors "
          f"{len(work.read_errors) + len(work.write_errors)}")
    assert work.read_errors == [] and work.write_errors == []
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
           "AWS_DEFAULT_REGION": "us-east-1"}
    aws = [str(Path(sys.executable).parent / "aws"), "--endpoint-url", proxy.url]
    put = subprocess.run([*aws, "dynamodb", "put-item", "--table-name", table, "--item",
                          '{"pk": {"S": "from-cli"}}'], env=env, capture_output=True, timeout=60)
    assert put.returncode == 0, put.stderr
    got = subprocess.run([*aws, "dynamodb", "get-item", "--table-name", table, "--key",
                          '{"pk": {"S": "from-cli"}}'], env=env, capture_output=True, timeout=60)
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["Item"]["pk"] == {"S": "from-cli"}
