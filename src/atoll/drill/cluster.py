"""The drill's cluster: the regions it drills and the simulated DNS naive clients use.

- `DrillCluster` starts N regions as real `atoll serve` processes (and can kill, stop and
  restart them); every region's peer endpoint in the topology is a fault proxy
  (faultproxy.py) in front of the node's real peer port (`atoll serve --peer-listen`),
  so links between regions can be cut, slowed or made lossy per direction while clients
  still reach every region. It runs the realistic configuration: `--auth required`,
  mutual TLS between regions (a cluster CA and region certificates made under
  `<root>/certs`), an admin key made by the first region (`<root>/credentials`) that the
  drill's clients sign with, and each region calling its peers from a loopback address
  of its own (`--peer-source`), by which the fault proxies tell callers apart.
- `ExistingCluster` is a running cluster named by its config: the drill routes its peer
  links through fault proxies by publishing a topology, and restores it afterwards.
- `SimulatedDns` answers `dynamodb.<region>.atoll.test` for the naive clients; the
  dns-empty fault removes a record.
"""

from __future__ import annotations

import datetime
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
from botocore.credentials import Credentials as Keys

from atoll.auth.certs import ClusterFiles, init_cluster, issue_region_cert
from atoll.client.signing import sign
from atoll.drill.faultproxy import FaultNetwork, FaultRules
from atoll.drill.ports import below_ephemeral
from atoll.topology.model import ClusterConfig, RegionConfig, topology_from_dict

REGION_NAMES = ("us-east", "eu-west", "ap-south", "us-west", "eu-north")
DNS_SUFFIX = ".atoll.test"
READY_TIMEOUT_S = 30.0


# this process's ports for the drill's listeners (ports.py: below the ephemeral range,
# none handed out twice); a caller that picks ports itself passes its own picker
free_port: Callable[[], int] = below_ephemeral()


Credentials = tuple[str, str]  # (access key id, secret)


def get_json(url: str, timeout_s: float = 2.0, credentials: Credentials | None = None) -> Any:
    """A node's JSON page, signed with `credentials` when given."""
    headers = sign(Keys(*credentials), "GET", url) if credentials is not None else {}
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
        return json.loads(response.read())


