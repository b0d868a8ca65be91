"""Replication lag never gives DIVERGED (verdict.py's argument, checked by search).

Seeded runs of a 3-region cluster (tests/unit/test_antientropy_scenarios.Cluster) under
a steady stream of puts and deletes spread over the regions, delivered per origin in
order but at random moments and in random orders across origins and regions, with
retention purging changelog records and tombstones as soon as the rule allows — also
*while a session is under way* (events fire between the answers to its requests).
Consecutive verifies run all along; none may report DIVERGED. After everything is
delivered, the regions hold identical items and a verify reports MATCH.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from atoll.antientropy import DIVERGED_KIND, Status
from tests.unit.test_antientropy_scenarios import Cluster, item

KEYS = [b"k%02d" % i for i in range(24)]


def step(cluster: Cluster, rnd: random.Random, writes: float = 0.45,
         deliveries: float = 0.85) -> None:
    """One random event of normal operation: a write (put or delete) with probability
    `writes`, else a delivery up to `deliveries`, else a purge."""
    roll = rnd.random()
    regions = cluster.regions
    if roll < writes:
        region = rnd.choice(regions)
        deleting = rnd.random() < 0.25
        cluster.write(region, rnd.choice(KEYS), None if deleting else item(rnd.randrange(10**6)))
    elif roll < deliveries:
        region, origin = rnd.choice(regions), rnd.choice(regions)
        behind = len(cluster.log[origin]) - cluster.applied[region][origin]
        if behind:
            cluster.deliver(region, origin,
                            cluster.applied[region][origin] + rnd.randint(1, behind))
    else:
        cluster.purge(rnd.choice(regions))


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_no_diverged_under_replication_lag(seed):
    rnd = random.Random(seed)
    cluster = Cluster()
    for _ in range(rnd.randint(0, 30)):
        step(cluster, rnd)
    seen = []
    for _ in range(10):  # consecutive verifies under steady load
        for _ in range(rnd.randint(0, 15)):
            step(cluster, rnd)
        # While the session runs, mostly deliveries and purges: the moments where a
        # region lists a key just before applying a delete another already purged.
        report = cluster.verify(between=lambda region, data: [
            step(cluster, rnd, 0.1, 0.6) for _ in range(rnd.randint(0, 4))] and None)
        assert DIVERGED_KIND not in {d.kind for d in report.differences}, (seed, report)
        assert report.status is not Status.DIVERGED
        seen.append(report.status)
    cluster.deliver_all()
    assert cluster.identical()
    final = cluster.verify()
    assert final.status is Status.MATCH, final.differences
