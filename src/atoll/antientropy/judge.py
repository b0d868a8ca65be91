"""The judging half of a session: what the regions answered, and what it means.

Theory of operation: the session (session.py) moves messages; the `Judge` keeps what
came back — each region's opening (cursors, purge points, table versions), the scrub's
damage evidence, the rows of the buckets that differ — and at the end turns them into
the report: per pair of regions the keys that differ and their verdicts (the rule is in
verdict.py), the signatures the `VerdictBook` keeps for the next session, and the
repairs of the DIVERGED keys (repair.py).

Which regions walk the tree: those whose table is live with the same creation version
(the largest such group; ties go to the group of the alphabetically first region). A
region whose table versions differ is judged at the table level against the others
(its table was created, deleted or re-created differently), not key by key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations

from atoll.antientropy.messages import Listed, Opened, Repair, Scrubbed, Span
from atoll.antientropy.repair import KeyRepair, Unrepairable, plan_key
from atoll.antientropy.results import (
    DIVERGED_KIND,
    TRANSIENT_KIND,
    UNCONFIRMED_KIND,
    KeyDifference,
    PairResult,
    TableReport,
    pair_status,
)
from atoll.antientropy.store import KeyPos, RepairLogEntry
from atoll.antientropy.verdict import (
    Cut,
    Judgement,
    SideView,
    Signature,
    VerdictBook,
    agree,
    describe_state,
    describe_version,
    judge_key,
    judge_table,
    pair_cut,
    state_digest,
)
from atoll.antientropy.versions import VersionScheme

TableView = tuple[bytes | None, bytes | None]  # (created, dropped)


class Judge:
    def __init__(self, table: str, regions: Sequence[str], scheme: VersionScheme,
                 book: VerdictBook, max_differences: int, max_repairs: int,
                 report: TableReport, damage: Mapping[str, Iterable[int]] | None = None
                 ) -> None:
        self.table = table
        self.regions = tuple(regions)
        self.scheme = scheme
        self.book = book
        self.token = book.start()
        self.max_differences = max_differences
        self.max_repairs = max_repairs
        self.report = report
        self.sides: dict[str, Opened] = {}
        self.pairs = {(a, b): PairResult(table, a, b) for a, b in combinations(self.regions, 2)}
        self._rows: dict[str, dict[int, dict[KeyPos, Listed]]] = {r: {} for r in self.regions}
        self._buckets: set[int] = set()
        self._damaged: dict[str, set[int]] = {r: set((damage or {}).get(r, ()))
                                              for r in self.regions}
        self._corrupt: set[tuple[str, KeyPos]] = set()
        self._sightings: dict[tuple[str, str], dict[Signature, frozenset[str]]] = {}
        self._key_pairs: list[tuple[str, str]] = []
        self._cuts: dict[tuple[str, str], Cut] = {}
        self._states_seen: dict[tuple[str, KeyPos], Listed | None] = {}

    # --- what came back ----------------------------------------------------------------
    def scrubbed(self, region: str, response: Scrubbed) -> None:
        self._damaged[region].update(bucket for bucket, _, _ in response.damaged)
        self.report.damaged_buckets[region] = len(self._damaged[region])
        self._corrupt.update((region, key) for key in response.corrupt)

    def add_rows(self, region: str, span: Span, rows: Iterable[Listed]) -> None:
        bucket = self._rows[region].setdefault(span.bucket, {})
        self._buckets.add(span.bucket)
        for row in rows:
            bucket[(row.pk, row.sk)] = row
            if not row.intact:
                self._corrupt.add((region, (row.pk, row.sk)))

    def forget_bucket(self, bucket: int) -> None:
        for rows in self._rows.values():
            rows.pop(bucket, None)
        self._buckets.discard(bucket)

    def note_damage(self, region: str, buckets: Iterable[int]) -> None:
        """Buckets the region's earlier scrubs found changed behind Atoll's back."""
        self._damaged[region].update(buckets)

    def opened(self) -> tuple[str, ...]:
        """After every region answered Open: judge the table level, return the regions
        that walk the tree."""
        views = {r: (self.sides[r].created, self.sides[r].dropped) for r in self.regions}
        live: dict[TableView, list[str]] = {}
        for region in self.regions:
            if views[region][0] is not None and views[region][1] is None:
                live.setdefault(views[region], []).append(region)
        groups = sorted(live.values(), key=lambda g: (-len(g), g[0]))
        participants = tuple(groups[0]) if groups else ()
        for (a, b), pair in self.pairs.items():
            self._cuts[(a, b)] = pair_cut(self._view(a), self._view(b))
            if views[a] != views[b]:
                self._judge_table(a, b, views[a], views[b])
            elif a in participants and b in participants:
                self._key_pairs.append((a, b))
            elif views[a][0] is not None and views[a][1] is None:
                pair.error = "not compared: the other regions hold another table by this name"
            else:
                self._sightings[(a, b)] = {}
        return participants

    def _view(self, region: str) -> SideView:
        side = self.sides[region]
        return SideView(region, side.cursors, side.purged)

    def _judge_table(self, a: str, b: str, va: TableView, vb: TableView) -> None:
        versions_a = [v for v in va if v is not None]
        versions_b = [v for v in vb if v is not None]
        judgement = judge_table(versions_a, versions_b, self._cuts[(a, b)], self.scheme)
        signature = (self.table.encode(), b"", b"|".join(versions_a), b"|".join(versions_b))
        self._count(a, b, b"", b"", judgement, signature, frozenset(),
                    self._describe_view(va), self._describe_view(vb))

    def _describe_view(self, view: TableView) -> str:
        created, dropped = view
        if created is None:
            return "table absent"
        if dropped is None:
            return f"table created {describe_version(created, self.scheme)}"
        return f"table deleted {describe_version(dropped, self.scheme)}"

    # --- judging -----------------------------------------------------------------------
    def judge(self) -> list[KeyRepair]:
        """Every differing key of every compared pair, judged; the plans to repair the
        DIVERGED ones. Records the sightings in the book."""
        diverged: dict[KeyPos, tuple[int, set[str], frozenset[str]]] = {}
        for pair in self._key_pairs:
            self._sightings.setdefault(pair, {})
        for bucket in sorted(self._buckets):
            keys = sorted({key for rows in self._rows.values() for key in rows.get(bucket, {})})
            for key in keys:
                self._judge_key(bucket, key, diverged)
        self.book.record(self.table, self._sightings)
        self.report.corrupt = sorted(self._corrupt)
        return self._plan(diverged)

    def _judge_key(self, bucket: int, key: KeyPos,
                   diverged: dict[KeyPos, tuple[int, set[str], frozenset[str]]]) -> None:
        states = {r: self._rows[r].get(bucket, {}).get(key) for r in self.regions}
        for a, b in self._key_pairs:
            sa, sb = states[a], states[b]
            if agree(sa, sb):
                continue
            judgement = judge_key(a, sa, b, sb, self._cuts[(a, b)], self.scheme)
            damaged = frozenset(r for r in (a, b) if bucket in self._damaged[r])
            signature = (key[0], key[1], state_digest(sa), state_digest(sb))
            kind, evidence = self._count(a, b, key[0], key[1], judgement, signature, damaged,
                                         describe_state(sa, self.scheme),
                                         describe_state(sb, self.scheme))
            if kind == DIVERGED_KIND:
                _, targets, known = diverged.get(key, (bucket, set(), frozenset()))
                diverged[key] = (bucket, targets | {a, b}, known | evidence)

    def _count(self, a: str, b: str, pk: bytes, sk: bytes, judgement: Judgement,
               signature: Signature, damaged: frozenset[str], a_state: str,
               b_state: str) -> tuple[str, frozenset[str]]:
        pair = self.pairs[(a, b)]
        evidence = damaged
        if judgement.kind == TRANSIENT_KIND:
            kind = TRANSIENT_KIND
            pair.transient += 1
        else:
            earlier = self.book.confirmed(self.token, self.table, a, b, signature)
            self._sightings.setdefault((a, b), {})[signature] = damaged | (earlier or frozenset())
            if earlier is None:
                kind = UNCONFIRMED_KIND
                pair.unconfirmed += 1
            else:
                kind, evidence = DIVERGED_KIND, damaged | earlier
                pair.diverged += 1
        if len(self.report.differences) < self.max_differences:
            self.report.differences.append(KeyDifference(self.table, pk, sk, a, b, kind,
                                                         a_state, b_state, judgement.reason))
        else:
            self.report.differences_dropped += 1
        return kind, evidence

    def _plan(self, diverged: dict[KeyPos, tuple[int, set[str], frozenset[str]]]
              ) -> list[KeyRepair]:
        plans: list[KeyRepair] = []
        for key in sorted(diverged):
            if len(plans) >= self.max_repairs:
                self.report.unrepairable.append((key, "over this session's repair bound"))
                continue
            bucket, targets, damaged = diverged[key]
            states = {r: self._rows[r].get(bucket, {}).get(key) for r in self.regions
                      if r in self._rows and bucket in self._rows[r]}
            for region, state in states.items():
                self._states_seen[(region, key)] = state
            plan = plan_key(self.table, key[0], key[1], states, sorted(targets), self.scheme,
                            damaged)
            if isinstance(plan, Unrepairable):
                self.report.unrepairable.append((key, plan.reason))
            elif plan is not None:
                plans.append(plan)
        return plans

    # --- after repairs and at the end --------------------------------------------------
    def repaired(self, region: str, request: Repair, outcomes: Sequence[str],
                 now_ms: int) -> None:
        for item, outcome in zip(request.items, outcomes):
            entry = item.entry
            seen = self._states_seen.get((region, (entry.pk, entry.sk)))
            self.report.repairs.append(RepairLogEntry(
                now_ms, region, self.table, entry.pk, entry.sk,
                describe_version(entry.version, self.scheme), item.source,
                None if seen is None else describe_version(seen.version, self.scheme), item.reason,
                item.concurrent, outcome))

    def finish(self, now_ms: int, remote: frozenset[str]) -> None:
        report = self.report
        for (a, b), pair in self.pairs.items():
            if report.error and not pair.error:
                pair.error = report.error
            pair.elapsed_ms = now_ms - report.started_ms
            pair.bytes_exchanged = sum(report.bytes_by_region.get(r, 0) for r in (a, b)
                                       if r in remote)
            counts = [self.sides[r].key_count for r in (a, b) if r in self.sides]
            pair.keys_compared = max(counts, default=0)
            pair.status = pair_status(pair)
        report.pairs = list(self.pairs.values())
