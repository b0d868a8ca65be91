"""`ReplicationCore`: one region's replication state machines, driven by a shell.

Theory of operation: the shell owns every I/O — the network, the store's transactions,
time — and the core decides. The node (atoll/node/replicator.py, asyncio and HTTP over
the SQLite store) and the simulator (atoll/sim, a seeded fake network and clock over the
memory or the same SQLite store) drive this same core; only how bytes move, how jobs
commit and what time it is differ. The core holds:

- one `Puller` per peer (what to ask whom, fetch overlapping apply, backoff, held and
  gap handling, when to rebuild), and the routing between them (`origins_via`): a
  region pulls each origin's changes from that origin, and once the direct link to an
  origin has failed for `direct_stale_ms`, from every other peer too;
- the serving side: `accept_pull` checks a Pull and records the cursors it acknowledges;
  `answer_pull` (atoll.replication.serving) answers it from the store's committed log;
- at most one `Rebuild` at a time (atoll.replication.rebuild);
- retention: every `retention_interval_ms`, a `Purge` job of what every region
  acknowledged (atoll.replication.retention), bounded per pass;
- folding and compaction: in the lowest-named region, `FoldItems` jobs that fold the
  counter contributions of regions that left the topology and compact item states every
  region acknowledged (atoll.replication.fold), a pass every `fold_interval_ms` while
  there is something to fold, a sweep at most every `compact_interval_ms`.

The core keeps only soft state, which a crash may lose: everything that matters is in
the store, and a fresh core over the same store resumes from its cursors. Ordering
contract for the shells (see `protocol`): persist, then send — a Pull carries cursors
only once durable, an answer carries only committed records; an apply job commits its
changes and their cursors in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from atoll.clock.hlc import HybridClock
from atoll.invariant import invariant
from atoll.replication.apply import Purge, PurgeResult
from atoll.replication.config import ReplicationConfig
from atoll.replication.cursors import Cursors
from atoll.replication.errors import BadMessage, NotAPeer
from atoll.replication.fold import FoldItems, FoldResult, FoldWork
from atoll.replication.protocol import Batch, Pull, decode_message
from atoll.replication.puller import Puller
from atoll.replication.rebuild import Rebuild
from atoll.replication.retention import plan_retention
from atoll.replication.serving import answer_pull
from atoll.replication.store import ReplicaStore


@dataclass(slots=True)
class CoreStats:
    pulls_served: int = 0
    pulls_refused: int = 0
    purged_records: int = 0
    purged_tombstones: int = 0
    retention_forced: bool = False  # the bounded maximum overrode some acknowledgement
    rebuilds: int = 0
    rebuilds_failed: int = 0


class ReplicationCore:
    def __init__(self, region: str, regions: Iterable[str], config: ReplicationConfig,
                 clock: HybridClock, wall_ms: Callable[[], int], now_ms: int) -> None:
        """`clock`: the region's HLC (apply jobs observe peers' stamps on it); `wall_ms`:
        the wall clock apply jobs read (lag, conflict times, tombstone age); `now_ms`:
        the shell's time for timers (monotonic in the node)."""
        self.region = region
        self.config = config
        self.clock = clock
        self.wall_ms = wall_ms
        self.regions: tuple[str, ...] = ()
        self.pullers: dict[str, Puller] = {}
        self.acked: dict[str, Cursors] = {}  # per peer: the cursors its last Pull carried
        self.rebuilding: Rebuild | None = None
        self.next_retention_ms = now_ms + config.retention_interval_ms
        self.next_fold_ms = now_ms
        self.fold = FoldWork(region, config.fold_scan_rows, config.fold_batch_items,
                             config.fold_pages_per_step, config.compact_interval_ms)
        self.stats = CoreStats()
        self.set_regions(regions, now_ms)

    # --- topology ------------------------------------------------------------------------
    def set_regions(self, regions: Iterable[str], now_ms: int) -> tuple[list[str], list[str]]:
        """Follow the cluster's regions; returns the peers (joined, left). A region that
        is no longer in the cluster itself has no peers: it pulls from none."""
        regions = tuple(sorted(set(regions)))
        peers = [r for r in regions if r != self.region] if self.region in regions else []
        left = [p for p in self.pullers if p not in peers]
        joined = [p for p in peers if p not in self.pullers]
        for peer in left:
            del self.pullers[peer]
        for gone in [r for r in self.acked if r not in regions]:
            del self.acked[gone]
        for peer in joined:
            # a new peer counts as reachable until it has failed for direct_stale_ms: at
            # start-up, asking every peer for every origin would fetch each change twice
            self.pullers[peer] = Puller(peer, self.region, self.config, self.clock,
                                        self.wall_ms, now_ms)
        self.regions = regions
        return joined, left

    def origins_via(self, peer: str, now_ms: int) -> list[str]:
        """What to ask `peer` for: its own changes, and those of origins whose direct
        link has been failing for `direct_stale_ms`."""
        stale_after = now_ms - self.config.direct_stale_ms
        return [peer] + [other for other, puller in sorted(self.pullers.items())
                         if other != peer and puller.link.last_ok_ms < stale_after]

    # --- serving -------------------------------------------------------------------------
    def is_peer(self, region: str) -> bool:
        """Whether `region` may pull from this one: any other region of the cluster (even
        when this region has left it and pulls from none)."""
        return region in self.regions and region != self.region

    def accept_pull(self, puller: str, data: bytes) -> Pull:
        """A peer's Pull, checked; its cursors are what that peer acknowledges.
        NotAPeer or BadMessage if refused."""
        if not self.is_peer(puller):
            self.stats.pulls_refused += 1
            raise NotAPeer(f"{puller!r} is not a peer of {self.region}")
        try:
            message = decode_message(data)
            if not isinstance(message, Pull):
                raise BadMessage("expected a Pull")
        except BadMessage:
            self.stats.pulls_refused += 1
            raise
        self.acked[puller] = dict(message.cursors)
        self.stats.pulls_served += 1
        return message

    def answer_pull(self, pull: Pull, puller: str, store: ReplicaStore, held: Cursors) -> Batch:
        """See `serving.answer_pull`; `held`: the store's cursors when the Pull arrived."""
        return answer_pull(pull, puller, self.regions, store, held, self.config)

    def caught_up(self) -> bool:
        """Whether this region holds what its peers held when it last caught up since it
        started: no rebuild running or wanted, and some peer's link caught up (a region
        without peers always has). Until then a record missing here may exist elsewhere
        (a region that started empty, or from an old backup, lacks what came since)."""
        if self.rebuilding is not None:
            return False
        pullers = self.pullers.values()
        if any(p.behind is not None or p.rebuilding for p in pullers):
            return False
        return not self.pullers or any(p.caught_up for p in pullers)

    # --- rebuilding ----------------------------------------------------------------------
    def start_rebuild(self, peer: str, behind: Mapping[str, int]) -> Rebuild:
        invariant(self.rebuilding is None, "one rebuild at a time")
        self.rebuilding = Rebuild(peer, behind, self.region, self.clock, self.wall_ms,
                                  self.config)
        return self.rebuilding

    def end_rebuild(self, rebuild: Rebuild, ok: bool, now_ms: int) -> None:
        invariant(self.rebuilding is rebuild, "ending a rebuild that is not running")
        self.rebuilding = None
        if ok:
            self.stats.rebuilds += 1
        else:
            self.stats.rebuilds_failed += 1
        puller = self.pullers.get(rebuild.peer)
        if puller is not None:
            puller.on_rebuilt(ok, now_ms)

    # --- retention -----------------------------------------------------------------------
    def retention_due(self, now_ms: int) -> bool:
        if now_ms < self.next_retention_ms:
            return False
        self.next_retention_ms = now_ms + self.config.retention_interval_ms
        return True

    def retention_job(self, own: Cursors) -> Purge | None:
        """What to purge now, given this region's committed cursors (None: nothing)."""
        c = self.config
        decision = plan_retention(self.region, self.regions, self.acked, own, self.wall_ms(),
                                  c.max_records_per_origin, c.max_tombstone_age_ms)
        self.stats.retention_forced = decision.forced
        plan = decision.plan
        if not plan.purge_through and plan.tombstone_horizon_hlc == 0:
            return None
        return Purge(plan, c.purge_limit)

    def purged(self, result: PurgeResult) -> None:
        self.stats.purged_records += result.records
        self.stats.purged_tombstones += result.tombstones

    # --- folding departed regions -------------------------------------------------------
    def fold_due(self, now_ms: int) -> bool:
        """Whether to ask for a fold job now: at once while a pass is under way, else
        every `fold_interval_ms`."""
        if self.fold.busy:
            return True
        if now_ms < self.next_fold_ms:
            return False
        self.next_fold_ms = now_ms + self.config.fold_interval_ms
        return True

    def fold_job(self, store: ReplicaStore, now_ms: int, page_rows: int = 0,
                 job_items: int = 0) -> FoldItems | None:
        """The next fold or compaction job (reads committed state from `store`), or None;
        `page_rows`, `job_items`: the step's sizes (0: the configured ones)."""
        return self.fold.step(store, self.regions, self.acked, self.clock, self.wall_ms, now_ms,
                              page_rows, job_items)

    def folded(self, result: FoldResult | None) -> None:
        self.fold.done(result)
