"""`atoll drill`: a fresh local cluster, a recorded workload through failover clients, a
fault at a set time, then the invariants (checker.py) and the figures (report.py).

Timeline of one scenario of D seconds: the workload starts; at 0.25·D the fault begins;
at 0.6·D it is healed; at D the workload stops; then the drill waits (bounded) until every
region holds the same data, reads every region's contents and conflict log, and checks.

Every region's peer endpoint in the topology is a fault proxy (faultproxy.py) in front of
the node's real peer port (`atoll serve --peer-listen`), so links between regions can be
cut, slowed or made lossy per direction while clients still reach every region.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
from botocore.config import Config

import atoll.client
from atoll.clock import hlc_physical_ms
from atoll.drill.checker import CheckResult, check
from atoll.drill.faultproxy import FaultNetwork, FaultRules, LinkFault
from atoll.topology.model import ClusterConfig, RegionConfig, topology_from_dict

SCENARIOS = ("region-down", "dns-empty", "partition", "slow-wan", "clock-skew")
REGION_NAMES = ("us-east", "eu-west", "ap-south", "us-west", "eu-north")
TABLES = ("drill_items", "drill_orders")
DNS_SUFFIX = ".atoll.test"
CLOCK_SKEW_MS = 3000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get_json(url: str, timeout_s: float = 2.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310
        return json.loads(response.read())


# --- the simulated DNS: names under .atoll.test, for the naive clients -----------------

class SimulatedDns:
    """Resolves `dynamodb.<region>.atoll.test` from a dict; the dns-empty fault removes a
    record (what happened to DynamoDB's endpoint in 2025). Installed process-wide."""

    def __init__(self) -> None:
        self.records: dict[str, str] = {}
        self._real = socket.getaddrinfo

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

    def __init__(self, root: Path, regions: int, seed: int, env: dict[str, str] | None = None
                 ) -> None:
        self.root = root
        self.ids = REGION_NAMES[:regions]
        self.client_ports = {r: _free_port() for r in self.ids}
        self.peer_ports = {r: _free_port() for r in self.ids}  # the nodes' real listeners
        self.proxy_ports = {r: _free_port() for r in self.ids}  # advertised peer endpoints
        self.config = ClusterConfig("atoll-drill", tuple(
            RegionConfig(r, f"http://127.0.0.1:{self.client_ports[r]}",
                         f"http://127.0.0.1:{self.proxy_ports[r]}", f"dynamodb.{r}{DNS_SUFFIX}")
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
        self.env = env or {}

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
        log = open(self.root / f"{region}.log", "ab")
        self.procs[region] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                              env={**os.environ, **self.env})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.procs[region].poll() is not None:
                raise RuntimeError(f"{region} exited: see {self.root / (region + '.log')}")
            try:
                _get_json(self.url(region) + "/health", 0.5)
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
        current = topology_from_dict(_get_json(self.url(self.ids[0]) + "/_atoll/topology"))
        self.original = current
        routed = []
        for region in current.regions:
            host, port = region.peer_address
            listen = ("127.0.0.1", _free_port())
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
        _wait(lambda: all(_get_json(self.url(r) + "/_atoll/topology")["generation"]
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


# --- the workload --------------------------------------------------------------------

@dataclass
class Recorder:
    ops: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, op: dict[str, Any]) -> None:
        with self.lock:
            self.ops.append(op)


class Worker(threading.Thread):
    """One client thread: its own keys, one request at a time, paced to `rate`/s."""

    def __init__(self, name: str, kind: str, make_client: Callable[[], Any], rate: float,
                 seed: int, recorder: Recorder, stop: threading.Event,
                 router_of: Callable[[Any], Any] | None = None,
                 tables: tuple[str, str] = TABLES) -> None:
        super().__init__(name=name, daemon=True)
        self.kind = kind
        self.make_client = make_client
        self.rate = rate
        self.random = random.Random(seed)
        self.recorder = recorder
        self.stop_event = stop
        self.router_of = router_of
        self.n = 0
        self.tables = tables

    def run(self) -> None:
        ddb = self.make_client()
        started = time.monotonic()
        recycle_at = started + 1.0
        while not self.stop_event.is_set():
            now = time.monotonic()
            if self.kind == "naive" and now >= recycle_at:
                ddb = self.make_client()  # new connections, new name lookups
                recycle_at = now + 1.0
            self.n += 1
            self._one(ddb)
            delay = started + self.n / self.rate - time.monotonic()
            if delay > 0:
                self.stop_event.wait(delay)

    def _one(self, ddb: Any) -> None:
        roll = self.random.random()
        table = self.tables[self.random.randrange(len(self.tables))]
        key = f"{self.name}-{self.random.randrange(40)}"
        value = f"{self.name}-{self.n}"
        item_key = {"pk": {"S": key}}
        op: dict[str, Any] = {"kind": "", "table": table, "key": key, "value": value,
                              "client": self.kind, "worker": self.name, "ok": False,
                              "unknown": False}
        if roll < 0.30:
            op["kind"] = "put"
            call = lambda: ddb.put_item(TableName=table, Item={**item_key, "v": {"S": value}})  # noqa: E731
        elif roll < 0.45:
            op["kind"] = "update"
            call = lambda: ddb.update_item(  # noqa: E731
                TableName=table, Key=item_key, UpdateExpression="SET v = :v",
                ExpressionAttributeValues={":v": {"S": value}})
        elif roll < 0.50:
            op["kind"], op["value"] = "delete", None
            call = lambda: ddb.delete_item(TableName=table, Key=item_key)  # noqa: E731
        elif roll < 0.55:
            op["kind"] = "cput"
            call = lambda: ddb.put_item(  # noqa: E731
                TableName=table, Item={**item_key, "v": {"S": value}},
                ConditionExpression="attribute_not_exists(pk)")
        elif roll < 0.65:
            op["kind"], op["table"], op["value"] = "add", self.tables[0], None
            op["key"] = f"{self.name}-counter"
            call = lambda: ddb.update_item(  # noqa: E731
                TableName=self.tables[0], Key={"pk": {"S": op["key"]}},
                UpdateExpression="ADD c :one", ExpressionAttributeValues={":one": {"N": "1"}})
        elif roll < 0.90:
            op["kind"], op["value"] = "get", None
            call = lambda: ddb.get_item(TableName=table, Key=item_key)  # noqa: E731
        else:
            op["kind"], op["value"], op["key"] = "query", None, key
            call = lambda: ddb.query(  # noqa: E731
                TableName=table, KeyConditionExpression="pk = :k",
                ExpressionAttributeValues={":k": {"S": key}})
        op["t0"] = time.monotonic()
        try:
            answer = call()
            op["ok"] = True
            if op["kind"] == "get":
                item = answer.get("Item")
                op["read"] = item["v"]["S"] if item and "v" in item else None
        except botocore.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ConditionalCheckFailedException":
                op["ok"], op["condition_failed"] = True, True
            else:
                op["error"] = code
                op["unknown"] = op["kind"] not in ("get", "query")
        except (botocore.exceptions.BotoCoreError, OSError) as exc:
            op["error"] = type(exc).__name__
            op["unknown"] = op["kind"] not in ("get", "query")
        op["t1"] = time.monotonic()
        if self.router_of is not None:
            op["region"] = getattr(self.router_of(ddb).last_served, "region", None)
        self.recorder.add(op)


# --- replication lag, sampled while the drill runs -------------------------------------

class LagSampler(threading.Thread):
    """Every SAMPLE_S, each region's cursor vector: how far (in origin time) each region
    is behind each other region's newest change, and when, after the heal, every change
    made before the heal had reached every region."""

    SAMPLE_S = 0.5

    def __init__(self, cluster: DrillCluster | ExistingCluster, t_start: float,
                 stop: threading.Event) -> None:
        super().__init__(name="drill-lag", daemon=True)
        self.cluster = cluster
        self.t_start = t_start
        self.stop_event = stop
        self.samples: list[dict[str, Any]] = []  # {"t", "lag_ms": {region: worst lag}}
        self.heal_marks: dict[str, int] | None = None  # origin -> its own seq at the heal
        self.heal_t: float | None = None
        self.caught_up_t: float | None = None

    def vectors(self) -> dict[str, dict[str, list[int]]]:
        found = {}
        for region in self.cluster.ids:
            try:
                status = _get_json(self.cluster.url(region) + "/_atoll/status", 0.5)
                found[region] = status["replication"]["cursor_vector"]
            except (OSError, KeyError, ValueError):
                continue  # down or cut off from us: no sample
        return found

    def mark_heal(self) -> None:
        vectors = self.vectors()
        self.heal_marks = {r: v.get(r, [0, 0])[0] for r, v in vectors.items()}
        self.heal_t = time.monotonic() - self.t_start

    def run(self) -> None:
        while not self.stop_event.wait(self.SAMPLE_S):
            vectors = self.vectors()
            now = time.monotonic() - self.t_start
            newest = {r: v.get(r, [0, 0])[1] for r, v in vectors.items()}
            lag = {}
            for region, vector in vectors.items():
                behind = [max(0, hlc_physical_ms(newest[o]) - hlc_physical_ms(vector[o][1]))
                          for o in newest if o != region and newest[o] and o in vector]
                lag[region] = max(behind, default=0)
            self.samples.append({"t": round(now, 3), "lag_ms": lag})
            marks = self.heal_marks
            if (marks is not None and self.caught_up_t is None
                    and len(vectors) == len(self.cluster.ids)
                    and all(vectors[r].get(o, [0, 0])[0] >= seq
                            for r in vectors for o, seq in marks.items())):
                self.caught_up_t = now

    def summary(self, fault_t: float) -> dict[str, Any]:
        steady = [v for s in self.samples if s["t"] < fault_t for v in s["lag_ms"].values()]
        every = [v for s in self.samples for v in s["lag_ms"].values()]
        return {"steady_p50_ms": _percentile(steady, 50), "steady_p99_ms": _percentile(steady, 99),
                "max_ms": max(every, default=None),
                "caught_up_after_heal_s": (round(self.caught_up_t - self.heal_t, 3)
                                           if self.caught_up_t is not None
                                           and self.heal_t is not None else None),
                "series": self.samples}


def _percentile(values: list[int], pct: int) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))])


