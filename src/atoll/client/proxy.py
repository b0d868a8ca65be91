"""`atoll proxy`: a local sidecar any SDK or tool points `endpoint_url` at.

Each DynamoDB request (a POST with `X-Amz-Target`) is forwarded, body unchanged, to the
region the Router chooses — the same topology, health probes and failover rules as the
boto3 failover client (routing.py). Upstream connections are kept alive, a small pool per
region endpoint. `GET /health` answers probes of the proxy itself; `GET /_atoll/proxy/metrics`
shows the route, failovers and per-region probe results as JSON, `GET /metrics` the same in
Prometheus text format.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from typing import Any

import orjson

from atoll.client.routing import Router, retry_safe
from atoll.node.httpclient import HttpClient, PeerHttpError
from atoll.server.http import HttpServer

log = logging.getLogger(__name__)

POOL_SIZE = 16
REQUEST_TIMEOUT_S = 10.0
FAILOVER_BUDGET_S = 5.0
_UNAVAILABLE = orjson.dumps({
    "__type": "com.amazon.coral.service#ServiceUnavailableException",
    "message": "No region could take the request (atoll proxy)"})


class _Pool:
    """Keep-alive connections to one endpoint; each carries one request at a time."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.idle: list[HttpClient] = []

    async def send(self, target: str, body: bytes) -> tuple[int, bytes]:
        client = self.idle.pop() if self.idle else HttpClient(self.endpoint)
        try:
            result = await client.request(
                "POST", "/", body, REQUEST_TIMEOUT_S,
                {"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.0"})
        except PeerHttpError:
            client.close()
            raise
        if len(self.idle) < POOL_SIZE:
            self.idle.append(client)
        else:
            client.close()
        return result


class Proxy:
    def __init__(self, router: Router) -> None:
        self.router = router
        self.pools: dict[str, _Pool] = {}
        self.http = HttpServer(self.forward, self.get)

    async def forward(self, target: str | None, body: bytes) -> tuple[int, bytes]:
        operation = (target or "").rpartition(".")[2]
        candidates = self.router.candidates()
        first = candidates[0][0]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FAILOVER_BUDGET_S
        safe: bool | None = None
        last: tuple[int, bytes] = (503, _UNAVAILABLE)
        for attempt, (region, endpoint) in enumerate(candidates):
            if attempt:
                if loop.time() > deadline:
                    break
                self.router.mark_retry()
            pool = self.pools.get(endpoint)
            if pool is None:
                pool = self.pools[endpoint] = _Pool(endpoint)
            try:
                status, answer = await pool.send(target or "", body)
            except PeerHttpError as exc:
                self.router.mark_failed(region, str(exc))
                if not exc.sent:
                    continue  # never reached the region: always safe elsewhere
                if safe is None:
                    safe = _safe(operation, body)
                if safe:
                    continue
                break
            if status >= 500:
                self.router.mark_failed(region, f"HTTP {status}")
                last = (status, answer)
                if safe is None:
                    safe = _safe(operation, body)
                if safe:
                    continue
                break
            self.router.mark_served(region, first)
            return status, answer
        self.router.mark_surfaced()
        return last

    def get(self, path: str) -> tuple[int, bytes, bytes]:
        if path == "/health":
            return 200, b'{"status":"ok"}', b"application/json"
        if path == "/_atoll/proxy/metrics":
            return 200, orjson.dumps(self.router.snapshot()), b"application/json"
        if path == "/metrics":
            return 200, prometheus_text(self.router.snapshot()).encode(), b"text/plain"
        return 404, b'{"message":"not found"}', b"application/json"


def _safe(operation: str, body: bytes) -> bool:
    try:
        request = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        return False
    return isinstance(request, dict) and retry_safe(operation, request)


def prometheus_text(snapshot: dict[str, Any]) -> str:
    lines = [
        "# TYPE atoll_proxy_requests_total counter",
        f"atoll_proxy_requests_total {snapshot['requests']}",
        "# TYPE atoll_proxy_failovers_total counter",
        f"atoll_proxy_failovers_total {snapshot['failovers']}",
        "# TYPE atoll_proxy_errors_surfaced_total counter",
        f"atoll_proxy_errors_surfaced_total {snapshot['errors_surfaced']}",
        "# TYPE atoll_proxy_region_healthy gauge",
    ]
    for region, health in snapshot["regions"].items():
        lines.append(f'atoll_proxy_region_healthy{{region="{region}"}} {int(health["healthy"])}')
    lines.append("# TYPE atoll_proxy_route gauge")
    for region in snapshot["regions"]:
        lines.append(f'atoll_proxy_route{{region="{region}"}} '
                     f'{int(snapshot["route"] == region)}')
    return "\n".join(lines) + "\n"


async def run_proxy(host: str, port: int, seeds: Sequence[str], prefer: Sequence[str],
                    cache_path: str | None = None) -> None:
    router = await asyncio.to_thread(Router, seeds, prefer, cache_path)
    proxy = Proxy(router)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(proxy.http.protocol, host, port, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"atoll proxy: listening on http://{host}:{port}, cluster "
          f"{router.topology.cluster_id} (generation {router.topology.generation}), "
          f"preference {[r.id for r in router.ordered_regions()]}", flush=True)
    await stop.wait()
    server.close()
    await proxy.http.drain(5.0)
    router.close()
    print("atoll proxy: stopped", flush=True)
