"""The operator's endpoints of a node: `/metrics`, `/console` and the console's JSON.

- `GET /metrics`: Prometheus text exposition (atoll.node.metrics).
- `GET /console`: the live web console (atoll.node.console).
- `GET /_atoll/console/region`: this region's figures (atoll.node.figures), JSON.
- `GET /_atoll/console/cluster`: every region's figures and health, JSON.

They are served on the client port beside `/_atoll/status`, and protected the same way
(today: not at all, like the rest of the client port). Like every status GET, an answer
that read storage state leaves only once what it read is durable.

Sources for figures that other components provide (authentication failures, verify
results) are attached with `attach_auth` / `attach_verify`; until then those figures
are `None` and the console says "not available".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import orjson

from atoll.errors import ServiceUnavailable
from atoll.http.client import PeerClientFactory
from atoll.node.conflictlog import RecentConflicts
from atoll.node.console import CLUSTER_PATH, REGION_PATH, ClusterGatherer, console_page
from atoll.node.figures import AuthFigures, NodeView, VerifyFigures, region_figures
from atoll.node.metrics import CONTENT_TYPE, NodeCollector, NodeMetrics

OPERATOR_PATHS = frozenset({"/metrics", "/console", REGION_PATH, CLUSTER_PATH})
_JSON = b"application/json"
Answer = tuple[int, bytes, bytes]


class OperatorEndpoints:
    def __init__(self, node: NodeView) -> None:
        self.node = node
        self.conflicts = RecentConflicts()
        self.auth: AuthFigures | None = None
        self.verify: VerifyFigures | None = None
        self.metrics = NodeMetrics(NodeCollector(self.figures, node.api.stats.snapshot))
        self.gatherer = ClusterGatherer(node.config.region,
                                        f"http://{node.config.host}:{node.config.port}",
                                        self.figures)
        self._page: bytes | None = None

    def attach_auth(self, source: AuthFigures) -> None:
        self.auth = source

    def attach_peer_link(self, peer_client: PeerClientFactory, headers: dict[str, str]) -> None:
        """Ask the other regions for their figures over the peer link (mutual TLS)."""
        self.gatherer.close()
        self.gatherer.peer_client = peer_client
        self.gatherer.peer_headers = headers

    def attach_verify(self, source: VerifyFigures) -> None:
        self.verify = source

    def figures(self) -> dict[str, Any]:
        return region_figures(self.node, self.conflicts, self.auth, self.verify)

    def get(self, path: str) -> Answer | Awaitable[Answer]:
        if path == "/console":
            if self._page is None:
                self._page = console_page()
            return 200, self._page, b"text/html; charset=utf-8"
        if path == CLUSTER_PATH:
            return self._cluster()
        if path == "/metrics":
            return self._settled((200, self.metrics.render(), CONTENT_TYPE))
        return self._settled((200, orjson.dumps(self.figures()), _JSON))

    async def _cluster(self) -> Answer:
        topology = self.node.topology
        view = await self.gatherer.view(None if topology is None else topology.current)
        return await self._settled_async((200, orjson.dumps(view), _JSON))

    def _settled(self, answer: Answer) -> Answer | Awaitable[Answer]:
        waiter = self.node.storage.settle()
        return answer if waiter is None else self._wait(waiter, answer)

    async def _settled_async(self, answer: Answer) -> Answer:
        result = self._settled(answer)
        return result if isinstance(result, tuple) else await result

    @staticmethod
    async def _wait(waiter: asyncio.Future[None], answer: Answer) -> Answer:
        try:
            await waiter
        except ServiceUnavailable as exc:
            return 503, orjson.dumps({"message": exc.message}), _JSON
        return answer

    def close(self) -> None:
        self.gatherer.close()
