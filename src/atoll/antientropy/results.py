"""What a verify reports: per table and region pair, and the exit code of `atoll verify`.

A pair's status is DIVERGED if any key was confirmed divergent, else TRANSIENT if any
difference is explained by changes still in flight or is below the cut but not yet
confirmed by a second pass (UNCONFIRMED), else MATCH; INCOMPLETE when the session could
not finish (a side failed, timed out or refused). `exit_code`: 2 if anything is
INCOMPLETE, else 1 if anything DIVERGED, else 0 — "everything matches below the cut".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum

from atoll.antientropy.store import KeyPos, RepairLogEntry

TRANSIENT_KIND = "transient"
UNCONFIRMED_KIND = "unconfirmed"
DIVERGED_KIND = "diverged"


class Status(Enum):
    MATCH = "MATCH"
    TRANSIENT = "TRANSIENT"
    DIVERGED = "DIVERGED"
    INCOMPLETE = "INCOMPLETE"


@dataclass(frozen=True, slots=True)
class KeyDifference:
    """One key that differs between two regions, and why it is judged as it is."""

    table: str
    pk: bytes
    sk: bytes
    a: str
    b: str
    kind: str  # TRANSIENT_KIND, UNCONFIRMED_KIND or DIVERGED_KIND
    a_state: str  # readable: "absent", "tombstone us-east@12", "item us-east@12 <hash>"
    b_state: str
    reason: str

    @property
    def key(self) -> KeyPos:
        return (self.pk, self.sk)


@dataclass(slots=True)
class PairResult:
    table: str
    a: str
    b: str
    status: Status = Status.MATCH
    transient: int = 0
    unconfirmed: int = 0
    diverged: int = 0
    keys_compared: int = 0  # keys the pair's trees covered (the larger side's count)
    bytes_exchanged: int = 0  # request and response bytes with either side, if remote
    elapsed_ms: int = 0
    error: str = ""

    def summary(self) -> str:
        if self.status is Status.MATCH:
            return "MATCH"
        if self.status is Status.INCOMPLETE:
            return f"INCOMPLETE ({self.error})"
        if self.status is Status.DIVERGED:
            return f"DIVERGED {self.diverged}"
        if self.unconfirmed:
            return f"TRANSIENT {self.transient + self.unconfirmed} ({self.unconfirmed} to confirm)"
        return f"TRANSIENT {self.transient}"


@dataclass(slots=True)
class TableReport:
    """One session: one table over two or more regions."""

    table: str
    regions: tuple[str, ...]
    started_ms: int
    finished_ms: int = 0
    pairs: list[PairResult] = field(default_factory=list)
    differences: list[KeyDifference] = field(default_factory=list)  # at most max_differences
    differences_dropped: int = 0  # beyond the bound: counted in the pairs, not listed
    corrupt: list[tuple[str, KeyPos]] = field(default_factory=list)  # (region, key) failing checksum
    damaged_buckets: dict[str, int] = field(default_factory=dict)  # per region, from the scrub
    repairs: list[RepairLogEntry] = field(default_factory=list)
    unrepairable: list[tuple[KeyPos, str]] = field(default_factory=list)
    bytes_by_region: dict[str, int] = field(default_factory=dict)
    round_trips: int = 0
    error: str = ""

    @property
    def status(self) -> Status:
        return worst(pair.status for pair in self.pairs) if self.pairs else (
            Status.INCOMPLETE if self.error else Status.MATCH)

    def diverged_keys(self) -> list[KeyPos]:
        return sorted({d.key for d in self.differences if d.kind == DIVERGED_KIND})


_RANK = {Status.MATCH: 0, Status.TRANSIENT: 1, Status.DIVERGED: 2, Status.INCOMPLETE: 3}


def worst(statuses: Iterable[Status]) -> Status:
    result = Status.MATCH
    for status in statuses:
        if _RANK[status] > _RANK[result]:
            result = status
    return result


def pair_status(pair: PairResult) -> Status:
    if pair.error:
        return Status.INCOMPLETE
    if pair.diverged:
        return Status.DIVERGED
    if pair.transient or pair.unconfirmed:
        return Status.TRANSIENT
    return Status.MATCH


def exit_code(reports: list[TableReport]) -> int:
    statuses = [report.status for report in reports]
    if Status.INCOMPLETE in statuses:
        return 2
    if Status.DIVERGED in statuses:
        return 1
    return 0


def combine_passes(first: TableReport, confirm: TableReport, focus: Iterable[int],
                   bucket_of: Callable[[bytes], int]) -> TableReport:
    """A pass and the focused pass that confirmed its below-cut differences, as one
    report. The confirming pass decides for the keys of the buckets it looked at again
    (`focus`); the first pass's differences elsewhere (TRANSIENT ones: everything below
    the cut is in `focus`) still count. Bytes, round trips and time add up."""
    again = set(focus)
    kept = [d for d in first.differences if bucket_of(d.pk) not in again]
    report = TableReport(first.table, first.regions, first.started_ms, confirm.finished_ms)
    report.differences = confirm.differences + kept
    report.differences_dropped = first.differences_dropped + confirm.differences_dropped
    report.corrupt = sorted(set(first.corrupt) | set(confirm.corrupt))
    report.damaged_buckets = dict(first.damaged_buckets)
    report.repairs = first.repairs + confirm.repairs
    report.unrepairable = first.unrepairable + confirm.unrepairable
    report.bytes_by_region = {r: first.bytes_by_region.get(r, 0) + confirm.bytes_by_region.get(r, 0)
                              for r in set(first.bytes_by_region) | set(confirm.bytes_by_region)}
    report.round_trips = first.round_trips + confirm.round_trips
    report.error = confirm.error or first.error
    confirmed = {(p.a, p.b): p for p in confirm.pairs}
    for pair in first.pairs:
        second = confirmed.get((pair.a, pair.b), PairResult(pair.table, pair.a, pair.b))
        outside = [d for d in kept if (d.a, d.b) == (pair.a, pair.b)]
        merged = PairResult(
            pair.table, pair.a, pair.b,
            transient=second.transient + sum(d.kind == TRANSIENT_KIND for d in outside),
            unconfirmed=second.unconfirmed + sum(d.kind == UNCONFIRMED_KIND for d in outside),
            diverged=second.diverged + sum(d.kind == DIVERGED_KIND for d in outside),
            keys_compared=max(pair.keys_compared, second.keys_compared),
            bytes_exchanged=pair.bytes_exchanged + second.bytes_exchanged,
            elapsed_ms=report.finished_ms - report.started_ms,
            error=second.error or pair.error)
        merged.status = pair_status(merged)
        report.pairs.append(merged)
    return report
