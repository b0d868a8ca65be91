"""`SimRegion`: one region's shell in the simulator — what node/replicator.py is to a node,
with the network, the disk and the clock swapped.

Theory of operation: the region runs the node's `ReplicationCore` over its store (the
memory store, or the node's SQLite store) and does for it what the asyncio shell does:
- its pullers' steps: a Pull goes out as an envelope (after its cursors were read:
  every commit here is durable at once) and its answer or a timeout comes back; a
  planned apply is queued as a job; a rebuild sends snapshot requests and queues the
  jobs of each answer, in order, before the next request;
- serving: a Pull is checked and answered from the committed log; an empty answer is
  held (the long poll) until this region commits something or the wait ends;
- the disk: jobs run one at a time in submission order, each after a random delay (the
  writer thread's queue), so fetches overlap applies as in the node; while the disk is
  "full" every job fails after running, and the store must roll it back;
- retention: the core's purge job every interval;
- folding: the core's fold jobs (atoll.replication.fold), one queued at a time.
A crash throws the region away (queued jobs, held polls, the core's soft state); the
store keeps what committed. Every choice the region makes at random comes from the
simulation's seeded generator.
"""

from __future__ import annotations

import functools
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from atoll.clock.hlc import HybridClock
from atoll.replication.apply import ApplyOutcome, LocalWrite, Purge, PurgeResult
from atoll.replication.change import Change, Op
from atoll.replication.config import ReplicationConfig
from atoll.replication.core import ReplicationCore
from atoll.replication.cursors import ZERO, Cursor
from atoll.replication.errors import BadMessage, NotAPeer
from atoll.replication.fold import FoldResult
from atoll.replication.merge import ItemUpdate
from atoll.replication.protocol import Pull, encode_message
from atoll.replication.puller import REBUILD, SEND, SUBMIT, WAIT, Puller
from atoll.replication.rebuild import Rebuild
from atoll.replication.serving import hold_ms
from atoll.replication.snapshot import answer_snapshot
from atoll.replication.store import ReplicaStore, RetentionPlan, StoreTxn
from atoll.sim.network import BATCH, PULL, REFUSED, SNAPSHOT, SNAPSHOT_ANSWER, Envelope, SimNetwork

MAX_JOB_DELAY_MS = 6  # a job waits this long at most behind the previous one
MAX_STEPS_PER_TICK = 4  # puller steps per peer and tick (SUBMIT then SEND, at most)
MAX_HELD_POLLS = 64
FORCED_PURGE_LIMIT = 1_000_000


class DiskFull(Exception):
    """A simulated storage fault: the job ran, its transaction is rolled back."""


@dataclass(slots=True)
class Record:
    """What the checkers need to know of a run, beyond the stores: shared by regions."""

    tombstone_horizon_hlc: int = 0  # the highest horizon a committed purge used
    adopted: dict[str, dict[str, set[int]]] = field(default_factory=dict)  # region: origin: seqs
    counters: dict[str, int] = field(default_factory=dict)
    folds: list[Change] = field(default_factory=list)  # the fold changes regions committed

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n


@dataclass(slots=True)
class _Job:
    job: Callable[[StoreTxn], Any]
    due_ms: int
    done: Callable[[Any, int], None]  # (result or None if it failed, now_ms)


@dataclass(slots=True)
class _HeldPoll:
    src: str
    ref: tuple[int, int]
    pull: Pull
    held: dict[str, Cursor]
    deadline_ms: int
    commits: int


