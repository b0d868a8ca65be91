"""Whether a region restored from a whole-node backup can catch up from its cursors.

Theory of operation: a database restored from a backup holds the region's state at the
backup's moment: per origin, the changes up to its cursor. It rejoins its cluster by
catching up from those cursors when its peers can still give it everything it lacks:
- no peer holds more of this region's own changes than the backup does (peers never
  send a region its own changes back, and the region would reuse their sequence
  numbers for new writes, which its peers would drop as duplicates);
- no peer purged another origin's changes past the backup's cursor for that origin
  (every region acknowledged them, this one before the backup was restored over it).
Otherwise the restored data is left out and the region starts empty, to be rebuilt
from a peer's snapshot, which also hands it its own sequence back (atoll.node.replicator).
Merging a peer's snapshot into the old data instead could bring back items deleted
since, once their tombstones were purged. Pure: the peers' figures come from the caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

CATCH_UP = "catch-up"
REBUILD = "rebuild"


@dataclass(frozen=True)
class PeerView:
    """What a peer reported (its /_atoll/status): its cursor per origin, and per origin
    the highest seq it purged from its changelog."""

    region: str
    cursors: Mapping[str, int]
    log_start: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RejoinPlan:
    action: str  # CATCH_UP or REBUILD
    reasons: tuple[str, ...]


def plan_rejoin(region: str, restored: Mapping[str, int], peers: list[PeerView]) -> RejoinPlan:
    """`restored`: per origin, the last change the restored database holds."""
    reasons = []
    own = restored.get(region, 0)
    for peer in peers:
        theirs = peer.cursors.get(region, 0)
        if theirs > own:
            reasons.append(f"{peer.region} holds {region}'s changes up to {theirs}; the backup "
                           f"has them up to {own}")
        for origin, purged in sorted(peer.log_start.items()):
            if origin != region and purged > restored.get(origin, 0):
                reasons.append(f"{peer.region} purged {origin}'s changes up to {purged}; the "
                               f"backup has them up to {restored.get(origin, 0)}")
    return RejoinPlan(REBUILD if reasons else CATCH_UP, tuple(reasons))