def read_credentials(path: Path) -> Credentials:
    """(key id, secret) from an AWS shared-credentials file a node wrote."""
    values = dict(line.split(" = ", 1) for line in path.read_text().splitlines()
                  if " = " in line)
    return values["aws_access_key_id"], values["aws_secret_access_key"]


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

    def __init__(self, root: Path, regions: int, seed: int, fault_drop_every: int = 0,
                 ports: Callable[[], int] | None = None) -> None:
        """`fault_drop_every`: nodes run with that deliberate defect (`atoll serve
        --fault-drop-every`), for the proof that the checker can fail. `ports`: where the
        listeners' ports come from (default: this module's `free_port`)."""
        self.root = root
        self.ids = REGION_NAMES[:regions]
        port = ports or free_port
        self.client_ports = {r: port() for r in self.ids}
        self.peer_ports = {r: port() for r in self.ids}  # the nodes' real listeners
        self.proxy_ports = {r: port() for r in self.ids}  # advertised peer endpoints
        self.sources = {r: f"127.0.0.{10 + i}" for i, r in enumerate(self.ids)}
        self.config = ClusterConfig("atoll-drill", tuple(
            RegionConfig(r, f"http://127.0.0.1:{self.client_ports[r]}",
                         f"https://127.0.0.1:{self.proxy_ports[r]}", SimulatedDns.name(r))
            for r in self.ids))
        root.mkdir(parents=True, exist_ok=True)
        self.config_path = root / "cluster.toml"
        self.config_path.write_text(self.config.to_toml())
        self.certs = ClusterFiles(root / "certs")
        _make_certs(self.certs, self.config)
        self.credentials_path = root / "credentials"
        self.credentials: Credentials | None = None  # once the first region made it
        self.rules = FaultRules(seed)
        self.network = FaultNetwork(self.rules)
        for r in self.ids:
            self.network.add(r, ("127.0.0.1", self.proxy_ports[r]),
                             ("127.0.0.1", self.peer_ports[r]), self.sources[r])
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.fault_drop_every = fault_drop_every

    def url(self, region: str) -> str:
        return f"http://127.0.0.1:{self.client_ports[region]}"

    def start_all(self) -> None:
        """Every region launched before any is waited for: the processes start side by
        side (a region whose peers are not up yet retries them, as in any cluster)."""
        for region in self.ids:
            self.launch(region)
        for region in self.ids:
            self.wait_healthy(region)
        self.credentials = read_credentials(self.credentials_path)
        credentials = self.credentials
        # the key reaches the other regions by replication
        wait_for(lambda: all(get_json(self.url(r) + "/_atoll/status", 1.0, credentials)
                             for r in self.ids), READY_TIMEOUT_S)

    def client_address(self, region: str) -> tuple[str, int]:
        return "127.0.0.1", self.client_ports[region]

    def drop_tables(self, tables: tuple[str, ...]) -> None:
        """Nothing to clean up: the whole cluster goes away."""

    def start(self, region: str, clock_offset_ms: int = 0) -> None:
        self.launch(region, clock_offset_ms)
        self.wait_healthy(region)

    def launch(self, region: str, clock_offset_ms: int = 0) -> None:
        """Start `region`'s process without waiting for it (`wait_healthy` waits)."""
        args = [sys.executable, "-m", "atoll", "serve", "--config", str(self.config_path),
                "--region", region, "--data-dir", str(self.root / region),
                "--peer-listen", f"127.0.0.1:{self.peer_ports[region]}",
                "--auth", "required", "--certs", str(self.certs.directory),
                "--peer-source", self.sources[region]]
        if region == self.ids[0]:  # the drill's key (nothing is made if it exists)
            args += ["--admin-credentials", str(self.credentials_path)]
        if clock_offset_ms:
            args += ["--clock-offset-ms", str(clock_offset_ms)]
        if self.fault_drop_every:
            args += ["--fault-drop-every", str(self.fault_drop_every)]
        log = open(self.root / f"{region}.log", "ab")
        self.procs[region] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)

    def wait_healthy(self, region: str) -> None:
        """Until the launched `region` answers /health (raise if it exits first)."""
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

    def __init__(self, config: ClusterConfig, seed: int,
                 credentials: Credentials | None = None,
                 ports: Callable[[], int] | None = None) -> None:
        self.config = config
        self.ports = ports or free_port  # the fault proxies' listeners
        self.credentials = credentials  # an admin key: publishing a topology needs one
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
        current = topology_from_dict(get_json(self.url(self.ids[0]) + "/_atoll/topology",
                                              credentials=self.credentials))
        self.original = current
        routed = []
        for region in current.regions:
            host, port = region.peer_address
            listen = ("127.0.0.1", self.ports())
            self.network.add(region.id, listen, (host, port), self._source_address(region.id))
            scheme = region.peer_endpoint.split("://", 1)[0]  # https: mutual TLS
            routed.append(RegionConfig(region.id, region.client_endpoints,
                                       f"{scheme}://{listen[0]}:{listen[1]}", region.name))
        self._publish(ClusterConfig(current.cluster_id, tuple(routed), current.generation + 1))

    def _publish(self, topology: ClusterConfig) -> None:
        url = self.url(self.ids[0]) + "/_atoll/topology"
        body = json.dumps(topology.to_dict()).encode()
        headers = {"Content-Type": "application/json"}
        if self.credentials is not None:
            headers = sign(Keys(*self.credentials), "POST", url, body, headers)
        request = urllib.request.Request(url, method="POST", data=body, headers=headers)
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            response.read()
        self.generation = topology.generation
        wait_for(lambda: all(get_json(self.url(r) + "/_atoll/topology",
                                      credentials=self.credentials)["generation"]
                          >= topology.generation for r in self.ids), 20)

    def _source_address(self, region: str) -> str | None:
        """The address `region` calls its peers from, if it has one of its own
        (`--peer-source`; `atoll cluster` gives each region one): over TLS it is how the
        fault proxies tell callers apart."""
        try:
            status = get_json(self.url(region) + "/_atoll/status", credentials=self.credentials)
        except (OSError, ValueError):
            return None
        source = (status.get("peer_auth") or {}).get("source_address")
        return source if isinstance(source, str) else None

    def kill(self, region: str) -> None:
        raise RuntimeError("a drill against a running cluster cannot stop its processes")

    def stop(self, region: str) -> None:
        self.kill(region)

    def start(self, region: str, clock_offset_ms: int = 0) -> None:
        self.kill(region)

    def drop_tables(self, tables: tuple[str, ...]) -> None:
        ddb = plain_client(self.url(self.ids[0]), self.credentials)
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


def plain_client(url: str, credentials: Credentials | None = None) -> Any:
    key_id, secret = credentials or ("drill", "drill")  # (any key: a cluster with auth off)
    return boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id=key_id, aws_secret_access_key=secret,
                        config=Config(retries={"total_max_attempts": 1}, connect_timeout=1,
                                      read_timeout=10))


def _make_certs(files: ClusterFiles, config: ClusterConfig) -> None:
    """The drill cluster's CA, data key and region certificates (as `atoll certs`)."""
    now = datetime.datetime.now(datetime.UTC)
    if not files.ca_cert.exists():
        init_cluster(files, config.cluster_id, now)
    for region in config.regions:
        if not files.region_cert(region.id).exists():
            issue_region_cert(files, region.id, ["127.0.0.1", "localhost"], now)


Cluster = DrillCluster | ExistingCluster