# --- one scenario --------------------------------------------------------------------

@dataclass
class DrillOptions:
    regions: int = 3
    duration_s: float = 60.0
    rate: float = 500.0
    seed: int = 1
    root: Path = Path("drill-data")
    env: dict[str, str] = field(default_factory=dict)  # for the nodes (defect injection)
    converge_timeout_s: float = 60.0
    config: ClusterConfig | None = None  # a running cluster instead of a fresh one


def run_scenario(scenario: str, options: DrillOptions,
                 progress: Callable[[str, float, Recorder], None] | None = None
                 ) -> dict[str, Any]:
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; one of {', '.join(SCENARIOS)}")
    root = options.root / scenario
    root.mkdir(parents=True, exist_ok=True)
    cluster: DrillCluster | ExistingCluster
    tables = TABLES
    if options.config is not None:
        if scenario not in ExistingCluster.SCENARIOS:
            raise ValueError(f"{scenario} restarts region processes: it needs a cluster the "
                             "drill starts itself (leave out --config)")
        cluster = ExistingCluster(options.config, options.seed)
        suffix = f"{int(time.time())}_{options.seed}"
        tables = (f"{TABLES[0]}_{suffix}", f"{TABLES[1]}_{suffix}")
    else:
        cluster = DrillCluster(root, options.regions, options.seed, options.env)
    dns = SimulatedDns()
    for r in cluster.ids:
        dns.records[f"dynamodb.{r}{DNS_SUFFIX}"] = cluster.client_address(r)[0]
    victim, other = cluster.ids[0], cluster.ids[1]
    recorder = Recorder()
    stop = threading.Event()
    events: list[dict[str, Any]] = []
    t_start = time.monotonic()

    def event(what: str) -> None:
        events.append({"t": round(time.monotonic() - t_start, 3), "event": what})

    try:
        with dns.installed():
            cluster.start_all()
            setup = plain_client(cluster.url(victim))
            for table in tables:
                setup.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                                   KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                                   AttributeDefinitions=[{"AttributeName": "pk",
                                                          "AttributeType": "S"}])
            _wait(lambda: all(set(tables) <= set(plain_client(cluster.url(r)).list_tables()
                                                  ["TableNames"]) for r in cluster.ids), 20)
            seeds = [cluster.url(r) for r in cluster.ids]
            cache = root / "topology-cache.json"
            preferences = [list(cluster.ids), [other, *[r for r in cluster.ids if r != other]]]
            workers: list[Worker] = []
            threads = 4
            per_thread = max(1.0, options.rate / (threads + (1 if scenario == "dns-empty" else 0)))
            for i in range(threads):
                preference = preferences[i % 2]
                workers.append(Worker(
                    f"f{i}", "failover",
                    lambda p=preference: atoll.client.boto3_client(seeds, p, cache),  # type: ignore[misc]
                    per_thread, options.seed * 100 + i, recorder, stop,
                    router_of=lambda c: c.atoll_router, tables=tables))
            if scenario == "dns-empty":
                port = cluster.client_address(victim)[1]
                name_url = f"http://dynamodb.{victim}{DNS_SUFFIX}:{port}"
                workers.append(Worker("naive0", "naive", lambda: plain_client(name_url),
                                      per_thread, options.seed * 100 + 99, recorder, stop,
                                      tables=tables))
            t_start = time.monotonic()
            event("workload started")
            sampler = LagSampler(cluster, t_start, stop)
            sampler.start()
            for worker in workers:
                worker.start()
            fault_at = options.duration_s * 0.25
            heal_at = options.duration_s * 0.6
            _sleep_until(t_start + fault_at, progress, "before fault", t_start, recorder)
            event(f"fault: {scenario} on {victim}")
            fault_t = time.monotonic() - t_start
            _inject(scenario, cluster, dns, victim)
            _sleep_until(t_start + heal_at, progress, "fault", t_start, recorder)
            event("heal")
            heal_t = time.monotonic() - t_start
            _heal(scenario, cluster, dns, victim)
            sampler.mark_heal()
            _sleep_until(t_start + options.duration_s, progress, "after heal", t_start, recorder)
            stop.set()
            for worker in workers:
                worker.join(timeout=30)
            end_t = time.monotonic() - t_start
            event("workload stopped")
            sampler.join(timeout=5)
            lag = {**_lag(cluster), **sampler.summary(fault_t)}
            converged_s = _converge(cluster, options.converge_timeout_s, tables)
            event("converged" if converged_s is not None else "did not converge")
            finals, losers, conflicts = _read_back(cluster, tables)
            result = check(recorder.ops, finals, losers)
            cluster.drop_tables(tables)
    finally:
        stop.set()
        cluster.close()
    return _figures(scenario, victim, options, recorder.ops, result, events, lag, converged_s,
                    conflicts, fault_t, heal_t, end_t, t_start)


