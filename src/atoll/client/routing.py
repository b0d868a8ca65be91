"""Where a request goes: the topology, each region's health, and the failover rules.

Shared by the boto3 failover client (`atoll.client.boto3_client`) and `atoll proxy`:
both do their own I/O (blocking sockets, asyncio) and ask this module what to do.
Which requests may be sent twice: safety.py; the on-disk topology cache: cache.py.

Theory of operation
- Discovery: the topology (regions, client endpoints, generation) comes from the first
  seed that answers `GET /_atoll/topology` (short timeouts, seeds in order; signed with
  the client's credentials, as nodes with auth on require), and is then
  refreshed every TOPOLOGY_REFRESH_S from the regions themselves. A new topology is
  adopted by the nodes' own compare-and-set rule (`atoll.topology.update.decide`): same
  cluster, valid, higher generation — a stale or empty plan is never applied.
- Cache: the last good topology is kept on disk (`TopologyCache`: one file per cluster id,
  written by atomic rename, never replaced by a lower generation), so a process that
  starts while no seed answers — DNS gone, every seed down — still finds the regions.
- Addresses come from the topology, never from a DNS lookup of a region's name: a region
  whose name stops resolving stays reachable.
- Health: every PROBE_INTERVAL_S each region's `/health` is asked (in parallel, timeout
  PROBE_TIMEOUT_S). One failed probe or failed request marks a region unhealthy;
  RECOVERY_PROBES good probes in a row mark it healthy again — the last one only once the
  region holds every change the current route's region held (`catch_up_check`, so reads
  there are not older than writes already acknowledged) — and routing returns to it
  if it is preferred.
- Routing: `candidates()` lists regions in preference order (regions not in the
  preference list after those that are), healthy ones first, then the unhealthy ones as
  a last resort (a probe may be wrong; trying costs one connection).
- One request (`Failover`): try the candidates in order within FAILOVER_BUDGET_S. After
  an attempt that certainly did not reach the server (connection refused, connect
  timeout, name not resolved) the next region is always tried; after one that may have
  (no answer, connection lost mid-way, 5xx) only if `retry_safe` says sending it again
  cannot apply a write twice; otherwise the error surfaces. A safe request waiting for
  an answer stops waiting when the region fails its probes meanwhile (a hung process,
  a black-holed network) or after half the time left (a slow region), and goes on.
"""

from __future__ import annotations

import enum
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3

from atoll.client.cache import TopologyCache
from atoll.client.safety import READ_OPERATIONS, retry_safe
from atoll.client.signing import sign
from atoll.errors import AtollError
from atoll.topology.model import ClusterConfig, RegionConfig, topology_from_dict, validate
from atoll.topology.update import Accept, decide

log = logging.getLogger(__name__)

PROBE_INTERVAL_S = 0.5
PROBE_TIMEOUT_S = 0.5
RECOVERY_PROBES = 2  # good probes in a row before an unhealthy region takes traffic again
CATCH_UP_WAIT_S = 1.0  # how long a recovery probe waits for the region to catch up
TOPOLOGY_REFRESH_S = 5.0
DISCOVERY_TIMEOUT_S = 1.0
FAILOVER_BUDGET_S = 5.0  # one request, all attempts
CONNECT_TIMEOUT_S = 0.5  # a local or same-continent region connects in milliseconds
MAX_PROBE_THREADS = 16
MAX_TOPOLOGY_BYTES = 1024 * 1024


class DiscoveryError(Exception):
    """No seed answered and no topology of this cluster is cached."""


# --- health and metrics ----------------------------------------------------------------
@dataclass
class RegionHealth:
    healthy: bool = True  # optimistic until the first probe says otherwise
    probes: int = 0
    probe_failures: int = 0
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    last_latency_ms: float | None = None
    last_error: str | None = None
    requests_failed: int = 0

    @property
    def failure_marks(self) -> int:
        """Grows with every failed probe or request (watched by requests in flight)."""
        return self.probe_failures + self.requests_failed

    def as_dict(self) -> dict[str, Any]:
        return {"healthy": self.healthy, "probes": self.probes,
                "probe_failures": self.probe_failures,
                "consecutive_failures": self.consecutive_failures,
                "last_latency_ms": self.last_latency_ms, "last_error": self.last_error,
                "requests_failed": self.requests_failed}


