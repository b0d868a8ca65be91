"""ClockWatch: measures this region's clock offset to every peer, and refuses local
writes while the clock is off from most of them (the asyncio shell around the pure
atoll.clock.offset).

Theory of operation
- Probing: every PROBE_INTERVAL_S, one `POST /_atoll/time` to each peer over the
  replication link (its peer endpoints, this cluster's headers), on a connection of its
  own so that a long poll on the pull connection never delays a probe. The body carries
  t0; the peer answers t1 (received) and t2 (answered); t3 is read when the answer is
  back. All four stamps come from each node's wall clock as its engine sees it (a drill's
  `--clock-offset-ms` included); the ages of samples come from the monotonic clock.
- Judging: after each round `PeerOffsets.judge` (majority of the peers with a fresh
  estimate, certainly beyond `max_offset_ms`, whatever the peers not heard from yet
  since start say). While the clock is off the engine's
  HybridClock refuses to stamp local writes: each raises ClockOffsetTooLarge, answered
  as HTTP 503 ServiceUnavailableException — boto3 retries it, and the failover client
  and `atoll proxy` send a request that is safe to resend to another region. Reads,
  replication in both directions and the peer link go on. The first round runs at
  start; until it is judged (at most PROBE_TIMEOUT_S) a node takes writes as usual.
- Recovery is the same path: the first round that judges the clock within bounds lifts
  the refusal (a sample contradicting the newest one is dropped at once, see
  atoll.clock.offset, so a corrected clock counts as corrected within a probe or two).
- Logging: a warning when refusal starts, one line per LOG_INTERVAL_S while it lasts
  (with the writes refused meanwhile), and one when it ends: never one per request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson

from atoll.clock import HybridClock
from atoll.clock.offset import ClockJudgement, PeerOffsets, sample_of
from atoll.http.client import HttpClient, PeerClientFactory, PeerHttpError, plain_peer_client
from atoll.topology.config import ClusterConfig

log = logging.getLogger(__name__)

TIME_PATH = "/_atoll/time"
PROBE_INTERVAL_S = 0.5
PROBE_TIMEOUT_S = 2.0
LOG_INTERVAL_S = 10.0


class ClockWatch:
    def __init__(self, region: str, topology: Callable[[], ClusterConfig], clock: HybridClock,
                 now_ms: Callable[[], int], max_offset_ms: int,
                 peer_client: PeerClientFactory = plain_peer_client) -> None:
        """`peer_client` makes the client for one peer region (the node's: mutual TLS in
        a cluster with certificates, so probes reach peer ports that demand it)."""
        self.region = region
        self.peer_client = peer_client
        self.topology = topology
        self.clock = clock
        self.now_ms = now_ms  # the node's wall clock, as its engine reads it
        self.max_offset_ms = max_offset_ms
        self.offsets = PeerOffsets()
        self.clients: dict[str, HttpClient] = {}
        self.judgement: ClockJudgement | None = None
        self.probes = 0
        self.probe_failures = 0
        self.refusing_since_unix_s: float | None = None
        self._refused_at_log = 0
        self._next_log_mono = 0.0
        self._task: asyncio.Task[Any] | None = None

    # --- serving -------------------------------------------------------------------------
    def serve(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        """A peer's probe: {"t0"} in, {"t0", "t1", "t2"} out."""
        received_ms = self.now_ms()
        cluster = self.topology()
        if (headers.get("x-atoll-cluster") != cluster.cluster_id
                or headers.get("x-atoll-region") not in cluster.region_ids()):
            return 403, b'{"message":"not a member of this cluster"}'
        try:
            sent_ms = orjson.loads(body)["t0"]
        except (orjson.JSONDecodeError, TypeError, KeyError):
            sent_ms = None
        if type(sent_ms) is not int:
            return 400, b'{"message":"expected {\\"t0\\": milliseconds}"}'
        return 200, orjson.dumps({"t0": sent_ms, "t1": received_ms, "t2": self.now_ms()})

    # --- probing -------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="clock watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for client in self.clients.values():
            client.close()
        self.clients.clear()

    async def _run(self) -> None:
        while True:
            try:
                await self.probe_round()
            except Exception:  # a bug must not end the watch: the refusal would stick
                log.exception("clock offset probe round failed")
            await asyncio.sleep(PROBE_INTERVAL_S)

    async def probe_round(self) -> ClockJudgement:
        """Probe every peer once (concurrently), then judge and apply the judgement."""
        cluster = self.topology()
        peers = cluster.peers_of(self.region) if cluster.has_region(self.region) else ()
        headers = {"X-Atoll-Cluster": cluster.cluster_id, "X-Atoll-Region": self.region}
        for gone in [p for p in self.clients if p not in {r.id for r in peers}]:
            self.clients.pop(gone).close()
        for peer in peers:
            if peer.id in self.clients:
                self.clients[peer.id].set_endpoints(peer.peer_endpoints)
            else:
                self.clients[peer.id] = self.peer_client(peer.id, peer.peer_endpoints, headers)
        self.offsets.keep_only(r.id for r in peers)
        await asyncio.gather(*(self._probe(peer.id) for peer in peers))
        judgement = self.offsets.judge([r.id for r in peers], _mono_ms(), self.max_offset_ms)
        self._apply(judgement)
        return judgement

    async def _probe(self, peer: str) -> None:
        client = self.clients[peer]
        sent_ms = self.now_ms()
        try:
            status, body = await client.post(TIME_PATH, orjson.dumps({"t0": sent_ms}),
                                             PROBE_TIMEOUT_S)
            back_ms = self.now_ms()
            if status != 200:
                raise PeerHttpError(f"status {status}")
            answer = orjson.loads(body)
            stamps = (answer["t0"], answer["t1"], answer["t2"])
            if stamps[0] != sent_ms or not all(type(t) is int for t in stamps):
                raise ValueError("answer is not this probe's")
        except (PeerHttpError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            self.probe_failures += 1
            log.debug("clock probe of %s failed: %s", peer, exc)
            return
        self.probes += 1
        sample = sample_of(sent_ms, stamps[1], stamps[2], back_ms, _mono_ms())
        if sample is not None:
            self.offsets.record(peer, sample)

    def _apply(self, judgement: ClockJudgement) -> None:
        self.judgement = judgement
        refusing = self.clock.refusal is not None
        now = time.monotonic()
        if judgement.off:
            reason = judgement.reason()
            self.clock.refusal = (f"Writes are refused in region {self.region}: {reason}. "
                                  "Reads are served; retry, or write to another region.")
            if not refusing:
                self.refusing_since_unix_s = time.time()
                self._refused_at_log = self.clock.refused_count
                self._next_log_mono = now + LOG_INTERVAL_S
                log.warning("refusing writes: %s", reason)
            elif now >= self._next_log_mono:
                log.warning("still refusing writes (%d refused in the last %.0f s): %s",
                            self.clock.refused_count - self._refused_at_log, LOG_INTERVAL_S,
                            reason)
                self._refused_at_log = self.clock.refused_count
                self._next_log_mono = now + LOG_INTERVAL_S
        elif refusing:
            self.clock.refusal = None
            self.refusing_since_unix_s = None
            log.warning("accepting writes again: this region's clock is within %d ms of "
                        "its peers", self.max_offset_ms)

    # --- observability -------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        judgement = self.judgement
        peers: dict[str, Any] = {}
        if judgement is not None:
            for peer, estimate in judgement.estimates.items():
                peers[peer] = None if estimate is None else {
                    "offset_ms": round(estimate.offset_ms, 1),
                    "uncertainty_ms": round(estimate.uncertainty_ms, 1),
                    "beyond_max": peer in judgement.beyond}
        return {"max_offset_ms": self.max_offset_ms,
                "refusing_writes": self.clock.refusal is not None,
                "reason": self.clock.refusal,
                "refusing_since_unix_s": self.refusing_since_unix_s,
                "writes_refused": self.clock.refused_count,
                "peers": peers, "pending": list(judgement.pending) if judgement else [],
                "probes": self.probes, "probe_failures": self.probe_failures}


def _mono_ms() -> int:
    return int(time.monotonic() * 1000)
