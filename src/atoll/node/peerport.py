"""The peer port: what other regions of the cluster may ask of this node.

Theory of operation: every request on the peer port is answered only for a region of
the current topology, as its certificate names it (mutual TLS: atoll.node.peers.caller;
without certificates, as its headers claim, for tests and loopback-only clusters).
The handlers (replication, topology spread, clock probes, verify sessions) are told
the region the certificate names, never what the request claims, so a stranger cannot
acknowledge changes, pose as a region or take part in a verify. Refusals, and
connections whose TLS handshake failed, are counted and logged once per interval
(`refusals`, shown in /_atoll/status as peer_auth).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Protocol

import orjson

from atoll.api.access import RefusalLog
from atoll.auth.errors import AuthError
from atoll.errors import ServiceUnavailable
from atoll.http.wire import Request
from atoll.node.admin import STATUS_PATH
from atoll.node.clockwatch import TIME_PATH, ClockWatch
from atoll.node.config import NodeConfig
from atoll.node.console import REGION_PATH
from atoll.node.operator import OperatorEndpoints
from atoll.node.peers import PeerRefusal, PeerTls, caller
from atoll.node.replicator import Replicator
from atoll.node.topology import TOPOLOGY_PATH, TopologyKeeper
from atoll.node.verifier import Verifier
from atoll.node.verifylink import VERIFY_PATH
from atoll.storage import Storage

JSON = b"application/json"


class PeerPortNode(Protocol):
    """What the peer port uses of its node (atoll.node.node.Node)."""

    config: NodeConfig
    storage: Storage
    peer_tls: PeerTls | None
    topology: TopologyKeeper | None
    replicator: Replicator | None
    clock_watch: ClockWatch | None
    verifier: Verifier
    operator: OperatorEndpoints

    def status(self) -> dict[str, Any]: ...


class PeerPort:
    def __init__(self, node: PeerPortNode) -> None:
        self.node = node
        self.refusals = RefusalLog()

    def caller(self, request: Request) -> str:
        """The region a peer request comes from (PeerRefusal if it is not a peer)."""
        assert self.node.topology is not None
        claimed = (request.atoll_headers or {}).get("x-atoll-region")
        return caller(self.node.peer_tls, request.peer, claimed, self.node.topology.current,
                      self.node.config.region)

    def refused(self, request: Request, refusal: PeerRefusal) -> tuple[int, bytes]:
        self.refusals.record(AuthError(str(refusal), "peer"), "a peer request "
                             + request.url[:100].decode("latin-1"), served=False)
        return 403, orjson.dumps({"message": f"not a peer of this region: {refusal}"})

    def refused_handshake(self, address: str, reason: str) -> None:
        """A connection to the peer port that did not complete mutual TLS (no client
        certificate, another CA's, plain HTTP): counted and logged like a refused
        request (bounded: one line per interval)."""
        self.refusals.record(AuthError(f"{address}: {reason}", "peer-handshake"),
                             f"a peer connection from {address}", served=False)

    async def post(self, request: Request, path: str, body: bytes,
                   query: str) -> tuple[int, bytes]:
        """Every POST on the peer port comes from a region of the topology (its
        certificate, `caller`); the handlers are told who it is, not what it claims."""
        try:
            region = self.caller(request)
        except PeerRefusal as refusal:
            return self.refused(request, refusal)
        if path == TOPOLOGY_PATH:
            assert self.node.topology is not None
            return await self.node.topology.handle_post(body, f"peer {region}")
        assert self.node.replicator is not None
        headers = {"x-atoll-cluster": self.node.replicator.cluster.cluster_id,
                   "x-atoll-region": region}  # who it is, as its certificate says
        if path == TIME_PATH and self.node.clock_watch is not None:
            return self.node.clock_watch.serve(headers, body)  # reads no storage: no settle
        if path == VERIFY_PATH:
            return await self.node.verifier.handle_peer(headers, body)
        answer = await self.node.replicator.handle_post(path, headers, body, query)
        try:  # what a peer is sent must be durable (it may acknowledge and purge it)
            await self.node.storage.settled()
        except ServiceUnavailable as exc:
            return 503, orjson.dumps({"message": exc.message})
        return answer

    def get(self, request: Request, path: str
            ) -> tuple[int, bytes, bytes] | Awaitable[tuple[int, bytes, bytes]]:
        """GETs on the peer port, to peers only: the topology, this region's console
        figures (the other regions' consoles ask over the peer link) and its status (`atoll
        restore` asks, as the region being restored, what its peers hold)."""
        if path == "/health":
            return 200, b'{"status":"ok"}', JSON
        if path not in (TOPOLOGY_PATH, REGION_PATH, STATUS_PATH) or self.node.topology is None:
            return 404, b'{"message":"not found"}', JSON
        try:
            self.caller(request)
        except PeerRefusal as refusal:
            return (*self.refused(request, refusal), JSON)
        if path == REGION_PATH:
            return self.node.operator.get(path)
        if path == STATUS_PATH:
            return 200, orjson.dumps(self.node.status()), JSON
        return self.node.topology.handle_get()