@dataclass
class Metrics:
    requests: int = 0
    failovers: int = 0  # requests answered by another region than the first one tried
    retries: int = 0  # attempts after the first
    errors_surfaced: int = 0  # requests that failed on every region tried (or unsafe)
    route_changes: int = 0
    route: str | None = None  # the region that answered the latest request
    served_by: dict[str, int] = field(default_factory=dict)


# --- I/O helpers (blocking; run in the router's threads) -------------------------------
_HTTP = urllib3.PoolManager(num_pools=64, maxsize=4, retries=False)


def _pool(ca_file: str | None) -> urllib3.PoolManager:
    """Connections for https:// endpoints trust `ca_file` (else the system's CAs)."""
    if ca_file is None:
        return _HTTP
    return urllib3.PoolManager(num_pools=64, maxsize=4, retries=False, ca_certs=ca_file)


def json_fetcher(credentials: Any = None, ca_file: str | None = None
                 ) -> Callable[[str, float], Any]:
    """GET a node's JSON page (/_atoll/topology, /_atoll/status), signed with
    `credentials` (a node with auth on answers only signed requests; atoll.client.signing),
    never through an HTTP proxy from the environment: they go straight to the addresses."""
    pool = _pool(ca_file)

    def fetch(url: str, timeout_s: float) -> Any:
        headers = sign(credentials, "GET", url) if credentials is not None else {}
        response = pool.request("GET", url, headers=headers,
                                timeout=urllib3.Timeout(total=timeout_s), preload_content=False)
        try:
            if response.status != 200:
                raise ValueError(f"HTTP {response.status} from {url}")
            data = response.read(MAX_TOPOLOGY_BYTES + 1)
        finally:
            response.release_conn()
        if len(data) > MAX_TOPOLOGY_BYTES:
            raise ValueError(f"topology from {url} is too large")
        return json.loads(data)
    return fetch


def prober(ca_file: str | None = None) -> Callable[[str, float], None]:
    """Probes of `/health` (open: it needs no key)."""
    pool = _pool(ca_file)

    def probe(url: str, timeout_s: float) -> None:
        """Raise unless `url` answers 200 within `timeout_s`."""
        response = pool.request("GET", url, timeout=urllib3.Timeout(total=timeout_s))
        if response.status != 200:
            raise ValueError(f"HTTP {response.status}")
    return probe



_FETCH_ERRORS = (OSError, ValueError, AtollError, urllib3.exceptions.HTTPError)


