"""Replicator: the asyncio shell that drives the replication core between regions.

Theory of operation
- Serving: each node listens on its peer endpoint. `POST /_atoll/pull` carries a `Pull`
  (atoll.replication.protocol) with the puller's cursors; the answer is a `Batch` of
  committed changelog records above those cursors, for the origins the puller asks
  for (`?origins=`). With nothing new, the request is held (long poll, at most
  `wait_ms`) until the next local commit, so a change travels as soon as it is durable.
- Pulling: one loop per peer. A region pulls each origin's changes directly from that
  origin. When the direct link to origin X has failed for DIRECT_STALE_S, it also asks
  every other peer for X's changes: changelogs hold every change a region applied, so
  C's writes reach A through B while A cannot reach C (a partial partition).
- Applying: `plan_batch` (pure) picks, per origin, the run of changes continuing the
  cursor; `replica.apply_job` applies the run in ONE storage transaction with the
  cursors (apply and advance together: exactly-once in effect). Damaged or malformed
  records are refused and logged; nothing is applied past them.
- Every loop is bounded: backoff between failed pulls (BACKOFF_MIN_S..BACKOFF_MAX_S),
  at most MAX_CHANGES_PER_PULL per batch, a timeout on every request.
- Following the topology (atoll.node.topology): `set_topology` stops the pull loops of
  regions that left, starts loops for regions that joined, and points the others at
  their current peer endpoints (a peer with several is tried in turn), without restart.
  Who may pull from us and whose acknowledgements retention waits for follow it too.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import statistics
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import orjson

from atoll.engine.replica import (
    adopt_cursors_job,
    apply_job,
    apply_table_events,
    snapshot_rows_job,
    snapshot_tables_job,
)
from atoll.errors import ServiceUnavailable
from atoll.http.client import HttpClient, PeerHttpError
from atoll.invariant import invariant
from atoll.replication.change import Version
from atoll.replication.cursors import Cursor
from atoll.replication.errors import BadMessage
from atoll.replication.merge import TableState
from atoll.replication.protocol import Batch, Pull, decode_message, encode_message, plan_batch
from atoll.replication.retention import plan_retention
from atoll.topology.config import ClusterConfig, RegionConfig

if TYPE_CHECKING:
    from atoll.engine import Engine

log = logging.getLogger(__name__)

PULL_WAIT_MS = 1000
MAX_PULL_WAIT_MS = 5000
MAX_CHANGES_PER_PULL = 1000
DIRECT_STALE_S = 3.0
BACKOFF_MIN_S = 0.05
BACKOFF_MAX_S = 2.0
REQUEST_TIMEOUT_S = PULL_WAIT_MS / 1000 + 10.0
LAG_WINDOW_S = 60.0
MAX_LAG_SAMPLES = 20_000
LAG_SUMMARY_TTL_S = 0.5
RETENTION_INTERVAL_S = 1.0
SNAPSHOT_PAGE = 2000
MAX_SNAPSHOT_PAGES = 100_000
# Small rounds: a purge is a write job, and a long one would hold back every write and
# apply behind it (lag p99 went from ~100 ms to ~380 ms with 20,000-record rounds).
PURGE_LIMIT = 2_000


@dataclass
class PeerState:
    peer: str
    connected: bool = False
    last_ok_mono: float = 0.0
    errors: int = 0
    last_error: str = ""
    applied: int = 0
    refused: int = 0
    pulls: int = 0

    def stale(self, now_mono: float) -> bool:
        return now_mono - self.last_ok_mono > DIRECT_STALE_S


PeerClientFactory = Callable[[str, Sequence[str], dict[str, str]], HttpClient]
"""(peer region, its peer endpoints, headers) -> a client that talks only to that region
(atoll.node.peers: mutual TLS, the server's certificate must name the region)."""


def plain_peer_client(region: str, endpoints: Sequence[str], headers: dict[str, str]
                      ) -> HttpClient:
    return HttpClient(endpoints, headers)


class Replicator:
    def __init__(self, engine: Engine, cluster: ClusterConfig, region: str,
                 peer_client: PeerClientFactory = plain_peer_client) -> None:
        self.engine = engine
        self.storage = engine.storage
        self.cluster = cluster
        self.region = region
        self.peers = _peers(cluster, region)
        self._headers = {"X-Atoll-Cluster": cluster.cluster_id, "X-Atoll-Region": region}
        self._peer_client = peer_client
        self.clients = {p.id: peer_client(p.id, p.peer_endpoints, self._headers)
                        for p in self.peers}
        # A peer counts as reachable until it has failed for DIRECT_STALE_S: at start-up,
        # asking every peer for every origin would fetch each change twice.
        started = time.monotonic()
        self.state = {p.id: PeerState(p.id, last_ok_mono=started) for p in self.peers}
        self._pull_tasks: dict[str, asyncio.Task[Any]] = {}
        self._started = False
        self.lag_samples: deque[tuple[float, int]] = deque(maxlen=MAX_LAG_SAMPLES)
        self._lag_summary: tuple[float, dict[str, Any]] | None = None
        self.conflicts_detected = 0
        self.acked: dict[str, dict[str, Cursor]] = {}  # per peer, cursors its last Pull carried
        self.purged_records = 0
        self.rebuilds = 0
        self._rebuild_lock = asyncio.Lock()
        self.purged_tombstones = 0
        self.retention_forced = False
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopping = False
        self.storage.commit_listeners.append(self._on_commit)

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._started = True
        for peer in self.peers:
            self._start_pulling(peer.id)
        task = loop.create_task(self._retention_loop(), name="retention")
        task.add_done_callback(_log_failure)
        self._tasks.append(task)

    def _start_pulling(self, peer: str) -> None:
        task = asyncio.get_running_loop().create_task(self._pull_loop(peer), name=f"pull {peer}")
        task.add_done_callback(_log_failure)
        self._pull_tasks[peer] = task

    async def stop(self) -> None:
        self._stopping = True
        self._on_commit()  # wake long polls
        tasks = [*self._tasks, *self._pull_tasks.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in self.clients.values():
            client.close()

    def set_topology(self, cluster: ClusterConfig) -> None:
        """Follow a new topology: loops for regions that left stop, loops for regions
        that joined start, moved peer endpoints are used from the next request on.
        Synchronous, so `peers`, `clients` and `state` never disagree."""
        invariant(cluster.cluster_id == self.cluster.cluster_id, "a topology of another cluster")
        self.cluster = cluster
        self.peers = _peers(cluster, self.region)
        wanted = {p.id: p for p in self.peers}
        for gone in [p for p in self.clients if p not in wanted]:
            client = self.clients.pop(gone)
            self.state.pop(gone, None)
            task = self._pull_tasks.pop(gone, None)
            if task is not None:
                task.cancel()
                task.add_done_callback(functools.partial(_close_client, client))
            else:
                client.close()
            log.warning("stopped replicating from %s: not in topology generation %d", gone,
                        cluster.generation)
        for peer_id, peer in wanted.items():
            if peer_id in self.clients:
                self.clients[peer_id].set_endpoints(peer.peer_endpoints)
                continue
            self.clients[peer_id] = self._peer_client(peer_id, peer.peer_endpoints, self._headers)
            self.state[peer_id] = PeerState(peer_id, last_ok_mono=time.monotonic())
            if self._started and not self._stopping:
                self._start_pulling(peer_id)
            log.warning("replicating from %s (joined in topology generation %d)", peer_id,
                        cluster.generation)

    def _on_commit(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    # --- serving -----------------------------------------------------------------------
    async def handle_post(self, path: str, headers: dict[str, str], body: bytes,
                          query: str) -> tuple[int, bytes]:
        if path not in ("/_atoll/pull", "/_atoll/snapshot"):
            return 404, b'{"message":"not found"}'
        if (headers.get("x-atoll-cluster") != self.cluster.cluster_id
                or headers.get("x-atoll-region") not in self.cluster.region_ids()
                or headers.get("x-atoll-region") == self.region):
            log.warning("refused a pull from outside the cluster: %s", headers)
            return 403, b'{"message":"not a member of this cluster"}'
        if path == "/_atoll/snapshot":
            return self._serve_snapshot(body)
        try:
            message = decode_message(body)
            if not isinstance(message, Pull):
                raise BadMessage("expected a Pull")
            params = parse_qs(query)
            origins = [o for o in ",".join(params.get("origins", [])).split(",") if o]
            wait_ms = min(int(params.get("wait_ms", ["0"])[0]), MAX_PULL_WAIT_MS)
            ahead = {}
            for part in ",".join(params.get("ahead", [])).split(","):
                if part:
                    origin, _, seq = part.rpartition(":")
                    ahead[origin] = int(seq)
        except (BadMessage, ValueError) as exc:
            log.warning("refused a malformed pull from %s: %s", headers.get("x-atoll-region"), exc)
            return 400, orjson.dumps({"message": f"malformed pull: {exc}"})
        origins = origins or list(self.cluster.region_ids())
        # a Pull acknowledges what the puller holds: retention counts on it
        puller = str(headers.get("x-atoll-region"))
        self.acked[puller] = dict(message.cursors)
        # What we held of the puller's own changes when it sent this Pull: a long poll
        # may end after we pulled its first changes, which its claim cannot show yet.
        held_of_puller = self.storage.cursors().get(puller, 0)
        records = self._records(message, origins, ahead)
        if not records and wait_ms > 0 and not self._stopping:
            try:
                await asyncio.wait_for(self._changed.wait(), wait_ms / 1000)
            except TimeoutError:
                pass
            records = self._records(message, origins, ahead)
        batch = Batch(message.request_id, tuple(records),
                      has_more=len(records) >= message.max_changes,
                      log_start=self._behind(message, puller, held_of_puller))
        return 200, encode_message(batch)

    def _behind(self, pull: Pull, puller: str, mine: int) -> dict[str, int]:
        """Origins this log cannot bring the puller up to date on: purged past its cursor,
        or (its own origin) the puller holds none of its own changes while we hold some —
        it lost its data. Either way it must be rebuilt from a snapshot."""
        behind = {}
        for origin, start in self.storage.log_start().items():
            if origin == puller:
                continue  # a region never needs its own changes back (see below)
            if start > 0 and pull.cursors.get(origin, Cursor(0, 0)).seq < start:
                behind[origin] = start
        # Only an empty claim counts: a non-empty one may just be older than the changes
        # of the puller that we pulled meanwhile (the two pull loops race). `mine` is
        # what we held of the puller's changes when its Pull arrived.
        if mine > 0 and pull.cursors.get(puller, Cursor(0, 0)).seq == 0:
            behind[puller] = mine
        return behind

    def _serve_snapshot(self, body: bytes) -> tuple[int, bytes]:
        try:
            request = orjson.loads(body)
            if not isinstance(request, dict):
                raise TypeError("a snapshot request is a JSON object")
            if request.get("part") == "head":
                vector = self.storage.cursor_vector()  # first: the log tail starts here
                tables = [{"name": n, "created": [ch, co], "version": [vh, vo],
                           "definition": orjson.loads(d) if d is not None else None}
                          for n, ch, co, vh, vo, d in self.storage.load_table_states()]
                return 200, orjson.dumps({"cursors": vector, "tables": tables})
            table = self.engine.catalog.get(request["table"])
            if table is None:
                return 200, orjson.dumps({"rows": [], "more": False})
            after = request.get("after")
            limit = min(int(request.get("limit", SNAPSHOT_PAGE)), SNAPSHOT_PAGE)
            if limit < 1:  # SQLite reads a negative LIMIT as none at all
                raise ValueError(f"limit must be at least 1, got {limit}")
            rows = self.storage.snapshot_rows(table.tid, _snapshot_after(after), limit,
                                              bool(request.get("tombstones")))
        except (KeyError, TypeError, ValueError, orjson.JSONDecodeError) as exc:
            return 400, orjson.dumps({"message": f"malformed snapshot request: {exc}"})
        return 200, orjson.dumps({"rows": [
            [h, pk.hex(), sk.hex(), hlc, origin, orjson.Fragment(item) if item else None]
            for h, pk, sk, hlc, origin, item in rows], "more": len(rows) == limit})

    def _records(self, pull: Pull, origins: list[str], ahead: dict[str, int]) -> list[bytes]:
        records: list[bytes] = []
        limit = min(pull.max_changes, MAX_CHANGES_PER_PULL)
        for origin in origins:
            if len(records) >= limit:
                break
            after = max(pull.cursors.get(origin, Cursor(0, 0)).seq, ahead.get(origin, 0))
            for _seq, _hlc, body in self.storage.changes_since(origin, after, limit - len(records)):
                records.append(body)
        return records

    # --- pulling -----------------------------------------------------------------------
    def _origins_via(self, peer: str) -> list[str]:
        """What to ask `peer` for: its own changes, and those of origins whose direct
        link is down."""
        now = time.monotonic()
        return [peer] + [p.id for p in self.peers
                         if p.id != peer and self.state[p.id].stale(now)]

    async def _pull_loop(self, peer: str) -> None:
        """`_pull` from the peer; a storage that cannot be read for a while (its shared
        database restarting: ServiceUnavailable) pauses it, then it starts over from the
        committed cursors."""
        while not self._stopping:
            try:
                await self._pull(peer)
            except ServiceUnavailable as exc:
                state = self.state.get(peer)
                if state is not None:
                    state.errors += 1
                    state.last_error = f"storage: {exc.message}"
                await asyncio.sleep(BACKOFF_MAX_S)

    async def _pull(self, peer: str) -> None:
        """Fetch, plan, apply — with the next fetch overlapping the current apply (at most
        one apply in flight per peer; the storage applies jobs in submission order)."""
        client = self.clients[peer]
        state = self.state[peer]
        backoff = BACKOFF_MIN_S
        request_id = 0
        applying: asyncio.Future[Any] | None = None
        planned: dict[str, int] = {}  # cursors the apply in flight will reach
        try:
            while not self._stopping:
                request_id += 1
                if applying is not None and applying.done():
                    if not await self._finish(applying, state):
                        planned.clear()  # it fell short: ask again from committed cursors
                    applying = None
                # The Pull carries committed cursors only (it acknowledges them, and the
                # peer may purge what every region acknowledged); changes the apply in
                # flight will commit are skipped through `ahead` instead.
                committed = {o: Cursor(seq, hlc) for o, (seq, hlc) in
                             self.storage.cursor_vector().items()}
                ahead = {o: seq for o, seq in planned.items()
                         if seq > committed.get(o, Cursor(0, 0)).seq}
                wanted = dict(committed)
                for origin, seq in ahead.items():
                    wanted[origin] = Cursor(seq, 0)
                batch = await self._fetch(peer, client, state, request_id, committed, ahead)
                if batch is None:
                    state.errors += 1
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX_S)
                    continue
                backoff = BACKOFF_MIN_S
                if batch.log_start:
                    if applying is not None:
                        await asyncio.gather(applying, return_exceptions=True)
                        applying = None
                    planned.clear()
                    await self._rebuild_from(peer, client, batch.log_start)
                    continue
                if not batch.records:
                    continue
                known: dict[str, TableState | None] = {}  # one lookup per table and batch

                def table_state(name: str, known: dict[str, TableState | None] = known
                                ) -> TableState | None:
                    if name not in known:
                        known[name] = self._table_state(name)
                    return known[name]

                plan = plan_batch(batch.records, wanted, table_state)
                if plan.refused:
                    state.refused += len(plan.refused)
                    log.error("refused %d records from %s: %s", len(plan.refused), peer,
                              plan.refused[:3])
                if applying is not None:
                    if not await self._finish(applying, state):
                        planned.clear()
                    applying = None
                if plan.accepted:
                    job = apply_job(self.engine, list(zip(plan.accepted, plan.frames, strict=True)))
                    applying = self.storage.write(job)
                    applying.add_done_callback(functools.partial(self._on_applied, state=state))
                    for change in plan.accepted:
                        planned[change.origin] = max(planned.get(change.origin, 0), change.seq)
                if (plan.refused or plan.held) and not batch.has_more:
                    await asyncio.sleep(0.2)  # no hot loop on a batch we cannot use yet
        finally:
            if applying is not None:
                await asyncio.gather(applying, return_exceptions=True)

    async def _finish(self, applying: asyncio.Future[Any], state: PeerState) -> bool:
        """Wait for an apply; False if it did not reach the cursors it was planned to."""
        try:
            outcome = await applying
        except Exception:
            return False  # logged by _on_applied
        return not (outcome.stopped_at_gap or outcome.held_for_table)

    def _on_applied(self, applying: asyncio.Future[Any], *, state: PeerState) -> None:
        """Bookkeeping as soon as an apply committed (even if no further pull follows)."""
        if applying.cancelled():
            return
        error = applying.exception()
        if error is not None:  # a storage fault: nothing of it was applied
            log.error("applying changes from %s failed: %s", state.peer, error)
            return
        outcome = applying.result()
        apply_table_events(self.engine, outcome)
        state.applied += outcome.applied
        self.conflicts_detected += outcome.conflicts
        now = time.monotonic()
        self.lag_samples.extend((now, lag) for lag in outcome.lag_ms)

    async def _fetch(self, peer: str, client: HttpClient, state: PeerState, request_id: int,
                     cursors: dict[str, Cursor], ahead: dict[str, int]) -> Batch | None:
        """One Pull to `peer`; its Batch, or None on failure (logged, counted)."""
        origins = self._origins_via(peer)
        pull = Pull(request_id, cursors, MAX_CHANGES_PER_PULL)
        path = f"/_atoll/pull?origins={','.join(origins)}&wait_ms={PULL_WAIT_MS}"
        if ahead:
            path += "&ahead=" + ",".join(f"{o}:{seq}" for o, seq in sorted(ahead.items()))
        try:
            # the Pull acknowledges the cursors it carries: only once they are durable
            await self.storage.settled()
            status, body = await client.post(path, encode_message(pull), REQUEST_TIMEOUT_S)
            if status != 200:
                raise PeerHttpError(f"status {status}: {body[:200]!r}")
            batch = decode_message(body)
            if not isinstance(batch, Batch) or batch.request_id != request_id:
                raise BadMessage("answer is not the Batch for this Pull")
        except (PeerHttpError, BadMessage, ServiceUnavailable) as exc:
            if state.connected:
                log.warning("replication from %s failed: %s", peer, exc)
            state.connected = False
            state.last_error = str(exc)[:300]
            return None
        if not state.connected:
            log.info("replicating from %s", peer)
        state.connected = True
        state.last_ok_mono = time.monotonic()
        state.pulls += 1
        return batch

    def _table_state(self, name: str) -> TableState | None:
        row = self.storage.table_state_row(name)
        if row is None:
            return None
        definition = orjson.loads(row[4]) if row[4] is not None else None
        return TableState(Version(row[0], row[1]), Version(row[2], row[3]), definition)

    # --- rebuilding from a snapshot -------------------------------------------------------
    async def _rebuild_from(self, peer: str, client: HttpClient,
                            behind: Mapping[str, int]) -> None:
        """Copy `peer`'s tables, items and tombstones, then continue from its cursors."""
        async with self._rebuild_lock:
            log.warning("rebuilding from %s's snapshot: its log no longer covers %s", peer, behind)
            try:
                head = await self._snapshot_call(client, {"part": "head"})
                outcome = await self.storage.write(snapshot_tables_job(self.engine, head["tables"]))
                apply_table_events(self.engine, outcome)
                for entry in head["tables"]:
                    if entry["definition"] is not None:
                        for tombstones in (False, True):
                            await self._copy_rows(client, entry["name"], tombstones)
                vector = {o: (int(v[0]), int(v[1])) for o, v in head["cursors"].items()}
                await self.storage.write(adopt_cursors_job(self.engine, vector))
                self.rebuilds += 1
                log.warning("rebuilt from %s's snapshot; continuing from its cursors", peer)
            except (PeerHttpError, KeyError, TypeError, ValueError) as exc:
                log.error("snapshot from %s failed (will retry): %s", peer, exc)
                await asyncio.sleep(BACKOFF_MAX_S)

    async def _copy_rows(self, client: HttpClient, table: str, tombstones: bool) -> None:
        after = None
        for _page in range(MAX_SNAPSHOT_PAGES):
            page = await self._snapshot_call(client, {"part": "rows", "table": table,
                                                      "tombstones": tombstones, "after": after,
                                                      "limit": SNAPSHOT_PAGE})
            rows = [(bytes.fromhex(pk), bytes.fromhex(sk), int(hlc), str(origin), item)
                    for _h, pk, sk, hlc, origin, item in page["rows"]]
            if rows:
                await self.storage.write(snapshot_rows_job(self.engine, table, rows))
                last = page["rows"][-1]
                after = [last[0], last[1], last[2]]
            if not page["more"]:
                return
        raise ValueError(f"snapshot of {table} exceeds {MAX_SNAPSHOT_PAGES} pages")

    async def _snapshot_call(self, client: HttpClient, request: dict[str, Any]) -> Any:
        status, body = await client.post("/_atoll/snapshot", orjson.dumps(request),
                                         REQUEST_TIMEOUT_S)
        if status != 200:
            raise PeerHttpError(f"snapshot status {status}: {body[:200]!r}")
        return orjson.loads(body)

    # --- retention ---------------------------------------------------------------------
    async def _retention_loop(self) -> None:
        """Purge changelog records and tombstones every region holds (bounded per round)."""
        while not self._stopping:
            await asyncio.sleep(RETENTION_INTERVAL_S)
            try:
                vector = self.storage.cursor_vector()
            except ServiceUnavailable:  # a shared database restarting: next round
                continue
            own = {o: Cursor(seq, hlc) for o, (seq, hlc) in vector.items()}
            decision = plan_retention(self.region, self.cluster.region_ids(), self.acked, own,
                                      self.engine.now_ms())
            if decision.forced and not self.retention_forced:
                log.info("retention bound reached: a region that has not acknowledged "
                            "will need anti-entropy to catch up")
            self.retention_forced = decision.forced
            plan = decision.plan
            if not plan.purge_through and plan.tombstone_horizon_hlc == 0:
                continue

            def job(txn: Any, plan: Any = plan) -> tuple[int, int]:
                records = sum(txn.purge_changelog(origin, through, PURGE_LIMIT)
                              for origin, through in plan.purge_through.items())
                tombstones = (txn.purge_tombstones(plan.tombstone_horizon_hlc, PURGE_LIMIT)
                              if plan.tombstone_horizon_hlc else 0)
                return records, tombstones

            try:
                records, tombstones = await self.storage.write(job)
            except ServiceUnavailable as exc:  # a storage fault (a full disk): next round
                log.warning("retention purge failed (next round retries): %s", exc)
                continue
            self.purged_records += records
            self.purged_tombstones += tombstones

    # --- observability -----------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        if self._lag_summary is None or now - self._lag_summary[0] > LAG_SUMMARY_TTL_S:
            # sorting up to MAX_LAG_SAMPLES costs milliseconds: not on every status poll
            recent = [lag for at, lag in self.lag_samples if now - at <= LAG_WINDOW_S]
            self._lag_summary = (now, _percentiles(recent))
        return {
            "region": self.region,
            "cluster_id": self.cluster.cluster_id,
            "topology_generation": self.cluster.generation,
            "cursors": self.storage.cursors(),
            "cursor_vector": {o: list(v) for o, v in self.storage.cursor_vector().items()},
            "peers": {
                p: {"connected": s.connected,
                    "endpoint": f"http://{self.clients[p].host}:{self.clients[p].port}",
                    "last_ok_s_ago": round(now - s.last_ok_mono, 3) if s.last_ok_mono else None,
                    "errors": s.errors, "last_error": s.last_error, "applied": s.applied,
                    "refused": s.refused, "pulls": s.pulls}
                for p, s in self.state.items()},
            "lag_ms": self._lag_summary[1],
            "conflicts_detected": self.conflicts_detected,
            "rebuilds_from_snapshot": self.rebuilds,
            "clock_skew_bounded": self.engine.clock.bounded_count,
            "changelog": {"log_start": self.storage.log_start(),
                          "purged_records": self.purged_records,
                          "purged_tombstones": self.purged_tombstones,
                          "retention_forced": self.retention_forced},
        }


def _peers(cluster: ClusterConfig, region: str) -> tuple[RegionConfig, ...]:
    """The regions to pull from: none once this region is no longer in the topology
    (the others refuse its pulls; it keeps serving its clients with what it has)."""
    return cluster.peers_of(region) if cluster.has_region(region) else ()


def _close_client(client: HttpClient, _task: asyncio.Task[Any]) -> None:
    client.close()


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.critical("replication task %s died", task.get_name(), exc_info=task.exception())


def _percentiles(samples: list[int]) -> dict[str, float | int | None]:
    if not samples:
        return {"count": 0, "p50": None, "p99": None, "max": None}
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {"count": len(ordered), "p50": statistics.median(ordered), "p99": p99,
            "max": ordered[-1]}


def _snapshot_after(after: Any) -> tuple[int, bytes, bytes] | None:
    """The key a snapshot page starts after: [hash, pk hex, sk hex] (ValueError if not)."""
    if not after:
        return None
    if (not isinstance(after, list) or len(after) != 3 or type(after[0]) is not int
            or not 0 <= after[0] < 2 ** 32 or not all(isinstance(x, str) for x in after[1:])):
        raise ValueError(f"after must be [hash, pk hex, sk hex], got {after!r:.100}")
    return after[0], bytes.fromhex(after[1]), bytes.fromhex(after[2])
