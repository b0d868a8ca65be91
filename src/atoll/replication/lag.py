"""Replication lag per origin: how far one region's copy of each other region's changes
trails, in records and in seconds (pure: the shell passes cursors, reports and times).

Theory of operation
- Every region numbers its own changes (origin sequence) and keeps, per origin, the
  cursor (seq, hlc) of the last change it applied. Every Pull a region sends carries its
  whole cursor vector, its own origin included (its newest change): so a region learns,
  within a pull round trip, how far each peer got with every origin.
- Records behind origin O = the highest sequence of O that any region reported holding
  (O itself included) minus our own cursor for O. It can only under-count: a change O
  made that nobody has reported yet is not counted.
- Seconds behind origin O = the larger of
  * the span, in O's clock, between the newest change of O we hold and the newest one
    reported (0 when we hold every reported change), and
  * the silence: how long since O last answered one of our pulls, once that is longer
    than a long poll can take (`grace_s`). Whatever O wrote since may be missing, so a
    region cut off from O sees this grow one second per second; it is an upper bound
    while O's changes reach us through another region instead.
- State: "live" (nothing behind, O answering), "catching_up" (O answering, changes
  still to apply), "unreachable" (O silent beyond `grace_s`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from atoll.clock.hlc import hlc_physical_ms

LIVE = "live"
CATCHING_UP = "catching_up"
UNREACHABLE = "unreachable"
STATES = (LIVE, CATCHING_UP, UNREACHABLE)

CursorVector = Mapping[str, tuple[int, int]]  # origin -> (seq, hlc)


@dataclass(frozen=True)
class OriginLag:
    origin: str
    records: int
    seconds: float
    state: str
    last_heard_s: float | None  # since `origin` last answered a pull (None: never)

    def as_dict(self) -> dict[str, object]:
        return {"records": self.records, "seconds": self.seconds, "state": self.state,
                "last_heard_s": self.last_heard_s}


def newest_reported(origins: Iterable[str], vectors: Iterable[CursorVector]
                    ) -> dict[str, tuple[int, int]]:
    """Per origin, the highest (seq, hlc) any of the cursor vectors holds."""
    wanted = set(origins)
    newest: dict[str, tuple[int, int]] = {}
    for vector in vectors:
        for origin, cursor in vector.items():
            if origin in wanted and cursor > newest.get(origin, (0, 0)):
                newest[origin] = (int(cursor[0]), int(cursor[1]))
    return newest


def origin_lags(origins: Iterable[str], own: CursorVector, reported: Iterable[CursorVector],
                last_heard_s: Mapping[str, float | None], grace_s: float) -> dict[str, OriginLag]:
    """Lag behind each of `origins` (the other regions) for a region whose cursor vector
    is `own`, given the cursor vectors others reported and how long ago each origin last
    answered this region."""
    origins = list(origins)
    newest = newest_reported(origins, [own, *reported])
    lags: dict[str, OriginLag] = {}
    for origin in origins:
        seq, hlc = own.get(origin, (0, 0))
        head_seq, head_hlc = newest.get(origin, (0, 0))
        records = max(0, head_seq - seq)
        # (holding nothing of it yet, the span back to its first change is unknown)
        span_s = max(0, hlc_physical_ms(head_hlc) - hlc_physical_ms(hlc)) / 1000 \
            if records and hlc else 0.0
        heard = last_heard_s.get(origin)
        silent = heard is None or heard > grace_s
        silence_s = (heard or 0.0) if silent else 0.0
        state = UNREACHABLE if silent else CATCHING_UP if records else LIVE
        lags[origin] = OriginLag(origin, records, round(max(span_s, silence_s), 3), state,
                                 None if heard is None else round(heard, 3))
    return lags