# --- the router ------------------------------------------------------------------------
class Router:
    """Topology, health and route for one client or proxy. Thread-safe.

    Starts its background threads (probes, topology refresh) unless `start=False`
    (tests drive `probe_all` and `refresh_topology` by hand then)."""

    def __init__(self, seeds: Sequence[str], region_preference: Sequence[str] = (),
                 cache_path: str | Path | None = None, *,
                 probe_interval_s: float = PROBE_INTERVAL_S,
                 probe_timeout_s: float = PROBE_TIMEOUT_S,
                 refresh_s: float = TOPOLOGY_REFRESH_S,
                 cache_dir: str | Path | None = None,
                 fetch: Callable[[str, float], Any] | None = None,
                 probe: Callable[[str, float], None] | None = None,
                 start: bool = True, credentials: Any = None,
                 ca_file: str | None = None) -> None:
        if not seeds:
            raise ValueError("at least one seed endpoint is needed")
        self.seeds = [s.rstrip("/") for s in seeds]
        self.preference = list(region_preference)
        self.cache = TopologyCache(self.seeds, cache_path, cache_dir)
        self.probe_interval_s = probe_interval_s
        self.probe_timeout_s = probe_timeout_s
        self.refresh_s = refresh_s
        # credentials sign the topology and status reads; ca_file: trusted for https://
        self.credentials = credentials
        self.ca_file = ca_file
        self._fetch = fetch or json_fetcher(credentials, ca_file)
        self._probe = probe or prober(ca_file)
        self._lock = threading.Lock()
        self.health: dict[str, RegionHealth] = {}
        self.metrics = Metrics()
        self.last_served = threading.local()  # per thread: .region that answered last
        self.topology: ClusterConfig = self._discover()
        self._sync_health()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        if start:
            for target, name in ((self._probe_loop, "atoll-probes"),
                                 (self._refresh_loop, "atoll-topology")):
                thread = threading.Thread(target=target, name=name, daemon=True)
                thread.start()
                self._threads.append(thread)

    # --- topology ----------------------------------------------------------------------
    def _fetch_topology(self, endpoint: str) -> ClusterConfig:
        return validate(topology_from_dict(
            self._fetch(endpoint + "/_atoll/topology", DISCOVERY_TIMEOUT_S)))

    def _discover(self) -> ClusterConfig:
        for seed in self.seeds:
            try:
                found = self._fetch_topology(seed)
            except _FETCH_ERRORS as exc:
                log.info("seed %s did not give a topology: %s", seed, exc)
                continue
            cached = self.cache.load(found.cluster_id)
            self.cache.save(found)  # keeps a newer cached generation
            if cached is not None and cached.generation > found.generation:
                log.warning("seed %s serves topology generation %d, older than the cached "
                            "%d: using the cached one", seed, found.generation,
                            cached.generation)
                return cached
            return found
        cached = self.cache.load_for_seeds()
        if cached is not None:
            log.warning("no seed answered; using the cached topology of %s (generation %d)",
                        cached.cluster_id, cached.generation)
            return cached
        where = self.cache.path or self.cache.directory
        raise DiscoveryError(f"no seed answered ({', '.join(self.seeds)}) and no topology "
                             f"for them is cached at {where}")

    def adopt(self, proposed: ClusterConfig) -> bool:
        """Take `proposed` if the nodes' own rule would (valid, same cluster, newer)."""
        with self._lock:
            outcome = decide(self.topology, proposed)
            if not isinstance(outcome, Accept) or not outcome.changed:
                return False
            log.info("topology generation %d -> %d", self.topology.generation,
                     proposed.generation)
            self.topology = proposed
            self._sync_health()
        self.cache.save(proposed)
        return True

    def refresh_topology(self) -> bool:
        """Ask the regions (healthy first), then the seeds, for a newer topology."""
        sources = [e for _, e in self.candidates()] + self.seeds
        for source in dict.fromkeys(sources):
            try:
                found = self._fetch_topology(source)
            except _FETCH_ERRORS:
                continue
            return self.adopt(found)
        return False

    def _sync_health(self) -> None:  # with the lock held (or before the threads start)
        ids = set(self.topology.region_ids())
        for region_id in ids:
            self.health.setdefault(region_id, RegionHealth())
        for region_id in [r for r in self.health if r not in ids]:
            del self.health[region_id]  # the region left the cluster

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.refresh_s):
            try:
                self.refresh_topology()
            except Exception:  # never let the refresher die
                log.exception("topology refresh failed")

    # --- health ------------------------------------------------------------------------
    def _probe_loop(self) -> None:
        """Probe every region each interval, in parallel: one hung region must not delay
        the verdict on the others. A region whose last probe is still running is skipped."""
        running: dict[str, Future[None]] = {}
        with ThreadPoolExecutor(MAX_PROBE_THREADS, thread_name_prefix="atoll-probe") as pool:
            while not self._stop.is_set():
                for region in self.topology.regions:
                    previous = running.get(region.id)
                    if previous is None or previous.done():
                        try:
                            running[region.id] = pool.submit(self.probe_region, region)
                        except RuntimeError:  # the interpreter is exiting
                            return
                if self._stop.wait(self.probe_interval_s):
                    break

    def probe_all(self) -> None:
        for region in self.topology.regions:
            self.probe_region(region)

    def probe_region(self, region: RegionConfig) -> None:
        started = time.monotonic()
        error: str | None = None
        for endpoint in region.client_endpoints:
            try:
                self._probe(endpoint + "/health", self.probe_timeout_s)
                error = None
                break
            except Exception as exc:  # any failure is a failed probe
                error = f"{type(exc).__name__}: {exc}"
        latency_ms = (time.monotonic() - started) * 1000
        if error is None and self._would_recover(region.id):
            error = self.catch_up_check(region)
        self.record_probe(region.id, error, latency_ms)

    def _would_recover(self, region_id: str) -> bool:
        with self._lock:
            health = self.health.get(region_id)
            return (health is not None and not health.healthy
                    and health.consecutive_successes + 1 >= RECOVERY_PROBES)

    def catch_up_check(self, region: RegionConfig) -> str | None:
        """Before traffic returns to a region that was unhealthy: does it hold every
        change the current route's region held a moment ago (so a read there is not older
        than a write this client had acknowledged)? Waits up to CATCH_UP_WAIT_S for it;
        None if it does, or if it cannot be judged (no route, status unavailable), else
        why not. Compares the regions' cursor vectors from `/_atoll/status`."""
        route = self.metrics.route
        if route is None or route == region.id or not self.topology.has_region(route):
            return None
        target = self._cursor_vector(self.topology.region(route))
        if not target:
            return None
        deadline = time.monotonic() + CATCH_UP_WAIT_S
        while True:
            held = self._cursor_vector(region) or {}
            behind = sorted(o for o, seq in target.items() if held.get(o, 0) < seq)
            if not behind:
                return None
            if time.monotonic() >= deadline:
                return f"catching up: behind {route} on changes from {', '.join(behind)}"
            time.sleep(0.05)

    def _cursor_vector(self, region: RegionConfig) -> dict[str, int] | None:
        for endpoint in region.client_endpoints:
            try:
                status = self._fetch(endpoint + "/_atoll/status", self.probe_timeout_s)
                return {o: int(v[0]) for o, v in status["replication"]["cursor_vector"].items()}
            except (*_FETCH_ERRORS, KeyError, TypeError, IndexError):
                continue
        return None

    def record_probe(self, region_id: str, error: str | None, latency_ms: float) -> None:
        with self._lock:
            health = self.health.get(region_id)
            if health is None:
                return  # left the topology meanwhile
            health.probes += 1
            if error is None:
                health.consecutive_failures = 0
                health.consecutive_successes += 1
                health.last_latency_ms = round(latency_ms, 2)
                if not health.healthy and health.consecutive_successes >= RECOVERY_PROBES:
                    health.healthy = True
                    log.info("region %s is healthy again", region_id)
            else:
                health.probe_failures += 1
                health.consecutive_failures += 1
                health.consecutive_successes = 0
                health.last_error = error
                if health.healthy:
                    log.warning("region %s failed a probe: %s", region_id, error)
                health.healthy = False

    def failure_marks(self, region_id: str) -> int:
        with self._lock:
            health = self.health.get(region_id)
            return health.failure_marks if health is not None else 0

    def failed_since(self, region_id: str, marks: int) -> bool:
        """Has the region failed a probe (or another request) since `marks` was taken,
        and is it unhealthy now? A request waiting on it should give up then."""
        with self._lock:
            health = self.health.get(region_id)
            return health is not None and not health.healthy and health.failure_marks > marks

    def mark_failed(self, region_id: str, error: str) -> None:
        with self._lock:
            health = self.health.get(region_id)
            if health is None:
                return
            if health.healthy:
                log.warning("region %s failed a request: %s", region_id, error)
            health.healthy = False
            health.consecutive_successes = 0
            health.requests_failed += 1
            health.last_error = error

    def mark_served(self, region_id: str, first_choice: str) -> None:
        self.last_served.region = region_id
        with self._lock:
            metrics = self.metrics
            metrics.requests += 1
            metrics.served_by[region_id] = metrics.served_by.get(region_id, 0) + 1
            if region_id != first_choice:
                metrics.failovers += 1
            if metrics.route != region_id:
                if metrics.route is not None:
                    metrics.route_changes += 1
                    log.info("route: %s -> %s", metrics.route, region_id)
                metrics.route = region_id

    def mark_surfaced(self) -> None:
        self.last_served.region = None
        with self._lock:
            self.metrics.requests += 1
            self.metrics.errors_surfaced += 1

    def mark_retry(self) -> None:
        with self._lock:
            self.metrics.retries += 1

    # --- routing -----------------------------------------------------------------------
    def ordered_regions(self) -> list[RegionConfig]:
        rank = {r: i for i, r in enumerate(self.preference)}
        return sorted(self.topology.regions, key=lambda r: rank.get(r.id, len(rank)))

    def candidates(self) -> list[tuple[str, str]]:
        """(region id, client endpoint) to try in order: healthy regions by preference,
        then the others."""
        with self._lock:
            ordered = self.ordered_regions()
            healthy = [r for r in ordered if self.health[r.id].healthy]
            rest = [r for r in ordered if not self.health[r.id].healthy]
        return [(r.id, e) for r in healthy + rest for e in r.client_endpoints]

    def failover(self, operation: str, body: bytes, budget_s: float = FAILOVER_BUDGET_S,
                 clock: Callable[[], float] = time.monotonic) -> Failover:
        return Failover(self, operation, body, budget_s, clock)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            metrics = self.metrics
            ordered = self.ordered_regions()
            preferred = next((r.id for r in ordered if self.health[r.id].healthy), None)
            return {"route": metrics.route, "preferred_healthy": preferred,
                    "requests": metrics.requests, "failovers": metrics.failovers,
                    "retries": metrics.retries, "errors_surfaced": metrics.errors_surfaced,
                    "route_changes": metrics.route_changes,
                    "served_by": dict(metrics.served_by),
                    "topology_generation": self.topology.generation,
                    "cluster_id": self.topology.cluster_id,
                    "preference": [r.id for r in ordered],
                    "regions": {r.id: self.health[r.id].as_dict() for r in ordered}}

    def close(self) -> None:
        self._stop.set()