def _wait(predicate: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (OSError, botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
            pass
        time.sleep(0.1)
    raise RuntimeError("the cluster did not get ready in time")


def _sleep_until(deadline: float, progress: Callable[[str, float, Recorder], None] | None,
                 phase: str, t_start: float, recorder: Recorder) -> None:
    while time.monotonic() < deadline:
        time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))
        if progress is not None:
            progress(phase, time.monotonic() - t_start, recorder)


def _inject(scenario: str, cluster: DrillCluster | ExistingCluster, dns: SimulatedDns, victim: str) -> None:
    others = [r for r in cluster.ids if r != victim]
    if scenario == "region-down":
        cluster.kill(victim)
    elif scenario == "dns-empty":
        dns.records.pop(f"dynamodb.{victim}{DNS_SUFFIX}", None)
    elif scenario == "partition":
        cluster.rules.partition(victim, others)
        cluster.network.apply()
    elif scenario == "slow-wan":
        cluster.rules.set("*", "*", LinkFault(latency_ms=150, jitter_ms=50, loss=0.05))
        cluster.network.apply()
    elif scenario == "clock-skew":
        cluster.stop(victim)
        cluster.start(victim, clock_offset_ms=CLOCK_SKEW_MS)


def _heal(scenario: str, cluster: DrillCluster | ExistingCluster, dns: SimulatedDns, victim: str) -> None:
    if scenario == "region-down":
        cluster.start(victim)
    elif scenario == "dns-empty":
        dns.records[f"dynamodb.{victim}{DNS_SUFFIX}"] = "127.0.0.1"
    elif scenario in ("partition", "slow-wan"):
        cluster.rules.clear()
        cluster.network.apply()
    elif scenario == "clock-skew":
        cluster.stop(victim)  # the clock comes back: 3 s behind its last stamps
        cluster.start(victim)


