"""`Replica`: one region's replication core, wired to its store and clock.

Theory of operation: the shell (the asyncio node, or the simulator) owns the I/O. It
calls `write` for local writes, `tick(now_ms)` on a timer and `receive(peer, data,
now_ms)` for every message from a peer; each returns the messages to send, as
`(peer, bytes)`. The Replica keeps only soft state — one `PullSession` per peer and the
cursors each peer last acknowledged — which a crash may lose: everything that matters
is in the store, and a fresh Replica over the same store resumes from its cursors.

The store calls are synchronous and each is one atomic transaction; the shell must not
send the returned messages before the call that produced them returned (persist, then
send: see `atoll.replication.protocol`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from atoll.clock.hlc import HybridClock
from atoll.invariant import invariant
from atoll.replication.change import Change, Op
from atoll.replication.cursors import ZERO, Cursors
from atoll.replication.errors import BadMessage, ReplicationError
from atoll.replication.protocol import (
    Batch,
    PullSession,
    decode_message,
    encode_message,
    plan_batch,
    serve_pull,
)
from atoll.replication.retention import plan_retention
from atoll.replication.store import ReplicaStore

Outgoing = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class ReplicaConfig:
    pull_interval_ms: int = 50
    pull_timeout_ms: int = 1000
    max_batch_changes: int = 200
    retention_interval_ms: int = 1000
    purge_limit: int = 10_000  # records + tombstones deleted per retention pass
    max_records_per_origin: int = 1_000_000
    max_tombstone_age_ms: int = 7 * 24 * 3600 * 1000


@dataclass(slots=True)
class ReplicaStats:
    applied: int = 0
    duplicates: int = 0
    conflicts: int = 0
    refused_records: int = 0
    refused_messages: int = 0
    held: int = 0  # batches in which some origin's run stopped at a gap or unknown table
    apply_errors: int = 0
    behind_log: set[str] = field(default_factory=set)  # origins we can no longer catch up on
    purged: int = 0
    forced_purges: int = 0
    last_refusal: str = ""


class Replica:
    def __init__(self, store: ReplicaStore, clock: HybridClock, regions: Sequence[str],
                 now_ms: int, config: ReplicaConfig | None = None,
                 first_request_id: int = 1) -> None:
        invariant(store.region in regions, "a replica's region must be in the cluster")
        self.store = store
        self.clock = clock
        self.region = store.region
        self.regions = tuple(sorted(regions))
        self.config = config or ReplicaConfig()
        self.stats = ReplicaStats()
        self.acked: dict[str, Cursors] = {}
        c = self.config
        self.sessions = {peer: PullSession(peer, c.pull_interval_ms, c.pull_timeout_ms,
                                           c.max_batch_changes, first_request_id)
                         for peer in self.regions if peer != self.region}
        self.next_retention_ms = now_ms + c.retention_interval_ms
        # Our own last stamp survives in the store: never issue one at or below it.
        clock.restore(store.cursors().get(self.region, ZERO).hlc)

    # --- local writes ------------------------------------------------------------------
    def write(self, ops: Sequence[Op]) -> Change:
        """Commit a local write; the returned change is durable (acknowledge it)."""
        return self.store.local_write(self.clock.tick(), ops)

    # --- timer -------------------------------------------------------------------------
    def tick(self, now_ms: int) -> Outgoing:
        out: Outgoing = []
        cursors = self.store.cursors()
        for peer, session in self.sessions.items():
            pull = session.poll(now_ms, cursors)
            if pull is not None:
                out.append((peer, encode_message(pull)))
        if now_ms >= self.next_retention_ms:
            self.next_retention_ms = now_ms + self.config.retention_interval_ms
            self.run_retention(now_ms)
        return out

    def run_retention(self, now_ms: int) -> None:
        c = self.config
        decision = plan_retention(self.region, self.regions, self.acked, self.store.cursors(),
                                  now_ms, c.max_records_per_origin, c.max_tombstone_age_ms)
        self.stats.forced_purges += decision.forced
        self.stats.purged += self.store.purge(decision.plan, c.purge_limit)

    # --- messages ----------------------------------------------------------------------
    def receive(self, peer: str, data: bytes, now_ms: int) -> Outgoing:
        if peer not in self.sessions:
            return self._refuse_message(f"message from {peer!r}, not a peer of this cluster")
        try:
            message = decode_message(data)
        except BadMessage as error:
            return self._refuse_message(f"from {peer}: {error}")
        if isinstance(message, Batch):
            return self._on_batch(peer, message, now_ms)
        self.acked[peer] = message.cursors
        changes = self.store.changes_since(message.cursors, message.max_changes)
        batch = serve_pull(message, changes, self.store.log_start())
        return [(peer, encode_message(batch))]

    def _on_batch(self, peer: str, batch: Batch, now_ms: int) -> Outgoing:
        stats = self.stats
        plan = plan_batch(batch.records, self.store.cursors(), self.store.table_state)
        stats.duplicates += plan.duplicates
        stats.refused_records += len(plan.refused)
        if plan.refused:
            stats.last_refusal = f"from {peer}: {plan.refused[0]}"
        stats.held += bool(plan.held)
        stats.behind_log.update(batch.log_start)
        if plan.accepted:
            try:
                result = self.store.apply(plan.accepted)
            except ReplicationError as error:  # a race with a local write: retry next pull
                stats.apply_errors += 1
                stats.last_refusal = f"apply from {peer}: {error}"
            else:
                stats.applied += result.applied
                stats.conflicts += len(result.conflicts)
                for change in plan.accepted:
                    self.clock.observe(change.hlc)
        session = self.sessions[peer]
        if session.on_batch(batch, now_ms, refused=bool(plan.refused)):
            pull = session.poll(now_ms, self.store.cursors())
            if pull is not None:
                return [(peer, encode_message(pull))]
        return []

    def _refuse_message(self, why: str) -> Outgoing:
        self.stats.refused_messages += 1
        self.stats.last_refusal = why
        return []