class SimRegion:
    def __init__(self, name: str, regions: Sequence[str], store: ReplicaStore,
                 clock: HybridClock, wall_ms: Callable[[], int], config: ReplicationConfig,
                 network: SimNetwork, rng: random.Random, now_ms: int, incarnation: int,
                 record: Record) -> None:
        self.name = name
        self.store = store
        self.clock = clock
        self.wall_ms = wall_ms
        self.config = config
        self.network = network
        self.rng = rng
        self.incarnation = incarnation
        self.record = record
        clock.restore(store.cursors().get(name, ZERO).hlc)  # never stamp at or below it
        self.core = ReplicationCore(name, regions, config, clock, wall_ms, now_ms)
        self.jobs: deque[_Job] = deque()
        self.held_polls: list[_HeldPoll] = []
        self.commits = 0
        self.disk_full = False
        self.snapshot_ref: tuple[int, int] | None = None
        self.snapshot_sent_ms = 0
        self.snapshot_requests = 0
        self._committed: dict[str, Cursor] | None = None
        # per peer: its puller waits until then, unless something happens here (a delivery,
        # a commit), which forgets every entry (a shortcut: the step would say WAIT)
        self._idle_until: dict[str, int] = {}
        self.folding = False  # a fold job is queued

    # --- the clock's tick ----------------------------------------------------------------
    def tick(self, now_ms: int) -> None:
        self._run_jobs(now_ms)
        self._release_polls(now_ms)
        for peer, puller in self.core.pullers.items():
            if self._idle_until.get(peer, 0) <= now_ms:
                self._drive(puller, now_ms)
        rebuild = self.core.rebuilding
        if (rebuild is not None and self.snapshot_ref is not None
                and now_ms - self.snapshot_sent_ms >= self.config.request_timeout_ms):
            self._end_rebuild(rebuild, False, now_ms)
        if self.core.retention_due(now_ms):
            job = self.core.retention_job(self.committed())
            if job is not None:
                self.queue(job, now_ms, functools.partial(self._purged, job))
        if not self.folding and self.core.fold_due(now_ms):
            fold = self.core.fold_job(self.store, now_ms)
            if fold is not None:
                self.folding = True
                self.queue(fold, now_ms, self._folded)

    def _folded(self, result: FoldResult | None, now_ms: int) -> None:
        self.folding = False
        self.core.folded(result)
        if result is not None:
            self.record.count("folded_items", result.folded)
            self.record.count("compacted_items", result.compacted)
            if result.change is not None:
                self.record.folds.append(result.change)

    def committed(self) -> dict[str, Cursor]:
        """The store's cursors (read again only after a commit)."""
        if self._committed is None:
            self._committed = self.store.cursors()
        return dict(self._committed)

    # --- client writes ---------------------------------------------------------------------
    def local_write(self, ops: Sequence[Op | ItemUpdate]) -> Change | None:
        """A client's write, committed now; None if the disk refused it (not acknowledged)."""
        if self.disk_full:
            return None
        change = self.store.write(LocalWrite(self.name, self.clock, tuple(ops), self.wall_ms))
        self._on_commit()
        return change

    # --- the disk --------------------------------------------------------------------------
    def queue(self, job: Callable[[StoreTxn], Any], now_ms: int,
              done: Callable[[Any, int], None]) -> None:
        after = self.jobs[-1].due_ms if self.jobs else now_ms
        self.jobs.append(_Job(job, max(after, now_ms + self.rng.randint(0, MAX_JOB_DELAY_MS)),
                              done))

    def _run_jobs(self, now_ms: int) -> None:
        while self.jobs and self.jobs[0].due_ms <= now_ms:
            entry = self.jobs.popleft()
            job = entry.job if not self.disk_full else _failing(entry.job)
            try:
                result = self.store.write(job)
            except DiskFull:
                self.record.count("failed_jobs")
                self._idle_until.clear()
                entry.done(None, now_ms)
                continue
            self._on_commit()
            entry.done(result, now_ms)

    def _on_commit(self) -> None:
        self.commits += 1
        self._committed = None
        self._idle_until.clear()

    def _purged(self, job: Purge, result: PurgeResult | None, now_ms: int) -> None:
        if result is not None:
            self.core.purged(result)
            self.record.count("purged", result.records + result.tombstones)
            horizon = job.plan.tombstone_horizon_hlc
            self.record.tombstone_horizon_hlc = max(self.record.tombstone_horizon_hlc, horizon)

    def counters(self) -> dict[str, int]:
        """This incarnation's counts of what its pullers saw."""
        links = [p.link for p in self.core.pullers.values()]
        return {"applied": sum(link.applied for link in links),
                "refused_records": sum(link.refused_records for link in links),
                "refused_changes": sum(link.refused_changes for link in links),
                "bad_messages": sum(link.bad_messages for link in links),
                "held_batches": sum(link.held for link in links),
                "pull_errors": sum(link.errors for link in links),
                "clock_bounded": self.clock.bounded_count}

    def purge_log(self, now_ms: int) -> None:
        """A fault: drop this region's changelog (but each origin's latest record), as the
        bounded maximum would, whatever other regions acknowledged."""
        plan = RetentionPlan({o: c.seq for o, c in self.committed().items()}, 0)
        self.queue(Purge(plan, FORCED_PURGE_LIMIT), now_ms, _ignored)

    # --- pulling ---------------------------------------------------------------------------
    def _drive(self, puller: Puller, now_ms: int) -> None:
        if puller.expired(now_ms):
            puller.on_failure(now_ms, "timed out")
        for _ in range(MAX_STEPS_PER_TICK):
            step = puller.next_step(now_ms)
            if step.kind == WAIT:
                self._idle_until[puller.peer] = step.until_ms
                return
            if step.kind == SEND:
                origins = self.core.origins_via(puller.peer, now_ms)
                pull = puller.pull(self.committed(), origins, now_ms)
                self._send(puller.peer, PULL, (self.incarnation, pull.request_id),
                           encode_message(pull), now_ms)
            elif step.kind == SUBMIT:
                self.queue(puller.take_apply(), now_ms, functools.partial(self._applied, puller))
                continue
            elif step.kind == REBUILD and self.core.rebuilding is None:
                self._start_rebuild(puller, now_ms)
            return

    def _applied(self, puller: Puller, outcome: ApplyOutcome | None, now_ms: int) -> None:
        if self.core.pullers.get(puller.peer) is puller:
            fresh = puller.on_applied(outcome, now_ms)
            self.record.count("refusals_logged", len(fresh))  # what the node would log
            for refusal in outcome.refusals if outcome is not None else ():
                self.record.count("refused_" + refusal.kind.replace(" ", "_"))

    def _on_pull_answer(self, src: str, envelope: Envelope, now_ms: int) -> None:
        puller = self.core.pullers.get(src)
        pull = None if puller is None else puller.in_flight
        if puller is None or pull is None or envelope.ref != (self.incarnation, pull.request_id):
            return  # late, duplicated, or for an earlier incarnation: dropped
        if envelope.kind == REFUSED:
            puller.on_failure(now_ms, "refused")
        elif not puller.on_answer(envelope.body, now_ms, self.store.table_state):
            self.record.count("bad_answers")

    # --- serving ---------------------------------------------------------------------------
    def deliver(self, src: str, envelope: Envelope, now_ms: int) -> None:
        self._idle_until.clear()
        kind = envelope.kind
        if kind == PULL:
            self._serve_pull(src, envelope, now_ms)
        elif kind == SNAPSHOT:
            self._serve_snapshot(src, envelope, now_ms)
        elif kind == BATCH or (kind == REFUSED and envelope.ref[1] > 0):
            self._on_pull_answer(src, envelope, now_ms)
        else:
            self._on_snapshot_answer(src, envelope, now_ms)

    def _serve_pull(self, src: str, envelope: Envelope, now_ms: int) -> None:
        try:
            pull = self.core.accept_pull(src, envelope.body)
        except (NotAPeer, BadMessage):
            self.record.count("refused_pulls")
            self._send(src, REFUSED, envelope.ref, b"", now_ms)
            return
        held = self.committed()  # on arrival, before any wait
        batch = self.core.answer_pull(pull, src, self.store, held)
        wait_ms = hold_ms(pull, batch, self.config)
        if wait_ms and len(self.held_polls) < MAX_HELD_POLLS:
            self.held_polls.append(_HeldPoll(src, envelope.ref, pull, held, now_ms + wait_ms,
                                             self.commits))
            return
        self._send(src, BATCH, envelope.ref, encode_message(batch), now_ms)

    def _release_polls(self, now_ms: int) -> None:
        still = []
        for poll in self.held_polls:
            if poll.commits == self.commits and now_ms < poll.deadline_ms:
                still.append(poll)
                continue
            batch = self.core.answer_pull(poll.pull, poll.src, self.store, poll.held)
            self._send(poll.src, BATCH, poll.ref, encode_message(batch), now_ms)
        self.held_polls = still

    def _serve_snapshot(self, src: str, envelope: Envelope, now_ms: int) -> None:
        if not self.core.is_peer(src):
            return
        try:
            answer = answer_snapshot(envelope.body, self.store, self.config)
        except BadMessage:
            self._send(src, REFUSED, envelope.ref, b"", now_ms)
            return
        self._send(src, SNAPSHOT_ANSWER, envelope.ref, answer, now_ms)

    def _send(self, dst: str, kind: str, ref: tuple[int, int], body: bytes, now_ms: int) -> None:
        self.network.send(now_ms, self.name, dst, Envelope(kind, ref, body))

    # --- rebuilding --------------------------------------------------------------------------
    def _start_rebuild(self, puller: Puller, now_ms: int) -> None:
        rebuild = self.core.start_rebuild(puller.peer, puller.take_rebuild())
        self.record.count("rebuilds_started")
        self._next_snapshot_request(rebuild, now_ms)

    def _next_snapshot_request(self, rebuild: Rebuild, now_ms: int) -> None:
        if self.core.rebuilding is not rebuild:
            return  # it failed meanwhile
        request = rebuild.request()
        if request is None:
            self.queue(rebuild.finish(), now_ms, functools.partial(self._adopted, rebuild))
            return
        self.snapshot_requests += 1
        # snapshot requests count down, pulls count up: a refusal says which it answers
        self.snapshot_ref = (self.incarnation, -self.snapshot_requests)
        self.snapshot_sent_ms = now_ms
        self._send(rebuild.peer, SNAPSHOT, self.snapshot_ref, request, now_ms)

    def _on_snapshot_answer(self, src: str, envelope: Envelope, now_ms: int) -> None:
        rebuild = self.core.rebuilding
        if rebuild is None or src != rebuild.peer or envelope.ref != self.snapshot_ref:
            return
        self.snapshot_ref = None
        if envelope.kind == REFUSED:
            self._end_rebuild(rebuild, False, now_ms)
            return
        try:
            jobs = rebuild.on_answer(envelope.body)
        except BadMessage:
            self._end_rebuild(rebuild, False, now_ms)
            return
        if not jobs:
            self._next_snapshot_request(rebuild, now_ms)
        for index, job in enumerate(jobs):
            last = index == len(jobs) - 1
            self.queue(job, now_ms, functools.partial(self._snapshot_written, rebuild, last))

    def _snapshot_written(self, rebuild: Rebuild, last: bool, result: Any, now_ms: int) -> None:
        if self.core.rebuilding is not rebuild:
            return
        if result is None:
            self._end_rebuild(rebuild, False, now_ms)
        elif last:
            self._next_snapshot_request(rebuild, now_ms)

    def _adopted(self, rebuild: Rebuild, adopted: dict[str, Cursor] | None, now_ms: int) -> None:
        if self.core.rebuilding is not rebuild:
            return
        if adopted is not None:
            seqs = self.record.adopted.setdefault(self.name, {})
            for origin, cursor in adopted.items():
                seqs.setdefault(origin, set()).add(cursor.seq)
        self._end_rebuild(rebuild, adopted is not None, now_ms)

    def _end_rebuild(self, rebuild: Rebuild, ok: bool, now_ms: int) -> None:
        self.snapshot_ref = None
        self._idle_until.clear()
        self.record.count("rebuilds" if ok else "rebuilds_failed")
        self.core.end_rebuild(rebuild, ok, now_ms)


def _ignored(result: Any, now_ms: int) -> None:
    """The done callback of a job whose result nobody waits for."""


def _failing(job: Callable[[StoreTxn], Any]) -> Callable[[StoreTxn], Any]:
    def run(txn: StoreTxn) -> Any:
        job(txn)
        raise DiskFull("the disk is full")
    return run
