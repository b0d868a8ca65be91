"""A scenario's figures, from its operation record: what `atoll drill` reports (pure).

- availability per client kind: the share of requests that succeeded, and the longest
  time one client thread went without a success;
- failover time: for each thread the victim served just before the fault, the time from
  the fault to its first success answered by another region (the slowest thread's);
- the timeline: successes per second by the region that answered, and errors;
- with the lag figures, the check's summary and the verdict, as one JSON-ready dict
  (drill.json; report.py reads it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from atoll.drill.checker import CheckResult
from atoll.drill.workload import Operation


@dataclass
class Timing:
    """Seconds since the workload started."""

    fault_s: float = 0.0
    heal_s: float = 0.0
    end_s: float = 0.0


@dataclass
class Event:
    t: float  # seconds since the workload started
    event: str


@dataclass
class Run:
    """What a scenario was: its settings and its timeline."""

    scenario: str
    victim: str
    regions: int
    duration_s: float
    rate: float
    seed: int
    t_start: float  # time.monotonic() when the workload started
    timing: Timing
    events: list[Event] = field(default_factory=list)


def scenario_figures(run: Run, ops: list[Operation], result: CheckResult,
                     lag: dict[str, Any], converged_s: float | None,
                     conflicts: int, verified: dict[str, Any]) -> dict[str, Any]:
    timing = run.timing
    clients = {kind: client_figures([o for o in ops if o.client == kind], run)
               for kind in sorted({o.client for o in ops})}
    failover = [o for o in ops if o.client == "failover"]
    return {"scenario": run.scenario, "victim": run.victim, "regions": run.regions,
            "duration_s": run.duration_s, "rate": run.rate, "seed": run.seed,
            "fault_window_s": [round(timing.fault_s, 3), round(timing.heal_s, 3)],
            "clients": clients,
            "failover_time_s": failover_time(failover, run.t_start + timing.fault_s,
                                             run.victim),
            "replication_lag_ms": {"p50": lag["steady_p50_ms"], "p99": lag["steady_p99_ms"],
                                   "max": lag["max_ms"],
                                   "applied_p50": lag["p50_ms"], "applied_p99": lag["p99_ms"],
                                   "per_region": lag["per_region"]},
            "caught_up_after_heal_s": lag["caught_up_after_heal_s"],
            "lag_series": lag["series"],
            "converge_after_stop_s": converged_s, "conflicts_recorded": conflicts,
            "check": result.summary(), "verify": verified,
            "events": [asdict(e) for e in run.events],
            "timeline": timeline(ops, run.t_start, timing.end_s),
            "passed": result.passed and converged_s is not None and verified["passed"]}


def client_figures(ops: list[Operation], run: Run) -> dict[str, Any]:
    """Availability of one kind of client (every thread of it)."""
    start, end = run.t_start, run.t_start + run.timing.end_s
    gap = max(longest_gap([o for o in ops if o.worker == w], start, end)
              for w in {o.worker for o in ops})
    attempted, succeeded = len(ops), sum(1 for o in ops if o.ok)
    return {"attempted": attempted, "succeeded": succeeded,
            "availability_pct": round(100.0 * succeeded / attempted, 3) if attempted else None,
            "longest_gap_s": round(gap, 3),
            "read_errors": sum(1 for o in ops if not o.ok and o.is_read),
            "write_errors": sum(1 for o in ops if not o.ok and not o.is_read)}


def longest_gap(ops: list[Operation], start: float, end: float) -> float:
    """The longest time one client thread went without a successful request."""
    times = [start] + sorted(o.t1 for o in ops if o.ok) + [end]
    return max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)


def failover_time(ops: list[Operation], fault_at: float, victim: str) -> float | None:
    """Per client thread that was served by the victim region just before the fault, from
    the fault to its first success served by another region; the slowest thread's (None:
    no thread had to move)."""
    times = []
    for worker in {o.worker for o in ops}:
        mine = sorted((o for o in ops if o.worker == worker and o.ok and o.region),
                      key=lambda o: o.t1)
        before = [o for o in mine if o.t1 < fault_at]
        if not before or before[-1].region != victim:
            continue
        moved = next((o for o in mine if o.t0 >= fault_at
                      and o.region != before[-1].region), None)
        if moved is not None:
            times.append(moved.t1 - fault_at)
    return round(max(times), 3) if times else None


def timeline(ops: list[Operation], t0: float, end_s: float) -> list[dict[str, Any]]:
    """Per second: successes by the region that answered (or the client kind), errors."""
    seconds = int(end_s) + 1
    rows: list[dict[str, Any]] = [{"t": s, "ok": {}, "errors": {}} for s in range(seconds)]
    for o in ops:
        s = min(seconds - 1, max(0, int(o.t1 - t0)))
        where = o.region or o.client
        bucket: dict[str, int] = rows[s]["ok" if o.ok else "errors"]
        bucket[where] = bucket.get(where, 0) + 1
    return rows
