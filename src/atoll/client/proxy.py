"""`atoll proxy`: a local sidecar any SDK or tool points `endpoint_url` at.

Each DynamoDB request (a POST with `X-Amz-Target`) is forwarded, body unchanged, to the
region the Router chooses — the same topology, health probes and failover rules as the
boto3 failover client (routing.py: `Failover` decides, this module does the asyncio
I/O). Upstream connections are kept alive, a bounded idle pool per region endpoint; an
idle connection the region has closed (it restarted) is never sent on.

While a request waits for a region's answer, the proxy looks at that region's probes
every WAIT_SLICE_S: if they fail meanwhile (a hung process, a black-holed network) and
the request may be sent twice, it goes to the next region at once.

`GET /health` answers probes of the proxy itself; `GET /_atoll/proxy/metrics` shows the
route, failovers and per-region probe results as JSON, `GET /metrics` the same in the
Prometheus text format (prometheus_client).

Signatures: the proxy holds one access key (`--profile`/`--credentials`, or the AWS
environment) and the application signs its requests with that same key. The proxy
verifies each request's signature with it (atoll.auth.sigv4: a request signed with
another key, unsigned, altered or replayed outside the 5-minute window is refused with
DynamoDB's error, before anything is forwarded), then signs it again for the region
endpoint it forwards it to. Why not forward the application's signature untouched: it
covers the Host the application connected to — the proxy — so the region would receive
a request addressed to another host (a load balancer routing by Host in front of a region
would send it astray), and a proxy that forwarded whatever it received could not tell
its application from anyone else who reaches its port. Why verify at all rather than
just re-sign: a proxy that signed anything it was sent would lend its key to every
process that can reach it. The price: every request through one proxy acts with that
proxy's key and role (run one proxy per application, as a sidecar, for separate keys).
Without a key the proxy forwards requests unsigned, for clusters that run with auth off.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from atoll.auth.errors import (
    AuthError,
    ExpiredToken,
    IncompleteSignature,
    InvalidSignature,
    MissingAuthenticationToken,
    UnrecognizedClient,
)
from atoll.auth.keys import ROLE_ADMIN, AccessKey, Secret
from atoll.auth.sigv4 import SignedRequest, SigV4Verifier
from atoll.client.routing import (
    CONNECT_TIMEOUT_S,
    FAILOVER_BUDGET_S,
    Failover,
    Outcome,
    Router,
)
from atoll.client.signing import sign
from atoll.http.client import HttpClient, PeerHttpError
from atoll.http.server import HttpServer, ListenError, listen
from atoll.http.wire import Request

log = logging.getLogger(__name__)

IDLE_PER_ENDPOINT = 64
JSON_10 = "application/x-amz-json-1.0"
WAIT_SLICE_S = 0.05
_UNAVAILABLE = orjson.dumps({
    "__type": "com.amazon.coral.service#ServiceUnavailableException",
    "message": "No region could take the request (atoll proxy)"})


class _Abandoned(Exception):
    pass


_AUTH_ERROR_TYPES = {  # DynamoDB's __type for each refusal (atoll.auth.errors)
    MissingAuthenticationToken: "MissingAuthenticationTokenException",
    IncompleteSignature: "IncompleteSignatureException",
    InvalidSignature: "InvalidSignatureException",
    UnrecognizedClient: "UnrecognizedClientException",
    ExpiredToken: "ExpiredTokenException",
}
_FAR_FUTURE_MS = 2 ** 62


class ProxyKey:
    """The proxy's access key: verifies what the application signed with it, and signs
    what the proxy forwards."""

    def __init__(self, credentials: Any, now_ms: Callable[[], int] | None = None) -> None:
        frozen = credentials.get_frozen_credentials() \
            if hasattr(credentials, "get_frozen_credentials") else credentials
        self.credentials = credentials
        token = Secret(frozen.token) if frozen.token else None
        try:
            key = AccessKey(frozen.access_key, ROLE_ADMIN, None, 0, Secret(frozen.secret_key),
                            session_token=token,
                            expires_ms=_FAR_FUTURE_MS if token is not None else None)
        except ValueError as exc:
            raise ValueError(f"the proxy's key is not an Atoll access key: {exc}") from None
        self.verifier = SigV4Verifier(lambda key_id: key if key_id == key.key_id else None)
        self.now_ms = now_ms or (lambda: int(time.time() * 1000))

    def refusal(self, head: Request, body: bytes) -> tuple[int, bytes] | None:
        """DynamoDB's error if `head` is not signed with this key, else None."""
        request = SignedRequest.from_target(
            head.method.decode("latin-1"), head.url.decode("latin-1"),
            [(n.decode("latin-1"), v.decode("latin-1")) for n, v in head.headers], body)
        try:
            self.verifier.verify(request, self.now_ms())
        except AuthError as error:
            kind = _AUTH_ERROR_TYPES.get(type(error), "UnrecognizedClientException")
            log.info("refused a request: %s (key %s)", error.reason, error.key_id or "-")
            return 400, orjson.dumps({"__type": "com.amazon.coral.service#" + kind,
                                      "message": error.message})
        return None

    def headers(self, endpoint: str, target: str, body: bytes) -> dict[str, str]:
        """The headers of a request forwarded to `endpoint`, signed for it."""
        return sign(self.credentials, "POST", endpoint.rstrip("/") + "/", body,
                    {"Content-Type": JSON_10, "X-Amz-Target": target})