class Outcome(enum.Enum):
    NOT_SENT = "not sent"  # connection refused / connect timeout / name not resolved
    NO_ANSWER = "no answer"  # sent (maybe partly) but no complete answer: may have acted
    SERVER_ERROR = "server error"  # a 5xx answer
    ABANDONED = "abandoned"  # a safe request stopped waiting: the region failed or is slow


class Failover:
    """One request's way through the regions. The caller does the I/O:

        trip = router.failover(operation, body)
        for region, endpoint in trip:            # stops when the budget is spent
            ...send, waiting at most trip.remaining_s(), giving up if trip.abandon(region)
            on an answer below 500: trip.served(region); return it
            on a failure: if not trip.failed(region, outcome, error): break
        trip.surfaced()                          # then raise / return the last failure
    """

    def __init__(self, router: Router, operation: str, body: bytes, budget_s: float,
                 clock: Callable[[], float]) -> None:
        self.router = router
        self.operation = operation
        self.body = body
        self.clock = clock
        self.deadline = clock() + budget_s
        self.candidates = router.candidates()
        self.first = self.candidates[0][0]
        self._marks = 0
        self._slow_after = self.deadline
        self._safe: bool | None = None  # decided lazily: most requests succeed at once

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for attempt, (region, endpoint) in enumerate(self.candidates):
            now = self.clock()
            if attempt:
                if now >= self.deadline:
                    return
                self.router.mark_retry()
            self._marks = self.router.failure_marks(region)
            # a region still silent after half of what is left is slow: leave the rest
            # of the budget to the next one (unless this is the last)
            last = attempt == len(self.candidates) - 1
            self._slow_after = self.deadline if last else now + (self.deadline - now) / 2
            yield region, endpoint

    def remaining_s(self) -> float:
        return max(0.0, self.deadline - self.clock())

    def abandon(self, region: str) -> bool:
        """Give up waiting on `region`'s answer and try the next one? Only when sending
        the request elsewhere is safe (otherwise we wait for the answer, within the
        budget), and either the region failed its probes since this attempt began (a
        hung process, a black-holed network) or it is slow (half of the time left
        passed)."""
        gone = (self.clock() >= self._slow_after
                or self.router.failed_since(region, self._marks))
        return gone and self.safe

    @property
    def safe(self) -> bool:
        if self._safe is None and self.operation in READ_OPERATIONS:
            self._safe = True  # whatever the body says
        if self._safe is None:
            try:
                request = json.loads(self.body) if self.body else {}
            except ValueError:
                request = None
            self._safe = isinstance(request, dict) and retry_safe(self.operation, request)
        return self._safe

    def failed(self, region: str, outcome: Outcome, error: str) -> bool:
        """Record a failed attempt; True: try the next candidate."""
        self.router.mark_failed(region, f"{outcome.value}: {error}")
        return outcome is Outcome.NOT_SENT or self.safe

    def served(self, region: str) -> None:
        self.router.mark_served(region, self.first)

    def surfaced(self) -> None:
        self.router.mark_surfaced()
