"""The node's topology: kept durable, served, updated by compare-and-set, spread to peers.

Theory of operation
- One `TopologyKeeper` per node holds the current topology. Every update — an operator's
  `POST /_atoll/topology`, a peer pushing what it accepted, a newer one fetched from a
  peer — goes through `offer`, which under one lock asks the pure rule
  (atoll.topology.update.decide), then, only if accepted: persists (TopologyFile: write
  a temporary file, fsync, rename, fsync the directory), installs it in memory, tells the
  node (the replicator follows it), and spreads it. Persist before anything else: a node
  never serves or spreads a topology it would lose in a crash, so after a restart it
  holds the newest generation it ever acknowledged.
- Spreading is push and pull. An accepted change is pushed at once to every other
  region's peer endpoint (one attempt each). Every GOSSIP_INTERVAL_S the node asks each
  peer for its topology (GET, a few hundred bytes): a newer one is offered to itself, an
  older one gets ours pushed — which also retries pushes that failed, with no separate
  retry queue. A region that was down or partitioned catches up within one interval of
  coming back.
- Refusals (stale, other cluster, conflicting, invalid) are logged with the generation
  and the reason, and the last MAX_REFUSALS are kept for /_atoll/status. Repeats of the
  same refusal from the same source are counted, not logged again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from atoll.http.client import HttpClient, PeerHttpError
from atoll.topology.model import ClusterConfig, TopologyError, topology_from_dict
from atoll.topology.update import Accept, Reject, decide

log = logging.getLogger(__name__)

TOPOLOGY_PATH = "/_atoll/topology"
GOSSIP_INTERVAL_S = 1.0
GOSSIP_TIMEOUT_S = 1.0
PUSH_TIMEOUT_S = 2.0
MAX_REFUSALS = 20
MAX_TOPOLOGY_BYTES = 1024 * 1024

JSON = b"application/json"


def topology_file_path(data_dir: str | Path, region: str) -> Path:
    """Where a node of `region` keeps its topology: next to its database."""
    return Path(data_dir) / f"topology-{region}.json"


class TopologyFile:
    """The node's current topology as one JSON file, replaced atomically."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self) -> ClusterConfig | None:
        """The stored topology; None if there is none or it cannot be read (logged)."""
        try:
            data = orjson.loads(self.path.read_bytes())
            return topology_from_dict(data)
        except FileNotFoundError:
            return None
        except (OSError, orjson.JSONDecodeError, TopologyError) as exc:
            log.error("ignoring the stored topology %s: %s", self.path, exc)
            return None

    def save(self, topology: ClusterConfig) -> None:
        body = orjson.dumps(topology.to_dict(), option=orjson.OPT_INDENT_2)
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself must survive a power loss
        finally:
            os.close(dir_fd)


@dataclass
class Refusal:
    source: str
    generation: int | None  # None: the body was not a topology at all
    kind: str
    reason: str
    first_ms: int
    last_ms: int
    count: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "generation": self.generation, "kind": self.kind,
                "reason": self.reason, "first_ms": self.first_ms, "last_ms": self.last_ms,
                "count": self.count}


@dataclass
class PeerView:
    generation: int | None = None  # what the peer last said it holds
    ok: bool = False
    last_error: str = ""


def _now_ms() -> int:
    return int(time.time() * 1000)


