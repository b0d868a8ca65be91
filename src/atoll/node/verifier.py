"""Verifier: the asyncio shell that keeps a region proving it holds what its peers hold.

Theory of operation (DESIGN.md decision 7; the pure core is atoll.antientropy)
- Answering: peers' sessions reach this node at `POST /_atoll/verify` on the peer port
  (members of the cluster only, as for replication); `LocalAnswers` answers them from
  this region's storage off the event loop (verifylink.py).
- Tree work (treework.py): at start, tables without a complete tree get one built from
  their rows; then every table's rows are scrubbed continuously at `scrub_rows_per_s`.
- Background work (tree work and comparisons) runs on one node per region: a node
  whose region's storage other nodes share (PostgreSQL) runs it only while it holds the
  region's verify lease (shared_region.py starts and stops it), so a region of many
  nodes scrubs and compares once, not once per node. Answering peers and `atoll
  verify` runs need no lease: any node does them.
- Background comparison: every `interval_s`, each table is compared with each peer in
  a two-region session (this region local, the peer remote); differences below the cut
  are confirmed by a second session focused on their buckets, and with `auto_repair`
  what is confirmed DIVERGED is repaired there and then. The latest result per table and
  peer is kept for `/_atoll/status`, `atoll status`, `/metrics` and the console
  (`verify_results`). Sessions run one after another: a node compares at most one table
  with one peer at a time.
- Runs for `atoll verify` (verifyruns.py): started on this node, over every region.
- A node outside a cluster keeps its trees with every write and nothing more: with no
  peer to compare with, it neither builds missing trees nor scrubs.
- A background job that fails (a shared PostgreSQL restarting, a bug) is logged and
  started again after a pause, never left dead on the node that is to run it.
- Soft state only: results, the verdict book, scrub evidence. A restart loses them and
  costs one more pass, never a wrong verdict.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from atoll.antientropy import (
    UNCONFIRMED_KIND,
    Session,
    Status,
    TableReport,
    VerdictBook,
)
from atoll.antientropy.hashing import bucket_of
from atoll.antientropy.results import combine_passes, worst
from atoll.antientropy.settings import VerifySettings
from atoll.engine.repairs import repair_job
from atoll.engine.treestore import StorageTreeStore
from atoll.http.client import HttpClient, PeerClientFactory, plain_peer_client
from atoll.node.conflictlog import readable_key
from atoll.node.treework import TreeWork
from atoll.node.verifylink import LocalAnswers, PeerAnswers, Transport, now_ms, run_session
from atoll.node.verifyruns import (
    Runs,
    VerifyRun,
    execute,
    parse_run_request,
    session_config,
)
from atoll.storage.treeprotocol import TreeStorage
from atoll.topology.config import ClusterConfig

if TYPE_CHECKING:
    from atoll.engine import Engine

log = logging.getLogger(__name__)

FIRST_ROUND_DELAY_S = 5.0
RESTART_PAUSE_S = 5.0  # after a background job failed
MAX_REPAIR_PAGE = 1000
_JSON = b"application/json"


@dataclass
class PairOutcome:
    """The latest background comparison of one table with one peer."""

    finished_unix_s: float
    status: Status
    transient: int
    diverged: int
    repaired: int
    error: str

    def as_dict(self) -> dict[str, Any]:
        return {"finished_unix_s": round(self.finished_unix_s, 3),
                "verdict": self.status.value.lower(), "transient_items": self.transient,
                "divergent_items": self.diverged, "repaired_items": self.repaired,
                "error": self.error}


class Verifier:
    def __init__(self, engine: Engine, region: str, settings: VerifySettings,
                 topology: Callable[[], ClusterConfig | None], trees: TreeStorage | None,
                 peer_client: PeerClientFactory = plain_peer_client) -> None:
        """`peer_client` makes the client for one peer region (the node's: mutual TLS in
        a cluster with certificates)."""
        self.engine = engine
        self.peer_client = peer_client
        self.region = region
        self.settings = settings
        self._topology = topology  # the node's current topology (None: not in a cluster)
        self.trees = trees  # the node's storage, if it keeps hash trees (else no verify)
        self.enabled = trees is not None
        self.book = VerdictBook()
        self.results: dict[tuple[str, str], PairOutcome] = {}
        self.runs = Runs()
        self.local: LocalAnswers | None = None
        self.work: TreeWork | None = None
        self._clients: dict[str, HttpClient] = {}
        self._sids = itertools.count(1)
        self._tasks: list[asyncio.Task[Any]] = []  # verify runs
        self._background_tasks: list[asyncio.Task[Any]] = []  # tree work, comparisons
        self.rounds = 0

    # --- lifecycle ---------------------------------------------------------------------
    def start(self, background: bool = True) -> None:
        """On the loop, once the storage started: answer peers and runs; with
        `background`, also start the background work (else `start_background` does,
        on the node holding the region's verify lease)."""
        if self.trees is None:
            return
        ctx = self.engine.context
        store = StorageTreeStore(self.trees.tree_access(), self.region,
                                 lambda record, at_ms: repair_job(ctx, record, at_ms))
        self.local = LocalAnswers(store)
        self.work = TreeWork(ctx, store, self.local.call, self.settings.scrub_rows_per_s)
        if background:
            self.start_background()

    @property
    def has_background(self) -> bool:
        """Whether this node has background work to run (trees, and peers to compare
        with: a node outside a cluster keeps its trees with its writes, nothing more)."""
        return self.trees is not None and self._topology() is not None

    @property
    def background_running(self) -> bool:
        return bool(self._background_tasks)

    def start_background(self) -> None:
        """Start building and scrubbing trees and comparing with peers (after `start`)."""
        if self.work is None or not self.has_background or self._background_tasks:
            return
        self._background_tasks = [self._spawn(_restarting(self._tree_work, "verify: trees"),
                                              "verify: trees")]
        if self.settings.background:
            self._background_tasks.append(self._spawn(
                _restarting(self._background, "verify: background"), "verify: background"))

    async def stop_background(self) -> None:
        """Stop the background work and wait for it (its results stay shown)."""
        tasks, self._background_tasks = self._background_tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @staticmethod
    def _spawn(coroutine: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        task.add_done_callback(_log_failure)
        return task

    async def stop(self) -> None:
        await self.stop_background()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for client in self._clients.values():
            client.close()
        if self.local is not None:
            self.local.close()

    async def _tree_work(self) -> None:
        assert self.work is not None
        await self.work.build_all()
        await self.work.scrub_forever()

    # --- peers -------------------------------------------------------------------------
    def _peers(self) -> list[str]:
        topology = self._topology()
        if topology is None or not topology.has_region(self.region):
            return []
        return [r.id for r in topology.peers_of(self.region)]

    def _client(self, peer: str) -> HttpClient:
        """This node's verify client for `peer` (its own: a replication long poll holds
        the replicator's), following the topology's endpoints."""
        topology = self._topology()
        assert topology is not None
        endpoints = topology.region(peer).peer_endpoints
        client = self._clients.get(peer)
        if client is None:
            client = self._clients[peer] = self.peer_client(
                peer, endpoints,
                {"X-Atoll-Cluster": topology.cluster_id, "X-Atoll-Region": self.region})
        else:
            client.set_endpoints(endpoints)
        return client

    def _transports(self, regions: list[str]) -> dict[str, Transport]:
        assert self.local is not None
        return {r: self.local if r == self.region else PeerAnswers(self._client(r))
                for r in regions}

    async def handle_peer(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        """`POST /_atoll/verify` on the peer port: one request of a peer's session."""
        topology = self._topology()
        asker = headers.get("x-atoll-region")
        if (topology is None or headers.get("x-atoll-cluster") != topology.cluster_id
                or asker not in topology.region_ids() or asker == self.region):
            log.warning("refused a verify request from outside the cluster: %s", asker)
            return 403, b'{"message":"not a member of this cluster"}'
        if self.local is None:
            return 503, b'{"message":"this region keeps no hash trees"}'
        return 200, await self.local(body)

    # --- background --------------------------------------------------------------------
    async def _background(self) -> None:
        await asyncio.sleep(min(FIRST_ROUND_DELAY_S, self.settings.interval_s))
        while True:
            for table in sorted(self.engine.catalog.names()):
                for peer in self._peers():
                    if table in self.engine.catalog:
                        await self.compare(table, peer)
            self.rounds += 1
            await asyncio.sleep(self.settings.interval_s)

    async def compare(self, table: str, peer: str) -> TableReport:
        """One background comparison of `table` with `peer` (see the module doc)."""
        assert self.work is not None
        regions = sorted([self.region, peer])
        transports = self._transports(regions)
        repair = self.settings.auto_repair
        config = session_config(repair=repair)
        damage = {self.region: self.work.damage(table)}
        report = await run_session(Session(table, regions, next(self._sids), now_ms(), self.book,
                                           config=config, remote=[peer], damage=damage),
                                   transports)
        focus = {bucket_of(d.pk) for d in report.differences if d.kind == UNCONFIRMED_KIND}
        if focus and not report.error:
            second = await run_session(Session(table, regions, next(self._sids), now_ms(),
                                               self.book, config=config, remote=[peer],
                                               focus=focus, damage=damage), transports)
            report = combine_passes(report, second, focus, bucket_of)
        self._record(table, peer, report)
        return report

    def _record(self, table: str, peer: str, report: TableReport) -> None:
        pair = report.pairs[0] if report.pairs else None
        repaired = sum(1 for e in report.repairs if e.outcome == "applied")
        outcome = PairOutcome(time.time(), report.status, 0 if pair is None else
                              pair.transient + pair.unconfirmed,
                              0 if pair is None else pair.diverged, repaired, report.error)
        previous = self.results.get((table, peer))
        self.results[(table, peer)] = outcome
        if report.status is Status.DIVERGED:
            keys = [readable_key(self.engine.catalog, table, pk.hex(), sk.hex()) or pk.hex()
                    for pk, sk in report.diverged_keys()[:10]]
            again = previous is not None and previous.status is Status.DIVERGED and \
                previous.diverged == outcome.diverged and not repaired
            log.log(logging.INFO if again else logging.WARNING,
                    "verify: %s differs between %s and %s: %d item(s) DIVERGED (%s)%s",
                    table, self.region, peer, outcome.diverged, keys,
                    f", {repaired} repaired" if repaired else
                    "; `atoll verify --repair` repairs them")
        elif report.status is Status.INCOMPLETE and (previous is None or
                                                     previous.status is not Status.INCOMPLETE):
            log.warning("verify: %s could not be compared with %s: %s", table, peer,
                        report.error)

    # --- runs (atoll verify) -----------------------------------------------------------
    def start_run(self, body: bytes) -> tuple[int, bytes]:
        """`POST /_atoll/verify/runs` on the client port."""
        try:
            raw = orjson.loads(body or b"{}")
            request = parse_run_request(raw if isinstance(raw, dict) else {})
        except (orjson.JSONDecodeError, ValueError) as exc:
            return 400, orjson.dumps({"message": f"bad verify request: {exc}"})
        topology = self._topology()
        if self.local is None or topology is None or len(topology.regions) < 2:
            return 409, b'{"message":"verify needs a cluster of two or more regions with trees"}'
        running = self.runs.running()
        if running is not None:
            return 409, orjson.dumps({"message": "a verify run is in progress on this node",
                                      "id": running.id})
        tables = sorted(self.engine.catalog.names())
        if request.tables is not None:
            missing = sorted(set(request.tables) - set(tables))
            if missing:
                return 400, orjson.dumps({"message": f"no such table: {', '.join(missing)}"})
            tables = sorted(set(request.tables))
        run = self.runs.new(request, self.region)
        self._tasks = [task for task in self._tasks if not task.done()]
        self._tasks.append(self._spawn(self._run(run, tables, list(topology.region_ids())),
                                       f"verify run {run.id}"))
        return 202, orjson.dumps({"id": run.id})

    async def _run(self, run: VerifyRun, tables: list[str], regions: list[str]) -> None:
        assert self.work is not None
        try:
            await execute(run, tables, sorted(regions), self._transports(regions),
                          self.work.damage, self._sids)
            run.state = "done"
        except Exception as exc:  # a bug: the run says so instead of hanging
            log.exception("verify run %d failed", run.id)
            run.state, run.error = "failed", str(exc)
        run.finished_unix_s = time.time()

    def run_view(self, run_id: int) -> tuple[int, bytes]:
        run = self.runs.runs.get(run_id)
        if run is None:
            return 404, b'{"message":"no such verify run (a node keeps its last 8)"}'
        return 200, orjson.dumps(run.view(self.engine.catalog))

    # --- what is shown -----------------------------------------------------------------
    def repairs(self, after_id: int) -> dict[str, Any]:
        entries = []
        for repair_id, repaired_ms, table, record in (
                [] if self.trees is None else self.trees.repairs(after_id, MAX_REPAIR_PAGE)):
            entry: dict[str, Any] = {"id": repair_id, "repaired_ms": repaired_ms,
                                     **orjson.loads(record)}
            entry["key"] = readable_key(self.engine.catalog, table, str(entry.get("pk", "")),
                                        str(entry.get("sk", "")))
            entries.append(entry)
        return {"region": self.region, "repairs": entries}

    def status(self) -> dict[str, Any]:
        tables: dict[str, dict[str, Any]] = {}
        for (table, peer), outcome in sorted(self.results.items()):
            tables.setdefault(table, {})[peer] = outcome.as_dict()
        return {"enabled": self.enabled, "interval_s": self.settings.interval_s,
                "auto_repair": self.settings.auto_repair, "rounds": self.rounds,
                "tables": tables, "scrub": None if self.work is None else self.work.status()}

    def verify_results(self) -> dict[str, dict[str, Any]]:
        """Per peer, the latest comparisons (atoll.node.figures.VerifyFigures), with each
        table's under "tables"."""
        per_peer: dict[str, dict[str, Any]] = {}
        for peer in sorted({peer for _table, peer in self.results}):
            outcomes = {t: o for (t, p), o in self.results.items() if p == peer}
            per_peer[peer] = {
                "finished_unix_s": max(o.finished_unix_s for o in outcomes.values()),
                "verdict": worst(o.status for o in outcomes.values()).value.lower(),
                "divergent_items": sum(o.diverged for o in outcomes.values()),
                "repaired_items": sum(o.repaired for o in outcomes.values()),
                "tables": {t: o.as_dict() for t, o in sorted(outcomes.items())}}
        return per_peer


async def _restarting(job: Callable[[], Awaitable[None]], name: str) -> None:
    """Run `job` until it returns or is cancelled. A failure (the storage unreadable
    for a while: a shared PostgreSQL restarting; or a bug) is logged with its traceback
    and the job starts again after RESTART_PAUSE_S: background verify outlives it rather
    than stopping for good on the node that runs it."""
    while True:
        try:
            await job()
            return
        except Exception:
            log.exception("%s failed; it starts again in %.0f s", name, RESTART_PAUSE_S)
        await asyncio.sleep(RESTART_PAUSE_S)


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.critical("verify task %s died", task.get_name(), exc_info=task.exception())