class _Pool:
    """Keep-alive connections to one endpoint; each carries one request at a time. A new
    connection must open within `connect_timeout_s`: an endpoint that drops SYNs (a dead
    host behind a firewall, a black-holed network) then fails as "not sent", which any
    request, even a non-idempotent one, may take to the next region at once, instead of
    waiting out the whole failover budget."""

    def __init__(self, endpoint: str, tls: ssl.SSLContext | None = None,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        self.endpoint = endpoint
        self.tls = tls if endpoint.startswith("https://") else None
        self.connect_timeout_s = connect_timeout_s
        self.idle: list[HttpClient] = []

    def take(self) -> HttpClient:
        while self.idle:
            client = self.idle.pop()
            if not client.closed_by_peer:
                return client
            client.close()
        return HttpClient(self.endpoint, tls=self.tls, connect_timeout_s=self.connect_timeout_s)

    def give_back(self, client: HttpClient) -> None:
        if len(self.idle) < IDLE_PER_ENDPOINT:
            self.idle.append(client)
        else:
            client.close()


class Proxy:
    def __init__(self, router: Router, budget_s: float = FAILOVER_BUDGET_S,
                 key: ProxyKey | None = None) -> None:
        self.router = router
        self.budget_s = budget_s
        self.key = key
        self.tls = ssl.create_default_context(cafile=router.ca_file)
        self.pools: dict[str, _Pool] = {}
        self.http = HttpServer(self.forward, self.get)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_RouterCollector(router))

    async def forward(self, target: str | None, body: bytes, head: Request) -> tuple[int, bytes]:
        if self.key is not None:
            refusal = self.key.refusal(head, body)
            if refusal is not None:
                return refusal
        trip = self.router.failover((target or "").rpartition(".")[2], body, self.budget_s)
        last: tuple[int, bytes] = (503, _UNAVAILABLE)
        for region, endpoint in trip:
            try:
                status, answer = await self._attempt(trip, region, endpoint, target or "", body)
            except PeerHttpError as exc:
                outcome = Outcome.NO_ANSWER if exc.sent else Outcome.NOT_SENT
                if trip.failed(region, outcome, str(exc)):
                    continue
                break
            except _Abandoned:
                if trip.failed(region, Outcome.ABANDONED, "its probes failed while waiting"):
                    continue
                break
            if status < 500:
                trip.served(region)
                return status, answer
            last = (status, answer)
            if not trip.failed(region, Outcome.SERVER_ERROR, f"HTTP {status}"):
                break
        trip.surfaced()
        return last

    async def _attempt(self, trip: Failover, region: str, endpoint: str, target: str,
                       body: bytes) -> tuple[int, bytes]:
        pool = self.pools.get(endpoint)
        if pool is None:
            pool = self.pools[endpoint] = _Pool(endpoint, self.tls)
        client = pool.take()
        headers = self.key.headers(endpoint, target, body) if self.key is not None \
            else {"Content-Type": JSON_10, "X-Amz-Target": target}
        request = asyncio.ensure_future(client.request(
            "POST", "/", body, max(trip.remaining_s(), 0.01), headers))
        try:
            while True:
                done, _ = await asyncio.wait((request,), timeout=WAIT_SLICE_S)
                if done:
                    break
                if trip.abandon(region):
                    request.cancel()
                    raise _Abandoned()
            result = request.result()
        except BaseException:
            client.close()
            raise
        pool.give_back(client)
        return result

    def get(self, head: Request, path: str) -> tuple[int, bytes, bytes]:
        if path == "/health":
            return 200, b'{"status":"ok"}', b"application/json"
        if path == "/_atoll/proxy/metrics":
            return 200, orjson.dumps(self.router.snapshot()), b"application/json"
        if path == "/metrics":
            return 200, generate_latest(self.registry), b"text/plain; version=0.0.4"
        return 404, b'{"message":"not found"}', b"application/json"

    def close(self) -> None:
        for pool in self.pools.values():
            for client in pool.idle:
                client.close()
            pool.idle.clear()


