"""A verify session: one table compared over two or more regions (sans-I/O).

Theory of operation: the session sends the same questions to every region and compares
the answers; each region answers from its own store with `serve` (stateless). The shell
— a node comparing itself with a peer (its own region answered by a local call), or
`atoll verify` asking every region — moves bytes: `start()` and `receive(region, data,
now_ms)` return `(region, request)` pairs to send; `fail(region, why, now_ms)` reports a
transport error or timeout. At most one request is in flight per region; the phases run
in this order, each one starting when every region has answered the previous one:

  scrub     (deep sessions only) each region rebuilds its buckets from its rows,
            corrects the stored hashes that disagree and reports them (damage evidence)
  open      each region's cursors and purge points (read first), its table versions,
            key count and level-1 hashes; nothing else is read before all have answered
  descend   level by level, the children of the nodes whose hashes differ
  keys      the rows of the differing buckets, paged; a bucket that does not fit in one
            page on some region is compared next by sub-bucket hashes
  sub       sub-bucket hashes of those large buckets, then the rows of the differing
            sub-buckets only, paged
  judge     per key and pair: agree, TRANSIENT, UNCONFIRMED or DIVERGED (verdict.py);
            the book records this session's below-cut differences for the next one
  fetch     (repair only) the winning versions, whole, from regions that hold them
  repair    (repair only) the records, to the regions that need them

Round trips for one divergent key with the default shape: open, 3 descend levels, keys
(5). Bytes per round are bounded by the message bounds and the config below; rows listed
per session by `max_rows`.

A session with `focus` skips the descent and lists the given buckets: the cheap second
pass that confirms a first pass's candidates. `damage` brings in evidence from scrubs
run outside the session (a node scrubs its own rows continuously): per region, buckets
found changed behind Atoll's back, weighed as the session's own scrub findings are when
a repair chooses between two contents of one version (repair.py).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from atoll.antientropy.hashing import DEFAULT_SHAPE, TreeShape
from atoll.antientropy.judge import Judge
from atoll.antientropy.messages import (
    MAX_FETCH_KEYS,
    MAX_PARENTS,
    MAX_REPAIRS,
    MAX_SPANS,
    Children,
    Error,
    Fetch,
    Fetched,
    Hashes,
    KeyPages,
    Keys,
    Listed,
    Open,
    Opened,
    Repair,
    Repaired,
    RepairItem,
    Request,
    Response,
    Scrub,
    Scrubbed,
    Span,
    SubHashes,
    listed_of,
)
from atoll.antientropy.repair import KeyRepair
from atoll.antientropy.results import Status, TableReport
from atoll.antientropy.serve import MAX_SCRUB_BUCKETS
from atoll.antientropy.store import Entry, KeyPos, RepairLogEntry
from atoll.antientropy.verdict import VerdictBook
from atoll.antientropy.versions import HLC_SCHEME, VersionScheme
from atoll.antientropy.wire import decode_response, encode_request
from atoll.invariant import invariant
from atoll.replication.errors import BadMessage

Outbound = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class SessionConfig:
    shape: TreeShape = DEFAULT_SHAPE
    deep: bool = False  # scrub every bucket from its rows first (finds changes behind Atoll's back)
    repair: bool = False
    page_keys: int = 1000
    spans_per_request: int = 256
    parents_per_request: int = 1024
    scrub_buckets_per_request: int = MAX_SCRUB_BUCKETS
    sub_bits: int = 8
    max_rows: int = 5_000_000  # rows listed over the whole session, all regions
    max_differences: int = 10_000  # listed in the report (all are counted)
    max_repairs: int = 10_000  # keys repaired per session
    fetch_batch: int = 200
    repair_batch: int = 200

    def __post_init__(self) -> None:
        invariant(0 < self.page_keys <= 4096 and 0 < self.spans_per_request <= MAX_SPANS,
                  "page bounds out of range")
        invariant(0 < self.parents_per_request <= MAX_PARENTS, "parents bound out of range")
        invariant(0 < self.fetch_batch <= MAX_FETCH_KEYS and
                  0 < self.repair_batch <= MAX_REPAIRS, "repair batches out of range")
        invariant(0 < self.scrub_buckets_per_request <= MAX_SCRUB_BUCKETS,
                  "scrub batch out of range")


class SessionFailed(Exception):
    """A region answered with an error or something the session cannot use."""


class Session:
    def __init__(self, table: str, regions: Sequence[str], sid: int, now_ms: int,
                 book: VerdictBook, scheme: VersionScheme = HLC_SCHEME,
                 config: SessionConfig | None = None, remote: Iterable[str] | None = None,
                 focus: Iterable[int] | None = None,
                 damage: Mapping[str, Iterable[int]] | None = None) -> None:
        invariant(len(set(regions)) == len(regions) >= 2, "a session compares 2+ regions")
        self.table = table
        self.regions = tuple(sorted(regions))
        self.sid = sid
        self.config = config or SessionConfig()
        self.shape = self.config.shape
        self.remote = frozenset(self.regions if remote is None else remote)
        self.focus = None if focus is None else sorted(set(focus))
        self.report = TableReport(table, self.regions, now_ms)
        self.report.bytes_by_region = {r: 0 for r in self.regions}
        self.done = False
        self._judge = Judge(table, self.regions, scheme, book, self.config.max_differences,
                            self.config.max_repairs, self.report, damage)
        self._queue: dict[str, deque[Request]] = {r: deque() for r in self.regions}
        self._in_flight: dict[str, Request | None] = {r: None for r in self.regions}
        self._sent: dict[str, int] = {r: 0 for r in self.regions}
        self._phase = ""
        self._participants: tuple[str, ...] = self.regions
        self._level = 0
        self._parents: list[int] = []
        self._hashes: dict[str, list[int]] = {}
        self._big: set[int] = set()
        self._sub_hashes: dict[str, dict[int, tuple[int, ...]]] = {}
        self._rows_listed = 0
        self._plans: list[KeyRepair] = []
        self._fetched: dict[KeyPos, Entry] = {}
        self._now_ms = now_ms

    # --- driving ---------------------------------------------------------------------------
    def start(self) -> Outbound:
        if self.config.deep:
            self._begin_scrub()
        else:
            self._begin_open()
        return self._pump(self.report.started_ms)

    def receive(self, region: str, data: bytes, now_ms: int) -> Outbound:
        if self.done:
            return []
        request = self._in_flight.get(region)
        if request is None:
            return self._failed(f"unexpected answer from {region}", now_ms)
        self._in_flight[region] = None
        self._now_ms = now_ms
        if region in self.remote:
            self.report.bytes_by_region[region] += len(data)
        try:
            response = decode_response(data)
            if isinstance(response, Error):
                raise SessionFailed(f"{region}: {response.error}")
            if response.sid != self.sid:
                raise SessionFailed(f"{region} answered another session")
            self._handle(region, request, response)
        except (BadMessage, SessionFailed) as error:
            return self._failed(f"{region}: {error}", now_ms)
        return self._pump(now_ms)

    def fail(self, region: str, why: str, now_ms: int) -> Outbound:
        return self._failed(f"{region}: {why}", now_ms)

    @property
    def in_flight(self) -> dict[str, Request | None]:
        return dict(self._in_flight)

    def _failed(self, why: str, now_ms: int) -> Outbound:
        if not self.done:
            self.report.error = why
            self._finish(now_ms)
        return []

    def _pump(self, now_ms: int) -> Outbound:
        """Send what can be sent; move to the next phase when every region is idle."""
        while not self.done:
            out: Outbound = []
            for region in self.regions:
                if self._in_flight[region] is None and self._queue[region]:
                    request = self._queue[region].popleft()
                    self._in_flight[region] = request
                    data = encode_request(request)
                    self._sent[region] += 1
                    if region in self.remote:
                        self.report.bytes_by_region[region] += len(data)
                    out.append((region, data))
            if out or any(r is not None for r in self._in_flight.values()):
                return out
            self._advance(now_ms)
        return []

    def _send(self, region: str, request: Request) -> None:
        self._queue[region].append(request)

    # --- phases ------------------------------------------------------------------------
    def _advance(self, now_ms: int) -> None:
        phase = self._phase
        if phase == "scrub":
            self._begin_open()
        elif phase == "open":
            self._after_open()
        elif phase == "descend":
            self._after_descend()
        elif phase in ("keys", "subkeys"):
            self._after_keys()
        elif phase == "sub":
            self._after_sub()
        elif phase == "fetch":
            self._begin_repair()
        else:
            self._finish(now_ms)

    def _begin_scrub(self) -> None:
        self._phase = "scrub"
        step = self.config.scrub_buckets_per_request
        for region in self.regions:
            for first in range(0, self.shape.buckets, step):
                count = min(step, self.shape.buckets - first)
                self._send(region, Scrub(self.sid, self.table, self.shape.bucket_bits, first,
                                         count))

    def _begin_open(self) -> None:
        self._phase = "open"
        for region in self.regions:
            self._send(region, Open(self.sid, self.table, self.shape.bucket_bits,
                                    self.shape.fanout_bits))

    def _after_open(self) -> None:
        self._participants = self._judge.opened()
        if len(self._participants) < 2:
            self._begin_judge()
        elif self.focus is not None:
            self._begin_keys(self.focus)
        else:
            level1 = {r: list(self._judge.sides[r].level1) for r in self._participants}
            self._descend_from(1, list(range(self.shape.fanout)), level1)

    def _descend_from(self, level: int, nodes: list[int], hashes: Mapping[str, list[int]]
                      ) -> None:
        differing = [node for index, node in enumerate(nodes)
                     if len({hashes[r][index] for r in self._participants}) > 1]
        if not differing:
            self._begin_judge()
        elif level == self.shape.depth:
            self._begin_keys(differing)
        else:
            self._phase = "descend"
            self._level, self._parents = level, differing
            self._hashes = {r: [] for r in self._participants}
            step = self.config.parents_per_request
            for region in self._participants:
                for at in range(0, len(differing), step):
                    self._send(region, Children(self.sid, self.table, self.shape.bucket_bits,
                                                self.shape.fanout_bits, level,
                                                tuple(differing[at:at + step])))

    def _after_descend(self) -> None:
        fan = self.shape.fanout
        children = [parent * fan + j for parent in self._parents for j in range(fan)]
        invariant(all(len(self._hashes[r]) == len(children) for r in self._participants),
                  "every region answered every Children request")
        self._descend_from(self._level + 1, children, self._hashes)

    def _begin_keys(self, buckets: Sequence[int]) -> None:
        self._phase = "keys"
        for region in self._participants:
            self._queue_spans(region, [Span(b) for b in buckets])

    def _queue_spans(self, region: str, spans: Sequence[Span]) -> None:
        step = self.config.spans_per_request
        for at in range(0, len(spans), step):
            self._send(region, Keys(self.sid, self.table, self.shape.bucket_bits,
                                    tuple(spans[at:at + step]), self.config.page_keys))

    def _after_keys(self) -> None:
        if self._phase == "keys" and self._big:
            self._phase = "sub"
            self._sub_hashes = {r: {} for r in self._participants}
            for bucket in sorted(self._big):
                self._judge.forget_bucket(bucket)
                for region in self._participants:
                    self._send(region, SubHashes(self.sid, self.table, self.shape.bucket_bits,
                                                 bucket, self.config.sub_bits))
            return
        self._begin_judge()

    def _after_sub(self) -> None:
        self._phase = "subkeys"
        spans = []
        for bucket in sorted(self._big):
            per_region = [self._sub_hashes[r].get(bucket, ()) for r in self._participants]
            subs = tuple(i for i in range(1 << self.config.sub_bits)
                         if len({hashes[i] for hashes in per_region}) > 1)
            if subs:
                spans.append(Span(bucket, None, self.config.sub_bits, subs))
        for region in self._participants:
            self._queue_spans(region, spans)

    def _begin_judge(self) -> None:
        self._phase = "judge"
        self._plans = self._judge.judge()
        if self.config.repair and self._plans:
            self._begin_fetch()

    def _begin_fetch(self) -> None:
        self._phase = "fetch"
        by_source: dict[str, list[KeyPos]] = {}
        for plan in self._plans:
            by_source.setdefault(plan.source, []).append((plan.pk, plan.sk))
        step = self.config.fetch_batch
        for source, keys in sorted(by_source.items()):
            for at in range(0, len(keys), step):
                self._send(source, Fetch(self.sid, self.table, tuple(keys[at:at + step])))

    def _begin_repair(self) -> None:
        self._phase = "repair"
        by_target: dict[str, list[RepairItem]] = {}
        for plan in self._plans:
            fetched = self._fetched.get((plan.pk, plan.sk))
            if fetched is None or not _is_winner(fetched, plan.winner):
                self.report.unrepairable.append(((plan.pk, plan.sk),
                                                 "the winner changed before it was fetched"))
                continue
            for region, replaces, reason, conflict in plan.targets:
                entry = Entry(plan.pk, plan.sk, plan.winner.version, fetched.item,
                              causal=fetched.causal)
                by_target.setdefault(region, []).append(
                    RepairItem(entry, plan.source, replaces, reason, conflict))
        step = self.config.repair_batch
        for target, items in sorted(by_target.items()):
            for at in range(0, len(items), step):
                self._send(target, Repair(self.sid, self.table, tuple(items[at:at + step])))

    def _finish(self, now_ms: int) -> None:
        self.done = True
        self.report.finished_ms = now_ms
        self.report.round_trips = max(self._sent.values())
        self._judge.finish(now_ms, self.remote)
        for region in self.regions:
            self._queue[region].clear()

    # --- answers -----------------------------------------------------------------------
    def _handle(self, region: str, request: Request, response: Response) -> None:
        if isinstance(request, Scrub) and isinstance(response, Scrubbed):
            self._judge.scrubbed(region, response)
        elif isinstance(request, Open) and isinstance(response, Opened):
            if len(response.level1) not in (0, self.shape.fanout):
                raise SessionFailed("level 1 has the wrong number of hashes")
            self._judge.sides[region] = response
            self._judge.note_damage(region, response.damaged)
        elif isinstance(request, Children) and isinstance(response, Hashes):
            if len(response.hashes) != len(request.parents) * self.shape.fanout:
                raise SessionFailed("wrong number of child hashes")
            self._hashes[region].extend(response.hashes)
        elif isinstance(request, Keys) and isinstance(response, KeyPages):
            self._on_pages(region, request, response)
        elif isinstance(request, SubHashes) and isinstance(response, Hashes):
            if len(response.hashes) != 1 << request.bits:
                raise SessionFailed("wrong number of sub-bucket hashes")
            self._sub_hashes[region][request.bucket] = response.hashes
        elif isinstance(request, Fetch) and isinstance(response, Fetched):
            if len(response.entries) != len(request.keys):
                raise SessionFailed("wrong number of fetched rows")
            for key, entry in zip(request.keys, response.entries):
                if entry is not None and (entry.pk, entry.sk) == key:
                    self._fetched[key] = entry
        elif isinstance(request, Repair) and isinstance(response, Repaired):
            if len(response.outcomes) != len(request.items):
                raise SessionFailed("wrong number of repair outcomes")
            self._judge.repaired(region, request, response.outcomes, self._now_ms)
        else:
            raise SessionFailed(f"answered {type(request).__name__} with "
                                f"{type(response).__name__}")

    def _on_pages(self, region: str, request: Keys, response: KeyPages) -> None:
        spans = request.spans
        if not response.pages or len(response.pages) > len(spans):
            raise SessionFailed("a key listing answered no span")
        rest: list[Span] = []
        for span, page in zip(spans, response.pages):
            if page.bucket != span.bucket:
                raise SessionFailed("a key listing answered another bucket")
            self._rows_listed += len(page.rows)
            if self._rows_listed > self.config.max_rows:
                raise SessionFailed(f"more than {self.config.max_rows} rows to compare")
            self._judge.add_rows(region, span, page.rows)
            if page.resume is not None:
                if span.sub_bits == 0 and self._phase == "keys":
                    self._big.add(span.bucket)  # compared by sub-bucket hashes instead
                else:
                    rest.append(Span(span.bucket, page.resume, span.sub_bits, span.subs))
        rest.extend(spans[len(response.pages):])
        if rest:
            self._queue[region].appendleft(Keys(self.sid, self.table, self.shape.bucket_bits,
                                                tuple(rest), self.config.page_keys))


def _is_winner(entry: Entry, winner: Listed) -> bool:
    listed = listed_of(entry)
    return listed.version == winner.version and listed.content == winner.content and entry.intact


def drive(session: Session, answer: Callable[[str, bytes], bytes],
          now_ms: Callable[[], int], max_messages: int = 10_000_000) -> TableReport:
    """Run `session` to the end with a synchronous `answer(region, request) -> response`
    (in-memory stores, tests, the simulator, the benchmark)."""
    pending = deque(session.start())
    sent = 0
    while pending and not session.done:
        region, data = pending.popleft()
        sent += 1
        invariant(sent <= max_messages, "a session did not finish within its message bound")
        pending.extend(session.receive(region, answer(region, data), now_ms()))
    invariant(session.done, "a session stopped with nothing in flight")
    return session.report


__all__ = ["Session", "SessionConfig", "Status", "RepairLogEntry", "drive"]