def _lag(cluster: DrillCluster | ExistingCluster) -> dict[str, Any]:
    per_region = {}
    for r in cluster.ids:
        try:
            per_region[r] = _get_json(cluster.url(r) + "/_atoll/status")["replication"]["lag_ms"]
        except (OSError, KeyError, ValueError):
            per_region[r] = None
    p50s = [v["p50"] for v in per_region.values() if v and v.get("p50") is not None]
    p99s = [v["p99"] for v in per_region.values() if v and v.get("p99") is not None]
    return {"per_region": per_region, "p50_ms": max(p50s) if p50s else None,
            "p99_ms": max(p99s) if p99s else None}


def _scan(url: str, tables: tuple[str, ...]) -> dict[tuple[str, str], Any]:
    ddb = plain_client(url)
    found: dict[tuple[str, str], Any] = {}
    for table in tables:
        kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
        while True:
            page = ddb.scan(**kwargs)
            for item in page["Items"]:
                key = (table, item["pk"]["S"])
                found[key] = int(item["c"]["N"]) if "c" in item else item.get("v", {}).get("S")
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return found


def _converge(cluster: DrillCluster | ExistingCluster, timeout_s: float,
              tables: tuple[str, ...]) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        try:
            scans = [_scan(cluster.url(r), tables) for r in cluster.ids]
            if all(s == scans[0] for s in scans[1:]):
                return round(time.monotonic() - started, 3)
        except (OSError, botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
            pass
        time.sleep(0.25)
    return None


def _read_back(cluster: DrillCluster | ExistingCluster, tables: tuple[str, ...]
               ) -> tuple[dict[str, dict[tuple[str, str], Any]], list[tuple[str, str, Any]], int]:
    finals = {r: _scan(cluster.url(r), tables) for r in cluster.ids}
    losers: list[tuple[str, str, Any]] = []
    conflicts = 0
    for r in cluster.ids:
        after = 0
        while True:
            page = _get_json(f"{cluster.url(r)}/_atoll/conflicts/after/{after}")
            rows = page.get("conflicts", [])
            for row in rows:
                after = max(after, row["id"])
                if row["table"] not in tables:
                    continue  # the cluster's other tables (a running cluster)
                conflicts += 1
                loser = row.get("loser", {}).get("item") or {}
                winner = row.get("winner", {}).get("item") or {}
                pk = (loser or winner).get("pk", {}).get("S")
                value = (loser.get("v", {}).get("S") if "c" not in loser
                         else int(loser["c"]["N"]))
                losers.append((row["table"], pk, value))
            if len(rows) < 1000:
                break
    return finals, losers, conflicts


def _figures(scenario: str, victim: str, options: DrillOptions, ops: list[dict[str, Any]],
             result: CheckResult, events: list[dict[str, Any]], lag: dict[str, Any],
             converged_s: float | None, conflicts: int, fault_t: float, heal_t: float,
             end_t: float, t0: float) -> dict[str, Any]:
    """`t0`: when the workload started (fault_t, heal_t, end_t count from it)."""
    clients: dict[str, Any] = {}
    for kind in sorted({o["client"] for o in ops}):
        mine = sorted((o for o in ops if o["client"] == kind), key=lambda o: o["t1"])
        gap = max(_longest_gap([o for o in mine if o["worker"] == w], t0, t0 + end_t)
                  for w in {o["worker"] for o in mine})
        attempted, succeeded = len(mine), sum(1 for o in mine if o["ok"])
        clients[kind] = {"attempted": attempted, "succeeded": succeeded,
                         "availability_pct": round(100.0 * succeeded / attempted, 3)
                         if attempted else None,
                         "longest_gap_s": round(gap, 3),
                         "read_errors": sum(1 for o in mine if not o["ok"]
                                            and o["kind"] in ("get", "query")),
                         "write_errors": sum(1 for o in mine if not o["ok"]
                                             and o["kind"] not in ("get", "query"))}
    failover = [o for o in ops if o["client"] == "failover"]
    failover_time = _failover_time(failover, t0 + fault_t, victim)
    timeline = _timeline(ops, t0, end_t)
    return {"scenario": scenario, "victim": victim, "regions": options.regions, "duration_s": options.duration_s,
            "rate": options.rate, "seed": options.seed,
            "fault_window_s": [round(fault_t, 3), round(heal_t, 3)],
            "clients": clients, "failover_time_s": failover_time,
            "replication_lag_ms": {"p50": lag["steady_p50_ms"], "p99": lag["steady_p99_ms"],
                                   "max": lag["max_ms"],
                                   "applied_p50": lag["p50_ms"], "applied_p99": lag["p99_ms"],
                                   "per_region": lag["per_region"]},
            "caught_up_after_heal_s": lag["caught_up_after_heal_s"],
            "lag_series": lag["series"],
            "converge_after_stop_s": converged_s, "conflicts_recorded": conflicts,
            "check": result.summary(), "events": events, "timeline": timeline,
            "passed": result.passed and converged_s is not None}


def _longest_gap(ops: list[dict[str, Any]], start: float, end: float) -> float:
    """The longest time one client thread went without a successful request."""
    times = [start] + sorted(o["t1"] for o in ops if o["ok"]) + [end]
    return max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)


