"""Replication lag during a drill, from the regions' own status pages.

`LagSampler` reads every region's cursor vector (origin -> (seq, hlc) applied) every
SAMPLE_S: a region's lag is how far, in origin time, it is behind the newest change of
the other regions, worst origin first. At the heal it marks each origin's own sequence
number; the first sample in which every region has applied every origin up to its mark
is when the cluster caught up with what happened before the heal. `applied_lag` reads
the lag each region measured itself as it applied changes (`/_atoll/status`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from atoll.clock import hlc_physical_ms
from atoll.drill.cluster import Cluster, get_json

SAMPLE_S = 0.5
STATUS_TIMEOUT_S = 0.5


@dataclass
class LagSample:
    t: float  # seconds since the workload started
    lag_ms: dict[str, int]  # region -> its worst lag behind another region


class LagSampler(threading.Thread):
    """Samples until `stop` is set (see the module docstring)."""

    def __init__(self, cluster: Cluster, t_start: float, stop: threading.Event) -> None:
        super().__init__(name="drill-lag", daemon=True)
        self.cluster = cluster
        self.t_start = t_start
        self.stop_event = stop
        self.samples: list[LagSample] = []
        self.heal_marks: dict[str, int] | None = None  # origin -> its own seq at the heal
        self.heal_t: float | None = None
        self.caught_up_t: float | None = None

    def vectors(self) -> dict[str, dict[str, list[int]]]:
        found = {}
        for region in self.cluster.ids:
            try:
                status = get_json(self.cluster.url(region) + "/_atoll/status", STATUS_TIMEOUT_S,
                                  self.cluster.credentials)
                found[region] = status["replication"]["cursor_vector"]
            except (OSError, KeyError, ValueError):
                continue  # down or cut off from us: no sample
        return found

    def mark_heal(self) -> None:
        vectors = self.vectors()
        self.heal_marks = {r: v.get(r, [0, 0])[0] for r, v in vectors.items()}
        self.heal_t = time.monotonic() - self.t_start

    def run(self) -> None:
        while not self.stop_event.wait(SAMPLE_S):
            vectors = self.vectors()
            now = time.monotonic() - self.t_start
            newest = {r: v.get(r, [0, 0])[1] for r, v in vectors.items()}
            lag = {}
            for region, vector in vectors.items():
                behind = [max(0, hlc_physical_ms(newest[o]) - hlc_physical_ms(vector[o][1]))
                          for o in newest if o != region and newest[o] and o in vector]
                lag[region] = max(behind, default=0)
            self.samples.append(LagSample(round(now, 3), lag))
            marks = self.heal_marks
            if (marks is not None and self.caught_up_t is None
                    and len(vectors) == len(self.cluster.ids)
                    and all(vectors[r].get(o, [0, 0])[0] >= seq
                            for r in vectors for o, seq in marks.items())):
                self.caught_up_t = now

    def summary(self, fault_t: float) -> dict[str, Any]:
        steady = [v for s in self.samples if s.t < fault_t for v in s.lag_ms.values()]
        every = [v for s in self.samples for v in s.lag_ms.values()]
        return {"steady_p50_ms": percentile(steady, 50), "steady_p99_ms": percentile(steady, 99),
                "max_ms": max(every, default=None),
                "caught_up_after_heal_s": (round(self.caught_up_t - self.heal_t, 3)
                                           if self.caught_up_t is not None
                                           and self.heal_t is not None else None),
                "series": [asdict(s) for s in self.samples]}


def percentile(values: list[int], pct: int) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))])


def applied_lag(cluster: Cluster) -> dict[str, Any]:
    """Each region's own applied-lag percentiles, and the worst region's."""
    per_region = {}
    for r in cluster.ids:
        try:
            per_region[r] = get_json(cluster.url(r) + "/_atoll/status",
                                     credentials=cluster.credentials)["replication"]["lag_ms"]
        except (OSError, KeyError, ValueError):
            per_region[r] = None
    p50s = [v["p50"] for v in per_region.values() if v and v.get("p50") is not None]
    p99s = [v["p99"] for v in per_region.values() if v and v.get("p99") is not None]
    return {"per_region": per_region, "p50_ms": max(p50s) if p50s else None,
            "p99_ms": max(p99s) if p99s else None}
