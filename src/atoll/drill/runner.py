"""`atoll drill`: one scenario's timeline, from a fresh cluster to the checked figures.

Timeline of one scenario of D seconds: the workload starts (workload.py, with the lag
sampler of lag.py); at 0.25·D the fault begins; at 0.6·D it is healed; at D the workload
stops; then the drill waits (bounded) until every region holds the same data, reads
every region's contents and conflict log (contents.py), checks the invariants
(checker.py), verifies every region pair with the hash trees (verification.py) and
computes the figures (figures.py). The cluster and the simulated DNS
are cluster.py's; the faults are applied through them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import atoll.client
from atoll.drill import contents, figures, verification
from atoll.drill.checker import CheckResult, check
from atoll.drill.cluster import (
    Cluster,
    DrillCluster,
    ExistingCluster,
    SimulatedDns,
    get_json,
    plain_client,
    wait_for,
)
from atoll.drill.faultproxy import LinkFault
from atoll.drill.lag import LagSampler, applied_lag
from atoll.drill.workload import TABLES, Recorder, Worker
from atoll.topology.model import ClusterConfig

SCENARIOS = ("region-down", "dns-empty", "partition", "slow-wan", "clock-skew")
CLOCK_SKEW_MS = 3000
FAULT_AT = 0.25  # of the duration
HEAL_AT = 0.6
FAILOVER_THREADS = 4
TABLES_READY_S = 20.0
VERIFY_TIMEOUT_S = 120.0
JOIN_WORKER_S = 30.0
JOIN_SAMPLER_S = 5.0
PROGRESS_EVERY_S = 0.25

Progress = Callable[[str, float, Recorder], None]


@dataclass
class DrillOptions:
    regions: int = 3
    duration_s: float = 60.0
    rate: float = 500.0
    seed: int = 1
    root: Path = Path("drill-data")
    # a deliberate defect in every node: each Nth replicated item write is dropped
    # (atoll.replication.faults.DropItemWrites), to prove the checker catches it; 0: none
    fault_drop_every: int = 0
    converge_timeout_s: float = 60.0
    config: ClusterConfig | None = None  # a running cluster instead of a fresh one
    credentials: tuple[str, str] | None = None  # an admin key of that running cluster
    # where the cluster's listeners take their ports (None: cluster.py's `free_port`)
    ports: Callable[[], int] | None = None


def run_scenario(scenario: str, options: DrillOptions,
                 progress: Progress | None = None) -> dict[str, Any]:
    """Run one scenario; its figures and verdict (figures.py) as a JSON-ready dict."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; one of {', '.join(SCENARIOS)}")
    root = options.root / scenario
    root.mkdir(parents=True, exist_ok=True)
    cluster: Cluster
    tables = TABLES
    if options.config is not None:
        if scenario not in ExistingCluster.SCENARIOS:
            raise ValueError(f"{scenario} restarts region processes: it needs a cluster the "
                             "drill starts itself (leave out --config)")
        cluster = ExistingCluster(options.config, options.seed, options.credentials,
                                  options.ports)
        suffix = f"{int(time.time())}_{options.seed}"
        tables = (f"{TABLES[0]}_{suffix}", f"{TABLES[1]}_{suffix}")
    else:
        cluster = DrillCluster(root, options.regions, options.seed, options.fault_drop_every,
                               options.ports)
    run = ScenarioRun(scenario, options, cluster, tables, root, progress)
    try:
        with run.dns.installed():
            cluster.start_all()
            security = cluster_security(cluster)
            run.create_tables()
            sampler = run.play()
            outcome = run.read_outcome(sampler)
            cluster.drop_tables(tables)
    finally:
        run.stop.set()
        cluster.close()
    result = figures.scenario_figures(run.summary(), run.recorder.ops, *outcome)
    result["security"] = security
    return result


def cluster_security(cluster: Cluster) -> dict[str, dict[str, Any]]:
    """How each region is configured, as its own status page says: its auth mode and
    whether it talks to its peers over mutual TLS (what the drill ran against)."""
    found: dict[str, dict[str, Any]] = {}
    for region in cluster.ids:
        status = get_json(cluster.url(region) + "/_atoll/status", 5.0, cluster.credentials)
        found[region] = {"auth": status["auth"]["mode"],
                         "mutual_tls": bool(status.get("peer_auth", {}).get("mutual_tls"))}
    return found


