"""Where a request goes: the topology, each region's health, and the failover rules.

Shared by the boto3 failover client (`atoll.client.boto3_client`) and `atoll proxy`.

Theory of operation
- Discovery: the topology (regions, client endpoints, generation) is fetched from the
  first seed that answers `GET /_atoll/topology`, then refreshed every
  TOPOLOGY_REFRESH_S from the regions themselves. The last good one is cached on disk
  (atomic rename) and used when no seed answers, so a total discovery failure — or a
  restart during one — still finds the regions. A topology with a lower generation than
  the one held never replaces it (a stale plan is never applied, DESIGN.md decision 8).
- Addresses come from the topology, never from a DNS lookup of a region's name: a region
  whose name stops resolving stays reachable.
- Health: a prober thread asks every region's `/health` every PROBE_INTERVAL_S (short
  timeout). A request that fails on a region marks it unhealthy at once; the next good
  probe marks it healthy again, and routing returns to it if it is preferred.
- Routing: `candidates()` lists regions in preference order, healthy ones first, then the
  unhealthy ones as a last resort (a probe may be wrong; trying costs one connection).
- Safety: a request is retried on the next region only if that cannot apply a write
  twice (`retry_safe`): reads always; writes whose first attempt certainly did not reach
  the server (connection refused or not established); idempotent writes (PutItem and
  DeleteItem without conditions, UpdateItem with SET/REMOVE of constants only,
  BatchWriteItem). Anything else surfaces the error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atoll.errors import AtollError
from atoll.topology.model import ClusterConfig, topology_from_dict, validate

log = logging.getLogger(__name__)

PROBE_INTERVAL_S = 0.5
PROBE_TIMEOUT_S = 0.5
TOPOLOGY_REFRESH_S = 5.0
DISCOVERY_TIMEOUT_S = 1.0

READ_OPERATIONS = frozenset({
    "GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems", "DescribeTable",
    "ListTables", "DescribeTimeToLive", "ListTagsOfResource", "DescribeLimits",
    "DescribeEndpoints", "DescribeContinuousBackups"})

# SET a = :v, REMOVE b: re-applying gives the same item. `+`, `-`, if_not_exists and
# list_append depend on what is there, ADD and DELETE accumulate.
_NOT_IDEMPOTENT_UPDATE = re.compile(r"[+\-]|\b(?:ADD|DELETE|if_not_exists|list_append)\b",
                                    re.IGNORECASE)


class DiscoveryError(Exception):
    """No seed answered and there is no cached topology."""


def retry_safe(operation: str, request: dict[str, Any]) -> bool:
    """May this request be sent again to another region after an attempt that may have
    reached the server?"""
    if operation in READ_OPERATIONS:
        return True
    conditional = any(k in request for k in ("ConditionExpression", "Expected"))
    returns_old = request.get("ReturnValues", "NONE") not in ("NONE", None)
    if operation in ("PutItem", "DeleteItem"):
        return not conditional and not returns_old
    if operation == "UpdateItem":
        expression = request.get("UpdateExpression")
        return (isinstance(expression, str) and not conditional and not returns_old
                and "AttributeUpdates" not in request
                and _NOT_IDEMPOTENT_UPDATE.search(expression) is None)
    if operation == "BatchWriteItem":
        return True  # puts and deletes of whole items
    return False


@dataclass
class RegionHealth:
    healthy: bool = True  # optimistic until the first probe says otherwise
    probes: int = 0
    probe_failures: int = 0
    consecutive_failures: int = 0
    last_latency_ms: float | None = None
    last_error: str | None = None
    requests_failed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"healthy": self.healthy, "probes": self.probes,
                "probe_failures": self.probe_failures,
                "consecutive_failures": self.consecutive_failures,
                "last_latency_ms": self.last_latency_ms, "last_error": self.last_error,
                "requests_failed": self.requests_failed}


@dataclass
class Metrics:
    requests: int = 0
    failovers: int = 0  # requests answered by another region than first tried
    retries: int = 0
    errors_surfaced: int = 0
    route_changes: int = 0
    route: str | None = None
    served_by: dict[str, int] = field(default_factory=dict)


def default_cache_path(seeds: Sequence[str]) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "atoll"
    digest = hashlib.sha1("\n".join(sorted(seeds)).encode()).hexdigest()[:12]
    return base / f"topology-{digest}.json"


def _http_get_json(url: str, timeout_s: float) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - http only
        return json.loads(response.read())


class Router:
    """Topology, health and route for one client or proxy. Thread-safe."""

    def __init__(self, seeds: Sequence[str], region_preference: Sequence[str] = (),
                 cache_path: str | Path | None = None, *,
                 probe_interval_s: float = PROBE_INTERVAL_S,
                 fetch: Callable[[str, float], Any] = _http_get_json) -> None:
        if not seeds:
            raise ValueError("at least one seed endpoint is needed")
        self.seeds = [s.rstrip("/") for s in seeds]
        self.preference = list(region_preference)
        self.cache_path = Path(cache_path) if cache_path else default_cache_path(self.seeds)
        self.probe_interval_s = probe_interval_s
        self._fetch = fetch
        self._lock = threading.Lock()
        self.health: dict[str, RegionHealth] = {}
        self.metrics = Metrics()
        self.topology: ClusterConfig = self._discover()
        self._sync_health()
        self._stop = threading.Event()
        self._last_refresh = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="atoll-router", daemon=True)
        self._thread.start()

    # --- topology ----------------------------------------------------------------------
    def _discover(self) -> ClusterConfig:
        cached = self._load_cache()
        for seed in self.seeds:
            try:
                found = validate(topology_from_dict(
                    self._fetch(seed + "/_atoll/topology", DISCOVERY_TIMEOUT_S)))
            except (OSError, ValueError, AtollError) as exc:
                log.info("seed %s did not give a topology: %s", seed, exc)
                continue
            if cached is None or found.generation >= cached.generation:
                self._save_cache(found)
                return found
            return cached  # a seed serving an older generation does not win
        if cached is not None:
            log.warning("no seed answered; using the cached topology (generation %d)",
                        cached.generation)
            return cached
        raise DiscoveryError(f"no seed answered ({', '.join(self.seeds)}) and no topology "
                             f"is cached at {self.cache_path}")

    def _load_cache(self) -> ClusterConfig | None:
        try:
            return validate(topology_from_dict(json.loads(self.cache_path.read_text())))
        except (OSError, ValueError, AtollError):
            return None

    def _save_cache(self, topology: ClusterConfig) -> None:
        try:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.cache_path.with_suffix(f".tmp{os.getpid()}")
            temporary.write_text(json.dumps(topology.to_dict()))
            os.replace(temporary, self.cache_path)
        except OSError as exc:
            log.warning("could not cache the topology at %s: %s", self.cache_path, exc)

    def _refresh_topology(self) -> None:
        sources = [e for r in self.ordered_regions() for e in r.client_endpoints] + self.seeds
        for source in sources:
            try:
                found = validate(topology_from_dict(
                    self._fetch(source + "/_atoll/topology", DISCOVERY_TIMEOUT_S)))
            except (OSError, ValueError, AtollError):
                continue
            with self._lock:
                if (found.cluster_id == self.topology.cluster_id
                        and found.generation > self.topology.generation):
                    log.info("topology generation %d -> %d", self.topology.generation,
                             found.generation)
                    self.topology = found
                    self._sync_health()
                    self._save_cache(found)
            return

    def _sync_health(self) -> None:
        for region in self.topology.regions:
            self.health.setdefault(region.id, RegionHealth())

    # --- health ------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(self.probe_interval_s):
            self.probe_all()
            if time.monotonic() - self._last_refresh > TOPOLOGY_REFRESH_S:
                self._last_refresh = time.monotonic()
                self._refresh_topology()

    def probe_all(self) -> None:
        for region in self.topology.regions:
            started = time.monotonic()
            error = None
            for endpoint in region.client_endpoints:
                try:
                    with urllib.request.urlopen(endpoint + "/health",  # noqa: S310
                                                timeout=PROBE_TIMEOUT_S) as response:
                        response.read()
                    error = None
                    break
                except (OSError, urllib.error.URLError) as exc:
                    error = str(exc)
            latency_ms = round((time.monotonic() - started) * 1000, 2)
            with self._lock:
                health = self.health.setdefault(region.id, RegionHealth())
                health.probes += 1
                if error is None:
                    health.healthy = True
                    health.consecutive_failures = 0
                    health.last_latency_ms = latency_ms
                else:
                    health.healthy = False
                    health.probe_failures += 1
                    health.consecutive_failures += 1
                    health.last_error = error

    def mark_failed(self, region_id: str, error: str) -> None:
        with self._lock:
            health = self.health.setdefault(region_id, RegionHealth())
            health.healthy = False
            health.requests_failed += 1
            health.last_error = error

    def mark_served(self, region_id: str, first_choice: str) -> None:
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
        with self._lock:
            self.metrics.requests += 1
            self.metrics.errors_surfaced += 1

    def mark_retry(self) -> None:
        with self._lock:
            self.metrics.retries += 1

    # --- routing -----------------------------------------------------------------------
    def ordered_regions(self) -> list[Any]:
        regions = list(self.topology.regions)
        rank = {r: i for i, r in enumerate(self.preference)}
        return sorted(regions, key=lambda r: rank.get(r.id, len(rank)))

    def candidates(self) -> list[tuple[str, str]]:
        """(region id, client endpoint) to try in order: healthy regions by preference,
        then the others."""
        with self._lock:
            ordered = self.ordered_regions()
            healthy = [r for r in ordered if self.health.get(r.id, RegionHealth()).healthy]
            rest = [r for r in ordered if r not in healthy]
        return [(r.id, e) for r in healthy + rest for e in r.client_endpoints]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            metrics = self.metrics
            return {"route": metrics.route, "requests": metrics.requests,
                    "failovers": metrics.failovers, "retries": metrics.retries,
                    "errors_surfaced": metrics.errors_surfaced,
                    "route_changes": metrics.route_changes,
                    "served_by": dict(metrics.served_by),
                    "topology_generation": self.topology.generation,
                    "cluster_id": self.topology.cluster_id,
                    "preference": [r.id for r in self.ordered_regions()],
                    "regions": {k: v.as_dict() for k, v in self.health.items()}}

    def close(self) -> None:
        self._stop.set()
