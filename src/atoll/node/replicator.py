"""Replicator: the asyncio shell that drives the replication core between regions.

Theory of operation: every decision is made by `atoll.replication.core.ReplicationCore`
(the same state machines the simulator drives); this shell only moves bytes over HTTP,
waits, and runs the core's jobs on the node's store (engine/replica_store.py, over the
node's storage: SQLite, or PostgreSQL shared by the region's nodes), honouring the
written order: a Pull acknowledges only durable cursors (`DurableCursors`);
what a peer is sent was committed (and is answered once durable, see node.py); an apply
job commits its changes and their cursors in one storage transaction.

- Serving: `POST /_atoll/pull` from a member of this cluster carries a Pull; the core
  checks it (its cursors are what that peer acknowledges, for retention) and answers it
  from the changelog. An empty answer is held (long poll, at most the Pull's wait) until
  a local commit brings it something, so a change travels as soon as it is durable:
  the wait ends when the commit is readable (`visible_listeners`, before its fsync), and
  the answer then waits for what it read to be durable (the peer port's settle), so
  the answer leaves with that commit's own fsync, not the fsync of a later commit.
  What this region held of the puller's own changes is read when the Pull arrives,
  before any wait (the core's "lost its own data" rule needs that). `POST
  /_atoll/snapshot` serves a region being rebuilt.
- Pulling: one task per peer runs that peer's `Puller`: SEND (an HTTP request, bounded
  by the request timeout), SUBMIT (a storage write job; its completion is reported to the
  puller from the future's callback, as soon as it commits), DRAIN (await the oldest
  apply in flight), REBUILD (one rebuild at a time: snapshot requests, each answer's jobs
  committed in order, then the adopted cursors), WAIT (sleep).
- Refused changes (atoll.replication.admission): each is logged once per link, with its
  origin, sequence, table and key, and counted in `/_atoll/status` (`refused_changes`,
  `last_refusal`, `refusing` per peer) and `/metrics`; the puller backs off before asking
  again.
- Retention: every interval, the core's purge job, if any.
- Folding (atoll.replication.fold): in the lowest-named region, the core's fold and
  compaction jobs, one at a time, each page and job sized by its measured cost and
  followed by a pause (atoll.replication.pacing: requests wait for at most one slice,
  and the walk takes at most `fold_share` of the loop and the writer); each pass's
  start and end is logged, and `/_atoll/status` shows `fold`.
- A storage that cannot be read for a while (a shared PostgreSQL restarting:
  ServiceUnavailable) pauses a puller for the longest backoff and skips a retention
  pass; pulling then starts over from the committed cursors.
- Following the topology (atoll.node.topology): `set_topology` stops the pull tasks of
  regions that left, starts tasks for regions that joined, and points the others at
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
from typing import Any

import orjson

from atoll.engine.context import EngineContext
from atoll.engine.replica_store import EngineReplicaStore
from atoll.errors import ServiceUnavailable
from atoll.http.client import HttpClient, PeerClientFactory, PeerHttpError, plain_peer_client
from atoll.invariant import invariant
from atoll.node.folding import TimedJob, log_fold
from atoll.replication.apply import ApplyOutcome
from atoll.replication.config import ReplicationConfig
from atoll.replication.core import ReplicationCore
from atoll.replication.cursors import Cursors
from atoll.replication.errors import BadMessage, NotAPeer
from atoll.replication.faults import DropItemWrites
from atoll.replication.pacing import Pacing, Slicer
from atoll.replication.protocol import Batch, Pull, encode_message
from atoll.replication.puller import DRAIN, REBUILD, SEND, SUBMIT, Puller
from atoll.replication.rebuild import Rebuild
from atoll.replication.serving import hold_ms
from atoll.replication.snapshot import answer_snapshot
from atoll.topology.config import ClusterConfig, RegionConfig

log = logging.getLogger(__name__)

DEFAULT_CONFIG = ReplicationConfig()
PULL_WAIT_MS = DEFAULT_CONFIG.pull_wait_ms  # a node's long poll (operators' figures allow for it)
LAG_WINDOW_S = 60.0
MAX_LAG_SAMPLES = 20_000
LAG_SUMMARY_TTL_S = 0.5


def _mono_ms() -> int:
    return int(time.monotonic() * 1000)


class Replicator:
    def __init__(self, context: EngineContext, cluster: ClusterConfig, region: str,
                 config: ReplicationConfig = DEFAULT_CONFIG, fault_drop_every: int = 0,
                 peer_client: PeerClientFactory = plain_peer_client) -> None:
        """`fault_drop_every`: a deliberate defect for drills (atoll.replication.faults);
        `peer_client` makes the client for one peer region (mutual TLS in a cluster with
        certificates: atoll.node.peers.client_factory)."""
        self.context = context
        self.storage = context.storage
        self.config = config
        self.fault_drop_every = fault_drop_every
        self.fault = DropItemWrites(region, fault_drop_every) if fault_drop_every else None
        self.store = EngineReplicaStore(context, wrap=self.fault)
        self.cluster = cluster
        self.region = region
        self.core = ReplicationCore(region, cluster.region_ids(), self.config,
                                    context.clock, context.now_ms, _mono_ms())
        self._headers = {"X-Atoll-Cluster": cluster.cluster_id, "X-Atoll-Region": region}
        self._peer_client = peer_client
        self.clients = {p.id: peer_client(p.id, p.peer_endpoints, self._headers)
                        for p in _peers(cluster, region)}
        self._pull_tasks: dict[str, asyncio.Task[Any]] = {}
        self._rebuild_lock = asyncio.Lock()
        self._started = False
        self.lag_samples: deque[tuple[float, int]] = deque(maxlen=MAX_LAG_SAMPLES)
        self._lag_summary: tuple[float, dict[str, Any]] | None = None
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopping = False
        # the fold's pacing (atoll.replication.pacing): slice sizes, and the time spent
        self._fold_pages = Slicer(self.config.fold_slice_ms, self.config.fold_scan_rows)
        self._fold_jobs = Slicer(self.config.fold_slice_ms, self.config.fold_batch_items)
        self._fold_ran_s = 0.0
        self.storage.visible_listeners.append(self._on_commit)
        self._durable = DurableCursors(region)

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        self._started = True
        for peer in self.core.pullers:
            self._start_pulling(peer)
        loop = asyncio.get_running_loop()
        for work, name in ((self._retention_loop(), "retention"), (self._fold_loop(), "fold")):
            task = loop.create_task(work, name=name)
            task.add_done_callback(_log_failure)
            self._tasks.append(task)

    def _start_pulling(self, peer: str) -> None:
        task = asyncio.get_running_loop().create_task(self._pull_loop(peer), name=f"pull {peer}")
        task.add_done_callback(functools.partial(self._pull_ended, peer))
        self._pull_tasks[peer] = task

    def _pull_ended(self, peer: str, task: asyncio.Task[Any]) -> None:
        """A pull loop ends when the replicator stops or its peer leaves the topology
        (its task is taken out of `_pull_tasks` first). Ending any other way — raising,
        or cancelled by something else — stops replication from that peer for good, so
        it is said at the highest level rather than left for lag to reveal."""
        if task.cancelled():
            if not self._stopping and self._pull_tasks.get(peer) is task:
                log.critical("replication from %s stopped: its pull task was cancelled", peer)
            return
        _log_failure(task)

    async def stop(self) -> None:
        self._stopping = True
        self._on_commit()  # wake long polls
        tasks = [*self._tasks, *self._pull_tasks.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in self.clients.values():
            client.close()

    def renewed(self) -> Replicator:
        """A replicator like this one, not started (a stopped one cannot start again);
        it keeps this one's peer client factory (its mutual TLS)."""
        return Replicator(self.context, self.cluster, self.region, self.config,
                          self.fault_drop_every, self._peer_client)

    def set_topology(self, cluster: ClusterConfig) -> None:
        """Follow a new topology: loops for regions that left stop, loops for regions
        that joined start, moved peer endpoints are used from the next request on.
        Synchronous, so the core's pullers and `clients` never disagree."""
        invariant(cluster.cluster_id == self.cluster.cluster_id, "a topology of another cluster")
        self.cluster = cluster
        joined, left = self.core.set_regions(cluster.region_ids(), _mono_ms())
        for gone in left:
            client = self.clients.pop(gone)
            task = self._pull_tasks.pop(gone, None)
            if task is not None:
                task.cancel()
                task.add_done_callback(functools.partial(_close_client, client))
            else:
                client.close()
            log.warning("stopped replicating from %s: not in topology generation %d", gone,
                        cluster.generation)
        for peer in _peers(cluster, self.region):
            if peer.id not in joined:
                self.clients[peer.id].set_endpoints(peer.peer_endpoints)
                continue
            self.clients[peer.id] = self._peer_client(peer.id, peer.peer_endpoints, self._headers)
            if self._started and not self._stopping:
                self._start_pulling(peer.id)
            log.warning("replicating from %s (joined in topology generation %d)", peer.id,
                        cluster.generation)

    @property
    def acked(self) -> dict[str, Cursors]:
        """Per peer, the cursors its last Pull carried (what it acknowledged holding)."""
        return self.core.acked

    def _on_commit(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    def caught_up(self) -> bool:
        """Whether this region caught up with a peer since it started and is not being
        rebuilt (ReplicationCore.caught_up): until then a key unknown here may exist."""
        return self.core.caught_up()

    # --- serving -----------------------------------------------------------------------
    async def handle_post(self, path: str, headers: dict[str, str], body: bytes,
                          query: str) -> tuple[int, bytes]:
        if path not in ("/_atoll/pull", "/_atoll/snapshot"):
            return 404, b'{"message":"not found"}'
        puller = str(headers.get("x-atoll-region"))
        if (headers.get("x-atoll-cluster") != self.cluster.cluster_id
                or not self.core.is_peer(puller)):
            log.warning("refused a request from outside the cluster: %s", headers)
            return 403, b'{"message":"not a member of this cluster"}'
        try:
            if path == "/_atoll/snapshot":
                return self._answer_snapshot(body)
            return await self._answer_pull(puller, body)
        except ServiceUnavailable as exc:  # a shared database restarting: the puller retries
            return 503, _message(exc.message)

    def _answer_snapshot(self, body: bytes) -> tuple[int, bytes]:
        try:
            return 200, answer_snapshot(body, self.store, self.config)
        except BadMessage as exc:
            return 400, _message(f"malformed snapshot request: {exc}")

    async def _answer_pull(self, puller: str, body: bytes) -> tuple[int, bytes]:
        try:
            pull = self.core.accept_pull(puller, body)
        except NotAPeer:
            return 403, b'{"message":"not a member of this cluster"}'
        except BadMessage as exc:
            log.warning("refused a malformed pull from %s: %s", puller, exc)
            return 400, _message(f"malformed pull: {exc}")
        held = self.store.cursors()  # on arrival, before any wait
        batch = self.core.answer_pull(pull, puller, self.store, held)
        wait_ms = hold_ms(pull, batch, self.config)
        if wait_ms and not self._stopping:
            batch = await self._hold(pull, puller, held, wait_ms)
        return 200, encode_message(batch)

    async def _hold(self, pull: Pull, puller: str, held: Cursors, wait_ms: int) -> Batch:
        """The answer to a Pull that had nothing: asked again after every local commit
        until it has something or `wait_ms` passed. A commit that brought the puller
        nothing (another origin's changes applied, a purge, a tree fold) does not end
        the wait: answering empty would cost the puller a round trip, and a change that
        commits meanwhile would wait for its next Pull to arrive."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_ms / 1000
        while not self._stopping and (remaining_s := deadline - loop.time()) > 0:
            try:
                await asyncio.wait_for(self._changed.wait(), remaining_s)
            except TimeoutError:
                break
            batch = self.core.answer_pull(pull, puller, self.store, held)
            if batch.records or batch.log_start:
                return batch
        return self.core.answer_pull(pull, puller, self.store, held)

    # --- pulling -----------------------------------------------------------------------
    async def _pull_loop(self, peer: str) -> None:
        """Drive `peer`'s Puller: at most one fetch and `applies_in_flight` applies in
        flight (oldest first in `applying`)."""
        puller = self.core.pullers[peer]
        applying: deque[asyncio.Future[ApplyOutcome]] = deque()
        try:
            while not self._stopping:
                now = _mono_ms()
                step = puller.next_step(now)
                if step.kind == SEND:
                    await self._fetch(puller, now)
                elif step.kind == SUBMIT:
                    while applying and applying[0].done():  # reported, or its callback due
                        applying.popleft()
                    submitted = self._submit(puller)
                    if submitted is not None:
                        applying.append(submitted)
                elif step.kind == DRAIN:
                    if applying:  # its done callback reports it to the puller first
                        await asyncio.wait([applying.popleft()])
                    else:  # every apply ended: their callbacks run first
                        await asyncio.sleep(0)
                elif step.kind == REBUILD:
                    await self._rebuild(puller)
                else:
                    await asyncio.sleep(max(0, step.until_ms - now) / 1000)
        finally:
            if applying:
                await asyncio.gather(*applying, return_exceptions=True)

    async def _fetch(self, puller: Puller, now_ms: int) -> None:
        """One Pull to the peer; its answer or failure goes to the puller."""
        peer = puller.peer
        try:
            committed = self.store.cursors()
        except ServiceUnavailable as exc:  # a shared database restarting: pause, then again
            puller.on_store_failure(now_ms, exc.message)
            return
        settling = self.storage.settle()
        acked = self._durable.offer(committed, settling)
        try:
            if acked is None:  # nothing known durable yet (start): wait for this read
                if settling is not None:
                    await settling
                acked = committed
            # the Pull acknowledges the cursors it carries: only durable ones
            pull = puller.pull(acked, self.core.origins_via(peer, now_ms), now_ms)
            status, body = await self.clients[peer].post(
                "/_atoll/pull", encode_message(pull), self.config.request_timeout_ms / 1000)
            if status != 200:
                raise PeerHttpError(f"status {status}: {body[:200]!r}")
        except (PeerHttpError, ServiceUnavailable) as exc:
            if puller.link.connected:
                log.warning("replication from %s failed: %s", peer, exc)
            puller.on_failure(_mono_ms(), str(exc))
            return
        was_connected = puller.link.connected
        refused = puller.link.refused_records
        try:
            answered = puller.on_answer(body, _mono_ms(), self.store.table_state)
        except ServiceUnavailable as exc:  # its plan reads table states: the answer is lost
            puller.on_store_failure(_mono_ms(), exc.message)
            return
        if not answered:
            log.warning("replication from %s: %s", peer, puller.link.last_error)
        elif not was_connected:
            log.info("replicating from %s", peer)
        if puller.link.refused_records > refused:
            log.error("from %s: %s", peer, puller.link.last_error)

    def _submit(self, puller: Puller) -> asyncio.Future[ApplyOutcome] | None:
        """The puller's planned apply, as one storage write job."""
        job = puller.take_apply()
        try:
            applying = self.store.submit(job)
        except ServiceUnavailable as exc:  # closing, or too many writes queued
            log.warning("could not apply changes from %s: %s", puller.peer, exc)
            puller.on_applied(None, _mono_ms())
            return None
        applying.add_done_callback(functools.partial(self._on_applied, puller))
        return applying

    def _on_applied(self, puller: Puller, applying: asyncio.Future[ApplyOutcome]) -> None:
        """Bookkeeping as soon as an apply committed (even if no further pull follows)."""
        if applying.cancelled():
            puller.on_applied(None, _mono_ms())
            return
        error = applying.exception()
        if error is not None:  # a storage fault: nothing of it was applied
            log.error("applying changes from %s failed: %s", puller.peer, error)
            puller.on_applied(None, _mono_ms())
            return
        outcome = applying.result()
        for refusal in puller.on_applied(outcome, _mono_ms()):  # nothing of it was stored
            log.error("from %s: %s", puller.peer, refusal.describe())
        if outcome.clock_bounded:
            # a peer's clock runs ahead of ours by more than the skew bound: not followed
            log.warning("%d changes from %s stamped more than %d ms ahead of this region's "
                        "clock: their timestamps were not followed", outcome.clock_bounded,
                        puller.peer, self.context.clock.max_skew_ms)
        now = time.monotonic()
        self.lag_samples.extend((now, lag) for lag in outcome.lag_ms)

    # --- rebuilding from a snapshot ------------------------------------------------------
    async def _rebuild(self, puller: Puller) -> None:
        behind = puller.take_rebuild()
        async with self._rebuild_lock:
            peer = puller.peer
            rebuild = self.core.start_rebuild(peer, behind)
            log.warning("rebuilding from %s's snapshot: its log no longer covers %s", peer, behind)
            ok = False
            try:
                await self._copy_snapshot(rebuild)
                ok = True
                log.warning("rebuilt from %s's snapshot (%d rows); continuing from its cursors",
                            peer, rebuild.rows)
            except (PeerHttpError, BadMessage, ServiceUnavailable) as exc:
                log.error("snapshot from %s failed (will retry): %s", peer, exc)
            finally:
                self.core.end_rebuild(rebuild, ok, _mono_ms())

    async def _copy_snapshot(self, rebuild: Rebuild) -> None:
        client = self.clients[rebuild.peer]
        timeout_s = self.config.request_timeout_ms / 1000
        while (request := rebuild.request()) is not None:
            status, body = await client.post("/_atoll/snapshot", request, timeout_s)
            if status != 200:
                raise PeerHttpError(f"snapshot status {status}: {body[:200]!r}")
            for job in rebuild.on_answer(body):
                await self.store.submit(job)
        await self.store.submit(rebuild.finish())

    # --- retention ---------------------------------------------------------------------
    async def _retention_loop(self) -> None:
        """Purge changelog records and tombstones every region holds (bounded per pass)."""
        was_forced = False
        while not self._stopping:
            await asyncio.sleep(self.config.retention_interval_ms / 1000)
            try:
                held = self.store.cursors()
            except ServiceUnavailable:  # a shared database restarting: next pass
                continue
            job = self.core.retention_job(held)
            forced = self.core.stats.retention_forced
            if forced and not was_forced:
                log.info("retention bound reached: a region that has not acknowledged "
                         "will need a rebuild to catch up")
            was_forced = forced
            if job is None:
                continue
            try:
                self.core.purged(await self.store.submit(job))
            except ServiceUnavailable as exc:  # a storage fault (a full disk): next pass
                log.warning("retention purge failed (next pass retries): %s", exc)

    # --- folding departed regions (atoll.replication.fold) ------------------------------
    async def _fold_loop(self) -> None:
        """Fold the counter contributions of regions that left the topology and compact
        what every region acknowledged, one job at a time, each page and job sized to
        take about `fold_slice_ms` and followed by a pause (atoll.replication.pacing);
        between passes, one check every `fold_interval_ms`."""
        fold, config = self.core.fold, self.config
        pacing = Pacing(config.fold_slice_ms, config.fold_share)
        pages, jobs = self._fold_pages, self._fold_jobs
        while not self._stopping:
            if not self.core.fold_due(_mono_ms()):
                await asyncio.sleep(config.fold_interval_ms / 1000)
                continue
            before, scanned = fold.stats.state, fold.stats.scanned_rows
            started = time.thread_time()  # CPU time: the slice's own work, not the load's
            try:
                job = self.core.fold_job(self.store, _mono_ms(), pages.size, jobs.size)
            except ServiceUnavailable:  # a shared database restarting: next pass
                job = None
            ran_s = time.thread_time() - started
            pages.ran(fold.stats.scanned_rows - scanned, ran_s * 1000)
            log_fold(before, fold.stats)
            if job is not None:
                timed = TimedJob(job)
                try:
                    self.core.folded(await self.store.submit(timed))
                    jobs.ran(len(job.keys), timed.ran_s * 1000)
                except ServiceUnavailable as exc:  # a storage fault: the next pass folds it
                    self.core.folded(None)
                    log.warning("fold job failed (the next pass retries): %s", exc)
                ran_s += timed.ran_s
            self._fold_ran_s += ran_s
            await asyncio.sleep(pacing.pause_s(ran_s))  # also lets requests in

    # --- observability -----------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        if self._lag_summary is None or now - self._lag_summary[0] > LAG_SUMMARY_TTL_S:
            # sorting up to MAX_LAG_SAMPLES costs milliseconds: not on every status poll
            recent = [lag for at, lag in self.lag_samples if now - at <= LAG_WINDOW_S]
            self._lag_summary = (now, _percentiles(recent))
        now_ms = _mono_ms()
        stats = self.core.stats
        return {
            "region": self.region,
            "cluster_id": self.cluster.cluster_id,
            "topology_generation": self.cluster.generation,
            "cursors": self.storage.cursors(),
            "cursor_vector": {o: list(v) for o, v in self.storage.cursor_vector().items()},
            "peers": {
                p: {"connected": link.connected,
                    "endpoint": f"http://{self.clients[p].host}:{self.clients[p].port}",
                    "last_ok_s_ago": round((now_ms - link.last_ok_ms) / 1000, 3),
                    "errors": link.errors, "last_error": link.last_error,
                    "applied": link.applied, "refused": link.refused_records,
                    "refused_changes": link.refused_changes,
                    "last_refusal": link.last_refusal, "refusing": link.refusing,
                    "pulls": link.pulls}
                for p, link in ((p, puller.link) for p, puller in self.core.pullers.items())},
            "lag_ms": self._lag_summary[1],
            "conflicts_detected": sum(p.link.conflicts for p in self.core.pullers.values()),
            "rebuilds_from_snapshot": stats.rebuilds,
            "clock_skew_bounded": self.context.clock.bounded_count,
            "changelog": {"log_start": self.storage.log_start(),
                          "purged_records": stats.purged_records,
                          "purged_tombstones": stats.purged_tombstones,
                          "retention_forced": stats.retention_forced},
            "fold": self._fold_status(),
            **({"fault_dropped_writes": self.fault.dropped} if self.fault else {}),
        }


    def _fold_status(self) -> dict[str, Any]:
        fold = self.core.fold.stats
        return {"state": fold.state, "departed": list(fold.departed),
                "waiting_for": list(fold.waiting_for), "folded_items": fold.folded_items,
                "compacted_items": fold.compacted_items,
                "fold_changes": fold.fold_changes, "passes": fold.passes,
                "scanned_rows": fold.scanned_rows, "page_rows": self._fold_pages.size,
                "job_items": self._fold_jobs.size, "ran_s": round(self._fold_ran_s, 3)}


class DurableCursors:
    """The newest cursor vector this region is known to hold durably, learnt without
    waiting, for the cursors a Pull acknowledges (retention may purge what every region
    acknowledged, so an acknowledgement must survive a crash).

    Every fetch reads the committed cursors and `offer`s them with the storage's settle
    future for that read: a read whose commits are all durable is taken at once, any
    other once its commits are durable (the future's callback; a newer read taken first
    wins). The Pull then carries the newest durable vector instead of waiting for its
    own read to settle: under steady writes some commit is nearly always waiting for
    its fsync, so that wait cost a Pull about one fsync, on every Pull. What the puller
    applied since is in the Pull's `ahead` (Puller.pull), so the peer sends nothing twice.

    This region's own cursor is always the committed one: a peer serves a region's own
    changes only once they were durable there, so claiming the committed own cursor
    never acknowledges more than the peer could hold, and an older own cursor of 0 would
    read to the peer as "lost its own data" (serving.answer_pull) once it holds some."""

    def __init__(self, region: str) -> None:
        self.region = region
        self.cursors: Cursors | None = None
        self._reads = 0  # offers so far
        self._taken = 0  # the offer `cursors` came from

    def offer(self, committed: Cursors, settling: asyncio.Future[None] | None
              ) -> Cursors | None:
        """The cursors to acknowledge now, having read `committed` (None: none known
        durable yet; then the caller waits for `settling`)."""
        self._reads += 1
        if settling is None:
            self._take(self._reads, committed)
        else:
            settling.add_done_callback(functools.partial(self._settled, self._reads, committed))
        if self.cursors is None:
            return None
        acked = dict(self.cursors)
        own = committed.get(self.region)
        if own is not None:
            acked[self.region] = own
        return acked

    def _settled(self, number: int, committed: Cursors, settling: asyncio.Future[None]) -> None:
        if not settling.cancelled() and settling.exception() is None:
            self._take(number, committed)

    def _take(self, number: int, committed: Cursors) -> None:
        if number > self._taken:
            self._taken = number
            self.cursors = committed


def _peers(cluster: ClusterConfig, region: str) -> tuple[RegionConfig, ...]:
    """The regions to pull from: none once this region is no longer in the topology
    (the others refuse its pulls; it keeps serving its clients with what it has)."""
    return cluster.peers_of(region) if cluster.has_region(region) else ()


def _message(text: str) -> bytes:
    return orjson.dumps({"message": text})


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
