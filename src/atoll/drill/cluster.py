"""The drill's cluster: the regions it drills and the simulated DNS naive clients use.

- `DrillCluster` starts N regions as real `atoll serve` processes (and can kill, stop and
  restart them); every region's peer endpoint in the topology is a fault proxy
  (faultproxy.py) in front of the node's real peer port (`atoll serve --peer-listen`),
  so links between regions can be cut, slowed or made lossy per direction while clients
  still reach every region.
- `ExistingCluster` is a running cluster named by its config: the drill routes its peer
  links through fault proxies by publishing a topology, and restores it afterwards.
- `SimulatedDns` answers `dynamodb.<region>.atoll.test` for the naive clients; the
  dns-empty fault removes a record.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
from botocore.config import Config

from atoll.drill.faultproxy import FaultNetwork, FaultRules
from atoll.topology.model import ClusterConfig, RegionConfig, topology_from_dict

REGION_NAMES = ("us-east", "eu-west", "ap-south", "us-west", "eu-north")
DNS_SUFFIX = ".atoll.test"
READY_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str, timeout_s: float = 2.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310
        return json.loads(response.read())


def wait_for(predicate: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (OSError, botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
            pass
        time.sleep(0.1)
    raise RuntimeError("the cluster did not get ready in time")


# --- the simulated DNS: names under .atoll.test, for the naive clients -----------------

class SimulatedDns:
    """Resolves `dynamodb.<region>.atoll.test` from a dict; the dns-empty fault removes a
    record (what happened to DynamoDB's endpoint in 2025). Installed process-wide."""

    def __init__(self) -> None:
        self.records: dict[str, str] = {}
        self._real = socket.getaddrinfo

    @staticmethod
    def name(region: str) -> str:
        """The DNS name of a region's client endpoint."""
        return f"dynamodb.{region}{DNS_SUFFIX}"

    def getaddrinfo(self, host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(DNS_SUFFIX):
            if host not in self.records:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            host = self.records[host]
        return self._real(host, *args, **kwargs)

    @contextmanager
    def installed(self) -> Iterator[SimulatedDns]:
        socket.getaddrinfo = self.getaddrinfo  # type: ignore[assignment]
        try:
            yield self
        finally:
            socket.getaddrinfo = self._real


# --- the cluster ---------------------------------------------------------------------

class DrillCluster:
    """N regions as real `atoll serve` processes, peer links through fault proxies."""

    def __init__(self, root: Path, regions: int, seed: int, fault_drop_every: int = 0) -> None:
        """`fault_drop_every`: nodes run with that deliberate defect (`atoll serve
        --fault-drop-every`), for the proof that the checker can fail."""
        self.root = root
        self.ids = REGION_NAMES[:regions]
        self.client_ports = {r: free_port() for r in self.ids}
        self.peer_ports = {r: free_port() for r in self.ids}  # the nodes' real listeners
        self.proxy_ports = {r: free_port() for r in self.ids}  # advertised peer endpoints
        self.config = ClusterConfig("atoll-drill", tuple(
            RegionConfig(r, f"http://127.0.0.1:{self.client_ports[r]}",
                         f"http://127.0.0.1:{self.proxy_ports[r]}", SimulatedDns.name(r))
            for r in self.ids))
        root.mkdir(parents=True, exist_ok=True)
        self.config_path = root / "cluster.toml"
        self.config_path.write_text(self.config.to_toml())
        self.rules = FaultRules(seed)
        self.network = FaultNetwork(self.rules)
        for r in self.ids:
            self.network.add(r, ("127.0.0.1", self.proxy_ports[r]),
                             ("127.0.0.1", self.peer_ports[r]))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.fault_drop_every = fault_drop_every

    def url(self, region: str) -> str:
        return f"http://127.0.0.1:{self.client_ports[region]}"

    def start_all(self) -> None:
        for region in self.ids:
            self.start(region)

    def client_address(self, region: str) -> tuple[str, int]:
        return "127.0.0.1", self.client_ports[region]

    def drop_tables(self, tables: tuple[str, ...]) -> None:
        """Nothing to clean up: the whole cluster goes away."""

    def start(self, region: str, clock_offset_ms: int = 0) -> None:
        args = [sys.executable, "-m", "atoll", "serve", "--config", str(self.config_path),
                "--region", region, "--data-dir", str(self.root / region),
                "--peer-listen", f"127.0.0.1:{self.peer_ports[region]}"]
        if clock_offset_ms:
            args += ["--clock-offset-ms", str(clock_offset_ms)]
        if self.fault_drop_every:
            args += ["--fault-drop-every", str(self.fault_drop_every)]
        log = open(self.root / f"{region}.log", "ab")
        self.procs[region] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.procs[region].poll() is not None:
                raise RuntimeError(f"{region} exited: see {self.root / (region + '.log')}")
            try:
                get_json(self.url(region) + "/health", 0.5)
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{region} did not become healthy")

    def kill(self, region: str) -> None:
        proc = self.procs.pop(region)
        proc.kill()
        proc.wait(timeout=10)

    def stop(self, region: str) -> None:
        proc = self.procs.pop(region)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)

    def close(self) -> None:
        for region in list(self.procs):
            try:
                self.stop(region)
            except (subprocess.TimeoutExpired, OSError):
                self.kill(region)
        self.network.close()


class ExistingCluster:
    """A running cluster named by its config (`atoll drill --config`). The drill cannot
    stop or restart its processes, so it runs only the scenarios that need none:
    dns-empty (client side) and partition / slow-wan, for which it puts its fault
    proxies into the peer paths through the cluster's own topology — a new generation
    whose peer endpoints are the proxies — and restores the old endpoints (at a newer
    generation still) when it is done."""

    SCENARIOS = ("dns-empty", "partition", "slow-wan")

    def __init__(self, config: ClusterConfig, seed: int) -> None:
        self.config = config
        self.ids = tuple(r.id for r in config.regions)
        self.rules = FaultRules(seed)
        self.network = FaultNetwork(self.rules)
        self.original: ClusterConfig | None = None
        self.generation = 0

    def url(self, region: str) -> str:
        return self.config.region(region).client_endpoint

    def client_address(self, region: str) -> tuple[str, int]:
        return self.config.region(region).client_address

    def start_all(self) -> None:
        current = topology_from_dict(get_json(self.url(self.ids[0]) + "/_atoll/topology"))
        self.original = current
        routed = []
        for region in current.regions:
            host, port = region.peer_address
            listen = ("127.0.0.1", free_port())
            self.network.add(region.id, listen, (host, port))
            routed.append(RegionConfig(region.id, region.client_endpoints,
                                       f"http://{listen[0]}:{listen[1]}", region.name))
        self._publish(ClusterConfig(current.cluster_id, tuple(routed), current.generation + 1))

    def _publish(self, topology: ClusterConfig) -> None:
        request = urllib.request.Request(
            self.url(self.ids[0]) + "/_atoll/topology", method="POST",
            data=json.dumps(topology.to_dict()).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            response.read()
        self.generation = topology.generation
        wait_for(lambda: all(get_json(self.url(r) + "/_atoll/topology")["generation"]
                          >= topology.generation for r in self.ids), 20)

    def kill(self, region: str) -> None:
        raise RuntimeError("a drill against a running cluster cannot stop its processes")

    def stop(self, region: str) -> None:
        self.kill(region)

    def start(self, region: str, clock_offset_ms: int = 0) -> None:
        self.kill(region)

    def drop_tables(self, tables: tuple[str, ...]) -> None:
        ddb = plain_client(self.url(self.ids[0]))
        for table in tables:
            try:
                ddb.delete_table(TableName=table)
            except botocore.exceptions.ClientError:
                pass

    def close(self) -> None:
        if self.original is not None:  # back to the real peer endpoints, newer generation
            try:
                self._publish(ClusterConfig(self.original.cluster_id, self.original.regions,
                                            self.generation + 1))
            except (OSError, RuntimeError) as exc:
                print(f"atoll drill: could not restore the topology: {exc}; post "
                      f"{self.original.to_dict()} at a newer generation", file=sys.stderr)
        self.network.close()


def plain_client(url: str) -> Any:
    return boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="drill", aws_secret_access_key="drill",
                        config=Config(retries={"total_max_attempts": 1}, connect_timeout=1,
                                      read_timeout=10))


Cluster = DrillCluster | ExistingCluster
