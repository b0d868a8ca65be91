"""The live web console: one HTML page, and the cluster view it polls.

Theory of operation
- `GET /console` is a single self-contained page (console.html beside this module:
  inline CSS and JavaScript, no build step, nothing fetched from elsewhere), so it works
  where the internet is not reachable. It polls `GET /_atoll/console/cluster` on the node
  that served it, every second.
- That endpoint is answered by this node for the whole cluster: it reads its own
  figures, fetches every other region's `GET /_atoll/console/region` from the region's
  client endpoints in the topology, concurrently, each with FETCH_TIMEOUT_S, and builds
  the view (atoll.node.clusterview). Asking from the node rather than from the browser:
  the browser needs to reach one node only (a tunnel or a load balancer is enough), no
  cross-origin requests are needed, and the nodes already know the current endpoints.
  A region that does not answer in time is shown DOWN: with a poll every second and a
  0.8 s timeout, a dead region is shown so within 2 s.
- Polls that arrive while a gather is running share it (several open consoles cost one
  round of fetches). Throughput is the change in each region's counters between gathers
  (CounterRates), over the last RATE_WINDOW_S.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from importlib import resources
from typing import Any

import orjson

from atoll.http.client import HttpClient, PeerClientFactory, PeerHttpError
from atoll.node.clusterview import cluster_view
from atoll.topology.config import ClusterConfig, RegionConfig

FETCH_TIMEOUT_S = 0.8
RATE_WINDOW_S = 10.0
RATE_SAMPLES = 64  # per region: bounds the history kept for rates
REGION_PATH = "/_atoll/console/region"
CLUSTER_PATH = "/_atoll/console/cluster"
_COUNTERS = ("requests", "writes", "applied")


def console_page() -> bytes:
    return resources.files("atoll.node").joinpath("console.html").read_bytes()


def _counters(figures: dict[str, Any]) -> tuple[int, int, int]:
    replication = figures.get("replication") or {}
    return (int(figures["requests_total"]), int(figures["writes_total"]),
            int(replication.get("applied_total") or 0))


class CounterRates:
    """Per-second rates of a region's counters from samples taken at each gather."""

    def __init__(self) -> None:
        self.samples: dict[str, deque[tuple[float, tuple[int, int, int]]]] = {}

    def add(self, region: str, at_s: float, counters: tuple[int, int, int]
            ) -> dict[str, float | None]:
        """Record a sample; the rates over the window ending at it (None until there are
        two samples at least 0.2 s apart)."""
        history = self.samples.setdefault(region, deque(maxlen=RATE_SAMPLES))
        if history and any(now < then for now, then in zip(counters, history[-1][1])):
            history.clear()  # the region restarted: its counters began again
        history.append((at_s, counters))
        while len(history) > 2 and at_s - history[1][0] >= RATE_WINDOW_S:
            history.popleft()
        first_s, first = history[0]
        span_s = at_s - first_s
        if span_s < 0.2:
            return {f"{name}_per_s": None for name in _COUNTERS}
        return {f"{name}_per_s": round((now - then) / span_s, 1)
                for name, now, then in zip(_COUNTERS, counters, first, strict=True)}

    def forget(self, region: str) -> None:
        self.samples.pop(region, None)


class ClusterGatherer:
    """Fetches every region's figures for the console (event-loop thread)."""

    def __init__(self, region: str, endpoint: str, local: Callable[[], dict[str, Any]],
                 peer_client: PeerClientFactory | None = None,
                 peer_headers: dict[str, str] | None = None) -> None:
        self.region = region
        self.endpoint = endpoint  # this node's client endpoint (a node without a cluster)
        self.local = local
        # With mutual TLS between regions, other regions are asked over the peer link
        # (their client ports answer only signed requests, and a node has no key of its
        # own; the peer port answers a certificate of the cluster naming a region of the
        # topology, and the client checks the server's certificate names that region).
        self.peer_client = peer_client
        self.peer_headers = peer_headers or {}
        self.clients: dict[str, HttpClient] = {}
        self.rates = CounterRates()
        self._running: asyncio.Future[dict[str, Any]] | None = None

    async def view(self, topology: ClusterConfig | None) -> dict[str, Any]:
        """The cluster view (of this node alone when it runs without a cluster);
        concurrent callers share one gather."""
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self._gather(topology))
        return await asyncio.shield(self._running)

    async def _gather(self, topology: ClusterConfig | None) -> dict[str, Any]:
        if topology is None:
            topology = ClusterConfig("", (RegionConfig(self.region, self.endpoint,
                                                       self.endpoint),), 0)
        self._follow(topology)
        others = [r for r in topology.regions if r.id != self.region]
        fetched = await asyncio.gather(*(self._fetch(r) for r in others))
        answers: dict[str, dict[str, Any] | str] = dict(zip((r.id for r in others), fetched))
        if topology.has_region(self.region):
            answers[self.region] = self.local()
        now = time.monotonic()
        rates = {}
        for rid, answer in answers.items():
            if isinstance(answer, str):
                self.rates.forget(rid)
            else:
                rates[rid] = self.rates.add(rid, now, _counters(answer))
        regions = [{"id": r.id, "client_endpoints": r.client_endpoints,
                    "peer_endpoints": r.peer_endpoints} for r in topology.regions]
        view = cluster_view(regions, answers, rates=rates)
        view.update(served_by=self.region, cluster_id=topology.cluster_id,
                    time_unix_s=round(time.time(), 3), fetch_timeout_s=FETCH_TIMEOUT_S)
        return view

    def _follow(self, topology: ClusterConfig) -> None:
        """One client per other region, at its current client (or peer) endpoints."""
        wanted = {r.id: r for r in topology.regions if r.id != self.region}
        for gone in [r for r in self.clients if r not in wanted]:
            self.clients.pop(gone).close()
        for rid, region in wanted.items():
            endpoints = (region.peer_endpoints if self.peer_client is not None
                         else region.client_endpoints)
            if rid in self.clients:
                self.clients[rid].set_endpoints(endpoints)
            elif self.peer_client is not None:
                self.clients[rid] = self.peer_client(rid, endpoints, self.peer_headers)
            else:
                self.clients[rid] = HttpClient(endpoints)

    async def _fetch(self, region: RegionConfig) -> dict[str, Any] | str:
        """The region's figures, or why not (a short reason for the console)."""
        try:
            status, body = await self.clients[region.id].get(REGION_PATH, FETCH_TIMEOUT_S)
        except PeerHttpError as exc:
            text = str(exc)
            if "TimeoutError" in text:
                return f"no answer within {FETCH_TIMEOUT_S:.1f} s"
            if "ConnectionRefused" in text:
                return "connection refused"
            return "unreachable: " + text[-120:]
        if status != 200:
            return f"answered {status}"
        try:
            figures = orjson.loads(body)
        except orjson.JSONDecodeError:
            return "answered something that is not JSON"
        return figures if isinstance(figures, dict) else "answered an unexpected shape"

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
        self.clients.clear()