class TopologyKeeper:
    def __init__(self, region: str, topology: ClusterConfig, file: TopologyFile | None,
                 on_change: Callable[[ClusterConfig, ClusterConfig], None],
                 peer_client: Callable[[str, Sequence[str], dict[str, str]], HttpClient]
                 | None = None) -> None:
        self.region = region
        # (region, its peer endpoints, headers) -> a client for that region only
        self._peer_client = peer_client or (lambda _r, endpoints, headers: HttpClient(
            endpoints, headers))
        self.current = topology
        self.file = file
        self.on_change = on_change  # (previous, new), called after the new one is durable
        self.refusals: deque[Refusal] = deque(maxlen=MAX_REFUSALS)
        self.refused_total = 0
        self.accepted_total = 0
        self.peers: dict[str, PeerView] = {}
        self._clients: dict[str, HttpClient] = {}
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        self._spawn(self._gossip_loop(), "topology gossip")

    async def stop(self) -> None:
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for client in self._clients.values():
            client.close()

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("topology task %s failed", task.get_name(), exc_info=task.exception())

    # --- HTTP --------------------------------------------------------------------------
    def handle_get(self) -> tuple[int, bytes, bytes]:
        return 200, orjson.dumps(self.current.to_dict()), JSON

    async def handle_post(self, body: bytes, source: str) -> tuple[int, bytes]:
        """POST /_atoll/topology: 200 accepted, 409 stale/foreign/conflicting, 400
        invalid, 503 if it could not be stored. Never 500."""
        try:
            if len(body) > MAX_TOPOLOGY_BYTES:
                raise TopologyError(f"topology larger than {MAX_TOPOLOGY_BYTES} bytes")
            proposed = topology_from_dict(orjson.loads(body))
        except (orjson.JSONDecodeError, TopologyError) as exc:
            reason = f"malformed topology: {getattr(exc, 'message', exc)}"
            self._refused(source, None, "invalid", reason)
            return 400, self._refusal_body(reason)
        try:
            outcome = await self.offer(proposed, source)
        except OSError as exc:
            log.error("could not store topology generation %d: %s", proposed.generation, exc)
            return 503, self._refusal_body(f"could not store the topology: {exc}")
        except Exception as exc:  # a bug: say so, but answer (never a 500 or a dead socket)
            log.critical("topology update failed", exc_info=exc)
            return 503, self._refusal_body(f"internal error: {exc!r}")
        if isinstance(outcome, Reject):
            return (400 if outcome.invalid else 409), self._refusal_body(outcome.reason)
        return 200, orjson.dumps({"accepted": True, "generation": outcome.topology.generation,
                                  "changed": outcome.changed})

    def _refusal_body(self, reason: str) -> bytes:
        return orjson.dumps({"accepted": False, "reason": reason,
                             "current_generation": self.current.generation})

    # --- the update path ---------------------------------------------------------------
    async def offer(self, proposed: ClusterConfig, source: str) -> Accept | Reject:
        """Apply `proposed` if the compare-and-set rule allows it: persist, install,
        notify, spread — in that order."""
        async with self._lock:
            previous = self.current
            outcome = decide(previous, proposed)
            if isinstance(outcome, Reject):
                self._refused(source, proposed.generation, outcome.kind, outcome.reason)
                return outcome
            if not outcome.changed:
                return outcome
            if self.file is not None:
                await asyncio.get_running_loop().run_in_executor(None, self.file.save, proposed)
            self.current = proposed
            self.accepted_total += 1
            log.warning("accepted topology generation %d from %s (was %d): regions %s",
                        proposed.generation, source, previous.generation,
                        ", ".join(proposed.region_ids()))
            try:
                self.on_change(previous, proposed)
            except Exception:  # the topology stands (it is durable); following it failed
                log.critical("following topology generation %d failed", proposed.generation,
                             exc_info=True)
        if not self._stopping:
            targets = {r.id: r for r in (*previous.regions, *proposed.regions)
                       if r.id != self.region}
            for region_id in targets:
                self._spawn(self._push(region_id, proposed), f"topology push {region_id}")
        return outcome

    def _refused(self, source: str, generation: int | None, kind: str, reason: str) -> None:
        self.refused_total += 1
        for refusal in self.refusals:
            if (refusal.source, refusal.generation, refusal.kind) == (source, generation, kind):
                refusal.count += 1
                refusal.last_ms = _now_ms()
                return  # logged the first time
        now = _now_ms()
        self.refusals.append(Refusal(source, generation, kind, reason[:500], now, now))
        log.warning("refused topology generation %s from %s (%s): %s",
                    generation if generation is not None else "?", source, kind, reason)

    # --- spreading ---------------------------------------------------------------------
    def _client(self, region_id: str) -> HttpClient | None:
        """A client for `region_id`'s peer endpoints (current topology, else None)."""
        if not self.current.has_region(region_id):
            client = self._clients.get(region_id)
            return client  # a region just removed still hears about its removal
        endpoints = self.current.region(region_id).peer_endpoints
        client = self._clients.get(region_id)
        if client is None:
            client = self._peer_client(region_id, endpoints, {
                "X-Atoll-Cluster": self.current.cluster_id, "X-Atoll-Region": self.region})
            self._clients[region_id] = client
        else:
            client.set_endpoints(endpoints)
        return client

    async def _push(self, region_id: str, topology: ClusterConfig) -> None:
        client = self._client(region_id)
        if client is None or self.current.generation != topology.generation:
            return  # superseded: the newer one is pushed by its own accept
        try:
            status, body = await client.post(TOPOLOGY_PATH, orjson.dumps(topology.to_dict()),
                                             PUSH_TIMEOUT_S)
        except PeerHttpError as exc:
            view = self._peer(region_id)
            view.ok, view.last_error = False, str(exc)[:300]
            return  # the gossip loop retries
        view = self._peer(region_id)
        view.ok = True
        try:
            answer = orjson.loads(body)
            view.generation = int(answer.get("generation") or answer.get("current_generation"))
        except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
            pass
        if status not in (200, 409):
            log.warning("pushing topology generation %d to %s: status %d %s",
                        topology.generation, region_id, status, body[:200])

    def _peer(self, region_id: str) -> PeerView:
        return self.peers.setdefault(region_id, PeerView())

    async def _gossip_loop(self) -> None:
        """Compare at once (a node that starts with a newer topology, e.g. a region
        joining, announces it without waiting), then every GOSSIP_INTERVAL_S."""
        while not self._stopping:
            others = [r.id for r in self.current.regions if r.id != self.region]
            for gone in set(self.peers) - set(others):
                del self.peers[gone]
            outcomes = await asyncio.gather(*(self._compare(r) for r in others),
                                            return_exceptions=True)
            for region_id, outcome in zip(others, outcomes):
                if isinstance(outcome, Exception):  # e.g. the disk refused the new one
                    log.error("comparing topologies with %s failed: %r", region_id, outcome)
            await asyncio.sleep(GOSSIP_INTERVAL_S)

    async def _compare(self, region_id: str) -> None:
        """Fetch `region_id`'s topology: adopt a newer one, push ours if it is behind."""
        client = self._client(region_id)
        if client is None:
            return
        view = self._peer(region_id)
        try:
            status, body = await client.get(TOPOLOGY_PATH, GOSSIP_TIMEOUT_S)
            if status != 200:
                raise PeerHttpError(f"status {status}")
            theirs = topology_from_dict(orjson.loads(body))
        except (PeerHttpError, orjson.JSONDecodeError, TopologyError) as exc:
            view.ok, view.last_error = False, str(exc)[:300]
            return
        view.ok, view.generation, view.last_error = True, theirs.generation, ""
        ours = self.current
        if theirs.cluster_id != ours.cluster_id or theirs.generation > ours.generation:
            await self.offer(theirs, f"peer {region_id}")  # a foreign one is refused (status)
        elif theirs.generation < ours.generation:
            await self._push(region_id, ours)
        elif not theirs.same_layout(ours):
            await self.offer(theirs, f"peer {region_id}")  # refused as a conflict (status)

    # --- observability -----------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return {"cluster_id": self.current.cluster_id,
                "generation": self.current.generation,
                "regions": list(self.current.region_ids()),
                "accepted_total": self.accepted_total,
                "refused_total": self.refused_total,
                "refused": [r.to_dict() for r in self.refusals],
                "peers": {p: {"generation": v.generation, "ok": v.ok, "last_error": v.last_error}
                          for p, v in sorted(self.peers.items())}}
