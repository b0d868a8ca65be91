"""Retention: which changelog records and tombstones every region already holds.

Theory of operation: a region may drop changelog record (O, s) once every region of the
cluster has applied it — nobody will ever ask for it again — so per origin the purge
point is the element-wise minimum (`meet`) of every region's acknowledged cursors
(a region acknowledges its cursors in every Pull it sends). A region whose cursors are
unknown counts as ZERO: nothing is purged on its behalf's absence.

A tombstone at version (T, _) may go once no write older than T can still arrive: every
origin O's changes not yet applied everywhere have seq above meet[O].seq, hence (HLC
timestamps increase with seq) hlc above meet[O].hlc, and O's future changes are later
still. So tombstones with hlc < min over origins of meet[O].hlc are safe to purge.
An origin that never wrote has hlc 0 and holds tombstones back: that is the price of
not knowing its clock (a real node writes a heartbeat change now and then).

The bounded maximum (DESIGN.md decision 6, issue 5 "with a bounded maximum"): at most
`max_records_per_origin` records are kept per origin, and no tombstone older than
`max_tombstone_age_ms`, even if some region never acknowledged them. A region that falls
behind that bound cannot catch up from the log any more and needs anti-entropy; the plan
says so (`forced`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from atoll.clock.hlc import make_hlc
from atoll.replication.cursors import Cursors, cursor_of, meet
from atoll.replication.store import RetentionPlan


@dataclass(frozen=True, slots=True)
class RetentionDecision:
    plan: RetentionPlan
    forced: bool  # the bounded maximum overrode some region's acknowledgement


def plan_retention(region: str, regions: Iterable[str], acked: Mapping[str, Cursors],
                   own: Cursors, now_ms: int, max_records_per_origin: int,
                   max_tombstone_age_ms: int) -> RetentionDecision:
    """`region`: this region, whose cursors are `own`; `regions`: every region of the
    cluster (each is an origin); `acked`: per other region, the cursors it last
    acknowledged (a region missing from it has acknowledged nothing). The bounded
    maximum (`max_records_per_origin`, `max_tombstone_age_ms`) is the configuration's
    (atoll.replication.config.ReplicationConfig)."""
    regions = sorted(set(regions) | {region})
    vectors: list[Cursors] = [own]
    for other in regions:
        if other != region:
            vectors.append(acked.get(other, {}))
    safe = meet(vectors, regions)
    forced = False
    purge_through = {}
    for origin in regions:
        through = safe[origin].seq
        bound = cursor_of(own, origin).seq - max_records_per_origin
        if bound > through:
            through, forced = bound, True
        if through > 0:
            purge_through[origin] = through
    horizon = min((safe[origin].hlc for origin in regions), default=0)
    age_bound = make_hlc(max(now_ms - max_tombstone_age_ms, 0))
    if age_bound > horizon:
        horizon, forced = age_bound, True
    return RetentionDecision(RetentionPlan(purge_through, horizon), forced)