class _RouterCollector:
    """Prometheus metrics read from the router's snapshot at scrape time."""

    def __init__(self, router: Router) -> None:
        self.router = router

    def collect(self) -> Iterator[Metric]:
        snapshot = self.router.snapshot()
        for name, help_text in (
                ("requests", "Requests answered or failed through the proxy"),
                ("failovers", "Requests answered by another region than the first tried"),
                ("retries", "Attempts after a request's first"),
                ("errors_surfaced", "Requests no region could answer (or unsafe to retry)"),
                ("route_changes", "Times the answering region changed")):
            yield CounterMetricFamily(f"atoll_proxy_{name}", help_text, value=snapshot[name])
        route = GaugeMetricFamily("atoll_proxy_route", "1 for the region that answered the "
                                  "latest request", labels=["region"])
        served = CounterMetricFamily("atoll_proxy_served", "Requests answered per region",
                                     labels=["region"])
        healthy = GaugeMetricFamily("atoll_proxy_region_healthy", "1 when the region's "
                                    "probes pass", labels=["region"])
        latency = GaugeMetricFamily("atoll_proxy_region_probe_latency_seconds",
                                    "Latency of the last good probe", labels=["region"])
        failing = GaugeMetricFamily("atoll_proxy_region_consecutive_failures",
                                    "Probes failed in a row", labels=["region"])
        probe_failures = CounterMetricFamily("atoll_proxy_region_probe_failures",
                                             "Failed probes", labels=["region"])
        for region, health in snapshot["regions"].items():
            route.add_metric([region], int(snapshot["route"] == region))
            served.add_metric([region], snapshot["served_by"].get(region, 0))
            healthy.add_metric([region], int(health["healthy"]))
            if health["last_latency_ms"] is not None:
                latency.add_metric([region], health["last_latency_ms"] / 1000)
            failing.add_metric([region], health["consecutive_failures"])
            probe_failures.add_metric([region], health["probe_failures"])
        yield from (route, served, healthy, latency, failing, probe_failures)
        yield GaugeMetricFamily("atoll_proxy_topology_generation",
                                "Generation of the topology in use",
                                value=snapshot["topology_generation"])


async def run_proxy(host: str, port: int, seeds: Sequence[str], prefer: Sequence[str],
                    cache_path: str | None = None, budget_s: float = FAILOVER_BUDGET_S,
                    credentials: Any = None, ca_file: str | None = None) -> None:
    key = ProxyKey(credentials) if credentials is not None else None
    router = await asyncio.to_thread(lambda: Router(seeds, prefer, cache_path,
                                                    credentials=credentials, ca_file=ca_file))
    proxy = Proxy(router, budget_s, key)
    loop = asyncio.get_running_loop()
    try:
        server = await listen(proxy.http.protocol, host, port, backlog=1024)
    except ListenError:
        router.close()
        raise
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    signing = (f"requests must be signed with key {credentials.access_key}, and are signed "
               "again for each region" if key is not None
               else "requests are forwarded unsigned (no key: for clusters with auth off)")
    print(f"atoll proxy: listening on http://{host}:{port}, cluster "
          f"{router.topology.cluster_id} (generation {router.topology.generation}), "
          f"preference {[r.id for r in router.ordered_regions()]}; {signing}", flush=True)
    await stop.wait()
    server.close()
    await proxy.http.drain(5.0)
    proxy.close()
    router.close()
    print("atoll proxy: stopped", flush=True)