def _failover_time(ops: list[dict[str, Any]], fault_at: float, victim: str) -> float | None:
    """Per client thread that was served by the victim region just before the fault, from
    the fault to its first success served by another region; the slowest thread's (None:
    no thread had to move)."""
    times = []
    for worker in {o["worker"] for o in ops}:
        mine = sorted((o for o in ops if o["worker"] == worker and o["ok"] and o.get("region")),
                      key=lambda o: o["t1"])
        before = [o for o in mine if o["t1"] < fault_at]
        if not before or before[-1]["region"] != victim:
            continue
        moved = next((o for o in mine if o["t0"] >= fault_at
                      and o["region"] != before[-1]["region"]), None)
        if moved is not None:
            times.append(moved["t1"] - fault_at)
    return round(max(times), 3) if times else None


def _timeline(ops: list[dict[str, Any]], t0: float, end_t: float) -> list[dict[str, Any]]:
    seconds = int(end_t) + 1
    rows: list[dict[str, Any]] = [{"t": s, "ok": {}, "errors": {}} for s in range(seconds)]
    for o in ops:
        s = min(seconds - 1, max(0, int(o["t1"] - t0)))
        where = o.get("region") or o["client"]
        bucket: dict[str, int] = rows[s]["ok" if o["ok"] else "errors"]
        bucket[where] = bucket.get(where, 0) + 1
    return rows