class ScenarioRun:
    """One scenario against one cluster: its clients, its timeline, its record."""

    def __init__(self, scenario: str, options: DrillOptions, cluster: Cluster,
                 tables: tuple[str, str], root: Path, progress: Progress | None) -> None:
        self.scenario = scenario
        self.options = options
        self.cluster = cluster
        self.tables = tables
        self.root = root
        self.progress = progress
        self.victim, self.other = cluster.ids[0], cluster.ids[1]
        self.dns = SimulatedDns()
        for region in cluster.ids:
            self.dns.records[SimulatedDns.name(region)] = cluster.client_address(region)[0]
        self.recorder = Recorder()
        self.stop = threading.Event()
        self.events: list[figures.Event] = []
        self.t_start = time.monotonic()
        self.timing = figures.Timing()

    def event(self, what: str) -> None:
        self.events.append(figures.Event(round(time.monotonic() - self.t_start, 3), what))

    def create_tables(self) -> None:
        credentials = self.cluster.credentials
        setup = plain_client(self.cluster.url(self.victim), credentials)
        for table in self.tables:
            setup.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                               KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                               AttributeDefinitions=[{"AttributeName": "pk",
                                                      "AttributeType": "S"}])
        wait_for(lambda: all(set(self.tables) <= set(plain_client(self.cluster.url(r), credentials)
                                                      .list_tables()["TableNames"])
                             for r in self.cluster.ids), TABLES_READY_S)

    def workers(self) -> list[Worker]:
        """Failover clients (half preferring the victim first, half another region), and
        for dns-empty a naive client that finds the victim by name."""
        seeds = [self.cluster.url(r) for r in self.cluster.ids]
        cache = self.root / "topology-cache.json"
        ids = list(self.cluster.ids)
        preferences = [ids, [self.other, *[r for r in ids if r != self.other]]]
        naive = self.scenario == "dns-empty"
        per_thread = max(1.0, self.options.rate / (FAILOVER_THREADS + (1 if naive else 0)))
        seed = self.options.seed * 100
        key_id, secret = self.cluster.credentials or ("drill", "drill")
        keys = {"aws_access_key_id": key_id, "aws_secret_access_key": secret}
        workers = [Worker(f"f{i}", "failover",
                          lambda p=preferences[i % 2]: atoll.client.boto3_client(  # type: ignore[misc]
                              seeds, p, cache, **keys),  # type: ignore[arg-type]
                          per_thread, seed + i, self.recorder, self.stop,
                          router_of=lambda c: c.atoll_router, tables=self.tables)
                   for i in range(FAILOVER_THREADS)]
        if naive:
            port = self.cluster.client_address(self.victim)[1]
            by_name = f"http://{SimulatedDns.name(self.victim)}:{port}"
            workers.append(Worker("naive0", "naive",
                                  lambda: plain_client(by_name, self.cluster.credentials),
                                  per_thread,
                                  seed + 99, self.recorder, self.stop, tables=self.tables))
        return workers

    def play(self) -> LagSampler:
        """The timeline: workload, fault, heal, stop. Returns the (stopped) lag sampler."""
        workers = self.workers()
        self.t_start = time.monotonic()
        self.event("workload started")
        sampler = LagSampler(self.cluster, self.t_start, self.stop)
        sampler.start()
        for worker in workers:
            worker.start()
        duration_s = self.options.duration_s
        self._sleep_until(duration_s * FAULT_AT, "before fault")
        self.event(f"fault: {self.scenario} on {self.victim}")
        self.timing.fault_s = time.monotonic() - self.t_start
        inject(self.scenario, self.cluster, self.dns, self.victim)
        self._sleep_until(duration_s * HEAL_AT, "fault")
        self.event("heal")
        self.timing.heal_s = time.monotonic() - self.t_start
        heal(self.scenario, self.cluster, self.dns, self.victim)
        sampler.mark_heal()
        self._sleep_until(duration_s, "after heal")
        self.stop.set()
        for worker in workers:
            worker.join(timeout=JOIN_WORKER_S)
        self.timing.end_s = time.monotonic() - self.t_start
        self.event("workload stopped")
        sampler.join(timeout=JOIN_SAMPLER_S)
        return sampler

    def read_outcome(self, sampler: LagSampler
                     ) -> tuple[CheckResult, dict[str, Any], float | None, int, dict[str, Any]]:
        """(the check, the lag figures, seconds to converge or None, conflicts recorded,
        the verify of every region pair)."""
        lag = {**applied_lag(self.cluster), **sampler.summary(self.timing.fault_s)}
        converged_s = contents.converge(self.cluster, self.options.converge_timeout_s,
                                        self.tables)
        self.event("converged" if converged_s is not None else "did not converge")
        finals, losers, conflicts = contents.read_back(self.cluster, self.tables)
        verified = verification.verify_regions(self.cluster.url, list(self.cluster.ids),
                                               self.tables, VERIFY_TIMEOUT_S,
                                               self.cluster.credentials)
        self.event("verify: every region pair MATCH" if verified["passed"] else
                   f"verify failed (exit {verified['exit_code']}) {verified['error']}")
        return check(self.recorder.ops, finals, losers), lag, converged_s, conflicts, verified

    def summary(self) -> figures.Run:
        return figures.Run(self.scenario, self.victim, self.options.regions,
                           self.options.duration_s, self.options.rate, self.options.seed,
                           self.t_start, self.timing, self.events)

    def _sleep_until(self, at_s: float, phase: str) -> None:
        deadline = self.t_start + at_s
        while time.monotonic() < deadline:
            time.sleep(min(PROGRESS_EVERY_S, max(0.0, deadline - time.monotonic())))
            if self.progress is not None:
                self.progress(phase, time.monotonic() - self.t_start, self.recorder)


def inject(scenario: str, cluster: Cluster, dns: SimulatedDns, victim: str) -> None:
    others = [r for r in cluster.ids if r != victim]
    if scenario == "region-down":
        cluster.kill(victim)
    elif scenario == "dns-empty":
        dns.records.pop(SimulatedDns.name(victim), None)
    elif scenario == "partition":
        cluster.rules.partition(victim, others)
        cluster.network.apply()
    elif scenario == "slow-wan":
        cluster.rules.set("*", "*", LinkFault(latency_ms=150, jitter_ms=50, loss=0.05))
        cluster.network.apply()
    elif scenario == "clock-skew":
        cluster.stop(victim)
        cluster.start(victim, clock_offset_ms=CLOCK_SKEW_MS)


def heal(scenario: str, cluster: Cluster, dns: SimulatedDns, victim: str) -> None:
    if scenario == "region-down":
        cluster.start(victim)
    elif scenario == "dns-empty":
        dns.records[SimulatedDns.name(victim)] = "127.0.0.1"
    elif scenario in ("partition", "slow-wan"):
        cluster.rules.clear()
        cluster.network.apply()
    elif scenario == "clock-skew":
        cluster.stop(victim)  # the clock comes back: 3 s behind its last stamps
        cluster.start(victim)
