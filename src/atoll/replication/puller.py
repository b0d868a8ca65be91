"""`Puller`: one peer's pull loop as a state machine (sans-I/O).

Theory of operation: a shell (the node's asyncio task, or the simulator's step) asks
`next_step(now_ms)` what to do for this peer and does it, reporting back:

  SEND     build `pull(...)` and send it; report `on_answer` or `on_failure`
           (a failed request, a timeout — see `expired` — or a refused answer)
  SUBMIT   submit `take_apply()` as a store job; report `on_applied` when it commits
           (or `on_applied(None)` if it failed)
  DRAIN    wait until the oldest apply in flight commits (at most
           `config.applies_in_flight` per peer)
  REBUILD  rebuild from this peer's snapshot (`take_rebuild`), report `on_rebuilt`
  WAIT     nothing to do before `until_ms` (backoff, a pause, an answer awaited)

Fetch overlaps apply: right after SUBMIT the next step is SEND, while the apply runs.
That Pull carries the COMMITTED cursors — it acknowledges them, and retention may purge
what every region acknowledged — and, in `ahead`, the cursors the apply in flight will
reach, so the server skips what is being applied. Its answer is planned against those
raised cursors (`protocol.plan_batch`) and submitted at once, while fewer than
`applies_in_flight` applies are in flight (else DRAIN, then SUBMIT): the store runs jobs
in submission order, so the second apply finds the first one's cursors. Two in flight
let an answer's apply join the storage's next group commit while the one before waits
for its fsync, instead of waiting for that fsync first (the node's default; one
reproduces strictly alternating applies). If an apply falls short (a gap, a table not known yet, or a
storage failure), the raised cursors are forgotten and the next Pull asks again from the
committed ones; the apply job itself stops at any gap, so nothing is ever applied past
one.

Refused changes (atoll.replication.admission): an apply that stopped at a refused change
left its origin's cursor before it; the next Pull, from the committed cursors, brings it
again, after a backoff doubling from `backoff_min_ms` to `backoff_max_ms` (reset by the
next apply that completes), so a change refused for good costs one pull and one apply
per `backoff_max_ms`, not a hot loop. `on_applied` returns the refusals this link has not
seen before, for the shell to log once each; the link counts them all. The duplicates a
batch brings (`plan_batch`'s replays) ride in the apply job to be compared with the
changelog there, so a batch of nothing but duplicates still makes a job, one that only
reads (duplicates come when peers relay what another already delivered).

Caught up (`caught_up`): set once an answer said the peer had nothing more (no
`has_more`, nothing held back or refused) and every apply planned up to it committed
whole; from then on this region held everything the peer had when it answered. It stays
set (a lagging link is ordinary); what a region not yet caught up since it started may
be missing — access keys above all — is for the node to judge (ReplicationCore.caught_up).

Bounds: one Pull and `applies_in_flight` applies in flight, one planned apply waiting; between failed
pulls a backoff doubling from `backoff_min_ms` to `backoff_max_ms`; after a batch that
could not be used whole, a `held_pause_ms` pause unless the peer has more; at most
`MAX_REMEMBERED_REFUSALS` refusals remembered as logged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from atoll.clock.hlc import HybridClock
from atoll.invariant import invariant
from atoll.replication.admission import Refusal
from atoll.replication.apply import ApplyChanges, ApplyOutcome
from atoll.replication.config import ReplicationConfig
from atoll.replication.cursors import Cursor, Cursors, cursor_of
from atoll.replication.errors import BadMessage
from atoll.replication.merge import TableState
from atoll.replication.protocol import Batch, Pull, decode_message, plan_batch

SEND = "send"
SUBMIT = "submit"
DRAIN = "drain"
REBUILD = "rebuild"
WAIT = "wait"
NEVER_MS = 1 << 62  # a WAIT that only an event ends (an answer, a commit, a rebuild)
MAX_REMEMBERED_REFUSALS = 1000  # refusals already logged, per link (the oldest forgotten)


class Step(NamedTuple):
    kind: str
    until_ms: int = 0  # for WAIT


@dataclass(slots=True)
class PeerLink:
    """What this region knows of pulling from one peer (status, routing, checkers)."""

    peer: str
    last_ok_ms: int  # the last answered Pull (start time until the first one)
    connected: bool = False
    errors: int = 0
    last_error: str = ""
    pulls: int = 0
    applied: int = 0
    duplicates: int = 0
    conflicts: int = 0
    refused_records: int = 0
    bad_messages: int = 0
    held: int = 0  # batches in which some origin's run stopped (a gap, an unknown table)
    clock_bounded: int = 0
    refused_changes: int = 0  # refused by admission (every time: a retry counts again)
    last_refusal: str = ""
    refusing: bool = False  # the latest apply stopped at a refused change


class Puller:
    def __init__(self, peer: str, region: str, config: ReplicationConfig, clock: HybridClock,
                 wall_ms: Callable[[], int], now_ms: int) -> None:
        self.peer = peer
        self.region = region
        self.config = config
        self.clock = clock
        self.wall_ms = wall_ms
        self.link = PeerLink(peer, last_ok_ms=now_ms)
        self.request_id = 0
        self.in_flight: Pull | None = None
        self.sent_ms = 0
        self.ready: ApplyChanges | None = None  # planned; submitted once no apply is in flight
        self.applying = 0  # applies submitted and not yet reported
        self.planned: dict[str, int] = {}  # cursors the applies submitted will reach
        self.behind: dict[str, int] | None = None  # a rebuild is wanted
        self.rebuilding = False
        self.caught_up = False  # see the module docstring
        self._catching_up = False  # an answer with nothing more awaits its applies
        self.wake_ms = 0
        self.backoff_ms = config.backoff_min_ms
        self.refusal_backoff_ms = config.backoff_min_ms
        self.logged_refusals: dict[tuple[str, str, int, int], None] = {}  # oldest first

    def next_step(self, now_ms: int) -> Step:
        if self.ready is not None:
            return Step(DRAIN if self.applying >= self.config.applies_in_flight else SUBMIT)
        if self.behind is not None:
            return Step(DRAIN if self.applying else REBUILD)
        if self.rebuilding:
            return Step(WAIT, NEVER_MS)
        if self.in_flight is not None:
            return Step(WAIT, self.sent_ms + self.config.request_timeout_ms)
        if now_ms < self.wake_ms:
            return Step(WAIT, self.wake_ms)
        return Step(SEND)

    # --- pulling -------------------------------------------------------------------------
    def pull(self, committed: Cursors, origins: Sequence[str], now_ms: int) -> Pull:
        """The Pull to send now (SEND): committed cursors, and `ahead` for the applies
        in flight."""
        invariant(self.in_flight is None and self.ready is None, "a Pull while one is pending")
        self.request_id += 1
        ahead = {o: seq for o, seq in sorted(self.planned.items())
                 if seq > cursor_of(committed, o).seq}
        self.in_flight = Pull(self.request_id, dict(committed), self.config.max_batch_changes,
                              tuple(origins), ahead, self.config.pull_wait_ms)
        self.sent_ms = now_ms
        self.link.pulls += 1
        return self.in_flight

    def expired(self, now_ms: int) -> bool:
        """The Pull in flight is unanswered for longer than the request timeout."""
        return (self.in_flight is not None
                and now_ms - self.sent_ms >= self.config.request_timeout_ms)

    def on_failure(self, now_ms: int, why: str) -> None:
        """The Pull in flight failed: ask again after a backoff."""
        self.in_flight = None
        self.link.connected = False
        self.link.errors += 1
        self.link.last_error = why[:300]
        self.wake_ms = now_ms + self.backoff_ms
        self.backoff_ms = min(self.backoff_ms * 2, self.config.backoff_max_ms)

    def on_store_failure(self, now_ms: int, why: str) -> None:
        """This region's store could not be read for the Pull or its plan (a shared
        database restarting): the Pull in flight, if any, is forgotten and the next one,
        from the committed cursors, waits the longest backoff. The link itself is fine."""
        self.in_flight = None
        self.link.errors += 1
        self.link.last_error = f"storage: {why}"[:300]
        self.wake_ms = now_ms + self.config.backoff_max_ms

    def on_answer(self, data: bytes, now_ms: int,
                  table_state: Callable[[str], TableState | None]) -> bool:
        """The answer to the Pull in flight: decoded and planned. False if it was refused
        (malformed, or not the answer to this Pull): reported as a failure."""
        pull = self.in_flight
        invariant(pull is not None, "an answer with no Pull in flight")
        assert pull is not None
        try:
            batch = decode_message(data)
            if not isinstance(batch, Batch) or batch.request_id != pull.request_id:
                raise BadMessage("the answer is not the Batch for this Pull")
        except BadMessage as exc:
            self.link.bad_messages += 1
            self.on_failure(now_ms, str(exc))
            return False
        self.in_flight = None
        self.link.connected = True
        self.link.last_ok_ms = now_ms
        self.backoff_ms = self.config.backoff_min_ms
        if batch.log_start:
            self.behind = dict(batch.log_start)
            return True
        self._plan(batch, pull, now_ms, table_state)
        return True

    def _plan(self, batch: Batch, pull: Pull, now_ms: int,
              table_state: Callable[[str], TableState | None]) -> None:
        wanted = dict(pull.cursors)
        for origin, seq in pull.ahead.items():
            wanted[origin] = Cursor(seq, 0)
        known: dict[str, TableState | None] = {}  # one read per table and batch

        def known_state(name: str) -> TableState | None:
            if name not in known:
                known[name] = table_state(name)
            return known[name]

        plan = plan_batch(batch.records, wanted, known_state)
        self.link.duplicates += plan.duplicates - len(plan.replays)  # the apply counts those
        self.link.refused_records += len(plan.refused)
        if plan.refused:
            self.link.last_error = f"refused {len(plan.refused)} records: {plan.refused[0]}"
        self.link.held += bool(plan.held)
        if plan.accepted or plan.replays:
            self.ready = ApplyChanges(tuple(zip(plan.accepted, plan.frames, strict=True)),
                                      self.region, self.clock, self.wall_ms,
                                      tuple(plan.replays))
        if (plan.refused or plan.held) and not batch.has_more:
            self.wake_ms = now_ms + self.config.held_pause_ms  # no hot loop on it
        if not batch.has_more and not plan.refused and not plan.held:
            if self.ready is None and not self.applying:
                self.caught_up = True
            else:
                self._catching_up = True  # once the applies up to it committed

    # --- applying ------------------------------------------------------------------------
    def take_apply(self) -> ApplyChanges:
        """The planned apply, to submit now (SUBMIT)."""
        job = self.ready
        invariant(job is not None and self.applying < self.config.applies_in_flight,
                  "SUBMIT out of turn")
        assert job is not None
        self.ready = None
        self.applying += 1
        for change, _frame in job.changes:
            self.planned[change.origin] = max(self.planned.get(change.origin, 0), change.seq)
        return job

    def on_applied(self, outcome: ApplyOutcome | None, now_ms: int) -> list[Refusal]:
        """The apply in flight committed (`outcome`) or failed (None: a storage fault,
        backed off like a failed pull). Returns its refusals this link had not seen
        before (to log)."""
        invariant(self.applying > 0, "an apply ended that was not in flight")
        self.applying -= 1
        if outcome is None or not outcome.complete:
            # it fell short: ask again from the committed cursors (an apply still in
            # flight, planned past it, stops at the gap it left)
            self.planned.clear()
            self._catching_up = False
        elif self._catching_up and self.ready is None and not self.applying:
            self.caught_up = True
            self._catching_up = False
        if outcome is None:
            self.wake_ms = max(self.wake_ms, now_ms + self.backoff_ms)
            self.backoff_ms = min(self.backoff_ms * 2, self.config.backoff_max_ms)
            return []
        self.link.applied += outcome.applied
        self.link.duplicates += outcome.duplicates
        self.link.conflicts += len(outcome.conflicts)
        self.link.clock_bounded += outcome.clock_bounded
        return self._on_refusals(outcome, now_ms)

    def _on_refusals(self, outcome: ApplyOutcome, now_ms: int) -> list[Refusal]:
        link = self.link
        if outcome.complete:
            link.refusing = False
            self.refusal_backoff_ms = self.config.backoff_min_ms
        if not outcome.refusals:
            return []
        link.refused_changes += len(outcome.refusals)
        link.last_refusal = outcome.refusals[-1].describe()[:300]
        if outcome.stopped_at_refusal:
            link.refusing = True
            self.wake_ms = max(self.wake_ms, now_ms + self.refusal_backoff_ms)
            self.refusal_backoff_ms = min(self.refusal_backoff_ms * 2, self.config.backoff_max_ms)
        fresh = []
        for refusal in outcome.refusals:
            if refusal.identity in self.logged_refusals:
                continue
            fresh.append(refusal)
            self.logged_refusals[refusal.identity] = None
            if len(self.logged_refusals) > MAX_REMEMBERED_REFUSALS:
                del self.logged_refusals[next(iter(self.logged_refusals))]
        return fresh

    # --- rebuilding ----------------------------------------------------------------------
    def take_rebuild(self) -> dict[str, int]:
        """What the peer's log cannot bring (REBUILD): rebuild from its snapshot now."""
        behind = self.behind
        invariant(behind is not None and not self.applying, "REBUILD out of turn")
        assert behind is not None
        self.behind = None
        self.rebuilding = True
        self._catching_up = False
        self.planned.clear()
        return behind

    def on_rebuilt(self, ok: bool, now_ms: int) -> None:
        self.rebuilding = False
        if not ok:
            self.wake_ms = now_ms + self.config.backoff_max_ms
